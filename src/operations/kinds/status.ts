import type { MeshConfig, NodeEntry } from '../../config/config.js'
import { AITBC_NODE_UNIT, AITBC_RPC_RATE_LIMIT_PER_MINUTE, AITBC_RPC_UNIT, DEFAULT_PORT } from '../../constants.js'
import type { ReportKind } from '../local-executor.js'
import type { NodeReport } from '../report.js'
import { nodeCount, type NodeStatusEntry, type TargetOutcome } from '../result.js'
import { targetReport } from '../target-report.js'
import type { OperationKindHandler } from './context.js'

/**
 * status and health: each target's own report. status succeeds for a target that reported;
 * health only for a target whose checks all pass.
 */
export function reportsKind (kind: ReportKind): OperationKindHandler {
  return {
    check: () => {},
    run: async (deps, { request, targets, operationId, timeoutMs, progress }) => {
      const results = await Promise.all(targets.map(async node => {
        const result = await targetReport(deps, node, kind, operationId, timeoutMs)
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
          store: report.store,
          ...(kind === 'health' ? { checks: report.checks } : {})
        }
        issues.push(...report.issues)
        for (const rec of recommend(node, report, outcome, deps.config)) recommendations.add(rec)
      }

      const counts = countBy(results.map(r => r.report.status))
      return {
        summary: `${kind === 'health' ? 'Health' : 'Status'} of ${nodeCount(results.length)} (${request.target_node}): ` +
          (['online', 'degraded', 'offline'] as const).filter(s => counts[s] != null).map(s => `${counts[s]} ${s}`).join(', ') + '.',
        nodes_status: nodesStatus,
        issues,
        recommendations: [...recommendations],
        succeeded: results.filter(r => r.outcome === 'ok' && (kind === 'status' || r.report.status === 'online')).length,
        asked: results.length,
        answered: results.filter(r => r.outcome === 'ok').length,
        targets: results.length
      }
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
    out.push(`Check that aitbc-mesh runs on ${node.name} (systemctl status aitbc-mesh) and that TCP port ${portOf(node.addr) ?? DEFAULT_PORT} on it is reachable from ${config.node.name}.`)
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
