import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { COORDINATOR_FIELDS_15, pythonIsoformat } from '../../src/coordinator/record.js'
import { UsageError } from '../../src/errors.js'
import { discover, effectiveStatus, healthScore, isExpired, listInput, type AgentRecord } from '../../src/registry/agent.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { ChangeAuthority, ChangeRejected } from '../../src/registry/authorship.js'
import { compareClocks, nextClock, type Clock } from '../../src/registry/clock.js'
import { entryFromWire, toWire, type AgentEntry, type UnsignedEntry } from '../../src/registry/entry.js'
import { AgentRegistry } from '../../src/registry/registry.js'
import type { WriteOp } from '../../src/store/backend.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir } from '../helpers.js'

const log = pino({ level: 'silent' })
const NODE = 'aitbc'
const SKEW_MS = 60_000
const DEFAULTS = { chainId: 'ait-hub', islandId: 'default' }

/** Keys of the nodes of the test mesh: aitbc (genesis, this node), aitbc1 and aitbc2 (followers), and an outsider. */
const keys = new Map<string, PrivateKey>()
for (const name of ['aitbc', 'aitbc1', 'aitbc2', 'mallory']) keys.set(name, await generateKeyPair('Ed25519'))
const roles: Record<string, 'genesis' | 'follower'> = { aitbc: 'genesis', aitbc1: 'follower', aitbc2: 'follower' }

function authorityOf (node: string, removalsFrom = ['genesis']): ChangeAuthority {
  return new ChangeAuthority({
    node,
    privateKey: keys.get(node)!,
    // mallory is not in the allowlist.
    peerKey: name => name in roles ? keys.get(name)!.publicKey : undefined,
    roleOf: name => roles[name],
    removalsFrom: () => removalsFrom
  })
}

/** A change signed by `author`. */
function signed (author: string, entry: Omit<UnsignedEntry, 'recordJson' | 'owner'> & { owner?: string }): AgentEntry {
  const owner = entry.owner ?? entry.record?.owner_node ?? author
  return authorityOf(author).sign({ ...entry, owner, recordJson: entry.record != null ? JSON.stringify(entry.record) : '' })
}

function removal (author: string, agentId: string, clock: Clock, owner = author): AgentEntry {
  return signed(author, { agentId, clock, owner, removedAt: clock.ms })
}

function record (id: string, over: Partial<AgentRecord> = {}, now = Date.now()): AgentRecord {
  const iso = new Date(now).toISOString()
  return {
    agent_id: id,
    agent_type: 'worker',
    status: 'active',
    capabilities: [],
    services: [],
    endpoints: {},
    metadata: {},
    last_heartbeat: iso,
    registration_time: iso,
    load_metrics: {},
    health_score: 1,
    version: '1.0.0',
    tags: [],
    chain_id: 'ait-hub',
    island_id: 'default',
    owner_node: 'aitbc1',
    ...over
  }
}

function ids (records: AgentRecord[]): string[] {
  return records.map(r => r.agent_id)
}

