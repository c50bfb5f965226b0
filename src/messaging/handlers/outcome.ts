import { z } from 'zod'
import { HANDLER_OUTPUT_TAIL_BYTES, MESSAGE_ID_PATTERN } from '../../constants.js'
import type { HandlerOutcome } from '../outbox.js'

/** The body of an OUTCOME_KIND message: a target's handler result for one message it received. */
export interface OutcomeBody extends HandlerOutcome {
  message_id: string
}

const outcomeBody = z.object({
  message_id: z.string().regex(MESSAGE_ID_PATTERN, 'expected a message id'),
  state: z.enum(['processed', 'handler_failed']),
  exit_code: z.number().int().min(-1).max(255).nullable(),
  // Characters, not bytes: the sender clipped it by bytes, so this is a generous bound.
  output_tail: z.string().max(HANDLER_OUTPUT_TAIL_BYTES * 2),
  processed_at: z.number().int().nonnegative()
}).strict()

export function encodeOutcome (outcome: OutcomeBody): string {
  return JSON.stringify(outcome)
}

/** An outcome body from the wire, or what is wrong with it. */
export function parseOutcome (body: string): { ok: true, outcome: OutcomeBody } | { ok: false, reason: string } {
  let data: unknown
  try {
    data = JSON.parse(body)
  } catch {
    return { ok: false, reason: 'outcome body is not JSON' }
  }
  const parsed = outcomeBody.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    return { ok: false, reason: `outcome field ${issue.path.join('.') || '(body)'}: ${issue.message}` }
  }
  return { ok: true, outcome: parsed.data }
}
