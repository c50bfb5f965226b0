import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { errorMessage, UsageError } from '../errors.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import { LegacyListMigration } from '../store/legacy-list.js'
import { IndexedRecords, type RetentionLimits } from '../store/retention.js'
import { NO_METRICS, type MeshMetrics } from '../metrics.js'
import { DEFAULT_OPERATION_RETENTION_COUNT, DEFAULT_OPERATION_RETENTION_S, STORE_RETRY_MS } from '../constants.js'

export const OP_KEY_PREFIX = 'mesh:op:'
/** Operation ids by start time (ms): what `ops` pages through and retention trims. */
export const OP_INDEX = 'mesh:op-index'
/** The operation history before the index: a list of ids, moved into the index at start. */
export const OP_LIST = 'mesh:ops'
export const OP_MIGRATION_KEY = 'mesh:ops-migration'
const RECENT_IN_MEMORY = 100

export interface OperationRecord {
  id: string
  request: unknown
  started_at: string
  finished_at: string | null
  result: Record<string, unknown> | null
  error: string | null
}

/**
 * Every operation run from this node, kept in the store so `aitbc-mesh ops` shows it after the
 * CLI has exited or the daemon restarted, indexed by start time and trimmed by
 * retention.operations. Recent records also stay in memory, so a store outage does not hide them.
 */
export class OperationLog {
  private readonly recent: OperationRecord[] = []
  private readonly records: IndexedRecords
  private readonly migration: LegacyListMigration<null>
  /** While the legacy list is being moved, `list` also reads its newest entries. */
  private migrating = false
  private stopped = false

  constructor (
    private readonly store: StoreBackend,
    private readonly log: Logger,
    private readonly metrics: MeshMetrics = NO_METRICS,
    limits: RetentionLimits = { maxAgeS: DEFAULT_OPERATION_RETENTION_S, maxCount: DEFAULT_OPERATION_RETENTION_COUNT }
  ) {
    this.records = new IndexedRecords({ store, index: OP_INDEX, keyPrefix: OP_KEY_PREFIX, scoresPerMs: 1, limits, log, label: 'operations' })
    this.migration = new LegacyListMigration<null>({
      store,
      log,
      label: 'operations',
      list: OP_LIST,
      cursorKey: OP_MIGRATION_KEY,
      valueKey: id => OP_KEY_PREFIX + id,
      convert: entries => ({ ops: entries.flatMap(e => legacyIndexOps(e.id, e.value)), state: null })
    })
  }

  /** Starts retention, and moves a legacy list into the index in the background (nothing is pruned until it is). */
  start (): void {
    this.records.pruneEnabled = false
    this.records.start()
    void this.migrateLegacy()
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.migration.stop()
    await this.records.stop()
  }

  /** One retention pass now (the daemon runs them every RETENTION_PRUNE_INTERVAL_MS). */
  async prune (now = Date.now()): Promise<number> {
    return await this.records.prune(now)
  }

