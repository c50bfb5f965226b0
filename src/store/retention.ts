import type { Logger } from 'pino'
import { RETENTION_PRUNE_BATCH, RETENTION_PRUNE_INTERVAL_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { StoreBackend, WriteOp, ZRangeQuery } from './backend.js'

export interface RetentionLimits {
  maxAgeS: number
  maxCount: number
}

export interface IndexedRecord {
  id: string
  score: number
  value: string
}

export interface IndexedRecordsInit {
  store: StoreBackend
  /** The sorted set: member = record id, score = when it came (see `scoresPerMs`). */
  index: string
  /** Each record's value lives at `keyPrefix + id`. */
  keyPrefix: string
  /** Index scores per millisecond since the epoch: 1 for ms times, 1000 for µs sequences. */
  scoresPerMs: number
  limits: RetentionLimits
  log: Logger
  /** Names the records in logs. */
  label: string
  batch?: number
  intervalMs?: number
}

/**
 * Records stored as `{keyPrefix}{id}` values with a sorted-set index, so that reads page through
 * them in O(log n + limit) and retention trims the oldest: those older than `maxAgeS` and those
 * beyond the newest `maxCount`. Pruning runs in the background, at most `batch` records per store
 * write, yielding to the event loop between writes.
 */
export class IndexedRecords {
  private limits: RetentionLimits
  private readonly batch: number
  private readonly intervalMs: number
  private timer?: NodeJS.Timeout
  private running?: Promise<number>
  private stopped = false
  /** While false (e.g. a migration is under way), passes do nothing. */
  pruneEnabled = true
  private lastError?: string

  constructor (private readonly init: IndexedRecordsInit) {
    this.limits = init.limits
    this.batch = init.batch ?? RETENTION_PRUNE_BATCH
    this.intervalMs = init.intervalMs ?? RETENTION_PRUNE_INTERVAL_MS
  }

  get index (): string {
    return this.init.index
  }

  keyOf (id: string): string {
    return this.init.keyPrefix + id
  }

  setLimits (limits: RetentionLimits): void {
    this.limits = limits
  }

  /** The writes that store one record and index it (one transaction with whatever goes along). */
  addOps (id: string, score: number, value: string): WriteOp[] {
    return [{ op: 'set', key: this.keyOf(id), value }, { op: 'zadd', set: this.init.index, score, member: id }]
  }

  /**
   * Records in index order from `query`, with their values: one range read and one mget per
   * page. Index entries whose value is gone (pruned meanwhile) are skipped; going forward the
   * page is topped up from after the last entry read. (Pruning takes the oldest, so a page read
   * newest first has nothing to top up from.)
   */
  async page (query: ZRangeQuery): Promise<IndexedRecord[]> {
    const out: IndexedRecord[] = []
    let cursor: ZRangeQuery = query
    for (;;) {
      const wanted = query.limit - out.length
      const entries = await this.init.store.zrange(this.init.index, { ...cursor, limit: wanted })
      if (entries.length === 0) break
      const values = await this.init.store.mget(entries.map(e => this.keyOf(e.member)))
      entries.forEach((entry, i) => {
        const value = values[i]
        if (value != null) out.push({ id: entry.member, score: entry.score, value })
      })
      if (out.length >= query.limit || entries.length < wanted || query.reverse === true) break
      cursor = { ...cursor, min: entries[entries.length - 1]!.score, minExclusive: true }
    }
    return out
  }

  async score (id: string): Promise<number | null> {
    return await this.init.store.zscore(this.init.index, id)
  }

  /** The highest score in the index, or null when it is empty. */
  async lastScore (): Promise<number | null> {
    return (await this.init.store.zrange(this.init.index, { limit: 1, reverse: true }))[0]?.score ?? null
  }

  start (): void {
    this.stopped = false
    this.timer = setInterval(() => { void this.prune() }, this.intervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await this.running
  }

  /** One retention pass (a pass already running is joined); resolves with how many records went. */
  async prune (now = Date.now()): Promise<number> {
    this.running ??= this.pruneNow(now).finally(() => { delete this.running })
    return await this.running
  }

  private async pruneNow (now: number): Promise<number> {
    if (!this.pruneEnabled) return 0
    const { store, index } = this.init
    const cutoff = (now - this.limits.maxAgeS * 1000) * this.init.scoresPerMs
    let removed = 0
    try {
      // Those past maxAgeS and those beyond maxCount are both the oldest: one range read and one
      // write per batch. The count is read again once the excess is gone, to catch up with arrivals.
      let excess = await store.zcard(index) - this.limits.maxCount
      while (!this.stopped) {
        const oldest = await store.zrange(index, excess > 0 ? { limit: this.batch } : { max: cutoff, limit: this.batch })
        const victims = oldest.filter((entry, i) => i < excess || entry.score <= cutoff)
        if (victims.length === 0) {
          if (excess <= 0) break
          excess = await store.zcard(index) - this.limits.maxCount
          continue
        }
        await store.write(victims.flatMap(v => [{ op: 'del' as const, key: this.keyOf(v.member) }, { op: 'zrem' as const, set: index, member: v.member }]))
        removed += victims.length
        excess -= victims.length
        if (excess <= 0 && victims.length < this.batch) excess = await store.zcard(index) - this.limits.maxCount
        // Other work (receipts, control requests) runs between batches.
        await new Promise(resolve => setImmediate(resolve))
      }
      delete this.lastError
    } catch (err) {
      // The store is away: the next pass tries again.
      const reason = errorMessage(err)
      if (reason !== this.lastError) this.init.log.warn({ event: 'retention_prune_failed', what: this.init.label, err: reason }, 'retention pass failed; retried at the next one')
      this.lastError = reason
    }
    if (removed > 0) this.init.log.debug({ event: 'retention_pruned', what: this.init.label, removed }, 'old records removed')
    return removed
  }
}
