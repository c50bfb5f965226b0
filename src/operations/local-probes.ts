import { accessSync, constants as fsConstants } from 'node:fs'
import type { MeshConfig } from '../config/config.js'
import { LAG_THRESHOLD_BLOCKS, MEMPOOL_PROBE_LIMIT, PROBE_MAX_AGE_MS } from '../constants.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { BlockchainRpc } from './probes/rpc.js'
import { formatUptime, readUnitState } from './probes/systemd.js'
import type { HealthCheck, NodeReport } from './report.js'

interface ProbeSnapshot {
  at: number
  blockHeight: number | null
  mempoolSize: number | null
  serviceUptime: string | null
  /** Failures of configured probes: each makes the node degraded. */
  failures: string[]
  /** Values not probed because nothing is configured for them. */
  notConfigured: string[]
  checks: HealthCheck[]
}

export interface LocalProbesInit {
  config: MeshConfig
  peers: PeerTable
  connectedPeers: () => number
  startedAt: number
  lastSync?: () => number | null
  storeHealth?: () => { ok: boolean, reason?: string }
}

/**
 * Runs this node's own probes (blockchain RPC, systemd unit, mesh connectivity) and turns them
 * into the node's report. Concurrent callers share one probe run; a fresh enough snapshot is
 * reused so a burst of status requests does not hammer the RPC or fork systemctl each time.
 */
export class LocalProbes {
  private snapshot?: ProbeSnapshot
  private inFlight?: Promise<ProbeSnapshot>
  private readonly rpc?: BlockchainRpc

  constructor (private readonly init: LocalProbesInit) {
    if (init.config.probes.rpc != null) this.rpc = new BlockchainRpc(init.config.probes.rpc)
  }

  /** The latest verdict without probing, for heartbeats. */
  latest (): { healthy: boolean, blockHeight?: number } {
    const snap = this.snapshot
    if (snap == null) return { healthy: true }
    return { healthy: snap.failures.length === 0 && this.lagIssue(snap) == null, ...(snap.blockHeight != null ? { blockHeight: snap.blockHeight } : {}) }
  }

  async refresh (maxAgeMs: number): Promise<ProbeSnapshot> {
    const snap = this.snapshot
    if (snap != null && Date.now() - snap.at <= maxAgeMs) return snap
    if (this.inFlight == null) {
      this.inFlight = this.probe().then(result => {
        this.snapshot = result
        return result
      }).finally(() => { delete this.inFlight })
    }
    return await this.inFlight
  }

  /** Health runs fresh probes; status may answer from a snapshot at most PROBE_MAX_AGE_MS old. */
  async reportFor (kind: 'status' | 'health'): Promise<NodeReport> {
    return await this.report(kind === 'health' ? 0 : PROBE_MAX_AGE_MS)
  }

  async report (maxAgeMs: number): Promise<NodeReport> {
    const snap = await this.refresh(maxAgeMs)
    const { config, peers } = this.init
    const name = config.node.name
    const failures = [...snap.failures]
    const lag = this.lagIssue(snap)
    if (lag != null) failures.push(lag)
    const connected = this.init.connectedPeers()
    const checks: HealthCheck[] = [
      ...snap.checks,
      {
        name: 'mesh',
        ok: peers.all().length === 0 || connected > 0,
        detail: `${connected} of ${peers.all().length} configured peers connected`
      },
      { name: 'block_lag', ok: lag == null, detail: lag ?? 'within ' + LAG_THRESHOLD_BLOCKS + ' blocks of the highest peer' },
      { name: 'daemon', ok: true, detail: `up ${formatUptime((Date.now() - this.init.startedAt) / 1000)}` }
    ]
    return {
      node: name,
      role: config.node.role,
      status: failures.length === 0 ? 'online' : 'degraded',
      block_height: snap.blockHeight,
      mempool_size: snap.mempoolSize,
      p2p_connections: connected,
      service_uptime: snap.serviceUptime,
      last_sync: this.init.lastSync?.() ?? null,
      issues: [...failures, ...snap.notConfigured].map(text => `${name}: ${text}`),
      checks,
      daemon_uptime_ms: Date.now() - this.init.startedAt,
      probed_at_ms: snap.at
    }
  }

