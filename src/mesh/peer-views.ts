import type { PeerId } from '@libp2p/interface'
import { PEER_LATENCY_REUSE_MS, PEER_PING_TIMEOUT_MS } from '../constants.js'
import type { MeshLibp2p } from './libp2p.js'
import type { PeerTable } from './peer-table.js'

/** One node as `peers`, the status page and `doctor` show it. */
export interface PeerView {
  name: string
  role: string
  peerId: string
  self: boolean
  connected: boolean
  status: 'online' | 'degraded' | 'offline'
  reason: string | null
  addrs: string[]
  latency_ms: number | null
  since: string | null
  last_heartbeat: string | null
  last_heartbeat_age_ms: number | null
  /** The node's clock minus ours, from its last heartbeat's send time (transit counted as half the round trip). */
  clock_skew_ms: number | null
  block_height: number | null
}

export interface PeerViewsInit {
  node: { name: string, role: string }
  libp2p: MeshLibp2p
  peers: PeerTable
  startedAt: number
}

/** Every node of the mesh as this node sees it, itself first. */
export class PeerViews {
  private readonly latencies = new Map<string, { at: number, value: Promise<number | null> }>()

  constructor (private readonly init: PeerViewsInit) {}

  async all (): Promise<PeerView[]> {
    const { node, libp2p, peers, startedAt } = this.init
    const now = Date.now()
    const self: PeerView = {
      name: node.name,
      role: node.role,
      peerId: libp2p.peerId.toString(),
      self: true,
      connected: true,
      status: 'online',
      reason: null,
      addrs: libp2p.getMultiaddrs().map(a => a.toString()),
      latency_ms: 0,
      since: new Date(startedAt).toISOString(),
      last_heartbeat: null,
      last_heartbeat_age_ms: null,
      clock_skew_ms: 0,
      block_height: null
    }
    const others = await Promise.all(peers.all().map(async (state): Promise<PeerView> => {
      // One snapshot of the peer, taken with its verdict: the ping below can take seconds on a
      // dead link, and the connection may close meanwhile (connected and status would disagree).
      const verdict = peers.liveness(state, now)
      const connected = state.connected
      const since = connected ? state.connectedSince : state.disconnectedAt
      const addrs = connected && state.remoteAddr != null ? [state.remoteAddr] : [state.configuredAddr]
      const lastHeartbeatAt = state.lastHeartbeatAt
      const blockHeight = state.lastHeartbeat?.blockHeight ?? null
      const clock = peers.senderClock(state)
      const latency = connected ? await this.latencyTo(state.peerId) : null
      return {
        name: state.name,
        role: state.role,
        peerId: state.peerId.toString(),
        self: false,
        connected,
        status: verdict.liveness,
        reason: verdict.reason ?? null,
        addrs,
        latency_ms: latency,
        since: since != null ? new Date(since).toISOString() : null,
        last_heartbeat: lastHeartbeatAt != null ? new Date(lastHeartbeatAt).toISOString() : null,
        last_heartbeat_age_ms: lastHeartbeatAt != null ? now - lastHeartbeatAt : null,
        clock_skew_ms: clock != null ? Math.round(clock.sentAtMs + (latency ?? 0) / 2 - clock.receivedAt) : null,
        block_height: blockHeight
      }
    }))
    return [self, ...others]
  }

  /**
   * Round-trip time to a peer: the connection monitor's last ping, else one ping of our own,
   * shared by concurrent callers and reused for a while (ping allows one stream per peer).
   */
  private async latencyTo (peerId: PeerId): Promise<number | null> {
    const { libp2p } = this.init
    const rtt = libp2p.getConnections(peerId).map(c => c.rtt).find((r): r is number => typeof r === 'number')
    if (rtt != null) return Math.round(rtt * 10) / 10
    const key = peerId.toString()
    const cached = this.latencies.get(key)
    if (cached != null && Date.now() - cached.at < PEER_LATENCY_REUSE_MS) return await cached.value
    const value = libp2p.services.ping.ping(peerId, { signal: AbortSignal.timeout(PEER_PING_TIMEOUT_MS) }).catch(() => null)
    this.latencies.set(key, { at: Date.now(), value })
    return await value
  }
}
