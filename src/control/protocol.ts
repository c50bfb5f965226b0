/**
 * The control socket speaks JSON-RPC 2.0, one JSON object per line, over a Unix socket.
 * This module has no dependencies so the CLI can load it without the daemon's code.
 */

export const JSONRPC_VERSION = '2.0'

export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  RequestTooLarge: -32001,
  /** The connection limit is reached; the daemon closes this connection. */
  TooManyConnections: -32002,
  /** The daemon closes the connection: idle, an incomplete line, or a client too far behind reading. */
  ConnectionClosed: -32003,
  /** The request's outcome is not known yet (a send whose store write went unanswered); `data.id` names it. */
  OutcomeUnknown: -32004,
  /** Destructive work refused: this node does not see a majority of the configured nodes; `data.unreachable` names the others. */
  NoQuorum: -32005
} as const

/** A request without an `id` is a notification: it runs, and nothing is sent back for it. */
export interface ControlRequest {
  jsonrpc: '2.0'
  id?: number | string
  method: string
  params?: unknown
}

export interface ControlError {
  code: number
  message: string
  data?: unknown
}

export interface ControlResponse {
  jsonrpc: '2.0'
  id: number | string | null
  result?: unknown
  error?: ControlError
}

/** A notification the daemon sends while a request runs (progress, followed events). */
export interface ControlNotification {
  jsonrpc: '2.0'
  method: 'event'
  params: { id: number | string, event: unknown }
}
