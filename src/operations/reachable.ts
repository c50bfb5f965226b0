import type { PeerState, PeerTable } from '../mesh/peer-table.js'

export type Reachability =
  | { reachable: true, peer: PeerState }
  | { reachable: false, reason: string }

/**
 * Whether to ask the peer `name` over the mesh now. A peer known offline is answered at once
 * instead of waiting for a dial that cannot succeed; a peer a config reload removed after the
 * operation resolved its targets is no longer in the table, and is unreachable too.
 */
export function reachablePeer (peers: Pick<PeerTable, 'get' | 'liveness'>, name: string): Reachability {
  const peer = peers.get(name)
  if (peer == null) return { reachable: false, reason: 'not in the peer table' }
  const verdict = peers.liveness(peer)
  if (!peer.connected && verdict.liveness === 'offline') return { reachable: false, reason: verdict.reason ?? 'unreachable' }
  return { reachable: true, peer }
}
