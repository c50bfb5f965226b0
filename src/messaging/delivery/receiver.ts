import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { Envelope, Receipt, ReceiptStatus } from '../../../protocols/messages.js'
import { DELIVERY_EVENT_LOOP_SLICE, DELIVERY_STREAM_MAX_MESSAGE_BYTES } from '../../constants.js'
import { errorMessage } from '../../errors.js'
import type { PeerTable } from '../../mesh/peer-table.js'
import type { RejectionLog } from '../../mesh/rejection-log.js'
import { clipText } from '../../mesh/wire-bounds.js'
import { checkEnvelope } from '../envelope.js'
import type { IncomingEnvelope, ReceiveResult } from '../inbox.js'
import { asError, DeliveryStreamError, DeliveryTimeoutError, StreamRefusedError } from './errors.js'
import type { DeliveryConnection, DeliveryLimits } from './protocol.js'

export interface MessageReceiverInit {
  /** Who a connection's peer is: only allowlisted nodes deliver here. */
  peers: Pick<PeerTable, 'getByPeerId'>
  /** Stores one message durably, once per id (Inbox.receive); rejects when the store fails. */
  receive: (envelope: IncomingEnvelope) => Promise<ReceiveResult>
  /** This node's name, carried in each receipt. */
  node: string
  /** trust.clockSkewMs: how far ahead of our clock a message's sent_at may be. */
  clockSkewMs: number
  rejections: RejectionLog
  limits: DeliveryLimits
  /** Aborted when delivery stops: every stream in flight is reset. */
  stopping: AbortSignal
}

/**
 * Receiving side: stores each envelope (once) and receipts it, in order. An envelope that is
 * refused is receipted REJECTED with the reason; the stream is reset only for framing-level
 * garbage (an unreadable or truncated frame, an envelope without a usable id) and when the
 * store fails (no receipt: the sender resends). Reading stays at most `limits.window` envelopes
 * ahead of the receipts written, so a peer that does not read its receipts cannot pile up work.
 */
export class MessageReceiver {
  constructor (private readonly init: MessageReceiverInit) {
    this.handle = this.handle.bind(this)
  }

  async handle (stream: Stream, connection: DeliveryConnection): Promise<void> {
    const sender = this.init.peers.getByPeerId(connection.remotePeer)
    const peerId = connection.remotePeer.toString()
    const inbound = new InboundStream(stream, this.init)
    try {
      if (sender == null) throw new StreamRefusedError('not in the allowlist', 'sender is not in the allowlist')
      await inbound.serve(sender.name, peerId)
    } catch (err) {
      inbound.fail(asError(err))
      // Stopping resets every stream: not the peer's doing.
      if (this.init.stopping.aborted) return
      // Every stream failure a peer can cause is logged once per reason, then summarised.
      const reason = err instanceof StreamRefusedError ? err.reason : err instanceof DeliveryTimeoutError ? `${err.step} timeout` : 'stream error'
      const fields = err instanceof StreamRefusedError ? err.fields : {}
      this.init.rejections.reject('message_stream_failed', sender?.name ?? peerId, reason, { peerId, ...fields, err: errorMessage(err) }, 'message stream failed')
    } finally {
      await inbound.end()
    }
  }
}

interface Slot { id: string, receipt?: Receipt }

/** One inbound stream: the envelopes read, their receipts in order, and its timers. */
class InboundStream {
  private readonly lp: LengthPrefixedStream<Stream>
  /** Receipts to write, in envelope order; each is filled in when its envelope is settled. */
  private readonly queue: Slot[] = []
  private writing: Promise<void> = Promise.resolve()
  private flushScheduled = false
  private failure?: Error
  /** Envelopes read whose receipt is not yet written. */
  private unanswered = 0
  private progressed?: () => void
  private idleTimer?: NodeJS.Timeout
  private readonly pendingStores = new Set<Promise<void>>()
  /** Bytes that arrived, and bytes of the whole frames read: at the end, more arrived means a truncated frame. */
  private bytesIn = 0
  private bytesRead = 0
  private readonly countBytes = (evt: StreamMessageEvent): void => { this.bytesIn += evt.data.byteLength }
  private readonly onStop = (): void => { this.fail(asError(this.init.stopping.reason)) }

