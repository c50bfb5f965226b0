import type { Logger } from 'pino'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { pbStream, type ProtobufMessageStream } from '@libp2p/utils'
import { Envelope, Receipt, ReceiptStatus } from '../../protocols/messages.js'
import {
  DELIVERY_RECEIPT_TIMEOUT_MS, DELIVERY_RETRY_INITIAL_MS, DELIVERY_RETRY_MAX_MS, DELIVERY_STREAM_MAX_MESSAGE_BYTES,
  DELIVERY_WINDOW, RECEIPT_MAX_REASON_CHARS
} from '../constants.js'
import { errorMessage, ProtocolError } from '../errors.js'
import type { MeshLibp2p } from '../mesh/libp2p.js'
import type { PeerState, PeerTable } from '../mesh/peer-table.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { clipText } from '../mesh/wire-bounds.js'
import { checkEnvelope } from './envelope.js'
import type { Inbox, ReceiveResult } from './inbox.js'
import type { OutgoingMessage } from './message.js'
import type { Outbox } from './outbox.js'

export const MESSAGES_PROTOCOL = '/aitbc-mesh/messages/1.0.0'
const textEncoder = new TextEncoder()

export interface MessageDeliveryInit {
  libp2p: MeshLibp2p
  peers: PeerTable
  inbox: Inbox
  outbox: Outbox
  node: string
  /** trust.clockSkewMs: how far ahead of our clock a message's sent_at may be. */
  clockSkewMs: number
  log: Logger
}

/** A stream refused on purpose (framing, an envelope no receipt can answer); its reason is a stable category. */
class StreamRefused extends ProtocolError {
  constructor (readonly reason: string, detail: string, readonly fields: Record<string, unknown> = {}) {
    super(detail)
  }
}

/**
 * Sending side, one per target node: keeps one stream to the target, writes pending messages in
 * send order with up to DELIVERY_WINDOW in flight, and settles each on its receipt. When the
 * stream fails, everything unreceipted goes out again on a new one (the target stores each id
 * once), after a backoff that grows while the failures continue.
 */
class TargetSession {
  private running = true
  private wake?: () => void
  readonly inFlight = new Set<string>()
  private failures = 0
  private stream?: Stream

  constructor (private readonly peer: PeerState, private readonly service: MessageDelivery, private readonly init: MessageDeliveryInit) {
    void this.loop()
  }

  notify (): void {
    this.wake?.()
  }

  stop (): void {
    this.running = false
    this.stream?.abort(new Error('stopping'))
    this.wake?.()
  }

