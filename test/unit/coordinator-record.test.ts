import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  COORDINATOR_FIELDS_13, COORDINATOR_FIELDS_15, fromPythonIsoformat, parseCoordinatorRecord, toCoordinatorRecord, type CoordinatorRecord
} from '../../src/coordinator/record.js'
import type { AgentRecord } from '../../src/registry/agent.js'
import { ChangeAuthority } from '../../src/registry/authorship.js'
import { AgentRegistry } from '../../src/registry/registry.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir } from '../helpers.js'

const log = pino({ level: 'silent' })

function view (over: Partial<AgentRecord> = {}): AgentRecord {
  return {
    agent_id: 'a1', agent_type: 'worker', status: 'active', capabilities: ['gpu'], services: [], endpoints: { api: 'http://h:1' }, metadata: { nested: { deep: [1, 2] } },
    last_heartbeat: '2026-12-01T01:02:03.456Z', registration_time: '2026-12-01T01:00:00.000Z', load_metrics: { cpu: 0.5 }, health_score: 1, version: '1.0.0', tags: [],
    chain_id: 'ait-devnet', island_id: 'eu-1', owner_node: 'aitbc', ...over
  }
}

/** A record as the coordinator writes it (isoformat of aware UTC). */
function coordinatorJson (over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = new Date().toISOString()
  return { ...toCoordinatorRecord(view({ last_heartbeat: now, registration_time: now }), 15), ...over }
}

describe('the AITBC coordinator\'s record', () => {
  it('writes exactly its fields, 15 or 13, with Python isoformat times, and nothing of the mesh', () => {
    const r15 = toCoordinatorRecord(view(), 15)!
    expect(Object.keys(r15)).toEqual([...COORDINATOR_FIELDS_15])
    expect(r15).toMatchObject({ last_heartbeat: '2026-12-01T01:02:03.456000+00:00', registration_time: '2026-12-01T01:00:00.000000+00:00', chain_id: 'ait-devnet', island_id: 'eu-1' })
    const r13 = toCoordinatorRecord(view(), 13)!
    expect(Object.keys(r13)).toEqual([...COORDINATOR_FIELDS_13])
    expect(r13.last_heartbeat).toBe('2026-12-01T01:02:03.456000')
    // Its own parser takes what the mesh writes, for both layouts.
    expect(parseCoordinatorRecord(JSON.parse(JSON.stringify(r15)), 15)).toMatchObject({ ok: true, record: { last_heartbeat: '2026-12-01T01:02:03.456Z' } })
    expect(parseCoordinatorRecord(JSON.parse(JSON.stringify(r13)), 13)).toMatchObject({ ok: true, record: { last_heartbeat: '2026-12-01T01:02:03.456Z' } })
  })

  it('keeps an agent type the coordinator does not know out of its records', () => {
    expect(toCoordinatorRecord(view({ agent_type: 'trainer' }), 15)).toBeUndefined()
  })

  it.each([
    ['2026-12-01T01:02:03.123456+00:00', '2026-12-01T01:02:03.123Z'],
    ['2026-12-01T01:02:03.123456', '2026-12-01T01:02:03.123Z'],
    ['2026-12-01T01:02:03+00:00', '2026-12-01T01:02:03.000Z'],
    ['2026-12-01T03:02:03.5+02:00', '2026-12-01T01:02:03.500Z'],
    ['2026-12-01 01:02:03.123456', '2026-12-01T01:02:03.123Z']
  ])('reads the isoformat time %s as %s', (python, iso) => {
    expect(fromPythonIsoformat(python)).toBe(iso)
  })

  it.each(['yesterday', '2026-13-01T00:00:00', '2026-12-01T01:02:03.123456+00:00 '])('refuses the time "%s"', value => {
    expect(fromPythonIsoformat(value)).toBeUndefined()
  })

  it.each([
    ['an extra field', { owner_node: 'aitbc' }, /unknown field\(s\) owner_node/],
    ['an unknown agent type', { agent_type: 'trainer' }, /agent_type/],
    ['an unknown status', { status: 'sleeping' }, /status/],
    ['an unparsable time', { last_heartbeat: 'soon' }, /last_heartbeat.*not an isoformat time/],
    ['a missing field', { island_id: undefined }, /island_id/]
  ])('parses strictly, as the coordinator loads: refuses %s', (_what, over, reason) => {
    const parsed = parseCoordinatorRecord(JSON.parse(JSON.stringify(coordinatorJson(over))), 15)
    expect(parsed.ok).toBe(false)
    expect((parsed as { reason: string }).reason).toMatch(reason)
  })
})

