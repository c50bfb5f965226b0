import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { errorMessage, UsageError } from '../errors.js'
import type { StoreBackend } from '../store/backend.js'
import { NO_METRICS, type MeshMetrics } from '../metrics.js'

export const OP_KEY_PREFIX = 'mesh:op:'
export const OP_LIST = 'mesh:ops'
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
 * CLI has exited or the daemon restarted. Recent records also stay in memory, so a store outage
 * does not hide them.
 */
export class OperationLog {
  private readonly recent: OperationRecord[] = []

  constructor (private readonly store: StoreBackend, private readonly log: Logger, private readonly metrics: MeshMetrics = NO_METRICS) {}

  begin (request: unknown): OperationRecord {
    const record: OperationRecord = { id: randomUUID(), request, started_at: new Date().toISOString(), finished_at: null, result: null, error: null }
    this.recent.push(record)
    if (this.recent.length > RECENT_IN_MEMORY) this.recent.shift()
    void this.save(record, true)
    return record
  }

  finish (record: OperationRecord, outcome: { result?: Record<string, unknown>, error?: string }): void {
    record.finished_at = new Date().toISOString()
    record.result = outcome.result ?? null
    record.error = outcome.error ?? null
    const operation = (record.request as { operation?: unknown } | null)?.operation
    const status = record.result?.validation_status
    this.metrics.operationFinished(typeof operation === 'string' ? operation : 'unknown', record.error != null ? 'error' : typeof status === 'string' ? status : 'unknown')
    void this.save(record, false)
  }

  private async save (record: OperationRecord, isNew: boolean): Promise<void> {
    try {
      await this.store.write([
        { op: 'set', key: OP_KEY_PREFIX + record.id, value: JSON.stringify(record) },
        ...(isNew ? [{ op: 'rpush' as const, list: OP_LIST, value: record.id }] : [])
      ])
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
      const ops = records.flatMap((record, i) => {
        const value = JSON.stringify(record)
        if (stored[i] === value) return []
        return [{ op: 'set' as const, key: OP_KEY_PREFIX + record.id, value }, ...(stored[i] == null ? [{ op: 'rpush' as const, list: OP_LIST, value: record.id }] : [])]
      })
      await this.store.write(ops)
      return ops.filter(op => op.op === 'set').length
    } catch (err) {
      this.log.warn({ event: 'op_records_not_written_back', err: errorMessage(err) }, 'operation records not written back to the store')
      return 0
    }
  }

  /** The last `limit` operations, newest first. */
  async list (limit: number): Promise<OperationRecord[]> {
    try {
      const ids = (await this.store.lrange(OP_LIST, -limit, -1)).reverse()
      const values = await this.store.mget(ids.map(id => OP_KEY_PREFIX + id))
      const stored = values.filter((v): v is string => v != null).map(v => JSON.parse(v) as OperationRecord)
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
