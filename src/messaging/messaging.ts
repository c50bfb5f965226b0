import type { Logger } from 'pino'
import { allNodes, type MeshConfig } from '../config/config.js'
import { UsageError } from '../errors.js'
import type { MeshLibp2p } from '../mesh/libp2p.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { resolveTargets } from '../operations/targets.js'
import type { StoreBackend } from '../store/backend.js'
import type { MeshMetrics } from '../metrics.js'
import { MessageDelivery } from './delivery.js'
import { Inbox } from './inbox.js'
import { deliveryCounts, parseSend, type InboxMessage, type OutgoingMessage } from './message.js'
import { Outbox, type DeliveryEvent } from './outbox.js'

export interface MessagingInit {
  config: MeshConfig
  libp2p: MeshLibp2p
  peers: PeerTable
  store: StoreBackend
  log: Logger
  metrics?: MeshMetrics
}

/** The view of a sent message that callers get: per-target states and the delivery counts. */
export function messageView (message: OutgoingMessage): Record<string, unknown> {
  return { ...message, message_delivery: deliveryCounts([message]) }
}

/** Coordination messages: send with durable receipts, inspect, wait, and the inbox. */
export class Messaging {
  readonly inbox: Inbox
  readonly outbox: Outbox
  private readonly delivery: MessageDelivery

  constructor (private readonly init: MessagingInit) {
    this.inbox = new Inbox(init.store, init.log, init.config.retention.inbox)
    this.outbox = new Outbox(init.config.node.name, init.store, init.log, init.metrics)
    this.delivery = new MessageDelivery({ libp2p: init.libp2p, peers: init.peers, inbox: this.inbox, outbox: this.outbox, node: init.config.node.name, clockSkewMs: init.config.trust.clockSkewMs, log: init.log })
  }

  private unwatchOutcomes?: () => void

  async start (): Promise<void> {
    // A failed target is worth a line in the journal; deliveries, at thousands a second, only at debug.
    this.unwatchOutcomes = this.outbox.watch(event => {
      const peerId = this.init.peers.get(event.node)?.peerId.toString()
      if (event.state === 'failed') this.init.log.warn({ event: 'message_failed', messageId: event.id, peer: event.node, peerId, reason: event.reason }, 'message not delivered')
      else this.init.log.debug({ event: 'message_delivered', messageId: event.id, peer: event.node, peerId }, 'message receipted')
    })
    await this.inbox.start()
    await this.delivery.start()
    await this.outbox.start()
  }

  async stop (): Promise<void> {
    this.unwatchOutcomes?.()
    await this.delivery.stop()
    await this.outbox.stop()
    await this.inbox.stop()
  }

  /** Fails what is pending for a node removed from the allowlist; returns how many messages that was. */
  forgetNode (node: string): number {
    return this.delivery.forgetNode(node)
  }

  /** Validates, resolves the targets, stores the message durably, and returns it (with its id). */
  async send (input: unknown): Promise<OutgoingMessage> {
    const data = parseSend(input)
    const targets = resolveTargets(data.to, allNodes(this.init.config)).map(n => n.name)
    const message = await this.outbox.create(data, targets)
    this.init.log.debug({ event: 'message_sent', messageId: message.id, to: data.to, targets, kind: data.kind, bytes: Buffer.byteLength(data.body) }, 'message accepted for delivery')
    return message
  }

  async get (id: unknown): Promise<OutgoingMessage> {
    if (typeof id !== 'string' || id === '') throw new UsageError('message: expected a message id')
    const message = await this.outbox.load(id)
    if (message == null) throw new UsageError(`message: no message "${id}" was sent from this node`)
    return message
  }

  /**
   * Resolves when every target of `id` has receipted or failed, or when `timeoutMs` passes;
   * `onEvent` hears each target as it finishes.
   */
  async wait (id: string, timeoutMs: number, onEvent?: (event: DeliveryEvent) => void, signal?: AbortSignal): Promise<OutgoingMessage> {
    const message = await this.get(id)
    const done = (): boolean => Object.values(message.targets).every(t => t.state !== 'pending')
    // Targets that finished before the caller started waiting are reported first.
    for (const [node, t] of Object.entries(message.targets)) {
      if (t.state !== 'pending') onEvent?.({ id, node, state: t.state, ...(t.reason != null ? { reason: t.reason } : {}), ...(t.receipt_at != null ? { receipt_at: t.receipt_at } : {}) })
    }
    if (done()) return message
    await new Promise<void>(resolve => {
      const timer = setTimeout(finish, timeoutMs)
      const unwatch = this.outbox.watch(event => {
        if (event.id !== id) return
        onEvent?.(event)
        if (done()) finish()
      })
      signal?.addEventListener('abort', finish, { once: true })
      function finish (): void {
        clearTimeout(timer)
        unwatch()
        resolve()
      }
    })
    return this.outbox.get(id) ?? message
  }

  /** The latest messages sent from this node with each target's state, newest first. */
  recentSent (limit: number): OutgoingMessage[] {
    return this.outbox.recent(limit)
  }

  watchDeliveries (listener: (event: DeliveryEvent) => void): () => void {
    return this.outbox.watch(listener)
  }

  async inboxList (params: { since?: unknown, limit?: unknown }): Promise<InboxMessage[]> {
    const since = params.since
    if (since != null && typeof since !== 'string') throw new UsageError('inbox: "since" must be a message id or an ISO time')
    const limit = params.limit ?? 1000
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 100000) throw new UsageError('inbox: "limit" must be a whole number from 1 to 100000')
    return await this.inbox.list(since ?? undefined, limit)
  }

  /** Every message after `since`, a page at a time (for `inbox --follow`). */
  inboxReplay (since: string | undefined): AsyncGenerator<InboxMessage[]> {
    return this.inbox.replay(since)
  }

  followInbox (listener: (message: InboxMessage) => void): () => void {
    return this.inbox.follow(listener)
  }
}