  constructor (private readonly stream: Stream, private readonly init: MessageReceiverInit) {
    // Counting first: data that came before the handler is dispatched to every listener added now.
    stream.addEventListener('message', this.countBytes)
    this.lp = lpStream(stream, { maxDataLength: DELIVERY_STREAM_MAX_MESSAGE_BYTES })
    if (init.stopping.aborted) this.onStop()
    else init.stopping.addEventListener('abort', this.onStop, { once: true })
  }

  async serve (senderName: string, peerId: string): Promise<void> {
    for (let taken = 0; ; taken++) {
      // Buffered frames are read without leaving the microtask queue: yield now and then.
      if (taken > 0 && taken % DELIVERY_EVENT_LOOP_SLICE === 0) await new Promise(resolve => setImmediate(resolve))
      await this.roomInWindow()
      if (this.failure != null) throw this.failure
      const envelope = await this.read()
      if (envelope == null) break
      // A store that failed meanwhile has reset the stream: nothing more is taken from it.
      if (this.failure != null) throw this.failure
      this.take(envelope, senderName, peerId)
    }
    await Promise.all([...this.pendingStores])
    this.flushReceipts()
    await this.writing
    if (this.failure != null) throw this.failure
  }

  /** Resets the stream; the reason is kept for the envelopes and receipts still under way. */
  fail (err: Error): void {
    this.failure ??= err
    this.stream.abort(err)
    this.progress()
  }

  /** Closes the stream if it is still open, waiting for the sender's half a bounded time; drops the timers and listeners. */
  async end (): Promise<void> {
    clearTimeout(this.idleTimer)
    this.stream.removeEventListener('message', this.countBytes)
    this.init.stopping.removeEventListener('abort', this.onStop)
    if (this.stream.status !== 'open') return
    try {
      await this.stream.close({ signal: AbortSignal.any([AbortSignal.timeout(this.init.limits.closeMs), this.init.stopping]) })
    } catch (err) {
      this.stream.abort(asError(err))
    }
  }

  /** Waits while a window of envelopes is unanswered: the sender must read its receipts before it sends more. */
  private async roomInWindow (): Promise<void> {
    while (this.unanswered >= this.init.limits.window && this.failure == null) {
      await new Promise<void>(resolve => { this.progressed = resolve })
    }
  }

  private progress (): void {
    this.progressed?.()
    delete this.progressed
  }

  /** The next envelope, or undefined when the sender closed its side between frames. */
  private async read (): Promise<Envelope | undefined> {
    // With every envelope answered, the sender has nothing in flight and closes: silence is a stall.
    if (this.unanswered === 0) this.armIdle()
    let frame
    try {
      frame = await this.lp.read()
    } catch (err) {
      if (this.failure != null) throw this.failure
      if (err instanceof Error && err.name === 'UnexpectedEOFError') {
        if (this.bytesIn === this.bytesRead) return undefined
        throw new StreamRefusedError('truncated frame', `the stream ended inside a frame: ${errorMessage(err)}`)
      }
      if (this.stream.readStatus !== 'readable') throw new DeliveryStreamError('read', `the stream failed: ${errorMessage(err)}`)
      const tooLarge = err instanceof Error && (err.name === 'InvalidDataLengthError' || err.name === 'InvalidDataLengthLengthError')
      throw new StreamRefusedError(tooLarge ? 'frame too large' : 'malformed frame', `unreadable envelope: ${errorMessage(err)}`)
    } finally {
      clearTimeout(this.idleTimer)
      delete this.idleTimer
    }
    this.bytesRead += varintLength(frame.byteLength) + frame.byteLength
    try {
      return Envelope.decode(frame)
    } catch (err) {
      throw new StreamRefusedError('malformed frame', `unreadable envelope: ${errorMessage(err)}`)
    }
  }

