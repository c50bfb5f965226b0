import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { allNodes, type MeshConfig } from '../config/config.js'
import { MAX_CONCURRENT_OPERATIONS } from '../constants.js'
import { errorMessage, NoQuorumError } from '../errors.js'
import { noQuorumReason, type Membership } from '../mesh/membership.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import type { Messaging } from '../messaging/messaging.js'
import type { OperationDeps, OperationKindHandler, ProgressEvent } from './kinds/context.js'
import { coordinateKind } from './kinds/coordinate.js'
import { messageKind } from './kinds/message.js'
import { reportsKind } from './kinds/status.js'
import { syncKind } from './kinds/sync.js'
import type { OperationExecutor } from './local-executor.js'
import type { OperationLog } from './op-log.js'
import type { OperationProtocol } from './operation-protocol.js'
import { isDestructive, parseOperationRequest, type OperationRequest } from './request.js'
import { operationResult, type OperationResult } from './result.js'
import { resolveTargets } from './targets.js'
import { LOCAL_OPERATOR } from './authority.js'

export type { ProgressEvent } from './kinds/context.js'
export type { NodeStatusEntry, OperationResult, TargetOutcome } from './result.js'

export interface OperationRunnerInit {
  config: MeshConfig
  peers: Pick<PeerTable, 'get' | 'liveness' | 'all'>
  /** Runs the local target's part (shared with the operation protocol, which runs peers' requests). */
  local: OperationExecutor
  protocol: Pick<OperationProtocol, 'request' | 'requestAction' | 'requestSync'>
  log: Logger
  messaging?: Messaging
  opLog?: OperationLog
  /** Quorum for destructive work; without it (unit tests) every node counts as reachable. */
  membership?: Pick<Membership, 'view'>
}

/** At most `limit` operations at once; the rest wait in line, first come first served. */
class OperationSlots {
  private running = 0
  private readonly waiting: Array<() => void> = []
  constructor (private readonly limit: number) {}

  async acquire (onQueued: (running: number, ahead: number) => void): Promise<() => void> {
    if (this.running >= this.limit) {
      onQueued(this.running, this.waiting.length)
      await new Promise<void>(resolve => this.waiting.push(resolve))
    } else {
      this.running++
    }
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.waiting.shift()
      if (next != null) next() // the slot passes straight to the next in line
      else this.running--
    }
  }
}

/** Runs operations requested at this node: checks the input, resolves targets, hands the run to its kind. */
export class OperationRunner {
  private readonly slots = new OperationSlots(MAX_CONCURRENT_OPERATIONS)
  private readonly deps: OperationDeps
  private readonly kinds: Record<OperationRequest['operation'], OperationKindHandler>

  constructor (private readonly init: OperationRunnerInit) {
    this.deps = init
    this.kinds = {
      status: reportsKind('status'),
      health: reportsKind('health'),
      coordinate: coordinateKind,
      message: messageKind,
      // Peers' sync answers that are refused, written once per (peer, reason).
      sync: syncKind(new RejectionLog(init.log))
    }
  }

  /**
   * A reload's new settings: targets, actions, sync settings and the probe settings sync reads
   * (repo, config files, RPC) apply to what starts from now on; running operations keep theirs.
   */
  setSettings (next: Pick<MeshConfig, 'peers' | 'actions' | 'sync' | 'probes'>): void {
    this.init.config = { ...this.init.config, ...next }
  }

  /**
   * Runs the operation JSON. Throws UsageError for bad input (exit code 2). Input is checked
   * before the operation takes one of the MAX_CONCURRENT_OPERATIONS slots.
   */
  async run (input: unknown, progress: (event: ProgressEvent) => void = () => {}): Promise<OperationResult> {
    const request = parseOperationRequest(input)
    const kind = this.kinds[request.operation]
    kind.check(request, this.deps)
    const targets = resolveTargets(request.target_node, allNodes(this.init.config))
    this.checkQuorum(request)
    const release = await this.slots.acquire((running, ahead) => { progress({ type: 'queued', running, ahead }) })
    const record = this.init.opLog?.begin(request)
    // The same id names the operation in `ops`, in this log and in the targets' logs.
    const operationId = record?.id ?? randomUUID()
    const started = performance.now()
    const logged = { operationId, operation: request.operation, target: request.target_node }
    this.init.log.info({ event: 'operation_started', ...logged, targets: targets.map(t => t.name) }, 'operation started')
    try {
      progress({ type: 'started', operation: request.operation, targets: targets.map(t => t.name) })
      const outcome = await kind.run(this.deps, { request, targets, operationId, timeoutMs: Math.round(request.timeout * 1000), progress })
      const result = operationResult(request, outcome, started, this.init.membership?.view())
      if (record != null) this.init.opLog!.finish(record, { result: result as unknown as Record<string, unknown> })
      this.init.log.info({ event: 'operation_finished', ...logged, validation: result.validation_status, issues: result.issues.length, ms: Math.round(performance.now() - started) }, 'operation finished')
      return result
    } catch (err) {
      if (record != null) this.init.opLog!.finish(record, { error: errorMessage(err) })
      this.init.log.warn({ event: 'operation_failed', ...logged, err: errorMessage(err), ms: Math.round(performance.now() - started) }, 'operation failed')
      throw err
    } finally {
      release()
    }
  }

  /**
   * Destructive work runs only while this node sees a majority of the configured nodes (the
   * targets check again for themselves). Refused with the unreachable nodes named, or, with
   * override_quorum, run and logged as the operator's decision.
   */
  private checkQuorum (request: OperationRequest): void {
    if (this.init.membership == null || !isDestructive(request, this.init.config.actions)) return
    const view = this.init.membership.view()
    if (view.quorum) return
    const node = this.init.config.node.name
    const logged = { operation: request.operation, target: request.target_node, ...(request.action != null ? { action: request.action } : {}), force: request.force, reachable: view.reachable, unreachable: view.unreachable }
    if (request.override_quorum) {
      // The control socket does not tell which unix user is on the other end; the CLI is run by
      // someone with access to it (the daemon's user or group).
      this.init.log.warn({ event: 'quorum_overridden', requestedBy: LOCAL_OPERATOR, node, ...logged }, `destructive ${request.operation} run without quorum: overridden by the local operator`)
      return
    }
    this.init.log.warn({ event: 'operation_refused_no_quorum', requestedBy: LOCAL_OPERATOR, node, ...logged }, 'destructive operation refused: no quorum')
    throw new NoQuorumError(`${request.operation} refused: ${noQuorumReason(view, node)}`, view.unreachable)
  }
}