describe('agents of the local coordinator in the registry', () => {
  const keys = new Map<string, PrivateKey>()
  let registry: AgentRegistry
  let store: SqliteBackend

  function authority (node: string): ChangeAuthority {
    return new ChangeAuthority({ node, privateKey: keys.get(node)!, peerKey: name => keys.get(name)?.publicKey, roleOf: name => name === 'aitbc' ? 'genesis' : 'follower', removalsFrom: () => ['genesis'] })
  }

  async function open (node: string): Promise<void> {
    store = new SqliteBackend(join(tempDir('aitbc-mesh-coordinator-'), 'store.db'), '')
    registry = new AgentRegistry({ node, store, log, authority: authority(node), clockSkewMs: 60_000, recordFields: 15, agentDefaults: { chainId: 'ait-hub', islandId: 'default' } })
    await registry.start()
  }

  function incoming (over: Record<string, unknown> = {}): CoordinatorRecord {
    const parsed = parseCoordinatorRecord(JSON.parse(JSON.stringify(coordinatorJson(over))), 15)
    if (!parsed.ok) throw new Error(parsed.reason)
    return parsed.record
  }

  /** A remote agent of aitbc1, as replication brings it. */
  async function remoteAgent (id: string): Promise<void> {
    const now = new Date().toISOString()
    const record = view({ agent_id: id, owner_node: 'aitbc1', last_heartbeat: now, registration_time: now })
    await registry.applyRemote(authority('aitbc1').sign({ agentId: id, clock: { ms: Date.now(), counter: 0, node: 'aitbc1' }, owner: 'aitbc1', recordJson: JSON.stringify(record), record }))
  }

  beforeEach(async () => {
    for (const name of ['aitbc', 'aitbc1', 'aitbc2']) keys.set(name, await generateKeyPair('Ed25519'))
  })

  afterEach(async () => {
    await registry.stop()
    await store.close()
  })

  it('a registration through the coordinator becomes this node\'s agent, signed; the same again changes nothing', async () => {
    await open('aitbc1')
    const changes: string[] = []
    registry.onLocalChange = entry => { changes.push(entry.agentId) }
    expect(await registry.fromCoordinator(incoming({ agent_id: 'c1', metadata: { model: { name: 'x', layers: 3 } } }), 'registered')).toBe('imported')
    expect(registry.get('c1')).toMatchObject({ owner_node: 'aitbc1', chain_id: 'ait-devnet', island_id: 'eu-1', metadata: { model: { name: 'x', layers: 3 } } })
    expect(registry.entry('c1')).toMatchObject({ owner: 'aitbc1', clock: { node: 'aitbc1' } })
    expect(changes).toEqual(['c1'])
    expect(await registry.fromCoordinator(incoming({ agent_id: 'c1', metadata: { model: { name: 'x', layers: 3 } } }), 'updated')).toBe('unchanged')
    expect(changes).toEqual(['c1'])
    expect(await registry.fromCoordinator(incoming({ agent_id: 'c1', status: 'busy' }), 'updated')).toBe('imported')
    expect(registry.get('c1')?.status).toBe('busy')
  })

  it('the coordinator\'s inactivity marking of an agent whose heartbeats come through the mesh is not taken', async () => {
    await open('aitbc1')
    await registry.register({ agent_id: 'mine', agent_type: 'worker' })
    const before = registry.entry('mine')!.clock
    const stale = new Date(Date.now() - 130_000).toISOString().replace('Z', '000+00:00')
    expect(await registry.fromCoordinator(incoming({ agent_id: 'mine', status: 'inactive', last_heartbeat: stale }), 'updated')).toBe('reasserted')
    expect(registry.entry('mine')!.clock).toEqual(before)
    expect(registry.get('mine')?.status).toBe('active')
    // An unknown agent marked inactive is not brought in either.
    expect(await registry.fromCoordinator(incoming({ agent_id: 'ghost', status: 'inactive' }), 'updated')).toBe('ignored')
    expect(registry.get('ghost')).toBeUndefined()
  })

  it('the coordinator\'s writes about another node\'s agent never override it: written back instead', async () => {
    await open('aitbc2')
    await remoteAgent('r1')
    await store.write([{ op: 'set', key: 'agent:r1', value: JSON.stringify(coordinatorJson({ agent_id: 'r1', status: 'inactive' })) }])
    expect(await registry.fromCoordinator(incoming({ agent_id: 'r1', status: 'inactive' }), 'updated')).toBe('reasserted')
    expect(await registry.fromCoordinator(incoming({ agent_id: 'r1', endpoints: { api: 'http://elsewhere:1' } }), 'registered')).toBe('reasserted')
    expect(registry.get('r1')).toMatchObject({ owner_node: 'aitbc1', status: 'active', endpoints: { api: 'http://h:1' } })
    await registry.stop() // flushes the written-back record
    expect(JSON.parse((await store.get('agent:r1'))!)).toMatchObject({ status: 'active', endpoints: { api: 'http://h:1' } })
    // A follower may not remove it: written back too.
    await registry.start()
    expect(await registry.removedByCoordinator('r1')).toBe('reasserted')
    expect(registry.get('r1')).toBeDefined()
  })

  it('an unregistration through the coordinator removes this node\'s agent, and on the genesis node another node\'s too', async () => {
    await open('aitbc')
    await registry.register({ agent_id: 'mine', agent_type: 'worker' })
    await remoteAgent('theirs')
    expect(await registry.removedByCoordinator('mine')).toBe('removed')
    expect(await registry.removedByCoordinator('theirs')).toBe('removed')
    expect(registry.get('mine')).toBeUndefined()
    expect(registry.entry('theirs')).toMatchObject({ owner: 'aitbc1', clock: { node: 'aitbc' } })
    expect(await registry.removedByCoordinator('never-known')).toBe('ignored')
    // A record the coordinator still holds for a removed agent does not bring it back.
    expect(await registry.fromCoordinator(incoming({ agent_id: 'mine' }), 'found')).toBe('ignored')
  })
})