  private async idle (ms?: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = ms != null ? setTimeout(resolve, ms) : undefined
      this.wake = () => { clearTimeout(timer); delete this.wake; resolve() }
    })
  }

  private async loop (): Promise<void> {
    while (this.running) {
      if (!this.init.outbox.hasPending(this.peer.name) || !this.peer.connected) {
        await this.idle(this.peer.connected ? undefined : 1000)
        continue
      }
      try {
        await this.deliver()
        this.failures = 0
      } catch (err) {
        this.failures++
        const delay = Math.min(DELIVERY_RETRY_MAX_MS, DELIVERY_RETRY_INITIAL_MS * 2 ** (this.failures - 1))
        if (this.failures === 1 || this.failures % 10 === 0) {
          this.init.log.info({ event: 'delivery_retry', peer: this.peer.name, failures: this.failures, retryInMs: delay, err: errorMessage(err) }, 'message delivery interrupted; will resend what is unreceipted')
        }
        this.inFlight.clear()
        if (this.running) await this.idle(delay)
      }
    }
  }

  /** One stream's life: send and settle until nothing is pending, or fail. */
  private async deliver (): Promise<void> {
    const { libp2p, outbox } = this.init
    const stream = await libp2p.dialProtocol(this.peer.peerId, MESSAGES_PROTOCOL, { signal: AbortSignal.timeout(DELIVERY_RECEIPT_TIMEOUT_MS) })
    this.stream = stream
    const pb = pbStream(stream, { maxDataLength: DELIVERY_STREAM_MAX_MESSAGE_BYTES })
    const envelopes = pb.pb(Envelope)
    const receipts = pb.pb(Receipt)
    const order: string[] = []
    let writerError: unknown
    try {
      const reader = this.readReceipts(receipts, order)
      for (;;) {
        // Let receipts and new sends that are already queued land first, so one write carries many envelopes.
        await new Promise(resolve => setImmediate(resolve))
        const room = DELIVERY_WINDOW - this.inFlight.size
        const batch = room > 0 ? outbox.nextPending(this.peer.name, room, id => this.inFlight.has(id)) : []
        if (batch.length === 0 && this.inFlight.size === 0) break
        if (batch.length === 0) {
          await Promise.race([this.idle(), reader.progress()])
          if (reader.failed != null) throw reader.failed
          continue
        }
        for (const m of batch) {
          this.inFlight.add(m.id)
          order.push(m.id)
          outbox.noteAttempt(m.id, this.peer.name)
        }
        try {
          await envelopes.writeV(batch.map(m => this.envelopeOf(m)), { signal: AbortSignal.timeout(DELIVERY_RECEIPT_TIMEOUT_MS) })
        } catch (err) {
          writerError = err
          throw err
        }
        reader.arm()
        if (reader.failed != null) throw reader.failed
      }
      await stream.close({ signal: AbortSignal.timeout(DELIVERY_RECEIPT_TIMEOUT_MS) }).catch(err => { stream.abort(err) })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(writerError ?? err)))
      throw err
    } finally {
      delete this.stream
    }
  }

  private envelopeOf (m: OutgoingMessage): Envelope {
    return { id: m.id, from: m.from, kind: m.kind, body: textEncoder.encode(m.body), sentAtMs: BigInt(m.sent_at), expiresAtMs: BigInt(m.expires_at), seq: BigInt(m.seq) }
  }

  /** Reads receipts in order; each must answer the oldest envelope in flight. */
  private readReceipts (receipts: ProtobufMessageStream<Receipt>, order: string[]): { progress: () => Promise<void>, arm: () => void, failed?: unknown } {
    const state: { progress: () => Promise<void>, arm: () => void, failed?: unknown } = { progress: async () => {}, arm: () => {} }
    let notify: (() => void) | undefined
    state.progress = async () => await new Promise<void>(resolve => { notify = resolve })
    let timer: NodeJS.Timeout | undefined
    const fail = (err: unknown): void => {
      state.failed ??= err
      clearTimeout(timer)
      notify?.()
      this.wake?.()
    }
    // A receipt overdue for the oldest envelope in flight resets the stream.
    state.arm = () => {
      if (timer != null || this.inFlight.size === 0) return
      timer = setTimeout(() => { fail(new ProtocolError(`no receipt from ${this.peer.name} within ${DELIVERY_RECEIPT_TIMEOUT_MS} ms`)) }, DELIVERY_RECEIPT_TIMEOUT_MS)
    }
    void (async () => {
      try {
        while (this.running) {
          const receipt = await receipts.read()
          clearTimeout(timer)
          timer = undefined
          const expected = order.shift()
          const mismatch = receipt.id !== expected
            ? 'receipt for another message'
            : receipt.node !== this.peer.name
              ? 'receipt names another node'
              : receipt.status === ReceiptStatus.RECEIPT_STATUS_UNSPECIFIED ? 'receipt without a status' : undefined
          if (mismatch != null) {
            // Forged, out of order or empty: drop the stream (and everything in flight goes out again).
            const fields = { receiptFor: clipText(receipt.id, 64), receiptNode: clipText(receipt.node, 64), expected, status: receipt.status }
            this.service.rejections.reject('receipt_rejected', this.peer.name, mismatch, fields, 'receipt does not match the message in flight; resetting the stream')
            throw new ProtocolError(`${mismatch}: receipt for ${fields.receiptFor} from "${fields.receiptNode}" (${receipt.status}) does not answer ${expected ?? 'nothing in flight'}`)
          }
          this.inFlight.delete(receipt.id)
          this.service.onReceipt(this.peer.name, receipt)
          if (this.inFlight.size > 0) state.arm()
          notify?.()
          this.wake?.()
        }
      } catch (err) {
        fail(err)
      }
    })()
    return state
  }
}

