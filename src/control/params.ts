import { z } from 'zod'
import { parseInput } from '../validation.js'

const noParams = z.object({}).strict()

/** Params checked against `schema`; a problem is a UsageError naming the method and the field. */
export function paramsOf<T extends z.ZodType> (schema: T, what: string): (raw: unknown) => z.output<T> {
  return raw => parseInput(schema, raw, what, { notObject: `${what}: params must be a JSON object` })
}

/** A method that takes no params: `{}` or none. */
export function noParamsFor (method: string): (raw: unknown) => Record<string, never> {
  return raw => parseInput(noParams, raw, method, { notObject: `${method}: params must be a JSON object`, knownFields: 'no params' })
}
