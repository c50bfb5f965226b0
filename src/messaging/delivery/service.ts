import type { Logger } from 'pino'
import type { PeerId } from '@libp2p/interface'
import { Receipt, ReceiptStatus } from '../../../protocols/messages.js'
import { DELIVERY_MAX_INBOUND_STREAMS, DELIVERY_MAX_OUTBOUND_STREAMS, RECEIPT_MAX_REASON_CHARS } from '../../constants.js'
import { errorMessage } from '../../errors.js'
import type { PeerTable } from '../../mesh/peer-table.js'
import { RejectionLog } from '../../mesh/rejection-log.js'
import { clipText } from '../../mesh/wire-bounds.js'
import type { Inbox } from '../inbox.js'
import type { Outbox } from '../outbox.js'
import { DeliveryStoppedError } from './errors.js'
import { DEFAULT_DELIVERY_LIMITS, MESSAGES_PROTOCOL, type DeliveryLimits, type DeliveryNetwork } from './protocol.js'
import { MessageReceiver } from './receiver.js'
import { TargetSession } from './sender.js'

/** What delivery takes from the outbox: the messages waiting per target, and where it reports their outcome. */
export type DeliveryOutbox = Pick<Outbox, 'hasPending' | 'nextPending' | 'noteAttempt' | 'pendingFor' | 'settle' | 'onPending' | 'inFlightCheck'>

export interface MessageDeliveryInit {
  network: DeliveryNetwork
  peers: Pick<PeerTable, 'get' | 'getByPeerId'>
  /** Where received messages are stored. */
  inbox: Pick<Inbox, 'receive'>
  outbox: DeliveryOutbox
  node: string
  /** trust.clockSkewMs: how far ahead of our clock a message's sent_at may be. */
  clockSkewMs: number
  log: Logger
  limits?: Partial<DeliveryLimits>
}

/** Coordination message delivery: the receiving protocol handler and one sending session per target. */
export class MessageDelivery {
  private readonly sessions = new Map<string, TargetSession>()
  private started = false
  /** Aborted by stop(): every inbound stream in flight carries it (each session has its own). */
  private stopping = new AbortController()
  private readonly limits: DeliveryLimits
  /** What peers send that is refused: envelopes, streams, receipts; once per (peer, reason). */
  readonly rejections: RejectionLog

  constructor (private readonly init: MessageDeliveryInit) {
    this.rejections = new RejectionLog(init.log)
    this.limits = { ...DEFAULT_DELIVERY_LIMITS, ...init.limits }
    this.onPeerConnect = this.onPeerConnect.bind(this)
  }

  async start (): Promise<void> {
    if (this.started) return
    const { network, outbox } = this.init
    this.stopping = new AbortController()
    const receiver = new MessageReceiver({
      peers: this.init.peers,
      receive: async envelope => await this.init.inbox.receive(envelope),
      node: this.init.node,
      clockSkewMs: this.init.clockSkewMs,
      rejections: this.rejections,
      limits: this.limits,
      stopping: this.stopping.signal
    })
    await network.handle(MESSAGES_PROTOCOL, receiver.handle, { maxInboundStreams: DELIVERY_MAX_INBOUND_STREAMS, maxOutboundStreams: DELIVERY_MAX_OUTBOUND_STREAMS })
    network.addEventListener('peer:connect', this.onPeerConnect)
    outbox.onPending = node => { this.kick(node) }
    outbox.inFlightCheck = (id, node) => this.sessions.get(node)?.inFlight.has(id) ?? false
    this.started = true
  }

  /** Stops in the reverse order of start: no new work, then the sessions and streams in flight are aborted. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    const { network, outbox } = this.init
    delete outbox.onPending
    network.removeEventListener('peer:connect', this.onPeerConnect)
    await network.unhandle(MESSAGES_PROTOCOL)
    this.stopping.abort(new DeliveryStoppedError('message delivery stopped'))
    for (const session of this.sessions.values()) session.stop()
    this.sessions.clear()
  }

  /** A target of a new or resumed message; delivers to this node itself at once. */
  kick (node: string): void {
    if (node === this.init.node) {
      void this.deliverLocally()
      return
    }
    const peer = this.init.peers.get(node)
    if (peer == null) return
    let session = this.sessions.get(node)
    if (session == null && this.started) {
      session = new TargetSession({
        peer,
        network: this.init.network,
        outbox: this.init.outbox,
        onReceipt: (target, receipt) => { this.onReceipt(target, receipt) },
        rejections: this.rejections,
        log: this.init.log,
        limits: this.limits
      })
      this.sessions.set(node, session)
    }
    session?.notify()
  }

  /**
   * A node taken out of the allowlist: its session ends and what was pending for it fails, since
   * it can no longer connect to receipt it.
   */
  forgetNode (node: string): number {
    this.sessions.get(node)?.stop()
    this.sessions.delete(node)
    const pending = this.init.outbox.pendingFor(node)
    for (const m of pending) this.init.outbox.settle(m.id, node, 'failed', { reason: 'removed from the mesh' })
    return pending.length
  }

  private onPeerConnect (evt: CustomEvent<PeerId>): void {
    const peer = this.init.peers.getByPeerId(evt.detail)
    if (peer != null) this.kick(peer.name)
  }

  private onReceipt (node: string, receipt: Receipt): void {
    const outbox = this.init.outbox
    if (receipt.status === ReceiptStatus.STORED || receipt.status === ReceiptStatus.DUPLICATE) {
      outbox.settle(receipt.id, node, 'delivered', { receiptAt: Date.now(), ...(receipt.handler != null ? { handler: receipt.handler } : {}) })
    } else if (receipt.status === ReceiptStatus.REJECTED) {
      outbox.settle(receipt.id, node, 'failed', { reason: `rejected: ${clipText(receipt.reason, RECEIPT_MAX_REASON_CHARS)}` })
    }
  }

  private async deliverLocally (): Promise<void> {
    const { outbox, inbox, node } = this.init
    for (const m of outbox.pendingFor(node)) {
      try {
        const agent = m.targets[node]?.agent_id
        const result = await inbox.receive({ id: m.id, from: m.from, kind: m.kind, body: m.body, sentAt: m.sent_at, expiresAt: m.expires_at, ...(agent != null ? { agent } : {}) })
        if (result.status === 'rejected') outbox.settle(m.id, node, 'failed', { reason: `rejected: ${result.reason}` })
        else outbox.settle(m.id, node, 'delivered', { receiptAt: Date.now(), ...(result.handler != null ? { handler: result.handler } : {}) })
      } catch (err) {
        this.init.log.warn({ event: 'local_delivery_failed', id: m.id, err: errorMessage(err) }, 'could not store a message for this node; will retry')
        setTimeout(() => { this.kick(node) }, this.limits.retryInitialMs).unref()
        return
      }
    }
  }
}
