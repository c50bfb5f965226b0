import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import {
  MESSAGE_EXPIRY_SWEEP_MS, MESSAGE_RECENT_CACHE, OUTBOX_ABANDON_RECHECK_MS, OUTBOX_ABANDONED_MEMORY, OUTBOX_RESOLVE_INTERVAL_MS,
  OUTCOME_KIND, RECENT_SENT_MESSAGES, RETENTION_PRUNE_BATCH
} from '../constants.js'
import { errorMessage, SendOutcomeUnknownError } from '../errors.js'
import { NO_METRICS, type MeshMetrics } from '../metrics.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import { DirtyWriter } from '../store/writer.js'
import { isReceipted, type MessageRoute, type OutgoingMessage, type SendInput, type TargetDelivery } from './message.js'
import { RedeliveryQueue } from './redelivery-queue.js'

export const OUTBOX_KEY_PREFIX = 'mesh:out:'
export const OUTBOX_PENDING_SET = 'mesh:out-pending'
/** Every stored sent message: score its seq (send order), member its id; what retention trims. */
export const OUTBOX_INDEX = 'mesh:out-index'
/** A send settled as not sent: a record of it that appears later (a late write) is removed, never delivered. */
export const OUTBOX_ABANDONED_PREFIX = 'mesh:out-abandoned:'
/** Per target node: the ids it receipted, scored by receipt time, for giving back what it lost. */
export const OUTBOX_RECEIPTED_PREFIX = 'mesh:out-receipted:'

export interface DeliveryEvent {
  id: string
  node: string
  state: TargetDelivery['state']
  reason?: string
  receipt_at?: number
  exit_code?: number | null
  output_tail?: string
  /** On delivered: whether the target has a handler for the kind (absent: an older target did not say). */
  handler?: boolean
}

/** A target's handler result, as its outcome message reported it. */
export interface HandlerOutcome {
  state: 'processed' | 'handler_failed'
  exit_code: number | null
  output_tail: string
  processed_at: number
}

/** What this node knows of a message id it handed out. */
export type SentLookup =
  | { outcome: 'sent', message: OutgoingMessage }
  /** The store write went unanswered; the daemon settles it once the store answers. */
  | { outcome: 'unknown', message: OutgoingMessage }
  /** The store write did not complete: the message exists nowhere and is never delivered. */
  | { outcome: 'not_sent', id: string, expires_at: number }

interface AbandonMarker { id: string, expires_at: number, abandoned_at: number }

/**
 * The ops that put a stored record in the index and its targets' receipt sets (scored by the
 * latest receipt: a target that loses its store again gets back what it got since).
 */
export function indexOps (message: OutgoingMessage): WriteOp[] {
  const ops: WriteOp[] = [{ op: 'zadd', set: OUTBOX_INDEX, score: message.seq, member: message.id }]
  for (const [node, target] of Object.entries(message.targets)) {
    const receiptAt = target.redelivered_at ?? target.receipt_at
    if (isReceipted(target.state) && receiptAt != null) ops.push({ op: 'zadd', set: OUTBOX_RECEIPTED_PREFIX + node, score: receiptAt, member: message.id })
  }
  return ops
}

function hasPendingTarget (message: OutgoingMessage): boolean {
  return Object.values(message.targets).some(t => t.state === 'pending')
}

/**
 * Messages this node sent and where each stands. A message enters delivery only once its store
 * write is acknowledged; a send the store refused exists nowhere, and one whose write went
 * unanswered is settled (sent or not sent) as soon as the store answers again. Messages with
 * targets still pending are listed in a set and resumed after a restart. Each target's state
 * moves once from pending to delivered or failed. Delivered messages can be delivered again to
 * a target whose store lost them (`redeliverTo`); the target's state stays delivered.
 */
