import { describe, expect, it } from 'vitest'
import type { NodeEntry } from '../../src/config/config.js'
import { UsageError } from '../../src/errors.js'
import { parseOperationRequest } from '../../src/operations/request.js'
import { resolveTargets, validTargets } from '../../src/operations/targets.js'

// Config order: this node first, then peers as listed. The genesis node is deliberately not first.
const nodes: NodeEntry[] = [
  { name: 'aitbc1', role: 'follower' },
  { name: 'aitbc', role: 'genesis' },
  { name: 'aitbc2', role: 'follower' },
  { name: 'edge-3', role: 'follower' }
]

const names = (expr: string, list: NodeEntry[] = nodes): string[] => resolveTargets(expr, list).map(n => n.name)

function usageError (fn: () => unknown): UsageError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError)
    return err as UsageError
  }
  throw new Error('expected a UsageError')
}

describe('resolveTargets', () => {
  it('"all" is every configured node in config order', () => {
    expect(names('all')).toEqual(['aitbc1', 'aitbc', 'aitbc2', 'edge-3'])
  })

  it('"genesis" is the genesis node only', () => {
    expect(names('genesis')).toEqual(['aitbc'])
  })

  it('"follower" is every follower in config order', () => {
    expect(names('follower')).toEqual(['aitbc1', 'aitbc2', 'edge-3'])
  })

  it('a node named "followers" is addressed by its name alone, not as a keyword', () => {
    const nodes: NodeEntry[] = [{ name: 'aitbc', role: 'genesis' }, { name: 'followers', role: 'follower' }, { name: 'aitbc2', role: 'follower' }]
    expect(resolveTargets('followers', nodes).map(n => n.name)).toEqual(['followers'])
  })

  it('keywords are case-insensitive', () => {
    expect(names('ALL')).toEqual(['aitbc1', 'aitbc', 'aitbc2', 'edge-3'])
    expect(names('Genesis')).toEqual(['aitbc'])
  })

  it('a single node name', () => {
    expect(names('aitbc2')).toEqual(['aitbc2'])
  })

  it('returns the node entries themselves (name and role)', () => {
    expect(resolveTargets('aitbc', nodes)).toEqual([{ name: 'aitbc', role: 'genesis' }])
  })

  it('a comma list comes back in config order, not list order', () => {
    expect(names('edge-3,aitbc1')).toEqual(['aitbc1', 'edge-3'])
    expect(names('aitbc2, genesis')).toEqual(['aitbc', 'aitbc2'])
  })

  it('de-duplicates names repeated or covered by a keyword', () => {
    expect(names('aitbc2,aitbc2')).toEqual(['aitbc2'])
    expect(names('follower,aitbc1,genesis,aitbc')).toEqual(['aitbc1', 'aitbc', 'aitbc2', 'edge-3'])
    expect(names('all,all')).toEqual(['aitbc1', 'aitbc', 'aitbc2', 'edge-3'])
  })

  it('tolerates spaces around items', () => {
    expect(names('  aitbc1 ,  edge-3 ')).toEqual(['aitbc1', 'edge-3'])
  })

  it('an unknown name is refused with the list of valid targets', () => {
    const err = usageError(() => resolveTargets('aitbc9', nodes))
    expect(err.message).toBe('unknown target "aitbc9"; valid targets: all, genesis, follower, aitbc1, aitbc, aitbc2, edge-3')
  })

  it('an unknown name inside a list is refused even when other items are valid', () => {
    const err = usageError(() => resolveTargets('aitbc1,nope', nodes))
    expect(err.message).toMatch(/^unknown target "nope"; valid targets: /)
  })

  it('node names are matched exactly (case-sensitive)', () => {
    expect(usageError(() => resolveTargets('AITBC1', nodes)).message).toMatch(/^unknown target "AITBC1"/)
  })

  it.each(['', '   ', 'aitbc1,', ',aitbc1', 'aitbc1,,aitbc2', 'aitbc1, ,aitbc2'])('empty target or empty item %j is refused', expr => {
    const err = usageError(() => resolveTargets(expr, nodes))
    expect(err.message).toBe(`target "${expr}" is empty or has an empty item; expected all, genesis, follower, a node name or a comma-separated list (all, genesis, follower, aitbc1, aitbc, aitbc2, edge-3)`)
  })

  it('"genesis" in a mesh without a genesis node matches nothing and says so', () => {
    const followersOnly: NodeEntry[] = [{ name: 'f1', role: 'follower' }, { name: 'f2', role: 'follower' }]
    const err = usageError(() => resolveTargets('genesis', followersOnly))
    expect(err.message).toBe('target "genesis" matches no configured node; valid targets: all, genesis, follower, f1, f2')
  })

  it('validTargets lists the keywords then the node names in config order', () => {
    expect(validTargets(nodes)).toBe('all, genesis, follower, aitbc1, aitbc, aitbc2, edge-3')
  })
})

