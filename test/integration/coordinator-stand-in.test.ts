import type { Redis } from 'ioredis'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { isoformat, parseIsoTime, StandInCoordinator, type StandInCoordinatorOptions } from '../coordinator-stand-in.js'
import { onCleanup, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

// The stand-in is only worth testing against if it is as strict as the real coordinator: these
// tests hold it to the facts the export and the Redis side are written against.

let redis: TestRedis
let db: Redis
const running: StandInCoordinator[] = []

beforeAll(async () => {
  redis = await new TestRedis().start()
  db = redis.client()
  onCleanup(() => { db.disconnect() })
})

beforeEach(async () => { await db.flushall() })

afterEach(async () => {
  for (const coordinator of running.splice(0)) await coordinator.stop()
})

async function startCoordinator (options: Partial<StandInCoordinatorOptions> = {}): Promise<StandInCoordinator> {
  const coordinator = new StandInCoordinator({ redisUrl: redis.url, ...options })
  running.push(coordinator)
  await coordinator.start()
  return coordinator
}

function record15 (id: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = isoformat(Date.now(), true)
  return {
    agent_id: id, agent_type: 'worker', status: 'active', capabilities: ['gpu'], services: ['infer'], endpoints: { http: 'http://10.0.0.5:9000' },
    metadata: { owner: 'lab', nested: { shards: [1, 2], on: true } }, last_heartbeat: now, registration_time: now, load_metrics: { cpu: 0.2 },
    health_score: 1, version: '1.0.0', tags: ['eu'], chain_id: 'ait-hub', island_id: 'default', ...over
  }
}

function record13 (id: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const { chain_id: _c, island_id: _i, ...rest } = record15(id)
  const now = isoformat(Date.now(), false)
  return { ...rest, last_heartbeat: now, registration_time: now, ...over }
}

async function call (coordinator: StandInCoordinator, method: string, path: string, body?: unknown): Promise<{ status: number, body: any, headers: Headers }> {
  const response = await fetch(`${coordinator.url}${path}`, {
    method,
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {})
  })
  return { status: response.status, body: await response.json(), headers: response.headers }
}

async function subscribe (): Promise<Array<{ event_type: string, agent_info: Record<string, unknown> }>> {
  const events: Array<{ event_type: string, agent_info: Record<string, unknown> }> = []
  const subscriber = redis.client()
  onCleanup(() => { subscriber.disconnect() })
  subscriber.on('message', (_channel: string, message: string) => { events.push(JSON.parse(message)) })
  await subscriber.subscribe('agent_events')
  return events
}