  private async migrateLegacy (): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        let cursor = await this.migration.cursor()
        if (cursor == null && await this.migration.lastId() != null) cursor = await this.migration.begin(null)
        if (cursor == null) {
          this.records.pruneEnabled = true
          return
        }
        this.migrating = true
        await this.migration.run(cursor, () => {
          this.migrating = false
          this.records.pruneEnabled = true
        })
        return
      } catch (err) {
        if (attempt === 0) this.log.warn({ event: 'op_log_load_waiting', err: errorMessage(err) }, 'waiting for the store to look for a legacy operation list')
        await new Promise(resolve => setTimeout(resolve, STORE_RETRY_MS))
      }
    }
  }

  begin (request: unknown): OperationRecord {
    const record: OperationRecord = { id: randomUUID(), request, started_at: new Date().toISOString(), finished_at: null, result: null, error: null }
    this.recent.push(record)
    if (this.recent.length > RECENT_IN_MEMORY) this.recent.shift()
    void this.save(record)
    return record
  }

  finish (record: OperationRecord, outcome: { result?: Record<string, unknown>, error?: string }): void {
    record.finished_at = new Date().toISOString()
    record.result = outcome.result ?? null
    record.error = outcome.error ?? null
    const operation = (record.request as { operation?: unknown } | null)?.operation
    const status = record.result?.validation_status
    this.metrics.operationFinished(typeof operation === 'string' ? operation : 'unknown', record.error != null ? 'error' : typeof status === 'string' ? status : 'unknown')
    void this.save(record)
  }

  /** The index entry goes with every write, so a record pruned while it ran is indexed (and pruned) again, never left behind. */
  private async save (record: OperationRecord): Promise<void> {
    try {
      await this.store.write(this.records.addOps(record.id, Date.parse(record.started_at), JSON.stringify(record)))
    } catch (err) {
      this.log.warn({ event: 'op_record_not_stored', opId: record.id, err: errorMessage(err) }, 'operation record not stored')
    }
  }

  /**
   * Writes back the records held in memory that the store lacks or holds older (it lost data,
   * or a save failed while it was away), oldest first; the number written.
   */
  async writeBack (): Promise<number> {
    const records = [...this.recent]
    if (records.length === 0) return 0
    try {
      const stored = await this.store.mget(records.map(r => OP_KEY_PREFIX + r.id))
      const stale = records.filter((record, i) => stored[i] !== JSON.stringify(record))
      await this.store.write(stale.flatMap(record => this.records.addOps(record.id, Date.parse(record.started_at), JSON.stringify(record))))
      return stale.length
    } catch (err) {
      this.log.warn({ event: 'op_records_not_written_back', err: errorMessage(err) }, 'operation records not written back to the store')
      return 0
    }
  }

  /** The last `limit` operations, newest first: one index read and one mget. */
  async list (limit: number): Promise<OperationRecord[]> {
    try {
      let stored = parseRecords((await this.records.page({ limit, reverse: true })).map(r => r.value))
      if (this.migrating) {
        // The legacy list's newest entries, merged by start time (ids already moved appear once).
        const ids = await this.store.lrange(OP_LIST, -limit, -1)
        const legacy = parseRecords((await this.store.mget(ids.map(id => OP_KEY_PREFIX + id))).filter((v): v is string => v != null))
        const byId = new Map([...legacy, ...stored].map(r => [r.id, r]))
        stored = [...byId.values()].sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at)).slice(0, limit)
      }
      const fresher = new Map(this.recent.map(r => [r.id, r]))
      return stored.map(r => fresher.get(r.id) ?? r)
    } catch {
      return [...this.recent].reverse().slice(0, limit)
    }
  }

  async get (id: string): Promise<OperationRecord> {
    const inMemory = this.recent.find(r => r.id === id)
    if (inMemory != null) return inMemory
    const value = await this.store.get(OP_KEY_PREFIX + id)
    if (value == null) throw new UsageError(`ops: no operation "${id}" on this node`)
    return JSON.parse(value) as OperationRecord
  }
}

function parseRecords (values: string[]): OperationRecord[] {
  const out: OperationRecord[] = []
  for (const value of values) {
    try {
      out.push(JSON.parse(value) as OperationRecord)
    } catch {}
  }
  return out
}

/** A legacy record's index entry, by its start time; a record gone or unreadable has none. */
function legacyIndexOps (id: string, value: string | null): WriteOp[] {
  if (value == null) return []
  try {
    const started = Date.parse((JSON.parse(value) as OperationRecord).started_at)
    return Number.isNaN(started) ? [] : [{ op: 'zadd', set: OP_INDEX, score: started, member: id }]
  } catch {
    return []
  }
}

export const LAST_SYNC_KEY = 'mesh:last-sync'

/** When this node last finished a sync (unix seconds), kept in the store across restarts. */
export class LastSync {
  private value: number | null = null

  constructor (private readonly store: StoreBackend, private readonly log: Logger) {}

  async load (): Promise<void> {
    try {
      const stored = await this.store.get(LAST_SYNC_KEY)
      if (stored != null && /^\d+$/.test(stored)) this.value = Number(stored)
    } catch (err) {
      this.log.warn({ event: 'last_sync_not_loaded', err: errorMessage(err) }, 'could not read the last sync time')
    }
  }

  get (): number | null {
    return this.value
  }

  /** Writes the value held in memory again (the store lost it, or a write failed while it was away). */
  async writeBack (): Promise<void> {
    if (this.value == null) return
    try {
      await this.store.write([{ op: 'set', key: LAST_SYNC_KEY, value: String(this.value) }])
    } catch (err) {
      this.log.warn({ event: 'last_sync_not_stored', err: errorMessage(err) }, 'could not store the last sync time')
    }
  }

  mark (now = Date.now()): void {
    this.value = Math.floor(now / 1000)
    void this.store.write([{ op: 'set', key: LAST_SYNC_KEY, value: String(this.value) }]).catch(err => {
      this.log.warn({ event: 'last_sync_not_stored', err: errorMessage(err) }, 'could not store the last sync time')
    })
  }
}