  private lagIssue (snap: ProbeSnapshot): string | undefined {
    if (snap.blockHeight == null) return undefined
    const highest = this.init.peers.highestPeerHeight()
    if (highest == null || highest.height - snap.blockHeight <= LAG_THRESHOLD_BLOCKS) return undefined
    return `block_height: lagging ${highest.height - snap.blockHeight} blocks behind ${highest.name} (${highest.height})`
  }

  private async probe (): Promise<ProbeSnapshot> {
    const { probes, dataDir } = this.init.config
    const failures: string[] = []
    const notConfigured: string[] = []
    const checks: HealthCheck[] = []
    let blockHeight: number | null = null
    let mempoolSize: number | null = null
    let serviceUptime: string | null = null

    const unit = probes.service
    const [head, mempool, health, unitState] = await Promise.all([
      this.rpc?.head(),
      this.rpc?.mempoolSize(MEMPOOL_PROBE_LIMIT),
      this.rpc?.health(),
      unit != null ? readUnitState(unit) : undefined
    ])

    if (this.rpc == null) {
      notConfigured.push('block_height, mempool_size: not probed (probes.rpc is not configured)')
      checks.push({ name: 'rpc', ok: true, detail: 'not configured (probes.rpc)' })
    } else {
      if (health?.ok === true) checks.push({ name: 'rpc', ok: true, detail: `GET /health: ${health.value}` })
      else if (health != null && !health.ok) {
        failures.push(`rpc health: ${health.reason}`)
        checks.push({ name: 'rpc', ok: false, detail: health.reason })
      }
      if (head?.ok === true) {
        blockHeight = head.value
        checks.push({ name: 'block_height', ok: true, detail: `height ${head.value}` })
      } else if (head != null && !head.ok) {
        failures.push(`block_height: ${head.reason}`)
        checks.push({ name: 'block_height', ok: false, detail: head.reason })
      }
      if (mempool?.ok === true) {
        mempoolSize = mempool.value
        checks.push({ name: 'mempool', ok: true, detail: `${mempool.value} transactions` })
      } else if (mempool != null && !mempool.ok) {
        failures.push(`mempool_size: ${mempool.reason}`)
        checks.push({ name: 'mempool', ok: false, detail: mempool.reason })
      }
    }

    if (unit == null) {
      notConfigured.push('service_uptime: not probed (probes.service is not configured)')
      checks.push({ name: 'service', ok: true, detail: 'not configured (probes.service)' })
    } else if (unitState != null && !unitState.ok) {
      failures.push(`service_uptime: ${unitState.reason}`)
      checks.push({ name: 'service', ok: false, detail: unitState.reason })
    } else if (unitState?.ok === true) {
      const state = unitState.value
      if (state.activeState === 'active' && state.uptimeSeconds != null) {
        serviceUptime = formatUptime(state.uptimeSeconds)
        checks.push({ name: 'service', ok: true, detail: `${unit} active (${state.subState}) for ${serviceUptime}` })
      } else {
        const reason = `${unit} is ${state.activeState}${state.subState !== '' ? ` (${state.subState})` : ''}`
        failures.push(`service_uptime: ${reason}`)
        checks.push({ name: 'service', ok: false, detail: reason })
      }
    }

    const store = this.init.storeHealth?.()
    if (store != null) {
      if (store.ok) checks.push({ name: 'store', ok: true, detail: this.init.config.redisUrl != null ? 'Redis reachable' : 'embedded store' })
      else {
        failures.push(`store: ${store.reason ?? 'unavailable'}`)
        checks.push({ name: 'store', ok: false, detail: store.reason ?? 'unavailable' })
      }
    }

    try {
      accessSync(dataDir, fsConstants.W_OK)
      checks.push({ name: 'data_dir', ok: true, detail: `${dataDir} writable` })
    } catch (err) {
      const reason = `${dataDir} is not writable: ${(err as Error).message}`
      failures.push(`data_dir: ${reason}`)
      checks.push({ name: 'data_dir', ok: false, detail: reason })
    }

    return { at: Date.now(), blockHeight, mempoolSize, serviceUptime, failures, notConfigured, checks }
  }
}
