import type { Envelope } from '../../protocols/messages.js'
import { MESSAGE_AGENT_PATTERN, MESSAGE_ID_PATTERN, MESSAGE_KIND_PATTERN, MESSAGE_MAX_BODY_BYTES, MESSAGE_MAX_TTL_S } from '../constants.js'
import { aheadOfClock, clipText, MAX_WIRE_INTEGER, wireTime } from '../mesh/wire-bounds.js'
import type { IncomingEnvelope } from './inbox.js'

const textDecoder = new TextDecoder('utf-8', { fatal: true })

/**
 * An envelope refused before it reaches the inbox. `reason` is a stable category (for the
 * rejection log), `detail` says what was wrong with this one (sent back in the receipt).
 * `answer` is how the sender hears of it: a REJECTED receipt when the envelope names a message
 * the receipt can answer, so the sender stops retrying it; a reset stream when it does not.
 */
export interface EnvelopeRefusal {
  answer: 'receipt' | 'reset'
  reason: string
  detail: string
}

export type EnvelopeCheck = { ok: true, message: IncomingEnvelope } | ({ ok: false } & EnvelopeRefusal)

/**
 * Everything a received envelope says, bounded as the sender's own `send` bounds it: the id,
 * the origin (the node of the connection), kind and body as on send, the agent of a routed
 * message as the registry bounds agent ids, and its times: sent no
 * later than our clock plus the skew window (a message may arrive long after it was sent, when
 * its target was away, but never before), expiring after it was sent and within the longest
 * TTL. Whether it has already expired is the inbox's check (a stored message's retry is a
 * duplicate, not expired).
 */
export function checkEnvelope (envelope: Envelope, senderName: string, now: number, clockSkewMs: number): EnvelopeCheck {
  const refuse = (reason: string, detail: string, answer: EnvelopeRefusal['answer'] = 'receipt'): EnvelopeCheck => ({ ok: false, answer, reason, detail })
  // A receipt answers an id: without a well-formed one there is nothing to answer.
  if (!MESSAGE_ID_PATTERN.test(envelope.id)) return refuse('invalid message id', `message id "${clipText(envelope.id, 64)}" is not 1 to 64 letters, digits, "_" or "-"`, 'reset')
  if (envelope.from !== senderName) return refuse('origin mismatch', `origin "${clipText(envelope.from, 64)}" is not the sending node ${senderName}`)
  if (!MESSAGE_KIND_PATTERN.test(envelope.kind)) return refuse('invalid kind', `kind "${clipText(envelope.kind, 64)}" is not 1 to 64 letters, digits, ".", ":", "_" or "-"`)
  if (envelope.agent != null && !MESSAGE_AGENT_PATTERN.test(envelope.agent)) {
    return refuse('invalid agent', `agent "${clipText(envelope.agent, 64)}" is not 1 to 128 letters, digits, ".", ":", "@", "_" or "-"`)
  }
  if (envelope.body.byteLength > MESSAGE_MAX_BODY_BYTES) return refuse('body too large', `body of ${envelope.body.byteLength} bytes is over the ${MESSAGE_MAX_BODY_BYTES} byte limit`)
  let body: string
  try {
    body = textDecoder.decode(envelope.body)
  } catch {
    return refuse('body not UTF-8', 'body is not UTF-8 text')
  }
  if (body.trim() === '') return refuse('empty body', 'the message is empty')
  if (envelope.seq > MAX_WIRE_INTEGER) return refuse('seq out of range', `seq ${String(envelope.seq)} is over ${String(MAX_WIRE_INTEGER)}`)
  const ahead = aheadOfClock('sent_at', envelope.sentAtMs, now, clockSkewMs)
  if (ahead != null) return refuse('sent_at ahead of our clock', ahead)
  if (envelope.expiresAtMs <= envelope.sentAtMs) {
    return refuse('expires_at not after sent_at', `expires_at ${wireTime(envelope.expiresAtMs)} is not after sent_at ${wireTime(envelope.sentAtMs)}`)
  }
  const ttlMs = envelope.expiresAtMs - envelope.sentAtMs
  if (ttlMs > BigInt(MESSAGE_MAX_TTL_S * 1000)) {
    return refuse('ttl over the maximum', `expires_at ${wireTime(envelope.expiresAtMs)} is ${String(ttlMs / 1000n)} s after sent_at, over the ${MESSAGE_MAX_TTL_S} s (7 days) maximum`)
  }
  return {
    ok: true,
    message: { id: envelope.id, from: envelope.from, kind: envelope.kind, body, sentAt: Number(envelope.sentAtMs), expiresAt: Number(envelope.expiresAtMs), ...(envelope.agent != null ? { agent: envelope.agent } : {}) }
  }
}
