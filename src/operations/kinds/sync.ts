import type { NodeEntry } from '../../config/config.js'
import { SYNC_REPORT_TIMEOUT_MS } from '../../constants.js'
import { errorMessage, ProtocolError, UnreachableError, UsageError } from '../../errors.js'
import type { RejectionLog } from '../../mesh/rejection-log.js'
import { selfRequester } from '../authority.js'
import { AnswerUnreadableError } from '../operation-protocol.js'
import { reachablePeer } from '../reachable.js'
import { nodeCount, type NodeStatusEntry } from '../result.js'
import { parseStepAnswer, StepAnswerError, type StepAnswers } from '../sync/answers.js'
import { runSync } from '../sync/sync-operation.js'
import type { SyncStep } from '../sync/steps.js'
import { targetReport } from '../target-report.js'
import { isSelf, type OperationDeps, type OperationKindHandler, type OperationRun } from './context.js'

/**
 * Runs sync `step` on `node` (this node itself, or a peer over the mesh) and checks the answer
 * before it is used: an answer the step cannot give fails that node's step with the reason,
 * and a peer's is logged through the rejection log.
 */
async function stepOn<S extends SyncStep> (deps: OperationDeps, rejections: RejectionLog, run: OperationRun, node: NodeEntry, step: S, payload: unknown, force: boolean): Promise<StepAnswers[S]> {
  const { operationId, timeoutMs } = run
  const reject = (category: string, detail: string): void => {
    rejections.reject('sync_answer_rejected', node.name, category, { step, operationId, detail }, 'refused a sync step answer from a peer')
  }
  const self = isSelf(deps, node)
  let answer: unknown
  if (self) {
    answer = await deps.local.sync(step, payload, force, timeoutMs, selfRequester(deps.config, operationId, run.request.override_quorum))
  } else {
    const reachable = reachablePeer(deps.peers, node.name)
    if (!reachable.reachable) throw new UnreachableError(`${node.name} is offline: ${reachable.reason}`)
    try {
      answer = await deps.protocol.requestSync(reachable.peer.peerId, node.name, step, payload, force, operationId, timeoutMs, run.request.override_quorum)
    } catch (err) {
      if (err instanceof AnswerUnreadableError) reject(`${step} (answer): unreadable`, errorMessage(err))
      throw err
    }
  }
  try {
    return parseStepAnswer(step, payload, answer)
  } catch (err) {
    if (!(err instanceof StepAnswerError)) throw err
    // This node's own answers keep to the same bounds; one that does not is a bug here.
    if (self) deps.log.error({ event: 'sync_answer_invalid', step, operationId, detail: err.message }, 'this node\'s own sync step answer is out of bounds')
    else reject(err.category, err.message)
    throw new ProtocolError(`invalid answer from ${node.name} to ${step}: ${err.message}`)
  }
}

/** sync: compares the targets with each other and the genesis node; each repairs itself with its own configured means. */
export function syncKind (rejections: RejectionLog): OperationKindHandler {
  return {
    check: request => {
      if (request.sync_type == null) throw new UsageError('operation: "sync_type" is required for sync (blockchain, mempool, configuration, git or all)')
    },
    run: async (deps, run) => {
      const { request, targets, progress, operationId, timeoutMs } = run
      const outcome = await runSync({
        config: deps.config,
        step: async (node, step, payload, force) => await stepOn(deps, rejections, run, node, step, payload, force),
        report: async node => (await targetReport(deps, node, 'health', operationId, Math.min(timeoutMs, SYNC_REPORT_TIMEOUT_MS), false)).report,
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
      const offline = targets.filter(t => outcome.reports.get(t.name)?.status === 'offline')
      return {
        summary: `Sync ${request.sync_type ?? 'all'} on ${nodeCount(targets.length)} (${request.target_node}): ${requested.map(([k, v]) => `${k} ${v === true ? 'in sync' : 'not in sync'}`).join(', ')}.`,
        nodes_status: nodesStatus,
        issues: [...offline.flatMap(t => outcome.reports.get(t.name)?.issues ?? []), ...outcome.issues],
        recommendations: [
          ...outcome.issues.some(i => /--force/.test(i)) ? ['Run the sync again with --force to take the upstream / genesis state; the output lists what that drops.'] : [],
          ...outcome.recommendations
        ],
        succeeded: requested.filter(([, v]) => v === true).length,
        asked: requested.length,
        answered: targets.length - offline.length,
        targets: targets.length,
        syncDetails: {
          blockchain_synced: outcome.details.blockchain,
          mempool_synced: outcome.details.mempool,
          configuration_synced: outcome.details.configuration,
          git_synced: outcome.details.git
        }
      }
    }
  }
}