export class Outbox {
  /** Pending messages and a bounded cache of finished ones. */
  private readonly messages = new Map<string, OutgoingMessage>()
  private readonly pendingByNode = new Map<string, Set<string>>()
  /** Sends whose first store write is under way: not yet delivered, not yet visible. */
  private readonly creating = new Map<string, OutgoingMessage>()
  /** Sends whose first store write went unanswered, until the store tells. */
  private readonly unresolved = new Map<string, OutgoingMessage>()
  /** Sends settled as not sent (id → expires_at), newest last. */
  private readonly abandoned = new Map<string, number>()
  /** Abandoned ids to look for once more (id → when), against a write the store applies late. */
  private readonly recheck = new Map<string, number>()
  /** Per target: delivered messages it lost, to deliver again, in send order. */
  private readonly redeliveries = new RedeliveryQueue()
  /** Delivered-again messages not held in `messages`, until their new state is written. */
  private readonly awaitingWrite = new Map<string, OutgoingMessage>()
  private readonly writer: DirtyWriter
  private readonly listeners = new Set<(event: DeliveryEvent) => void>()
  private readonly recentDone: string[] = []
  /** Ids of the latest messages sent (or resumed), oldest first, for the status page. */
  private readonly recentSent: string[] = []
  private seq: number
  private sweepTimer?: NodeJS.Timeout
  private resolveTimer?: NodeJS.Timeout
  /** Tells the delivery service that a target has work. */
  onPending?: (node: string) => void

  constructor (private readonly node: string, private readonly store: StoreBackend, private readonly log: Logger, private readonly metrics: MeshMetrics = NO_METRICS) {
    this.writer = new DirtyWriter(store, (id, now) => this.opsFor(id, now), log, 'outbox',
      keys => { this.onWritten(keys) },
      (keys, outcome) => { this.onNotWritten(keys, outcome) })
    // Microseconds since the epoch: increases across restarts without a stored counter.
    this.seq = Date.now() * 1000
  }

