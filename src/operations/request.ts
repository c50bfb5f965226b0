import { z } from 'zod'
import { OPERATION_DEFAULT_TIMEOUT_S, OPERATION_MAX_TIMEOUT_S } from '../constants.js'
import { parseInput } from '../validation.js'

export const OPERATIONS = ['sync', 'status', 'message', 'coordinate', 'health'] as const
export const SYNC_TYPES = ['blockchain', 'mempool', 'configuration', 'git', 'all'] as const

/** The node-coordinator operation JSON (DESIGN.md), validated at the control socket. */
export const operationRequestSchema = z.object({
  operation: z.enum(OPERATIONS, { message: `expected one of ${OPERATIONS.join(', ')}` }),
  target_node: z.string({ message: 'expected a string: all, genesis, follower, a node name or a comma-separated list' }).default('all'),
  message: z.string().optional(),
  /** message: to the best active agent with this capability (instead of target_node), on its node. */
  target_capability: z.string().min(1).max(128).optional(),
  /** message: its kind (what a target's handler is chosen by). */
  kind: z.string().min(1).max(64).regex(/^[\w.:-]+$/, 'expected letters, digits, ".", ":", "_" or "-" (at most 64)').optional(),
  sync_type: z.enum(SYNC_TYPES, { message: `expected one of ${SYNC_TYPES.join(', ')}` }).optional(),
  timeout: z.number({ message: 'expected a number of seconds' })
    .positive('expected a number of seconds greater than 0')
    .max(OPERATION_MAX_TIMEOUT_S, `at most ${OPERATION_MAX_TIMEOUT_S} seconds`)
    .default(OPERATION_DEFAULT_TIMEOUT_S),
  force: z.boolean({ message: 'expected true or false' }).default(false),
  verify: z.boolean({ message: 'expected true or false' }).default(true),
  /** coordinate: the action to run, by name, from each target's own config. */
  action: z.string().min(1).max(64).regex(/^[\w.-]+$/, 'expected an action name of letters, digits, ".", "_" or "-"').optional(),
  /** coordinate: one node after the other, stopping at the first failure. */
  sequential: z.boolean({ message: 'expected true or false' }).default(false),
  /** Destructive work without a majority in view: run it anyway, as the operator's deliberate decision (logged). */
  override_quorum: z.boolean({ message: 'expected true or false' }).default(false)
}).strict()

export type OperationRequest = z.infer<typeof operationRequestSchema>

export function parseOperationRequest (input: unknown): OperationRequest {
  return parseInput(operationRequestSchema, input, 'operation', {
    notObject: 'operation must be a JSON object such as {"operation":"status","target_node":"all"}',
    knownFields: 'operation, target_node, target_capability, message, kind, sync_type, timeout, force, verify, action, sequential, override_quorum'
  })
}

/**
 * Whether the request is destructive work, which needs quorum: anything with force (a forced
 * sync, a forced coordinate) and a coordinate of an action this node's config marks destructive.
 */
export function isDestructive (request: OperationRequest, actions: Record<string, { destructive: boolean }>): boolean {
  if (request.operation !== 'coordinate' && request.operation !== 'sync') return false
  if (request.force) return true
  return request.operation === 'coordinate' && request.action != null && Object.hasOwn(actions, request.action) && actions[request.action]!.destructive
}
