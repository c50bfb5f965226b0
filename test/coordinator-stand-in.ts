import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'

/**
 * A stand-in for the AITBC agent coordinator (apps/agent-coordinator, `src/agent_app/`), written
 * from its source and as strict as it is:
 *
 * - At start it loads `agent:*` once (`KEYS`, `GET`, JSON), each into a record of exactly its
 *   fields (15, or 13 for the older release). A missing or extra field, an unknown agent_type or
 *   status, or a time `datetime.fromisoformat` cannot read raises, and the raise ends the whole
 *   load: agents after it are not loaded (`load` says what was loaded and why it stopped). A time
 *   of the other release's style (naive in the newest, aware in the older) is refused too: the
 *   real one loads it, then fails every computation with it (`TypeError` comparing naive and
 *   aware times: its heartbeats of that agent answer 404, its monitor stops for all agents).
 * - It keeps agents in memory, writes `agent:{id}` with SETEX 24 h on register, status update,
 *   heartbeat and its own inactivity marking, publishes `agent_registered`,
 *   `agent_status_updated` (status updates, heartbeats, marking) and `agent_unregistered` on
 *   `agent_events`, and marks an agent inactive once its last heartbeat is older than
 *   `inactiveAfterMs` (its monitor wakes every `monitorIntervalMs`; marking resets the
 *   heartbeat time, as the real one's status update does).
 * - Routes as the real one answers them: `POST /v1/agents/register` (422 on an unknown type),
 *   `PUT /v1/agents/{id}/status` (500 for an unknown agent or status: the real handler turns
 *   every error into 500), `POST /v1/agents/{id}/heartbeat` (sets the agent active; 404 if
 *   unknown), `POST /v1/agents/discover`, `GET /v1/agents/{id}`, `POST /v1/tasks/submit`,
 *   `GET /health`, each limited per client address and route (429 with Retry-After).
 * - Not in the real one: `DELETE /v1/agents/{id}` (unregister; `unregisterRoute: false` answers
 *   405 as the real one does), `assigned_agent` in the submit answer (the real one assigns in the
 *   background), and `fault` to make a route fail on purpose.
 */

export const AGENT_TYPES = ['coordinator', 'worker', 'specialist', 'monitor', 'gateway', 'orchestrator'] as const
export const STATUSES = ['active', 'inactive', 'busy', 'maintenance', 'error'] as const
const FIELDS_13 = ['agent_id', 'agent_type', 'status', 'capabilities', 'services', 'endpoints', 'metadata', 'last_heartbeat',
  'registration_time', 'load_metrics', 'health_score', 'version', 'tags'] as const
const FIELDS_15 = [...FIELDS_13, 'chain_id', 'island_id'] as const
const TASK_PRIORITIES = ['low', 'normal', 'high', 'critical', 'urgent']
const TTL_S = 24 * 3600
const MAX_BODY_BYTES = 1024 * 1024

export type Route = 'register' | 'status' | 'heartbeat' | 'discover' | 'get' | 'unregister' | 'submit' | 'health'

/** The real one's limits (requests per minute per client); unregister has none there: assumed like register. */
export const REAL_LIMITS: Record<Route, number> = { register: 50, status: 50, heartbeat: 100, discover: 200, get: 200, unregister: 50, submit: 50, health: Infinity }

export interface StandInCoordinatorOptions {
  redisUrl: string
  recordFields?: 15 | 13
  inactiveAfterMs?: number
  monitorIntervalMs?: number
  /** Inactive agents whose last heartbeat is older than this are unregistered (1 h). */
  removeInactiveAfterMs?: number
  limits?: Partial<Record<Route, number>>
  rateWindowMs?: number
  /**
   * A request arriving this soon after a 429 was answered was already on its way: it is not
   * counted as ignoring the Retry-After (default 250 ms).
   */
  retryAfterGraceMs?: number
  unregisterRoute?: boolean
  defaultChainId?: string
  host?: string
  port?: number
}

