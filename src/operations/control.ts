import { z } from 'zod'
import { OPS_LIST_DEFAULT } from '../constants.js'
import type { ControlMethods } from '../control/api.js'
import { paramsOf } from '../control/params.js'
import { controlMethod } from '../control/server.js'
import type { OperationLog } from './op-log.js'
import { operationRequestSchema, parseOperationRequest } from './request.js'
import type { OperationRunner } from './runner.js'

export const opsListParams = z.object({
  limit: z.number({ message: 'expected a whole number from 1 to 1000' }).int('expected a whole number from 1 to 1000')
    .min(1, 'expected a whole number from 1 to 1000').max(1000, 'expected a whole number from 1 to 1000').default(OPS_LIST_DEFAULT)
}).strict()

export const opsGetParams = z.object({
  id: z.string({ message: 'expected an operation id (a string)' }).min(1, 'expected an operation id, not empty')
}).strict()

/** `status` and `health`: the operation JSON without "operation", which the method names. */
export const reportParams = operationRequestSchema.omit({ operation: true })

/** Control methods of operations: run one (progress as events), and the record of past ones. */
export function operationsControl (runner: OperationRunner, opLog: OperationLog): ControlMethods {
  return {
    // Progress (queued, started, each node as it finishes) goes out as events.
    op: controlMethod(parseOperationRequest, async (params, ctx) => await runner.run(params, event => { ctx.notify(event) })),
    'ops.list': controlMethod(paramsOf(opsListParams, 'ops.list'), async params => await opLog.list(params.limit)),
    'ops.get': controlMethod(paramsOf(opsGetParams, 'ops.get'), async params => await opLog.get(params.id)),
    status: controlMethod(paramsOf(reportParams, 'status'), async (params, ctx) => await runner.run({ ...params, operation: 'status' }, event => { ctx.notify(event) })),
    health: controlMethod(paramsOf(reportParams, 'health'), async (params, ctx) => await runner.run({ ...params, operation: 'health' }, event => { ctx.notify(event) }))
  }
}
