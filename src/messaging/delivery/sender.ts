import type { Logger } from 'pino'
import type { Stream } from '@libp2p/interface'
import { pbStream, type ProtobufMessageStream } from '@libp2p/utils'
import { Envelope, Receipt, ReceiptStatus } from '../../../protocols/messages.js'
import { DELIVERY_EVENT_LOOP_SLICE, DELIVERY_STREAM_MAX_MESSAGE_BYTES } from '../../constants.js'
import { errorMessage } from '../../errors.js'
import type { PeerState } from '../../mesh/peer-table.js'
import type { RejectionLog } from '../../mesh/rejection-log.js'
import { clipText } from '../../mesh/wire-bounds.js'
import type { OutgoingMessage } from '../message.js'
import type { Outbox } from '../outbox.js'
import {
  asError, DeliveryStoppedError, DeliveryStreamError, DeliveryTimeoutError, ReceiptRefusedError, TargetUnreachableError
} from './errors.js'
import { MESSAGES_PROTOCOL, type DeliveryLimits, type DeliveryNetwork } from './protocol.js'

const textEncoder = new TextEncoder()

/** What a sender takes from the outbox: the messages waiting for its target. */
export type SenderOutbox = Pick<Outbox, 'hasPending' | 'nextPending' | 'noteAttempt'>

export interface TargetSessionInit {
  /** The target, as the peer table keeps it (its `connected` flag is read live). */
  peer: Pick<PeerState, 'name' | 'peerId' | 'connected'>
  network: Pick<DeliveryNetwork, 'dialProtocol'>
  outbox: SenderOutbox
  /** A receipt that answers the oldest envelope in flight: the message is settled for the target. */
  onReceipt: (node: string, receipt: Receipt) => void
  rejections: RejectionLog
  log: Logger
  limits: DeliveryLimits
}

/**
 * Sending side, one per target node: keeps one stream to the target, writes pending messages in
 * send order with up to `limits.window` in flight, and settles each on its receipt. When the
 * stream fails, everything unreceipted goes out again on a new one (the target stores each id
 * once), after a backoff that grows while the failures continue.
 */
export class TargetSession {
  /** Envelopes on the wire awaiting their receipt, oldest first (a Set keeps insertion order). */
  readonly inFlight = new Set<string>()
  private running = true
  private wake?: () => void
  private failures = 0
  /** Aborted by stop(): the dial, the writes and the stream in flight carry it. */
  private readonly stopping = new AbortController()

  constructor (private readonly init: TargetSessionInit) {
    void this.loop()
  }

  get name (): string {
    return this.init.peer.name
  }

  /** Something changed (a new message, a connection): look again at once. */
  notify (): void {
    this.wake?.()
  }

  stop (): void {
    this.running = false
    this.stopping.abort(new DeliveryStoppedError(`delivery to ${this.name} stopped`))
    this.wake?.()
  }

