import type { PeerId } from '@libp2p/interface'
import type { Role } from '../config/schema.js'
import { CLOCK_OFFSET_SAMPLES, RELAYED_HEARTBEAT_GRACE_MS, SENT_AFTER_CLOSE_MARGIN_MS } from '../constants.js'

export type Liveness = 'online' | 'degraded' | 'offline'

export interface HeartbeatInfo {
  seq: bigint
  startedAtMs: number
  sentAtMs: number
  healthy: boolean
  blockHeight?: number
  p2pConnections: number
  /** Names of the nodes the sender was connected to. */
  connected?: string[]
}

export interface PeerState {
  name: string
  role: Role
  peerId: PeerId
  configuredAddr: string
  connected: boolean
  connectedSince?: number
  disconnectedAt?: number
  remoteAddr?: string
  lastHeartbeatAt?: number
  lastHeartbeat?: HeartbeatInfo
  /** Arrival minus send time of the latest heartbeats that came over the direct connection, oldest first. */
  directOffsets?: number[]
  /** When a heartbeat last came over the direct connection (the first copy to arrive, passed on by the node itself). */
  lastDirectHeartbeatAt?: number
  /** The latest heartbeat of this node that was refused (out of range), and why. */
  refusedHeartbeat?: RefusedHeartbeat
}

export interface RefusedHeartbeat {
  /** When it arrived (our clock). */
  at: number
  /** What was out of range, for the liveness reason. */
  detail: string
  /** Its send time, when it is a usable number: the node's clock is still worth reporting. */
  sentAtMs?: number
}

export interface ConfiguredPeer { name: string, role: Role, peerId: PeerId, addr: string }

export interface PeerTableChanges {
  added: PeerState[]
  removed: PeerState[]
  /** Kept peers whose configured address changed. */
  readdressed: PeerState[]
}

export interface LivenessVerdict {
  liveness: Liveness
  reason?: string
}

/** What this node knows of every other configured node; the single source of liveness. */
export class PeerTable {
  private readonly byId = new Map<string, PeerState>()
  private readonly byName = new Map<string, PeerState>()

  /**
   * `localStallMs`: how long this daemon's own event loop was stalled lately (LocalStallMonitor);
   * the offline window is stretched by it, since heartbeats wait unread while the loop is stalled.
   */
  constructor (peers: ConfiguredPeer[], private readonly offlineAfterMs: number, private readonly localStallMs: (now: number) => number = () => 0) {
    for (const peer of peers) this.add(peer)
  }

  private add (peer: ConfiguredPeer): PeerState {
    const state: PeerState = { name: peer.name, role: peer.role, peerId: peer.peerId, configuredAddr: peer.addr, connected: false }
    this.byId.set(peer.peerId.toString(), state)
    this.byName.set(peer.name, state)
    return state
  }

  /**
   * Brings the table in line with a new peer list (a config reload). A peer is the same one if
   * its peer id and name are unchanged; it keeps its connection and heartbeat state, taking a
   * new role or address. Anything else is a removal plus an addition.
   */
  apply (peers: ConfiguredPeer[]): PeerTableChanges {
    const changes: PeerTableChanges = { added: [], removed: [], readdressed: [] }
    const next = new Map(peers.map(p => [p.peerId.toString(), p]))
    for (const [id, state] of this.byId) {
      const peer = next.get(id)
      if (peer == null || peer.name !== state.name) {
        this.byId.delete(id)
        this.byName.delete(state.name)
        changes.removed.push(state)
      }
    }
    for (const [id, peer] of next) {
      const state = this.byId.get(id)
      if (state == null) {
        changes.added.push(this.add(peer))
        continue
      }
      state.role = peer.role
      if (state.configuredAddr !== peer.addr) {
        state.configuredAddr = peer.addr
        changes.readdressed.push(state)
      }
    }
    return changes
  }

  all (): PeerState[] {
    return [...this.byName.values()]
  }

  get (name: string): PeerState | undefined {
    return this.byName.get(name)
  }

  getByPeerId (peerId: PeerId | string): PeerState | undefined {
    return this.byId.get(peerId.toString())
  }

  markConnected (peerId: PeerId, remoteAddr: string | undefined, now = Date.now()): PeerState | undefined {
    const state = this.getByPeerId(peerId)
    if (state == null) return undefined
    if (!state.connected) state.connectedSince = now
    state.connected = true
    if (remoteAddr != null) state.remoteAddr = remoteAddr
    return state
  }

  markDisconnected (peerId: PeerId, now = Date.now()): PeerState | undefined {
    const state = this.getByPeerId(peerId)
    if (state == null) return undefined
    state.connected = false
    state.disconnectedAt = now
    delete state.connectedSince
    return state
  }

