import type { Logger } from 'pino'
import type { MeshConfig } from '../config/config.js'
import { withTimeout } from '../errors.js'
import { noQuorumReason, type MeshView } from '../mesh/membership.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { runAction, type ActionResult } from './actions.js'
import { authorizeAction, authorizeSyncStep, LOCAL_OPERATOR, type Refusal, type Requester } from './authority.js'
import type { LocalProbes } from './local-probes.js'
import type { NodeReport } from './report.js'
import { fitText } from './sync/answers.js'
import { runSyncStep } from './sync/steps.js'

export type ReportKind = 'status' | 'health'

/**
 * Runs one step of an operation on this node, from its own config: for the operator's own
 * request (the runner's local target) and for a peer's (the operation protocol) alike.
 */
export interface OperationExecutor {
  /** This node's report from its own probes; throws TimeoutError when it takes longer than `timeoutMs`. */
  report: (kind: ReportKind, timeoutMs: number) => Promise<NodeReport>
  /** Runs one of this node's actions, if its config lets `requester` run it; a refusal is an ActionResult. */
  action: (action: string, force: boolean, timeoutMs: number, requester: Requester) => Promise<ActionResult>
  /** Runs one sync step, if this node's config lets `requester` ask for it; a refusal is `{ state: 'refused', reason }`. */
  sync: (step: string, payload: unknown, force: boolean, timeoutMs: number, requester: Requester) => Promise<unknown>
}

export interface LocalExecutorInit {
  config: MeshConfig
  probes: Pick<LocalProbes, 'reportFor'>
  log: Logger
  /** Records the time of this node's last successful sync (reported as last_sync). */
  markSynced?: () => void
  /** This node's membership view: destructive work needs quorum here too. Absent: not checked. */
  meshView?: () => MeshView
}

export class LocalExecutor implements OperationExecutor {
  /** Peers' refused requests, written once per (peer, reason) so a peer cannot flood the journal. */
  private readonly rejections: RejectionLog

  constructor (private readonly init: LocalExecutorInit) {
    this.rejections = new RejectionLog(init.log)
  }

  async report (kind: ReportKind, timeoutMs: number): Promise<NodeReport> {
    return await withTimeout(`this node's ${kind} probe`, this.init.probes.reportFor(kind), timeoutMs)
  }

  async action (action: string, force: boolean, timeoutMs: number, requester: Requester): Promise<ActionResult> {
    const { config, log } = this.init
    const refusal = authorizeAction(config, requester, action)
    if (refusal != null) {
      this.logRefusal(requester, refusal, { action, force })
      return { action, state: 'refused', exit_code: null, duration_ms: 0, output_tail: '', reason: refusal.reason, destructive: config.actions[action]?.destructive ?? false, health_before: '', health_after: '' }
    }
    const destructive = Object.hasOwn(config.actions, action) && config.actions[action]!.destructive
    const noQuorum = destructive && force ? this.quorumRefusal(requester, { action, force }) : null
    if (noQuorum != null) {
      this.logRefusal(requester, noQuorum, { action, force })
      return { action, state: 'refused', exit_code: null, duration_ms: 0, output_tail: '', reason: noQuorum.reason, destructive, health_before: '', health_after: '' }
    }
    const result = await runAction(config.actions, action, {
      force,
      timeoutMs,
      health: async () => (await this.init.probes.reportFor('health')).status
    })
    log.info({ event: 'action_run', action, state: result.state, exitCode: result.exit_code, ms: result.duration_ms, reason: result.reason, from: requester.node }, 'action finished')
    return result
  }

  async sync (step: string, payload: unknown, force: boolean, timeoutMs: number, requester: Requester): Promise<unknown> {
    const refusal = authorizeSyncStep(this.init.config, requester, step, force) ?? (force ? this.quorumRefusal(requester, { step, force }) : null)
    if (refusal != null) {
      this.logRefusal(requester, refusal, { step, force })
      return { state: 'refused', reason: fitText(refusal.reason) }
    }
    const result = await runSyncStep(step, payload, {
      config: this.init.config,
      force,
      timeoutMs,
      runAction: async (name, f, t) => await this.action(name, f, t, requester),
      markSynced: () => { this.init.markSynced?.() }
    })
    this.init.log.info({ event: 'sync_step', step, force, state: (result as { state?: string })?.state }, 'sync step finished')
    return result
  }

  /**
   * Destructive work (a destructive action, a forced sync step) runs only while this node sees a
   * majority, whoever asks; the requester's override_quorum lifts that, logged with who asked.
   * Refusals are logged by the caller; null: it may run.
   */
  private quorumRefusal (requester: Requester, fields: Record<string, unknown>): Refusal | null {
    const view = this.init.meshView?.()
    if (view == null || view.quorum) return null
    const { log, config } = this.init
    const logged = { ...fields, ...(requester.operationId != null ? { operationId: requester.operationId } : {}), reachable: view.reachable, unreachable: view.unreachable }
    if (requester.overrideQuorum === true) {
      // The requesting node logged its operator's decision too; here it is named by the node.
      log.warn({ event: 'quorum_overridden', requestedBy: requester.self ? LOCAL_OPERATOR : `the operator of ${requester.node}`, from: requester.node, node: config.node.name, ...logged }, 'destructive work run here without quorum: overridden by the requester')
      return null
    }
    return { category: 'no_quorum', reason: noQuorumReason(view, config.node.name) }
  }

  private logRefusal (requester: Requester, refusal: Refusal, fields: Record<string, unknown>): void {
    const detail = { ...fields, ...(requester.operationId != null ? { operationId: requester.operationId } : {}), detail: refusal.reason }
    if (requester.self) this.init.log.warn({ event: 'operation_refused', peer: requester.node, reason: refusal.category, ...detail }, 'refused a request from this node\'s own operator')
    else this.rejections.reject('operation_refused', requester.node, refusal.category, detail, 'refused an operation request from a peer')
  }
}
