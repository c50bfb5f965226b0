import { accessSync, constants as fsConstants } from 'node:fs'
import type { Logger } from 'pino'
import type { MeshConfig } from '../config/config.js'
import {
  LAG_THRESHOLD_BLOCKS, MEMPOOL_PROBE_LIMIT, NO_BLOCK_RECHECK_MAX_MS, PROBE_BUDGET_WINDOW_MS,
  PROBE_RPC_BUDGET_PER_MINUTE, PROBE_STALE_AFTER_INTERVALS, RATE_LIMIT_MAX_BACKOFF_MS
} from '../constants.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { BlockchainRpc, type ProbeFailure, type ProbeResult } from './probes/rpc.js'
import { formatUptime, readUnitState } from './probes/systemd.js'
import type { ChainReport, HealthCheck, NodeReport, StoreReport } from './report.js'

/** The `probes:` section; a reload replaces it through LocalProbes.setProbes. */
export type ProbeSettings = MeshConfig['probes']

/** One chain's reading; `chain` null: the RPC's default chain, read without a chain id. */
interface ChainReading extends ChainReport {
  chain: string | null
  /** /rpc/head answered 404 (now, or at the last ask while the periodic probe waits). */
  noBlock: boolean
  /** When these values were read (older than the probe when carried over a rate limit). */
  readAt: number | null
}

interface ProbeSnapshot {
  at: number
  chains: ChainReading[]
  serviceUptime: string | null
  /** Failures of configured probes: each makes the node degraded. */
  failures: string[]
  /** Issues that do not make the node degraded: not configured, no block yet, rate-limited, capped counts. */
  notes: string[]
  checks: HealthCheck[]
}

interface NoBlockState {
  delayMs: number
  nextHeadAt: number
}

interface RateLimit {
  reason: string
  until: number
  delayMs: number
}

type ProbeKind = 'periodic' | 'fresh'

export interface LocalProbesInit {
  config: MeshConfig
  peers: PeerTable
  connectedPeers: () => number
  startedAt: number
  lastSync?: () => number | null
  storeHealth?: () => { ok: boolean, reason?: string }
  /** The store's durability; `issue` set when it makes the node degraded (store.durability: degraded). */
  storeDurability?: () => { report: StoreReport, issue?: string }
  log?: Logger
}

/** The store_durability check: failed only when it makes the node degraded (the issue says why and how to fix it). */
function durabilityCheck (store: StoreReport, issue: string | undefined): HealthCheck {
  const { level, guarantee } = store.durability
  return { name: 'store_durability', ok: issue == null, detail: issue ?? `${level}: ${guarantee}`, state: issue == null ? 'ok' : 'failed' }
}

/** A wait still to run, rounded up. */
function secondsLeft (ms: number): string {
  return `${Math.max(0, Math.ceil(ms / 1000))} s`
}

/** An age, rounded down. */
function secondsAgo (ms: number): string {
  return `${Math.max(0, Math.floor(ms / 1000))} s`
}

/**
 * Runs this node's own probes (blockchain RPC, systemd units, mesh connectivity) and turns them
 * into the node's report. The daemon probes every `probes.intervalMs`; status answers from that
 * snapshot and says how old it is; health probes afresh while the calls of the last minute leave
 * room in PROBE_RPC_BUDGET_PER_MINUTE, and answers from the last probe beyond that, so the RPC's
 * per-client rate limit is never approached. After HTTP 429 the RPC is left alone until its
 * Retry-After has passed.
 */
export class LocalProbes {
  private snapshot?: ProbeSnapshot
  private inFlight?: Promise<ProbeSnapshot>
  private lastProbeStartedAt = 0
  /** Start times of health's fresh probes within the budget window. */
  private readonly freshProbeStarts: number[] = []
  private rpc?: BlockchainRpc
  private discoveredChain?: string
  /** Last values read per chain key ("" for the default chain), carried over a rate limit. */
  private readonly lastReadings = new Map<string, ChainReading>()
  private readonly noBlock = new Map<string, NoBlockState>()
  private rateLimit?: RateLimit
  private timer?: NodeJS.Timeout
  private stopped = false
  private probes: ProbeSettings

