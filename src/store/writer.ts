import type { Logger } from 'pino'
import { errorMessage } from '../errors.js'
import type { StoreBackend, WriteOp } from './backend.js'

/**
 * Writes in-memory state to the store by key: callers mark keys dirty, and the ops for each key
 * are computed from the current state when the write happens, so a retry always writes the
 * latest state. Keys marked in the same turn of the event loop go out in one transaction (group
 * commit); a failed write keeps its keys for the next attempt.
 */
export class DirtyWriter {
  private readonly dirty = new Set<string>()
  private scheduled?: Promise<boolean>
  private writing?: Promise<boolean>
  private lastError?: string

  constructor (
    private readonly store: StoreBackend,
    private readonly opsFor: (key: string, now: number) => WriteOp[],
    private readonly log: Logger,
    private readonly label: string,
    /** Told which keys a successful write held. */
    private readonly onWritten?: (keys: string[]) => void
  ) {}

  get pending (): number {
    return this.dirty.size
  }

  get error (): string | undefined {
    return this.lastError
  }

  mark (key: string): void {
    this.dirty.add(key)
  }

  /** Marks `key` and resolves once a write holding it has finished: true if it was stored. */
  async commit (key: string): Promise<boolean> {
    this.dirty.add(key)
    return await this.soon()
  }

  /** Writes what is dirty at the end of this turn of the event loop. */
  soon (): Promise<boolean> {
    this.scheduled ??= new Promise<boolean>(resolve => {
      setImmediate(() => {
        delete this.scheduled
        void this.flush().then(resolve)
      })
    })
    return this.scheduled
  }

  /** Writes every dirty key, one write at a time. */
  async flush (): Promise<boolean> {
    while (this.writing != null) await this.writing
    if (this.dirty.size === 0) return this.lastError == null
    this.writing = this.writeDirty().finally(() => { delete this.writing })
    return await this.writing
  }

  private async writeDirty (): Promise<boolean> {
    const keys = [...this.dirty]
    this.dirty.clear()
    const now = Date.now()
    try {
      await this.store.write(keys.flatMap(key => this.opsFor(key, now)))
      delete this.lastError
      this.onWritten?.(keys)
      return true
    } catch (err) {
      for (const key of keys) this.dirty.add(key)
      const reason = errorMessage(err)
      if (reason !== this.lastError) this.log.warn({ event: 'store_write_failed', what: this.label, pending: this.dirty.size, err: reason }, 'store write failed; kept in memory')
      this.lastError = reason
      return false
    }
  }
}
