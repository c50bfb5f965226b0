import type { PeerState, PeerTable } from '../mesh/peer-table.js'

export type Reachability =
  | { reachable: true, peer: PeerState }
  | { reachable: false, reason: string }

/**
 * Whether to ask the peer `name` over the mesh now. A peer known offline is answered at once
 * instead of waiting for a dial that cannot succeed; a peer a config reload removed after the
 * operation resolved its targets is no longer in the table, and is unreachable too.
 *
 * Offline means no heartbeat within the offline window, whether or not a connection is still
 * open: across a partition (packets dropped, no reset) the connection stays "open" until its
 * pings time out, and a request sent on it would only wait for the operation's timeout. Only a
 * connected peer never heard from yet (just started) is still asked.
 */
export function reachablePeer (peers: Pick<PeerTable, 'get' | 'liveness'>, name: string): Reachability {
  const peer = peers.get(name)
  if (peer == null) return { reachable: false, reason: 'not in the peer table' }
  const verdict = peers.liveness(peer)
  if (verdict.liveness !== 'offline') return { reachable: true, peer }
  if (peer.connected && peer.lastHeartbeatAt == null) return { reachable: true, peer }
  const reason = verdict.reason ?? 'unreachable'
  return { reachable: false, reason: peer.connected ? `unreachable: ${reason} (its connection is open but silent)` : reason }
}