describe('parseOperationRequest', () => {
  it('names a missing operation as required', () => {
    expect(() => parseOperationRequest({})).toThrow('operation: "operation" is required')
  })

  it('fills defaults: target_node all, timeout 60, force false, verify true, sequential false, override_quorum false', () => {
    expect(parseOperationRequest({ operation: 'status' })).toEqual({
      operation: 'status', target_node: 'all', timeout: 60, force: false, verify: true, sequential: false, override_quorum: false
    })
  })

  it('keeps given values', () => {
    expect(parseOperationRequest({
      operation: 'sync', target_node: 'aitbc1,aitbc2', sync_type: 'mempool', timeout: 120, force: true, verify: false, message: 'hi'
    })).toEqual({ operation: 'sync', target_node: 'aitbc1,aitbc2', sync_type: 'mempool', timeout: 120, force: true, verify: false, message: 'hi', sequential: false, override_quorum: false })
    expect(parseOperationRequest({ operation: 'coordinate', action: 'restart-blockchain', sequential: true })).toMatchObject({ action: 'restart-blockchain', sequential: true })
    expect(parseOperationRequest({ operation: 'coordinate', action: 'restart-blockchain', force: true, override_quorum: true })).toMatchObject({ force: true, override_quorum: true })
    expect(parseOperationRequest({ operation: 'health', timeout: 0.5 }).timeout).toBe(0.5)
  })

  it.each(['sync', 'status', 'message', 'coordinate', 'health'])('accepts operation %s', operation => {
    expect(parseOperationRequest({ operation }).operation).toBe(operation)
  })

  it('refuses a timeout above 120 s, saying at most 120', () => {
    const err = usageError(() => parseOperationRequest({ operation: 'status', timeout: 121 }))
    expect(err.message).toBe('operation: "timeout": at most 120 seconds')
  })

  it.each([0, -1, -0.5])('refuses timeout %d', timeout => {
    const err = usageError(() => parseOperationRequest({ operation: 'status', timeout }))
    expect(err.message).toBe('operation: "timeout": expected a number of seconds greater than 0')
  })

  it('refuses a timeout given as a string', () => {
    const err = usageError(() => parseOperationRequest({ operation: 'status', timeout: '60' }))
    expect(err.message).toBe('operation: "timeout": expected a number of seconds')
  })

  it('refuses an unknown operation, listing the valid ones', () => {
    const err = usageError(() => parseOperationRequest({ operation: 'reboot' }))
    expect(err.message).toBe('operation: "operation": expected one of sync, status, message, coordinate, health')
  })

  it('refuses an operation that is not a string', () => {
    const err = usageError(() => parseOperationRequest({ operation: 7 }))
    expect(err.message).toContain('"operation": expected one of sync, status, message, coordinate, health')
  })

  it('refuses an unknown sync_type, listing the valid ones', () => {
    const err = usageError(() => parseOperationRequest({ operation: 'sync', sync_type: 'everything' }))
    expect(err.message).toBe('operation: "sync_type": expected one of blockchain, mempool, configuration, git, all')
  })

  it('refuses an unknown field, listing the known ones', () => {
    const err = usageError(() => parseOperationRequest({ operation: 'status', targetNode: 'aitbc1' }))
    expect(err.message).toBe('operation: unknown field(s) targetNode; expected operation, target_node, target_capability, message, kind, sync_type, timeout, force, verify, action, sequential, override_quorum')
  })

  it.each([null, undefined, 'status', 42, true, [], [{ operation: 'status' }]])('refuses non-object input %j', input => {
    const err = usageError(() => parseOperationRequest(input))
    expect(err.message).toBe('operation must be a JSON object such as {"operation":"status","target_node":"all"}')
  })

  it.each([
    [{ operation: 'status', target_node: 5 }, 'operation: "target_node": expected a string: all, genesis, follower, a node name or a comma-separated list'],
    [{ operation: 'status', target_node: null }, 'operation: "target_node": expected a string: all, genesis, follower, a node name or a comma-separated list'],
    [{ operation: 'status', force: 'yes' }, 'operation: "force": expected true or false'],
    [{ operation: 'status', verify: 1 }, 'operation: "verify": expected true or false'],
    [{ operation: 'status', timeout: null }, 'operation: "timeout": expected a number of seconds']
  ])('refuses wrong types: %j', (input, message) => {
    expect(usageError(() => parseOperationRequest(input)).message).toBe(message)
  })
})