describe('AgentRegistry over an embedded SQLite store', () => {
  let file: string
  let store: SqliteBackend
  let registry: AgentRegistry

  async function openRegistry (node = NODE, backend?: SqliteBackend, logger = log): Promise<void> {
    store = backend ?? new SqliteBackend(file, '')
    registry = new AgentRegistry({ node, store, log: logger, authority: authorityOf(node), clockSkewMs: SKEW_MS, recordFields: 15, agentDefaults: DEFAULTS })
    await registry.start()
  }

  async function stored (id: string): Promise<Record<string, unknown> | null> {
    const value = await store.get(`agent:${id}`)
    return value == null ? null : JSON.parse(value) as Record<string, unknown>
  }

  beforeEach(async () => {
    file = join(tempDir('aitbc-mesh-registry-'), 'store.db')
    await openRegistry()
  })

  afterEach(async () => {
    vi.useRealTimers()
    await registry.stop()
    await store.close()
  })

  describe('register', () => {
    it('returns the record with owner node, times and health 1, and stores it under agent:{id} and in agents:active', async () => {
      const before = Date.now()
      const rec = await registry.register({
        agent_id: 'agent-1',
        agent_type: 'worker',
        capabilities: ['gpu'],
        services: ['inference'],
        endpoints: { api: 'http://10.0.0.1:9000' },
        metadata: { gpu: 'a100', count: 2 },
        tags: ['eu']
      })
      const after = Date.now()

      expect(rec).toMatchObject({
        agent_id: 'agent-1',
        agent_type: 'worker',
        status: 'active',
        capabilities: ['gpu'],
        services: ['inference'],
        endpoints: { api: 'http://10.0.0.1:9000' },
        metadata: { gpu: 'a100', count: 2 },
        load_metrics: {},
        version: '1.0.0',
        tags: ['eu'],
        owner_node: NODE,
        health_score: 1
      })
      const registered = Date.parse(rec.registration_time)
      expect(registered).toBeGreaterThanOrEqual(before)
      expect(registered).toBeLessThanOrEqual(after)
      expect(rec.last_heartbeat).toBe(rec.registration_time)

      // Stored as the AITBC coordinator loads it: exactly its 15 fields, Python isoformat times.
      const { owner_node: _owner, ...fields } = rec
      expect(await stored('agent-1')).toEqual({ ...fields, last_heartbeat: pythonIsoformat(rec.last_heartbeat, true), registration_time: pythonIsoformat(rec.registration_time, true) })
      expect(Object.keys((await stored('agent-1'))!).sort()).toEqual([...COORDINATOR_FIELDS_15].sort())
      expect(JSON.parse((await store.get('mesh:agent-change:agent-1'))!)).toMatchObject({ owner: NODE, removed: false })
      expect(await store.smembers('agents:active')).toEqual(['agent-1'])
      expect(registry.get('agent-1')).toEqual(rec)
      expect(registry.list({})).toEqual([rec])
    })

    it('keeps registration_time on re-registration and updates the rest', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      const t0 = Date.parse('2025-03-01T10:00:00.000Z')
      vi.setSystemTime(t0)
      const first = await registry.register({ agent_id: 'agent-1', agent_type: 'worker', capabilities: ['gpu'] })
      expect(first.registration_time).toBe('2025-03-01T10:00:00.000Z')

      vi.setSystemTime(t0 + 30_000)
      const second = await registry.register({ agent_id: 'agent-1', agent_type: 'worker', capabilities: ['gpu', 'cuda'], version: '2.0.0' })
      expect(second).toMatchObject({
        registration_time: '2025-03-01T10:00:00.000Z',
        last_heartbeat: '2025-03-01T10:00:30.000Z',
        capabilities: ['gpu', 'cuda'],
        version: '2.0.0'
      })
      expect(await stored('agent-1')).toMatchObject({ registration_time: '2025-03-01T10:00:00.000000+00:00', last_heartbeat: '2025-03-01T10:00:30.000000+00:00', version: '2.0.0' })
      expect(registry.list({})).toHaveLength(1)
    })

    it.each([
      ['missing agent_type', { agent_id: 'a1' }, /"agent_type" is required/],
      ['unknown status', { agent_id: 'a1', agent_type: 'worker', status: 'sleeping' }, /"status".*expected one of active, inactive, busy, maintenance, error/],
      ['unknown field', { agent_id: 'a1', agent_type: 'worker', colour: 'blue' }, /unknown field\(s\) colour/],
      ['capabilities not an array', { agent_id: 'a1', agent_type: 'worker', capabilities: 'gpu' }, /"capabilities"/],
      ['a 70 KB metadata value', { agent_id: 'a1', agent_type: 'worker', metadata: { blob: 'x'.repeat(70 * 1024) } }, /record is \d+ bytes, over the 65536 byte limit/],
      ['an agent type the AITBC coordinator does not know', { agent_id: 'a1', agent_type: 'trainer' }, /"agent_type": expected one of the AITBC coordinator's agent types coordinator, worker, specialist, monitor, gateway, orchestrator/],
      ['a bad agent_id', { agent_id: 'has space', agent_type: 'worker' }, /"agent_id"/],
      ['not an object', ['a1'], /expected a JSON object/]
    ])('refuses %s with a UsageError naming it, and stores nothing', async (_what, input, message) => {
      const attempt = registry.register(input)
      await expect(attempt).rejects.toBeInstanceOf(UsageError)
      await expect(attempt).rejects.toThrow(message)
      expect(registry.list({})).toEqual([])
      expect(await store.scan('')).toEqual(new Map())
      expect(await store.smembers('agents:active')).toEqual([])
    })

    it('refuses a record over the 64 KiB limit (many metadata values), and stores nothing', async () => {
      const metadata = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'x'.repeat(4000)]))
      const attempt = registry.register({ agent_id: 'a1', agent_type: 'worker', metadata })
      await expect(attempt).rejects.toBeInstanceOf(UsageError)
      await expect(attempt).rejects.toThrow(/agent a1: record is \d+ bytes, over the 65536 byte limit/)
      expect(registry.get('a1')).toBeUndefined()
      expect(await store.get('agent:a1')).toBeNull()
    })
  })

  describe('heartbeat', () => {
    beforeEach(async () => {
      await registry.register({ agent_id: 'a1', agent_type: 'worker' })
    })

    it('busy with load {cpu: 0.7} gives health 0.8 (busy -0.1, average load over 0.6 -0.1), in memory and in the store', async () => {
      const rec = await registry.heartbeat({ agent_id: 'a1', status: 'busy', load_metrics: { cpu: 0.7 } })
      expect(rec).toMatchObject({ status: 'busy', load_metrics: { cpu: 0.7 }, health_score: 0.8 })
      expect(registry.get('a1')).toMatchObject({ status: 'busy', health_score: 0.8 })
      expect(await stored('a1')).toMatchObject({ status: 'busy', load_metrics: { cpu: 0.7 }, health_score: 0.8 })
      // Only active agents are in agents:active.
      expect(await store.smembers('agents:active')).toEqual([])

      // Without a status the stated one is kept.
      expect(await registry.heartbeat({ agent_id: 'a1' })).toMatchObject({ status: 'busy', load_metrics: { cpu: 0.7 }, health_score: 0.8 })

      expect(await registry.heartbeat({ agent_id: 'a1', status: 'active', load_metrics: {} })).toMatchObject({ status: 'active', health_score: 1 })
      expect(await store.smembers('agents:active')).toEqual(['a1'])
    })

    it.each([
      ['load over 0.8', 0.7, { status: 'active', load_metrics: { cpu: 0.9 } }],
      ['average load over 0.6 (0.9 and 0.5)', 0.9, { status: 'active', load_metrics: { cpu: 0.9, mem: 0.5 } }],
      ['average load 0.6 or less (0.7 and 0.5)', 1, { status: 'active', load_metrics: { cpu: 0.7, mem: 0.5 } }],
      ['error', 0.5, { status: 'error' }],
      ['maintenance', 0.8, { status: 'maintenance' }],
      ['error with load over 0.8', 0.2, { status: 'error', load_metrics: { cpu: 0.95 } }]
    ])('%s gives health %s', async (_what, expected, update) => {
      const rec = await registry.heartbeat({ agent_id: 'a1', ...update })
      expect(rec.health_score).toBe(expected)
      expect(registry.get('a1')?.health_score).toBe(expected)
      expect((await stored('a1'))?.health_score).toBe(expected)
    })

    it('advances last_heartbeat and keeps registration_time', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      const registered = registry.get('a1')!.registration_time
      vi.setSystemTime(Date.now() + 45_000)
      const rec = await registry.heartbeat({ agent_id: 'a1' })
      expect(rec.registration_time).toBe(registered)
      expect(Date.parse(rec.last_heartbeat) - Date.parse(registered)).toBeGreaterThanOrEqual(45_000)
    })

    it('refuses an unknown agent, an unknown status and unknown fields with a UsageError', async () => {
      await expect(registry.heartbeat({ agent_id: 'nobody' })).rejects.toThrow(UsageError)
      await expect(registry.heartbeat({ agent_id: 'nobody' })).rejects.toThrow(/unknown agent "nobody"/)
      await expect(registry.heartbeat({ agent_id: 'a1', status: 'sleeping' })).rejects.toThrow(UsageError)
      await expect(registry.heartbeat({ agent_id: 'a1', cpu: 0.5 })).rejects.toThrow(/unknown field\(s\) cpu/)
      await expect(registry.heartbeat({ agent_id: 'a1', load_metrics: { cpu: -1 } })).rejects.toThrow(/"load_metrics.cpu"/)
      expect(registry.get('a1')).toMatchObject({ status: 'active', load_metrics: {}, health_score: 1 })
    })
  })

  describe('remove', () => {
    it('removes the agent from list, get, the store and agents:active, leaving a tombstone', async () => {
      await registry.register({ agent_id: 'a1', agent_type: 'worker' })
      await registry.register({ agent_id: 'a2', agent_type: 'worker' })
      expect(await store.smembers('agents:active')).toEqual(['a1', 'a2'])

      expect(await registry.remove({ agent_id: 'a1' })).toEqual({ agent_id: 'a1', removed: true })
      expect(ids(registry.list({}))).toEqual(['a2'])
      expect(registry.get('a1')).toBeUndefined()
      expect(await store.get('agent:a1')).toBeNull()
      expect(await store.smembers('agents:active')).toEqual(['a2'])
      expect(JSON.parse((await store.get('mesh:agent-change:a1'))!)).toMatchObject({ agent_id: 'a1', removed: true, owner: NODE, record_json: '' })

      await expect(registry.heartbeat({ agent_id: 'a1' })).rejects.toThrow(UsageError)
      await expect(registry.remove({ agent_id: 'a1' })).rejects.toThrow(UsageError)
    })

    it('refuses an unknown agent with a UsageError', async () => {
      await expect(registry.remove({ agent_id: 'nobody' })).rejects.toThrow(UsageError)
      await expect(registry.remove({ agent_id: 'nobody' })).rejects.toThrow(/unknown agent "nobody"/)
    })

    it('a later register brings a removed agent back', async () => {
      await registry.register({ agent_id: 'a1', agent_type: 'worker' })
      await registry.remove({ agent_id: 'a1' })
      await registry.register({ agent_id: 'a1', agent_type: 'worker' })
      expect(ids(registry.list({}))).toEqual(['a1'])
      expect(await stored('a1')).toMatchObject({ agent_id: 'a1' })
      expect(JSON.parse((await store.get('mesh:agent-change:a1'))!)).toMatchObject({ agent_id: 'a1', removed: false })
    })
  })

  it('concurrent registrations are each in the store by the time their call returns', async () => {
    const agentIds = ['c1', 'c2', 'c3', 'c4', 'c5']
    const results = await Promise.all(agentIds.map(async id => {
      const rec = await registry.register({ agent_id: id, agent_type: 'worker' })
      return { rec, storedAtReturn: await store.get(`agent:${id}`) }
    }))
    expect(results.map(r => r.rec.agent_id)).toEqual(agentIds)
    for (const { rec, storedAtReturn } of results) expect(JSON.parse(storedAtReturn!)).toMatchObject({ agent_id: rec.agent_id, agent_type: 'worker' })
    expect([...(await store.scan('agent:')).keys()].sort()).toEqual(agentIds.map(id => `agent:${id}`))
    expect(await store.smembers('agents:active')).toEqual(agentIds)
  })

  it('tells onLocalChange about every local register, heartbeat and remove', async () => {
    const seen: AgentEntry[] = []
    registry.onLocalChange = entry => { seen.push(entry) }
    await registry.register({ agent_id: 'a1', agent_type: 'worker' })
    await registry.heartbeat({ agent_id: 'a1', status: 'busy' })
    await registry.remove({ agent_id: 'a1' })
    expect(seen.map(e => [e.agentId, e.record?.status ?? 'removed'])).toEqual([['a1', 'active'], ['a1', 'busy'], ['a1', 'removed']])
    expect(seen.every(e => e.clock.node === NODE)).toBe(true)
    expect(compareClocks(seen[0]!.clock, seen[1]!.clock)).toBeLessThan(0)
    expect(compareClocks(seen[1]!.clock, seen[2]!.clock)).toBeLessThan(0)
  })

  describe('list', () => {
    beforeEach(async () => {
      await registry.register({ agent_id: 'g1', agent_type: 'worker', capabilities: ['gpu', 'cuda'], services: ['inference'], tags: ['eu'] })
      await registry.register({ agent_id: 'g2', agent_type: 'worker', status: 'busy', load_metrics: { cpu: 0.7 }, capabilities: ['gpu'], services: ['inference', 'training'], tags: ['eu', 'prod'] })
      await registry.register({ agent_id: 'c1', agent_type: 'specialist', status: 'maintenance', capabilities: ['cpu'], tags: ['us'] })
      await registry.register({ agent_id: 'e1', agent_type: 'worker', status: 'error', load_metrics: { cpu: 0.9 }, capabilities: ['gpu', 'cuda'] })
    })

    it('lists every agent, best health first, ties by id', () => {
      const all = registry.list({})
      expect(all.map(r => [r.agent_id, r.health_score])).toEqual([['g1', 1], ['c1', 0.8], ['g2', 0.8], ['e1', 0.2]])
      expect(ids(registry.list(undefined))).toEqual(['g1', 'c1', 'g2', 'e1'])
    })

    it.each([
      ['agent_type exact', { agent_type: 'worker' }, ['g1', 'g2', 'e1']],
      ['agent_type is not a prefix match', { agent_type: 'train' }, []],
      ['status exact', { status: 'busy' }, ['g2']],
      ['all capabilities', { capabilities: ['gpu', 'cuda'] }, ['g1', 'e1']],
      ['one capability', { capabilities: ['gpu'] }, ['g1', 'g2', 'e1']],
      ['all services', { services: ['inference', 'training'] }, ['g2']],
      ['all tags', { tags: ['eu', 'prod'] }, ['g2']],
      ['one tag', { tags: ['eu'] }, ['g1', 'g2']],
      ['min_health_score', { min_health_score: 0.8 }, ['g1', 'c1', 'g2']],
      ['limit', { limit: 2 }, ['g1', 'c1']],
      ['combined', { agent_type: 'worker', capabilities: ['gpu'], min_health_score: 0.5 }, ['g1', 'g2']]
    ])('filters by %s', (_what, query, expected) => {
      expect(ids(registry.list(query))).toEqual(expected)
    })

    it('refuses unknown or malformed filters with a UsageError', () => {
      expect(() => registry.list({ owner: 'aitbc' })).toThrow(UsageError)
      expect(() => registry.list({ status: 'sleeping' })).toThrow(/"status"/)
      expect(() => registry.list({ limit: 0 })).toThrow(/"limit"/)
    })
  })

  describe('applyRemote: signed by the author, changed only by the owner, last writer wins', () => {
    let c1: Clock

    beforeEach(async () => {
      c1 = { ms: Date.now(), counter: 0, node: 'aitbc1' }
      expect(await registry.applyRemote(signed('aitbc1', { agentId: 'r1', clock: c1, record: record('r1', { capabilities: ['gpu'] }) }))).toBe('applied')
    })

    async function change (id: string): Promise<Record<string, unknown> | null> {
      const value = await store.get(`mesh:agent-change:${id}`)
      return value == null ? null : JSON.parse(value) as Record<string, unknown>
    }

    it('takes a new agent from its owner, in memory and in the store (the view, the signed change, the active set)', async () => {
      expect(registry.list({ capabilities: ['gpu'] }).map(r => [r.agent_id, r.owner_node])).toEqual([['r1', 'aitbc1']])
      expect(await stored('r1')).toMatchObject({ agent_id: 'r1', chain_id: 'ait-hub', island_id: 'default' })
      expect(await stored('r1')).not.toHaveProperty('mesh_clock')
      expect(await change('r1')).toMatchObject({ agent_id: 'r1', clock: c1, owner: 'aitbc1', removed: false })
      expect(await store.smembers('agents:active')).toEqual(['r1'])
    })

    it('ignores an older change and one with the very same clock', async () => {
      expect(await registry.applyRemote(signed('aitbc1', { agentId: 'r1', clock: { ...c1, ms: c1.ms - 1000 }, record: record('r1', { agent_type: 'older' }) }))).toBe('stale')
      expect(await registry.applyRemote(signed('aitbc1', { agentId: 'r1', clock: { ...c1 }, record: record('r1', { agent_type: 'same' }) }))).toBe('stale')
      expect(registry.get('r1')?.agent_type).toBe('worker')
      expect(await change('r1')).toMatchObject({ clock: c1 })
    })

    it('takes a newer change of the owner; a heartbeat here for its agent is refused (only the owner changes it)', async () => {
      const newer: Clock = { ...c1, ms: c1.ms + 1000 }
      expect(await registry.applyRemote(signed('aitbc1', { agentId: 'r1', clock: newer, record: record('r1', { agent_type: 'newer' }) }))).toBe('applied')
      expect(registry.get('r1')).toMatchObject({ agent_type: 'newer', owner_node: 'aitbc1' })
      expect(registry.entry('r1')?.clock).toEqual(newer)
      await expect(registry.heartbeat({ agent_id: 'r1' })).rejects.toThrow(/agent "r1" is owned by node aitbc1; heartbeat it there/)
      await expect(registry.register({ agent_id: 'r1', agent_type: 'worker' })).rejects.toThrow(/owned by node aitbc1; register it there/)
    })

    it('the owner removes its agent; an older record after it does not bring it back, an older tombstone changes nothing', async () => {
      const tomb: Clock = { ...c1, ms: c1.ms + 2000 }
      expect(await registry.applyRemote(removal('aitbc1', 'r1', tomb))).toBe('applied')
      expect(registry.get('r1')).toBeUndefined()
      expect(await store.get('agent:r1')).toBeNull()
      expect(await store.smembers('agents:active')).toEqual([])
      expect(await change('r1')).toMatchObject({ removed: true, owner: 'aitbc1', clock: tomb })
      expect(await registry.applyRemote(signed('aitbc1', { agentId: 'r1', clock: { ...c1, ms: c1.ms + 1000 }, record: record('r1') }))).toBe('stale')
      expect(await registry.applyRemote(removal('aitbc1', 'r1', { ...c1, ms: c1.ms + 500 }))).toBe('stale')
      expect(registry.get('r1')).toBeUndefined()
      // Removed, anyone may register the id anew.
      expect(await registry.applyRemote(signed('aitbc2', { agentId: 'r1', clock: { ms: c1.ms + 3000, counter: 0, node: 'aitbc2' }, record: record('r1', { owner_node: 'aitbc2' }) }))).toBe('applied')
      expect(registry.get('r1')?.owner_node).toBe('aitbc2')
    })

    const refusedCases: Array<[string, () => AgentEntry, string]> = [
      ['another node taking over a live agent', () => signed('aitbc2', { agentId: 'r1', clock: { ms: Date.now() + 1000, counter: 0, node: 'aitbc2' }, record: record('r1', { owner_node: 'aitbc2', endpoints: { api: 'http://evil' } }) }), 'not-owner'],
      ['a record naming an owner other than its author', () => signed('aitbc2', { agentId: 'r1', clock: { ms: Date.now() + 1000, counter: 0, node: 'aitbc2' }, record: record('r1', { owner_node: 'aitbc1' }) }), 'not-owner'],
      ['a follower removing another node\'s agent', () => removal('aitbc2', 'r1', { ms: Date.now() + 1000, counter: 0, node: 'aitbc2' }, 'aitbc1'), 'removal-not-allowed'],
      ['a follower removing it claiming to own it', () => removal('aitbc2', 'r1', { ms: Date.now() + 1000, counter: 0, node: 'aitbc2' }), 'removal-not-allowed'],
      ['a change signed by one node in the name of another', () => ({ ...signed('aitbc2', { agentId: 'r1', clock: { ms: Date.now() + 1000, counter: 0, node: 'aitbc2' }, record: record('r1', { agent_type: 'forged' }) }), clock: { ms: Date.now() + 1000, counter: 0, node: 'aitbc1' } }), 'bad-signature'],
      ['a record changed after it was signed', () => ({ ...signed('aitbc1', { agentId: 'r1', clock: { ...c1, ms: c1.ms + 1000 }, record: record('r1') }), recordJson: JSON.stringify(record('r1', { agent_type: 'tampered' })), record: record('r1', { agent_type: 'tampered' }) }), 'bad-signature'],
      ['a change from a node outside the allowlist', () => signed('mallory', { agentId: 'r1', clock: { ms: Date.now() + 1000, counter: 0, node: 'mallory' }, record: record('r1', { owner_node: 'mallory' }) }), 'unknown-author'],
      ['a clock stamp in the far future (9e15 ms, a valid uint64)', () => removal('aitbc1', 'r1', { ms: 9e15, counter: 0, node: 'aitbc1' }), 'clock-out-of-range'],
      ['a clock stamp two minutes ahead', () => signed('aitbc1', { agentId: 'r1', clock: { ms: Date.now() + 120_000, counter: 0, node: 'aitbc1' }, record: record('r1') }), 'clock-out-of-range'],
      ['a clock stamp older than anything kept', () => removal('aitbc1', 'r1', { ms: Date.now() - 8 * 24 * 3600_000, counter: 0, node: 'aitbc1' }), 'clock-out-of-range'],
      ['a last_heartbeat a year ahead (never expiring)', () => signed('aitbc1', { agentId: 'r1', clock: { ...c1, ms: c1.ms + 1000 }, record: record('r1', { last_heartbeat: new Date(Date.now() + 365 * 86400_000).toISOString() }) }), 'time-out-of-range'],
      ['a registration_time after the last heartbeat', () => signed('aitbc1', { agentId: 'r1', clock: { ...c1, ms: c1.ms + 1000 }, record: record('r1', { registration_time: new Date(Date.now() + 3600_000).toISOString() }) }), 'time-out-of-range']
    ]
    it.each(refusedCases)('refuses %s, applying and storing nothing', async (_what, make, reason) => {
      const before = await change('r1')
      const err = await registry.applyRemote(make()).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(ChangeRejected)
      expect((err as ChangeRejected).reason).toBe(reason)
      expect(registry.get('r1')).toMatchObject({ agent_type: 'worker', owner_node: 'aitbc1', endpoints: {} })
      expect(registry.entry('r1')?.clock).toEqual(c1)
      expect(await change('r1')).toEqual(before)
      expect(registry.health()).toMatchObject({ ok: true, pendingWrites: 0 })
    })

    it('applies a removal of another node\'s agent from the genesis node (trust.removalsFrom), and from this node when it is the genesis', async () => {
      await openRegistry('aitbc2')
      c1 = { ms: Date.now(), counter: 0, node: 'aitbc1' }
      await registry.applyRemote(signed('aitbc1', { agentId: 'r2', clock: c1, record: record('r2') }))
      expect(await registry.applyRemote(removal('aitbc', 'r2', { ms: c1.ms + 1, counter: 0, node: 'aitbc' }, 'aitbc1'))).toBe('applied')
      expect(registry.get('r2')).toBeUndefined()
      // This node (a follower) may not remove another node's agent locally.
      await registry.applyRemote(signed('aitbc1', { agentId: 'r3', clock: c1, record: record('r3') }))
      await expect(registry.remove({ agent_id: 'r3' })).rejects.toThrow(/owned by node aitbc1; remove it there/)
      await registry.stop()
      await store.close()
      file = join(tempDir('aitbc-mesh-registry-'), 'store.db')
      await openRegistry()
      await registry.applyRemote(signed('aitbc1', { agentId: 'r4', clock: c1, record: record('r4') }))
      expect(await registry.remove({ agent_id: 'r4' })).toEqual({ agent_id: 'r4', removed: true })
      expect(registry.entry('r4')).toMatchObject({ owner: 'aitbc1', clock: { node: 'aitbc' } })
    })

    it('two sides changed the same agent: the later change wins and the losing one is logged once, with both stamps and authors', async () => {
      const lines: Array<Record<string, unknown>> = []
      await registry.stop()
      await store.close()
      file = join(tempDir('aitbc-mesh-registry-'), 'store.db')
      await openRegistry('aitbc2', undefined, pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } }))
      const t0 = Date.now() - 10_000
      await registry.applyRemote(signed('aitbc1', { agentId: 'c1', clock: { ms: t0, counter: 0, node: 'aitbc1' }, record: record('c1', {}, t0) }))
      // During a partition the genesis side removed c1 and the owner's side heartbeated it later.
      const removed = removal('aitbc', 'c1', { ms: t0 + 1000, counter: 0, node: 'aitbc' }, 'aitbc1')
      const heartbeat = signed('aitbc1', { agentId: 'c1', clock: { ms: t0 + 2000, counter: 0, node: 'aitbc1' }, record: record('c1', {}, t0 + 2000) })
      expect(await registry.applyRemote(removed)).toBe('applied')
      expect(await registry.applyRemote(heartbeat)).toBe('applied')
      expect(registry.get('c1')).toMatchObject({ agent_id: 'c1', last_heartbeat: new Date(t0 + 2000).toISOString() })
      // The removal arriving again (anti-entropy from the other side) loses and is not logged twice.
      expect(await registry.applyRemote(removed)).toBe('stale')
      // Two lines: the removal replaced aitbc1's record, then aitbc1's heartbeat replaced the removal.
      const superseded = lines.filter(l => l.event === 'agent_change_superseded')
      expect(superseded).toHaveLength(2)
      expect(superseded[1]).toMatchObject({
        agentId: 'c1',
        won: { author: 'aitbc1', stamp: `${t0 + 2000}.0.aitbc1` },
        lost: { author: 'aitbc', stamp: `${t0 + 1000}.0.aitbc`, change: 'removed' }
      })
      // A node that had the later heartbeat first logs the removal as the loser when it arrives.
      lines.length = 0
      await registry.applyRemote(signed('aitbc1', { agentId: 'c2', clock: { ms: t0 + 2000, counter: 0, node: 'aitbc1' }, record: record('c2', {}, t0 + 2000) }))
      expect(await registry.applyRemote(removal('aitbc', 'c2', { ms: t0 + 1000, counter: 0, node: 'aitbc' }, 'aitbc1'))).toBe('stale')
      expect(lines.filter(l => l.event === 'agent_change_superseded')).toMatchObject([{ agentId: 'c2', won: { author: 'aitbc1' }, lost: { author: 'aitbc', change: 'removed' } }])
      // The owner's own successive heartbeats are not conflicts.
      lines.length = 0
      await registry.applyRemote(signed('aitbc1', { agentId: 'c2', clock: { ms: t0 + 3000, counter: 0, node: 'aitbc1' }, record: record('c2', {}, t0 + 3000) }))
      expect(lines.filter(l => l.event === 'agent_change_superseded')).toEqual([])
    })

    it('does not take a record whose last heartbeat is over 120 s + 1 h old', async () => {
      const stale = record('r5', {}, Date.now() - (3720 + 60) * 1000)
      expect(await registry.applyRemote(signed('aitbc1', { agentId: 'r5', clock: { ms: Date.now(), counter: 0, node: 'aitbc1' }, record: stale }))).toBe('stale')
      expect(registry.get('r5')).toBeUndefined()
      expect(await store.get('agent:r5')).toBeNull()
    })
  })

  describe('changes from the wire are decoded strictly', () => {
    it.each([
      ['a health score over 1', { ...record('r1'), health_score: 2 }],
      ['an unknown status', { ...record('r1'), status: 'sleeping' }],
      ['an extra field', { ...record('r1'), extra: true }],
      ['a record for another agent_id', record('other')],
      ['a missing owner_node', { ...record('r1'), owner_node: undefined }]
    ])('refuses a record with %s as malformed', (_what, bad) => {
      const update = toWire(signed('aitbc1', { agentId: 'r1', clock: { ms: Date.now(), counter: 0, node: 'aitbc1' }, record: record('r1') }), 'aitbc1')
      update.recordJson = JSON.stringify(bad)
      expect(() => entryFromWire(update)).toThrow(ChangeRejected)
      expect(() => entryFromWire(update)).toThrow(/invalid record|does not match/)
    })

    it('round-trips a signed change through the wire format', async () => {
      const entry = signed('aitbc1', { agentId: 'w1', clock: { ms: Date.now(), counter: 3, node: 'aitbc1' }, record: record('w1') })
      const back = entryFromWire(toWire(entry, 'aitbc2'))
      expect(await registry.applyRemote(back)).toBe('applied')
      expect(registry.entry('w1')?.clock).toEqual(entry.clock)
    })
  })

  it('a registry started on the same SQLite file after stop() has the agents, their tombstones and their clocks', async () => {
    await registry.register({ agent_id: 'a1', agent_type: 'worker', capabilities: ['gpu'], tags: ['eu'] })
    await registry.heartbeat({ agent_id: 'a1', status: 'busy', load_metrics: { cpu: 0.7 } })
    await registry.register({ agent_id: 'a2', agent_type: 'specialist' })
    await registry.register({ agent_id: 'gone', agent_type: 'worker' })
    const goneClock = registry.entry('gone')!.clock
    await registry.remove({ agent_id: 'gone' })
    const r1 = signed('aitbc1', { agentId: 'r1', clock: { ms: Date.now(), counter: 0, node: 'aitbc1' }, record: record('r1') })
    await registry.applyRemote(r1)
    const before = registry.list({})
    const clockA1 = registry.entry('a1')!.clock
    const tombstone = registry.entry('gone')!.clock

    await registry.stop()
    await store.close()
    await openRegistry()

    expect(registry.list({})).toEqual(before)
    expect(ids(registry.list({}))).toEqual(['a2', 'r1', 'a1'])
    expect(registry.get('a1')).toMatchObject({ status: 'busy', capabilities: ['gpu'], tags: ['eu'], load_metrics: { cpu: 0.7 }, health_score: 0.8, owner_node: NODE })
    expect(registry.entry('a1')?.clock).toEqual(clockA1)
    expect(registry.entry('r1')?.signature).toEqual(r1.signature)
    expect(registry.get('gone')).toBeUndefined()
    expect(registry.entry('gone')?.clock).toEqual(tombstone)
    // The tombstone survived: the removed agent's old record does not bring it back.
    expect(await registry.applyRemote(authorityOf(NODE).sign({ agentId: 'gone', clock: goneClock, owner: NODE, recordJson: JSON.stringify(record('gone', { owner_node: NODE })), record: record('gone', { owner_node: NODE }) }))).toBe('stale')
    expect(registry.get('gone')).toBeUndefined()

    const rec = await registry.heartbeat({ agent_id: 'a1', status: 'active' })
    expect(rec.health_score).toBe(0.9)
    expect(compareClocks(registry.entry('a1')!.clock, clockA1)).toBeGreaterThan(0)
  })

  it('loads nothing from the store that does not verify: a tampered record or a change by a node no longer in the allowlist', async () => {
    await registry.register({ agent_id: 'mine', agent_type: 'worker' })
    await registry.applyRemote(signed('aitbc1', { agentId: 'r1', clock: { ms: Date.now(), counter: 0, node: 'aitbc1' }, record: record('r1') }))
    await registry.stop()
    // Someone with access to the store points the agent elsewhere.
    const stored = JSON.parse((await store.get('mesh:agent-change:r1'))!) as { record_json: string }
    stored.record_json = JSON.stringify(record('r1', { endpoints: { api: 'http://elsewhere' } }))
    await store.write([{ op: 'set', key: 'mesh:agent-change:r1', value: JSON.stringify(stored) }])
    await store.close()
    await openRegistry()
    expect(ids(registry.list({}))).toEqual(['mine'])
    expect(await store.get('mesh:agent-change:r1')).toBeNull()
    expect(await store.get('agent:r1')).toBeNull()
  })

  it('migrates records and tombstones of the earlier unsigned format: own ones signed with their clocks, others left for their owners', async () => {
    await registry.stop()
    const now = Date.now()
    const ownClock = { ms: now - 5000, counter: 2, node: NODE }
    const writeOps: WriteOp[] = [
      { op: 'set', key: 'agent:own', value: JSON.stringify({ ...record('own', { owner_node: NODE }, now - 5000), mesh_clock: ownClock }) },
      { op: 'set', key: 'agent:theirs', value: JSON.stringify({ ...record('theirs', {}, now - 4000), mesh_clock: { ms: now - 4000, counter: 0, node: 'aitbc1' } }) },
      { op: 'set', key: 'agent:old-theirs', value: JSON.stringify({ ...record('old-theirs', {}, now - 5 * 3600_000), mesh_clock: { ms: now - 5 * 3600_000, counter: 0, node: 'aitbc1' } }) },
      // The coordinator's own record (no mesh clock) is not the mesh's and is left alone.
      { op: 'set', key: 'agent:coord', value: JSON.stringify({ agent_id: 'coord', agent_type: 'worker' }) },
      { op: 'set', key: 'mesh:agent-removed:own-gone', value: JSON.stringify({ agent_id: 'own-gone', removed_at: new Date(now - 3000).toISOString(), mesh_clock: { ms: now - 3000, counter: 0, node: NODE } }) },
      { op: 'set', key: 'mesh:agent-removed:their-gone', value: JSON.stringify({ agent_id: 'their-gone', removed_at: new Date(now - 3000).toISOString(), mesh_clock: { ms: now - 3000, counter: 0, node: 'aitbc1' } }) }
    ]
    await store.write(writeOps)
    await store.close()
    await openRegistry()

    expect(ids(registry.list({}))).toEqual(['own'])
    expect(registry.entry('own')).toMatchObject({ clock: ownClock, owner: NODE })
    expect(JSON.parse((await store.get('mesh:agent-change:own'))!)).toMatchObject({ clock: ownClock, removed: false })
    expect(JSON.parse((await store.get('agent:own'))!)).not.toHaveProperty('mesh_clock')
    expect(registry.entry('own-gone')).toMatchObject({ owner: NODE, clock: { node: NODE } })
    expect(await store.get('mesh:agent-change:own-gone')).not.toBeNull()
    expect(await store.scan('mesh:agent-removed:')).toEqual(new Map())
    // Another node's record stays where the coordinator reads it until its owner sends it signed.
    expect(await store.get('agent:theirs')).not.toBeNull()
    expect(await store.get('agent:old-theirs')).toBeNull()
    expect(await store.get('agent:coord')).not.toBeNull()
    const theirs = signed('aitbc1', { agentId: 'theirs', clock: { ms: now - 4000, counter: 0, node: 'aitbc1' }, record: record('theirs', {}, now - 4000) })
    expect(await registry.applyRemote(theirs)).toBe('applied')
    expect(JSON.parse((await store.get('agent:theirs'))!)).not.toHaveProperty('mesh_clock')
    // Migrated own changes verify anywhere: a peer takes them.
    const peer = new AgentRegistry({ node: 'aitbc1', store: new SqliteBackend(join(tempDir('aitbc-mesh-registry-'), 'peer.db'), ''), log, authority: authorityOf('aitbc1'), clockSkewMs: SKEW_MS, recordFields: 15, agentDefaults: DEFAULTS })
    expect(await peer.applyRemote(registry.entry('own')!)).toBe('applied')
  })

  it('one change the store cannot hold never blocks the others, and the node stays healthy', async () => {
    await registry.stop()
    await store.close()
    // A store that refuses any batch touching one key, as a type clash would.
    const backend = new SqliteBackend(file, '')
    const write = backend.write.bind(backend)
    backend.write = async (ops: WriteOp[]) => {
      if (ops.some(op => 'key' in op && op.key.endsWith(':poison'))) throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value')
      await write(ops)
    }
    await openRegistry(NODE, backend)
    const results = await Promise.allSettled([
      registry.register({ agent_id: 'ok-1', agent_type: 'worker' }),
      registry.register({ agent_id: 'poison', agent_type: 'worker' }),
      registry.register({ agent_id: 'ok-2', agent_type: 'worker' })
    ])
    expect(results.map(r => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/agent poison: the store refused the change \(WRONGTYPE/)
    expect(await store.get('agent:ok-1')).not.toBeNull()
    expect(await store.get('agent:ok-2')).not.toBeNull()
    expect(registry.health()).toMatchObject({ ok: true, pendingWrites: 0, droppedWrites: 1 })
    // Later changes are written as usual, not held behind the dropped one.
    await registry.register({ agent_id: 'ok-3', agent_type: 'worker' })
    expect(await store.get('agent:ok-3')).not.toBeNull()
    expect(registry.health()).toMatchObject({ ok: true, pendingWrites: 0 })
  })

  it('derives inactive after 120 s without heartbeat and forgets the agent an hour later (clock moved, no sleeping)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const t0 = Date.parse('2025-03-01T10:00:00.000Z')
    vi.setSystemTime(t0)
    await registry.register({ agent_id: 'a1', agent_type: 'worker' })

    vi.setSystemTime(t0 + 130_000)
    expect(registry.get('a1')).toMatchObject({ status: 'inactive', health_score: 0.5 })
    expect(ids(registry.list({ status: 'active' }))).toEqual([])
    expect(ids(registry.list({ status: 'inactive' }))).toEqual(['a1'])
    // A heartbeat without a status revives it.
    expect(await registry.heartbeat({ agent_id: 'a1' })).toMatchObject({ status: 'active', health_score: 1 })

    vi.setSystemTime(t0 + 130_000 + 3730_000)
    expect(registry.get('a1')).toBeUndefined()
    expect(registry.list({})).toEqual([])
    await expect(registry.heartbeat({ agent_id: 'a1' })).rejects.toThrow(UsageError)
    // Registering again starts a new registration.
    expect((await registry.register({ agent_id: 'a1', agent_type: 'worker' })).registration_time).toBe(new Date(t0 + 130_000 + 3730_000).toISOString())
  })
})

