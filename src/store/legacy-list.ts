import type { Logger } from 'pino'
import { LEGACY_LIST_COUNT_PAGE, RETENTION_PRUNE_BATCH, STORE_RETRY_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { StoreBackend, WriteOp } from './backend.js'

/** Where a migration got to: the next list position, and what the conversion carries along. */
export interface MigrationCursor<S> {
  next: number
  state: S
}

export interface LegacyListMigrationInit<S> {
  store: StoreBackend
  log: Logger
  label: string
  /** The legacy list of ids, oldest first. */
  list: string
  /** Holds the cursor while the migration is under way (written with each batch). */
  cursorKey: string
  /** The key of an id's value, read alongside each batch. */
  valueKey: (id: string) => string
  /** The writes that move one batch into the new layout, and the state for the next batch. */
  convert: (entries: Array<{ id: string, value: string | null }>, state: S) => { ops: WriteOp[], state: S }
  batch?: number
}

/**
 * Moves a legacy list of ids into a new layout in background batches, resumable: the cursor is
 * written in the same transaction as each batch, so a restart goes on where it stopped and no
 * batch is applied twice with a different outcome. At the end the list and the cursor go in one
 * write, after `onMoved` has switched readers to the new layout.
 */
export class LegacyListMigration<S> {
  private stopped = false
  private readonly batch: number

  constructor (private readonly init: LegacyListMigrationInit<S>) {
    this.batch = init.batch ?? RETENTION_PRUNE_BATCH
  }

  /** The cursor of a migration under way, or null. */
  async cursor (): Promise<MigrationCursor<S> | null> {
    const stored = await this.init.store.get(this.init.cursorKey)
    return stored == null ? null : JSON.parse(stored) as MigrationCursor<S>
  }

  /** The list's last id (one read); undefined when there is no legacy list. */
  async lastId (): Promise<string | undefined> {
    return (await this.init.store.lrange(this.init.list, -1, -1))[0]
  }

  /** Counts the list in pages (ids are not kept): once, when a migration begins. */
  async length (): Promise<number> {
    let n = 0
    for (;;) {
      const page = await this.init.store.lrange(this.init.list, n, n + LEGACY_LIST_COUNT_PAGE - 1)
      n += page.length
      if (page.length < LEGACY_LIST_COUNT_PAGE) return n
    }
  }

  /** Records the start of a migration, so a restart resumes it with the same state. */
  async begin (state: S): Promise<MigrationCursor<S>> {
    const cursor = { next: 0, state }
    await this.init.store.write([{ op: 'set', key: this.init.cursorKey, value: JSON.stringify(cursor) }])
    return cursor
  }

  /** Moves the rest of the list, retrying while the store is away; `onMoved` runs before the list is deleted. */
  async run (cursor: MigrationCursor<S>, onMoved: () => void): Promise<void> {
    const { store, list, cursorKey } = this.init
    let moved = false
    for (let failures = 0; !this.stopped;) {
      try {
        if (!moved) {
          const ids = await store.lrange(list, cursor.next, cursor.next + this.batch - 1)
          if (ids.length > 0) {
            const values = await store.mget(ids.map(this.init.valueKey))
            const { ops, state } = this.init.convert(ids.map((id, i) => ({ id, value: values[i] ?? null })), cursor.state)
            const next = { next: cursor.next + ids.length, state }
            await store.write([...ops, { op: 'set', key: cursorKey, value: JSON.stringify(next) }])
            cursor = next
            await new Promise(resolve => setImmediate(resolve))
            continue
          }
          moved = true
          onMoved()
        }
        await store.write([{ op: 'del', key: list }, { op: 'del', key: cursorKey }])
        this.init.log.info({ event: 'legacy_list_migrated', what: this.init.label, entries: cursor.next }, 'legacy list moved into the index')
        return
      } catch (err) {
        if (failures++ === 0) this.init.log.warn({ event: 'legacy_list_migration_waiting', what: this.init.label, err: errorMessage(err) }, 'migration of the legacy list waits for the store')
        await new Promise(resolve => setTimeout(resolve, STORE_RETRY_MS))
      }
    }
  }

  stop (): void {
    this.stopped = true
  }
}
