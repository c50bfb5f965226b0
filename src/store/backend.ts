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
  | { op: 'set', key: string, value: string, ttlS?: number }
  | { op: 'del', key: string }
  | { op: 'sadd', set: string, member: string }
  | { op: 'srem', set: string, member: string }
  /** Appends to an ordered list (an inbox); positions start at 0 and never change. */
  | { op: 'rpush', list: string, value: string }

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

export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'
}
