import type { Logger } from 'pino'
import { allNodes, type MeshConfig } from '../config/config.js'
import { UsageError } from '../errors.js'
import type { MeshLibp2p } from '../mesh/libp2p.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { resolveTargets } from '../operations/targets.js'
import type { StoreBackend } from '../store/backend.js'
import type { MeshMetrics } from '../metrics.js'
import { MessageDelivery } from './delivery/index.js'
import { GiveBack } from './give-back.js'
import { Inbox } from './inbox.js'
import { HandlerService } from './handlers/service.js'
import { deliveryCounts, isReceipted, parseRouteSend, parseSend, type InboxMessage, type OutgoingMessage, type TargetDelivery } from './message.js'
import { CapabilityRouter, type AgentDirectory, type NoCandidate } from './routing/router.js'
import { Outbox, type DeliveryEvent, type SentLookup } from './outbox.js'
import { SentRetention } from './sent-retention.js'

export interface MessagingInit {
  config: MeshConfig
  libp2p: MeshLibp2p
  peers: PeerTable
  store: StoreBackend
  log: Logger
  metrics?: MeshMetrics
  /** Agent discovery, for sends routed by capability. */
  agents?: AgentDirectory
}

/** The view of a sent message that callers get: per-target states and the delivery counts. */
export function messageView (message: OutgoingMessage, outcome: 'sent' | 'unknown' = 'sent'): Record<string, unknown> {
  return { ...message, outcome, message_delivery: deliveryCounts([message]), success: { delivered: waitSucceeded(message, false), processed: waitSucceeded(message, true) } }
}

/** What `message ID` shows: the message, or that its send is being settled, or that it was not sent. */
export function lookupView (found: SentLookup): Record<string, unknown> {
  if (found.outcome === 'not_sent') return { id: found.id, outcome: 'not_sent', reason: 'the store write did not complete', expires_at: found.expires_at }
  return messageView(found.message, found.outcome)
}

/** A target that receipted the message saying it has no handler for its kind: no outcome will come. */
export function noHandler (target: TargetDelivery): boolean {
  return target.state === 'delivered' && target.handler === false
}

/**
 * Whether a wait is over. Plain: every target receipted or failed. With `processed`: every target
 * processed, or one failed (delivery or handler) or has no handler for the kind. A routed
 * message: its current target receipted (processed), or no candidate is left.
 */
export function waitDone (message: OutgoingMessage, processed: boolean): boolean {
  const route = message.route
  if (route != null) {
    if (route.state !== 'routing') return true
    const current = message.targets[route.tried[route.tried.length - 1]!]
    return current != null && (processed ? current.state === 'processed' : isReceipted(current.state))
  }
  const targets = Object.values(message.targets)
  if (!processed) return targets.every(t => t.state !== 'pending')
  return targets.every(t => t.state === 'processed') || targets.some(t => t.state === 'failed' || t.state === 'handler_failed' || noHandler(t))
}

/**
 * Whether a finished wait (or `message ID`) counts as a success: what the CLI's exit code says.
 * A routed message fails once no candidate is left (the last one, too, failed or had no handler).
 */
export function waitSucceeded (message: OutgoingMessage, processed: boolean): boolean {
  const ok = (state: string): boolean => processed ? state === 'processed' : isReceipted(state as OutgoingMessage['targets'][string]['state'])
  const route = message.route
  if (route != null) {
    const current = message.targets[route.tried[route.tried.length - 1]!]
    return route.state !== 'exhausted' && current != null && ok(current.state)
  }
  return Object.values(message.targets).every(t => ok(t.state))
}

/** Coordination messages: send with durable receipts, inspect, wait, and the inbox. */
export class Messaging {
  readonly inbox: Inbox
  readonly outbox: Outbox
  private readonly delivery: MessageDelivery
  private readonly retention: SentRetention
  private readonly giveBack: GiveBack
  private readonly handlers: HandlerService
  private readonly router?: CapabilityRouter

  constructor (private readonly init: MessagingInit) {
    this.inbox = new Inbox(init.store, init.log, init.config.retention.inbox)
    this.outbox = new Outbox(init.config.node.name, init.store, init.log, init.metrics)
    this.delivery = new MessageDelivery({ network: init.libp2p, peers: init.peers, inbox: this.inbox, outbox: this.outbox, node: init.config.node.name, clockSkewMs: init.config.trust.clockSkewMs, log: init.log })
    this.retention = new SentRetention(init.store, this.outbox, () => init.config.retention.sent, init.log)
    this.giveBack = new GiveBack(init.store, this.outbox, init.log, init.config.trust.clockSkewMs)
    this.handlers = new HandlerService({ node: init.config.node.name, inbox: this.inbox, outbox: this.outbox, store: init.store, log: init.log, handlers: init.config.handlers, concurrency: init.config.handlerConcurrency })
    if (init.agents != null) this.router = new CapabilityRouter({ node: init.config.node.name, agents: init.agents, peers: init.peers, outbox: this.outbox, log: init.log })
  }

  /** A reload's handlers and their concurrency limit: used for messages stored from now on. */
  setHandlers (handlers: MeshConfig['handlers'], concurrency: number): void {
    this.handlers.setHandlers(handlers, concurrency)
  }

