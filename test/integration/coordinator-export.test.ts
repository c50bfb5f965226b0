import { Writable } from 'node:stream'
import type { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { CoordinatorExport, type CoordinatorExportOptions, type ExportedView, type ExportSource, type OwnedAgent } from '../../src/coordinator/export.js'
import { StandInCoordinator, type RequestRecord, type StandInCoordinatorOptions } from '../coordinator-stand-in.js'
import { onCleanup, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

// The export runs in this process against a stand-in coordinator with its own Redis, fed by an
// in-memory registry whose remote agents change as each test drives them.

const NODE = 'aitbc'

/** The registry as the export sees it: agents with owners, changes announced, status derived from time. */
class FakeRegistry implements ExportSource {
  readonly node = NODE
  private readonly agents = new Map<string, OwnedAgent>()
  private readonly listeners = new Set<(change: { agentId: string, owner: string }) => void>()

  watch (listener: (change: { agentId: string, owner: string }) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  get (agentId: string): OwnedAgent | undefined {
    const agent = this.agents.get(agentId)
    return agent != null ? FakeRegistry.view(agent) : undefined
  }

  current (): OwnedAgent[] {
    return [...this.agents.values()].map(FakeRegistry.view)
  }

  put (owner: string, id: string, over: Partial<ExportedView> = {}): void {
    const previous = this.agents.get(id)?.record
    const record: ExportedView = {
      agent_id: id, agent_type: 'worker', status: 'active', capabilities: [], services: [], endpoints: {}, metadata: {}, load_metrics: {},
      last_heartbeat: new Date().toISOString(), ...previous, ...over
    }
    this.agents.set(id, { owner, record })
    for (const listener of this.listeners) listener({ agentId: id, owner })
  }

  remove (id: string): void {
    const agent = this.agents.get(id)
    if (agent == null) return
    this.agents.delete(id)
    for (const listener of this.listeners) listener({ agentId: id, owner: agent.owner })
  }

  private static view (agent: OwnedAgent): OwnedAgent {
    const stale = Date.now() - Date.parse(agent.record.last_heartbeat) > 120_000
    return { owner: agent.owner, record: { ...agent.record, status: stale ? 'inactive' : agent.record.status } }
  }
}

let redis: TestRedis
let db: Redis
const stops: Array<() => Promise<void>> = []

beforeAll(async () => {
  redis = await new TestRedis().start()
  db = redis.client()
  onCleanup(() => { db.disconnect() })
})

beforeEach(async () => { await db.flushall() })

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
})

const GENEROUS = { register: 600, status: 600, heartbeat: 600, get: 600, lookup: 600, unregister: 600, discover: 100_000, submit: 600 }

async function startCoordinator (options: Partial<StandInCoordinatorOptions> = {}): Promise<StandInCoordinator> {
  const coordinator = new StandInCoordinator({ redisUrl: redis.url, inactiveAfterMs: 2000, monitorIntervalMs: 100, limits: GENEROUS, ...options })
  await coordinator.start()
  stops.push(async () => { await coordinator.stop() })
  return coordinator
}

function capture (): { lines: Array<Record<string, unknown>>, log: pino.Logger } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  return { lines, log: pino({ level: 'info' }, sink) }
}

function startExport (coordinator: StandInCoordinator, registry: FakeRegistry, options: Partial<CoordinatorExportOptions> = {}, recordFields: 15 | 13 = 15): { exporter: CoordinatorExport, lines: Array<Record<string, unknown>> } {
  const { lines, log } = capture()
  const exporter = new CoordinatorExport({
    url: coordinator.url, source: registry, log, recordFields, chainId: 'ait-hub', islandId: 'default',
    options: { keepaliveIntervalMs: 600, reconcileIntervalMs: 50, limits: { register: 600, status: 600, heartbeat: 600, lookup: 600, unregister: 600 }, ...options }
  })
  exporter.start()
  stops.push(async () => { await exporter.stop() })
  return { exporter, lines }
}

async function discover (coordinator: StandInCoordinator, query: Record<string, unknown> = {}): Promise<Array<Record<string, any>>> {
  const response = await fetch(`${coordinator.url}/v1/agents/discover`, { method: 'POST', body: JSON.stringify(query), headers: { 'content-type': 'application/json' } })
  return ((await response.json()) as { agents: Array<Record<string, any>> }).agents
}

