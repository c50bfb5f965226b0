import type { Logger } from 'pino'
import { INBOX_REPLAY_PAGE, RESERVED_KIND_PREFIX, STORE_RETRY_MS } from '../constants.js'
import { errorMessage, UsageError } from '../errors.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import { LegacyListMigration, type MigrationCursor } from '../store/legacy-list.js'
import { IndexedRecords, type RetentionLimits } from '../store/retention.js'
import { DirtyWriter } from '../store/writer.js'
import type { InboxMessage } from './message.js'
import { SEEN_KEY_PREFIX, SeenIds } from './seen-ids.js'

export const INBOX_KEY_PREFIX = 'mesh:in:'
export const INBOX_INDEX = 'mesh:inbox-index'
/** The inbox before the index: a list of ids in arrival order, moved into the index at start. */
export const INBOX_LIST = 'mesh:inbox'
export const INBOX_MIGRATION_KEY = 'mesh:inbox-migration'
/** Stored messages whose handler has not finished: score their position, member their id. */
export const HANDLER_PENDING_INDEX = 'mesh:handler-pending'

/**
 * What the handler service tells the inbox. `needsHandler` is asked once per new message (and
 * for a duplicate, so its receipt says so too); a yes is
 * recorded in HANDLER_PENDING_INDEX in the same write as the message (so a crash cannot lose the
 * run), and `onStored` hears it once stored. `intercept` takes the daemon's own reserved kinds
 * (outcomes): they are applied, deduplicated like messages, and never stored in the inbox.
 */
export interface InboxHooks {
  needsHandler: (kind: string) => boolean
  onStored: (message: InboxMessage) => void
  intercept: (envelope: IncomingEnvelope) => Promise<{ ok: true } | { ok: false, reason: string }> | undefined
}

/**
 * `handler`: whether this node has a handler for the message's kind (an outcome will follow);
 * absent for the daemon's own kinds, which no handler takes.
 */
export type ReceiveResult =
  | { status: 'stored', storedAt: number, handler?: boolean }
  | { status: 'duplicate', storedAt: number, handler?: boolean }
  | { status: 'rejected', reason: string }

export interface IncomingEnvelope {
  id: string
  from: string
  kind: string
  body: string
  sentAt: number
  expiresAt: number
  /** A routed message: the agent the sender chose on this node. */
  agent?: string
}

/** What a migration of the legacy list carries from batch to batch. */
interface MigrationState {
  /** The score given to the last migrated message. */
  prev: number
  /** Every migrated score is below it, every new arrival's above it. */
  ceiling: number
  /** Legacy entries not yet moved (the list's length when the migration began, less each batch). */
  remaining: number
}

/**
 * Messages this node received. Each is stored as `mesh:in:{id}`, indexed in the sorted set
 * `mesh:inbox-index` by its arrival sequence (microseconds since the epoch, made strictly
 * increasing, which is also its `position`), with `mesh:seen:{id}` kept until the message expires
 * so a retry is answered DUPLICATE even after retention removed the message. All three are written
 * in one transaction; a receive resolves only once they are durably stored (if the store is down
 * it fails and the sender retries). Nothing is loaded whole: dedupe asks the store, reads page
 * through the index, and retention trims it in the background.
 */
export class Inbox {
  private readonly unwritten = new Map<string, InboxMessage>()
  /** Receives under way by id: a retry arriving meanwhile waits for the first one's outcome. */
  private readonly inflight = new Map<string, Promise<ReceiveResult>>()
  private lastSequence = 0
  private readonly writer: DirtyWriter
  private readonly followers = new Set<(message: InboxMessage) => void>()
  private readonly records: IndexedRecords
  private readonly seen: SeenIds
  private readonly migration: LegacyListMigration<MigrationState>
  /** Set while the legacy list is being moved: reads go through the list for the older part. */
  private migrating?: MigrationState
  /** Unwritten messages whose handler must run (their write adds them to HANDLER_PENDING_INDEX). */
  private readonly handlerPending = new Set<string>()
  hooks?: InboxHooks