export interface AgentInfo {
  agent_id: string
  agent_type: string
  status: string
  capabilities: string[]
  services: string[]
  endpoints: Record<string, string>
  metadata: Record<string, unknown>
  last_heartbeat: number
  registration_time: number
  load_metrics: Record<string, number>
  health_score: number
  version: string
  tags: string[]
  chain_id: string
  island_id: string
}

export interface LoadResult {
  /** The keys `KEYS agent:*` returned, in its order. */
  keys: string[]
  /** Agents loaded, in load order. */
  loaded: string[]
  /** Why the load stopped (the key being read, and the error). */
  error?: { key: string, message: string }
}

export interface RequestRecord {
  at: number
  client: string
  method: string
  path: string
  route: Route | undefined
  agentId?: string
  body?: unknown
  status: number
}

export class LoadError extends Error {
  override name = 'LoadError'
}

/** `datetime.fromisoformat` (Python 3.11+): ms since the epoch, and whether it carried an offset. */
export function parseIsoTime (value: unknown): { ms: number, aware: boolean } {
  if (typeof value !== 'string') throw new LoadError(`fromisoformat: argument must be str, not ${value === null ? 'None' : typeof value}`)
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?)?(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?)?$/.exec(value)
  if (m == null) throw new LoadError(`Invalid isoformat string: '${value}'`)
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', offset] = m
  const parts = [Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s)] as const
  const ms = Date.UTC(parts[0], parts[1] - 1, parts[2], parts[3], parts[4], parts[5], Number(frac.slice(0, 3).padEnd(3, '0')))
  const date = new Date(ms)
  if (parts[1] < 1 || parts[1] > 12 || date.getUTCDate() !== parts[2] || date.getUTCMonth() !== parts[1] - 1 || parts[3] > 23 || parts[4] > 59 || parts[5] > 59) {
    throw new LoadError(`Invalid isoformat string: '${value}' (out of range)`)
  }
  if (offset == null) return { ms, aware: false }
  if (offset === 'Z') return { ms, aware: true }
  const o = /^([+-])(\d{2}):?(\d{2})?/.exec(offset)!
  const minutes = Number(o[2]) * 60 + Number(o[3] ?? '0')
  if (Number(o[2]) > 23 || Number(o[3] ?? '0') > 59) throw new LoadError(`Invalid isoformat string: '${value}' (offset out of range)`)
  return { ms: ms - (o[1] === '-' ? -1 : 1) * minutes * 60_000, aware: true }
}

/** `datetime.isoformat()`: aware UTC (`+00:00`) in the newest release, naive in the older; no fraction at 0 µs. */
export function isoformat (ms: number, aware: boolean): string {
  const iso = new Date(ms).toISOString()
  const fraction = ms % 1000 === 0 ? '' : `.${iso.slice(20, 23)}000`
  return `${iso.slice(0, 19)}${fraction}${aware ? '+00:00' : ''}`
}

function isObject (v: unknown): v is Record<string, unknown> {
  return v != null && typeof v === 'object' && !Array.isArray(v)
}

function isStringList (v: unknown): v is string[] {
  return Array.isArray(v) && v.every(x => typeof x === 'string')
}

class HttpError extends Error {
  constructor (readonly status: number, readonly detail: unknown, readonly headers: Record<string, string> = {}) {
    super(typeof detail === 'string' ? detail : JSON.stringify(detail))
  }
}

export class StandInCoordinator {
  readonly agents = new Map<string, AgentInfo>()
  readonly requests: RequestRecord[] = []
  /** Requests that came to a route before the Retry-After it had announced to that client. */
  readonly retryAfterViolations: RequestRecord[] = []
  readonly assignments = new Map<string, string>()
  load: LoadResult = { keys: [], loaded: [] }
  /** Make a route answer `status` on purpose (return undefined to answer normally). */
  fault?: (route: Route, agentId: string | undefined) => number | undefined
  private readonly pending = new Map<string, number>()
  private readonly windows = new Map<string, number[]>()
  private readonly retryAfter = new Map<string, { at: number, until: number }>()
  private readonly fields: readonly string[]
  private readonly aware: boolean
  private readonly limits: Record<Route, number>
  private redis?: Redis
  private server?: Server
  private monitor?: NodeJS.Timeout
  url = ''

