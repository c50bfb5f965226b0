import { MESSAGE_KIND_PATTERN, ROUTED_KIND } from '../../constants.js'

/** An agent id as the registry accepts it. */
export const AGENT_ID_PATTERN = /^[\w.:@-]{1,128}$/

/**
 * A routed message on the wire: kind ROUTED_KIND, body `{agent_id}\n{kind}\n{text}` (the envelope
 * has no field for the agent). Returns what it carries, or why it is refused.
 */
export function unwrapRouted (body: string): { ok: true, agent: string, kind: string, body: string } | { ok: false, reason: string } {
  const first = body.indexOf('\n')
  const second = first < 0 ? -1 : body.indexOf('\n', first + 1)
  if (second < 0) return { ok: false, reason: `a ${ROUTED_KIND} message is "agent_id\\nkind\\ntext"; this one has no agent id and kind lines` }
  const agent = body.slice(0, first)
  const kind = body.slice(first + 1, second)
  if (!AGENT_ID_PATTERN.test(agent)) return { ok: false, reason: `${ROUTED_KIND}: agent id "${agent.slice(0, 64)}" is not 1 to 128 letters, digits, ".", ":", "@", "_" or "-"` }
  if (!MESSAGE_KIND_PATTERN.test(kind) || kind.startsWith('aitbc-mesh.')) return { ok: false, reason: `${ROUTED_KIND}: kind "${kind.slice(0, 64)}" is not a message kind of 1 to 64 letters, digits, ".", ":", "_" or "-"` }
  const text = body.slice(second + 1)
  if (text.trim() === '') return { ok: false, reason: 'the message is empty' }
  return { ok: true, agent, kind, body: text }
}