  constructor (private readonly store: StoreBackend, private readonly log: Logger, limits: RetentionLimits) {
    this.records = new IndexedRecords({ store, index: INBOX_INDEX, keyPrefix: INBOX_KEY_PREFIX, scoresPerMs: 1000, limits, log, label: 'inbox' })
    this.seen = new SeenIds(store, id => INBOX_KEY_PREFIX + id)
    this.writer = new DirtyWriter(store, key => this.opsFor(key), log, 'inbox', keys => {
      for (const key of keys) {
        this.unwritten.delete(key)
        this.handlerPending.delete(key)
      }
    })
    this.migration = new LegacyListMigration<MigrationState>({
      store,
      log,
      label: 'inbox',
      list: INBOX_LIST,
      cursorKey: INBOX_MIGRATION_KEY,
      valueKey: id => INBOX_KEY_PREFIX + id,
      convert: (entries, state) => this.convertLegacy(entries, state)
    })
  }

  private loaded = false
  private stopped = false

  /** Finds where the sequence stands in the background; until then messages are refused (and retried). */
  async start (): Promise<void> {
    void this.load()
    this.store.onReady(() => { void this.writer.flush() })
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.migration.stop()
    await this.records.stop()
    await this.writer.flush()
  }

  setRetention (limits: RetentionLimits): void {
    this.records.setLimits(limits)
  }

  /** One retention pass now (the daemon runs them every RETENTION_PRUNE_INTERVAL_MS). */
  async prune (now = Date.now()): Promise<number> {
    return await this.records.prune(now)
  }