  constructor (private readonly options: StandInCoordinatorOptions) {
    this.fields = (options.recordFields ?? 15) === 15 ? FIELDS_15 : FIELDS_13
    this.aware = (options.recordFields ?? 15) === 15
    this.limits = { ...REAL_LIMITS, ...options.limits }
  }

  private get inactiveAfterMs (): number { return this.options.inactiveAfterMs ?? 120_000 }

  async start (): Promise<string> {
    const redis = new Redis(this.options.redisUrl, { maxRetriesPerRequest: 1 })
    redis.on('error', () => {})
    this.redis = redis
    await this.loadFromRedis()
    const server = createServer((req, res) => { void this.handle(req, res) })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => { resolve() })
    })
    this.server = server
    const addr = server.address() as AddressInfo
    this.url = `http://${addr.address}:${addr.port}`
    this.monitor = setInterval(() => { void this.checkHeartbeats().catch(() => {}) }, this.options.monitorIntervalMs ?? 30_000)
    return this.url
  }

  async stop (): Promise<void> {
    clearInterval(this.monitor)
    const server = this.server
    delete this.server
    if (server != null) {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
    this.redis?.disconnect()
  }

  /** The agent as `GET /v1/agents/{id}` answers it (`to_dict()`). */
  view (agentId: string): Record<string, unknown> | undefined {
    const agent = this.agents.get(agentId)
    return agent != null ? this.toDict(agent) : undefined
  }

  requestsFor (route: Route, agentId?: string): RequestRecord[] {
    return this.requests.filter(r => r.route === route && (agentId == null || r.agentId === agentId))
  }

  // ---- load ----

  /** As `_load_agents_from_redis`: the try sits outside the loop, so the first raise ends it. */
  private async loadFromRedis (): Promise<void> {
    const redis = this.redis!
    let key = ''
    try {
      this.load.keys = await redis.keys('agent:*')
      for (key of this.load.keys) {
        const data = await redis.get(key)
        if (data == null || data === '') continue
        const agent = this.fromDict(JSON.parse(data) as unknown)
        this.agents.set(agent.agent_id, agent)
        this.load.loaded.push(agent.agent_id)
      }
    } catch (err) {
      this.load.error = { key, message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }
    }
  }

  /** `AgentInfo.from_dict`: exactly the release's fields, its enums, readable times of its style. */
  fromDict (data: unknown): AgentInfo {
    if (!isObject(data)) throw new LoadError(`record is not an object (${Array.isArray(data) ? 'list' : typeof data})`)
    const missing = this.fields.filter(f => !(f in data))
    if (missing.length > 0) throw new LoadError(`__init__() missing required field(s): ${missing.join(', ')}`)
    const extra = Object.keys(data).filter(k => !this.fields.includes(k))
    if (extra.length > 0) throw new LoadError(`__init__() got an unexpected keyword argument '${extra[0]}'`)
    if (!(AGENT_TYPES as readonly unknown[]).includes(data.agent_type)) throw new LoadError(`'${String(data.agent_type)}' is not a valid AgentType`)
    if (!(STATUSES as readonly unknown[]).includes(data.status)) throw new LoadError(`'${String(data.status)}' is not a valid AgentStatus`)
    const times = { last_heartbeat: parseIsoTime(data.last_heartbeat), registration_time: parseIsoTime(data.registration_time) }
    for (const [field, time] of Object.entries(times)) {
      if (time.aware !== this.aware) {
        throw new LoadError(`${field} ${JSON.stringify(data[field])} is ${time.aware ? 'aware' : 'naive'}; this release compares it with ${this.aware ? 'aware' : 'naive'} UTC times (TypeError: can't compare offset-naive and offset-aware datetimes)`)
      }
    }
    if (typeof data.agent_id !== 'string') throw new LoadError('agent_id is not a string')
    if (!isStringList(data.capabilities) || !isStringList(data.services) || !isStringList(data.tags)) throw new LoadError('capabilities, services and tags must be lists of strings')
    if (!isObject(data.endpoints) || !isObject(data.metadata) || !isObject(data.load_metrics)) throw new LoadError('endpoints, metadata and load_metrics must be objects')
    if (typeof data.health_score !== 'number' || typeof data.version !== 'string') throw new LoadError('health_score must be a number and version a string')
    return {
      agent_id: data.agent_id,
      agent_type: data.agent_type as string,
      status: data.status as string,
      capabilities: data.capabilities,
      services: data.services,
      endpoints: data.endpoints as Record<string, string>,
      metadata: data.metadata,
      last_heartbeat: times.last_heartbeat.ms,
      registration_time: times.registration_time.ms,
      load_metrics: data.load_metrics as Record<string, number>,
      health_score: data.health_score,
      version: data.version,
      tags: [...new Set(data.tags)],
      chain_id: typeof data.chain_id === 'string' ? data.chain_id : '',
      island_id: typeof data.island_id === 'string' ? data.island_id : ''
    }
  }

  toDict (agent: AgentInfo): Record<string, unknown> {
    const dict: Record<string, unknown> = {
      agent_id: agent.agent_id,
      agent_type: agent.agent_type,
      status: agent.status,
      capabilities: agent.capabilities,
      services: agent.services,
      endpoints: agent.endpoints,
      metadata: agent.metadata,
      last_heartbeat: isoformat(agent.last_heartbeat, this.aware),
      registration_time: isoformat(agent.registration_time, this.aware),
      load_metrics: agent.load_metrics,
      health_score: agent.health_score,
      version: agent.version,
      tags: agent.tags
    }
    if (this.aware) {
      dict.chain_id = agent.chain_id
      dict.island_id = agent.island_id
    }
    return dict
  }

  // ---- registry operations ----

  private healthScore (agent: AgentInfo, now: number): number {
    let score = 1.0
    const loads = Object.values(agent.load_metrics)
    if (loads.length > 0) {
      const average = loads.reduce((a, b) => a + b, 0) / loads.length
      if (average > 0.8) score -= 0.3
      else if (average > 0.6) score -= 0.1
    }
    if (agent.status === 'error') score -= 0.5
    else if (agent.status === 'maintenance') score -= 0.2
    else if (agent.status === 'busy') score -= 0.1
    const age = now - agent.last_heartbeat
    if (age > this.inactiveAfterMs) score -= 0.5
    else if (age > this.inactiveAfterMs / 2) score -= 0.2
    return Math.max(0, Math.min(1, score))
  }

  private async save (agent: AgentInfo): Promise<void> {
    await this.redis!.setex(`agent:${agent.agent_id}`, TTL_S, JSON.stringify(this.toDict(agent)))
  }

  private async publish (eventType: string, agent: AgentInfo): Promise<void> {
    await this.redis!.publish('agent_events', JSON.stringify({ event_type: eventType, timestamp: isoformat(Date.now(), true), agent_info: this.toDict(agent) }))
  }

  private async register (agent: AgentInfo): Promise<boolean> {
    try {
      this.agents.set(agent.agent_id, agent)
      await this.save(agent)
      await this.publish('agent_registered', agent)
      return true
    } catch {
      return false
    }
  }

  /** `update_agent_status`: status, heartbeat time now, load merged, score; saved and published. */
  private async updateStatus (agentId: string, status: string, load?: Record<string, number>): Promise<boolean> {
    try {
      const agent = this.agents.get(agentId)
      if (agent == null) return false
      const now = Date.now()
      agent.status = status
      agent.last_heartbeat = now
      if (load != null && Object.keys(load).length > 0) Object.assign(agent.load_metrics, load)
      agent.health_score = this.healthScore(agent, now)
      await this.save(agent)
      await this.publish('agent_status_updated', agent)
      return true
    } catch {
      return false
    }
  }

  private async unregister (agentId: string): Promise<boolean> {
    const agent = this.agents.get(agentId)
    if (agent == null) return false
    this.agents.delete(agentId)
    await this.redis!.del(`agent:${agentId}`)
    await this.publish('agent_unregistered', agent)
    return true
  }

  private async checkHeartbeats (): Promise<void> {
    const now = Date.now()
    for (const [id, agent] of [...this.agents]) {
      if (now - agent.last_heartbeat > this.inactiveAfterMs && agent.status !== 'inactive') await this.updateStatus(id, 'inactive')
    }
    const removeAfter = this.options.removeInactiveAfterMs ?? 3_600_000
    for (const [id, agent] of [...this.agents]) {
      if (agent.status === 'inactive' && now - agent.last_heartbeat > removeAfter) await this.unregister(id)
    }
  }

  discover (query: Record<string, unknown>): AgentInfo[] {
    let candidates = [...this.agents.values()]
    if ('agent_type' in query) {
      if (!(AGENT_TYPES as readonly unknown[]).includes(query.agent_type)) return []
      candidates = candidates.filter(a => a.agent_type === query.agent_type)
    }
    if ('status' in query) {
      if (!(STATUSES as readonly unknown[]).includes(query.status)) return []
      candidates = candidates.filter(a => a.status === query.status)
    }
    const all = (field: 'capabilities' | 'services' | 'tags'): void => {
      if (!(field in query)) return
      const wanted = query[field]
      if (!isStringList(wanted)) {
        candidates = []
        return
      }
      candidates = candidates.filter(a => wanted.every(w => a[field].includes(w)))
    }
    all('capabilities')
    all('services')
    all('tags')
    if (this.aware) {
      if ('chain_id' in query) candidates = candidates.filter(a => a.chain_id === query.chain_id)
      if ('island_id' in query) candidates = candidates.filter(a => a.island_id === query.island_id)
    }
    if ('min_health_score' in query) {
      const min = Number(query.min_health_score)
      candidates = candidates.filter(a => a.health_score >= min)
    }
    candidates.sort((a, b) => b.health_score - a.health_score)
    if (typeof query.limit === 'number' && Number.isInteger(query.limit) && query.limit >= 0) candidates = candidates.slice(0, query.limit)
    return candidates
  }

  // ---- HTTP ----

  private rateLimited (client: string, route: Route, now: number): number | undefined {
    const limit = this.limits[route]
    if (!Number.isFinite(limit)) return undefined
    const windowMs = this.options.rateWindowMs ?? 60_000
    const key = `${client} ${route}`
    const stamps = (this.windows.get(key) ?? []).filter(t => now - t < windowMs)
    this.windows.set(key, stamps)
    if (stamps.length < limit) {
      stamps.push(now)
      return undefined
    }
    return Math.max(1, Math.ceil((stamps[0]! + windowMs - now) / 1000))
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now()
    const client = req.socket.remoteAddress ?? 'unknown'
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname
    const record: RequestRecord = { at, client, method: req.method ?? '', path, route: undefined, status: 0 }
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status
      this.requests.push(record)
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(JSON.stringify(body))
    }
    try {
      const match = /^\/v1\/agents\/([^/]+?)(\/status|\/heartbeat)?$/.exec(path)
      const agentId = match != null ? decodeURIComponent(match[1]!) : undefined
      if (agentId != null && path !== '/v1/agents/register' && path !== '/v1/agents/discover') record.agentId = agentId
      const route = this.routeOf(req.method ?? '', path, match)
      record.route = route
      const raw = await readBody(req)
      if (route !== 'health') {
        const key = `${client} ${route}`
        const announced = this.retryAfter.get(key)
        if (announced != null && at < announced.until && at - announced.at > (this.options.retryAfterGraceMs ?? 250)) this.retryAfterViolations.push(record)
        const wait = this.rateLimited(client, route, at)
        if (wait != null) {
          // The first announcement stands until it ends, so a client hammering cannot hide in the grace.
          if (announced == null || at >= announced.until) this.retryAfter.set(key, { at, until: at + wait * 1000 })
          answer(429, { detail: 'Rate limit exceeded' }, { 'retry-after': String(wait) })
          return
        }
      }
      const body = raw === '' ? undefined : parseJson(raw)
      if (route === 'register' && isObject(body) && typeof body.agent_id === 'string') record.agentId = body.agent_id
      record.body = body
      const faulty = this.fault?.(route, record.agentId)
      if (faulty != null) {
        answer(faulty, { detail: `fault injected (${faulty})` })
        return
      }
      const result = await this.dispatch(route, agentId, body, at)
      answer(200, result)
    } catch (err) {
      if (err instanceof HttpError) answer(err.status, { detail: err.detail }, err.headers)
      else answer(500, { detail: 'Internal server error' })
    }
  }

  private routeOf (method: string, path: string, match: RegExpExecArray | null): Route {
    const notAllowed = new HttpError(405, 'Method Not Allowed')
    if (path === '/health') {
      if (method !== 'GET') throw notAllowed
      return 'health'
    }
    if (path === '/v1/agents/register') {
      if (method !== 'POST') throw notAllowed
      return 'register'
    }
    if (path === '/v1/agents/discover') {
      if (method !== 'POST') throw notAllowed
      return 'discover'
    }
    if (path === '/v1/tasks/submit') {
      if (method !== 'POST') throw notAllowed
      return 'submit'
    }
    if (match != null) {
      if (match[2] === '/status') {
        if (method !== 'PUT') throw notAllowed
        return 'status'
      }
      if (match[2] === '/heartbeat') {
        if (method !== 'POST') throw notAllowed
        return 'heartbeat'
      }
      if (method === 'GET') return 'get'
      if (method === 'DELETE' && this.options.unregisterRoute !== false) return 'unregister'
      throw notAllowed
    }
    throw new HttpError(404, 'Not Found')
  }

  private async dispatch (route: Route, agentId: string | undefined, body: unknown, now: number): Promise<unknown> {
    const timestamp = isoformat(now, true)
    switch (route) {
      case 'health':
        return { status: 'healthy', service: 'agent-coordinator', agents: this.agents.size, timestamp }
      case 'register': {
        const request = requireObject(body)
        const problems: string[] = []
        if (typeof request.agent_id !== 'string') problems.push('agent_id: Field required (a string)')
        if (typeof request.agent_type !== 'string') problems.push('agent_type: Field required (a string)')
        for (const field of ['capabilities', 'services'] as const) if (field in request && !isStringList(request[field])) problems.push(`${field}: Input should be a valid list of strings`)
        if ('endpoints' in request && !(isObject(request.endpoints) && Object.values(request.endpoints).every(v => typeof v === 'string'))) problems.push('endpoints: Input should be a valid dictionary of strings')
        if ('metadata' in request && !isObject(request.metadata)) problems.push('metadata: Input should be a valid dictionary')
        for (const field of ['chain_id', 'island_id'] as const) if (request[field] != null && typeof request[field] !== 'string') problems.push(`${field}: Input should be a valid string`)
        if (problems.length > 0) throw new HttpError(422, problems.map(msg => ({ type: 'validation', msg })))
        if (!(AGENT_TYPES as readonly unknown[]).includes(request.agent_type)) throw new HttpError(422, `'${String(request.agent_type)}' is not a valid AgentType`)
        const agent: AgentInfo = {
          agent_id: request.agent_id as string,
          agent_type: request.agent_type as string,
          status: 'active',
          capabilities: (request.capabilities as string[] | undefined) ?? [],
          services: (request.services as string[] | undefined) ?? [],
          endpoints: (request.endpoints as Record<string, string> | undefined) ?? {},
          metadata: (request.metadata as Record<string, unknown> | undefined) ?? {},
          last_heartbeat: now,
          registration_time: now,
          load_metrics: {},
          health_score: 1,
          version: '1.0.0',
          tags: [],
          chain_id: this.aware && typeof request.chain_id === 'string' ? request.chain_id : '',
          island_id: this.aware && typeof request.island_id === 'string' ? request.island_id : ''
        }
        if (!await this.register(agent)) throw new HttpError(500, 'Failed to register agent')
        return { status: 'success', message: `Agent ${agent.agent_id} registered successfully`, agent_id: agent.agent_id, identity_address: null, registered_at: timestamp }
      }
      case 'status': {
        const request = requireObject(body)
        if (typeof request.status !== 'string') throw new HttpError(422, [{ type: 'missing', msg: 'status: Field required' }])
        const load = request.load_metrics ?? {}
        if (!isObject(load) || !Object.values(load).every(v => typeof v === 'number')) throw new HttpError(422, [{ type: 'validation', msg: 'load_metrics: Input should be a valid dictionary of numbers' }])
        // The real handler catches everything, its own HTTPException included, as a 500.
        if (!(STATUSES as readonly string[]).includes(request.status)) throw new HttpError(500, 'Internal server error')
        if (!await this.updateStatus(agentId!, request.status, load as Record<string, number>)) throw new HttpError(500, 'Internal server error')
        return { status: 'success', message: `Agent ${agentId!} status updated`, agent_id: agentId, new_status: request.status, updated_at: timestamp }
      }
      case 'heartbeat':
        if (!await this.updateStatus(agentId!, 'active', {})) throw new HttpError(404, 'Agent not found')
        return { status: 'success', message: `Heartbeat received from ${agentId!}`, agent_id: agentId, heartbeat_at: timestamp }
      case 'get': {
        const agent = this.agents.get(agentId!)
        if (agent == null) throw new HttpError(404, 'Agent not found')
        return { status: 'success', agent: this.toDict(agent), timestamp }
      }
      case 'unregister':
        if (!await this.unregister(agentId!)) throw new HttpError(404, 'Agent not found')
        return { status: 'success', message: `Agent ${agentId!} unregistered`, agent_id: agentId, timestamp }
      case 'discover': {
        const query = requireObject(body)
        const agents = this.discover(query).map(a => this.toDict(a))
        return { status: 'success', query, agents, count: agents.length, timestamp }
      }
      case 'submit': {
        const request = requireObject(body)
        if (!isObject(request.task_data)) throw new HttpError(422, [{ type: 'missing', msg: 'task_data: Field required' }])
        const priority = typeof request.priority === 'string' ? request.priority : 'normal'
        if (!TASK_PRIORITIES.includes(priority.toLowerCase())) throw new HttpError(400, `Invalid priority: ${priority}`)
        const chainId = typeof request.chain_id === 'string' && request.chain_id !== '' ? request.chain_id : this.options.defaultChainId ?? 'ait-hub'
        const requirements = isObject(request.requirements) ? request.requirements : {}
        const query: Record<string, unknown> = { status: 'active' }
        for (const field of ['agent_type', 'capabilities', 'services', 'min_health_score']) if (field in requirements) query[field] = requirements[field]
        if (this.aware) query.chain_id = chainId
        const eligible = this.discover(query).filter(a => (this.pending.get(a.agent_id) ?? 0) < 100)
        let chosen: AgentInfo | undefined
        for (const agent of eligible) if (chosen == null || (this.pending.get(agent.agent_id) ?? 0) < (this.pending.get(chosen.agent_id) ?? 0)) chosen = agent
        const taskId = typeof request.task_data.task_id === 'string' ? request.task_data.task_id : randomUUID()
        if (chosen != null) {
          this.pending.set(chosen.agent_id, (this.pending.get(chosen.agent_id) ?? 0) + 1)
          this.assignments.set(taskId, chosen.agent_id)
        }
        return { status: 'success', message: 'Task submitted successfully', task_id: taskId, chain_id: chainId, escrow_id: null, contract_id: null, priority, submitted_at: timestamp, assigned_agent: chosen?.agent_id ?? null }
      }
    }
  }
}

function requireObject (body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw new HttpError(422, [{ type: 'dict_type', msg: 'Input should be a valid dictionary' }])
  return body
}

function parseJson (raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    throw new HttpError(422, [{ type: 'json_invalid', msg: 'JSON decode error' }])
  }
}

async function readBody (req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length
    if (bytes > MAX_BODY_BYTES) throw new HttpError(413, 'Request body too large')
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}