async function submit (coordinator: StandInCoordinator, body: Record<string, unknown>): Promise<string | null> {
  const response = await fetch(`${coordinator.url}/v1/tasks/submit`, { method: 'POST', body: JSON.stringify({ task_data: {}, ...body }), headers: { 'content-type': 'application/json' } })
  return ((await response.json()) as { assigned_agent: string | null }).assigned_agent
}

async function subscribe (): Promise<Array<{ event_type: string, agent_info: Record<string, any> }>> {
  const events: Array<{ event_type: string, agent_info: Record<string, any> }> = []
  const subscriber = redis.client()
  stops.push(async () => { subscriber.disconnect() })
  subscriber.on('message', (_channel: string, message: string) => { events.push(JSON.parse(message)) })
  await subscriber.subscribe('agent_events')
  return events
}

/** Requests that touched the agent's heartbeat time in the coordinator (it sets it on all three). */
function touches (coordinator: StandInCoordinator, agentId: string): RequestRecord[] {
  return coordinator.requests.filter(r => r.agentId === agentId && r.status === 200 && (r.route === 'heartbeat' || r.route === 'status' || r.route === 'register'))
}

function largestGap (records: RequestRecord[]): number {
  let gap = 0
  for (let i = 1; i < records.length; i++) gap = Math.max(gap, records[i]!.at - records[i - 1]!.at)
  return gap
}

