import type { Role } from '../config/schema.js'
import type { DurabilityView } from '../store/durability.js'

export type NodeStatus = 'online' | 'offline' | 'degraded'

/**
 * A check's state beyond ok/failed: `rate-limited` (the RPC answered HTTP 429; the probe waits
 * out its Retry-After), `no-block` (the chain has no block yet), `stale` (the last probe is too
 * old). None of them but `failed` and `stale` makes the node degraded.
 */
export const CHECK_STATES = ['ok', 'failed', 'rate-limited', 'no-block', 'stale', 'not-configured'] as const
export type CheckState = typeof CHECK_STATES[number]

export interface HealthCheck {
  name: string
  ok: boolean
  detail: string
  state?: CheckState
}

/** One chain's values as the node's RPC reports them. */
export interface ChainReport {
  block_height: number | null
  mempool_size: number | null
  /** The count reached MEMPOOL_PROBE_LIMIT: there are at least mempool_size pending transactions. */
  mempool_at_least: boolean
}

/** The node's store and what an acknowledged write survives there. */
export interface StoreReport {
  kind: 'redis' | 'embedded'
  durability: DurabilityView
}

/** What one node reports about itself (or what we know when it cannot report). */
export interface NodeReport {
  node: string
  role: Role
  status: NodeStatus
  /** The first chain's values (see chains). */
  block_height: number | null
  mempool_size: number | null
  p2p_connections: number
  service_uptime: string | null
  last_sync: number | null
  issues: string[]
  checks: HealthCheck[]
  daemon_uptime_ms: number
  probed_at_ms: number | null
  /** Per chain id, in the order probed (probes.chainId, else the RPC's first supported chain). */
  chains: Record<string, ChainReport>
  /** Null when unknown (an older daemon, a node that did not answer, a one-off probe). */
  store: StoreReport | null
}
