import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { allNodes, type MeshConfig, type NodeEntry } from '../config/config.js'
import { errorMessage, ProtocolError, TimeoutError, UnreachableError, UsageError } from '../errors.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { AITBC_NODE_UNIT, AITBC_RPC_RATE_LIMIT_PER_MINUTE, AITBC_RPC_UNIT, MAX_CONCURRENT_OPERATIONS } from '../constants.js'
import { AnswerUnreadableError, type OperationProtocol, type ReportKind } from './operation-protocol.js'
import type { HealthCheck, NodeReport } from './report.js'
import { parseOperationRequest, type OperationRequest } from './request.js'
import { resolveTargets } from './targets.js'
import type { LocalProbes } from './local-probes.js'
import { runAction, type ActionResult } from './actions.js'
import type { OperationLog } from './op-log.js'
import { runSync } from './sync/sync-operation.js'
import { runSyncStep, type SyncStep } from './sync/steps.js'
import { fitText, parseStepAnswer, StepAnswerError, type StepAnswers } from './sync/answers.js'
import type { Messaging } from '../messaging/messaging.js'
import { deliveryCounts } from '../messaging/message.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { authorizeAction, authorizeSyncStep, selfRequester, type Refusal, type Requester } from './authority.js'

export type TargetOutcome = 'ok' | 'failed' | 'timed_out' | 'unreachable'

/** One target in `nodes_status`: the report's public fields, plus what the operation adds. */
export type NodeStatusEntry = Pick<NodeReport, 'role' | 'status' | 'block_height' | 'mempool_size' | 'p2p_connections' | 'service_uptime' | 'last_sync'> & {
  checks?: HealthCheck[]
  /** status and health: per chain values, and when the report's probe ran (status answers from the last one). */
  chains?: NodeReport['chains']
  probed_at?: string | null
  probe_age_ms?: number | null
  delivery?: { state: string, reason?: string, receipt_at?: string }
  action?: ActionResult | { state: string, reason: string }
  sync?: Record<string, unknown>
  /** `ssh` when the report came over the SSH fallback. */
  via?: 'ssh'
}

/** The operation JSON of DESIGN.md; every top-level field is always present. */
export interface OperationResult {
  summary: string
  operation: OperationRequest['operation']
  target_node: string
  nodes_status: Record<string, NodeStatusEntry>
  sync_result: 'success' | 'partial' | 'failed' | null
  sync_details: Record<string, boolean> | null
  message_delivery: { sent: number, delivered: number, failed: number }
  issues: string[]
  recommendations: string[]
  confidence: number
  execution_time: number
  validation_status: 'success' | 'partial' | 'failed'
}

export interface OperationRunnerInit {
  config: MeshConfig
  peers: PeerTable
  probes: LocalProbes
  protocol: OperationProtocol
  log: Logger
  messaging?: Messaging
  opLog?: OperationLog
  /** Records the time of this node's last successful sync (reported as last_sync). */
  markSynced?: () => void
}

/** Progress the CLI prints while an operation runs. */
export type ProgressEvent =
  | { type: 'queued', running: number, ahead: number }
  | { type: 'started', operation: string, targets: string[] }
  | { type: 'node', node: string, state: string, detail?: string }

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

interface TargetResult {
  node: NodeEntry
  outcome: TargetOutcome
  report: NodeReport
  /** Set when the report came over the SSH fallback instead of the mesh. */
  via?: 'ssh'
}

function offlineReport (node: NodeEntry, reason: string): NodeReport {
  return {
    node: node.name,
    role: node.role,
    status: 'offline',
    block_height: null,
    mempool_size: null,
    p2p_connections: 0,
    service_uptime: null,
    last_sync: null,
    issues: [`${node.name}: offline: ${reason}`],
    checks: [],
    chains: {},
    daemon_uptime_ms: 0,
    probed_at_ms: null
  }
}

/** Runs operations requested at this node: resolves targets, fans out, gathers one result per target. */
export class OperationRunner {
  private readonly slots = new OperationSlots(MAX_CONCURRENT_OPERATIONS)
  /** Peers' refused requests, written once per (peer, reason) so a peer cannot flood the journal. */
  private readonly rejections: RejectionLog