  /** A reload's new allowlist: sends resolve their targets against it from now on. */
  setPeers (peers: MeshConfig['peers']): void {
    this.init.config = { ...this.init.config, peers }
  }

  private unwatchOutcomes?: () => void

  async start (): Promise<void> {
    // A failed target is worth a line in the journal; deliveries, at thousands a second, only at debug.
    this.unwatchOutcomes = this.outbox.watch(event => {
      const peerId = this.init.peers.get(event.node)?.peerId.toString()
      if (event.state === 'failed') this.init.log.warn({ event: 'message_failed', messageId: event.id, peer: event.node, peerId, reason: event.reason }, 'message not delivered')
      else if (event.state === 'handler_failed') this.init.log.warn({ event: 'message_handler_failed', messageId: event.id, peer: event.node, peerId, exitCode: event.exit_code }, 'a target\'s handler failed')
      else this.init.log.debug({ event: 'message_delivered', messageId: event.id, peer: event.node, peerId }, 'message receipted')
    })
    // Handlers hook into the inbox before anything can arrive.
    this.handlers.start()
    await this.inbox.start()
    await this.delivery.start()
    await this.outbox.start()
    this.router?.start()
    this.retention.start()
  }

  async stop (): Promise<void> {
    this.unwatchOutcomes?.()
    await this.retention.stop()
    this.router?.stop()
    await this.delivery.stop()
    await this.handlers.stop()
    await this.outbox.stop()
    await this.inbox.stop()
  }

  /** Fails what is pending for a node removed from the allowlist; returns how many messages that was. */
  forgetNode (node: string): number {
    this.outbox.dropRedeliveries(node)
    return this.delivery.forgetNode(node)
  }

  /**
   * This node's store lost data: the sent messages held in memory (pending, recent, being
   * delivered again) are written back with their index entries, and the epochs known of peers.
   */
  writeBack (): void {
    const count = this.outbox.writeBack()
    void this.giveBack.writeBack().catch(() => {})
    this.init.log.warn({ event: 'outbox_written_back', messages: count }, 'the store lost data; writing back the sent messages held in memory')
  }

  /** A peer's newest heartbeat showed its store epoch: a new one gets back what its store lost. */
  peerStoreEpoch (node: string, epoch: string, lostFromMs: number): void {
    this.giveBack.peerEpoch(node, epoch, lostFromMs)
  }

  /** Runs one sent-retention pass now; returns how many records it pruned. */
  async pruneSent (): Promise<number> {
    return await this.retention.pass()
  }

  /** Validates, resolves the targets, stores the message durably, and returns it (with its id). */
  async send (input: unknown): Promise<OutgoingMessage> {
    const data = parseSend(input)
    const targets = resolveTargets(data.to, allNodes(this.init.config)).map(n => n.name)
    const message = await this.outbox.create(data, targets)
    this.init.log.debug({ event: 'message_sent', messageId: message.id, to: data.to, targets, kind: data.kind, bytes: Buffer.byteLength(data.body) }, 'message accepted for delivery')
    return message
  }

  /** A send to the best agent with a capability, or what was searched when none can take it. */
  async sendToCapability (input: unknown): Promise<OutgoingMessage | NoCandidate> {
    const data = parseRouteSend(input)
    if (this.router == null) throw new UsageError('send --to-capability: this daemon has no agent registry')
    return await this.router.send({ capability: data.to_capability, ...(data.agent_type != null ? { agent_type: data.agent_type } : {}), ...(data.min_health != null ? { min_health: data.min_health } : {}), kind: data.kind, body: data.body, ttl: data.ttl })
  }

  async get (id: unknown): Promise<OutgoingMessage> {
    const found = await this.lookup(id)
    if (found.outcome === 'unknown') throw new UsageError(`message ${found.message.id}: outcome not known yet (the store has not answered); try again`)
    if (found.outcome === 'not_sent') throw new UsageError(`message ${found.id}: not sent: the store write did not complete`)
    return found.message
  }

  /** What became of a message id this node handed out. */
  async lookup (id: unknown): Promise<SentLookup> {
    if (typeof id !== 'string' || id === '') throw new UsageError('message: expected a message id')
    const found = await this.outbox.lookup(id)
    if (found == null) throw new UsageError(`message: no message "${id}" was sent from this node (or it is older than retention.sent)`)
    return found
  }

  /**
   * Resolves when every target of `id` has receipted or failed, or when `timeoutMs` passes;
   * `onEvent` hears each target as it finishes.
   */
  async wait (id: string, timeoutMs: number, onEvent?: (event: DeliveryEvent) => void, signal?: AbortSignal, processed = false): Promise<OutgoingMessage> {
    const message = await this.get(id)
    const done = (): boolean => waitDone(this.outbox.get(id) ?? message, processed)
    // Targets that finished before the caller started waiting are reported first.
    for (const [node, t] of Object.entries(message.targets)) {
      if (t.state !== 'pending') onEvent?.({ id, node, state: t.state, ...(t.reason != null ? { reason: t.reason } : {}), ...(t.receipt_at != null ? { receipt_at: t.receipt_at } : {}), ...(t.exit_code !== undefined ? { exit_code: t.exit_code } : {}), ...(t.handler != null ? { handler: t.handler } : {}) })
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
