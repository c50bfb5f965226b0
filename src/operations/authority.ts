import type { MeshConfig } from '../config/config.js'
import type { Role } from '../config/schema.js'
import { DEFAULT_DESTRUCTIVE_FROM } from '../constants.js'

/**
 * Who asks this node to run something: a peer, named and given its role by this node's own
 * allowlist from the connection's authenticated peer id, or this node's own CLI (`self`).
 * Nothing in the request itself says who is asking.
 */
export interface Requester {
  node: string
  role: Role
  self: boolean
  /** The requester's operation id, for the log. */
  operationId?: string
  /**
   * The requesting operator chose to run destructive work without quorum (override_quorum). Not
   * who asks but what they decided; it lifts only the quorum rule, never the authority checks.
   */
  overrideQuorum?: boolean
}

/** Why a request is refused: a stable category for the rejection log, and the text the requester sees. */
export interface Refusal {
  category: 'action_not_allowed' | 'force_not_allowed' | 'config_contents_genesis_only' | 'no_quorum'
  reason: string
}

/**
 * Who asked, for requests from this node's control socket: the socket (0660) does not tell which
 * unix user is on the other end, only that it is the daemon's user or in its group.
 */
export const LOCAL_OPERATOR = 'local operator'

export function selfRequester (config: MeshConfig, operationId?: string, overrideQuorum = false): Requester {
  return { node: config.node.name, role: config.node.role, self: true, ...(operationId != null ? { operationId } : {}), ...(overrideQuorum ? { overrideQuorum } : {}) }
}

/**
 * Whether `requester` is in a config list of node names, roles (genesis, follower) and `self`.
 * `self` is this node's own operator only, never a peer that happens to be named "self".
 */
export function listAllows (list: readonly string[], requester: Requester): boolean {
  return list.some(who => who === 'self' ? requester.self : who === requester.node || who === requester.role)
}

function describe (requester: Requester): string {
  return requester.self ? `this node's own operator (${requester.node})` : `${requester.node} (${requester.role})`
}

/**
 * Whether this node runs its action `name` for `requester`. An unknown action is left to the
 * runner, which refuses it with the names it has.
 */
export function authorizeAction (config: MeshConfig, requester: Requester, name: string): Refusal | null {
  const action = Object.hasOwn(config.actions, name) ? config.actions[name] : undefined
  if (action == null) return null
  const allowFrom = action.allowFrom ?? (action.destructive ? DEFAULT_DESTRUCTIVE_FROM : null)
  if (allowFrom == null || listAllows(allowFrom, requester)) return null
  const field = action.allowFrom != null ? `actions.${name}.allowFrom` : 'the default for destructive actions'
  return { category: 'action_not_allowed', reason: `"${name}" is not run here for ${describe(requester)}; allowed: ${allowFrom.join(', ')} (${field})` }
}

/**
 * Whether this node runs sync `step` for `requester`. Configuration contents are read and
 * written for the genesis node only (the copy every node follows) or this node's own operator;
 * hashes (config.inspect) go to any allowlisted node. A forced step needs `sync.forceFrom`.
 */
export function authorizeSyncStep (config: MeshConfig, requester: Requester, step: string, force: boolean): Refusal | null {
  if ((step === 'config.read' || step === 'config.write') && requester.role !== 'genesis' && !requester.self) {
    return {
      category: 'config_contents_genesis_only',
      reason: `${step === 'config.read' ? 'configuration contents are sent only to the genesis node' : 'configuration files are written only at the request of the genesis node'}; ${describe(requester)} is not it`
    }
  }
  if (force && !listAllows(config.sync.forceFrom, requester)) {
    return { category: 'force_not_allowed', reason: `${step} with --force is not accepted from ${describe(requester)}; allowed: ${config.sync.forceFrom.join(', ')} (sync.forceFrom)` }
  }
  return null
}