  constructor (private readonly init: OperationRunnerInit) {
    this.rejections = new RejectionLog(init.log)
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
    if (request.operation === 'sync' && request.sync_type == null) throw new UsageError('operation: "sync_type" is required for sync (blockchain, mempool, configuration, git or all)')
    if (request.operation === 'message' && this.init.messaging == null) throw new UsageError('operation "message" is not available on this daemon')
    if (request.operation === 'coordinate' && request.action == null) throw new UsageError('operation: "action" is required for coordinate (the name of an action in the targets\' configs)')
    const targets = resolveTargets(request.target_node, allNodes(this.init.config))
    const release = await this.slots.acquire((running, ahead) => { progress({ type: 'queued', running, ahead }) })
    const record = this.init.opLog?.begin(request)
    // The same id names the operation in `ops`, in this log and in the targets' logs.
    const operationId = record?.id ?? randomUUID()
    const started = performance.now()
    const logged = { operationId, operation: request.operation, target: request.target_node }
    this.init.log.info({ event: 'operation_started', ...logged, targets: targets.map(t => t.name) }, 'operation started')
    try {
      progress({ type: 'started', operation: request.operation, targets: targets.map(t => t.name) })
      let result: OperationResult
      if (request.operation === 'message') result = await this.runMessage(request, this.init.messaging!)
      else if (request.operation === 'coordinate') result = await this.runCoordinate(request, targets, progress, operationId)
      else if (request.operation === 'sync') result = await this.runSyncOperation(request, targets, progress, operationId)
      else result = await this.runReports(request, request.operation, targets, progress, operationId)
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
   * Runs a named action on each target, from the target's own config. In parallel, or with
   * `sequential` one node after the other, stopping at the first failure (the rest: skipped).
   */
  private async runCoordinate (request: OperationRequest, targets: NodeEntry[], progress: (event: ProgressEvent) => void, requestId: string): Promise<OperationResult> {
    const started = performance.now()
    const action = request.action!
    const timeoutMs = Math.round(request.timeout * 1000)
    const results = new Map<string, { node: NodeEntry, outcome: TargetOutcome, result: ActionResult | null, reason: string }>()
    const runOne = async (node: NodeEntry): Promise<void> => {
      let entry: { node: NodeEntry, outcome: TargetOutcome, result: ActionResult | null, reason: string }
      if (node.name === this.init.config.node.name) {
        const result = await this.localAction(action, request.force, timeoutMs, selfRequester(this.init.config, requestId))
        entry = { node, outcome: result.state === 'ok' ? 'ok' : result.state === 'timed_out' ? 'timed_out' : 'failed', result, reason: result.reason }
      } else {
        const peer = this.init.peers.get(node.name)!
        const verdict = this.init.peers.liveness(peer)
        if (!peer.connected && verdict.liveness === 'offline') {
          entry = { node, outcome: 'unreachable', result: null, reason: `offline: ${verdict.reason ?? 'unreachable'}` }
        } else {
          try {
            const result = await this.init.protocol.requestAction(peer.peerId, node.name, action, request.force, requestId, timeoutMs)
            entry = { node, outcome: result.state === 'ok' ? 'ok' : result.state === 'timed_out' ? 'timed_out' : 'failed', result, reason: result.reason }
          } catch (err) {
            entry = { node, outcome: err instanceof TimeoutError ? 'timed_out' : err instanceof UnreachableError ? 'unreachable' : 'failed', result: null, reason: errorMessage(err) }
          }
        }
      }
      results.set(node.name, entry)
      progress({ type: 'node', node: node.name, state: entry.result?.state ?? entry.outcome, ...(entry.reason !== '' ? { detail: entry.reason } : {}) })
    }
    if (request.sequential) {
      for (const node of targets) {
        await runOne(node)
        if (results.get(node.name)!.outcome !== 'ok') break
      }
    } else {
      await Promise.all(targets.map(runOne))
    }

    const nodesStatus: Record<string, NodeStatusEntry> = {}
    const issues: string[] = []
    for (const node of targets) {
      const entry = results.get(node.name)
      nodesStatus[node.name] = {
        ...this.heartbeatEntry(node),
        action: entry == null
          ? { state: 'skipped', reason: 'not run: an earlier node failed (--sequential)' }
          : entry.result ?? { state: entry.outcome, reason: entry.reason }
      }
      if (entry == null) issues.push(`${node.name}: ${action}: skipped after an earlier failure`)
      else if (entry.outcome !== 'ok') issues.push(`${node.name}: ${action}: ${entry.result?.state ?? entry.outcome}: ${entry.reason}`)
    }
    const ok = [...results.values()].filter(r => r.outcome === 'ok').length
    const validation = ok === targets.length ? 'success' : ok === 0 ? 'failed' : 'partial'
    return {
      summary: `Action ${action} on ${targets.length} node${targets.length === 1 ? '' : 's'} (${request.target_node}${request.sequential ? ', sequential' : ''}): ${ok} succeeded${ok < targets.length ? `, ${targets.length - ok} did not` : ''}.`,
      operation: 'coordinate',
      target_node: request.target_node,
      nodes_status: nodesStatus,
      sync_result: null,
      sync_details: null,
      message_delivery: { sent: 0, delivered: 0, failed: 0 },
      issues,
      recommendations: [
        ...[...results.values()].some(r => r.result?.state === 'refused' && /is destructive; run it with --force/.test(r.reason))
          ? [`${action} is destructive on some targets; run it again with --force once you accept that.`]
          : [],
        ...[...results.values()].some(r => r.result?.state === 'refused' && /is not run here for/.test(r.reason))
          ? [`Some targets do not run ${action} for ${this.init.config.node.name}; run it from a node they allow, or add ${this.init.config.node.name} to actions.${action}.allowFrom in their config.`]
          : []
      ],
      confidence: Math.round((ok / targets.length) * 100) / 100,
      execution_time: Math.round(performance.now() - started) / 1000,
      validation_status: validation
    }
  }

  private async runSyncOperation (request: OperationRequest, targets: NodeEntry[], progress: (event: ProgressEvent) => void, requestId: string): Promise<OperationResult> {
    const started = performance.now()
    const timeoutMs = Math.round(request.timeout * 1000)
    const outcome = await runSync({
      config: this.init.config,
      step: async (node, step, payload, force) => await this.syncStepOn(node, step, payload, force, timeoutMs, requestId),
      report: async node => (await this.reportOf(node, 'health', requestId, Math.min(timeoutMs, 10_000), false)).report,
      progress: (node, state, detail) => { progress({ type: 'node', node, state, ...(detail != null ? { detail } : {}) }) }
    }, request, targets)

    const nodesStatus: Record<string, NodeStatusEntry> = {}
    for (const node of targets) {
      const report = outcome.reports.get(node.name)
      nodesStatus[node.name] = {
        role: node.role,
        status: report?.status ?? 'offline',
        block_height: report?.block_height ?? null,
        mempool_size: report?.mempool_size ?? null,
        p2p_connections: report?.p2p_connections ?? 0,
        service_uptime: report?.service_uptime ?? null,
        last_sync: report?.last_sync ?? null,
        sync: outcome.perNode[node.name] ?? {}
      }
    }
    const requested = Object.entries(outcome.details).filter(([, v]) => v != null)
    const synced = requested.filter(([, v]) => v === true).length
    const syncResult = synced === requested.length ? 'success' : synced === 0 ? 'failed' : 'partial'
    const offline = targets.filter(t => outcome.reports.get(t.name)?.status === 'offline')
    return {
      summary: `Sync ${request.sync_type ?? 'all'} on ${targets.length} node${targets.length === 1 ? '' : 's'} (${request.target_node}): ${requested.map(([k, v]) => `${k} ${v === true ? 'in sync' : 'not in sync'}`).join(', ')}.`,
      operation: 'sync',
      target_node: request.target_node,
      nodes_status: nodesStatus,
      sync_result: syncResult,
      sync_details: {
        blockchain_synced: outcome.details.blockchain,
        mempool_synced: outcome.details.mempool,
        configuration_synced: outcome.details.configuration,
        git_synced: outcome.details.git
      } as unknown as Record<string, boolean>,
      message_delivery: { sent: 0, delivered: 0, failed: 0 },
      issues: [...offline.flatMap(t => outcome.reports.get(t.name)?.issues ?? []), ...outcome.issues],
      recommendations: [
        ...outcome.issues.some(i => /--force/.test(i)) ? ['Run the sync again with --force to take the upstream / genesis state; the output lists what that drops.'] : [],
        ...outcome.recommendations
      ],
      confidence: Math.round(((targets.length - offline.length) / targets.length) * 100) / 100,
      execution_time: Math.round(performance.now() - started) / 1000,
      validation_status: syncResult
    }
  }

  /**
   * Runs sync `step` on `node` (this node itself, or a peer over the mesh) and checks the answer
   * before it is used: an answer the step cannot give fails that node's step with the reason,
   * and a peer's is logged through the rejection log.
   */
  private async syncStepOn<S extends SyncStep> (node: NodeEntry, step: S, payload: unknown, force: boolean, timeoutMs: number, requestId: string): Promise<StepAnswers[S]> {
    const self = node.name === this.init.config.node.name
    let answer: unknown
    if (self) {
      answer = await this.localSync(step, payload, force, timeoutMs, selfRequester(this.init.config, requestId))
    } else {
      const peer = this.init.peers.get(node.name)!
      const verdict = this.init.peers.liveness(peer)
      if (!peer.connected && verdict.liveness === 'offline') throw new UnreachableError(`${node.name} is offline: ${verdict.reason ?? 'unreachable'}`)
      try {
        answer = await this.init.protocol.requestSync(peer.peerId, node.name, step, payload, force, requestId, timeoutMs)
      } catch (err) {
        if (err instanceof AnswerUnreadableError) this.rejectAnswer(node.name, step, `${step} (answer): unreadable`, requestId, errorMessage(err))
        throw err
      }
    }
    try {
      return parseStepAnswer(step, payload, answer)
    } catch (err) {
      if (!(err instanceof StepAnswerError)) throw err
      // This node's own answers keep to the same bounds; one that does not is a bug here.
      if (self) this.init.log.error({ event: 'sync_answer_invalid', step, operationId: requestId, detail: err.message }, 'this node\'s own sync step answer is out of bounds')
      else this.rejectAnswer(node.name, step, err.category, requestId, err.message)
      throw new ProtocolError(`invalid answer from ${node.name} to ${step}: ${err.message}`)
    }
  }

  private rejectAnswer (peer: string, step: string, category: string, operationId: string, detail: string): void {
    this.rejections.reject('sync_answer_rejected', peer, category, { step, operationId, detail }, 'refused a sync step answer from a peer')
  }

  /**
   * What this node knows of `node` without asking it (liveness and its last heartbeat), for
   * operations whose per-node answer is not a status report.
   */
  private heartbeatEntry (node: NodeEntry): NodeStatusEntry {
    const peer = this.init.peers.get(node.name)
    const heartbeat = peer?.lastHeartbeat
    return {
      role: node.role,
      status: peer == null ? 'online' : this.init.peers.liveness(peer).liveness,
      block_height: heartbeat?.blockHeight ?? null,
      mempool_size: null,
      p2p_connections: peer == null ? this.init.peers.all().filter(p => p.connected).length : heartbeat?.p2pConnections ?? 0,
      service_uptime: null,
      last_sync: null
    }
  }

  /**
   * Runs one sync step on this node, from its own config (for itself or a peer's request), if
   * this node's config lets `requester` ask for it; otherwise answers `{ state: 'refused', reason }`.
   */
  async localSync (step: string, payload: unknown, force: boolean, timeoutMs: number, requester: Requester): Promise<unknown> {
    const refusal = authorizeSyncStep(this.init.config, requester, step, force)
    if (refusal != null) {
      this.logRefusal(requester, refusal, { step, force })
      return { state: 'refused', reason: fitText(refusal.reason) }
    }
    const result = await runSyncStep(step, payload, {
      config: this.init.config,
      force,
      timeoutMs,
      runAction: async (name, f, t) => await this.localAction(name, f, t, requester),
      markSynced: () => { this.init.markSynced?.() }
    })
    this.init.log.info({ event: 'sync_step', step, force, state: (result as { state?: string })?.state }, 'sync step finished')
    return result
  }

  /** Runs one of this node's own actions (for a local target or a peer's request), if its config lets `requester` run it. */
  async localAction (action: string, force: boolean, timeoutMs: number, requester: Requester): Promise<ActionResult> {
    const refusal = authorizeAction(this.init.config, requester, action)
    if (refusal != null) {
      this.logRefusal(requester, refusal, { action, force })
      return { action, state: 'refused', exit_code: null, duration_ms: 0, output_tail: '', reason: refusal.reason, destructive: this.init.config.actions[action]?.destructive ?? false, health_before: '', health_after: '' }
    }
    const result = await runAction(this.init.config.actions, action, {
      force,
      timeoutMs,
      health: async () => (await this.init.probes.reportFor('health')).status
    })
    this.init.log.info({ event: 'action_run', action, state: result.state, exitCode: result.exit_code, ms: result.duration_ms, reason: result.reason, from: requester.node }, 'action finished')
    return result
  }

  private logRefusal (requester: Requester, refusal: Refusal, fields: Record<string, unknown>): void {
    const detail = { ...fields, ...(requester.operationId != null ? { operationId: requester.operationId } : {}), detail: refusal.reason }
    if (requester.self) this.init.log.warn({ event: 'operation_refused', peer: requester.node, reason: refusal.category, ...detail }, 'refused a request from this node\'s own operator')
    else this.rejections.reject('operation_refused', requester.node, refusal.category, detail, 'refused an operation request from a peer')
  }

  /** Sends the message with a TTL of the operation's timeout and waits for every target's receipt. */
  private async runMessage (request: OperationRequest, messaging: Messaging): Promise<OperationResult> {
    const started = performance.now()
    if (request.message == null) throw new UsageError('operation: "message" is required for the message operation')
    const sent = await messaging.send({ to: request.target_node, body: request.message, ttl: Math.max(1, Math.ceil(request.timeout)) })
    // The TTL equals the timeout, so every target is final by then (allow the expiry sweep a moment).
    const message = await messaging.wait(sent.id, Math.round(request.timeout * 1000) + 1000)
    const nodesStatus: Record<string, NodeStatusEntry> = {}
    const issues: string[] = []
    const nodes = allNodes(this.init.config)
    for (const [name, delivery] of Object.entries(message.targets)) {
      nodesStatus[name] = {
        ...this.heartbeatEntry(nodes.find(n => n.name === name)!),
        delivery: { state: delivery.state, ...(delivery.reason != null ? { reason: delivery.reason } : {}), ...(delivery.receipt_at != null ? { receipt_at: new Date(delivery.receipt_at).toISOString() } : {}) }
      }
      if (delivery.state !== 'delivered') issues.push(`${name}: message ${message.id}: ${delivery.state}${delivery.reason != null ? `: ${delivery.reason}` : ''}`)
    }
    const counts = deliveryCounts([message])
    const validation = counts.delivered === counts.sent ? 'success' : counts.delivered === 0 ? 'failed' : 'partial'
    return {
      summary: `Message ${message.id} to ${request.target_node}: delivered to ${counts.delivered} of ${counts.sent} node${counts.sent === 1 ? '' : 's'}${counts.failed > 0 ? `, ${counts.failed} failed` : ''}.`,
      operation: 'message',
      target_node: request.target_node,
      nodes_status: nodesStatus,
      sync_result: null,
      sync_details: null,
      message_delivery: counts,
      issues,
      recommendations: counts.failed > 0 ? [`See aitbc-mesh message ${message.id} for each node's state; an offline node receives messages sent to it when it returns within their TTL.`] : [],
      confidence: Math.round((counts.delivered / Math.max(1, counts.sent)) * 100) / 100,
      execution_time: Math.round(performance.now() - started) / 1000,
      validation_status: validation
    }
  }


  private async runReports (request: OperationRequest, kind: ReportKind, targets: NodeEntry[], progress: (event: ProgressEvent) => void, requestId: string): Promise<OperationResult> {
    const started = performance.now()
    const timeoutMs = Math.round(request.timeout * 1000)
    const results = await Promise.all(targets.map(async node => {
      const result = await this.reportOf(node, kind, requestId, timeoutMs)
      progress({ type: 'node', node: node.name, state: result.report.status })
      return result
    }))

    const nodesStatus: Record<string, NodeStatusEntry> = {}
    const issues: string[] = []
    const recommendations = new Set<string>()
    for (const { node, report, outcome, via } of results) {
      nodesStatus[node.name] = {
        ...(via != null ? { via } : {}),
        role: report.role,
        status: report.status,
        block_height: report.block_height,
        mempool_size: report.mempool_size,
        p2p_connections: report.p2p_connections,
        service_uptime: report.service_uptime,
        last_sync: report.last_sync,
        chains: report.chains,
        probed_at: report.probed_at_ms != null ? new Date(report.probed_at_ms).toISOString() : null,
        probe_age_ms: report.probed_at_ms != null ? Math.max(0, Date.now() - report.probed_at_ms) : null,
        ...(kind === 'health' ? { checks: report.checks } : {})
      }
      issues.push(...report.issues)
      for (const rec of recommend(node, report, outcome, this.init.config)) recommendations.add(rec)
    }

    // status succeeds for a target that reported; health only for a target whose checks all pass.
    const succeeded = results.filter(r => r.outcome === 'ok' && (kind === 'status' || r.report.status === 'online')).length
    const validation = succeeded === results.length ? 'success' : succeeded === 0 ? 'failed' : 'partial'
    const counts = countBy(results.map(r => r.report.status))
    const summary = `${kind === 'health' ? 'Health' : 'Status'} of ${results.length} node${results.length === 1 ? '' : 's'} (${request.target_node}): ` +
      (['online', 'degraded', 'offline'] as const).filter(s => counts[s] != null).map(s => `${counts[s]} ${s}`).join(', ') + '.'
    const result: OperationResult = {
      summary,
      operation: request.operation,
      target_node: request.target_node,
      nodes_status: nodesStatus,
      sync_result: null,
      sync_details: null,
      message_delivery: { sent: 0, delivered: 0, failed: 0 },
      issues,
      recommendations: [...recommendations],
      confidence: Math.round((results.filter(r => r.outcome === 'ok').length / results.length) * 100) / 100,
      execution_time: Math.round(performance.now() - started) / 1000,
      validation_status: validation
    }
    return result
  }

  private async reportOf (node: NodeEntry, kind: ReportKind, requestId: string, timeoutMs: number, allowSsh = true): Promise<TargetResult> {
    if (node.name === this.init.config.node.name) {
      return { node, outcome: 'ok', report: await this.init.probes.reportFor(kind) }
    }
    const peer = this.init.peers.get(node.name)
    if (peer == null) return { node, outcome: 'unreachable', report: offlineReport(node, 'not in the peer table') }
    const verdict = this.init.peers.liveness(peer)
    // Known offline: answer now instead of waiting for a dial that cannot succeed.
    if (!peer.connected && verdict.liveness === 'offline') {
      const unreachable: TargetResult = { node, outcome: 'unreachable', report: offlineReport(node, verdict.reason ?? 'unreachable') }
      return allowSsh ? await this.overSsh(unreachable, kind, timeoutMs) : unreachable
    }
    try {
      const report = await this.init.protocol.request(peer.peerId, { name: node.name, role: node.role }, kind, requestId, timeoutMs)
      return { node, outcome: 'ok', report }
    } catch (err) {
      const timedOut = err instanceof TimeoutError
      const reason = errorMessage(err)
      const now = this.init.peers.liveness(peer)
      const report = offlineReport(node, reason)
      if (now.liveness !== 'offline') {
        report.status = 'degraded'
        report.issues = [`${node.name}: ${kind} request failed: ${reason}`]
      }
      const failed: TargetResult = { node, outcome: timedOut ? 'timed_out' : now.liveness === 'offline' ? 'unreachable' : 'failed', report }
      return allowSsh && failed.outcome !== 'failed' ? await this.overSsh(failed, kind, timeoutMs) : failed
    }
  }

  /**
   * The opt-in SSH fallback, for a peer the mesh cannot reach and that has `ssh:` configured:
   * status and health only, and the result says it came over SSH.
   */
  private async overSsh (unreachable: TargetResult, kind: ReportKind, timeoutMs: number): Promise<TargetResult> {
    const ssh = this.init.config.peers.find(p => p.name === unreachable.node.name)?.ssh
    if (ssh == null) return unreachable
    const meshReason = unreachable.report.issues.join('; ')
    try {
      const { reportOverSsh } = await import('./ssh-fallback.js')
      const report = await reportOverSsh(unreachable.node, ssh, Math.min(timeoutMs, 15_000))
      this.init.log.info({ event: 'ssh_fallback', peer: unreachable.node.name, host: ssh.host, kind }, 'report obtained over SSH')
      return { node: unreachable.node, outcome: 'ok', via: 'ssh', report: { ...report, issues: [`${unreachable.node.name}: ${kind} obtained over SSH (${ssh.user}@${ssh.host}); mesh unreachable: ${meshReason}`, ...report.issues] } }
    } catch (err) {
      unreachable.report.issues.push(`${unreachable.node.name}: SSH fallback failed: ${errorMessage(err)}`)
      return unreachable
    }
  }
}

function countBy (values: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const v of values) out[v] = (out[v] ?? 0) + 1
  return out
}

function recommend (node: NodeEntry, report: NodeReport, outcome: TargetOutcome, config: MeshConfig): string[] {
  const out: string[] = []
  if (report.status === 'offline') {
    out.push(`Check that aitbc-mesh runs on ${node.name} (systemctl status aitbc-mesh) and that TCP port ${portOf(node.addr) ?? 7070} on it is reachable from ${config.node.name}.`)
  } else if (outcome === 'timed_out') {
    out.push(`${node.name} is heartbeating but did not answer in time; check its load and journal (journalctl -u aitbc-mesh).`)
  }
  if (report.issues.some(i => /rpc health|block_height: GET|mempool_size: GET/.test(i))) {
    out.push(`Check the blockchain node on ${node.name} (systemctl status ${AITBC_NODE_UNIT} ${AITBC_RPC_UNIT}) and its RPC.`)
  }
  if (report.issues.some(i => /: rpc: rate-limited/.test(i))) {
    out.push(`The blockchain RPC on ${node.name} answers HTTP 429 to its local clients (about ${AITBC_RPC_RATE_LIMIT_PER_MINUTE} calls a minute per address and handler): find the client calling it most (journalctl -u ${AITBC_RPC_UNIT}); aitbc-mesh waits and resumes by itself.`)
  }
  if (report.issues.some(i => /service_uptime: .* is (inactive|failed|activating|deactivating)/.test(i))) {
    out.push(`Start the blockchain service on ${node.name} (systemctl start ${config.node.name === node.name && config.probes.services.length > 0 ? config.probes.services.join(' ') : `${AITBC_NODE_UNIT} ${AITBC_RPC_UNIT}`}).`)
  }
  if (report.issues.some(i => /lagging/.test(i))) {
    out.push(`Catch ${node.name} up: aitbc-mesh sync --type blockchain --target ${node.name}.`)
  }
  return out
}

function portOf (addr: string | undefined): string | undefined {
  return addr == null ? undefined : /\/tcp\/(\d+)/.exec(addr)?.[1]
}
