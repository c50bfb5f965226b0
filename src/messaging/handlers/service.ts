import type { Logger } from 'pino'
import type { HandlerConfig } from '../../config/schema.js'
import { HANDLER_QUEUE_MEMORY, OUTCOME_KIND, OUTCOME_TTL_S, RETENTION_PRUNE_BATCH, STORE_RETRY_MS } from '../../constants.js'
import { errorMessage } from '../../errors.js'
import { RejectionLog } from '../../mesh/rejection-log.js'
import type { StoreBackend } from '../../store/backend.js'
import { HANDLER_PENDING_INDEX, INBOX_KEY_PREFIX, type IncomingEnvelope, type Inbox } from '../inbox.js'
import type { InboxMessage } from '../message.js'
import type { Outbox } from '../outbox.js'
import { handlerEnv, handlerFor } from './config.js'
import { encodeOutcome, parseOutcome } from './outcome.js'
import { runHandler, type HandlerRun } from './runner.js'

export interface HandlerServiceInit {
  node: string
  inbox: Inbox
  outbox: Outbox
  store: StoreBackend
  log: Logger
  handlers: HandlerConfig[]
  concurrency: number
}

interface QueuedRun { id: string, from: string, position: number, message?: InboxMessage }

/**
 * Runs this node's handlers for the messages it stores, and applies the outcomes its own
 * messages' targets report back.
 *
 * A message needing a handler is recorded in HANDLER_PENDING_INDEX in the same write that stores
 * it, and leaves it only once its outcome is on its way back (an outbox message to the sender,
 * delivered and retried like any other). A crash in between runs it again at the next start: at
 * least once, so handlers must be idempotent by message id. Runs from one sender go one at a
 * time in arrival order; at most `concurrency` run at once across senders.
 */
export class HandlerService {
  private handlers: HandlerConfig[]
  private concurrency: number
  /** Per sender, runs waiting in arrival order. */
  private readonly queues = new Map<string, QueuedRun[]>()
  private readonly queued = new Set<string>()
  private readonly busySenders = new Set<string>()
  private running = 0
  /** Set when runs were left in the store for want of room in memory: read again as it frees up. */
  private overflow = false
  private loading = false
  private readonly abort = new AbortController()
  private readonly inFlight = new Set<Promise<void>>()
  private readonly rejections: RejectionLog
  private stopped = false

  constructor (private readonly init: HandlerServiceInit) {
    this.handlers = init.handlers
    this.concurrency = init.concurrency
    this.rejections = new RejectionLog(init.log)
  }

  setHandlers (handlers: HandlerConfig[], concurrency: number): void {
    this.handlers = handlers
    this.concurrency = concurrency
    this.pump()
  }

  start (): void {
    this.init.inbox.hooks = {
      needsHandler: kind => handlerFor(this.handlers, kind) != null,
      onStored: message => { this.enqueue({ id: message.id, from: message.from, position: message.position, message }) },
      intercept: envelope => envelope.kind === OUTCOME_KIND ? this.applyOutcome(envelope) : undefined
    }
    this.init.store.onReady(() => { void this.loadPending() })
  }

  async stop (): Promise<void> {
    this.stopped = true
    delete this.init.inbox.hooks
    // Running handlers are stopped; their runs stay pending and run again at the next start.
    this.abort.abort()
    await Promise.allSettled([...this.inFlight])
  }