  /** Reads the last sequence given (one index read) and starts moving a legacy list, if any. */
  private async load (): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        let cursor = await this.migration.cursor()
        if (cursor == null) {
          const lastId = await this.migration.lastId()
          if (lastId != null) cursor = await this.migration.begin(await this.migrationStart(lastId))
        }
        this.lastSequence = Math.max(await this.records.lastScore() ?? 0, cursor?.state.ceiling ?? 0)
        if (cursor != null) this.migrate(cursor)
        this.loaded = true
        // Retention starts once it is known whether a legacy list is being moved (nothing is pruned until it is).
        this.records.start()
        return
      } catch (err) {
        // Redis may still be connecting; without the sequence, new messages could sort before old ones.
        if (attempt === 0) this.log.warn({ event: 'inbox_load_waiting', err: errorMessage(err) }, 'waiting for the store to load the inbox')
        await new Promise(resolve => setTimeout(resolve, STORE_RETRY_MS))
      }
    }
  }

  /** Scores for the legacy messages stay below a ceiling that every new arrival is above. */
  private async migrationStart (lastId: string): Promise<MigrationState> {
    const total = await this.migration.length()
    const last = await this.store.get(INBOX_KEY_PREFIX + lastId)
    const lastReceived = last != null ? (JSON.parse(last) as InboxMessage).received_at : 0
    const ceiling = Math.max(Date.now() * 1000, lastReceived * 1000 + total) + 1
    this.log.info({ event: 'legacy_inbox_found', messages: total }, 'moving the inbox list into the index in the background')
    return { prev: 0, ceiling, remaining: total }
  }

  private migrate (cursor: MigrationCursor<MigrationState>): void {
    this.migrating = cursor.state
    this.records.pruneEnabled = false
    void this.migration.run(cursor, () => {
      delete this.migrating
      this.records.pruneEnabled = true
    })
  }

  /**
   * Legacy message i gets its arrival time in µs, made increasing, and kept below the ceiling
   * with room for the ones after it; its value is rewritten with that position.
   */
  private convertLegacy (entries: Array<{ id: string, value: string | null }>, state: MigrationState): { ops: WriteOp[], state: MigrationState } {
    const ops: WriteOp[] = []
    const now = Date.now()
    let prev = state.prev
    let index = 0
    const done = new Set<string>()
    for (const { id, value } of entries) {
      index++
      if (value == null || done.has(id)) continue
      done.add(id)
      let message: InboxMessage
      try {
        message = JSON.parse(value) as InboxMessage
      } catch {
        continue
      }
      const room = state.ceiling - 1 - (state.remaining - index)
      const score = Math.min(Math.max(message.received_at * 1000, prev + 1), room)
      prev = score
      ops.push(...this.records.addOps(id, score, JSON.stringify({ ...message, position: score })))
      if (message.expires_at > now) ops.push({ op: 'set', key: SEEN_KEY_PREFIX + id, value: String(message.received_at), expireAtMs: message.expires_at })
    }
    return { ops, state: { ...state, prev, remaining: state.remaining - index } }
  }

  private opsFor (id: string): WriteOp[] {
    const message = this.unwritten.get(id)
    if (message == null) return []
    return [
      ...this.records.addOps(id, message.position, JSON.stringify(message)),
      { op: 'set', key: SEEN_KEY_PREFIX + id, value: String(message.received_at), expireAtMs: message.expires_at },
      ...(this.handlerPending.has(id) ? [{ op: 'zadd', set: HANDLER_PENDING_INDEX, score: message.position, member: id } satisfies WriteOp] : [])
    ]
  }

  /** Strictly increasing µs since the epoch, so a time maps to a position. */
  private nextSequence (now: number): number {
    this.lastSequence = Math.max(now * 1000, this.lastSequence + 1)
    return this.lastSequence
  }

  async receive (envelope: IncomingEnvelope, now = Date.now()): Promise<ReceiveResult> {
    if (!this.loaded) throw new Error('inbox not loaded yet (store unavailable)')
    const earlier = this.inflight.get(envelope.id)
    if (earlier != null) {
      // A retry of a message whose write is still under way must not be receipted before it lands.
      const result = await earlier
      return result.status === 'stored' ? { ...result, status: 'duplicate' } : result
    }
    const receiving = this.receiveNew(envelope, now)
    this.inflight.set(envelope.id, receiving)
    try {
      return await receiving
    } finally {
      if (this.inflight.get(envelope.id) === receiving) this.inflight.delete(envelope.id)
    }
  }

  private async receiveNew (envelope: IncomingEnvelope, now: number): Promise<ReceiveResult> {
    const storedAt = await this.seen.storedAt(envelope.id)
    if (storedAt != null) return { status: 'duplicate', storedAt, ...this.handlerOf(envelope.kind) }
    if (now > envelope.expiresAt) return { status: 'rejected', reason: `expired at ${new Date(envelope.expiresAt).toISOString()}` }
    const intercepted = this.hooks?.intercept(envelope)
    if (intercepted != null) {
      const applied = await intercepted
      if (!applied.ok) return { status: 'rejected', reason: applied.reason }
      // Only the seen mark: a retry is a duplicate, and nothing appears in the inbox.
      await this.store.write([{ op: 'set', key: SEEN_KEY_PREFIX + envelope.id, value: String(now), expireAtMs: envelope.expiresAt }])
      return { status: 'stored', storedAt: now }
    }
    // Sequences are given in call order (the lookups of one turn resolve in order), so messages
    // from one sender keep its send order.
    const message: InboxMessage = {
      id: envelope.id,
      from: envelope.from,
      kind: envelope.kind,
      body: envelope.body,
      sent_at: envelope.sentAt,
      expires_at: envelope.expiresAt,
      received_at: now,
      position: this.nextSequence(now),
      ...(envelope.agent != null ? { agent: envelope.agent } : {})
    }
    const needsHandler = this.hooks?.needsHandler(message.kind) === true
    if (needsHandler) this.handlerPending.add(message.id)
    this.unwritten.set(message.id, message)
    const stored = await this.writer.commit(message.id) === 'written'
    if (!stored && this.unwritten.has(message.id)) {
      // Not kept for a later write: the sender retries, and that retry stores it afresh.
      this.unwritten.delete(message.id)
      this.handlerPending.delete(message.id)
      throw new Error(`store unavailable: ${this.writer.error ?? 'write failed'}`)
    }
    if (needsHandler) this.hooks?.onStored(message)
    for (const follower of this.followers) follower(message)
    return { status: 'stored', storedAt: now, handler: needsHandler }
  }

  /** For a receipt: whether a handler takes `kind` here; nothing for the daemon's own kinds. */
  private handlerOf (kind: string): { handler?: boolean } {
    return kind.startsWith(RESERVED_KIND_PREFIX) ? {} : { handler: this.hooks?.needsHandler(kind) === true }
  }

  /**
   * Messages after `since` (a message id, or an ISO time), oldest first: one index lookup for
   * the id, one range read of at most `limit` entries, one mget of their values.
   */
  async list (since: string | undefined, limit: number): Promise<InboxMessage[]> {
    if (this.migrating != null) return await this.listDuringMigration(since, limit, this.migrating)
    let min: number | undefined
    if (since != null && since !== '') min = await this.records.score(since) ?? this.timeScore(since)
    return this.parse(await this.records.page({ ...(min != null ? { min, minExclusive: true } : {}), limit }))
  }

  /** After `since` as a time: positions from the next millisecond on. */
  private timeScore (since: string): number {
    const time = Date.parse(since)
    if (Number.isNaN(time)) throw new UsageError(`--since "${since}": not a message id in this inbox, nor a time such as 2026-11-23T10:00:00Z`)
    return time * 1000 + 999
  }

  /** Messages after `message`, which may have been pruned meanwhile (then paged by its position). */
  async listAfter (message: InboxMessage, limit: number): Promise<InboxMessage[]> {
    if (this.migrating != null) return await this.list(message.id, limit)
    return this.parse(await this.records.page({ min: message.position, minExclusive: true, limit }))
  }

  /** Every message after `since`, a page at a time, for `inbox --follow`. */
  async * replay (since: string | undefined, pageSize = INBOX_REPLAY_PAGE): AsyncGenerator<InboxMessage[]> {
    let page = await this.list(since, pageSize)
    for (;;) {
      if (page.length > 0) yield page
      if (page.length < pageSize) return
      page = await this.listAfter(page[page.length - 1]!, pageSize)
    }
  }

  private parse (records: Array<{ value: string }>): InboxMessage[] {
    const out: InboxMessage[] = []
    for (const r of records) {
      try {
        out.push(JSON.parse(r.value) as InboxMessage)
      } catch {}
    }
    return out
  }

  /**
   * While the legacy list is being moved (once, at the first start after the upgrade), the older
   * part is read from the list as before (the whole list of ids), then the newer messages from
   * the index, above the ceiling.
   */
  private async listDuringMigration (since: string | undefined, limit: number, state: MigrationState): Promise<InboxMessage[]> {
    const ids = [...new Set(await this.store.lrange(INBOX_LIST, 0, -1))]
    let start = 0
    let after: number | undefined
    let newerMin = state.ceiling
    if (since != null && since !== '') {
      const at = ids.indexOf(since)
      const score = at >= 0 ? null : await this.records.score(since)
      if (at >= 0) start = at + 1
      else if (score != null && score > state.ceiling) { start = ids.length; newerMin = score } else {
        const bound = this.timeScore(since)
        after = Math.floor(bound / 1000)
        newerMin = Math.max(state.ceiling, bound)
      }
    }
    const out: InboxMessage[] = []
    for (let i = start; i < ids.length && out.length < limit; i += 500) {
      const values = await this.store.mget(ids.slice(i, i + 500).map(id => INBOX_KEY_PREFIX + id))
      for (const message of this.parse(values.filter((v): v is string => v != null).map(value => ({ value })))) {
        if (after != null && message.received_at <= after) continue
        out.push(message)
        if (out.length >= limit) break
      }
    }
    if (out.length < limit) out.push(...this.parse(await this.records.page({ min: newerMin, minExclusive: true, limit: limit - out.length })))
    return out
  }

  follow (listener: (message: InboxMessage) => void): () => void {
    this.followers.add(listener)
    return () => { this.followers.delete(listener) }
  }
}
