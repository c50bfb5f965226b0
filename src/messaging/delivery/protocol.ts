import type { PeerId, Stream } from '@libp2p/interface'
import {
  DELIVERY_CLOSE_TIMEOUT_MS, DELIVERY_DIAL_TIMEOUT_MS, DELIVERY_DISCONNECTED_POLL_MS, DELIVERY_IDLE_TIMEOUT_MS, DELIVERY_RECEIPT_TIMEOUT_MS,
  DELIVERY_RETRY_INITIAL_MS, DELIVERY_RETRY_MAX_MS, DELIVERY_STREAM_LINGER_MS, DELIVERY_WINDOW, DELIVERY_WRITE_TIMEOUT_MS
} from '../../constants.js'

export const MESSAGES_PROTOCOL = '/aitbc-mesh/messages/1.0.0'

/** Who is at the other end of an inbound stream. */
export interface DeliveryConnection {
  remotePeer: PeerId
}

/** The slice of libp2p delivery uses: its protocol handler, dials, and connect events. */
export interface DeliveryNetwork {
  handle: (protocol: string, handler: (stream: Stream, connection: DeliveryConnection) => Promise<void>, options: { maxInboundStreams: number, maxOutboundStreams: number }) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  dialProtocol: (peer: PeerId, protocol: string, options: { signal: AbortSignal }) => Promise<Stream>
  addEventListener: (type: 'peer:connect', listener: (evt: CustomEvent<PeerId>) => void) => void
  removeEventListener: (type: 'peer:connect', listener: (evt: CustomEvent<PeerId>) => void) => void
}

/** Limits of delivery; each defaults to its constant (src/constants.ts says why); tests shorten them. */
export interface DeliveryLimits {
  /** Envelopes in flight on one stream; the receiver reads no further ahead of its receipts. */
  window: number
  dialMs: number
  writeMs: number
  receiptMs: number
  idleMs: number
  /** How long a sender keeps a drained stream open for the next message; below the receiver's idleMs. */
  lingerMs: number
  closeMs: number
  retryInitialMs: number
  retryMaxMs: number
  disconnectedPollMs: number
}

export const DEFAULT_DELIVERY_LIMITS: DeliveryLimits = {
  window: DELIVERY_WINDOW,
  dialMs: DELIVERY_DIAL_TIMEOUT_MS,
  writeMs: DELIVERY_WRITE_TIMEOUT_MS,
  receiptMs: DELIVERY_RECEIPT_TIMEOUT_MS,
  idleMs: DELIVERY_IDLE_TIMEOUT_MS,
  lingerMs: DELIVERY_STREAM_LINGER_MS,
  closeMs: DELIVERY_CLOSE_TIMEOUT_MS,
  retryInitialMs: DELIVERY_RETRY_INITIAL_MS,
  retryMaxMs: DELIVERY_RETRY_MAX_MS,
  disconnectedPollMs: DELIVERY_DISCONNECTED_POLL_MS
}
