import type { Logger } from 'pino'
import type { MeshConfig, NodeEntry } from '../../config/config.js'
import type { PeerTable } from '../../mesh/peer-table.js'
import type { Messaging } from '../../messaging/messaging.js'
import type { OperationExecutor } from '../local-executor.js'
import type { OperationProtocol } from '../operation-protocol.js'
import type { OperationRequest } from '../request.js'
import type { KindOutcome } from '../result.js'

/** Progress the CLI prints while an operation runs. */
export type ProgressEvent =
  | { type: 'queued', running: number, ahead: number }
  | { type: 'started', operation: string, targets: string[] }
  | { type: 'node', node: string, state: string, detail?: string }

/** What every operation kind may use: this node's parts, each a narrow slice. */
export interface OperationDeps {
  config: MeshConfig
  peers: Pick<PeerTable, 'get' | 'liveness' | 'all'>
  /** Runs a step on this node (the local target). */
  local: OperationExecutor
  /** Asks a peer to run a step on itself. */
  protocol: Pick<OperationProtocol, 'request' | 'requestAction' | 'requestSync'>
  log: Logger
  messaging?: Messaging
}

/** One operation being run. */
export interface OperationRun {
  request: OperationRequest
  targets: NodeEntry[]
  /** Names the operation here and in the targets' logs. */
  operationId: string
  timeoutMs: number
  progress: (event: ProgressEvent) => void
}

/** One operation kind: its own input checks, and how it runs. */
export interface OperationKindHandler {
  /** Throws UsageError for a request this kind cannot run; called before the operation takes a slot. */
  check: (request: OperationRequest, deps: OperationDeps) => void
  run: (deps: OperationDeps, run: OperationRun) => Promise<KindOutcome>
}

/** Whether `node` is this node itself. */
export function isSelf (deps: OperationDeps, node: NodeEntry): boolean {
  return node.name === deps.config.node.name
}
