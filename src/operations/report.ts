import type { Role } from '../config/schema.js'

export type NodeStatus = 'online' | 'offline' | 'degraded'

export interface HealthCheck {
  name: string
  ok: boolean
  detail: string
}

/** What one node reports about itself (or what we know when it cannot report). */
export interface NodeReport {
  node: string
  role: Role
  status: NodeStatus
  block_height: number | null
  mempool_size: number | null
  p2p_connections: number
  service_uptime: string | null
  last_sync: number | null
  issues: string[]
  checks: HealthCheck[]
  daemon_uptime_ms: number
  probed_at_ms: number | null
}