  /** `direct`: it came over the direct connection (passed on by the sender itself), not relayed. */
  recordHeartbeat (peerId: PeerId, info: HeartbeatInfo, now = Date.now(), direct = false): PeerState | undefined {
    const state = this.getByPeerId(peerId)
    if (state == null) return undefined
    // Any direct heartbeat, even an old one, bounds the sender's offset from above.
    if (direct) {
      state.lastDirectHeartbeatAt = now
      state.directOffsets ??= []
      state.directOffsets.push(now - info.sentAtMs)
      if (state.directOffsets.length > CLOCK_OFFSET_SAMPLES) state.directOffsets.shift()
    }
    const last = state.lastHeartbeat
    // A heartbeat from an earlier run of the sender, or an old one relayed late, says nothing new.
    if (last != null && (info.startedAtMs < last.startedAtMs || (info.startedAtMs === last.startedAtMs && info.seq <= last.seq))) return state
    state.lastHeartbeat = info
    state.lastHeartbeatAt = now
    return state
  }

  /** A heartbeat that names this peer and is signed by it, but was refused: it does not count. */
  noteRefusedHeartbeat (peerId: PeerId, refused: RefusedHeartbeat): void {
    const state = this.getByPeerId(peerId)
    if (state != null) state.refusedHeartbeat = refused
  }

  /**
   * The node's clock as its latest heartbeat showed it, accepted or refused (a node refused for
   * its clock is the one whose skew matters most): its send time and when it arrived here.
   */
  senderClock (state: PeerState): { sentAtMs: number, receivedAt: number } | undefined {
    const refused = state.refusedHeartbeat
    if (refused?.sentAtMs != null && refused.at > (state.lastHeartbeatAt ?? -Infinity)) return { sentAtMs: refused.sentAtMs, receivedAt: refused.at }
    if (state.lastHeartbeat != null && state.lastHeartbeatAt != null) return { sentAtMs: state.lastHeartbeat.sentAtMs, receivedAt: state.lastHeartbeatAt }
    return undefined
  }

  liveness (state: PeerState, now = Date.now()): LivenessVerdict {
    const verdict = this.heartbeatLiveness(state, now)
    // An offline node whose heartbeats arrive but are refused: say why, not just "no heartbeat".
    const refused = state.refusedHeartbeat
    if (verdict.liveness === 'offline' && refused != null && now - refused.at <= this.offlineAfterMs && refused.at > (state.lastHeartbeatAt ?? -Infinity)) {
      return { liveness: 'offline', reason: `heartbeats refused: ${refused.detail}` }
    }
    return verdict
  }

  private heartbeatLiveness (state: PeerState, now: number): LivenessVerdict {
    if (state.lastHeartbeatAt == null) {
      return { liveness: 'offline', reason: state.connected ? 'connected, no heartbeat received yet' : 'never seen since this daemon started' }
    }
    const age = now - state.lastHeartbeatAt
    if (age > this.offlineAfterMs + this.localStallMs(now)) {
      return { liveness: 'offline', reason: `no heartbeat for ${(age / 1000).toFixed(1)} s` }
    }
    // The direct connection closed: only a heartbeat sent after the close (relayed by another
    // node) still proves the node alive.
    if (!state.connected && state.disconnectedAt != null && !this.sentAfter(state, state.disconnectedAt)) {
      return { liveness: 'offline', reason: `connection lost ${((now - state.disconnectedAt) / 1000).toFixed(1)} s ago` }
    }
    if (state.lastHeartbeat?.healthy === false) return { liveness: 'degraded', reason: 'the node reports a failing probe' }
    return { liveness: 'online' }
  }

  /**
   * Whether the latest heartbeat was sent after `at` (our clock): its send time plus the sender's
   * offset, not its arrival, which a busy relay can delay past the close. Without an offset, it
   * must have arrived well after.
   */
  private sentAfter (state: PeerState, at: number): boolean {
    if (state.lastHeartbeat == null || state.lastHeartbeatAt == null) return false
    const offsets = state.directOffsets ?? []
    if (offsets.length === 0) return state.lastHeartbeatAt >= at + RELAYED_HEARTBEAT_GRACE_MS
    return state.lastHeartbeat.sentAtMs + Math.min(...offsets) > at + SENT_AFTER_CLOSE_MARGIN_MS
  }

  /** Highest block height among nodes currently heartbeating, for lag detection. */
  highestPeerHeight (now = Date.now()): { name: string, height: number } | undefined {
    let best: { name: string, height: number } | undefined
    for (const state of this.byName.values()) {
      const height = state.lastHeartbeat?.blockHeight
      if (height == null || this.liveness(state, now).liveness === 'offline') continue
      if (best == null || height > best.height) best = { name: state.name, height }
    }
    return best
  }
}
