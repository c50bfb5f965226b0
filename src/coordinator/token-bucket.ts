/**
 * Paces calls to one rate-limited route: `perMinute` tokens a minute, evenly, with up to `burst`
 * saved up. With burst = limit - perMinute, no 60 s window holds more calls than the limit.
 * A 429 pauses it until the server's Retry-After and empties it, so nothing bursts right after.
 */
export class TokenBucket {
  private tokens: number
  private updatedAt: number
  private pausedUntil = 0
  private readonly perMs: number

  constructor (readonly perMinute: number, readonly burst: number, now = Date.now()) {
    if (!(perMinute > 0) || !(burst >= 1)) throw new RangeError(`a token bucket needs a positive rate and a burst of at least 1 (got ${perMinute}/min, burst ${burst})`)
    this.perMs = perMinute / 60_000
    this.tokens = burst
    this.updatedAt = now
  }

  /** Milliseconds until a token is available (0: now). */
  waitMs (now = Date.now()): number {
    if (now < this.pausedUntil) return this.pausedUntil - now
    this.refill(now)
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.perMs)
  }

  take (now = Date.now()): void {
    this.refill(now)
    this.tokens -= 1
  }

  pause (until: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, until)
    this.tokens = 0
    this.updatedAt = Math.max(this.updatedAt, until)
  }

  private refill (now: number): void {
    if (now <= this.updatedAt) return
    this.tokens = Math.min(this.burst, this.tokens + (now - this.updatedAt) * this.perMs)
    this.updatedAt = now
  }
}

/** The bucket for a route the server allows `limit` calls a minute, of which the caller uses `share`. */
export function bucketFor (limit: number, share: number, now = Date.now()): TokenBucket {
  const perMinute = limit * share
  return new TokenBucket(perMinute, Math.max(1, Math.floor(limit - perMinute)), now)
}
