import type { Logger } from 'pino'
import { RETENTION_PRUNE_BATCH, RETENTION_PRUNE_INTERVAL_MS, SENT_PRUNE_PAGE } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import type { OutgoingMessage } from './message.js'
import { indexOps, OUTBOX_INDEX, OUTBOX_KEY_PREFIX, OUTBOX_PENDING_SET, OUTBOX_RECEIPTED_PREFIX, type Outbox } from './outbox.js'

/** Set once the records written before the index existed are in it. */
export const OUTBOX_INDEX_MIGRATED = 'mesh:out-index-migrated'

export interface SentRetentionLimits { maxAgeS: number, maxCount: number }

async function yieldToEventLoop (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

/**
 * Retention of sent messages (retention.sent): records whose every target ended are deleted once
 * older than maxAgeS, or beyond maxCount (oldest first); messages still pending are never
 * pruned (they end by their TTL). Runs every RETENTION_PRUNE_INTERVAL_MS in batches of
 * RETENTION_PRUNE_BATCH, yielding to the event loop between batches.
 */
export class SentRetention {
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private migrated = false

  constructor (
    private readonly store: StoreBackend,
    private readonly outbox: Outbox,
    private readonly limits: () => SentRetentionLimits,
    private readonly log: Logger
  ) {}

  start (): void {
    this.timer = setInterval(() => { void this.pass() }, RETENTION_PRUNE_INTERVAL_MS)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    await this.running
  }

  /** One pass: migrate (once), then prune; skipped while another runs or before the outbox loaded. */
  async pass (): Promise<number> {
    if (this.running != null || !this.outbox.ready) return 0
    let pruned = 0
    this.running = (async () => {
      try {
        if (!this.migrated) await this.migrate()
        pruned = await this.prune()
      } catch (err) {
        this.log.warn({ event: 'retention_failed', what: 'sent', err: errorMessage(err) }, 'pruning sent messages failed; will try again')
      }
    })()
    try {
      await this.running
    } finally {
      delete this.running
    }
    return pruned
  }

  /** Puts records stored before the index existed into it, in batches. */
  private async migrate (): Promise<void> {
    if (await this.store.get(OUTBOX_INDEX_MIGRATED) != null) {
      this.migrated = true
      return
    }
    const records = [...(await this.store.scan(OUTBOX_KEY_PREFIX)).values()]
    for (let i = 0; i < records.length; i += RETENTION_PRUNE_BATCH) {
      const ops: WriteOp[] = []
      for (const value of records.slice(i, i + RETENTION_PRUNE_BATCH)) {
        try {
          ops.push(...indexOps(JSON.parse(value) as OutgoingMessage))
        } catch {
          // An unreadable record is left as it is; `message ID` reports it.
        }
      }
      await this.store.write(ops)
      await yieldToEventLoop()
    }
    await this.store.write([{ op: 'set', key: OUTBOX_INDEX_MIGRATED, value: String(Date.now()) }])
    this.migrated = true
    if (records.length > 0) this.log.info({ event: 'outbox_index_migrated', messages: records.length }, 'indexed the sent messages stored before this version')
  }

  /** Deletes what retention no longer keeps; returns how many records. */
  async prune (now = Date.now()): Promise<number> {
    const { maxAgeS, maxCount } = this.limits()
    // Scores are seqs: microseconds since the epoch at the send.
    const cutoffSeq = (now - maxAgeS * 1000) * 1000
    let excess = (await this.store.zcard(OUTBOX_INDEX)) - maxCount
    let after: number | undefined
    let pruned = 0
    for (;;) {
      const page = await this.store.zrange(OUTBOX_INDEX, { ...(after != null ? { min: after, minExclusive: true } : {}), limit: SENT_PRUNE_PAGE })
      const victims: string[] = []
      let done = page.length < SENT_PRUNE_PAGE
      for (const entry of page) {
        // Oldest first: from here on everything is young enough, and the count is within bounds.
        if (entry.score >= cutoffSeq && excess <= 0) {
          done = true
          break
        }
        after = entry.score
        if (this.outbox.isLive(entry.member)) continue
        victims.push(entry.member)
        excess--
      }
      if (victims.length > 0) {
        await this.remove(victims)
        pruned += victims.length
      }
      if (done) break
      await yieldToEventLoop()
    }
    if (pruned > 0) this.log.debug({ event: 'retention_pruned', what: 'sent', records: pruned }, 'pruned sent messages')
    return pruned
  }

  /**
   * Deletes the records and their entries, at most RETENTION_PRUNE_BATCH records per write (a
   * record's entries stay in one write), yielding between writes.
   */
  private async remove (ids: string[]): Promise<void> {
    const records = await this.store.mget(ids.map(id => OUTBOX_KEY_PREFIX + id))
    let ops: WriteOp[] = []
    let inWrite = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!
      const own: WriteOp[] = [{ op: 'del', key: OUTBOX_KEY_PREFIX + id }, { op: 'srem', set: OUTBOX_PENDING_SET, member: id }, { op: 'zrem', set: OUTBOX_INDEX, member: id }]
      const record = records[i]
      if (record != null) {
        try {
          for (const node of Object.keys((JSON.parse(record) as OutgoingMessage).targets)) own.push({ op: 'zrem', set: OUTBOX_RECEIPTED_PREFIX + node, member: id })
        } catch {
          // Unreadable: its receipt entries, if any, stay.
        }
      }
      if (inWrite >= RETENTION_PRUNE_BATCH) {
        await this.store.write(ops)
        ops = []
        inWrite = 0
        await yieldToEventLoop()
      }
      ops.push(...own)
      inWrite++
    }
    if (ops.length > 0) await this.store.write(ops)
    this.outbox.forgetPruned(ids)
  }
}
