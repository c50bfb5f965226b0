import type { Logger } from 'pino'
import { STORE_WRITE_MAX_KEYS } from '../constants.js'
import { errorMessage } from '../errors.js'
import { StoreOutcomeUnknownError, StoreUnavailableError, type StoreBackend, type WriteOp } from './backend.js'

/**
 * What became of a key's write: stored; kept to retry (the store is away, nothing applied);
 * sent but unanswered, so it may or may not be applied (kept to retry, like `pending`); or
 * refused for good and dropped.
 */
export type WriteOutcome = 'written' | 'pending' | 'unknown' | 'dropped'

/**
 * Writes in-memory state to the store by key: callers mark keys dirty, and the ops for each key
 * are computed from the current state when the write happens, so a retry always writes the
 * latest state. Keys marked in the same turn of the event loop go out in one transaction (group
 * commit). While the store is unavailable, keys stay dirty for the next attempt; a key whose
 * write can never succeed (its ops cannot be built, or the store refuses them on their own) is
 * dropped and logged, so it never holds back the others.
 */
export class DirtyWriter {
  private readonly dirty = new Set<string>()
  private scheduled?: Promise<void>
  private writing?: Promise<void>
  private lastError?: string
  /** Outcome of each key's last write attempt, read by the callers waiting on it. */
  private readonly outcomes = new Map<string, WriteOutcome>()
  /** Callers waiting per key: outcomes are kept only for keys someone waits on. */
  private readonly waiting = new Map<string, number>()
  private droppedCount = 0
  private lastDropReason?: string

  constructor (
    private readonly store: StoreBackend,
    private readonly opsFor: (key: string, now: number) => WriteOp[],
    private readonly log: Logger,
    private readonly label: string,
    /** Told which keys a successful write held. */
    private readonly onWritten?: (keys: string[]) => void,
    /**
     * Told, as it happens (before any later write can start), which keys a write did not
     * store and why; a caller may `forget` them so no retry writes them.
     */
    private readonly onNotWritten?: (keys: string[], outcome: Exclude<WriteOutcome, 'written'>) => void
  ) {}

  get pending (): number {
    return this.dirty.size
  }

  get error (): string | undefined {
    return this.lastError
  }

  /** Keys refused for good since the start. */
  get dropped (): number {
    return this.droppedCount
  }

  /** Why the last key was dropped. */
  get dropReason (): string | undefined {
    return this.lastDropReason
  }

  mark (key: string): void {
    this.dirty.add(key)
  }

  /** Takes `key` out of what is left to write: no later attempt writes it. */
  forget (key: string): void {
    this.dirty.delete(key)
  }

  /** Marks `key` and resolves once a write attempt holding it has finished, with its outcome. */
  async commit (key: string): Promise<WriteOutcome> {
    this.dirty.add(key)
    this.waiting.set(key, (this.waiting.get(key) ?? 0) + 1)
    try {
      await this.soon()
      return this.outcomes.get(key) ?? (this.dirty.has(key) ? 'pending' : 'written')
    } finally {
      const left = (this.waiting.get(key) ?? 1) - 1
      if (left > 0) {
        this.waiting.set(key, left)
      } else {
        this.waiting.delete(key)
        this.outcomes.delete(key)
      }
    }
  }

  /** Writes what is dirty at the end of this turn of the event loop. */
  soon (): Promise<void> {
    this.scheduled ??= new Promise<void>(resolve => {
      setImmediate(() => {
        delete this.scheduled
        void this.flush().then(() => { resolve() })
      })
    })
    return this.scheduled
  }

  /** Writes every dirty key, one write at a time; true if nothing is left pending. */
  async flush (): Promise<boolean> {
    while (this.writing != null) await this.writing
    if (this.dirty.size > 0) {
      this.writing = this.writeDirty().finally(() => { delete this.writing })
      await this.writing
    }
    return this.dirty.size === 0
  }

  /**
   * Writes the keys dirty now in transactions of at most STORE_WRITE_MAX_KEYS, yielding to the
   * event loop between them: one huge transaction (thousands of messages arriving together)
   * would hold the loop while its commands are built. Each key's ops are computed just before
   * its chunk is written, so a chunk always holds the latest state.
   */
  private async writeDirty (): Promise<void> {
    const keys = [...this.dirty]
    this.dirty.clear()
    for (let start = 0; start < keys.length; start += STORE_WRITE_MAX_KEYS) {
      if (start > 0) await new Promise(resolve => setImmediate(resolve))
      const chunk = keys.slice(start, start + STORE_WRITE_MAX_KEYS)
      if (!await this.writeChunk(chunk)) {
        // The store is away: what was not tried yet waits for the next attempt too.
        const untried = keys.slice(start + STORE_WRITE_MAX_KEYS)
        if (untried.length > 0) this.keep(untried, new Error(this.lastError ?? 'store unavailable'))
        return
      }
    }
  }

  /** One transaction; false if the store is unavailable (the chunk is kept for a retry). */
  private async writeChunk (keys: string[]): Promise<boolean> {
    const now = Date.now()
    const batch: Array<{ key: string, ops: WriteOp[] }> = []
    for (const key of keys) {
      try {
        batch.push({ key, ops: this.opsFor(key, now) })
      } catch (err) {
        this.drop(key, err)
      }
    }
    if (batch.length === 0) return true
    try {
      await this.store.write(batch.flatMap(b => b.ops))
      this.written(batch.map(b => b.key))
      return true
    } catch (err) {
      if (err instanceof StoreOutcomeUnknownError) {
        this.keep(batch.map(b => b.key), err, 'unknown')
        return false
      }
      if (this.unavailable(err)) {
        this.keep(batch.map(b => b.key), err)
        return false
      }
      // Refused for a reason of its own: write key by key so only the culprit is dropped.
      for (let i = 0; i < batch.length; i++) {
        const { key, ops } = batch[i]!
        try {
          await this.store.write(ops)
          this.written([key])
        } catch (err) {
          if (err instanceof StoreOutcomeUnknownError) {
            this.keep([key], err, 'unknown')
            this.keep(batch.slice(i + 1).map(b => b.key), err)
            return false
          }
          if (this.unavailable(err)) {
            this.keep(batch.slice(i).map(b => b.key), err)
            return false
          }
          this.drop(key, err)
        }
      }
      return true
    }
  }

  private record (key: string, outcome: WriteOutcome): void {
    if (this.waiting.has(key)) this.outcomes.set(key, outcome)
  }

  private unavailable (err: unknown): boolean {
    return err instanceof StoreUnavailableError || !this.store.health().ok
  }

  private written (keys: string[]): void {
    delete this.lastError
    for (const key of keys) this.record(key, 'written')
    this.onWritten?.(keys)
  }

  private keep (keys: string[], err: unknown, outcome: 'pending' | 'unknown' = 'pending'): void {
    for (const key of keys) {
      // A key marked again meanwhile is written with its newer state anyway.
      this.dirty.add(key)
      this.record(key, outcome)
    }
    if (keys.length > 0) this.onNotWritten?.(keys, outcome)
    const reason = errorMessage(err)
    if (reason !== this.lastError) this.log.warn({ event: 'store_write_failed', what: this.label, pending: this.dirty.size, err: reason }, 'store write failed; kept in memory')
    this.lastError = reason
  }

  private drop (key: string, err: unknown): void {
    this.droppedCount++
    this.lastDropReason = errorMessage(err)
    this.record(key, 'dropped')
    this.onNotWritten?.([key], 'dropped')
    this.log.error({ event: 'store_write_dropped', what: this.label, key, err: errorMessage(err) }, 'a change the store can never hold was dropped; the others are written')
  }
}
