import type { z } from 'zod'
import { UsageError } from './errors.js'

/**
 * Validates caller input at a boundary (control socket, CLI) with a zod schema, turning the
 * first problem into a UsageError that names the field: `<what>: "<field>": <what is expected>`.
 */
export function parseInput<T extends z.ZodType> (schema: T, input: unknown, what: string, hints: { notObject?: string, knownFields?: string } = {}): z.output<T> {
  if (input == null || typeof input !== 'object' || Array.isArray(input)) throw new UsageError(hints.notObject ?? `${what}: expected a JSON object`)
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  const field = issue.path.join('.')
  if (issue.code === 'unrecognized_keys') throw new UsageError(`${what}: unknown field(s) ${issue.keys.join(', ')}${hints.knownFields != null ? `; expected ${hints.knownFields}` : ''}`)
  if (issue.path.length === 1 && (input as Record<string, unknown>)[field] === undefined) throw new UsageError(`${what}: "${field}" is required`)
  throw new UsageError(`${what}: "${field}": ${issue.message}`)
}
