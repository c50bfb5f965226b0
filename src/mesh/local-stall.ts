import { LOCAL_STALL_MAX_ALLOWANCE_MS, LOCAL_STALL_MIN_MS, LOCAL_STALL_SAMPLE_MS } from '../constants.js'

/**
 * How long this daemon's own event loop was stalled lately. While the loop is stalled, heartbeats
 * that reached the socket wait unread, so a peer's silence measured across a stall is partly our
 * own: the offline window is stretched by the worst recent stall (the local health awareness of
 * Lifeguard, as in HashiCorp's memberlist). A saturated node then does not call live peers offline;
 * a crash is still seen at once by its closed connection.
 */
export class LocalStallMonitor {
  private timer?: NodeJS.Timeout
  private lastTick = 0
  /** Stalls of at least LOCAL_STALL_MIN_MS: when each ended and how long it was. */
  private readonly stalls: Array<{ at: number, ms: number }> = []

  constructor (private readonly windowMs: number, private readonly sampleMs = LOCAL_STALL_SAMPLE_MS) {}

  start (): void {
    this.lastTick = Date.now()
    this.timer = setInterval(() => { this.tick(Date.now()) }, this.sampleMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Records the gap since the last tick beyond the sample interval (a test drives it with its own clock). */
  tick (now: number): void {
    const stalled = now - this.lastTick - this.sampleMs
    this.lastTick = now
    if (stalled >= LOCAL_STALL_MIN_MS) this.stalls.push({ at: now, ms: stalled })
    while (this.stalls.length > 0 && this.stalls[0]!.at < now - this.windowMs) this.stalls.shift()
  }

  /**
   * The longest stall that ended within the window, or the one going on now (this read itself may
   * run right after a stall, before the sampler did); capped, so a loop stalled for good still
   * lets silent peers go offline.
   */
  recentStallMs (now = Date.now()): number {
    if (this.timer == null) return 0
    let worst = Math.max(0, now - this.lastTick - this.sampleMs)
    for (const stall of this.stalls) if (stall.at >= now - this.windowMs && stall.ms > worst) worst = stall.ms
    return Math.min(worst < LOCAL_STALL_MIN_MS ? 0 : worst, LOCAL_STALL_MAX_ALLOWANCE_MS)
  }
}