describe('agent rules as pure functions of the record and the time', () => {
  const T0 = Date.parse('2025-03-01T10:00:00.000Z')
  const at = (seconds: number): number => T0 + seconds * 1000
  const agent = (over: Partial<AgentRecord> = {}): AgentRecord => record('a1', over, T0)

  it('effectiveStatus: the stated status until 120 s without heartbeat, inactive after', () => {
    expect(effectiveStatus(agent({ status: 'busy' }), at(0))).toBe('busy')
    expect(effectiveStatus(agent({ status: 'busy' }), at(110))).toBe('busy')
    expect(effectiveStatus(agent({ status: 'busy' }), at(130))).toBe('inactive')
    expect(effectiveStatus(agent({ status: 'error' }), at(130))).toBe('inactive')
    expect(effectiveStatus(agent(), at(3000))).toBe('inactive')
  })

  it('isExpired: only after 120 s + 3600 s without heartbeat', () => {
    expect(isExpired(agent(), at(130))).toBe(false)
    expect(isExpired(agent(), at(3700))).toBe(false)
    expect(isExpired(agent(), at(3730))).toBe(true)
    expect(isExpired(agent(), at(86_400))).toBe(true)
  })

  it.each([
    ['fresh, active, no load', 1, {}, 0],
    ['heartbeat 50 s old', 1, {}, 50],
    ['heartbeat 70 s old', 0.8, {}, 70],
    ['heartbeat 130 s old (now inactive)', 0.5, {}, 130],
    ['busy, heartbeat 70 s old', 0.7, { status: 'busy' }, 70],
    ['busy, heartbeat 130 s old (inactive: no busy penalty)', 0.5, { status: 'busy' }, 130],
    ['error, load 0.9, heartbeat 130 s old (inactive: no error penalty)', 0.2, { status: 'error', load_metrics: { cpu: 0.9 } }, 130],
    ['error, load 0.9, heartbeat 70 s old: never below 0', 0, { status: 'error', load_metrics: { cpu: 0.9 } }, 70],
    ['maintenance, load 0.65', 0.7, { status: 'maintenance', load_metrics: { cpu: 0.65 } }, 0]
  ] as Array<[string, number, Partial<AgentRecord>, number]>)('healthScore: %s -> %s', (_what, expected, over, ageSeconds) => {
    expect(healthScore(agent(over), at(ageSeconds))).toBe(expected)
  })

  it('discover filters on derived status and score at the given time', () => {
    const records = [
      record('fresh', {}, at(100)),
      record('slow', { status: 'busy' }, at(30)),
      record('silent', {}, T0)
    ]
    const query = (q: unknown): string[] => ids(discover(records, listInput.parse(q), at(130)))
    expect(query({})).toEqual(['fresh', 'slow', 'silent'])
    expect(discover(records, listInput.parse({}), at(130)).map(r => [r.status, r.health_score])).toEqual([['active', 1], ['busy', 0.7], ['inactive', 0.5]])
    expect(query({ status: 'inactive' })).toEqual(['silent'])
    expect(query({ status: 'active' })).toEqual(['fresh'])
    expect(query({ min_health_score: 0.6 })).toEqual(['fresh', 'slow'])
    expect(query({ limit: 1 })).toEqual(['fresh'])
  })
})