  /** Runs left pending by an earlier life of the daemon (or not held in memory), in arrival order. */
  private async loadPending (): Promise<void> {
    if (this.loading || this.stopped) return
    this.loading = true
    try {
      this.overflow = false
      let after: number | undefined
      for (;;) {
        const room = HANDLER_QUEUE_MEMORY - this.queued.size
        if (room <= 0) { this.overflow = true; break }
        const page = await this.init.store.zrange(HANDLER_PENDING_INDEX, { ...(after != null ? { min: after, minExclusive: true } : {}), limit: Math.min(room, RETENTION_PRUNE_BATCH) })
        if (page.length === 0) break
        const fresh = page.filter(entry => !this.queued.has(entry.member))
        const values = await this.init.store.mget(fresh.map(entry => INBOX_KEY_PREFIX + entry.member))
        const gone: string[] = []
        fresh.forEach((entry, i) => {
          const value = values[i]
          if (value == null) { gone.push(entry.member); return }
          try {
            const message = JSON.parse(value) as InboxMessage
            this.enqueue({ id: message.id, from: message.from, position: entry.score, message }, true)
          } catch {
            gone.push(entry.member)
          }
        })
        // Retention removed the message before its handler ran: nothing to run.
        if (gone.length > 0) await this.init.store.write(gone.map(member => ({ op: 'zrem', set: HANDLER_PENDING_INDEX, member })))
        after = page[page.length - 1]!.score
        if (page.length < RETENTION_PRUNE_BATCH) break
      }
      if (this.queued.size > 0) this.init.log.info({ event: 'handlers_resumed', runs: this.queued.size }, 'running handlers left pending')
    } catch (err) {
      this.init.log.warn({ event: 'handlers_resume_failed', err: errorMessage(err) }, 'could not read the pending handler runs yet; will retry')
      setTimeout(() => { void this.loadPending() }, STORE_RETRY_MS).unref()
    } finally {
      this.loading = false
    }
    this.pump()
  }

  private enqueue (run: QueuedRun, fromStore = false): void {
    if (this.stopped || this.queued.has(run.id)) return
    if (!fromStore && this.queued.size >= HANDLER_QUEUE_MEMORY) {
      // It is in the pending index; read back from there once the queue drains.
      this.overflow = true
      return
    }
    this.queued.add(run.id)
    let queue = this.queues.get(run.from)
    if (queue == null) this.queues.set(run.from, queue = [])
    // Arrival order: a run read from the store may be older than those already queued.
    let at = queue.length
    while (at > 0 && queue[at - 1]!.position > run.position) at--
    queue.splice(at, 0, run)
    this.pump()
  }

  /** Starts runs while there is room: the sender whose oldest waiting run arrived first goes first. */
  private pump (): void {
    while (!this.stopped && this.running < this.concurrency) {
      let next: QueuedRun | undefined
      for (const [sender, queue] of this.queues) {
        if (this.busySenders.has(sender) || queue.length === 0) continue
        if (next == null || queue[0]!.position < next.position) next = queue[0]
      }
      if (next == null) break
      this.queues.get(next.from)!.shift()
      if (this.queues.get(next.from)!.length === 0) this.queues.delete(next.from)
      this.busySenders.add(next.from)
      this.running++
      const run = next
      let released = false
      // The sender's next run may start once this handler has exited; its outcome is stored meanwhile.
      const release = (): void => {
        if (released) return
        released = true
        this.running--
        this.busySenders.delete(run.from)
        this.pump()
      }
      const work = this.run(run, release).finally(() => {
        release()
        this.queued.delete(run.id)
        this.inFlight.delete(work)
        if (this.overflow && this.queued.size < HANDLER_QUEUE_MEMORY / 2) void this.loadPending()
      })
      this.inFlight.add(work)
    }
  }

