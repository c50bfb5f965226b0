import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { MESSAGE_EXPIRY_SWEEP_MS, MESSAGE_RECENT_CACHE, RECENT_SENT_MESSAGES } from '../constants.js'
import { errorMessage } from '../errors.js'
import { NO_METRICS, type MeshMetrics } from '../metrics.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import { DirtyWriter } from '../store/writer.js'
import type { OutgoingMessage, SendInput, TargetDelivery } from './message.js'

export const OUTBOX_KEY_PREFIX = 'mesh:out:'
export const OUTBOX_PENDING_SET = 'mesh:out-pending'

export interface DeliveryEvent {
  id: string
  node: string
  state: TargetDelivery['state']
  reason?: string
  receipt_at?: number
}

/**
 * Messages this node sent and where each stands. A message is durably stored before `send`
 * returns its id; messages with targets still pending are listed in a set and resumed after a
 * restart. Each target's state moves once from pending to delivered or failed.
 */
export class Outbox {
  private readonly messages = new Map<string, OutgoingMessage>()
  private readonly pendingByNode = new Map<string, Set<string>>()
  private readonly writer: DirtyWriter
  private readonly listeners = new Set<(event: DeliveryEvent) => void>()
  private readonly recentDone: string[] = []
  /** Ids of the latest messages sent (or resumed), oldest first, for the status page. */
  private readonly recentSent: string[] = []
  private seq: number
  private sweepTimer?: NodeJS.Timeout
  /** Tells the delivery service that a target has work. */
  onPending?: (node: string) => void

  constructor (private readonly node: string, private readonly store: StoreBackend, private readonly log: Logger, private readonly metrics: MeshMetrics = NO_METRICS) {
    this.writer = new DirtyWriter(store, (id, now) => this.opsFor(id, now), log, 'outbox')
    // Microseconds since the epoch: increases across restarts without a stored counter.
    this.seq = Date.now() * 1000
  }

  async start (): Promise<void> {
    this.store.onReady(() => { void this.resume() })
    this.sweepTimer = setInterval(() => { this.expire() }, MESSAGE_EXPIRY_SWEEP_MS)
    this.sweepTimer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.sweepTimer)
    await this.writer.flush()
  }

  private resumed = false

  /** Loads messages that still have pending targets (after a restart) and hands them to delivery. */
  private async resume (): Promise<void> {
    if (!this.resumed) {
      try {
        const ids = await this.store.smembers(OUTBOX_PENDING_SET)
        const values = await this.store.mget(ids.map(id => OUTBOX_KEY_PREFIX + id))
        const stored = values.filter((v): v is string => v != null).map(v => JSON.parse(v) as OutgoingMessage)
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
    this.recentSent.push(message.id)
    if (this.recentSent.length > RECENT_SENT_MESSAGES) this.recentSent.shift()
    for (const [node, delivery] of Object.entries(message.targets)) {
      if (delivery.state !== 'pending') continue
      let set = this.pendingByNode.get(node)
      if (set == null) this.pendingByNode.set(node, set = new Set())
      set.add(message.id)
    }
  }

  /** Creates and durably stores a message; resolves with it once stored. */
  async create (input: SendInput, targets: string[]): Promise<OutgoingMessage> {
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
      targets: Object.fromEntries(targets.map(t => [t, { state: 'pending', attempts: 0 } satisfies TargetDelivery]))
    }
    this.track(message)
    const stored = await this.writer.commit(message.id) === 'written'
    if (!stored) {
      // Not persisted: refuse rather than return an id that a restart could lose.
      this.forget(message.id)
      throw new Error(`message not sent: the store is unavailable (${this.writer.error ?? 'write failed'})`)
    }
    this.metrics.messageSent(targets.length)
    for (const node of targets) this.onPending?.(node)
    return message
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

  async load (id: string): Promise<OutgoingMessage | undefined> {
    const inMemory = this.messages.get(id)
    if (inMemory != null) return inMemory
    const value = await this.store.get(OUTBOX_KEY_PREFIX + id)
    return value == null ? undefined : JSON.parse(value) as OutgoingMessage
  }

  /** Whether `node` has messages waiting. */
  hasPending (node: string): boolean {
    return (this.pendingByNode.get(node)?.size ?? 0) > 0
  }

  /**
   * Up to `limit` pending messages for `node`, in send order, skipping those `skip` says are
   * already on the wire. (The per-node sets keep insertion order, which is send order.)
   */
  nextPending (node: string, limit: number, skip: (id: string) => boolean): OutgoingMessage[] {
    const out: OutgoingMessage[] = []
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

  /** Every pending message for `node`, in send order. */
  pendingFor (node: string): OutgoingMessage[] {
    return this.nextPending(node, Number.MAX_SAFE_INTEGER, () => false)
  }

  noteAttempt (id: string, node: string): void {
    const delivery = this.messages.get(id)?.targets[node]
    if (delivery != null) delivery.attempts++
  }

  /** Records a target's final state; ignored if it already has one. */
  settle (id: string, node: string, state: 'delivered' | 'failed', detail: { reason?: string, receiptAt?: number } = {}): void {
    const message = this.messages.get(id)
    const delivery = message?.targets[node]
    if (message == null || delivery == null || delivery.state !== 'pending') return
    delivery.state = state
    if (detail.reason != null) delivery.reason = detail.reason
    if (detail.receiptAt != null) delivery.receipt_at = detail.receiptAt
    this.pendingByNode.get(node)?.delete(id)
    this.metrics.messageSettled(state, delivery.receipt_at != null ? delivery.receipt_at - message.sent_at : undefined, delivery.reason)
    void this.writer.commit(id)
    const event: DeliveryEvent = { id, node, state, ...(delivery.reason != null ? { reason: delivery.reason } : {}), ...(delivery.receipt_at != null ? { receipt_at: delivery.receipt_at } : {}) }
    for (const listener of this.listeners) listener(event)
    if (Object.values(message.targets).every(t => t.state !== 'pending')) this.retire(id)
  }

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
    if (message == null) return
    for (const node of Object.keys(message.targets)) this.pendingByNode.get(node)?.delete(id)
    this.messages.delete(id)
  }

  /** Pending targets whose TTL ran out fail with `expired`; in-flight ones are left to their receipt. */
  expire (inFlight: (id: string, node: string) => boolean = this.inFlightCheck): void {
    const now = Date.now()
    for (const [node, ids] of this.pendingByNode) {
      for (const id of ids) {
        const message = this.messages.get(id)
        if (message != null && now > message.expires_at && !inFlight(id, node)) this.settle(id, node, 'failed', { reason: 'expired' })
      }
    }
  }

  /** Set by the delivery service: whether an envelope is on the wire awaiting its receipt. */
  inFlightCheck: (id: string, node: string) => boolean = () => false

  private opsFor (id: string, _now: number): WriteOp[] {
    const message = this.messages.get(id)
    if (message == null) return []
    const pending = Object.values(message.targets).some(t => t.state === 'pending')
    return [
      { op: 'set', key: OUTBOX_KEY_PREFIX + id, value: JSON.stringify(message) },
      pending ? { op: 'sadd', set: OUTBOX_PENDING_SET, member: id } : { op: 'srem', set: OUTBOX_PENDING_SET, member: id }
    ]
  }
}