  async start (): Promise<void> {
    this.store.onReady(() => { void this.resume(); void this.resolve() })
    this.sweepTimer = setInterval(() => { this.expire() }, MESSAGE_EXPIRY_SWEEP_MS)
    this.sweepTimer.unref()
    this.resolveTimer = setInterval(() => { void this.resolve() }, OUTBOX_RESOLVE_INTERVAL_MS)
    this.resolveTimer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.sweepTimer)
    clearInterval(this.resolveTimer)
    await this.writer.flush()
  }

  private resumed = false

  /** Whether the pending messages of the store have been loaded (until then nothing is pruned). */
  get ready (): boolean {
    return this.resumed
  }

  /** Loads messages that still have pending targets (after a restart) and hands them to delivery. */
  private async resume (): Promise<void> {
    if (!this.resumed) {
      try {
        const ids = await this.store.smembers(OUTBOX_PENDING_SET)
        const stored: OutgoingMessage[] = []
        const late: string[] = []
        for (let i = 0; i < ids.length; i += RETENTION_PRUNE_BATCH) {
          const chunk = ids.slice(i, i + RETENTION_PRUNE_BATCH)
          const values = await this.store.mget(chunk.flatMap(id => [OUTBOX_KEY_PREFIX + id, OUTBOX_ABANDONED_PREFIX + id]))
          chunk.forEach((id, j) => {
            const record = values[2 * j]
            // A record written after its send was settled as not sent: removed, never delivered.
            if (values[2 * j + 1] != null) late.push(id)
            else if (record != null) stored.push(JSON.parse(record) as OutgoingMessage)
          })
        }
        if (late.length > 0) {
          await this.store.write(late.flatMap(id => this.removalOps(id)))
          this.log.warn({ event: 'outbox_late_writes_removed', messages: late.length }, 'removed records of sends that were answered "not sent"')
        }
        // Tracked in send order, which delivery keeps.
        stored.sort((a, b) => a.seq - b.seq)
        let loaded = 0
        for (const message of stored) {
          if (this.messages.has(message.id)) continue
          this.track(message)
          this.seq = Math.max(this.seq, message.seq + 1)
          loaded++
        }
        this.resumed = true
        if (loaded > 0) this.log.info({ event: 'outbox_resumed', messages: loaded }, 'resuming delivery of stored messages')
      } catch (err) {
        this.log.warn({ event: 'outbox_resume_failed', err: errorMessage(err) }, 'could not load pending messages yet')
        return
      }
    }
    void this.writer.flush()
    for (const node of this.pendingByNode.keys()) this.onPending?.(node)
  }

  private track (message: OutgoingMessage): void {
    this.messages.set(message.id, message)
    if (message.route?.state === 'routing') this.routingIds.add(message.id)
    // Outcomes are the daemon's answers for its handlers, not messages the operator sent.
    if (message.kind !== OUTCOME_KIND) {
      this.recentSent.push(message.id)
      if (this.recentSent.length > RECENT_SENT_MESSAGES) this.recentSent.shift()
    }
    for (const [node, delivery] of Object.entries(message.targets)) {
      if (delivery.state !== 'pending') continue
      let set = this.pendingByNode.get(node)
      if (set == null) this.pendingByNode.set(node, set = new Set())
      set.add(message.id)
    }
    if (!hasPendingTarget(message)) this.retire(message.id)
  }

  /**
   * Creates and durably stores a message; resolves with it once stored, and only then hands it
   * to delivery. A refused write leaves nothing of it anywhere; an unanswered one throws a
   * SendOutcomeUnknownError naming the id, and is settled once the store answers.
   */
  async create (input: SendInput, targets: string[], options: { route?: MessageRoute, agentIds?: Record<string, string> } = {}): Promise<OutgoingMessage> {
    const now = Date.now()
    const message: OutgoingMessage = {
      id: randomUUID(),
      from: this.node,
      to: input.to,
      kind: input.kind,
      body: input.body,
      sent_at: now,
      expires_at: now + input.ttl * 1000,
      seq: this.seq++,
      targets: Object.fromEntries(targets.map(t => {
        const agentId = options.agentIds?.[t]
        return [t, { state: 'pending', attempts: 0, ...(agentId != null ? { agent_id: agentId } : {}) } satisfies TargetDelivery]
      })),
      ...(options.route != null ? { route: options.route } : {})
    }
    this.creating.set(message.id, message)
    const outcome = await this.writer.commit(message.id)
    if (outcome === 'written') {
      this.metrics.messageSent(targets.length)
      for (const node of targets) this.onPending?.(node)
      return message
    }
    if (outcome === 'unknown') {
      void this.resolve()
      throw new SendOutcomeUnknownError(message.id, this.writer.error ?? 'no answer')
    }
    // Nothing was applied and no retry will write it.
    throw new Error(`message not sent: the store is unavailable (${this.writer.error ?? 'write failed'})`)
  }

  /** A write went through: sends among its keys enter delivery now; delivered-again records are done. */
  private onWritten (keys: string[]): void {
    for (const id of keys) {
      this.awaitingWrite.delete(id)
      const created = this.creating.get(id)
      if (created == null) continue
      this.creating.delete(id)
      this.track(created)
    }
  }

  /**
   * A write did not go through. Sends among its keys are never retried by the writer: refused
   * ones are dropped here and now, unanswered ones wait for the store to say whether they landed.
   */
  private onNotWritten (keys: string[], outcome: 'pending' | 'unknown' | 'dropped'): void {
    for (const id of keys) {
      const created = this.creating.get(id)
      if (created == null) continue
      this.creating.delete(id)
      this.writer.forget(id)
      if (outcome === 'unknown') this.unresolved.set(id, created)
    }
  }

  /**
   * Settles sends whose write went unanswered, once the store answers: a record present means the
   * write landed (the message is sent: tracked and delivered); absent, it is marked abandoned (so
   * a late write of it is recognised and removed) and the send is not sent.
   */
  private resolving = false
  async resolve (): Promise<void> {
    if (this.resolving || (this.unresolved.size === 0 && this.recheck.size === 0)) return
    this.resolving = true
    try {
      for (const [id, message] of this.unresolved) {
        const record = await this.store.get(OUTBOX_KEY_PREFIX + id)
        if (record != null) {
          this.unresolved.delete(id)
          this.track(message)
          this.metrics.messageSent(Object.keys(message.targets).length)
          this.log.info({ event: 'send_outcome_resolved', messageId: id, outcome: 'sent' }, 'a send whose store write went unanswered was stored; delivering it')
          for (const node of Object.keys(message.targets)) this.onPending?.(node)
        } else {
          const marker: AbandonMarker = { id, expires_at: message.expires_at, abandoned_at: Date.now() }
          await this.store.write([
            { op: 'set', key: OUTBOX_ABANDONED_PREFIX + id, value: JSON.stringify(marker), expireAtMs: message.expires_at },
            ...this.removalOps(id)
          ])
          this.unresolved.delete(id)
          this.noteAbandoned(id, message.expires_at)
          this.recheck.set(id, Date.now() + OUTBOX_ABANDON_RECHECK_MS)
          this.log.warn({ event: 'send_outcome_resolved', messageId: id, outcome: 'not_sent' }, 'a send whose store write went unanswered was not stored; it will never be delivered')
        }
      }
      const now = Date.now()
      for (const [id, at] of this.recheck) {
        if (now < at) continue
        if (await this.store.get(OUTBOX_KEY_PREFIX + id) != null) {
          await this.store.write(this.removalOps(id))
          this.log.warn({ event: 'outbox_late_writes_removed', messages: 1, messageId: id }, 'removed the record of a send answered "not sent"')
        }
        this.recheck.delete(id)
      }
    } catch (err) {
      this.log.debug({ event: 'send_outcome_pending', unresolved: this.unresolved.size, err: errorMessage(err) }, 'the store does not answer yet')
    } finally {
      this.resolving = false
    }
  }

  private noteAbandoned (id: string, expiresAt: number): void {
    this.abandoned.set(id, expiresAt)
    for (const old of this.abandoned.keys()) {
      if (this.abandoned.size <= OUTBOX_ABANDONED_MEMORY) break
      this.abandoned.delete(old)
    }
  }

  /** Ops deleting a message's record and its entries (not its per-target receipt entries). */
  private removalOps (id: string): WriteOp[] {
    return [
      { op: 'del', key: OUTBOX_KEY_PREFIX + id },
      { op: 'srem', set: OUTBOX_PENDING_SET, member: id },
      { op: 'zrem', set: OUTBOX_INDEX, member: id }
    ]
  }

  /** The latest messages sent from this node (since the daemon started, plus resumed ones), newest first. */
  recent (limit: number): OutgoingMessage[] {
    const out: OutgoingMessage[] = []
    for (let i = this.recentSent.length - 1; i >= 0 && out.length < limit; i--) {
      const message = this.messages.get(this.recentSent[i]!)
      if (message != null) out.push(message)
    }
    return out
  }

  get (id: string): OutgoingMessage | undefined {
    return this.messages.get(id)
  }

  /** A sent message (in memory, else its record); undefined for ids not sent. */
  async load (id: string): Promise<OutgoingMessage | undefined> {
    const found = await this.lookup(id)
    return found?.outcome === 'sent' ? found.message : undefined
  }

  /** What became of `id`: sent, outcome unknown, not sent, or undefined (never handed out, or pruned). */
  async lookup (id: string): Promise<SentLookup | undefined> {
    const inMemory = this.messages.get(id)
    if (inMemory != null) return { outcome: 'sent', message: inMemory }
    const unresolved = this.unresolved.get(id) ?? this.creating.get(id)
    if (unresolved != null) return { outcome: 'unknown', message: unresolved }
    const abandonedUntil = this.abandoned.get(id)
    if (abandonedUntil != null) return { outcome: 'not_sent', id, expires_at: abandonedUntil }
    const [record, marker] = await this.store.mget([OUTBOX_KEY_PREFIX + id, OUTBOX_ABANDONED_PREFIX + id])
    if (marker != null) return { outcome: 'not_sent', id, expires_at: (JSON.parse(marker) as AbandonMarker).expires_at }
    return record == null ? undefined : { outcome: 'sent', message: JSON.parse(record) as OutgoingMessage }
  }

  /** Whether `node` has messages waiting (pending, or to deliver again). */
  hasPending (node: string): boolean {
    return (this.pendingByNode.get(node)?.size ?? 0) > 0 || this.redeliveries.size(node) > 0
  }

  /** Whether retention must keep `id`: a target still pending, its send unsettled, or being delivered again. */
  isLive (id: string): boolean {
    const message = this.messages.get(id)
    if (message != null && hasPendingTarget(message)) return true
    if (this.unresolved.has(id) || this.creating.has(id) || this.awaitingWrite.has(id)) return true
    return this.redeliveries.find(id) != null
  }

  /** Drops pruned messages from the recent cache, so `message ID` agrees with the store. */
  forgetPruned (ids: string[]): void {
    for (const id of ids) {
      const message = this.messages.get(id)
      if (message != null && !hasPendingTarget(message)) this.messages.delete(id)
    }
  }

  /**
   * Up to `limit` messages for `node`, in send order (those to deliver again first), skipping
   * those `skip` says are already on the wire. (The maps and sets keep insertion order, which is
   * send order.)
   */
  nextPending (node: string, limit: number, skip: (id: string) => boolean): OutgoingMessage[] {
    const out: OutgoingMessage[] = []
    for (const m of this.redeliveries.queued(node)) {
      if (out.length >= limit) return out
      if (!skip(m.id)) out.push(m)
    }
    const ids = this.pendingByNode.get(node)
    if (ids == null) return out
    for (const id of ids) {
      if (out.length >= limit) break
      if (skip(id)) continue
      const m = this.messages.get(id)
      if (m != null) out.push(m)
    }
    return out
  }

  /** Every message waiting for `node`, in send order. */
  pendingFor (node: string): OutgoingMessage[] {
    return this.nextPending(node, Number.MAX_SAFE_INTEGER, () => false)
  }

  noteAttempt (id: string, node: string): void {
    const delivery = (this.redeliveries.get(node, id) ?? this.messages.get(id))?.targets[node]
    if (delivery != null) delivery.attempts++
  }

  /**
   * Records a target's final state; ignored if it already has one. For a message delivered again,
   * the target stays delivered and gains `redelivered_at`.
   */
  settle (id: string, node: string, state: 'delivered' | 'failed', detail: { reason?: string, receiptAt?: number, handler?: boolean } = {}): void {
    if (this.settleRedelivery(id, node, state, detail.receiptAt)) return
    const message = this.messages.get(id)
    const delivery = message?.targets[node]
    if (message == null || delivery == null || delivery.state !== 'pending') return
    delivery.state = state
    if (detail.reason != null) delivery.reason = detail.reason
    if (detail.receiptAt != null) delivery.receipt_at = detail.receiptAt
    if (state === 'delivered' && detail.handler != null) delivery.handler = detail.handler
    this.pendingByNode.get(node)?.delete(id)
    this.metrics.messageSettled(state, delivery.receipt_at != null ? delivery.receipt_at - message.sent_at : undefined, delivery.reason)
    void this.writer.commit(id)
    const event: DeliveryEvent = { id, node, state, ...(delivery.reason != null ? { reason: delivery.reason } : {}), ...(delivery.receipt_at != null ? { receipt_at: delivery.receipt_at } : {}), ...(delivery.handler != null ? { handler: delivery.handler } : {}) }
    for (const listener of this.listeners) listener(event)
    if (!hasPendingTarget(message)) this.retire(id)
  }

  private settleRedelivery (id: string, node: string, state: 'delivered' | 'failed', receiptAt?: number): boolean {
    const message = this.redeliveries.take(node, id)
    if (message == null) return false
    // Refused this time (it expired meanwhile): the target keeps its first receipt.
    if (state === 'delivered') {
      message.targets[node]!.redelivered_at = receiptAt ?? Date.now()
      if (!this.messages.has(id)) this.awaitingWrite.set(id, message)
      void this.writer.commit(id)
    }
    return true
  }

  /**
   * Queues for delivery again to `node` every message it receipted at or after `sinceMs` (its
   * receipt time here) that is still stored and not expired, in send order; returns how many.
   * The target stores each id once, so one it still has is only receipted again.
   */
  async redeliverTo (node: string, sinceMs: number): Promise<number> {
    const now = Date.now()
    const ids: string[] = []
    const seen = new Set<string>()
    let from = sinceMs
    let atFrom = 0
    for (;;) {
      // Paged by score from the last one seen (inclusive: receipt times tie), asking for more
      // than were seen at it, so a page always brings new members.
      const limit = RETENTION_PRUNE_BATCH + atFrom
      const page = await this.store.zrange(OUTBOX_RECEIPTED_PREFIX + node, { min: from, limit })
      let fresh = 0
      for (const entry of page) {
        if (seen.has(entry.member)) continue
        seen.add(entry.member)
        ids.push(entry.member)
        fresh++
        if (entry.score === from) atFrom++
        else { from = entry.score; atFrom = 1 }
      }
      if (fresh === 0 || page.length < limit) break
      await new Promise(resolve => setImmediate(resolve))
    }
    const found: OutgoingMessage[] = []
    for (let i = 0; i < ids.length; i += RETENTION_PRUNE_BATCH) {
      const chunk = ids.slice(i, i + RETENTION_PRUNE_BATCH)
      const values = await this.store.mget(chunk.map(id => OUTBOX_KEY_PREFIX + id))
      chunk.forEach((id, j) => {
        const stored = values[j]
        if (stored == null) return
        const message = this.messages.get(id) ?? JSON.parse(stored) as OutgoingMessage
        if (isReceipted(message.targets[node]?.state ?? 'pending') && message.expires_at > now) found.push(message)
      })
    }
    if (found.length === 0) return 0
    this.redeliveries.add(node, found)
    this.onPending?.(node)
    return found.length
  }

  /** Resolves once nothing is left to deliver again to `node`. */
  async redeliveryDone (node: string): Promise<void> {
    await this.redeliveries.done(node)
  }

  /** A node removed from the mesh: nothing more is delivered to it again. */
  dropRedeliveries (node: string): void {
    this.redeliveries.drop(node)
  }

  /**
   * This node's store lost data: every message held in memory (pending, the recent cache, those
   * being delivered again) is written back with its index entries.
   */
  writeBack (): number {
    const ids = new Set([...this.messages.keys(), ...this.awaitingWrite.keys(), ...this.redeliveries.ids()])
    for (const id of ids) this.writer.mark(id)
    void this.writer.soon()
    return ids.size
  }

  /**
   * Applies a target's handler outcome: once (a repeat, from a handler run again, is ignored),
   * and only for a target of the message. A target still pending evidently holds the message, so
   * it is settled delivered first. Returns why it was not applied, or undefined.
   */
  async applyOutcome (id: string, node: string, outcome: HandlerOutcome): Promise<string | undefined> {
    let message = this.messages.get(id) ?? this.awaitingWrite.get(id) ?? this.redeliveries.find(id)
    if (message == null) {
      const record = await this.store.get(OUTBOX_KEY_PREFIX + id)
      if (record == null) return `no message ${id} was sent from here (or retention removed it)`
      message = this.messages.get(id) ?? this.awaitingWrite.get(id) ?? JSON.parse(record) as OutgoingMessage
      if (!this.messages.has(id)) this.awaitingWrite.set(id, message)
    }
    const target = message.targets[node]
    if (target == null) return `${node} is not a target of message ${id}`
    if (target.state === 'processed' || target.state === 'handler_failed') return undefined
    if (target.state === 'pending') this.settle(id, node, 'delivered', { receiptAt: outcome.processed_at })
    delete target.reason
    target.state = outcome.state
    target.exit_code = outcome.exit_code
    target.output_tail = outcome.output_tail
    target.processed_at = outcome.processed_at
    target.receipt_at ??= outcome.processed_at
    const event: DeliveryEvent = { id, node, state: outcome.state, exit_code: outcome.exit_code, output_tail: outcome.output_tail }
    for (const listener of this.listeners) listener(event)
    // Stored before the outcome is receipted (a write that fails now is retried by the writer).
    await this.writer.commit(id)
    return undefined
  }

  /**
   * Gives a routed message to a further target (the next candidate after the last one failed);
   * the message must be held here (routed messages being routed are).
   */
  addTarget (id: string, node: string, agentId: string): boolean {
    const message = this.messages.get(id)
    if (message == null || message.targets[node] != null) return false
    message.targets[node] = { state: 'pending', attempts: 0, agent_id: agentId }
    let set = this.pendingByNode.get(node)
    if (set == null) this.pendingByNode.set(node, set = new Set())
    set.add(id)
    void this.writer.commit(id)
    this.onPending?.(node)
    return true
  }

  /** Writes a routed message's new route state (the target list is already in its record). */
  routeChanged (id: string): void {
    if (this.messages.has(id)) void this.writer.commit(id)
  }

  /** Messages held here whose route may still fail over. */
  routing (): OutgoingMessage[] {
    const out: OutgoingMessage[] = []
    for (const id of this.routingIds) {
      const message = this.messages.get(id)
      if (message?.route?.state === 'routing') out.push(message)
      else this.routingIds.delete(id)
    }
    return out
  }

  private readonly routingIds = new Set<string>()

  /** Listens to every target reaching a final state. */
  watch (listener: (event: DeliveryEvent) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private retire (id: string): void {
    this.recentDone.push(id)
    while (this.recentDone.length > MESSAGE_RECENT_CACHE) {
      const old = this.recentDone.shift()!
      this.forget(old)
    }
  }

  private forget (id: string): void {
    const message = this.messages.get(id)
    // A routed message given to a further target is live again; it is retired once more when that one settles.
    if (message == null || hasPendingTarget(message)) return
    for (const node of Object.keys(message.targets)) this.pendingByNode.get(node)?.delete(id)
    this.messages.delete(id)
  }

  /**
   * Pending targets whose TTL ran out fail with `expired`, and expired messages are no longer
   * delivered again; in-flight ones are left to their receipt.
   */
  expire (inFlight: (id: string, node: string) => boolean = this.inFlightCheck): void {
    const now = Date.now()
    for (const [node, ids] of this.pendingByNode) {
      for (const id of ids) {
        const message = this.messages.get(id)
        if (message != null && now > message.expires_at && !inFlight(id, node)) this.settle(id, node, 'failed', { reason: 'expired' })
      }
    }
    this.redeliveries.expire(now, inFlight)
  }

  /** Set by the delivery service: whether an envelope is on the wire awaiting its receipt. */
  inFlightCheck: (id: string, node: string) => boolean = () => false

  private opsFor (id: string, _now: number): WriteOp[] {
    const message = this.messages.get(id) ?? this.creating.get(id) ?? this.awaitingWrite.get(id) ?? this.redeliveries.find(id)
    if (message == null) return []
    return [
      { op: 'set', key: OUTBOX_KEY_PREFIX + id, value: JSON.stringify(message) },
      hasPendingTarget(message) ? { op: 'sadd', set: OUTBOX_PENDING_SET, member: id } : { op: 'srem', set: OUTBOX_PENDING_SET, member: id },
      ...indexOps(message)
    ]
  }
}