  private async run (queued: QueuedRun, release: () => void): Promise<void> {
    const { log } = this.init
    const message = queued.message ?? await this.read(queued.id)
    if (message == null) {
      await this.done(queued.id)
      return
    }
    const handler = handlerFor(this.handlers, message.kind)
    let result: HandlerRun
    if (Date.now() > message.expires_at) {
      result = { state: 'handler_failed', exit_code: null, output_tail: `expired at ${new Date(message.expires_at).toISOString()} before its handler ran; not run`, duration_ms: 0 }
    } else if (handler == null) {
      result = { state: 'handler_failed', exit_code: null, output_tail: `no handler for kind "${message.kind}" in this node's config any more; not run`, duration_ms: 0 }
    } else {
      const input = JSON.stringify({ id: message.id, from: message.from, kind: message.kind, body: message.body, sent_at: message.sent_at, ...(message.agent != null ? { agent: message.agent } : {}) })
      const env = { ...handlerEnv(process.env), AITBC_MESH_MESSAGE_ID: message.id, AITBC_MESH_MESSAGE_FROM: message.from, AITBC_MESH_MESSAGE_KIND: message.kind, ...(message.agent != null ? { AITBC_MESH_AGENT_ID: message.agent } : {}) }
      result = await runHandler(handler, input, env, this.abort.signal)
      // Stopped by the daemon's own stop: it runs again at the next start.
      if (this.abort.signal.aborted) return
    }
    release()
    const fields = { event: 'handler_run', messageId: message.id, from: message.from, kind: message.kind, state: result.state, exitCode: result.exit_code, durationMs: result.duration_ms }
    if (result.state === 'processed') log.debug(fields, 'handler processed a message')
    else log.warn({ ...fields, output: result.output_tail.slice(-512) }, 'handler failed')
    await this.report(message, result)
    await this.done(message.id)
  }

  private async read (id: string): Promise<InboxMessage | undefined> {
    for (;;) {
      try {
        const value = await this.init.store.get(INBOX_KEY_PREFIX + id)
        return value == null ? undefined : JSON.parse(value) as InboxMessage
      } catch (err) {
        if (this.stopped) return undefined
        await new Promise(resolve => setTimeout(resolve, STORE_RETRY_MS))
      }
    }
  }

  /** Sends the outcome back to the message's sender, as a message of its own (retried until stored). */
  private async report (message: InboxMessage, result: HandlerRun): Promise<void> {
    const body = encodeOutcome({ message_id: message.id, state: result.state, exit_code: result.exit_code, output_tail: result.output_tail, processed_at: Date.now() })
    const ttl = Math.max(1, Math.min(OUTCOME_TTL_S, Math.ceil((message.expires_at - Date.now()) / 1000) + OUTCOME_TTL_S))
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.init.outbox.create({ to: message.from, kind: OUTCOME_KIND, body, ttl }, [message.from])
        return
      } catch (err) {
        if (attempt === 0) this.init.log.warn({ event: 'handler_outcome_waiting', messageId: message.id, err: errorMessage(err) }, 'could not store the handler outcome yet; retrying')
        await new Promise(resolve => setTimeout(resolve, STORE_RETRY_MS))
      }
    }
  }

  private async done (id: string): Promise<void> {
    for (;;) {
      try {
        await this.init.store.write([{ op: 'zrem', set: HANDLER_PENDING_INDEX, member: id }])
        return
      } catch {
        if (this.stopped) return
        await new Promise(resolve => setTimeout(resolve, STORE_RETRY_MS))
      }
    }
  }

  /** A target's outcome for a message this node sent: applied only from a target of that message. */
  private async applyOutcome (envelope: IncomingEnvelope): Promise<{ ok: true } | { ok: false, reason: string }> {
    const parsed = parseOutcome(envelope.body)
    const refuse = (reason: string): { ok: false, reason: string } => {
      const category = !parsed.ok ? 'malformed outcome' : /not a target/.test(reason) ? 'not a target' : 'unknown message'
      this.rejections.reject('outcome_rejected', envelope.from, category, { messageId: envelope.id, detail: reason }, 'handler outcome rejected')
      return { ok: false, reason }
    }
    if (!parsed.ok) return refuse(parsed.reason)
    const { message_id: messageId, ...outcome } = parsed.outcome
    // A time from the future (a skewed clock) is shown as the arrival time.
    const now = Date.now()
    const notApplied = await this.init.outbox.applyOutcome(messageId, envelope.from, { ...outcome, processed_at: Math.min(outcome.processed_at, now) })
    return notApplied == null ? { ok: true } : refuse(notApplied)
  }
}
