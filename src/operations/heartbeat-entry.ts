import type { Role } from '../config/schema.js'
import type { PeerTable } from '../mesh/peer-table.js'
import type { NodeStatusEntry } from './result.js'

/**
 * What this node knows of a target without asking it (liveness and its last heartbeat), for
 * operations whose per-node answer is not a status report. `self`: the target is this node.
 */
export function heartbeatEntry (peers: Pick<PeerTable, 'get' | 'liveness' | 'all'>, node: { name: string, role: Role }, self: boolean): NodeStatusEntry {
  const peer = self ? undefined : peers.get(node.name)
  const heartbeat = peer?.lastHeartbeat
  return {
    role: node.role,
    // A peer a reload removed has no liveness left to read.
    status: self ? 'online' : peer == null ? 'offline' : peers.liveness(peer).liveness,
    block_height: heartbeat?.blockHeight ?? null,
    mempool_size: null,
    p2p_connections: self ? peers.all().filter(p => p.connected).length : heartbeat?.p2pConnections ?? 0,
    service_uptime: null,
    last_sync: null
  }
}
