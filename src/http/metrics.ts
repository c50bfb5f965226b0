import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import type { Libp2pOptions } from 'libp2p'
import { RECEIPT_LATENCY_BUCKETS_S, STORE_WRITE_BUCKETS_S, STORE_WRITE_OPS_BUCKETS } from '../constants.js'
import type { MeshMetrics } from '../metrics.js'
import type { MeshView } from '../mesh/membership.js'
import type { Liveness, PeerState } from '../mesh/peer-table.js'
import type { DurabilityView } from '../store/durability.js'

/** What gauges read at scrape time. */
export interface MetricsSource {
  /** Every configured peer now (a reload may add or remove some). */
  peers: () => PeerState[]
  liveness: (state: PeerState, now: number) => Liveness
  storeHealthy: () => boolean
  storeDurability: () => DurabilityView
  meshView: () => MeshView
}

const LIVENESS: Liveness[] = ['online', 'degraded', 'offline']

/** Failure reasons as a small fixed set of label values. */
function reasonLabel (reason: string | undefined): string {
  if (reason == null) return 'other'
  if (reason === 'expired') return 'expired'
  if (reason.startsWith('rejected')) return 'rejected'
  return 'other'
}

/**
 * The daemon's Prometheus metrics, in a registry of its own (never prom-client's global one),
 * which libp2p's own metrics join too. Names start with `aitbc_mesh_`.
 */
export class PrometheusMeshMetrics implements MeshMetrics {
  readonly registry = new Registry()
  private source?: MetricsSource
  private readonly sent: Counter
  private readonly delivered: Counter
  private readonly failed: Counter<'reason'>
  private readonly latency: Histogram
  private readonly operations: Counter<'operation' | 'result'>
  private readonly storeErrors: Counter<'operation'>
  private readonly storeWriteSeconds: Histogram
  private readonly storeWriteOps: Histogram

