import { z } from 'zod'
import { MESSAGE_DEFAULT_TTL_S, MESSAGE_MAX_BODY_BYTES, MESSAGE_MAX_TTL_S } from '../constants.js'
import { UsageError } from '../errors.js'
import { parseInput } from '../validation.js'

export type DeliveryState = 'pending' | 'delivered' | 'failed'

export interface TargetDelivery {
  state: DeliveryState
  /** Why it failed: expired, rejected: <reason>. */
  reason?: string
  /** When the target's receipt arrived (ms since the epoch). */
  receipt_at?: number
  /** When the target receipted the message again after its store lost it (ms since the epoch). */
  redelivered_at?: number
  attempts: number
}

/** A message this node sent, with each target's delivery state. */
export interface OutgoingMessage {
  id: string
  from: string
  to: string
  kind: string
  body: string
  sent_at: number
  expires_at: number
  seq: number
  targets: Record<string, TargetDelivery>
}

/** A message this node received and stored. */
export interface InboxMessage {
  id: string
  from: string
  kind: string
  body: string
  sent_at: number
  expires_at: number
  received_at: number
  position: number
}

export const sendInput = z.object({
  to: z.string({ message: 'expected a target: all, genesis, follower, a node name or a comma-separated list' }),
  body: z.string({ message: 'expected the message text' }),
  kind: z.string().min(1).max(64).regex(/^[\w.:-]+$/, 'expected letters, digits, ".", ":", "_" or "-" (at most 64)').default('text'),
  ttl: z.number({ message: 'expected seconds' }).int('expected whole seconds').min(1, 'at least 1 second').max(MESSAGE_MAX_TTL_S, `at most ${MESSAGE_MAX_TTL_S} seconds (7 days)`).default(MESSAGE_DEFAULT_TTL_S)
}).strict()

export type SendInput = z.output<typeof sendInput>

export function parseSend (input: unknown): SendInput {
  const data = parseInput(sendInput, input, 'send')
  if (data.body.trim() === '') throw new UsageError('send: the message is empty')
  const bytes = Buffer.byteLength(data.body)
  if (bytes > MESSAGE_MAX_BODY_BYTES) throw new UsageError(`send: the message is ${bytes} bytes, over the ${MESSAGE_MAX_BODY_BYTES} byte limit`)
  return data
}

/** Sent, delivered and failed counts over every target of the given messages. */
export function deliveryCounts (messages: OutgoingMessage[]): { sent: number, delivered: number, failed: number } {
  let sent = 0
  let delivered = 0
  let failed = 0
  for (const m of messages) {
    for (const t of Object.values(m.targets)) {
      sent++
      if (t.state === 'delivered') delivered++
      else if (t.state === 'failed') failed++
    }
  }
  return { sent, delivered, failed }
}