describe('stand-in coordinator: load at start', () => {
  it('loads every valid record (newest release: 15 fields, aware times), reads no other key, and serves them by id and in discovery', async () => {
    await db.set('agent:w1', JSON.stringify(record15('w1')))
    await db.set('agent:w2', JSON.stringify(record15('w2', { status: 'busy', health_score: 0.9, capabilities: ['cpu'] })))
    await db.set('agent:w3', JSON.stringify(record15('w3', { last_heartbeat: '2026-12-01T01:02:03+00:00', registration_time: '2026-12-01T01:00:00.5+00:00' })))
    await db.set('mesh:agent-change:x', 'not json at all')
    await db.sadd('agents:active', 'w1')
    const coordinator = await startCoordinator()
    expect(coordinator.load.error).toBeUndefined()
    expect([...coordinator.load.loaded].sort()).toEqual(['w1', 'w2', 'w3'])
    const got = await call(coordinator, 'GET', '/v1/agents/w1')
    expect(got.status).toBe(200)
    expect(got.body.agent).toEqual(record15('w1', { last_heartbeat: got.body.agent.last_heartbeat, registration_time: got.body.agent.registration_time }))
    expect(got.body.agent.metadata).toEqual({ owner: 'lab', nested: { shards: [1, 2], on: true } })
    expect((await call(coordinator, 'GET', '/v1/agents/w3')).body.agent.last_heartbeat).toBe('2026-12-01T01:02:03+00:00')
    const found = await call(coordinator, 'POST', '/v1/agents/discover', { capabilities: ['gpu'] })
    expect(found.body.agents.map((a: { agent_id: string }) => a.agent_id).sort()).toEqual(['w1', 'w3'])
    const byHealth = await call(coordinator, 'POST', '/v1/agents/discover', {})
    expect(byHealth.body.agents.at(-1).agent_id).toBe('w2')
  })

  const bad: Array<[string, (r: Record<string, unknown>) => Record<string, unknown>, RegExp]> = [
    ['an extra field', r => ({ ...r, owner_node: 'aitbc1' }), /unexpected keyword argument 'owner_node'/],
    ['a missing field (the older release\'s 13)', r => { const { chain_id: _c, island_id: _i, ...rest } = r; return rest }, /missing required field\(s\): chain_id, island_id/],
    ['an agent_type outside its six', r => ({ ...r, agent_type: 'trainer' }), /'trainer' is not a valid AgentType/],
    ['a status outside its five', r => ({ ...r, status: 'online' }), /'online' is not a valid AgentStatus/],
    ['an unparsable time', r => ({ ...r, last_heartbeat: 'yesterday' }), /Invalid isoformat string: 'yesterday'/],
    ['an impossible date', r => ({ ...r, registration_time: '2026-02-30T00:00:00+00:00' }), /out of range/],
    ['a naive time in the newest release', r => ({ ...r, last_heartbeat: '2026-12-01T01:02:03.123456' }), /naive/],
    ['a time that is not a string', r => ({ ...r, last_heartbeat: 1796086923 }), /argument must be str/]
  ]
  it.each(bad)('stops the whole load at the first record with %s: agents after it are not loaded', async (_what, spoil, message) => {
    // KEYS walks Redis's hash table, so where the spoilt record falls is the table's business:
    // among 40 it is almost never last, and what was loaded is checked against the order read.
    for (let i = 0; i < 40; i++) await db.set(`agent:a${i}`, JSON.stringify(i === 20 ? spoil(record15(`a${i}`)) : record15(`a${i}`)))
    const coordinator = await startCoordinator()
    const order = coordinator.load.keys
    expect([...order].sort()).toEqual(Array.from({ length: 40 }, (_, i) => `agent:a${i}`).sort())
    const at = order.indexOf('agent:a20')
    expect(coordinator.load.error?.key).toBe('agent:a20')
    expect(coordinator.load.error?.message).toMatch(message)
    expect(coordinator.load.loaded).toEqual(order.slice(0, at).map(k => k.slice('agent:'.length)))
    for (const key of order.slice(at)) expect((await call(coordinator, 'GET', `/v1/agents/${key.slice('agent:'.length)}`)).status).toBe(404)
    for (const key of order.slice(0, at)) expect((await call(coordinator, 'GET', `/v1/agents/${key.slice('agent:'.length)}`)).status).toBe(200)
  })

  it('the older release (13 fields) loads naive times and refuses the newest release\'s records', async () => {
    await db.set('agent:old', JSON.stringify(record13('old')))
    const coordinator = await startCoordinator({ recordFields: 13 })
    expect(coordinator.load.error).toBeUndefined()
    expect(coordinator.load.loaded).toEqual(['old'])
    await coordinator.stop()

    await db.set('agent:old', JSON.stringify(record15('old')))
    const newer = await startCoordinator({ recordFields: 13 })
    expect(newer.load.error?.message).toMatch(/unexpected keyword argument 'chain_id'/)
    await newer.stop()

    await db.set('agent:old', JSON.stringify(record13('old', { last_heartbeat: isoformat(Date.now(), true) })))
    const aware = await startCoordinator({ recordFields: 13 })
    expect(aware.load.error?.message).toMatch(/last_heartbeat .* is aware/)
  })

  it('reads times as datetime.fromisoformat does', () => {
    expect(parseIsoTime('2026-12-01T01:02:03.123456+00:00')).toEqual({ ms: Date.UTC(2026, 11, 1, 1, 2, 3, 123), aware: true })
    expect(parseIsoTime('2026-12-01T03:02:03+02:00')).toEqual({ ms: Date.UTC(2026, 11, 1, 1, 2, 3), aware: true })
    expect(parseIsoTime('2026-12-01T01:02:03.5Z')).toEqual({ ms: Date.UTC(2026, 11, 1, 1, 2, 3, 500), aware: true })
    expect(parseIsoTime('2026-12-01 01:02')).toEqual({ ms: Date.UTC(2026, 11, 1, 1, 2), aware: false })
    for (const bad of ['2026-12-01T24:00:00', '2026-13-01', '01/12/2026', '2026-12-01T01:02:03+25:00', '']) expect(() => parseIsoTime(bad)).toThrow(/Invalid isoformat/)
    expect(isoformat(Date.UTC(2026, 11, 1, 1, 2, 3, 123), true)).toBe('2026-12-01T01:02:03.123000+00:00')
    expect(isoformat(Date.UTC(2026, 11, 1, 1, 2, 3), false)).toBe('2026-12-01T01:02:03')
  })
})

