import { ProtocolError, TimeoutError, UnreachableError } from '../../errors.js'

/** The steps of delivery, each with its own bound (DeliveryLimits). */
export type DeliveryStep = 'dial' | 'write' | 'receipt' | 'read' | 'idle' | 'close'

/** A step of delivery did not finish in its time; the stream is reset (and, sending, retried). */
export class DeliveryTimeoutError extends TimeoutError {
  override name = 'DeliveryTimeoutError'
  constructor (readonly step: DeliveryStep, message: string) {
    super(message)
  }
}

/** No stream to the target could be opened (not for lack of time). */
export class TargetUnreachableError extends UnreachableError {
  override name = 'TargetUnreachableError'
}

/** The stream failed under a step: reset by the peer, closed early, or a receipt that cannot be read. */
export class DeliveryStreamError extends ProtocolError {
  override name = 'DeliveryStreamError'
  constructor (readonly step: DeliveryStep, message: string) {
    super(message)
  }
}

/** A receipt that does not answer the oldest envelope in flight; `reason` is a stable category. */
export class ReceiptRefusedError extends ProtocolError {
  override name = 'ReceiptRefusedError'
  constructor (readonly reason: string, message: string) {
    super(message)
  }
}

/**
 * A receiver refused a stream on purpose (framing, an envelope no receipt can answer, a store
 * that failed); `reason` is a stable category for the rejection log.
 */
export class StreamRefusedError extends ProtocolError {
  override name = 'StreamRefusedError'
  constructor (readonly reason: string, message: string, readonly fields: Record<string, unknown> = {}) {
    super(message)
  }
}

/** Delivery stopped (the daemon is stopping, or the target left the mesh) while a step was under way. */
export class DeliveryStoppedError extends Error {
  override name = 'DeliveryStoppedError'
}

export function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