  constructor (node: { name: string, role: string }) {
    const registers = [this.registry]
    // Gauges computed when scraped, from whatever the source says then; only the registry holds them.
    const metrics = (): PrometheusMeshMetrics => this
    new Gauge({
      name: 'aitbc_mesh_info',
      help: 'This node (always 1)',
      labelNames: ['node', 'role'],
      registers
    }).labels(node.name, node.role).set(1)
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_peers_connected',
      help: 'Configured peers with a live connection to this node',
      registers: [],
      collect () { this.set(metrics().source?.peers().filter(p => p.connected).length ?? 0) }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_peers_configured',
      help: 'Peers in the allowlist',
      registers: [],
      collect () { this.set(metrics().source?.peers().length ?? 0) }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_heartbeat_age_seconds',
      help: 'Time since the last heartbeat of each peer (absent for a peer never heard since start)',
      labelNames: ['node'],
      registers: [],
      collect () {
        this.reset()
        const now = Date.now()
        for (const peer of metrics().source?.peers() ?? []) {
          if (peer.lastHeartbeatAt != null) this.labels(peer.name).set((now - peer.lastHeartbeatAt) / 1000)
        }
      }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_peer_status',
      help: 'Liveness of each peer as seen here: 1 for its current status, 0 for the others',
      labelNames: ['node', 'status'],
      registers: [],
      collect () {
        this.reset()
        const source = metrics().source
        const now = Date.now()
        for (const peer of source?.peers() ?? []) {
          const current = source!.liveness(peer, now)
          for (const status of LIVENESS) this.labels(peer.name, status).set(status === current ? 1 : 0)
        }
      }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_quorum',
      help: 'Whether this node reaches a majority of the configured nodes, itself included (1) or not (0); without it destructive work is refused here',
      registers: [],
      collect () {
        const view = metrics().source?.meshView()
        if (view != null) this.set(view.quorum ? 1 : 0)
      }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_reachable_nodes',
      help: 'Configured nodes this node reaches now (itself included; peers whose heartbeats arrive, directly or relayed)',
      registers: [],
      collect () {
        const view = metrics().source?.meshView()
        if (view != null) this.set(view.reachable.length)
      }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_configured_nodes',
      help: 'Configured nodes, this one included: quorum is more than half of them',
      registers: [],
      collect () {
        const view = metrics().source?.meshView()
        if (view != null) this.set(view.configured)
      }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_store_healthy',
      help: 'Whether the store (Redis or embedded) is usable and writes are succeeding (1) or not (0)',
      registers: [],
      collect () { this.set(metrics().source?.storeHealthy() === true ? 1 : 0) }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'aitbc_mesh_store_durable',
      help: 'Whether the store keeps acknowledged writes through a crash (1: append-only with fsync always or everysec) or not (0), labelled with the level read',
      labelNames: ['level'],
      registers: [],
      collect () {
        this.reset()
        const durability = metrics().source?.storeDurability()
        if (durability != null) this.labels(durability.level).set(durability.durable ? 1 : 0)
      }
    }))
    this.sent = new Counter({ name: 'aitbc_mesh_messages_sent_total', help: 'Coordination messages accepted for delivery, counted once per target node', registers })
    this.delivered = new Counter({ name: 'aitbc_mesh_messages_delivered_total', help: 'Message deliveries receipted by their target', registers })
    this.failed = new Counter({ name: 'aitbc_mesh_messages_failed_total', help: 'Message deliveries that failed (expired, rejected by the target, other)', labelNames: ['reason'], registers })
    for (const reason of ['expired', 'rejected', 'other']) this.failed.labels(reason).inc(0)
    this.latency = new Histogram({
      name: 'aitbc_mesh_receipt_latency_seconds',
      help: 'Time from send to the target\'s receipt, per delivered target',
      buckets: RECEIPT_LATENCY_BUCKETS_S,
      registers
    })
    this.operations = new Counter({ name: 'aitbc_mesh_operations_total', help: 'Operations run from this node, by operation and result (validation_status, or error)', labelNames: ['operation', 'result'], registers })
    this.storeErrors = new Counter({ name: 'aitbc_mesh_store_errors_total', help: 'Store calls that failed, by store operation', labelNames: ['operation'], registers })
    this.storeErrors.labels('write').inc(0)
    this.storeWriteSeconds = new Histogram({
      name: 'aitbc_mesh_store_write_seconds',
      help: 'Time per store write (one transaction, successful or not), from the call to its answer',
      buckets: STORE_WRITE_BUCKETS_S,
      registers
    })
    this.storeWriteOps = new Histogram({
      name: 'aitbc_mesh_store_write_operations',
      help: 'Operations per store write (what one transaction holds)',
      buckets: STORE_WRITE_OPS_BUCKETS,
      registers
    })
  }

  /** Where gauges read from; set once the daemon's parts exist. */
  attach (source: MetricsSource): void {
    this.source = source
  }

  /** libp2p's own metrics (and the Node.js process metrics), in this registry. */
  libp2pMetrics (): NonNullable<Libp2pOptions['metrics']> {
    return prometheusMetrics({ registry: this.registry })
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }

  get contentType (): string {
    return this.registry.contentType
  }

  messageSent (targets: number): void {
    this.sent.inc(targets)
  }

  messageSettled (state: 'delivered' | 'failed', latencyMs: number | undefined, reason: string | undefined): void {
    if (state === 'delivered') {
      this.delivered.inc()
      if (latencyMs != null && latencyMs >= 0) this.latency.observe(latencyMs / 1000)
    } else {
      this.failed.labels(reasonLabel(reason)).inc()
    }
  }

  operationFinished (operation: string, result: string): void {
    this.operations.labels(operation, result).inc()
  }

  storeError (operation: string): void {
    this.storeErrors.labels(operation).inc()
  }

  storeWrite (ms: number, ops: number): void {
    this.storeWriteSeconds.observe(ms / 1000)
    this.storeWriteOps.observe(ops)
  }
}
