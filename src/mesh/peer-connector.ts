import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { PeerId } from '@libp2p/interface'
import { DIAL_TIMEOUT_MS, PEER_DIALS_AT_ONCE, REDIAL_INITIAL_DELAY_MS, REDIAL_MAX_DELAY_MS, STABLE_CONNECTION_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { MeshLibp2p } from './libp2p.js'
import type { PeerState, PeerTable } from './peer-table.js'

interface DialState {
  attempts: number
  /** Failed dials since the last connection, and the last reason logged. */
  failures: number
  lastLoggedReason?: string
  connectedAt?: number
  timer?: NodeJS.Timeout
  dialing?: AbortController
}

/**
 * Keeps a connection to every configured peer: dials at start, redials after a loss with
 * exponential backoff (capped, with jitter), and never gives up while the daemon runs.
 */
export class PeerConnector {
  private readonly dials = new Map<string, DialState>()
  private running = false
  /** Dials in their handshake now, and those waiting for a turn (see PEER_DIALS_AT_ONCE). */
  private dialsInProgress = 0
  private readonly waitingForTurn: Array<() => void> = []

  constructor (private readonly libp2p: MeshLibp2p, private readonly peers: PeerTable, private readonly log: Logger) {}

  start (): void {
    this.running = true
    for (const peer of this.peers.all()) this.schedule(peer, 0)
  }

  stop (): void {
    this.running = false
    // Dials waiting for a turn see the stop and return.
    for (const resolve of this.waitingForTurn.splice(0)) resolve()
    for (const state of this.dials.values()) {
      clearTimeout(state.timer)
      state.dialing?.abort()
    }
    this.dials.clear()
  }

  /** A peer added by a reload: dial it now. */
  add (peer: PeerState): void {
    this.schedule(peer, 0)
  }

  /** A peer removed by a reload: no more dials. */
  forget (peerId: PeerId): void {
    const state = this.dials.get(peerId.toString())
    if (state == null) return
    clearTimeout(state.timer)
    state.dialing?.abort()
    this.dials.delete(peerId.toString())
  }

  /** A peer whose address changed: if it is not connected, dial the new address now instead of after the backoff. */
  redial (peer: PeerState): void {
    if (this.libp2p.getConnections(peer.peerId).length > 0) return
    this.forget(peer.peerId)
    this.schedule(peer, 0)
  }

  /**
   * Called when a peer's heartbeat arrives (relayed by another node) while we hold no connection
   * to it: it is up, so a dial waiting out its backoff goes now. Until the connection is back, a
   * crash of the peer has no close to be seen by and shows only when its heartbeats stop. A dial
   * in flight is left to finish.
   */
  heardFrom (peerId: PeerId): void {
    const peer = this.peers.getByPeerId(peerId)
    const state = this.dials.get(peerId.toString())
    if (peer == null || state?.timer == null || this.libp2p.getConnections(peerId).length > 0) return
    clearTimeout(state.timer)
    delete state.timer
    this.schedule(peer, 0)
  }

  /** Called on peer:connect. */
  onConnected (peerId: PeerId): void {
    const state = this.dials.get(peerId.toString())
    if (state == null) return
    state.connectedAt = Date.now()
    state.failures = 0
    delete state.lastLoggedReason
    clearTimeout(state.timer)
    delete state.timer
  }

  /**
   * Called on peer:disconnect. A connection that lived long resets the backoff; one closed right
   * away (the remote refuses us, or crashes in a loop) keeps backing off instead of spinning.
   */
  onDisconnected (peerId: PeerId): void {
    const peer = this.peers.getByPeerId(peerId)
    const state = this.dials.get(peerId.toString())
    if (peer == null || state == null) return
    const lived = state.connectedAt == null ? 0 : Date.now() - state.connectedAt
    delete state.connectedAt
    if (lived >= STABLE_CONNECTION_MS) state.attempts = 0
    const delay = state.attempts === 0 ? REDIAL_INITIAL_DELAY_MS : this.delayFor(state.attempts)
    state.attempts++
    this.schedule(peer, delay)
  }

  private delayFor (attempts: number): number {
    const base = Math.min(REDIAL_MAX_DELAY_MS, REDIAL_INITIAL_DELAY_MS * 2 ** attempts)
    return Math.round(base * (0.8 + Math.random() * 0.4))
  }

  private schedule (peer: PeerState, delayMs: number): void {
    // A peer removed from the table meanwhile is not dialled again.
    if (!this.running || this.peers.getByPeerId(peer.peerId) !== peer) return
    const key = peer.peerId.toString()
    let state = this.dials.get(key)
    if (state == null) {
      state = { attempts: 0, failures: 0 }
      this.dials.set(key, state)
    }
    if (state.timer != null || state.dialing != null) return
    const dialState = state
    dialState.timer = setTimeout(() => {
      delete dialState.timer
      void this.dial(peer, dialState)
    }, delayMs)
  }

  /**
   * A turn to dial: at most PEER_DIALS_AT_ONCE at a time. When every node of a mesh starts at once
   * and dials every other, handshakes all in progress together on a busy machine each outlast the
   * dial timeout and are all tried again; a few at a time finish. The timeout starts with the turn.
   */
  private async turn (): Promise<() => void> {
    if (this.dialsInProgress >= PEER_DIALS_AT_ONCE) await new Promise<void>(resolve => { this.waitingForTurn.push(resolve) })
    this.dialsInProgress++
    let released = false
    return () => {
      if (released) return
      released = true
      this.dialsInProgress--
      this.waitingForTurn.shift()?.()
    }
  }

  private async dial (peer: PeerState, state: DialState): Promise<void> {
    if (!this.running) return
    if (this.libp2p.getConnections(peer.peerId).length > 0) return
    const controller = new AbortController()
    state.dialing = controller
    const release = await this.turn()
    // The peer may have dialled us while this dial waited for its turn.
    if (!this.running || controller.signal.aborted || this.libp2p.getConnections(peer.peerId).length > 0) {
      release()
      if (state.dialing === controller) delete state.dialing
      return
    }
    const timeout = AbortSignal.timeout(DIAL_TIMEOUT_MS)
    try {
      await this.libp2p.dial(multiaddr(peer.configuredAddr), { signal: AbortSignal.any([controller.signal, timeout]) })
    } catch (err) {
      if (!this.running) return
      state.attempts++
      state.failures++
      const delay = this.delayFor(state.attempts)
      const reason = errorMessage(err)
      // Log the first failure, a changed reason, and then every tenth, so a long outage does not flood the journal.
      if (state.failures === 1 || state.failures % 10 === 0 || reason !== state.lastLoggedReason) {
        state.lastLoggedReason = reason
        this.log.info({ event: 'dial_failed', peer: peer.name, peerId: peer.peerId.toString(), addr: peer.configuredAddr, failures: state.failures, retryInMs: delay, err: reason }, 'dial failed, will retry')
      }
      delete state.dialing
      this.schedule(peer, delay)
      return
    } finally {
      release()
      if (state.dialing === controller) delete state.dialing
    }
  }
}
