import { STORE_EPOCH_MAX_CHARS } from '../constants.js'

/**
 * Helpers for bounding what peers send: uint64 fields arrive as bigints that may hold anything up
 * to 2^64-1, which as a JavaScript number loses precision and as a date is not a date at all.
 */

/** The largest wire integer kept as a number: above it, counts and times lose precision. */
export const MAX_WIRE_INTEGER = BigInt(Number.MAX_SAFE_INTEGER)

/** The latest instant a Date can hold; `new Date(x).toISOString()` throws beyond it. */
export const MAX_DATE_MS = 8.64e15

/** A wire time for a log line or a reason: ISO when it is a real date, else the raw number. */
export function wireTime (ms: bigint | number): string {
  const n = Number(ms)
  return Number.isFinite(n) && Math.abs(n) <= MAX_DATE_MS ? new Date(n).toISOString() : `${String(ms)} ms since the epoch`
}

/** `text` cut to `max` characters, so a peer's string cannot swell a log line or a reason. */
export function clipText (text: string, max = 128): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text
}

/**
 * Why a peer's clock reading `ms` is too far ahead of `now` (our clock), or undefined when it
 * is within `skewMs`.
 */
export function aheadOfClock (what: string, ms: bigint, now: number, skewMs: number): string | undefined {
  if (ms <= BigInt(now + skewMs)) return undefined
  const ahead = ms - BigInt(now)
  return `${what} ${wireTime(ms)} is ${String(ahead)} ms ahead of this node's clock (trust.clockSkewMs allows ${skewMs})`
}

/** Why a peer's clock reading `ms` is too far behind `now`, or undefined when within `skewMs`. */
export function behindClock (what: string, ms: bigint, now: number, skewMs: number): string | undefined {
  if (ms >= BigInt(now - skewMs)) return undefined
  const behind = BigInt(now) - ms
  return `${what} ${wireTime(ms)} is ${String(behind)} ms behind this node's clock (trust.clockSkewMs allows ${skewMs})`
}

/**
 * Why a peer's store epoch and loss time are out of range, or undefined: the epoch is 1 to
 * STORE_EPOCH_MAX_CHARS visible ASCII characters; the loss time is not ahead of our clock beyond
 * the skew (a store cannot have lost what was not written yet). Both absent is fine (an older peer).
 */
export function storeEpochOutOfRange (epoch: string | undefined, lostFromMs: bigint | undefined, now: number, skewMs: number): string | undefined {
  if (epoch == null) return lostFromMs != null ? 'store_lost_from_ms without a store_epoch' : undefined
  if (epoch.length === 0 || epoch.length > STORE_EPOCH_MAX_CHARS || !/^[\x21-\x7e]+$/.test(epoch)) {
    return `store_epoch "${clipText(epoch, 64)}" is not 1 to ${STORE_EPOCH_MAX_CHARS} visible ASCII characters`
  }
  if (lostFromMs != null) return aheadOfClock('store_lost_from_ms', lostFromMs, now, skewMs)
  return undefined
}
