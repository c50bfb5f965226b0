import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { STORE_MARK_INTERVAL_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { StoreBackend } from './backend.js'

export const STORE_EPOCH_KEY = 'mesh:store-epoch'

/** A loss of the store's contents: `lostFromMs` 0 means everything may be lost. */
export interface StoreLoss { epoch: string, lostFromMs: number }

/** What the store holds under STORE_EPOCH_KEY (times in ms since the Unix epoch). */
interface EpochRecord {
  epoch: string
  created_at: number
  marked_at: number
  /** What the loss that began this epoch may have taken: writes from this time on (0: all). */
  lost_from_ms: number
}

const EPOCH_ID_PATTERN = /^[\w-]{1,64}$/

function isTime (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

/** The stored record, or why it cannot be used. */
function parseEpochRecord (text: string): EpochRecord | string {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return 'not JSON'
  }
  const r = value as Partial<EpochRecord> | null
  if (r == null || typeof r !== 'object') return 'not an object'
  if (typeof r.epoch !== 'string' || !EPOCH_ID_PATTERN.test(r.epoch)) return 'epoch: expected 1-64 letters, digits, "_" or "-"'
  if (!isTime(r.created_at) || !isTime(r.marked_at)) return 'created_at and marked_at: expected times in ms'
  if (r.lost_from_ms != null && !isTime(r.lost_from_ms)) return 'lost_from_ms: expected a time in ms'
  return { epoch: r.epoch, created_at: r.created_at, marked_at: r.marked_at, lost_from_ms: r.lost_from_ms ?? 0 }
}

/**
 * The store epoch: a random id kept in the store with the time this daemon last marked it. A
 * store that comes back without it, with another one, or with a mark older than the last one
 * this daemon wrote (a Redis restored from an older snapshot or append-only file) has lost data:
 * a new epoch begins and listeners are told, so the services write back what they hold.
 * Checked at start and after every reconnect, before the periodic mark writes again.
 */
export class StoreEpoch {
  private record?: EpochRecord
  /** marked_at of the last write of the record that succeeded. */
  private lastMarkOk = 0
  /** The current record has been written at least once (a new epoch's first write may fail). */
  private written = false
  private verifying?: Promise<void>
  /** The last verification could not read the store: the next mark verifies instead of writing. */
  private needsVerify = false
  private marking = false
  private started = false
  private timer?: NodeJS.Timeout
  private readonly listeners = new Set<(loss: StoreLoss) => void>()

  constructor (private readonly store: StoreBackend, private readonly log: Logger, private readonly markIntervalMs = STORE_MARK_INTERVAL_MS) {}

  async start (): Promise<void> {
    this.store.onReady(() => { if (this.started) void this.verify(false) })
    if (this.store.health().ok) await this.verify(true)
    else this.needsVerify = true
    this.started = true
    this.timer = setInterval(() => { void this.mark() }, this.markIntervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.started = false
    clearInterval(this.timer)
    await this.verifying
  }

  /** The current epoch ('' until read at start). */
  get epoch (): string {
    return this.record?.epoch ?? ''
  }

  /** Of the current epoch (0 also when it is the first epoch). */
  get lostFromMs (): number {
    return this.record?.lost_from_ms ?? 0
  }

  onLoss (listener: (loss: StoreLoss) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private async verify (atStart: boolean): Promise<void> {
    this.verifying ??= this.compare(atStart).finally(() => { delete this.verifying })
    await this.verifying
  }

  private async compare (atStart: boolean): Promise<void> {
    let text: string | null
    try {
      text = await this.store.get(STORE_EPOCH_KEY)
    } catch (err) {
      this.needsVerify = true
      this.log.warn({ event: 'store_epoch_unread', store: this.store.location, err: errorMessage(err) }, 'could not read the store epoch; checking again before the next mark')
      return
    }
    this.needsVerify = false
    let stored: EpochRecord | undefined
    if (text != null) {
      const parsed = parseEpochRecord(text)
      if (typeof parsed === 'string') this.log.warn({ event: 'store_epoch_invalid', store: this.store.location, key: STORE_EPOCH_KEY, err: parsed }, 'the stored epoch is unreadable; counted as lost')
      else stored = parsed
    }
    const current = this.record
    if (current == null) {
      // Nothing known of this store yet: adopt what it holds, or begin.
      if (stored != null) {
        this.adopt(stored)
      } else {
        await this.begin(0)
        this.log.info({ event: 'store_epoch_new', store: this.store.location, epoch: this.epoch }, 'new store epoch: the store holds nothing of this node from before')
        // Found after the start: this daemon may hold what the store lacks.
        if (!atStart) this.tell()
      }
      return
    }
    if (stored == null || stored.epoch !== current.epoch) {
      // The first write of a new epoch failed: the loss it began was already told.
      if (!this.written) { await this.writeRecord(Date.now()); return }
      await this.lost(0, stored == null ? 'the store epoch is gone' : `the store holds another epoch (${stored.epoch})`)
    } else if (this.lastMarkOk > 0 && stored.marked_at < this.lastMarkOk - this.markIntervalMs) {
      await this.lost(stored.marked_at, `the store's last mark (${new Date(stored.marked_at).toISOString()}) is older than the last one written (${new Date(this.lastMarkOk).toISOString()}): restored from an older copy`)
    }
  }

  private adopt (stored: EpochRecord): void {
    this.record = stored
    this.written = true
    this.lastMarkOk = stored.marked_at
    this.log.info({ event: 'store_epoch', store: this.store.location, epoch: stored.epoch, markedAt: new Date(stored.marked_at).toISOString() }, 'store epoch read')
  }

  private async lost (lostFromMs: number, why: string): Promise<void> {
    const previous = this.epoch
    await this.begin(lostFromMs)
    this.log.warn({
      event: 'store_loss_detected', store: this.store.location, reason: why, previousEpoch: previous, epoch: this.epoch,
      lostFrom: lostFromMs === 0 ? 'everything' : new Date(lostFromMs).toISOString()
    }, 'the store lost data; writing back what this node holds')
    this.tell()
  }

  private async begin (lostFromMs: number): Promise<void> {
    const now = Date.now()
    this.record = { epoch: randomUUID(), created_at: now, marked_at: now, lost_from_ms: lostFromMs }
    this.written = false
    this.lastMarkOk = 0
    await this.writeRecord(now)
  }

  private tell (): void {
    const loss: StoreLoss = { epoch: this.epoch, lostFromMs: this.lostFromMs }
    for (const listener of this.listeners) {
      try {
        listener(loss)
      } catch (err) {
        this.log.error({ event: 'store_loss_listener_failed', err: errorMessage(err) }, 'a store loss listener failed')
      }
    }
  }

  /** Writes the record with marked_at `now`; false if the store did not take it. */
  private async writeRecord (now: number): Promise<boolean> {
    const record = this.record
    if (record == null) return false
    const next = { ...record, marked_at: now }
    try {
      await this.store.write([{ op: 'set', key: STORE_EPOCH_KEY, value: JSON.stringify(next) }])
    } catch {
      return false // the store is away or refusing; a reconnect verifies again
    }
    // A loss found meanwhile began another epoch: this write is not its mark.
    if (this.record !== record) return false
    this.record = next
    this.written = true
    this.lastMarkOk = now
    return true
  }

  private async mark (): Promise<void> {
    if (!this.started || this.marking || this.verifying != null || !this.store.health().ok) return
    if (this.needsVerify) { await this.verify(false); return }
    this.marking = true
    try {
      await this.writeRecord(Date.now())
    } finally {
      this.marking = false
    }
  }
}