  private async idle (ms?: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = ms != null ? setTimeout(resolve, ms) : undefined
      this.wake = () => { clearTimeout(timer); delete this.wake; resolve() }
    })
  }

  private async loop (): Promise<void> {
    const { peer, outbox, limits, log } = this.init
    while (this.running) {
      if (!peer.connected || !outbox.hasPending(peer.name)) {
        await this.idle(peer.connected ? undefined : limits.disconnectedPollMs)
        continue
      }
      try {
        await this.deliver()
        this.failures = 0
      } catch (err) {
        this.inFlight.clear()
        if (!this.running) break
        this.failures++
        const delay = Math.min(limits.retryMaxMs, limits.retryInitialMs * 2 ** (this.failures - 1))
        if (this.failures === 1 || this.failures % 10 === 0) {
          log.info({ event: 'delivery_retry', peer: peer.name, failures: this.failures, retryInMs: delay, err: errorMessage(err), errName: (err as Error).name }, 'message delivery interrupted; will resend what is unreceipted')
        }
        await this.idle(delay)
      }
    }
  }

  /** One stream's life: send and settle until nothing is pending, or fail. The stream is closed (or reset) before it returns. */
  private async deliver (): Promise<void> {
    const stream = await this.open()
    const resetOnStop = (): void => { stream.abort(asError(this.stopping.signal.reason)) }
    this.stopping.signal.addEventListener('abort', resetOnStop, { once: true })
    const pb = pbStream(stream, { maxDataLength: DELIVERY_STREAM_MAX_MESSAGE_BYTES })
    const envelopes = pb.pb(Envelope)
    const receipts = new ReceiptReader(pb.pb(Receipt), stream, {
      target: this.name,
      inFlight: this.inFlight,
      receiptMs: this.init.limits.receiptMs,
      rejections: this.init.rejections,
      onReceipt: receipt => {
        this.inFlight.delete(receipt.id)
        this.init.onReceipt(this.name, receipt)
        this.wake?.()
      },
      onFailure: () => { this.wake?.() }
    })
    let failure: Error | undefined
    /** When a drained stream is closed unless a message comes first. */
    let lingerUntil: number | undefined
    try {
      for (;;) {
        // Let receipts and new sends that are already queued land first, so one write carries many envelopes.
        await new Promise(resolve => setImmediate(resolve))
        this.throwIfStopped()
        if (receipts.failure != null) {
          // A lingering stream that fails (the target restarted, the connection went) owes nothing: no retry.
          if (this.inFlight.size === 0 && !this.init.outbox.hasPending(this.name)) {
            failure = receipts.failure
            break
          }
          throw receipts.failure
        }
        const room = Math.min(this.init.limits.window - this.inFlight.size, DELIVERY_EVENT_LOOP_SLICE)
        const batch = room > 0 ? this.init.outbox.nextPending(this.name, room, id => this.inFlight.has(id)) : []
        if (batch.length === 0 && this.inFlight.size === 0) {
          lingerUntil ??= performance.now() + this.init.limits.lingerMs
          const left = lingerUntil - performance.now()
          if (left <= 0) break
          // Woken by a new message, a failure of the stream or stop(); otherwise closed when the linger ends.
          await this.idle(left)
          continue
        }
        lingerUntil = undefined
        if (batch.length === 0) {
          // Woken by a receipt, a failure of the stream, a new message or stop().
          await this.idle()
          continue
        }
        for (const m of batch) {
          this.inFlight.add(m.id)
          this.init.outbox.noteAttempt(m.id, this.name)
        }
        await this.write(envelopes, batch)
        receipts.arm()
      }
    } catch (err) {
      // A failed receipt resets the stream, which fails the write under way too: the receipt says why.
      failure = receipts.failure ?? asError(err)
      throw failure
    } finally {
      receipts.stop()
      this.stopping.signal.removeEventListener('abort', resetOnStop)
      await this.close(stream, failure)
    }
  }

  private async open (): Promise<Stream> {
    const { dialMs } = this.init.limits
    const signal = AbortSignal.any([AbortSignal.timeout(dialMs), this.stopping.signal])
    try {
      return await this.init.network.dialProtocol(this.init.peer.peerId, MESSAGES_PROTOCOL, { signal })
    } catch (err) {
      this.throwIfStopped()
      if (signal.aborted) throw new DeliveryTimeoutError('dial', `no stream to ${this.name} within ${dialMs} ms`)
      throw new TargetUnreachableError(`cannot open a message stream to ${this.name}: ${errorMessage(err)}`)
    }
  }

  private async write (envelopes: ProtobufMessageStream<Envelope>, batch: OutgoingMessage[]): Promise<void> {
    const { writeMs } = this.init.limits
    // stop() resets the stream, which fails a write under way: only the timeout rides on the write.
    const signal = AbortSignal.timeout(writeMs)
    try {
      await envelopes.writeV(batch.map(m => envelopeOf(m, this.name)), { signal })
    } catch (err) {
      this.throwIfStopped()
      if (signal.aborted) throw new DeliveryTimeoutError('write', `${this.name} did not take ${batch.length} envelope(s) within ${writeMs} ms`)
      throw new DeliveryStreamError('write', `envelopes to ${this.name} not written: ${errorMessage(err)}`)
    }
  }

  /** Resets the stream after a failure; otherwise closes it, waiting for the target's half of the close a bounded time. */
  private async close (stream: Stream, failure: Error | undefined): Promise<void> {
    if (failure != null) {
      stream.abort(failure)
      return
    }
    const { closeMs } = this.init.limits
    try {
      await stream.close({ signal: AbortSignal.any([AbortSignal.timeout(closeMs), this.stopping.signal]) })
    } catch (err) {
      // Every message on it was receipted: nothing to resend, only the stream to drop.
      this.init.log.debug({ event: 'delivery_close_failed', peer: this.name, err: errorMessage(err) }, `message stream not closed within ${closeMs} ms; reset`)
      stream.abort(asError(err))
    }
  }

  private throwIfStopped (): void {
    if (this.stopping.signal.aborted) throw asError(this.stopping.signal.reason)
  }
}