describe('export into the agent coordinator', () => {
  it('remote agents appear within seconds, their changes follow, local agents are left alone, and a removal disappears', async () => {
    const coordinator = await startCoordinator()
    const registry = new FakeRegistry()
    registry.put(NODE, 'hub-agent', { capabilities: ['gpu'] })
    registry.put('aitbc1', 'r-gpu', { capabilities: ['gpu'], services: ['infer'], endpoints: { http: 'http://10.1.223.40:9000' }, metadata: { region: 'eu', slots: 4 } })
    registry.put('aitbc2', 'r-dev', { agent_type: 'specialist', capabilities: ['gpu'], chain_id: 'ait-devnet', island_id: 'isl-2' })
    const started = Date.now()
    startExport(coordinator, registry)

    const agents = await waitFor('both remote agents in discovery', async () => {
      const found = await discover(coordinator)
      return found.length === 2 ? found : undefined
    }, 5000, 100)
    expect(Date.now() - started).toBeLessThan(5000)
    const byId = new Map(agents.map(a => [a.agent_id, a]))
    expect(byId.get('r-gpu')).toMatchObject({
      agent_type: 'worker', status: 'active', capabilities: ['gpu'], services: ['infer'], endpoints: { http: 'http://10.1.223.40:9000' },
      metadata: { region: 'eu', slots: 4 }, chain_id: 'ait-hub', island_id: 'default'
    })
    expect(byId.get('r-dev')).toMatchObject({ agent_type: 'specialist', chain_id: 'ait-devnet', island_id: 'isl-2' })
    expect(coordinator.requests.filter(r => r.agentId === 'hub-agent')).toEqual([])

    expect(await submit(coordinator, { chain_id: 'ait-devnet', requirements: { capabilities: ['gpu'] } })).toBe('r-dev')
    expect(await submit(coordinator, { requirements: { capabilities: ['gpu'] } })).toBe('r-gpu')

    registry.put('aitbc1', 'r-gpu', { status: 'busy', load_metrics: { cpu: 0.9, memory: 0.8 } })
    await waitFor('r-gpu busy with its load', () => {
      const view = coordinator.view('r-gpu')
      return view?.status === 'busy' && (view.load_metrics as Record<string, number>).cpu === 0.9
    }, 5000)
    expect(coordinator.view('r-gpu')).toMatchObject({ load_metrics: { cpu: 0.9, memory: 0.8 }, health_score: 0.6 })
    expect(await submit(coordinator, { requirements: { capabilities: ['gpu'] } })).toBeNull()

    // A load metric no longer reported is cleared: the coordinator merges loads, so it is registered anew.
    registry.put('aitbc1', 'r-gpu', { status: 'active', load_metrics: { cpu: 0.1 } })
    await waitFor('r-gpu load cleared', () => {
      const view = coordinator.view('r-gpu')
      return view?.status === 'active' && JSON.stringify(view.load_metrics) === '{"cpu":0.1}'
    }, 5000)

    registry.remove('r-dev')
    await waitFor('r-dev gone', () => coordinator.view('r-dev') == null, 5000)
    expect((await discover(coordinator)).map(a => a.agent_id)).toEqual(['r-gpu'])
    expect(await db.exists('agent:r-dev')).toBe(0)
    expect(coordinator.requests.filter(r => r.agentId === 'hub-agent')).toEqual([])
  })

  it('keeps remote agents live past the coordinator\'s inactivity window without changing their status, and lets one the mesh sees inactive go', async () => {
    const events = await subscribe()
    const coordinator = await startCoordinator({ inactiveAfterMs: 2000 })
    const registry = new FakeRegistry()
    registry.put('aitbc1', 'r-active')
    registry.put('aitbc2', 'r-busy', { status: 'busy', load_metrics: { cpu: 0.7 } })
    const { exporter } = startExport(coordinator, registry, { keepaliveIntervalMs: 600 })
    await waitFor('both exported', () => coordinator.view('r-active')?.status === 'active' && coordinator.view('r-busy')?.status === 'busy', 5000)
    const since = Date.now()

    // Three inactivity windows, measured by the keepalives the coordinator answered.
    await waitFor('keepalives across three windows', () => {
      const a = touches(coordinator, 'r-active').filter(r => r.at > since)
      const b = touches(coordinator, 'r-busy').filter(r => r.at > since)
      return a.length >= 2 && b.length >= 2 && a.at(-1)!.at - since > 6000 && b.at(-1)!.at - since > 6000
    }, 15_000, 100)
    for (const id of ['r-active', 'r-busy']) {
      expect(largestGap(touches(coordinator, id))).toBeLessThan(2000)
      expect(events.filter(e => e.agent_info.agent_id === id && e.agent_info.status === 'inactive')).toEqual([])
    }
    // The coordinator's heartbeat sets an agent active: the busy one is kept live by its status.
    expect(coordinator.requestsFor('heartbeat', 'r-busy')).toEqual([])
    const busyStatuses = events.filter(e => e.agent_info.agent_id === 'r-busy' && e.event_type === 'agent_status_updated').map(e => e.agent_info.status)
    expect(new Set(busyStatuses)).toEqual(new Set(['busy']))
    expect(coordinator.view('r-busy')).toMatchObject({ status: 'busy', load_metrics: { cpu: 0.7 } })
    expect(exporter.stats().keptLive).toBe(2)

    // Its owner stopped heartbeating two minutes ago: the mesh shows it inactive, so does the coordinator.
    registry.put('aitbc1', 'r-active', { last_heartbeat: new Date(Date.now() - 130_000).toISOString() })
    await waitFor('r-active inactive', () => coordinator.view('r-active')?.status === 'inactive', 5000)
    const heartbeatsThen = coordinator.requestsFor('heartbeat', 'r-active').length
    const busyThen = touches(coordinator, 'r-busy').length
    await waitFor('two more keepalives of r-busy', () => touches(coordinator, 'r-busy').length >= busyThen + 2, 5000)
    expect(coordinator.requestsFor('heartbeat', 'r-active')).toHaveLength(heartbeatsThen)
    expect(coordinator.view('r-active')?.status).toBe('inactive')
  })

  it('honours 429 and Retry-After, coalesces changes per agent, and loses nothing once the limits allow', async () => {
    const events = await subscribe()
    // No keepalives here: the coordinator's inactivity window is longer than the test.
    const coordinator = await startCoordinator({ inactiveAfterMs: 60_000, limits: { ...GENEROUS, register: 3, status: 4 }, rateWindowMs: 1500 })
    const registry = new FakeRegistry()
    for (let i = 0; i < 8; i++) registry.put(`aitbc${1 + i % 3}`, `r${i}`, { capabilities: [`c${i}`] })
    // Before the export sends anything, some change twice: only the latest state may be sent.
    registry.put('aitbc1', 'r0', { status: 'busy' })
    registry.put('aitbc1', 'r0', { status: 'error', load_metrics: { cpu: 0.95 } })
    registry.put('aitbc2', 'r1', { status: 'maintenance' })
    const { exporter } = startExport(coordinator, registry, { keepaliveIntervalMs: 60_000 })

    const expected: Record<string, { status: string, load?: Record<string, number> }> = { r0: { status: 'error', load: { cpu: 0.95 } }, r1: { status: 'maintenance' } }
    await waitFor('all eight with their latest state', () => {
      for (let i = 0; i < 8; i++) {
        const view = coordinator.view(`r${i}`)
        const want = expected[`r${i}`] ?? { status: 'active' }
        if (view?.status !== want.status) return false
        if (want.load != null && JSON.stringify(view.load_metrics) !== JSON.stringify(want.load)) return false
      }
      return true
    }, 20_000, 100)
    expect(coordinator.requests.filter(r => r.status === 429).length).toBeGreaterThan(0)
    expect(exporter.stats().answers[429]).toBeGreaterThan(0)
    expect(coordinator.retryAfterViolations).toEqual([])
    for (let i = 0; i < 8; i++) expect(coordinator.requestsFor('register', `r${i}`).filter(r => r.status === 200)).toHaveLength(1)
    expect(events.filter(e => e.agent_info.agent_id === 'r0').map(e => e.agent_info.status)).not.toContain('busy')
    // Nothing is left behind: the queue drains (a reconcile may have just noted an agent).
    await waitFor('the export queue drained', () => exporter.stats().queued === 0, 10_000, 50)
  })

  it('a flood of load changes does not starve the keepalive of a busy agent, and the latest loads arrive once it ends', async () => {
    const events = await subscribe()
    // 300 status updates a minute at a 0.8 share is 4 a second: far fewer than the flood below.
    const coordinator = await startCoordinator({ inactiveAfterMs: 2000, limits: { ...GENEROUS, status: 300 } })
    const registry = new FakeRegistry()
    registry.put('aitbc1', 'r-busy', { status: 'busy' })
    for (let i = 0; i < 10; i++) registry.put('aitbc2', `r-load${i}`)
    startExport(coordinator, registry, { keepaliveIntervalMs: 1000, limits: { register: 600, status: 300, heartbeat: 600, lookup: 600, unregister: 600 } })
    await waitFor('all exported', () => coordinator.agents.size === 11 && coordinator.view('r-busy')?.status === 'busy', 5000)
    let round = 0
    const flood = setInterval(() => {
      round++
      for (let i = 0; i < 10; i++) registry.put('aitbc2', `r-load${i}`, { load_metrics: { cpu: (round % 100) / 100 } })
    }, 50)
    stops.push(async () => { clearInterval(flood) })
    const since = Date.now()
    try {
      await waitFor('r-busy kept live across three windows of flood', () => {
        const kept = touches(coordinator, 'r-busy').filter(r => r.at > since)
        return kept.length >= 3 && kept.at(-1)!.at - since > 6000
      }, 15_000, 100)
    } finally {
      clearInterval(flood)
    }
    expect(largestGap(touches(coordinator, 'r-busy'))).toBeLessThan(2000)
    const busyStatuses = events.filter(e => e.agent_info.agent_id === 'r-busy' && e.event_type === 'agent_status_updated').map(e => e.agent_info.status)
    expect(busyStatuses.length).toBeGreaterThan(3)
    expect(new Set(busyStatuses)).toEqual(new Set(['busy']))
    const last = (round % 100) / 100
    await waitFor('the latest load of every flooded agent', () => {
      for (let i = 0; i < 10; i++) if ((coordinator.view(`r-load${i}`)?.load_metrics as Record<string, number> | undefined)?.cpu !== last) return false
      return true
    }, 10_000, 100)
  })

  it('a restarted coordinator whose load failed gets every remote agent back within a keepalive, without restarting it again', async () => {
    let coordinator = await startCoordinator({ inactiveAfterMs: 2000 })
    const port = Number(new URL(coordinator.url).port)
    const registry = new FakeRegistry()
    registry.put('aitbc1', 'r-a', { capabilities: ['gpu'] })
    registry.put('aitbc2', 'r-b', { status: 'busy' })
    const { lines, exporter } = startExport(coordinator, registry, { keepaliveIntervalMs: 600, retryInitialMs: 100, retryMaxMs: 400 })
    await waitFor('both exported', () => coordinator.view('r-a') != null && coordinator.view('r-b')?.status === 'busy', 5000)

    await coordinator.stop()
    await waitFor('the export notices', () => exporter.stats().unreachable, 5000)
    // What it had in Redis is gone; a record it cannot read stops its load.
    await db.flushall()
    await db.set('agent:zz', JSON.stringify({ agent_id: 'zz', agent_type: 'worker', owner_node: 'aitbc1' }))
    coordinator = await startCoordinator({ inactiveAfterMs: 2000, port })
    expect(coordinator.load.error?.key).toBe('agent:zz')
    expect(coordinator.agents.size).toBe(0)
    await waitFor('both back', () => coordinator.view('r-a')?.status === 'active' && coordinator.view('r-b')?.status === 'busy', 5000)
    expect(lines.filter(l => l.event === 'coordinator_unreachable')).toHaveLength(1)
    expect(lines.filter(l => l.event === 'coordinator_reachable')).toHaveLength(1)
    expect(exporter.stats().unreachable).toBe(false)
  })

  it('refusals are logged once and not retried until the agent changes; server errors are retried; types the coordinator refuses are not sent', async () => {
    const coordinator = await startCoordinator()
    let flaky = 2
    coordinator.fault = (route, agentId) => {
      if (route === 'register' && agentId === 'r-refused') return 403
      if (route === 'heartbeat' && agentId === 'r-flaky' && flaky > 0) { flaky--; return 503 }
      return undefined
    }
    const registry = new FakeRegistry()
    registry.put('aitbc1', 'r-refused')
    registry.put('aitbc1', 'r-flaky')
    registry.put('aitbc2', 'r-odd', { agent_type: 'trainer' })
    const { lines } = startExport(coordinator, registry, { keepaliveIntervalMs: 400, retryInitialMs: 50, retryMaxMs: 200 })
    await waitFor('r-flaky kept live through two failures', () => flaky === 0 && coordinator.requestsFor('heartbeat', 'r-flaky').filter(r => r.status === 200).length >= 3, 10_000)
    expect(coordinator.view('r-flaky')?.status).toBe('active')
    expect(coordinator.requestsFor('register', 'r-refused')).toHaveLength(1)
    expect(coordinator.view('r-refused')).toBeUndefined()
    expect(coordinator.requests.filter(r => r.agentId === 'r-odd' || (r.body as { agent_id?: string } | undefined)?.agent_id === 'r-odd')).toEqual([])
    expect(lines.filter(l => l.event === 'coordinator_export_refused').map(l => [l.reason, l.agentId])).toEqual([['register-403', 'r-refused']])
    expect(lines.filter(l => l.event === 'coordinator_export_skipped').map(l => [l.reason, l.agentId, l.agentType])).toEqual([['agent-type-not-accepted', 'r-odd', 'trainer']])
    expect(lines.filter(l => l.event === 'coordinator_export_failed').map(l => l.reason)).toEqual(['heartbeat-server-error'])

    coordinator.fault = undefined
    registry.put('aitbc1', 'r-refused', { capabilities: ['new'] })
    // The request log is written once the answer has gone out, just after the agent is stored.
    await waitFor('r-refused registered once changed', () => coordinator.view('r-refused') != null && coordinator.requestsFor('register', 'r-refused').length >= 2, 5000)
    expect(coordinator.requestsFor('register', 'r-refused')).toHaveLength(2)
  })

  it('without an unregister route (the real coordinator), a removed agent is marked inactive, and DELETE is asked only once', async () => {
    const coordinator = await startCoordinator({ unregisterRoute: false })
    const registry = new FakeRegistry()
    registry.put('aitbc1', 'r-1')
    registry.put('aitbc1', 'r-2')
    const { lines, exporter } = startExport(coordinator, registry)
    await waitFor('both exported', () => coordinator.view('r-1') != null && coordinator.view('r-2') != null, 5000)
    registry.remove('r-1')
    await waitFor('r-1 inactive', () => coordinator.view('r-1')?.status === 'inactive', 5000)
    registry.remove('r-2')
    await waitFor('r-2 inactive', () => coordinator.view('r-2')?.status === 'inactive', 5000)
    expect(coordinator.requests.filter(r => r.method === 'DELETE').map(r => [r.agentId, r.status])).toEqual([['r-1', 405]])
    expect(lines.filter(l => l.event === 'coordinator_no_unregister_route')).toHaveLength(1)
    await waitFor('nothing left to do', () => exporter.stats().tracked === 0 && exporter.stats().queued === 0, 5000)
    const heartbeats = coordinator.requestsFor('heartbeat').length
    const statuses = coordinator.requestsFor('status').length
    registry.put('aitbc1', 'r-3')
    await waitFor('r-3 kept live twice', () => touches(coordinator, 'r-3').length >= 3, 5000)
    expect(coordinator.requestsFor('heartbeat').length - coordinator.requestsFor('heartbeat', 'r-3').length).toBe(heartbeats)
    expect(coordinator.requestsFor('status')).toHaveLength(statuses)
  })

  it('the older release (13 fields) gets registrations without chain or island', async () => {
    const coordinator = await startCoordinator({ recordFields: 13 })
    const registry = new FakeRegistry()
    registry.put('aitbc1', 'r-old', { chain_id: 'ait-devnet' })
    startExport(coordinator, registry, {}, 13)
    await waitFor('r-old exported', () => coordinator.view('r-old') != null, 5000)
    const body = coordinator.requestsFor('register', 'r-old')[0]!.body as Record<string, unknown>
    expect(Object.keys(body).sort()).toEqual(['agent_id', 'agent_type', 'capabilities', 'endpoints', 'metadata', 'services'])
    expect(Object.keys(JSON.parse((await db.get('agent:r-old'))!) as object)).toHaveLength(13)
  })

  it('beyond the keepalive capacity, the most recently active are kept live, the rest go inactive, and a warning says so once', async () => {
    const events = await subscribe()
    // 90 heartbeats a minute at a 0.8 share is 1.2 a second: one agent per 1 s keepalive.
    const coordinator = await startCoordinator({ inactiveAfterMs: 2000, limits: { ...GENEROUS, heartbeat: 90 } })
    const registry = new FakeRegistry()
    const now = Date.now()
    registry.put('aitbc1', 'r-old', { last_heartbeat: new Date(now - 3000).toISOString() })
    registry.put('aitbc1', 'r-mid', { last_heartbeat: new Date(now - 2000).toISOString() })
    registry.put('aitbc2', 'r-new', { last_heartbeat: new Date(now - 1000).toISOString() })
    const { lines, exporter } = startExport(coordinator, registry, { keepaliveIntervalMs: 1000, limits: { register: 600, status: 600, heartbeat: 90, lookup: 600, unregister: 600 } })
    await waitFor('the two least recent inactive', () => coordinator.view('r-old')?.status === 'inactive' && coordinator.view('r-mid')?.status === 'inactive', 10_000)
    await waitFor('r-new touched across two windows', () => touches(coordinator, 'r-new').filter(r => r.at > Date.now() - 1500).length >= 1 && touches(coordinator, 'r-new').at(-1)!.at - touches(coordinator, 'r-new')[0]!.at > 4000, 10_000, 100)
    expect(events.filter(e => e.agent_info.agent_id === 'r-new' && e.agent_info.status === 'inactive')).toEqual([])
    expect(largestGap(touches(coordinator, 'r-new'))).toBeLessThan(2000)
    expect(exporter.stats()).toMatchObject({ keptLive: 1, overCapacity: 2 })
    const warnings = lines.filter(l => l.event === 'coordinator_export_over_capacity')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ level: 40, liveRemoteAgents: 3, keptLive: 1, maxLiveAgents: 1 })

    registry.remove('r-old')
    registry.remove('r-mid')
    await waitFor('back within capacity', () => lines.some(l => l.event === 'coordinator_export_within_capacity'), 5000)
    expect(exporter.stats()).toMatchObject({ keptLive: 1, overCapacity: 0 })
  })
})
