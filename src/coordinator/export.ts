import type { Logger } from 'pino'
import { defaultAgentChainId, type MeshConfig } from '../config/config.js'
import {
  COORDINATOR_AGENT_TYPES, COORDINATOR_RATE_LIMITS_PER_MIN, EXPORT_KEEPALIVE_INTERVAL_MS, EXPORT_KEEPALIVE_SHARE, EXPORT_MAX_IN_FLIGHT, EXPORT_RATE_SHARE,
  EXPORT_RECONCILE_INTERVAL_MS, EXPORT_REQUEST_TIMEOUT_MS, EXPORT_RETRY_INITIAL_MS, EXPORT_RETRY_MAX_MS
} from '../constants.js'
import { errorMessage } from '../errors.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import type { AgentRegistry } from '../registry/registry.js'
import { CoordinatorClient, CoordinatorUnreachable, type CoordinatorAnswer } from './client.js'
import { bucketFor, type TokenBucket } from './token-bucket.js'

/** An agent as the registry shows it now (derived status): the fields the export reads. */
export interface ExportedView {
  agent_id: string
  agent_type: string
  status: string
  capabilities: string[]
  services: string[]
  endpoints: Record<string, string>
  metadata: Record<string, unknown>
  load_metrics: Record<string, number>
  last_heartbeat: string
  /** Taken when the record carries them; else the configured defaults. */
  chain_id?: unknown
  island_id?: unknown
}

export interface OwnedAgent {
  /** The node the agent is registered on. */
  owner: string
  record: ExportedView
}

/**
 * What the export needs from the agent registry: this node's name (its own agents are not
 * exported), every change as it happens, and the current view of one agent or all.
 */
export interface ExportSource {
  node: string
  watch: (listener: (change: { agentId: string, owner: string }) => void) => () => void
  get: (agentId: string) => OwnedAgent | undefined
  current: () => OwnedAgent[]
}

/** The registry as an export source. */
export function exportSourceFromRegistry (registry: Pick<AgentRegistry, 'watch' | 'get' | 'list' | 'entry'>, node: string): ExportSource {
  const owned = (record: ExportedView | undefined): OwnedAgent | undefined => {
    const owner = record != null ? registry.entry(record.agent_id)?.owner : undefined
    return record != null && owner != null ? { owner, record } : undefined
  }
  return {
    node,
    watch: listener => registry.watch(listener),
    get: agentId => owned(registry.get(agentId)),
    current: () => registry.list({}).flatMap(record => owned(record) ?? [])
  }
}

export type ExportRoute = 'register' | 'status' | 'heartbeat' | 'lookup' | 'unregister'

export interface CoordinatorExportOptions {
  /** Each live remote agent is touched at least this often. */
  keepaliveIntervalMs: number
  /** The coordinator's limits, requests per minute and client, per route. */
  limits: Record<ExportRoute, number>
  /** Share of each limit the export uses. */
  rateShare: number
  reconcileIntervalMs: number
  requestTimeoutMs: number
  maxInFlight: number
  retryInitialMs: number
  retryMaxMs: number
}

export const DEFAULT_EXPORT_OPTIONS: CoordinatorExportOptions = {
  keepaliveIntervalMs: EXPORT_KEEPALIVE_INTERVAL_MS,
  limits: { ...COORDINATOR_RATE_LIMITS_PER_MIN },
  rateShare: EXPORT_RATE_SHARE,
  reconcileIntervalMs: EXPORT_RECONCILE_INTERVAL_MS,
  requestTimeoutMs: EXPORT_REQUEST_TIMEOUT_MS,
  maxInFlight: EXPORT_MAX_IN_FLIGHT,
  retryInitialMs: EXPORT_RETRY_INITIAL_MS,
  retryMaxMs: EXPORT_RETRY_MAX_MS
}

/**
 * How many remote agents the export can keep live: each needs one call per keepalive interval,
 * active ones a heartbeat, the others a status update (a heartbeat would set them active) out of
 * half the status share (the other half is for changes). With the defaults: 120 and 30.
 */
export function keepLiveCapacity (options: Pick<CoordinatorExportOptions, 'keepaliveIntervalMs' | 'limits' | 'rateShare'>): { active: number, nonActive: number } {
  const perInterval = (perMinute: number): number => Math.floor(perMinute * options.keepaliveIntervalMs / 60_000)
  return {
    active: perInterval(options.limits.heartbeat * options.rateShare),
    nonActive: perInterval(options.limits.status * options.rateShare / 2)
  }
}

