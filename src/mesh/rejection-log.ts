import type { Logger } from 'pino'
import { REJECTION_LOG_INTERVAL_MS, REJECTION_LOG_MAX_KEYS } from '../constants.js'

interface Seen {
  /** Rejections since the last line written for this key. */
  suppressed: number
  lastLoggedAt: number
}

/**
 * Logs what peers send that is refused, without letting a peer flood the journal: the first
 * rejection of each (peer, reason) pair is written at warn with its detail; repeats are counted
 * and written as one summary line at most once per interval. Every rejection is counted in
 * `total` whether it was written or not.
 */
export class RejectionLog {
  private readonly seen = new Map<string, Seen>()
  total = 0

  constructor (
    private readonly log: Logger,
    private readonly intervalMs = REJECTION_LOG_INTERVAL_MS,
    private readonly maxKeys = REJECTION_LOG_MAX_KEYS
  ) {}

  /**
   * `event` names the kind of input (for example `agent_update_rejected`), `peer` who sent it,
   * `reason` a stable category (no ids or values, so repeats share a key), `fields` the detail of
   * this one.
   */
  reject (event: string, peer: string, reason: string, fields: Record<string, unknown> = {}, message = 'refused input from a peer'): void {
    this.total++
    const key = `${event}\u0000${peer}\u0000${reason}`
    const now = Date.now()
    const seen = this.seen.get(key)
    if (seen == null) {
      if (this.seen.size >= this.maxKeys) {
        const oldest = this.seen.keys().next().value
        if (oldest != null) this.seen.delete(oldest)
      }
      this.seen.set(key, { suppressed: 0, lastLoggedAt: now })
      this.log.warn({ event, peer, reason, ...fields }, message)
      return
    }
    if (now - seen.lastLoggedAt < this.intervalMs) {
      seen.suppressed++
      return
    }
    this.log.warn({ event, peer, reason, ...fields, repeated: seen.suppressed + 1, sinceMs: now - seen.lastLoggedAt }, message)
    seen.suppressed = 0
    seen.lastLoggedAt = now
  }
}
