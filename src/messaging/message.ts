import { z } from 'zod'
import { MESSAGE_DEFAULT_TTL_S, MESSAGE_MAX_BODY_BYTES, MESSAGE_MAX_TTL_S, RESERVED_KIND_PREFIX } from '../constants.js'
import { UsageError } from '../errors.js'
import { parseInput } from '../validation.js'

/** pending → delivered (receipted) → processed | handler_failed (a handler ran there), or pending → failed. */
export type DeliveryState = 'pending' | 'delivered' | 'failed' | 'processed' | 'handler_failed'

/** States in which the target holds the message (it receipted it). */
export function isReceipted (state: DeliveryState): boolean {
  return state === 'delivered' || state === 'processed' || state === 'handler_failed'
}

/** States after which nothing more is heard from the target about the message. */
export function isProcessedOrFailed (state: DeliveryState): boolean {
  return state === 'processed' || state === 'handler_failed' || state === 'failed'
}

export interface TargetDelivery {
  state: DeliveryState
  /** Why it failed: expired, rejected: <reason>. */
  reason?: string
  /** When the target's receipt arrived (ms since the epoch). */
  receipt_at?: number
  /** When the target receipted the message again after its store lost it (ms since the epoch). */
  redelivered_at?: number
  attempts: number
  /** When the target's handler finished (ms since the epoch). */
  processed_at?: number
  /** The handler's exit code (null: it was stopped by a signal, or could not start). */
  exit_code?: number | null
  /** The end of the handler's stderr. */
  output_tail?: string
  /** A routed message: the agent it was given to on this node. */
  agent_id?: string
  /**
   * Receipted: whether the target has a handler for the kind (false: no outcome will follow).
   * Absent when the target did not say (an older daemon).
   */
  handler?: boolean
}

/** How a message sent with --to-capability is routed, and the candidates it may go to in turn. */
export interface MessageRoute {
  capability: string
  agent_type?: string
  min_health?: number
  /** The best agent of each node, best first, as discovery ranked them at send time. */
  candidates: Array<{ agent_id: string, node: string, health_score: number, load: number }>
  /** The nodes given the message so far, in turn (the last one holds it now). */
  tried: string[]
  /** Nodes skipped at send time, and why (offline). */
  skipped: Array<{ agent_id: string, node: string, reason: string }>
  /** routing: a target may still fail over; done: a target took it; exhausted: no candidate left. */
  state: 'routing' | 'done' | 'exhausted'
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
  /** Set for a message routed by capability: targets are tried in turn, in `targets` order. */
  route?: MessageRoute
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
  /** A message routed by capability: the agent the sender chose on this node. */
  agent?: string
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
  if (data.kind.startsWith(RESERVED_KIND_PREFIX)) throw new UsageError(`send: kind "${data.kind}": kinds starting with "${RESERVED_KIND_PREFIX}" are the daemon's own`)
  if (data.body.trim() === '') throw new UsageError('send: the message is empty')
  const bytes = Buffer.byteLength(data.body)
  if (bytes > MESSAGE_MAX_BODY_BYTES) throw new UsageError(`send: the message is ${bytes} bytes, over the ${MESSAGE_MAX_BODY_BYTES} byte limit`)
  return data
}

export interface DeliveryCounts {
  sent: number
  /** Targets that hold the message (delivered, processed or handler_failed). */
  delivered: number
  /** Targets whose handler ran and exited 0. */
  processed: number
  /** Targets that never got it, or whose handler failed. */
  failed: number
}

export const routeSendInput = z.object({
  to_capability: z.string({ message: 'expected a capability name' }).min(1, 'expected a capability name').max(128, 'at most 128 characters'),
  agent_type: z.string().min(1).max(64).optional(),
  min_health: z.number({ message: 'expected a health score from 0 to 1' }).min(0, 'expected a health score from 0 to 1').max(1, 'expected a health score from 0 to 1').optional(),
  body: sendInput.shape.body,
  kind: sendInput.shape.kind,
  ttl: sendInput.shape.ttl
}).strict()

export type RouteSendInput = z.output<typeof routeSendInput>

/** A send to the best agent with a capability (`send --to-capability`). */
export function parseRouteSend (input: unknown): RouteSendInput {
  const data = parseInput(routeSendInput, input, 'send')
  parseSend({ to: data.to_capability, body: data.body, kind: data.kind, ttl: data.ttl })
  return data
}

/** Counts over every target of the given messages. */
export function deliveryCounts (messages: OutgoingMessage[]): DeliveryCounts {
  let sent = 0
  let delivered = 0
  let processed = 0
  let failed = 0
  for (const m of messages) {
    for (const t of Object.values(m.targets)) {
      sent++
      if (isReceipted(t.state)) delivered++
      if (t.state === 'processed') processed++
      if (t.state === 'failed' || t.state === 'handler_failed') failed++
    }
  }
  return { sent, delivered, processed, failed }
}