/** The message as it goes to `node`: a routed one names the agent chosen there. */
function envelopeOf (m: OutgoingMessage, node: string): Envelope {
  const agent = m.targets[node]?.agent_id
  return { id: m.id, from: m.from, kind: m.kind, body: textEncoder.encode(m.body), sentAtMs: BigInt(m.sent_at), expiresAtMs: BigInt(m.expires_at), seq: BigInt(m.seq), ...(agent != null ? { agent } : {}) }
}

interface ReceiptReaderInit {
  target: string
  /** The session's envelopes in flight, oldest first: each receipt must answer the first. */
  inFlight: ReadonlySet<string>
  receiptMs: number
  rejections: RejectionLog
  onReceipt: (receipt: Receipt) => void
  onFailure: () => void
}

/**
 * Reads the receipts of one stream, in order: each must answer the oldest envelope in flight,
 * name the target and carry a status. A receipt that does not, or none for the oldest envelope
 * within the receipt timeout, resets the stream (and everything in flight goes out again).
 */
class ReceiptReader {
  failure?: Error
  private timer?: NodeJS.Timeout
  private stopped = false

  constructor (private readonly receipts: ProtobufMessageStream<Receipt>, private readonly stream: Stream, private readonly init: ReceiptReaderInit) {
    void this.run()
  }

  /** Starts the receipt timeout for the oldest envelope in flight, unless it is already running. */
  arm (): void {
    if (this.timer != null || this.stopped || this.init.inFlight.size === 0) return
    const { receiptMs, target } = this.init
    this.timer = setTimeout(() => { this.fail(new DeliveryTimeoutError('receipt', `no receipt from ${target} within ${receiptMs} ms`)) }, receiptMs)
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private fail (err: Error): void {
    if (this.stopped || this.failure != null) return
    this.failure = err
    clearTimeout(this.timer)
    this.stream.abort(err)
    this.init.onFailure()
  }

  private async run (): Promise<void> {
    const { target, inFlight, rejections } = this.init
    try {
      while (!this.stopped) {
        const receipt = await this.receipts.read()
        clearTimeout(this.timer)
        this.timer = undefined
        const expected = inFlight.values().next().value
        const mismatch = receipt.id !== expected
          ? 'receipt for another message'
          : receipt.node !== target
            ? 'receipt names another node'
            : receipt.status === ReceiptStatus.RECEIPT_STATUS_UNSPECIFIED ? 'receipt without a status' : undefined
        if (mismatch != null) {
          // Forged, out of order or empty: drop the stream (and everything in flight goes out again).
          const fields = { receiptFor: clipText(receipt.id, 64), receiptNode: clipText(receipt.node, 64), expected, status: receipt.status }
          rejections.reject('receipt_rejected', target, mismatch, fields, 'receipt does not match the message in flight; resetting the stream')
          throw new ReceiptRefusedError(mismatch, `${mismatch}: receipt for ${fields.receiptFor} from "${fields.receiptNode}" (${receipt.status}) does not answer ${expected ?? 'nothing in flight'}`)
        }
        this.init.onReceipt(receipt)
        this.arm()
      }
    } catch (err) {
      this.fail(err instanceof ReceiptRefusedError ? err : new DeliveryStreamError('receipt', `receipts from ${target} stopped: ${errorMessage(err)}`))
    }
  }
}
