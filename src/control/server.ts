import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { dirname } from 'node:path'
import type { Logger } from 'pino'
import { CONTROL_MAX_CONNECTIONS, CONTROL_MAX_REQUEST_BYTES, CONTROL_SOCKET_MODE } from '../constants.js'
import { errorMessage, UsageError } from '../errors.js'
import { ErrorCodes, JSONRPC_VERSION, type ControlError, type ControlResponse } from './protocol.js'

export interface MethodContext {
  /** Sends an event tied to this request before its result (progress lines, followed items). */
  notify: (event: unknown) => void
  /** Aborted when the client disconnects. */
  signal: AbortSignal
}

export type ControlMethod = (params: unknown, ctx: MethodContext) => Promise<unknown>

export class SocketInUseError extends Error {
  override name = 'SocketInUseError'
}

async function socketAnswers (path: string): Promise<boolean> {
  return await new Promise(resolve => {
    const probe = createConnection(path)
    probe.once('connect', () => { probe.destroy(); resolve(true) })
    probe.once('error', () => { resolve(false) })
  })
}

/**
 * The local control socket: JSON-RPC 2.0 over newline-delimited JSON. Each request line is
 * bounded; a bad request gets an error response and the connection stays usable, except an
 * oversized one, after which the connection is closed (its remainder cannot be framed).
 */
export class ControlServer {
  private server?: Server
  private readonly sockets = new Set<Socket>()

  constructor (private readonly socketPath: string, private readonly methods: Record<string, ControlMethod>, private readonly log: Logger) {}

  async start (): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o750 })
    if (existsSync(this.socketPath)) {
      if (await socketAnswers(this.socketPath)) {
        throw new SocketInUseError(`control socket ${this.socketPath} is in use: another aitbc-mesh daemon is running with it`)
      }
      unlinkSync(this.socketPath) // left behind by a daemon that was killed
    }
    const server = createServer(socket => { this.accept(socket) })
    server.maxConnections = CONTROL_MAX_CONNECTIONS
    // Create the socket 0660 from the start, not world-accessible until a chmod.
    const previousUmask = process.umask(0o117)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.socketPath, () => { server.off('error', reject); resolve() })
      })
    } finally {
      process.umask(previousUmask)
    }
    chmodSync(this.socketPath, CONTROL_SOCKET_MODE)
    this.server = server
  }

  async stop (): Promise<void> {
    const server = this.server
    delete this.server
    if (server == null) return
    const closed = new Promise<void>(resolve => server.close(() => { resolve() }))
    for (const socket of this.sockets) socket.destroy()
    await closed
    try {
      unlinkSync(this.socketPath)
    } catch {
      // already gone
    }
  }

  private accept (socket: Socket): void {
    this.sockets.add(socket)
    const controller = new AbortController()
    let buffered = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      // Search only the new bytes for a line end: a long line arrives in many chunks.
      let newline = chunk.indexOf('\n')
      if (newline >= 0) newline += buffered.length
      buffered += chunk
      // Walk the buffer with an index: slicing it per line would be quadratic in a large chunk.
      let start = 0
      for (; newline >= 0; newline = buffered.indexOf('\n', start)) {
        const line = buffered.slice(start, newline)
        start = newline + 1
        if (line.trim() !== '') void this.dispatch(socket, line, controller.signal)
      }
      buffered = buffered.slice(start)
      if (Buffer.byteLength(buffered) > CONTROL_MAX_REQUEST_BYTES) {
        this.log.warn({ event: 'control_request_too_large', bytes: Buffer.byteLength(buffered) }, 'control request too large; closing connection')
        this.send(socket, { jsonrpc: JSONRPC_VERSION, id: null, error: { code: ErrorCodes.RequestTooLarge, message: `request exceeds ${CONTROL_MAX_REQUEST_BYTES} bytes; requests are one JSON object per line` } })
        buffered = ''
        socket.end()
        socket.pause()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      controller.abort()
      this.sockets.delete(socket)
    })
  }

  private send (socket: Socket, message: object): void {
    if (!socket.writable) return
    // Answers produced in the same tick leave in one write.
    if (socket.writableCorked === 0) {
      socket.cork()
      process.nextTick(() => { socket.uncork() })
    }
    socket.write(JSON.stringify(message) + '\n')
  }

  private async dispatch (socket: Socket, line: string, signal: AbortSignal): Promise<void> {
    let request: unknown
    try {
      request = JSON.parse(line)
    } catch (err) {
      this.send(socket, { jsonrpc: JSONRPC_VERSION, id: null, error: { code: ErrorCodes.ParseError, message: `request is not valid JSON: ${(err as Error).message}` } })
      return
    }
    const req = request as { jsonrpc?: unknown, id?: unknown, method?: unknown, params?: unknown }
    const id = typeof req?.id === 'number' || typeof req?.id === 'string' ? req.id : null
    const fail = (error: ControlError): void => { this.send(socket, { jsonrpc: JSONRPC_VERSION, id, error } satisfies ControlResponse) }
    if (req == null || typeof req !== 'object' || Array.isArray(req) || id == null || typeof req.method !== 'string') {
      fail({ code: ErrorCodes.InvalidRequest, message: 'expected {"jsonrpc":"2.0","id":<number|string>,"method":<string>,"params":<object>}' })
      return
    }
    const method = Object.hasOwn(this.methods, req.method) ? this.methods[req.method] : undefined
    if (method == null) {
      fail({ code: ErrorCodes.MethodNotFound, message: `unknown method "${req.method}"; available: ${Object.keys(this.methods).join(', ')}` })
      return
    }
    try {
      const result = await method(req.params ?? {}, {
        notify: event => { this.send(socket, { jsonrpc: JSONRPC_VERSION, method: 'event', params: { id, event } }) },
        signal
      })
      this.send(socket, { jsonrpc: JSONRPC_VERSION, id, result } satisfies ControlResponse)
    } catch (err) {
      if (err instanceof UsageError) {
        fail({ code: ErrorCodes.InvalidParams, message: err.message })
      } else {
        this.log.error({ event: 'control_method_failed', method: req.method, err: errorMessage(err) }, 'control method failed')
        fail({ code: ErrorCodes.InternalError, message: errorMessage(err) })
      }
    }
  }
}