describe('stand-in coordinator: API', () => {
  it('writes exactly its fields with SETEX 24 h and publishes the record; another start loads what it wrote', async () => {
    const events = await subscribe()
    const coordinator = await startCoordinator()
    const registered = await call(coordinator, 'POST', '/v1/agents/register', {
      agent_id: 'r1', agent_type: 'specialist', capabilities: ['gpu'], metadata: { a: { b: [1] } }, chain_id: 'ait-devnet', island_id: 'isl-2', version: 'ignored'
    })
    expect(registered.status).toBe(200)
    expect(registered.body).toMatchObject({ status: 'success', agent_id: 'r1' })
    const stored = JSON.parse((await db.get('agent:r1'))!) as Record<string, unknown>
    expect(Object.keys(stored).sort()).toEqual(['agent_id', 'agent_type', 'capabilities', 'chain_id', 'endpoints', 'health_score', 'island_id', 'last_heartbeat',
      'load_metrics', 'metadata', 'registration_time', 'services', 'status', 'tags', 'version'])
    expect(stored).toMatchObject({ status: 'active', chain_id: 'ait-devnet', island_id: 'isl-2', version: '1.0.0', metadata: { a: { b: [1] } } })
    expect(stored.last_heartbeat).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/)
    const ttl = await db.ttl('agent:r1')
    expect(ttl).toBeGreaterThan(86_300)
    expect(ttl).toBeLessThanOrEqual(86_400)
    await waitFor('agent_registered event', () => events.find(e => e.event_type === 'agent_registered'))
    expect(events[0]!.agent_info).toEqual(stored)

    const status = await call(coordinator, 'PUT', '/v1/agents/r1/status', { status: 'busy', load_metrics: { cpu: 0.9 } })
    expect(status.status).toBe(200)
    const updated = (await call(coordinator, 'GET', '/v1/agents/r1')).body.agent
    expect(updated).toMatchObject({ status: 'busy', load_metrics: { cpu: 0.9 }, health_score: 0.6 })
    await waitFor('agent_status_updated event', () => events.find(e => e.event_type === 'agent_status_updated'))

    await coordinator.stop()
    const again = await startCoordinator()
    expect(again.load.error).toBeUndefined()
    expect(again.view('r1')).toMatchObject({ status: 'busy', chain_id: 'ait-devnet' })
  })

  it('the older release writes 13 fields with naive times', async () => {
    const coordinator = await startCoordinator({ recordFields: 13 })
    expect((await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'o1', agent_type: 'worker', chain_id: 'ait-hub' })).status).toBe(200)
    const stored = JSON.parse((await db.get('agent:o1'))!) as Record<string, unknown>
    expect(Object.keys(stored)).toHaveLength(13)
    expect(stored.last_heartbeat).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$/)
  })

  it('limits each route per client: 429 with Retry-After, other routes unaffected; a request before the Retry-After is noted', async () => {
    const coordinator = await startCoordinator({ limits: { register: 3 }, retryAfterGraceMs: 0 })
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) statuses.push((await call(coordinator, 'POST', '/v1/agents/register', { agent_id: `l${i}`, agent_type: 'worker' })).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    const limited = coordinator.requestsFor('register').at(-1)!
    expect(limited.status).toBe(429)
    expect((await call(coordinator, 'POST', '/v1/agents/l0/heartbeat')).status).toBe(200)
    const again = await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'l9', agent_type: 'worker' })
    expect(again.status).toBe(429)
    const wait = Number(again.headers.get('retry-after'))
    expect(wait).toBeGreaterThanOrEqual(1)
    expect(wait).toBeLessThanOrEqual(60)
    expect(coordinator.retryAfterViolations).toHaveLength(1)
    expect(coordinator.view('l3')).toBeUndefined()
  })

  it('marks an agent inactive once its last heartbeat is older than the window (saved and published); a heartbeat revives it', async () => {
    const events = await subscribe()
    const coordinator = await startCoordinator({ inactiveAfterMs: 600, monitorIntervalMs: 50 })
    const registeredAt = Date.now()
    await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'm1', agent_type: 'monitor' })
    await waitFor('m1 inactive', () => coordinator.view('m1')?.status === 'inactive', 5000)
    expect(Date.now() - registeredAt).toBeGreaterThanOrEqual(600)
    const marked = await waitFor('inactive event', () => events.find(e => e.event_type === 'agent_status_updated' && e.agent_info.status === 'inactive'))
    expect(marked.agent_info.agent_id).toBe('m1')
    expect(JSON.parse((await db.get('agent:m1'))!)).toMatchObject({ status: 'inactive' })
    expect(await db.ttl('agent:m1')).toBeGreaterThan(86_300)
    expect((await call(coordinator, 'POST', '/v1/agents/m1/heartbeat')).status).toBe(200)
    expect(coordinator.view('m1')?.status).toBe('active')
  })

  it('answers bad and unknown requests as the real one does', async () => {
    const events = await subscribe()
    const coordinator = await startCoordinator()
    expect((await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'x', agent_type: 'trainer' })).status).toBe(422)
    expect((await call(coordinator, 'POST', '/v1/agents/register', { agent_type: 'worker' })).status).toBe(422)
    expect((await call(coordinator, 'POST', '/v1/agents/register', '{not json')).status).toBe(422)
    expect((await call(coordinator, 'POST', '/v1/agents/nobody/heartbeat')).status).toBe(404)
    expect((await call(coordinator, 'PUT', '/v1/agents/nobody/status', { status: 'busy' })).status).toBe(500)
    expect((await call(coordinator, 'GET', '/v1/agents/nobody')).status).toBe(404)
    await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'd1', agent_type: 'gateway' })
    expect((await call(coordinator, 'PUT', '/v1/agents/d1/status', { status: 'sleeping' })).status).toBe(500)
    expect((await call(coordinator, 'PUT', '/v1/agents/d1/status', {})).status).toBe(422)
    expect((await call(coordinator, 'POST', '/v1/agents/discover', { agent_type: 'trainer' })).body.count).toBe(0)
    expect((await call(coordinator, 'DELETE', '/v1/agents/d1')).status).toBe(200)
    expect(await db.exists('agent:d1')).toBe(0)
    await waitFor('agent_unregistered event', () => events.find(e => e.event_type === 'agent_unregistered' && e.agent_info.agent_id === 'd1'))
    expect((await call(coordinator, 'DELETE', '/v1/agents/d1')).status).toBe(404)
    await coordinator.stop()

    const real = await startCoordinator({ unregisterRoute: false })
    await call(real, 'POST', '/v1/agents/register', { agent_id: 'd2', agent_type: 'gateway' })
    expect((await call(real, 'DELETE', '/v1/agents/d2')).status).toBe(405)
    expect(real.view('d2')).toBeDefined()
  })

  it('submits a task to an active agent of the requested chain (default ait-hub) with the required capabilities', async () => {
    const coordinator = await startCoordinator()
    await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'hub-gpu', agent_type: 'worker', capabilities: ['gpu'], chain_id: 'ait-hub' })
    await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'dev-gpu', agent_type: 'worker', capabilities: ['gpu'], chain_id: 'ait-devnet' })
    await call(coordinator, 'POST', '/v1/agents/register', { agent_id: 'dev-busy', agent_type: 'worker', capabilities: ['gpu'], chain_id: 'ait-devnet' })
    await call(coordinator, 'PUT', '/v1/agents/dev-busy/status', { status: 'busy' })
    const submit = async (body: Record<string, unknown>): Promise<string | null> => (await call(coordinator, 'POST', '/v1/tasks/submit', { task_data: {}, ...body })).body.assigned_agent
    expect(await submit({ chain_id: 'ait-devnet', requirements: { capabilities: ['gpu'] } })).toBe('dev-gpu')
    expect(await submit({ requirements: { capabilities: ['gpu'] } })).toBe('hub-gpu')
    expect(await submit({ requirements: { capabilities: ['tpu'] } })).toBeNull()
    expect((await call(coordinator, 'POST', '/v1/tasks/submit', { task_data: {}, priority: 'whenever' })).status).toBe(400)
  })
})
