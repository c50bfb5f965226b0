import type { NodeEntry } from '../../config/config.js'
import { errorMessage, TimeoutError, UnreachableError, UsageError } from '../../errors.js'
import type { ActionResult } from '../actions.js'
import { selfRequester } from '../authority.js'
import { heartbeatEntry } from '../heartbeat-entry.js'
import { reachablePeer } from '../reachable.js'
import { nodeCount, type NodeStatusEntry, type TargetOutcome } from '../result.js'
import { isSelf, type OperationDeps, type OperationKindHandler, type OperationRun } from './context.js'

interface ActionOutcome { outcome: TargetOutcome, result: ActionResult | null, reason: string }

function outcomeOf (result: ActionResult): ActionOutcome {
  return { outcome: result.state === 'ok' ? 'ok' : result.state === 'timed_out' ? 'timed_out' : 'failed', result, reason: result.reason }
}

/** Runs the action on one target: this node itself, or a peer over the mesh. Never throws. */
async function actionOn (deps: OperationDeps, { request, operationId, timeoutMs }: OperationRun, node: NodeEntry): Promise<ActionOutcome> {
  const action = request.action!
  if (isSelf(deps, node)) return outcomeOf(await deps.local.action(action, request.force, timeoutMs, selfRequester(deps.config, operationId, request.override_quorum)))
  const reachable = reachablePeer(deps.peers, node.name)
  if (!reachable.reachable) return { outcome: 'unreachable', result: null, reason: `offline: ${reachable.reason}` }
  try {
    return outcomeOf(await deps.protocol.requestAction(reachable.peer.peerId, node.name, action, request.force, operationId, timeoutMs, request.override_quorum))
  } catch (err) {
    return { outcome: err instanceof TimeoutError ? 'timed_out' : err instanceof UnreachableError ? 'unreachable' : 'failed', result: null, reason: errorMessage(err) }
  }
}

/**
 * coordinate: runs a named action on each target, from the target's own config. In parallel,
 * or with `sequential` one node after the other, stopping at the first failure (the rest: skipped).
 */
export const coordinateKind: OperationKindHandler = {
  check: request => {
    if (request.action == null) throw new UsageError('operation: "action" is required for coordinate (the name of an action in the targets\' configs)')
  },
  run: async (deps, run) => {
    const { request, targets, progress } = run
    const action = request.action!
    const results = new Map<string, ActionOutcome>()
    const runOne = async (node: NodeEntry): Promise<void> => {
      const entry = await actionOn(deps, run, node)
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
        ...heartbeatEntry(deps.peers, node, isSelf(deps, node)),
        action: entry == null
          ? { state: 'skipped', reason: 'not run: an earlier node failed (--sequential)' }
          : entry.result ?? { state: entry.outcome, reason: entry.reason }
      }
      if (entry == null) issues.push(`${node.name}: ${action}: skipped after an earlier failure`)
      else if (entry.outcome !== 'ok') issues.push(`${node.name}: ${action}: ${entry.result?.state ?? entry.outcome}: ${entry.reason}`)
    }
    const entries = [...results.values()]
    const refused = (pattern: RegExp): boolean => entries.some(r => r.result?.state === 'refused' && pattern.test(r.reason))
    const ok = entries.filter(r => r.outcome === 'ok').length
    const self = deps.config.node.name
    return {
      summary: `Action ${action} on ${nodeCount(targets.length)} (${request.target_node}${request.sequential ? ', sequential' : ''}): ${ok} succeeded${ok < targets.length ? `, ${targets.length - ok} did not` : ''}.`,
      nodes_status: nodesStatus,
      issues,
      recommendations: [
        ...refused(/is destructive; run it with --force/) ? [`${action} is destructive on some targets; run it again with --force once you accept that.`] : [],
        ...refused(/^no quorum/) ? ['Some targets do not see a majority of the mesh; heal the partition (see `aitbc-mesh peers` there), or repeat with --override-quorum as a deliberate decision.'] : [],
        ...refused(/is not run here for/) ? [`Some targets do not run ${action} for ${self}; run it from a node they allow, or add ${self} to actions.${action}.allowFrom in their config.`] : []
      ],
      succeeded: ok,
      asked: targets.length,
      answered: ok,
      targets: targets.length
    }
  }
}
