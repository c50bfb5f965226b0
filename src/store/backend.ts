/**
 * Persistence of one node. Two backends with one contract: the node's own Redis, or an embedded
 * SQLite database in dataDir. Keys are laid out as in Redis (`agent:{id}` JSON values, the set
 * `agents:active`), under a configurable prefix that the backend applies.
 */

export type WriteOp =
  /**
   * `ttlS`: Redis lets the key expire after this many seconds unless it is written again (as
   * the AITBC coordinator's SETEX does); the embedded store, which nothing else reads, keeps it.
   */
  | {
    op: 'set', key: string, value: string, ttlS?: number,
    /** Both backends drop the key at this time (ms since the epoch): retention that needs no sweep. */
    expireAtMs?: number
  }
  | { op: 'del', key: string }
  | { op: 'sadd', set: string, member: string }
  | { op: 'srem', set: string, member: string }
  /** Appends to an ordered list (an inbox); positions start at 0 and never change. */
  | { op: 'rpush', list: string, value: string }
  /** Sorted sets: the index of what retention trims and what reads page through in O(limit). */
  | { op: 'zadd', set: string, score: number, member: string }
  | { op: 'zrem', set: string, member: string }

/** A page of a sorted set, by score; `after` excludes its bound (paging by the last score seen). */
export interface ZRangeQuery {
  /** Lowest score (inclusive unless `minExclusive`); absent: from the lowest. */
  min?: number
  minExclusive?: boolean
  /** Highest score (inclusive); absent: up to the highest. */
  max?: number
  limit: number
  /** Highest scores first. */
  reverse?: boolean
}

export interface ZMember {
  member: string
  score: number
}

/**
 * What an acknowledged write survives, read from the store itself:
 * - `always`: fsync before the answer; nothing acknowledged is lost on a crash of the store or the host.
 * - `everysec`: a crash of the store loses nothing; a crash of the host can lose about the last second.
 * - `os`: append-only without fsync; a crash of the host can lose what the OS had not written (up to ~30 s).
 * - `snapshot`: snapshots only; a crash of the store loses everything since the last snapshot.
 * - `none`: no persistence; a restart of the store loses everything.
 * - `unknown`: the settings could not be read (`detail` says why, e.g. CONFIG not permitted).
 */
export type DurabilityLevel = 'always' | 'everysec' | 'os' | 'snapshot' | 'none' | 'unknown'

export interface StoreDurability {
  level: DurabilityLevel
  /** The settings as read, e.g. "appendonly yes, appendfsync everysec, save 3600 1". */
  detail: string
}

export interface BackendHealth {
  ok: boolean
  reason?: string
}

export interface StoreBackend {
  readonly kind: 'redis' | 'embedded'
  /** Where the data lives, for logs and `doctor` (no password). */
  readonly location: string
  get: (key: string) => Promise<string | null>
  /** Every key and value whose key starts with `prefix` (after the store's own prefix). */
  scan: (prefix: string) => Promise<Map<string, string>>
  smembers: (set: string) => Promise<string[]>
  /** Values of the list from position `start` to `stop` inclusive (-1: the end). */
  lrange: (list: string, start: number, stop: number) => Promise<string[]>
  mget: (keys: string[]) => Promise<Array<string | null>>
  /** Members of a sorted set with their scores, in score order, at most `limit`: O(log n + limit). */
  zrange: (set: string, query: ZRangeQuery) => Promise<ZMember[]>
  zscore: (set: string, member: string) => Promise<number | null>
  zcard: (set: string) => Promise<number>
  /** Reads the store's persistence settings (each call asks the store again). */
  durability: () => Promise<StoreDurability>
  /**
   * Applies the operations as one transaction: no reader sees part of a batch, and a batch
   * refused up front (store down, bad command) applies nothing. In Redis (MULTI/EXEC) a command
   * that fails while running, such as a type clash on a key, does not undo the others.
   */
  write: (ops: WriteOp[]) => Promise<void>
  health: () => BackendHealth
  /** Resolves when the backend is usable, or after `timeoutMs` (false) so a start is not held up. */
  whenReady: (timeoutMs: number) => Promise<boolean>
  /** Called after the backend (re)connects, so callers can write what changed meanwhile. */
  onReady: (listener: () => void) => void
  close: () => Promise<void>
}

/** The store could not be asked: nothing of the call was applied. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'
}

/**
 * A write was sent but no answer came (a timeout, or the connection dropped while waiting): it
 * may or may not have been applied, and may still be applied later by the store.
 */
export class StoreOutcomeUnknownError extends Error {
  override name = 'StoreOutcomeUnknownError'
}