/** Coordination message delivery: the receiving protocol handler and one session per target. */
export class MessageDelivery {
  private readonly sessions = new Map<string, TargetSession>()
  private started = false
  /** What peers send that is refused: envelopes, streams, receipts; once per (peer, reason). */
  readonly rejections: RejectionLog

  constructor (private readonly init: MessageDeliveryInit) {
    this.rejections = new RejectionLog(init.log)
    this.handle = this.handle.bind(this)
    this.onPeerConnect = this.onPeerConnect.bind(this)
  }

  async start (): Promise<void> {
    await this.init.libp2p.handle(MESSAGES_PROTOCOL, this.handle, { maxInboundStreams: 16, maxOutboundStreams: 16 })
    this.init.libp2p.addEventListener('peer:connect', this.onPeerConnect)
    this.init.outbox.onPending = node => { this.kick(node) }
    this.init.outbox.inFlightCheck = (id, node) => this.sessions.get(node)?.inFlight.has(id) ?? false
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    delete this.init.outbox.onPending
    this.init.libp2p.removeEventListener('peer:connect', this.onPeerConnect)
    for (const session of this.sessions.values()) session.stop()
    this.sessions.clear()
    await this.init.libp2p.unhandle(MESSAGES_PROTOCOL)
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
    if (session == null && this.started) this.sessions.set(node, session = new TargetSession(peer, this, this.init))
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

  onReceipt (node: string, receipt: Receipt): void {
    const outbox = this.init.outbox
    if (receipt.status === ReceiptStatus.STORED || receipt.status === ReceiptStatus.DUPLICATE) {
      outbox.settle(receipt.id, node, 'delivered', { receiptAt: Date.now() })
    } else if (receipt.status === ReceiptStatus.REJECTED) {
      outbox.settle(receipt.id, node, 'failed', { reason: `rejected: ${clipText(receipt.reason, RECEIPT_MAX_REASON_CHARS)}` })
    }
  }

  private async deliverLocally (): Promise<void> {
    const { outbox, inbox, node } = this.init
    for (const m of outbox.pendingFor(node)) {
      try {
        const result = await inbox.receive({ id: m.id, from: m.from, kind: m.kind, body: m.body, sentAt: m.sent_at, expiresAt: m.expires_at })
        if (result.status === 'rejected') outbox.settle(m.id, node, 'failed', { reason: `rejected: ${result.reason}` })
        else outbox.settle(m.id, node, 'delivered', { receiptAt: Date.now() })
      } catch (err) {
        this.init.log.warn({ event: 'local_delivery_failed', id: m.id, err: errorMessage(err) }, 'could not store a message for this node; will retry')
        setTimeout(() => { this.kick(node) }, DELIVERY_RETRY_INITIAL_MS).unref()
        return
      }
    }
  }

  /**
   * Receiving side: store each envelope (once) and receipt it, in order. An envelope that is
   * refused is receipted REJECTED with the reason; the stream is reset only for framing-level
   * garbage (an unreadable frame, an envelope without a usable id). Reading stays at most
   * DELIVERY_WINDOW envelopes ahead of the receipts written, so a peer that does not read its
   * receipts cannot pile up work here.
   */
  private async handle (stream: Stream, connection: Connection): Promise<void> {
    const sender = this.init.peers.getByPeerId(connection.remotePeer)
    const peerId = connection.remotePeer.toString()
    const pb = pbStream(stream, { maxDataLength: DELIVERY_STREAM_MAX_MESSAGE_BYTES })
    const envelopes = pb.pb(Envelope)
    const receipts = pb.pb(Receipt)
    // Receipts go out in envelope order. Storing overlaps (one store write holds many messages),
    // and the receipts that are ready together leave in one write.
    const queue: Array<{ id: string, result?: ReceiveResult }> = []
    let writing: Promise<void> = Promise.resolve()
    let flushScheduled = false
    let failed: unknown
    /** Envelopes read whose receipt is not yet written. */
    let unanswered = 0
    let progressed: (() => void) | undefined
    const progress = (): void => { progressed?.(); progressed = undefined }
    const fail = (err: unknown): void => {
      failed ??= err
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      progress()
    }
    const flushReceipts = (): void => {
      flushScheduled = false
      const ready: Receipt[] = []
      while (queue.length > 0 && queue[0]!.result != null) {
        const head = queue.shift()!
        ready.push(this.receiptOf(head.id, head.result!))
      }
      if (ready.length === 0) return
      writing = writing.then(async () => {
        if (failed != null) return
        await receipts.writeV(ready, { signal: AbortSignal.timeout(DELIVERY_RECEIPT_TIMEOUT_MS) })
        unanswered -= ready.length
        progress()
      }).catch(err => { fail(new StreamRefused('receipts not read', `receipts not written: ${errorMessage(err)}`)) })
    }
    try {
      if (sender == null) throw new StreamRefused('not in the allowlist', 'sender is not in the allowlist')
      const pendingStores = new Set<Promise<void>>()
      for (;;) {
        while (unanswered >= DELIVERY_WINDOW && failed == null) await new Promise<void>(resolve => { progressed = resolve })
        if (failed != null) throw failed
        let envelope: Envelope
        try {
          envelope = await envelopes.read()
        } catch (err) {
          if (stream.readStatus !== 'readable' || /end of|closed|ended/i.test(errorMessage(err))) break
          const tooLarge = /length|too long|too large/i.test(`${(err as Error).name} ${errorMessage(err)}`)
          throw new StreamRefused(tooLarge ? 'frame too large' : 'malformed frame', `unreadable envelope: ${errorMessage(err)}`)
        }
        if (failed != null) throw failed
        const checked = checkEnvelope(envelope, sender.name, Date.now(), this.init.clockSkewMs)
        const fields = { peerId, messageId: clipText(envelope.id, 64), from: clipText(envelope.from, 64) }
        if (!checked.ok && checked.answer === 'reset') throw new StreamRefused(checked.reason, checked.detail, fields)
        const slot: { id: string, result?: ReceiveResult } = { id: envelope.id }
        queue.push(slot)
        unanswered++
        let result: Promise<ReceiveResult>
        if (checked.ok) {
          // Called without waiting on earlier envelopes: the inbox gives positions in call order,
          // and messages arriving together share one write.
          result = this.init.inbox.receive(checked.message)
        } else {
          this.rejections.reject('message_rejected', sender.name, checked.reason, { ...fields, detail: checked.detail }, 'message rejected')
          result = Promise.resolve({ status: 'rejected', reason: checked.detail })
        }
        const stored = result.then(received => {
          if (checked.ok && received.status === 'rejected') this.rejections.reject('message_rejected', sender.name, 'expired', { ...fields, detail: received.reason }, 'message rejected')
          slot.result = received
          if (!flushScheduled) {
            flushScheduled = true
            setImmediate(flushReceipts)
          }
        }, err => {
          // Not stored (store unavailable): no receipt; the sender resends after a backoff.
          fail(new StreamRefused('store unavailable', `message not stored: ${errorMessage(err)}`))
        })
        pendingStores.add(stored)
        void stored.finally(() => pendingStores.delete(stored))
      }
      await Promise.all([...pendingStores])
      flushReceipts()
      await writing
      if (failed != null) throw failed
      await stream.close({ signal: AbortSignal.timeout(DELIVERY_RECEIPT_TIMEOUT_MS) }).catch(err => { stream.abort(err) })
    } catch (err) {
      // Every stream failure a peer can cause is logged once per reason, then summarised.
      const reason = err instanceof StreamRefused ? err.reason : 'stream error'
      const fields = err instanceof StreamRefused ? err.fields : {}
      this.rejections.reject('message_stream_failed', sender?.name ?? peerId, reason, { peerId, ...fields, err: errorMessage(err) }, 'message stream failed')
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private receiptOf (id: string, result: ReceiveResult): Receipt {
    if (result.status === 'rejected') return { id, node: this.init.node, status: ReceiptStatus.REJECTED, storedAtMs: 0n, reason: result.reason }
    return { id, node: this.init.node, status: result.status === 'stored' ? ReceiptStatus.STORED : ReceiptStatus.DUPLICATE, storedAtMs: BigInt(result.storedAt), reason: '' }
  }
}