  private armIdle (): void {
    if (this.idleTimer != null) return
    const { idleMs } = this.init.limits
    this.idleTimer = setTimeout(() => { this.fail(new DeliveryTimeoutError('idle', `no envelope nor close within ${idleMs} ms of the last receipt`)) }, idleMs)
  }

  /** Checks an envelope and hands it to the inbox without waiting for earlier ones: their stores overlap, their receipts keep the order. */
  private take (envelope: Envelope, senderName: string, peerId: string): void {
    const { rejections } = this.init
    const checked = checkEnvelope(envelope, senderName, Date.now(), this.init.clockSkewMs)
    const fields = { peerId, messageId: clipText(envelope.id, 64), from: clipText(envelope.from, 64) }
    if (!checked.ok && checked.answer === 'reset') throw new StreamRefusedError(checked.reason, checked.detail, fields)
    const slot: Slot = { id: envelope.id }
    this.queue.push(slot)
    this.unanswered++
    let result: Promise<ReceiveResult>
    if (checked.ok) {
      // The inbox gives positions in call order, and messages arriving together share one write.
      result = this.init.receive(checked.message)
    } else {
      rejections.reject('message_rejected', senderName, checked.reason, { ...fields, detail: checked.detail }, 'message rejected')
      result = Promise.resolve({ status: 'rejected', reason: checked.detail })
    }
    const stored = result.then(received => {
      if (checked.ok && received.status === 'rejected') rejections.reject('message_rejected', senderName, 'expired', { ...fields, detail: received.reason }, 'message rejected')
      slot.receipt = this.receiptOf(slot.id, received)
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => { this.flushReceipts() })
      }
    }, err => {
      // Not stored (store unavailable): no receipt; the sender resends after a backoff.
      this.fail(new StreamRefusedError('store unavailable', `message not stored: ${errorMessage(err)}`))
    })
    this.pendingStores.add(stored)
    void stored.finally(() => this.pendingStores.delete(stored))
  }

  /** Writes the receipts that are ready at the head of the queue, together in one write. */
  private flushReceipts (): void {
    this.flushScheduled = false
    const ready: Receipt[] = []
    while (this.queue.length > 0 && this.queue[0]!.receipt != null) ready.push(this.queue.shift()!.receipt!)
    if (ready.length === 0) return
    const { writeMs } = this.init.limits
    this.writing = this.writing.then(async () => {
      if (this.failure != null) return
      // Stopping resets the stream, which fails a write under way: only the timeout rides on the write.
      const signal = AbortSignal.timeout(writeMs)
      try {
        await this.lp.writeV(ready.map(r => Receipt.encode(r)), { signal })
      } catch (err) {
        if (signal.aborted) throw new StreamRefusedError('receipts not read', `receipts not taken within ${writeMs} ms`)
        throw new DeliveryStreamError('write', `receipts not written: ${errorMessage(err)}`)
      }
      this.unanswered -= ready.length
      if (this.unanswered === 0 && this.failure == null) this.armIdle()
      this.progress()
    }).catch(err => { this.fail(asError(err)) })
  }

  private receiptOf (id: string, result: ReceiveResult): Receipt {
    const node = this.init.node
    if (result.status === 'rejected') return { id, node, status: ReceiptStatus.REJECTED, storedAtMs: 0n, reason: result.reason }
    return { id, node, status: result.status === 'stored' ? ReceiptStatus.STORED : ReceiptStatus.DUPLICATE, storedAtMs: BigInt(result.storedAt), reason: '', ...(result.handler != null ? { handler: result.handler } : {}) }
  }
}

/** Bytes of the varint length prefix of a frame of `n` bytes. */
function varintLength (n: number): number {
  let bytes = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    bytes++
  }
  return bytes
}