export interface CoordinatorExportInit {
  /** The coordinator's base URL (`coordinator.url`); routes are under `/v1`. */
  url: string
  source: ExportSource
  log: Logger
  /** 15: newest release (chain_id and island_id in the register body); 13: older release. */
  recordFields: 15 | 13
  /** For agents whose record names no chain or island (`agents.chainId` or `ait-hub`, `agents.islandId`). */
  chainId: string
  islandId: string
  options?: Partial<CoordinatorExportOptions>
}

export interface RegisterBody {
  agent_id: string
  agent_type: string
  capabilities: string[]
  services: string[]
  endpoints: Record<string, string>
  metadata: Record<string, unknown>
  chain_id?: string
  island_id?: string
}

export interface CoordinatorExportStats {
  /** Remote agents the export follows (pushed, being pushed, or being removed). */
  tracked: number
  /** Agents with work waiting (at most one entry each). */
  queued: number
  inFlight: number
  /** Remote agents kept live by keepalives, and live ones beyond the capacity (left to go inactive). */
  keptLive: number
  overCapacity: number
  unreachable: boolean
  /** Whether the coordinator has `DELETE /v1/agents/{id}`; undefined until a removal asked. */
  unregisterRoute?: boolean
  sent: Record<ExportRoute, number>
  /** Answers by class: 2xx, 404, 429, 4xx (other), 5xx; and requests that got none. */
  answers: Record<'2xx' | '404' | '429' | '4xx' | '5xx' | 'unreachable', number>
}

type Action =
  | { route: 'lookup' }
  | { route: 'register', key: string, body: RegisterBody }
  | { route: 'status', status: string, load: Record<string, number>, key: string, purpose: 'change' | 'keepalive' | 'retire' }
  | { route: 'heartbeat' }
  | { route: 'unregister' }

/** What the export knows of one remote agent's copy in the coordinator. */
interface Tracked {
  /** unknown: not asked yet (or the answer was ambiguous); absent: the coordinator does not have it. */
  presence: 'unknown' | 'absent' | 'present'
  /** The coordinator's copy as last set or read: register fields, status, load. */
  registerKey?: string
  status?: string
  load?: Record<string, number>
  /** When the coordinator last took a heartbeat of it (its last_heartbeat), ms; 0: never. */
  touchedAt: number
  /** A register body or status the coordinator refused (4xx): not sent again until the agent changes. */
  refusedRegister?: string
  refusedStatus?: string
  /** The agent's type is not one the coordinator accepts (logged once per type). */
  unexportableType?: string
  attempts: number
  retryAt: number
}

const ROUTES: ExportRoute[] = ['register', 'status', 'heartbeat', 'lookup', 'unregister']
const AGENT_TYPES = new Set<string>(COORDINATOR_AGENT_TYPES)

/** JSON with object keys sorted, so equal contents compare equal whatever their order. */
function canonical (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => v != null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
    : v)
}