describe('hybrid logical clocks', () => {
  it('compareClocks orders by ms, then counter, then node name', () => {
    expect(compareClocks({ ms: 1, counter: 9, node: 'z' }, { ms: 2, counter: 0, node: 'a' })).toBeLessThan(0)
    expect(compareClocks({ ms: 2, counter: 0, node: 'a' }, { ms: 1, counter: 9, node: 'z' })).toBeGreaterThan(0)
    expect(compareClocks({ ms: 5, counter: 1, node: 'z' }, { ms: 5, counter: 2, node: 'a' })).toBeLessThan(0)
    expect(compareClocks({ ms: 5, counter: 2, node: 'aitbc' }, { ms: 5, counter: 2, node: 'aitbc1' })).toBeLessThan(0)
    expect(compareClocks({ ms: 5, counter: 2, node: 'aitbc1' }, { ms: 5, counter: 2, node: 'aitbc' })).toBeGreaterThan(0)
    expect(compareClocks({ ms: 5, counter: 2, node: 'aitbc' }, { ms: 5, counter: 2, node: 'aitbc' })).toBe(0)
  })

  it('nextClock follows the wall clock when it moves on', () => {
    expect(nextClock('aitbc', undefined, 1000)).toEqual({ ms: 1000, counter: 0, node: 'aitbc' })
    expect(nextClock('aitbc', { ms: 1000, counter: 3, node: 'aitbc1' }, 2000)).toEqual({ ms: 2000, counter: 0, node: 'aitbc' })
  })

  it('nextClock stays monotonic when the wall clock stands still or goes back', () => {
    let clock = nextClock('aitbc', undefined, 10_000)
    const stamps = [clock]
    for (const now of [10_000, 9_000, 5_000, 10_000, 10_001, 3_000]) {
      clock = nextClock('aitbc', clock, now)
      stamps.push(clock)
    }
    for (let i = 1; i < stamps.length; i++) expect(compareClocks(stamps[i - 1]!, stamps[i]!)).toBeLessThan(0)
    expect(stamps.map(s => [s.ms, s.counter])).toEqual([[10_000, 0], [10_000, 1], [10_000, 2], [10_000, 3], [10_000, 4], [10_001, 0], [10_001, 1]])
    // Ahead of a peer's clock that is later than our wall clock.
    expect(compareClocks(nextClock('aitbc', { ms: 50_000, counter: 7, node: 'aitbc1' }, 10_000), { ms: 50_000, counter: 7, node: 'aitbc1' })).toBeGreaterThan(0)
  })
})
