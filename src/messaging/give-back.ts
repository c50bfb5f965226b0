import type { Logger } from 'pino'
import { errorMessage } from '../errors.js'
import type { StoreBackend } from '../store/backend.js'
import type { Outbox } from './outbox.js'

/** Per peer: the last store epoch its heartbeats showed, once everything owed to it was given back. */
export const PEER_EPOCH_KEY_PREFIX = 'mesh:peer-epoch:'

interface PeerEpoch { epoch: string, lostFromMs: number, seenAt: number }

/**
 * Gives back to a peer what its store lost. Each peer's heartbeat carries its store epoch; when
 * it differs from the one last seen (kept in the store, so a restart here does not forget it),
 * every message the peer receipted from its loss time on is delivered to it again, and the new
 * epoch is kept only once all of them are receipted again: a restart meanwhile starts over,
 * which the peer's once-per-id inbox makes harmless.
 */
export class GiveBack {
  private readonly known = new Map<string, PeerEpoch>()
  private readonly busy = new Set<string>()

  constructor (
    private readonly store: StoreBackend,
    private readonly outbox: Outbox,
    private readonly log: Logger,
    /** trust.clockSkewMs: the peer's loss time is its clock, receipt times are ours. */
    private readonly clockSkewMs: number
  ) {}

  /** A peer's newest heartbeat showed this store epoch. */
  peerEpoch (node: string, epoch: string, lostFromMs: number): void {
    if (this.busy.has(node) || this.known.get(node)?.epoch === epoch) return
    this.busy.add(node)
    void this.check(node, { epoch, lostFromMs, seenAt: Date.now() }).finally(() => { this.busy.delete(node) })
  }

  private async check (node: string, seen: PeerEpoch): Promise<void> {
    try {
      let known = this.known.get(node)
      if (known == null) {
        const stored = await this.store.get(PEER_EPOCH_KEY_PREFIX + node)
        if (stored != null) known = JSON.parse(stored) as PeerEpoch
      }
      if (known?.epoch === seen.epoch) {
        this.known.set(node, known)
        return
      }
      // Never seen before: nothing of ours can have been lost.
      if (known != null) {
        const since = Math.max(0, seen.lostFromMs - this.clockSkewMs)
        const count = await this.outbox.redeliverTo(node, since)
        this.log.info({ event: 'messages_redelivered', peer: node, count, epoch: seen.epoch, previousEpoch: known.epoch, lostFromMs: seen.lostFromMs }, 'the peer\'s store lost data; delivering again what it had receipted')
        await this.outbox.redeliveryDone(node)
      }
      await this.store.write([{ op: 'set', key: PEER_EPOCH_KEY_PREFIX + node, value: JSON.stringify(seen) }])
      this.known.set(node, seen)
    } catch (err) {
      // Tried again at the peer's next heartbeat; a store that is down is already reported.
      const level = this.store.health().ok ? 'warn' : 'debug'
      this.log[level]({ event: 'give_back_failed', peer: node, err: errorMessage(err) }, 'could not check what a peer\'s store lost; will try again')
    }
  }

  /** This node's store lost data: the epochs known of peers are written back. */
  async writeBack (): Promise<void> {
    const ops = [...this.known].map(([node, seen]) => ({ op: 'set' as const, key: PEER_EPOCH_KEY_PREFIX + node, value: JSON.stringify(seen) }))
    if (ops.length > 0) await this.store.write(ops)
  }
}
