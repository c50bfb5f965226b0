import type { NodeEntry } from '../config/config.js'
import { SSH_FALLBACK_TIMEOUT_MS } from '../constants.js'
import { errorMessage, TimeoutError } from '../errors.js'
import { isSelf, type OperationDeps } from './kinds/context.js'
import type { ReportKind } from './local-executor.js'
import { reachablePeer } from './reachable.js'
import type { NodeReport } from './report.js'
import type { TargetOutcome } from './result.js'

export interface TargetReport {
  node: NodeEntry
  outcome: TargetOutcome
  report: NodeReport
  /** Set when the report came over the SSH fallback instead of the mesh. */
  via?: 'ssh'
}

export function offlineReport (node: NodeEntry, reason: string): NodeReport {
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
    probed_at_ms: null,
    store: null
  }
}

/** A report for a target that is up but did not give one: degraded, with the reason. */
function failedReport (node: NodeEntry, kind: ReportKind, reason: string): NodeReport {
  return { ...offlineReport(node, reason), status: 'degraded', issues: [`${node.name}: ${kind} request failed: ${reason}`] }
}

/**
 * The report of `node`: this node's own from its probes, a peer's over the mesh, or with
 * `allowSsh` over the SSH fallback when the mesh cannot reach it. Never throws: a target that
 * cannot report gets an offline or degraded report with the reason.
 */
export async function targetReport (deps: OperationDeps, node: NodeEntry, kind: ReportKind, operationId: string, timeoutMs: number, allowSsh = true): Promise<TargetReport> {
  if (isSelf(deps, node)) {
    try {
      return { node, outcome: 'ok', report: await deps.local.report(kind, timeoutMs) }
    } catch (err) {
      return { node, outcome: err instanceof TimeoutError ? 'timed_out' : 'failed', report: failedReport(node, kind, errorMessage(err)) }
    }
  }
  const reachable = reachablePeer(deps.peers, node.name)
  if (!reachable.reachable) {
    const unreachable: TargetReport = { node, outcome: 'unreachable', report: offlineReport(node, reachable.reason) }
    return allowSsh ? await overSsh(deps, unreachable, kind, timeoutMs) : unreachable
  }
  const peer = reachable.peer
  try {
    const report = await deps.protocol.request(peer.peerId, { name: node.name, role: node.role }, kind, operationId, timeoutMs)
    return { node, outcome: 'ok', report }
  } catch (err) {
    const reason = errorMessage(err)
    const offline = deps.peers.liveness(peer).liveness === 'offline'
    const failed: TargetReport = {
      node,
      outcome: err instanceof TimeoutError ? 'timed_out' : offline ? 'unreachable' : 'failed',
      report: offline ? offlineReport(node, reason) : failedReport(node, kind, reason)
    }
    return allowSsh && failed.outcome !== 'failed' ? await overSsh(deps, failed, kind, timeoutMs) : failed
  }
}

/**
 * The opt-in SSH fallback, for a peer the mesh cannot reach and that has `ssh:` configured:
 * status and health only, and the result says it came over SSH.
 */
async function overSsh (deps: OperationDeps, unreachable: TargetReport, kind: ReportKind, timeoutMs: number): Promise<TargetReport> {
  const { node } = unreachable
  const ssh = deps.config.peers.find(p => p.name === node.name)?.ssh
  if (ssh == null) return unreachable
  const meshReason = unreachable.report.issues.join('; ')
  try {
    const { reportOverSsh } = await import('./ssh-fallback.js')
    const report = await reportOverSsh(node, ssh, Math.min(timeoutMs, SSH_FALLBACK_TIMEOUT_MS))
    deps.log.info({ event: 'ssh_fallback', peer: node.name, host: ssh.host, kind }, 'report obtained over SSH')
    return { node, outcome: 'ok', via: 'ssh', report: { ...report, issues: [`${node.name}: ${kind} obtained over SSH (${ssh.user}@${ssh.host}); mesh unreachable: ${meshReason}`, ...report.issues] } }
  } catch (err) {
    unreachable.report.issues.push(`${node.name}: SSH fallback failed: ${errorMessage(err)}`)
    return unreachable
  }
}
