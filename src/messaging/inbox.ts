import type { Logger } from 'pino'
import { errorMessage, UsageError } from '../errors.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import { DirtyWriter } from '../store/writer.js'
import type { InboxMessage } from './message.js'

export const INBOX_KEY_PREFIX = 'mesh:in:'
export const INBOX_LIST = 'mesh:inbox'

export type ReceiveResult =
  | { status: 'stored', storedAt: number }
  | { status: 'duplicate', storedAt: number }
  | { status: 'rejected', reason: string }

export interface IncomingEnvelope {
  id: string
  from: string
  kind: string
  body: string
  sentAt: number
  expiresAt: number
}

/**
 * Messages this node received. Each id is stored once, whatever the retries: the ids already
 * stored are known in memory (loaded from the store's inbox list at start). Positions are given
 * in arrival order, so messages from one sender appear in its send order. A receive resolves
 * only once the message is durably stored; if the store is down it fails and the sender retries.
 */
export class Inbox {
  private readonly known = new Map<string, { position: number, storedAt: number }>()
  private readonly unwritten = new Map<string, InboxMessage>()
  private nextPosition = 0
  private readonly writer: DirtyWriter
  private readonly followers = new Set<(message: InboxMessage) => void>()

  constructor (private readonly store: StoreBackend, private readonly log: Logger) {
    this.writer = new DirtyWriter(store, key => this.opsFor(key), log, 'inbox', keys => {
      for (const key of keys) this.unwritten.delete(key)
    })
  }

  private loaded = false

  /** Loads the ids already stored in the background; until then messages are refused (and retried). */
  async start (): Promise<void> {
    void this.load().then(() => { this.loaded = true })
    this.store.onReady(() => { void this.writer.flush() })
  }

  private stopped = false

  async stop (): Promise<void> {
    this.stopped = true
    await this.writer.flush()
  }

  private async load (): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const ids = await this.store.lrange(INBOX_LIST, 0, -1)
        ids.forEach((id, position) => { if (!this.known.has(id)) this.known.set(id, { position, storedAt: 0 }) })
        this.nextPosition = ids.length
        return
      } catch (err) {
        // Redis may still be connecting; without the list, duplicates could not be told apart.
        if (attempt === 0) this.log.warn({ event: 'inbox_load_waiting', err: errorMessage(err) }, 'waiting for the store to load the inbox')
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
  }

  private opsFor (id: string): WriteOp[] {
    const message = this.unwritten.get(id)
    if (message == null) return []
    return [{ op: 'set', key: INBOX_KEY_PREFIX + id, value: JSON.stringify(message) }, { op: 'rpush', list: INBOX_LIST, value: id }]
  }

  async receive (envelope: IncomingEnvelope, now = Date.now()): Promise<ReceiveResult> {
    if (!this.loaded) throw new Error('inbox not loaded yet (store unavailable)')
    const seen = this.known.get(envelope.id)
    if (seen != null) {
      // A retry of a message whose write is still under way must not be receipted before it lands.
      if (this.unwritten.has(envelope.id) || this.writer.pending > 0) await this.writer.flush()
      if (this.unwritten.has(envelope.id)) throw new Error('store unavailable: message not yet stored')
      return { status: 'duplicate', storedAt: seen.storedAt }
    }
    if (now > envelope.expiresAt) return { status: 'rejected', reason: `expired at ${new Date(envelope.expiresAt).toISOString()}` }
    const message: InboxMessage = {
      id: envelope.id,
      from: envelope.from,
      kind: envelope.kind,
      body: envelope.body,
      sent_at: envelope.sentAt,
      expires_at: envelope.expiresAt,
      received_at: now,
      position: this.nextPosition++
    }
    this.known.set(message.id, { position: message.position, storedAt: now })
    this.unwritten.set(message.id, message)
    const stored = await this.writer.commit(message.id) === 'written'
    if (!stored && this.unwritten.has(message.id)) {
      throw new Error(`store unavailable: ${this.writer.error ?? 'write failed'}`)
    }
    for (const follower of this.followers) follower(message)
    return { status: 'stored', storedAt: now }
  }

  /** Messages after `since` (a message id, or an ISO time), oldest first. */
  async list (since: string | undefined, limit: number): Promise<InboxMessage[]> {
    let start = 0
    let after: number | undefined
    if (since != null && since !== '') {
      const byId = this.known.get(since)
      if (byId != null) start = byId.position + 1
      else {
        const time = Date.parse(since)
        if (Number.isNaN(time)) throw new UsageError(`--since "${since}": not a message id in this inbox, nor a time such as 2026-11-23T10:00:00Z`)
        after = time
      }
    }
    const ids = await this.store.lrange(INBOX_LIST, start, -1)
    const seen = new Set<string>()
    const unique = ids.filter(id => !seen.has(id) && (seen.add(id), true))
    const out: InboxMessage[] = []
    for (let i = 0; i < unique.length && out.length < limit; i += 500) {
      const chunk = unique.slice(i, i + 500)
      const values = await this.store.mget(chunk.map(id => INBOX_KEY_PREFIX + id))
      for (const value of values) {
        if (value == null) continue
        const message = JSON.parse(value) as InboxMessage
        if (after != null && message.received_at <= after) continue
        out.push(message)
        if (out.length >= limit) break
      }
    }
    return out
  }

  follow (listener: (message: InboxMessage) => void): () => void {
    this.followers.add(listener)
    return () => { this.followers.delete(listener) }
  }
}
