import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import { SILENT_CONNECTION_CHECK_MS, SILENT_CONNECTION_PING_TIMEOUT_MS, SILENT_CONNECTION_WINDOWS } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { PeerTable } from './peer-table.js'

/** The slice of libp2p the closer uses: connections, a ping, and closing them. */
export interface SilentConnectionsNetwork {
  getConnections: (peerId?: PeerId) => unknown[]
  readonly services: { readonly ping: { ping: (peerId: PeerId, options?: { signal?: AbortSignal }) => Promise<number> } }
  hangUp: (peerId: PeerId, options?: { signal?: AbortSignal }) => Promise<void>
}

/**
 * Closes a connection that went dead without closing (a cut link drops packets silently, and TCP
 * may take minutes to notice), so messages stop waiting on it and the peer connector dials afresh
 * once the link is back. A connection is closed only when no heartbeat has come over it for
 * SILENT_CONNECTION_WINDOWS offline windows (the node may still be heard through others) and a
 * ping gets no answer: libp2p's own monitor closed every connection whose ping was slow, which
 * under load (a queue of gossip ahead of the ping) cut live peers off, made them look offline,
 * and cost a handshake each to come back.
 */
export class SilentConnectionCloser {
  private timer?: NodeJS.Timeout
  private readonly checking = new Set<string>()

  /**
   * `offlineAfterMs`: a connection younger than this has not had its chance to carry a heartbeat.
   * `localStallMs`: this daemon's own recent event-loop stall (LocalStallMonitor); the silence
   * allowed and the ping's timeout both grow by it, as the offline window does, since what a
   * stalled loop has not read yet is not silence on the link.
   */
  constructor (private readonly init: { libp2p: SilentConnectionsNetwork, peers: Pick<PeerTable, 'all'>, offlineAfterMs: number, log: Logger, checkMs?: number, pingTimeoutMs?: number, localStallMs?: (now: number) => number }) {}

  start (): void {
    this.timer = setInterval(() => { void this.check() }, this.init.checkMs ?? SILENT_CONNECTION_CHECK_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** One pass: every connected peer not heard over its connection for the windows is pinged. */
  async check (now = Date.now()): Promise<void> {
    const { libp2p, peers, log } = this.init
    await Promise.all(peers.all().map(async state => {
      const key = state.peerId.toString()
      if (this.checking.has(key) || libp2p.getConnections(state.peerId).length === 0) return
      // Heard over this connection lately, or connected too recently to have been (a mesh starting at once is slow to send its first heartbeats).
      const silentFor = now - Math.max(state.lastDirectHeartbeatAt ?? 0, state.connectedSince ?? now)
      const stall = this.init.localStallMs?.(now) ?? 0
      if (silentFor < SILENT_CONNECTION_WINDOWS * (this.init.offlineAfterMs + stall)) return
      this.checking.add(key)
      try {
        await libp2p.services.ping.ping(state.peerId, { signal: AbortSignal.timeout((this.init.pingTimeoutMs ?? SILENT_CONNECTION_PING_TIMEOUT_MS) + stall) })
      } catch (err) {
        if (this.timer == null) return
        log.info({ event: 'silent_connection_closed', peer: state.name, peerId: key, err: errorMessage(err) }, 'connection closed: no heartbeat over it for two offline windows and no answer to a ping')
        await libp2p.hangUp(state.peerId).catch(() => {})
      } finally {
        this.checking.delete(key)
      }
    }))
  }
}
