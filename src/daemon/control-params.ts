import { z } from 'zod'
import { OPERATION_DEFAULT_TIMEOUT_S, OPERATION_MAX_TIMEOUT_S, OPS_LIST_DEFAULT } from '../constants.js'
import { operationRequestSchema } from '../operations/request.js'
import { parseInput } from '../validation.js'

/**
 * Params of the control methods whose handlers take them as given. Methods backed by a module
 * that has its own input schema (operations, agents, send) use that one.
 */

const noParams = z.object({}).strict()

const messageId = z.string({ message: 'expected a message id (a string)' }).min(1, 'expected a message id, not empty')

export const opsListParams = z.object({
  limit: z.number({ message: 'expected a whole number from 1 to 1000' }).int('expected a whole number from 1 to 1000')
    .min(1, 'expected a whole number from 1 to 1000').max(1000, 'expected a whole number from 1 to 1000').default(OPS_LIST_DEFAULT)
}).strict()

export const opsGetParams = z.object({
  id: z.string({ message: 'expected an operation id (a string)' }).min(1, 'expected an operation id, not empty')
}).strict()

export const messagesGetParams = z.object({ id: messageId }).strict()

export const messagesWaitParams = z.object({
  id: messageId,
  timeout: z.number({ message: `expected seconds, more than 0 and at most ${OPERATION_MAX_TIMEOUT_S}` })
    .positive(`expected seconds, more than 0 and at most ${OPERATION_MAX_TIMEOUT_S}`)
    .max(OPERATION_MAX_TIMEOUT_S, `expected seconds, more than 0 and at most ${OPERATION_MAX_TIMEOUT_S}`)
    .default(OPERATION_DEFAULT_TIMEOUT_S)
}).strict()

// null was accepted for "no since" before the params had a schema.
const since = z.string({ message: 'expected a message id or an ISO time (a string)' }).nullish().transform(v => v ?? undefined)

export const inboxListParams = z.object({
  since,
  limit: z.number({ message: 'expected a whole number from 1 to 100000' }).int('expected a whole number from 1 to 100000')
    .min(1, 'expected a whole number from 1 to 100000').max(100000, 'expected a whole number from 1 to 100000').default(1000)
}).strict()

export const inboxFollowParams = z.object({ since }).strict()

/** `status` and `health`: the operation JSON without "operation", which the method names. */
export const reportParams = operationRequestSchema.omit({ operation: true })

/** Params checked against `schema`; a problem is a UsageError naming the method and the field. */
export function paramsOf<T extends z.ZodType> (schema: T, what: string): (raw: unknown) => z.output<T> {
  return raw => parseInput(schema, raw, what, { notObject: `${what}: params must be a JSON object` })
}

/** A method that takes no params: `{}` or none. */
export function noParamsFor (method: string): (raw: unknown) => Record<string, never> {
  return raw => parseInput(noParams, raw, method, { notObject: `${method}: params must be a JSON object`, knownFields: 'no params' })
}
