import { allNodes } from '../../config/config.js'
import { MESSAGE_OPERATION_SETTLE_MS } from '../../constants.js'
import { UsageError } from '../../errors.js'
import { deliveryCounts, isReceipted } from '../../messaging/message.js'
import { waitSucceeded } from '../../messaging/messaging.js'
import { heartbeatEntry } from '../heartbeat-entry.js'
import { nodeCount, type NodeStatusEntry } from '../result.js'
import type { OperationKindHandler } from './context.js'

/** message: sends the message with a TTL of the operation's timeout and waits for every target's receipt. */
export const messageKind: OperationKindHandler = {
  check: (request, deps) => {
    if (deps.messaging == null) throw new UsageError('operation "message" is not available on this daemon')
    if (request.message == null) throw new UsageError('operation: "message" is required for the message operation')
  },
  run: async (deps, { request, timeoutMs }) => {
    const messaging = deps.messaging!
    const ttl = Math.max(1, Math.ceil(request.timeout))
    const kind = request.kind ?? 'text'
    const sent = request.target_capability != null
      ? await messaging.sendToCapability({ to_capability: request.target_capability, body: request.message, kind, ttl })
      : await messaging.send({ to: request.target_node, body: request.message, kind, ttl })
    if ('outcome' in sent) {
      return {
        summary: `Message to capability ${request.target_capability!}: no candidate: ${sent.reason}.`,
        nodes_status: {},
        issues: [`no candidate: ${sent.reason}`],
        recommendations: ['See aitbc-mesh agents list for the agents registered and their capabilities.'],
        succeeded: 0,
        asked: 1,
        answered: 0,
        targets: 1,
        messageDelivery: { sent: 0, delivered: 0, processed: 0, failed: 0 }
      }
    }
    // The TTL equals the timeout, so every target is final by then (allow the expiry sweep a moment).
    const message = await messaging.wait(sent.id, timeoutMs + MESSAGE_OPERATION_SETTLE_MS)
    const nodesStatus: Record<string, NodeStatusEntry> = {}
    const issues: string[] = []
    const nodes = allNodes(deps.config)
    for (const [name, delivery] of Object.entries(message.targets)) {
      // A node a reload removed since the message was sent is no longer configured; it was a follower or the genesis node, unknown now.
      const node = nodes.find(n => n.name === name) ?? { name, role: 'follower' as const }
      nodesStatus[name] = {
        ...heartbeatEntry(deps.peers, node, name === deps.config.node.name),
        delivery: {
          state: delivery.state,
          ...(delivery.reason != null ? { reason: delivery.reason } : {}),
          ...(delivery.receipt_at != null ? { receipt_at: new Date(delivery.receipt_at).toISOString() } : {}),
          ...(delivery.agent_id != null ? { agent_id: delivery.agent_id } : {}),
          ...(delivery.exit_code !== undefined ? { exit_code: delivery.exit_code, output_tail: delivery.output_tail ?? '' } : {})
        }
      }
      if (!isReceipted(delivery.state)) issues.push(`${name}: message ${message.id}: ${delivery.state}${delivery.reason != null ? `: ${delivery.reason}` : ''}`)
    }
    const counts = deliveryCounts([message])
    if (message.route != null) {
      // Routed: one target at a time; it succeeded when the one holding it now has it.
      const ok = waitSucceeded(message, false)
      const node = message.route.tried[message.route.tried.length - 1]!
      return {
        summary: `Message ${message.id} to capability ${message.route.capability}: ${ok ? 'delivered to' : message.route.state === 'exhausted' ? 'no candidate took it, the last tried being' : 'not delivered to'} agent ${message.targets[node]?.agent_id ?? '?'} on ${node} (${message.route.tried.length} node(s) tried).`,
        nodes_status: nodesStatus,
        issues,
        recommendations: ok ? [] : [`See aitbc-mesh message ${message.id} for the path taken.`],
        succeeded: ok ? 1 : 0,
        asked: 1,
        answered: ok ? 1 : 0,
        targets: 1,
        messageDelivery: counts
      }
    }
    return {
      summary: `Message ${message.id} to ${request.target_node}: delivered to ${counts.delivered} of ${nodeCount(counts.sent)}${counts.failed > 0 ? `, ${counts.failed} failed` : ''}.`,
      nodes_status: nodesStatus,
      issues,
      recommendations: counts.failed > 0 ? [`See aitbc-mesh message ${message.id} for each node's state; an offline node receives messages sent to it when it returns within their TTL.`] : [],
      succeeded: counts.delivered,
      asked: counts.sent,
      answered: counts.delivered,
      targets: counts.sent,
      messageDelivery: counts
    }
  }
}