  constructor (private readonly init: LocalProbesInit) {
    this.probes = init.config.probes
  }

  /** Probes every probes.intervalMs. */
  start (): void {
    this.stopped = false
    this.schedule()
  }

  private schedule (): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      void this.periodic().catch(() => {}).finally(() => { this.schedule() })
    }, this.probes.intervalMs)
    this.timer.unref()
  }

  /**
   * A reload's new `probes:`. A moved RPC gets a new client (rpcFor drops what the old one read);
   * a probe runs at once, after any in flight, so status shows the new settings without waiting
   * out the interval; the timer restarts with the new interval.
   */
  setProbes (probes: ProbeSettings): void {
    this.probes = probes
    if (this.timer == null || this.stopped) return
    void (this.inFlight ?? Promise.resolve()).catch(() => {})
      .then(async () => { await this.probeNow() })
      .catch(() => {})
      .finally(() => { this.schedule() })
  }

  /** One probe now (at start, so the first heartbeat and status have values). */
  async probeNow (): Promise<void> {
    this.freshProbeStarts.push(Date.now())
    await this.run('fresh')
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /** The latest verdict without probing, for heartbeats. */
  latest (): { healthy: boolean, blockHeight?: number } {
    const snap = this.snapshot
    if (snap == null) return { healthy: true }
    const height = snap.chains[0]?.block_height ?? null
    const healthy = snap.failures.length === 0 && this.lagIssue(snap) == null && this.staleIssue(snap) == null && this.init.storeDurability?.().issue == null
    return { healthy, ...(height != null ? { blockHeight: height } : {}) }
  }

  /** Status answers from the last probe (its age in the report); health probes afresh, spaced. */
  async reportFor (kind: 'status' | 'health'): Promise<NodeReport> {
    const snap = kind === 'status' && this.snapshot != null ? this.snapshot : await this.fresh()
    return this.toReport(snap)
  }

  /**
   * A probe for health: the one in flight, or a new one while the budget allows; else the last
   * one (the report's probed_at says when it ran).
   */
  private async fresh (): Promise<ProbeSnapshot> {
    if (this.inFlight != null) return await this.inFlight
    if (this.snapshot != null && !this.budgetAllowsFreshProbe()) return this.snapshot
    this.freshProbeStarts.push(Date.now())
    return await this.run('fresh')
  }

  /**
   * Fresh probes in the last minute, each making one call per chain to each RPC handler, stay
   * within PROBE_RPC_BUDGET_PER_MINUTE less what the periodic probes take; with them, this node
   * never makes more than the budget of calls a minute to a handler.
   */
  private budgetAllowsFreshProbe (): boolean {
    const { chainIds, intervalMs } = this.probes
    const chains = Math.max(1, chainIds.length)
    const now = Date.now()
    while (this.freshProbeStarts.length > 0 && this.freshProbeStarts[0]! <= now - PROBE_BUDGET_WINDOW_MS) this.freshProbeStarts.shift()
    const periodic = chains * Math.ceil(PROBE_BUDGET_WINDOW_MS / intervalMs)
    return (this.freshProbeStarts.length + 1) * chains + periodic <= PROBE_RPC_BUDGET_PER_MINUTE
  }

  /** The timer's probe, skipped when a health probe ran within the last half interval. */
  private async periodic (): Promise<void> {
    if (this.inFlight != null) return
    if (this.snapshot != null && Date.now() - this.lastProbeStartedAt < this.probes.intervalMs / 2) return
    await this.run('periodic')
  }

  private async run (kind: ProbeKind): Promise<ProbeSnapshot> {
    this.inFlight ??= this.probe(kind).then(result => {
      this.snapshot = result
      return result
    }).finally(() => { delete this.inFlight })
    return await this.inFlight
  }

  private toReport (snap: ProbeSnapshot): NodeReport {
    const { config, peers } = this.init
    const name = config.node.name
    const failures = [...snap.failures]
    const lag = this.lagIssue(snap)
    if (lag != null) failures.push(lag)
    const stale = this.staleIssue(snap)
    if (stale != null) failures.push(stale)
    const durability = this.init.storeDurability?.()
    if (durability?.issue != null) failures.push(durability.issue)
    const connected = this.init.connectedPeers()
    const meshOk = peers.all().length === 0 || connected > 0
    const checks: HealthCheck[] = [
      ...snap.checks,
      ...(stale != null ? [{ name: 'probes', ok: false, detail: stale, state: 'stale' as const }] : []),
      {
        name: 'mesh',
        ok: meshOk,
        detail: `${connected} of ${peers.all().length} configured peers connected`,
        state: meshOk ? 'ok' : 'failed'
      },
      { name: 'block_lag', ok: lag == null, detail: lag ?? 'within ' + LAG_THRESHOLD_BLOCKS + ' blocks of the highest peer', state: lag == null ? 'ok' : 'failed' },
      ...(durability != null ? [durabilityCheck(durability.report, durability.issue)] : []),
      { name: 'daemon', ok: true, detail: `up ${formatUptime((Date.now() - this.init.startedAt) / 1000)}`, state: 'ok' }
    ]
    const first = snap.chains[0]
    const chains: Record<string, ChainReport> = {}
    for (const c of snap.chains) {
      if (c.chain != null) chains[c.chain] = { block_height: c.block_height, mempool_size: c.mempool_size, mempool_at_least: c.mempool_at_least }
    }
    return {
      node: name,
      role: config.node.role,
      status: failures.length === 0 ? 'online' : 'degraded',
      block_height: first?.block_height ?? null,
      mempool_size: first?.mempool_size ?? null,
      p2p_connections: connected,
      service_uptime: snap.serviceUptime,
      last_sync: this.init.lastSync?.() ?? null,
      issues: [...failures, ...snap.notes].map(text => `${name}: ${text}`),
      checks,
      daemon_uptime_ms: Date.now() - this.init.startedAt,
      probed_at_ms: snap.at,
      chains,
      store: durability?.report ?? null
    }
  }

  /** Only while the daemon probes on its timer: a one-off probe is never stale. */
  private staleIssue (snap: ProbeSnapshot): string | undefined {
    if (this.timer == null || this.stopped) return undefined
    const interval = this.probes.intervalMs
    const age = Date.now() - snap.at
    if (age <= PROBE_STALE_AFTER_INTERVALS * interval) return undefined
    return `probes: last probe ${secondsAgo(age)} ago, more than ${PROBE_STALE_AFTER_INTERVALS} intervals of ${interval} ms (probes.intervalMs); the values are stale`
  }

  private lagIssue (snap: ProbeSnapshot): string | undefined {
    const first = snap.chains[0]
    // No block yet counts as behind every peer that has blocks.
    const own = first?.block_height ?? (first?.noBlock === true ? -1 : null)
    if (own == null) return undefined
    const highest = this.init.peers.highestPeerHeight()
    if (highest == null || highest.height - own <= LAG_THRESHOLD_BLOCKS) return undefined
    if (own < 0) return `block_height: no block yet while ${highest.name} is at ${highest.height}`
    return `block_height: lagging ${highest.height - own} blocks behind ${highest.name} (${highest.height})`
  }

  private rpcFor (url: string): BlockchainRpc {
    if (this.rpc?.baseUrl !== url) {
      this.rpc = new BlockchainRpc(url)
      this.lastReadings.clear()
      this.noBlock.clear()
      delete this.rateLimit
      delete this.discoveredChain
    }
    return this.rpc
  }

  private async probe (kind: ProbeKind): Promise<ProbeSnapshot> {
    this.lastProbeStartedAt = Date.now()
    const probes = this.probes
    const { dataDir } = this.init.config
    const failures: string[] = []
    const notes: string[] = []
    const checks: HealthCheck[] = []
    let serviceUptime: string | null = null

    const units = probes.services
    const [chains, unitStates] = await Promise.all([
      this.probeRpc(kind, failures, notes, checks),
      Promise.all(units.map(async unit => await readUnitState(unit)))
    ])

    if (units.length === 0) {
      notes.push('service_uptime: not probed (probes.service is not configured)')
      checks.push({ name: 'service', ok: true, detail: 'not configured (probes.service)', state: 'not-configured' })
    }
    units.forEach((unit, i) => {
      const unitState = unitStates[i]!
      if (!unitState.ok) {
        failures.push(`service_uptime: ${unitState.reason}`)
        checks.push({ name: 'service', ok: false, detail: unitState.reason, state: 'failed' })
        return
      }
      const state = unitState.value
      if (state.activeState === 'active' && state.uptimeSeconds != null) {
        const uptime = formatUptime(state.uptimeSeconds)
        if (i === 0) serviceUptime = uptime
        checks.push({ name: 'service', ok: true, detail: `${unit} active (${state.subState}) for ${uptime}`, state: 'ok' })
      } else {
        const reason = `${unit} is ${state.activeState}${state.subState !== '' ? ` (${state.subState})` : ''}`
        failures.push(`service_uptime: ${reason}`)
        checks.push({ name: 'service', ok: false, detail: reason, state: 'failed' })
      }
    })

    const store = this.init.storeHealth?.()
    if (store != null) {
      if (store.ok) checks.push({ name: 'store', ok: true, detail: this.init.config.redisUrl != null ? 'Redis reachable' : 'embedded store', state: 'ok' })
      else {
        failures.push(`store: ${store.reason ?? 'unavailable'}`)
        checks.push({ name: 'store', ok: false, detail: store.reason ?? 'unavailable', state: 'failed' })
      }
    }

    try {
      accessSync(dataDir, fsConstants.W_OK)
      checks.push({ name: 'data_dir', ok: true, detail: `${dataDir} writable`, state: 'ok' })
    } catch (err) {
      const reason = `${dataDir} is not writable: ${(err as Error).message}`
      failures.push(`data_dir: ${reason}`)
      checks.push({ name: 'data_dir', ok: false, detail: reason, state: 'failed' })
    }

    return { at: Date.now(), chains, serviceUptime, failures, notes, checks }
  }

  /** The RPC part of a probe: /health, then per chain /rpc/head and /rpc/mempool. */
  private async probeRpc (kind: ProbeKind, failures: string[], notes: string[], checks: HealthCheck[]): Promise<ChainReading[]> {
    const probes = this.probes
    if (probes.rpc == null) {
      notes.push('block_height, mempool_size: not probed (probes.rpc is not configured)')
      checks.push({ name: 'rpc', ok: true, detail: 'not configured (probes.rpc)', state: 'not-configured' })
      return []
    }
    const rpc = this.rpcFor(probes.rpc)
    if (this.waitingOutRateLimit()) return this.rateLimitedReadings(notes, checks)

    const health = await rpc.health()
    if (!health.ok && health.state === 'rate-limited') {
      this.enterRateLimit(health)
      return this.rateLimitedReadings(notes, checks)
    }
    if (health.ok) {
      checks.push({ name: 'rpc', ok: true, detail: `GET /health: ${health.value.status}${health.value.supportedChains != null ? `, chains ${health.value.supportedChains.join(', ') || '(none)'}` : ''}`, state: 'ok' })
      const discovered = health.value.supportedChains?.[0]
      if (discovered != null && discovered !== this.discoveredChain) {
        this.init.log?.info({ event: 'rpc_chain_discovered', chain: discovered, supported: health.value.supportedChains }, 'probing the first chain the RPC supports (set probes.chainId to choose)')
        this.discoveredChain = discovered
      }
    } else {
      failures.push(`rpc health: ${health.reason}`)
      checks.push({ name: 'rpc', ok: false, detail: health.reason, state: 'failed' })
    }

    // Which chains: configured, else discovered; an RPC that lists no chains (older releases)
    // is read without a chain id; a chain we cannot name gets no mempool count (it would be 0).
    const configured = probes.chainIds
    const legacy = configured.length === 0 && this.discoveredChain == null && health.ok && health.value.supportedChains === null
    const chains: Array<string | null> = configured.length > 0 ? configured : [this.discoveredChain ?? null]
    const now = Date.now()
    const readings = await Promise.all(chains.map(async chain => {
      const key = chain ?? ''
      const waiting = this.noBlock.get(key)
      const skipHead = kind === 'periodic' && waiting != null && now < waiting.nextHeadAt
      const countMempool = chain != null || legacy
      const [head, mempool] = await Promise.all([
        skipHead ? undefined : rpc.head(chain ?? undefined),
        countMempool ? rpc.mempoolSize(chain ?? undefined, MEMPOOL_PROBE_LIMIT) : undefined
      ])
      return { chain, key, head, mempool, waiting, countMempool }
    }))

    const limited = readings.flatMap(r => [r.head, r.mempool]).find((r): r is ProbeFailure => r != null && !r.ok && r.state === 'rate-limited')
    if (limited != null) {
      this.enterRateLimit(limited)
      // Values read in this round still count; the others are carried over.
      for (const r of readings) this.keep(r.key, r.chain, r.head, r.mempool)
      // /health answered, but the rpc check is the rate limit now.
      const answered = checks.findIndex(c => c.name === 'rpc' && c.state === 'ok')
      if (answered >= 0) checks.splice(answered, 1)
      return this.rateLimitedReadings(notes, checks)
    }
    if (this.rateLimit != null) {
      this.init.log?.info({ event: 'rpc_rate_limit_over' }, 'the blockchain RPC answers again')
      delete this.rateLimit
    }

    const interval = probes.intervalMs
    const result: ChainReading[] = []
    for (const { chain, key, head, mempool, waiting, countMempool } of readings) {
      const label = chain ?? 'the default chain'
      const reading: ChainReading = { chain, block_height: null, mempool_size: null, mempool_at_least: false, noBlock: false, readAt: Date.now() }
      if (head == null || (!head.ok && head.state === 'no-block')) {
        reading.noBlock = true
        let state = waiting
        if (head != null) {
          if (state == null) this.init.log?.info({ event: 'rpc_no_block_yet', chain: label }, 'the chain has no block yet; asking for its head less often until it has one')
          const delayMs = Math.min(NO_BLOCK_RECHECK_MAX_MS, state == null ? 2 * interval : state.delayMs * 2)
          state = { delayMs, nextHeadAt: Date.now() + delayMs }
          this.noBlock.set(key, state)
        }
        const detail = `no block yet on ${label} (GET /rpc/head answers 404 before the first block); asked again within ${secondsLeft((state?.nextHeadAt ?? Date.now()) - Date.now())}`
        notes.push(`block_height: ${detail}`)
        checks.push({ name: 'block_height', ok: true, detail, state: 'no-block' })
      } else if (head.ok) {
        if (waiting != null) this.init.log?.info({ event: 'rpc_first_block', chain: label, height: head.value }, 'the chain has its first block')
        this.noBlock.delete(key)
        reading.block_height = head.value
        checks.push({ name: 'block_height', ok: true, detail: `${chain != null ? `${chain}: ` : ''}height ${head.value}`, state: 'ok' })
      } else {
        failures.push(`block_height: ${head.reason}`)
        checks.push({ name: 'block_height', ok: false, detail: head.reason, state: 'failed' })
      }

      if (!countMempool) {
        const why = 'mempool_size: not probed: the chain is unknown (probes.chainId is not set and GET /health did not list supported_chains); without chain_id the RPC counts no chain'
        notes.push(why)
        checks.push({ name: 'mempool', ok: true, detail: why, state: 'not-configured' })
      } else if (mempool?.ok === true) {
        reading.mempool_size = mempool.value.count
        reading.mempool_at_least = mempool.value.atLeast
        const count = `${mempool.value.atLeast ? 'at least ' : ''}${mempool.value.count} transactions`
        if (mempool.value.atLeast) notes.push(`mempool_size: at least ${mempool.value.count} pending on ${label} (counted up to ${MEMPOOL_PROBE_LIMIT}, the probe's limit)`)
        checks.push({ name: 'mempool', ok: true, detail: `${chain != null ? `${chain}: ` : ''}${count}`, state: 'ok' })
      } else if (mempool != null && !mempool.ok) {
        failures.push(`mempool_size: ${mempool.reason}`)
        checks.push({ name: 'mempool', ok: false, detail: mempool.reason, state: 'failed' })
      }
      this.lastReadings.set(key, reading)
      result.push(reading)
    }
    return result
  }

  private waitingOutRateLimit (): boolean {
    return this.rateLimit != null && Date.now() < this.rateLimit.until
  }

  private enterRateLimit (failure: ProbeFailure): void {
    const interval = this.probes.intervalMs
    const previous = this.rateLimit
    // A Retry-After of 0 still waits a second: the RPC just said no.
    const delayMs = failure.retryAfterMs != null ? Math.max(1000, failure.retryAfterMs) : Math.min(RATE_LIMIT_MAX_BACKOFF_MS, previous == null ? 2 * interval : previous.delayMs * 2)
    this.rateLimit = { reason: failure.reason, until: Date.now() + delayMs, delayMs }
    if (previous == null) this.init.log?.warn({ event: 'rpc_rate_limited', reason: failure.reason, waitMs: delayMs }, 'the blockchain RPC rate-limits this node; not calling it until the wait is over')
  }

  /** Keeps what a rate-limited round did read, over the last reading of that chain. */
  private keep (key: string, chain: string | null, head: ProbeResult<number> | undefined, mempool: ProbeResult<{ count: number, atLeast: boolean }> | undefined): void {
    const last = this.lastReadings.get(key)
    const next: ChainReading = last != null ? { ...last } : { chain, block_height: null, mempool_size: null, mempool_at_least: false, noBlock: false, readAt: null }
    if (head?.ok === true) next.block_height = head.value
    if (mempool?.ok === true) {
      next.mempool_size = mempool.value.count
      next.mempool_at_least = mempool.value.atLeast
    }
    if (head?.ok === true || mempool?.ok === true) next.readAt = Date.now()
    this.lastReadings.set(key, next)
  }

  /** While rate-limited: the last values read, with a note saying so; the node stays online. */
  private rateLimitedReadings (notes: string[], checks: HealthCheck[]): ChainReading[] {
    const limit = this.rateLimit!
    const { chainIds } = this.probes
    const keys = chainIds.length > 0 ? chainIds : [this.discoveredChain ?? '']
    const readings = keys.map(key => this.lastReadings.get(key) ?? { chain: key === '' ? null : key, block_height: null, mempool_size: null, mempool_at_least: false, noBlock: false, readAt: null })
    const readAt = readings.map(r => r.readAt).filter((t): t is number => t != null)
    const values = readAt.length === 0 ? 'no values read yet' : `values from ${secondsAgo(Date.now() - Math.min(...readAt))} ago`
    const detail = `${limit.reason}; not called again for ${secondsLeft(limit.until - Date.now())}; ${values}`
    notes.push(`rpc: rate-limited: ${detail}`)
    checks.push({ name: 'rpc', ok: true, detail, state: 'rate-limited' })
    return readings
  }
}
