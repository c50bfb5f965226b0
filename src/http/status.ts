import { STATUS_BODY_PREVIEW_CHARS, STATUS_MAX_AGENTS, STATUS_RECENT_MESSAGES, STATUS_RECENT_OPERATIONS } from '../constants.js'
import type { MeshView } from '../mesh/membership.js'
import type { PeerView } from '../mesh/peer-views.js'
import type { OutgoingMessage } from '../messaging/message.js'
import type { PeerState } from '../mesh/peer-table.js'
import type { OperationRecord } from '../operations/op-log.js'
import type { AgentRecord } from '../registry/agent.js'
import type { DurabilityView } from '../store/durability.js'

/** What the HTTP service reads from the daemon: the same functions the control socket uses. */
export interface StatusSource {
  node: { name: string, role: string }
  heartbeatIntervalMs: number
  startedAt: number
  /** Every node, this one first, as `aitbc-mesh peers` shows them. */
  peerViews: () => Promise<PeerView[]>
  /** The peer table's entries (their last heartbeats carry the nodes each one is connected to). */
  peers: () => PeerState[]
  /** Which configured nodes this node reaches and whether they are a majority. */
  meshView: () => MeshView
  /** This node's own probe verdict. */
  localHealth: () => { healthy: boolean, blockHeight?: number }
  storeHealth: () => { ok: boolean, reason?: string }
  storeKind: string
  /** What an acknowledged write survives; `issue` when it makes the node degraded (store.durability: degraded). */
  storeDurability: () => { view: DurabilityView, issue?: string }
  /** Agents, best first (AITBC discovery order). */
  agents: () => AgentRecord[]
  recentMessages: (limit: number) => OutgoingMessage[]
  recentOperations: (limit: number) => Promise<OperationRecord[]>
}

export interface StatusNode {
  name: string
  role: string
  self: boolean
  status: 'online' | 'degraded' | 'offline'
  reason: string | null
  connected: boolean
  block_height: number | null
  last_heartbeat_age_ms: number | null
  latency_ms: number | null
}

/** The status page's data: one JSON document, pushed on /events and served at /api/state. */
export interface StatusSnapshot {
  node: string
  role: string
  generated_at: string
  heartbeat_interval_ms: number
  store: { kind: string, ok: boolean, reason: string | null, durability: DurabilityView }
  /** Which side of a partition this node is on: reachable nodes, quorum and since when. */
  mesh_view: MeshView
  nodes: StatusNode[]
  /** Connections between nodes, each pair once (names sorted). */
  edges: Array<[string, string]>
  agents: Array<Pick<AgentRecord, 'agent_id' | 'agent_type' | 'status' | 'owner_node' | 'health_score' | 'last_heartbeat' | 'capabilities'>>
  agents_total: number
  messages: Array<{
    id: string
    to: string
    kind: string
    body: string
    truncated: boolean
    sent_at: string
    targets: Array<{ node: string, state: string, reason: string | null, receipt_ms: number | null, attempts: number }>
  }>
  operations: Array<{
    id: string
    operation: string
    target_node: string
    started_at: string
    finished_at: string | null
    result: string
    summary: string | null
  }>
}

/** The connections this node knows of: its own, and those each live peer's heartbeat reports. */
export function connectionEdges (self: string, peers: PeerState[], isLive: (state: PeerState) => boolean): Array<[string, string]> {
  const known = new Set([self, ...peers.map(p => p.name)])
  const edges = new Map<string, [string, string]>()
  const add = (a: string, b: string): void => {
    if (a === b || !known.has(a) || !known.has(b)) return
    const pair: [string, string] = a < b ? [a, b] : [b, a]
    edges.set(pair.join('\0'), pair)
  }
  for (const peer of peers) {
    if (peer.connected) add(self, peer.name)
    if (!isLive(peer)) continue
    // Edges to this node come from our own connection state, not from what peers last said.
    for (const other of peer.lastHeartbeat?.connected ?? []) if (other !== self) add(peer.name, other)
  }
  return [...edges.values()].sort((x, y) => x[0].localeCompare(y[0]) || x[1].localeCompare(y[1]))
}

function operationOf (record: OperationRecord): { operation: string, target: string } {
  const request = (record.request ?? {}) as { operation?: unknown, target_node?: unknown }
  return {
    operation: typeof request.operation === 'string' ? request.operation : 'unknown',
    target: typeof request.target_node === 'string' ? request.target_node : ''
  }
}

export async function buildSnapshot (source: StatusSource): Promise<StatusSnapshot> {
  const now = Date.now()
  const [views, operations] = await Promise.all([source.peerViews(), source.recentOperations(STATUS_RECENT_OPERATIONS)])
  const local = source.localHealth()
  const durability = source.storeDurability()
  const liveNames = new Set(views.filter(v => !v.self && v.status !== 'offline').map(v => v.name))
  const nodes: StatusNode[] = views.map(v => ({
    name: v.name,
    role: v.role,
    self: v.self,
    // This node is up (it answers); degraded when its own probes fail.
    status: v.self ? (local.healthy ? 'online' : 'degraded') : v.status,
    reason: v.self ? (local.healthy ? null : durability.issue ?? 'a local probe is failing') : v.reason,
    connected: v.connected,
    block_height: v.self ? local.blockHeight ?? null : v.block_height,
    last_heartbeat_age_ms: v.self ? 0 : v.last_heartbeat_age_ms,
    latency_ms: v.latency_ms
  }))
  const store = source.storeHealth()
  const agents = source.agents()
  return {
    node: source.node.name,
    role: source.node.role,
    generated_at: new Date(now).toISOString(),
    heartbeat_interval_ms: source.heartbeatIntervalMs,
    store: { kind: source.storeKind, ok: store.ok, reason: store.reason ?? null, durability: durability.view },
    mesh_view: source.meshView(),
    nodes,
    edges: connectionEdges(source.node.name, source.peers(), p => liveNames.has(p.name)),
    agents: agents.slice(0, STATUS_MAX_AGENTS).map(a => ({
      agent_id: a.agent_id,
      agent_type: a.agent_type,
      status: a.status,
      owner_node: a.owner_node,
      health_score: a.health_score,
      last_heartbeat: a.last_heartbeat,
      capabilities: a.capabilities
    })),
    agents_total: agents.length,
    messages: source.recentMessages(STATUS_RECENT_MESSAGES).map(m => ({
      id: m.id,
      to: m.to,
      kind: m.kind,
      body: m.body.slice(0, STATUS_BODY_PREVIEW_CHARS),
      truncated: m.body.length > STATUS_BODY_PREVIEW_CHARS,
      sent_at: new Date(m.sent_at).toISOString(),
      targets: Object.entries(m.targets).map(([node, t]) => ({
        node,
        state: t.state,
        reason: t.reason ?? null,
        receipt_ms: t.receipt_at != null ? t.receipt_at - m.sent_at : null,
        attempts: t.attempts
      }))
    })),
    operations: operations.map(r => {
      const { operation, target } = operationOf(r)
      const status = r.result?.validation_status
      const summary = r.result?.summary
      return {
        id: r.id,
        operation,
        target_node: target,
        started_at: r.started_at,
        finished_at: r.finished_at,
        result: r.error != null ? 'error' : r.finished_at == null ? 'running' : typeof status === 'string' ? status : 'unknown',
        summary: r.error ?? (typeof summary === 'string' ? summary : null)
      }
    })
  }
}