function text (value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function sameLoad (a: Record<string, number>, b: Record<string, number> | undefined): boolean {
  if (b == null) return false
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every(k => b[k] === a[k])
}

/** A coordinator time: aware (`+00:00`) in the newest release, naive UTC in the older one. */
function coordinatorTime (value: unknown): number {
  if (typeof value !== 'string') return 0
  const ms = Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(value) ? value : `${value}Z`)
  return Number.isNaN(ms) ? 0 : ms
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return value != null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * Pushes the agents of other nodes into the AITBC agent coordinator running beside this node,
 * live, through its `/v1` API: registrations, status and load changes, keepalives and removals.
 *
 * Work is kept per agent (one queue entry each, so the queue is bounded by the agents), and what
 * to send is decided when it is sent, from the registry's current view against what the
 * coordinator was last given: only the latest state goes out. Each route is paced by a token
 * bucket below the coordinator's limit; a 429 pauses that route for its Retry-After, a 5xx backs
 * off that agent, an unreachable coordinator backs off everything, and a refusal (another 4xx) is
 * logged once and dropped for that change. Every live remote agent is touched (heartbeat, or
 * status update for one that is not active) each keepalive interval, up to the capacity the
 * heartbeat limit allows (`keepLiveCapacity`); beyond it the most recently active are kept live.
 */
export class CoordinatorExport {
  private readonly tracked = new Map<string, Tracked>()
  /** Agents with work waiting, oldest first; the work itself is planned at send time. */
  private readonly queue = new Set<string>()
  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly buckets: Record<ExportRoute, TokenBucket>
  private readonly options: CoordinatorExportOptions
  private readonly capacity: { active: number, nonActive: number }
  private readonly client: CoordinatorClient
  private readonly abort = new AbortController()
  private readonly refusals: RejectionLog
  private readonly log: Logger
  private readonly node: string
  private keepLive = new Set<string>()
  private overCapacity = 0
  private unregisterRoute?: boolean
  /** The coordinator did not answer: nothing is sent before this time. */
  private pausedUntil = 0
  private unreachableSince?: number
  private unreachableAttempts = 0
  private unwatch?: () => void
  private reconcileTimer?: NodeJS.Timeout
  private wakeTimer?: NodeJS.Timeout
  private wakeAtMs = Infinity
  private pumpScheduled = false
  private running = false
  private readonly sent = Object.fromEntries(ROUTES.map(r => [r, 0])) as Record<ExportRoute, number>
  private readonly answers: CoordinatorExportStats['answers'] = { '2xx': 0, 404: 0, 429: 0, '4xx': 0, '5xx': 0, unreachable: 0 }

  constructor (private readonly init: CoordinatorExportInit) {
    this.options = { ...DEFAULT_EXPORT_OPTIONS, ...init.options, limits: { ...DEFAULT_EXPORT_OPTIONS.limits, ...init.options?.limits } }
    this.capacity = keepLiveCapacity(this.options)
    const now = Date.now()
    this.buckets = Object.fromEntries(ROUTES.map(r => [r, bucketFor(this.options.limits[r], this.options.rateShare, now)])) as Record<ExportRoute, TokenBucket>
    this.client = new CoordinatorClient(init.url.replace(/\/+$/, ''), this.options.requestTimeoutMs, this.abort.signal)
    this.log = init.log.child({ component: 'coordinator-export' })
    this.refusals = new RejectionLog(this.log)
    this.node = init.source.node
  }

  /** The export the config asks for (`coordinator.url` set), or undefined. */
  static fromConfig (config: Pick<MeshConfig, 'node' | 'agents' | 'coordinator'> & { probes: Pick<MeshConfig['probes'], 'chainIds'> }, registry: Pick<AgentRegistry, 'watch' | 'get' | 'list' | 'entry'>, log: Logger): CoordinatorExport | undefined {
    if (config.coordinator.url == null) return undefined
    return new CoordinatorExport({
      url: config.coordinator.url,
      source: exportSourceFromRegistry(registry, config.node.name),
      log,
      recordFields: config.coordinator.recordFields,
      chainId: defaultAgentChainId(config),
      islandId: config.agents.islandId,
      options: { keepaliveIntervalMs: Math.floor(config.coordinator.inactiveAfterS * 1000 * EXPORT_KEEPALIVE_SHARE) }
    })
  }

  start (): void {
    if (this.running) return
    this.running = true
    // Called inside the registry's commit: it only notes the id, whatever happens.
    this.unwatch = this.init.source.watch(change => {
      this.guard('watch', () => { if (change.owner !== this.node || this.tracked.has(change.agentId)) this.enqueue(change.agentId) })
    })
    this.reconcileTimer = setInterval(() => { this.guard('reconcile', () => { this.reconcile() }) }, this.options.reconcileIntervalMs)
    this.reconcileTimer.unref()
    this.log.info({
      event: 'coordinator_export_started', url: this.client.baseUrl, keepaliveIntervalMs: this.options.keepaliveIntervalMs,
      maxLiveAgents: this.capacity.active, maxLiveNonActiveAgents: this.capacity.nonActive
    }, 'exporting other nodes\' agents into the agent coordinator')
    this.guard('reconcile', () => { this.reconcile() })
  }

  /** Stops sending; requests in flight are cancelled and awaited. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.unwatch?.()
    clearInterval(this.reconcileTimer)
    clearTimeout(this.wakeTimer)
    this.abort.abort()
    await Promise.allSettled([...this.inFlight.values()])
  }

  stats (): CoordinatorExportStats {
    return {
      tracked: this.tracked.size,
      queued: this.queue.size,
      inFlight: this.inFlight.size,
      keptLive: this.keepLive.size,
      overCapacity: this.overCapacity,
      unreachable: this.unreachableSince != null,
      ...(this.unregisterRoute != null ? { unregisterRoute: this.unregisterRoute } : {}),
      sent: { ...this.sent },
      answers: { ...this.answers }
    }
  }

  /** The register body for an agent: its record's chain and island, else the configured ones. */
  registerBody (record: ExportedView): RegisterBody {
    return {
      agent_id: record.agent_id,
      agent_type: record.agent_type,
      capabilities: record.capabilities,
      services: record.services,
      endpoints: record.endpoints,
      metadata: record.metadata,
      ...(this.init.recordFields === 15 ? { chain_id: text(record.chain_id) ?? this.init.chainId, island_id: text(record.island_id) ?? this.init.islandId } : {})
    }
  }

  // ---- scheduling ----

  /** A fault in the export is logged, never thrown into the registry or a timer (which would end the daemon). */
  private guard (where: string, work: () => void): void {
    try {
      work()
    } catch (err) {
      this.log.error({ event: 'coordinator_export_error', where, err: errorMessage(err) }, 'the coordinator export failed a step; it goes on with the next')
    }
  }

  private enqueue (agentId: string): void {
    this.queue.add(agentId)
    this.schedule()
  }

  private schedule (): void {
    if (this.pumpScheduled || !this.running) return
    this.pumpScheduled = true
    setImmediate(() => {
      this.pumpScheduled = false
      this.guard('pump', () => { this.pump() })
    })
  }

  private wakeAt (at: number): void {
    if (at >= this.wakeAtMs) return
    clearTimeout(this.wakeTimer)
    this.wakeAtMs = at
    this.wakeTimer = setTimeout(() => {
      this.wakeAtMs = Infinity
      this.guard('pump', () => { this.pump() })
    }, Math.max(0, at - Date.now()))
    this.wakeTimer.unref()
  }

  /**
   * Sends what can be sent now, as far as each route's bucket allows: first agents whose keepalive
   * is due (a flood of load changes must not starve them into inactive), then the rest in queue order.
   */
  private pump (): void {
    if (!this.running) return
    const now = Date.now()
    if (now < this.pausedUntil) {
      this.wakeAt(this.pausedUntil)
      return
    }
    const due: Array<{ agentId: string, touchedAt: number }> = []
    const rest: string[] = []
    for (const agentId of this.queue) {
      const tracked = this.tracked.get(agentId)
      if (tracked?.presence === 'present' && this.keepLive.has(agentId) && now >= tracked.touchedAt + this.options.keepaliveIntervalMs) due.push({ agentId, touchedAt: tracked.touchedAt })
      else rest.push(agentId)
    }
    // Most overdue first.
    due.sort((a, b) => a.touchedAt - b.touchedAt)
    let wake = Infinity
    for (const agentId of due.map(d => d.agentId).concat(rest)) {
      if (this.inFlight.size >= this.options.maxInFlight) break
      if (this.inFlight.has(agentId)) continue
      const tracked = this.tracked.get(agentId)
      if (tracked != null && tracked.retryAt > now) {
        wake = Math.min(wake, tracked.retryAt)
        continue
      }
      const planned = this.plan(agentId, now)
      if (planned == null) {
        this.queue.delete(agentId)
        continue
      }
      let action = planned
      let wait = this.buckets[action.route].waitMs(now)
      // A change held back by its route's limit must not let the agent go inactive: its
      // keepalive goes ahead on its own route when that one has room.
      const keepalive = wait > 0 ? this.keepaliveFor(agentId, now) : null
      if (keepalive != null && keepalive.route !== action.route && this.buckets[keepalive.route].waitMs(now) === 0) {
        action = keepalive
        wait = 0
      }
      if (wait > 0) {
        wake = Math.min(wake, now + wait)
        continue
      }
      const bucket = this.buckets[action.route]
      bucket.take(now)
      const sending = this.send(agentId, action).catch(err => {
        this.log.error({ event: 'coordinator_export_error', where: 'send', agentId, err: errorMessage(err) }, 'the coordinator export failed a step; it goes on with the next')
      }).finally(() => {
        this.inFlight.delete(agentId)
        this.schedule()
      })
      this.inFlight.set(agentId, sending)
    }
    if (wake < Infinity) this.wakeAt(wake)
  }

  /**
   * The periodic pass: which live remote agents are kept live (most recently active first, up to
   * the capacity), and every agent whose coordinator copy is behind (status derived from time,
   * expiry, keepalive due, an agent gone) queued.
   */
  private reconcile (): void {
    if (!this.running) return
    const now = Date.now()
    const remote = this.init.source.current().filter(agent => agent.owner !== this.node)
    const candidates = remote
      .filter(agent => AGENT_TYPES.has(agent.record.agent_type) && agent.record.status !== 'inactive')
      .map(agent => ({ id: agent.record.agent_id, active: agent.record.status === 'active', heartbeat: Date.parse(agent.record.last_heartbeat) || 0 }))
      .sort((a, b) => b.heartbeat - a.heartbeat || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const keep = new Set<string>()
    let active = 0
    let nonActive = 0
    for (const candidate of candidates) {
      if (candidate.active ? active < this.capacity.active : nonActive < this.capacity.nonActive) {
        keep.add(candidate.id)
        if (candidate.active) active++
        else nonActive++
      }
    }
    this.keepLive = keep
    this.noteCapacity(candidates.length, keep.size)
    const seen = new Set<string>()
    for (const agent of remote) {
      seen.add(agent.record.agent_id)
      if (!this.inFlight.has(agent.record.agent_id) && this.plan(agent.record.agent_id, now) != null) this.queue.add(agent.record.agent_id)
    }
    for (const agentId of this.tracked.keys()) {
      if (!seen.has(agentId) && !this.inFlight.has(agentId) && this.plan(agentId, now) != null) this.queue.add(agentId)
    }
    if (this.queue.size > 0) this.schedule()
  }

  private noteCapacity (live: number, kept: number): void {
    const over = live - kept
    if (over > 0 && this.overCapacity === 0) {
      this.log.warn({
        event: 'coordinator_export_over_capacity', liveRemoteAgents: live, keptLive: kept, maxLiveAgents: this.capacity.active,
        maxLiveNonActiveAgents: this.capacity.nonActive, keepaliveIntervalMs: this.options.keepaliveIntervalMs
      }, 'more live remote agents than the coordinator\'s heartbeat limit can keep live: the most recently active are kept live, the rest show inactive in the coordinator')
    } else if (over === 0 && this.overCapacity > 0) {
      this.log.info({ event: 'coordinator_export_within_capacity', liveRemoteAgents: live }, 'every live remote agent is kept live in the coordinator again')
    }
    this.overCapacity = Math.max(0, over)
  }

  // ---- what to send ----

  /** The next request for one agent, from its current view and what the coordinator has; null: nothing. */
  private plan (agentId: string, now: number): Action | null {
    let tracked = this.tracked.get(agentId)
    const current = this.init.source.get(agentId)
    if (current == null || current.owner === this.node) {
      // Gone from the mesh (removed or expired): take it out of the coordinator. Now owned here:
      // it is the coordinator's own or reaches it through Redis, so it is left alone.
      if (tracked == null) return null
      if (current != null || tracked.presence === 'absent') {
        this.tracked.delete(agentId)
        return null
      }
      return this.removal(tracked)
    }
    const record = current.record
    if (!AGENT_TYPES.has(record.agent_type)) {
      if (tracked?.unexportableType !== record.agent_type) {
        this.refusals.reject('coordinator_export_skipped', current.owner, 'agent-type-not-accepted', { agentId, agentType: record.agent_type, accepted: COORDINATOR_AGENT_TYPES }, 'an agent of this type cannot be registered in the coordinator; it is not exported')
      }
      if (tracked != null && tracked.presence !== 'absent' && tracked.registerKey != null) return this.removal(tracked)
      this.tracked.set(agentId, { presence: 'absent', touchedAt: 0, attempts: 0, retryAt: 0, unexportableType: record.agent_type })
      return null
    }
    if (tracked == null) {
      tracked = { presence: 'unknown', touchedAt: 0, attempts: 0, retryAt: 0 }
      this.tracked.set(agentId, tracked)
    }
    delete tracked.unexportableType
    if (tracked.presence === 'unknown') return { route: 'lookup' }
    // Inactive in the mesh and not in the coordinator: registering would show it active.
    if (tracked.presence === 'absent' && record.status === 'inactive') return null
    const body = this.registerBody(record)
    const key = canonical([body.agent_type, body.capabilities, body.services, body.endpoints, body.metadata, body.chain_id ?? null, body.island_id ?? null])
    // The coordinator merges load metrics: one that is no longer reported is cleared by registering anew.
    const loadDropped = tracked.load != null && Object.keys(tracked.load).some(k => !(k in record.load_metrics))
    if (tracked.presence === 'absent' || key !== tracked.registerKey || loadDropped) {
      return tracked.refusedRegister === key ? null : { route: 'register', key, body }
    }
    if (record.status !== tracked.status || !sameLoad(record.load_metrics, tracked.load)) {
      const statusKey = canonical([record.status, record.load_metrics])
      if (tracked.refusedStatus !== statusKey) return { route: 'status', status: record.status, load: record.load_metrics, key: statusKey, purpose: 'change' }
    }
    return this.keepalive(agentId, record, tracked, now)
  }

  /** The keepalive of a remote agent kept live, once due; null otherwise. */
  private keepaliveFor (agentId: string, now: number): Action | null {
    const tracked = this.tracked.get(agentId)
    const current = this.init.source.get(agentId)
    return tracked != null && current != null ? this.keepalive(agentId, current.record, tracked, now) : null
  }

  private keepalive (agentId: string, record: ExportedView, tracked: Tracked, now: number): Action | null {
    if (tracked.presence !== 'present' || !this.keepLive.has(agentId) || record.status === 'inactive' || now < tracked.touchedAt + this.options.keepaliveIntervalMs) return null
    // The coordinator's heartbeat sets an agent active: one that is not (there and here) is kept
    // live by a status update with its status instead.
    return record.status === 'active' || tracked.status === 'active'
      ? { route: 'heartbeat' }
      : { route: 'status', status: record.status, load: record.load_metrics, key: canonical([record.status, record.load_metrics]), purpose: 'keepalive' }
  }

  /**
   * DELETE where the coordinator has it; otherwise marked inactive (it drops inactive agents an
   * hour later). Its status update of an agent it does not know fails (500), so ask first if unsure.
   */
  private removal (tracked: Tracked): Action {
    if (this.unregisterRoute !== false) return { route: 'unregister' }
    if (tracked.presence === 'unknown') return { route: 'lookup' }
    return { route: 'status', status: 'inactive', load: {}, key: '', purpose: 'retire' }
  }

  // ---- sending and answers ----

  private async send (agentId: string, action: Action): Promise<void> {
    const path = `/v1/agents/${encodeURIComponent(agentId)}`
    this.sent[action.route]++
    let answer: CoordinatorAnswer
    try {
      switch (action.route) {
        case 'lookup': answer = await this.client.request('GET', path); break
        case 'register': answer = await this.client.request('POST', '/v1/agents/register', action.body); break
        case 'status': answer = await this.client.request('PUT', `${path}/status`, { status: action.status, load_metrics: action.load }); break
        case 'heartbeat': answer = await this.client.request('POST', `${path}/heartbeat`); break
        case 'unregister': answer = await this.client.request('DELETE', path); break
      }
    } catch (err) {
      if (!this.running) return
      this.answers.unreachable++
      this.noteUnreachable(err)
      return
    }
    if (!this.running) return
    this.noteReachable()
    const now = Date.now()
    if (answer.status === 429) {
      this.answers[429]++
      const wait = answer.retryAfterMs ?? 0
      this.buckets[action.route].pause(now + wait)
      this.refusals.reject('coordinator_export_throttled', 'coordinator', action.route, { agentId, retryAfterMs: wait }, 'the coordinator asked the export to slow down; waiting as it asked')
      return
    }
    const klass = answer.status >= 200 && answer.status < 300 ? '2xx' : answer.status === 404 ? '404' : answer.status >= 500 ? '5xx' : '4xx'
    this.answers[klass]++
    const tracked = this.tracked.get(agentId)
    if (tracked == null) return
    if (klass === '5xx') {
      // A status update of an agent it does not know is a 500 there: ask whether it has it.
      if (action.route === 'status') tracked.presence = 'unknown'
      tracked.attempts++
      tracked.retryAt = now + this.backoff(tracked.attempts)
      this.refusals.reject('coordinator_export_failed', 'coordinator', `${action.route}-server-error`, { agentId, status: answer.status, detail: detailOf(answer.body), attempt: tracked.attempts }, 'the coordinator failed an export request; retrying with backoff')
      return
    }
    tracked.attempts = 0
    tracked.retryAt = 0
    switch (action.route) {
      case 'lookup':
        if (klass === '2xx' && isRecord(answer.body) && isRecord(answer.body.agent)) this.adopt(tracked, answer.body.agent)
        else {
          if (klass === '4xx') this.refused(agentId, action.route, answer)
          tracked.presence = 'absent'
        }
        return
      case 'register':
        if (klass === '2xx') {
          Object.assign(tracked, { presence: 'present', registerKey: action.key, status: 'active', load: {}, touchedAt: now })
          delete tracked.refusedRegister
          delete tracked.refusedStatus
        } else {
          tracked.refusedRegister = action.key
          this.refused(agentId, action.route, answer)
        }
        return
      case 'status':
        if (action.purpose === 'retire') {
          if (klass === '4xx') this.refused(agentId, action.route, answer)
          this.tracked.delete(agentId)
          return
        }
        if (klass === '2xx') {
          tracked.status = action.status
          tracked.load = { ...tracked.load, ...action.load }
          tracked.touchedAt = now
          delete tracked.refusedStatus
        } else if (klass === '404') {
          tracked.presence = 'absent'
        } else {
          if (action.purpose === 'change') tracked.refusedStatus = action.key
          else tracked.touchedAt = now
          this.refused(agentId, action.route, answer)
        }
        return
      case 'heartbeat':
        if (klass === '2xx') {
          tracked.status = 'active'
          tracked.touchedAt = now
        } else if (klass === '404') {
          tracked.presence = 'absent'
        } else {
          tracked.touchedAt = now
          this.refused(agentId, action.route, answer)
        }
        return
      case 'unregister':
        if (answer.status === 405) {
          this.unregisterRoute = false
          this.log.info({ event: 'coordinator_no_unregister_route' }, 'the coordinator has no DELETE /v1/agents/{id}: agents removed from the mesh are marked inactive there instead (it drops them an hour later)')
          return
        }
        this.unregisterRoute = true
        if (klass === '4xx') this.refused(agentId, action.route, answer)
        this.tracked.delete(agentId)
    }
  }

  /** The coordinator's copy, as a lookup answered it. */
  private adopt (tracked: Tracked, agent: Record<string, unknown>): void {
    const load: Record<string, number> = {}
    if (isRecord(agent.load_metrics)) for (const [k, v] of Object.entries(agent.load_metrics)) if (typeof v === 'number') load[k] = v
    tracked.presence = 'present'
    tracked.registerKey = canonical([agent.agent_type, agent.capabilities, agent.services, agent.endpoints, agent.metadata,
      this.init.recordFields === 15 ? agent.chain_id ?? null : null, this.init.recordFields === 15 ? agent.island_id ?? null : null])
    tracked.status = typeof agent.status === 'string' ? agent.status : undefined
    tracked.load = load
    tracked.touchedAt = coordinatorTime(agent.last_heartbeat)
  }

  private refused (agentId: string, route: ExportRoute, answer: CoordinatorAnswer): void {
    this.refusals.reject('coordinator_export_refused', 'coordinator', `${route}-${answer.status}`, { agentId, status: answer.status, detail: detailOf(answer.body) }, 'the coordinator refused an export request; this change is dropped')
  }

  private backoff (attempt: number): number {
    const base = Math.min(this.options.retryMaxMs, this.options.retryInitialMs * 2 ** Math.min(attempt - 1, 20))
    return Math.round(base / 2 + Math.random() * base / 2)
  }

  private noteUnreachable (err: unknown): void {
    const now = Date.now()
    if (this.unreachableSince == null) {
      this.unreachableSince = now
      this.log.warn({ event: 'coordinator_unreachable', url: this.client.baseUrl, reason: err instanceof CoordinatorUnreachable ? err.reason : 'connection', err: errorMessage(err) }, 'the agent coordinator does not answer; the export retries with backoff')
    }
    if (now >= this.pausedUntil) {
      this.unreachableAttempts++
      this.pausedUntil = now + this.backoff(this.unreachableAttempts)
    }
  }

  private noteReachable (): void {
    if (this.unreachableSince == null) return
    this.log.info({ event: 'coordinator_reachable', url: this.client.baseUrl, downMs: Date.now() - this.unreachableSince }, 'the agent coordinator answers again')
    delete this.unreachableSince
    this.unreachableAttempts = 0
    this.pausedUntil = 0
  }
}

function detailOf (body: unknown): string | undefined {
  if (!isRecord(body)) return undefined
  const detail = body.detail
  const textOf = typeof detail === 'string' ? detail : detail != null ? JSON.stringify(detail) : undefined
  return textOf?.slice(0, 300)
}
