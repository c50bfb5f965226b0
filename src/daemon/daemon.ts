import type { Logger } from 'pino'
import { defaultAgentChainId, type MeshConfig } from '../config/config.js'
import { REDIS_CONNECT_TIMEOUT_MS } from '../constants.js'
import { controlApi, type ControlMethods } from '../control/api.js'
import { noParamsFor } from '../control/params.js'
import { ControlServer, controlMethod } from '../control/server.js'
import { CoordinatorExport } from '../coordinator/export.js'
import { CoordinatorImport } from '../coordinator/import.js'
import type { HttpSource } from '../http/index.js'
import { AllowlistGater } from '../mesh/gater.js'
import { HeartbeatService } from '../mesh/heartbeat.js'
import { loadIdentity, loadSwarmKey } from '../mesh/identity.js'
import { LocalStallMonitor } from '../mesh/local-stall.js'
import { Membership } from '../mesh/membership.js'
import { createMeshLibp2p, type MeshLibp2p } from '../mesh/libp2p.js'
import { PeerConnector } from '../mesh/peer-connector.js'
import { SilentConnectionCloser } from '../mesh/silent-connections.js'
import { PeerTable } from '../mesh/peer-table.js'
import { PeerViews } from '../mesh/peer-views.js'
import { explainListenFailure } from '../mesh/port-owner.js'
import { messagingControl } from '../messaging/control.js'
import { Messaging } from '../messaging/messaging.js'
import { operationsControl } from '../operations/control.js'
import { LocalProbes } from '../operations/local-probes.js'
import { LastSync, OperationLog } from '../operations/op-log.js'
import { OperationProtocol } from '../operations/operation-protocol.js'
import { OperationRunner } from '../operations/runner.js'
import { LocalExecutor } from '../operations/local-executor.js'
import { ChangeAuthority } from '../registry/authorship.js'
import { registryControl } from '../registry/control.js'
import { AgentRegistry } from '../registry/registry.js'
import { AgentReplication } from '../registry/replication.js'
import { openStore, type OpenStoreOptions, type StoreBackend } from '../store/index.js'
import { durabilityRecheckMsFromEnv, StoreDurabilityService } from '../store/durability.js'
import { StoreEpoch } from '../store/epoch.js'
import { observedStore } from '../store/observed.js'
import { Lifecycle, type Part } from './lifecycle.js'
import { ConfigReloader, type ReloadResult, type ReloadTargets } from './reload.js'

/** The daemon's parts: what a reload hands new settings to, and the life cycle and control methods. */
interface DaemonParts extends ReloadTargets {
  /** The store epoch: tells when the store came back empty or older than this node's memory. */
  epoch: StoreEpoch
  /** Every part in start order (stopped in reverse), given the daemon whose control socket is one of them. */
  parts: (daemon: Daemon) => Part[]
  /** The control socket's methods, from each service. */
  methods: (daemon: Daemon) => ControlMethods
}

/** One node's daemon: the mesh, its services and the control socket, started and stopped in a fixed order. */
export class Daemon {
  readonly startedAt = Date.now()

  /** The config the daemon started with; a reload hands what it may change to each part's setter. */
  readonly config: MeshConfig
  readonly log: Logger
  readonly libp2p: MeshLibp2p
  private readonly reloader: ConfigReloader
  readonly epoch: StoreEpoch
  private readonly lifecycle: Lifecycle
  readonly control: ControlServer

  private constructor (parts: DaemonParts) {
    this.config = parts.config
    this.log = parts.log
    this.libp2p = parts.libp2p
    this.reloader = new ConfigReloader(parts)
    this.epoch = parts.epoch
    this.control = new ControlServer(parts.config.controlSocket, parts.methods(this), parts.log)
    this.lifecycle = new Lifecycle(parts.parts(this), parts.log)
  }

  static async start (config: MeshConfig, log: Logger, opts: OpenStoreOptions = {}): Promise<Daemon> {
    const startedAt = Date.now()
    // The files first: a damaged identity or store refuses the start before anything listens.
    const identity = loadIdentity(config.identityFile)
    const swarmKey = config.swarmKeyFile != null ? loadSwarmKey(config.swarmKeyFile) : undefined
    const opened = await openStore(config, log, opts)
    // Our own stalls stretch the offline window: saturated, we must not call live peers offline.
    const localStall = new LocalStallMonitor(2 * config.heartbeat.offlineAfterMs)
    const peers = new PeerTable(config.peers, config.heartbeat.offlineAfterMs, now => localStall.recentStallMs(now))
    const gater = new AllowlistGater(config.peers.map(p => p.peerId))
    gater.onRefused = (peerId, direction) => {
      log.warn({ event: 'peer_refused', peerId: peerId.toString(), direction }, 'refused a peer that is not in the allowlist')
    }
    // Metrics, /health and the status page: loaded only when configured (prom-client is not small).
    const http = config.http != null ? new (await import('../http/index.js')).HttpService({ address: config.http, node: config.node, log }) : undefined
    const metrics = http?.metrics
    const libp2p = await createMeshLibp2p({ privateKey: identity.privateKey, listen: config.listen, gater, meshSize: config.peers.length + 1, gossip: config.gossip, ...(swarmKey != null ? { swarmKey } : {}), ...(http != null ? { metrics: http.libp2pMetrics() } : {}) })
      .catch(async (err: unknown) => { await opened.close(); throw err })

    const connector = new PeerConnector(libp2p, peers, log)
    const silentConnections = new SilentConnectionCloser({ libp2p, peers, offlineAfterMs: config.heartbeat.offlineAfterMs, log, localStallMs: now => localStall.recentStallMs(now) })
    // Services write through the durability service's view: held back while the settings are
    // read after a reconnect, refused while the store is not durable and store.durability is refuse.
    const durability = new StoreDurabilityService(opened, config.store.durability, log, config.file, durabilityRecheckMsFromEnv())
    const store = metrics != null ? observedStore(durability.store, metrics) : durability.store
    const epoch = new StoreEpoch(store, log)
    const lastSync = new LastSync(store, log)
    const authority = new ChangeAuthority({
      node: config.node.name,
      privateKey: identity.privateKey,
      peerKey: name => peers.get(name)?.peerId.publicKey,
      roleOf: name => name === config.node.name ? config.node.role : peers.get(name)?.role,
      removalsFrom: () => config.trust.removalsFrom
    })
    const registry = new AgentRegistry({
      node: config.node.name,
      store,
      log,
      authority,
      clockSkewMs: config.trust.clockSkewMs,
      recordFields: config.coordinator.recordFields,
      agentDefaults: { chainId: defaultAgentChainId(config), islandId: config.agents.islandId }
    })
    // Aborted first when the daemon stops, so every exchange in flight ends at once rather than
    // in its service's turn.
    const shutdown = new AbortController()
    const replication = new AgentReplication({ libp2p, peers, registry, node: config.node.name, log, shutdown: shutdown.signal, limits: { intervalMs: config.gossip.antiEntropyIntervalMs } })
    const coordinatorImport = config.redisUrl != null ? new CoordinatorImport({ redisUrl: config.redisUrl, registry, recordFields: config.coordinator.recordFields, log }) : undefined
    const coordinatorExport = CoordinatorExport.fromConfig(config, registry, log)
    const probes = new LocalProbes({
      config,
      peers,
      connectedPeers: () => libp2p.getPeers().filter(p => gater.isAllowed(p)).length,
      startedAt,
      storeHealth: () => registry.health(),
      storeDurability: () => ({ report: { kind: store.kind, durability: durability.current() }, ...(durability.issue() != null ? { issue: durability.issue()! } : {}) }),
      lastSync: () => lastSync.get(),
      log
    })
    const heartbeat = new HeartbeatService({
      libp2p,
      peers,
      node: config.node,
      intervalMs: config.heartbeat.intervalMs,
      clockSkewMs: config.trust.clockSkewMs,
      log,
      localHealth: () => probes.latest(),
      // Heard from without a connection (relayed): reconnect now, so that its crash is seen by the close.
      onHeartbeat: name => {
        const state = peers.get(name)
        if (state != null && !state.connected) connector.heardFrom(state.peerId)
      },
      storeEpoch: () => ({ epoch: epoch.epoch, lostFromMs: epoch.lostFromMs }),
      // Messaging is created below; heartbeats are heard only once everything has started.
      onPeerStoreEpoch: (name, peerEpoch, lostFromMs) => { messaging.peerStoreEpoch(name, peerEpoch, lostFromMs) }
    })
    // Which configured nodes this node reaches: destructive work needs a majority (quorum).
    const membership = new Membership({ node: config.node.name, peers, log, startedAt })
    // Runs operation steps on this node, for its own operator (the runner) and for peers (the protocol).
    const local = new LocalExecutor({ config, probes, log, markSynced: () => { lastSync.mark() }, meshView: () => membership.view() })
    const protocol = new OperationProtocol({ libp2p, peers, local, log, clockSkewMs: config.trust.clockSkewMs, shutdown: shutdown.signal })
    const messaging: Messaging = new Messaging({ config, libp2p, peers, store, log, metrics, agents: registry })
    const opLog = new OperationLog(store, log, metrics, config.retention.operations)
    const runner = new OperationRunner({ config, peers, local, protocol, log, messaging, opLog, membership })

    libp2p.addEventListener('peer:connect', evt => {
      const peerId = evt.detail
      const conn = libp2p.getConnections(peerId)[0]
      const state = peers.markConnected(peerId, conn?.remoteAddr.toString())
      connector.onConnected(peerId)
      if (state != null) log.info({ event: 'peer_connected', peer: state.name, peerId: peerId.toString(), addr: conn?.remoteAddr.toString() }, 'peer connected')
    })
    libp2p.addEventListener('peer:disconnect', evt => {
      const peerId = evt.detail
      const state = peers.markDisconnected(peerId)
      connector.onDisconnected(peerId)
      if (state != null) log.info({ event: 'peer_disconnected', peer: state.name, peerId: peerId.toString() }, 'peer disconnected')
    })

    const peerViews = new PeerViews({ node: config.node, libp2p, peers, startedAt })
    const parts = (daemon: Daemon): Part[] => [
      {
        name: 'store',
        // Give Redis a moment to connect so the first requests find it; without it the daemon still
        // starts (degraded) and writes once it is back.
        start: async () => {
          if (!await store.whenReady(REDIS_CONNECT_TIMEOUT_MS)) {
            log.warn({ event: 'store_unavailable_at_start', store: store.location, reason: store.health().reason }, 'starting without the store; serving from memory until it is back')
          }
        },
        // A Redis connection, open or retrying forever, would keep a stopped process alive.
        stop: async () => { await store.close() }
      },
      // store.durability: refuse stops the start here, before anything listens.
      { name: 'store durability', start: async () => { await durability.start() }, stop: () => { durability.stop() } },
      {
        name: 'libp2p',
        start: async () => {
          try {
            await libp2p.start()
          } catch (err) {
            throw explainListenFailure(err, config.listen, config.file)
          }
        },
        stop: async () => { await libp2p.stop() }
      },
      {
        name: 'store epoch',
        start: async () => {
          await epoch.start()
          // What the store lost, or missed while it was away, is written back from memory.
          epoch.onLoss(() => {
            void registry.writeBack()
            void opLog.writeBack()
            void lastSync.writeBack()
            messaging.writeBack()
          })
          store.onReady(() => {
            void opLog.writeBack()
            void lastSync.writeBack()
          })
        },
        stop: async () => { await epoch.stop() }
      },
      { name: 'last sync', start: async () => { await lastSync.load() } },
      ...(coordinatorImport != null ? [{ name: 'coordinator import', start: async () => { await coordinatorImport.start() }, stop: async () => { await coordinatorImport.stop() } }] : []),
      { name: 'agent registry', start: async () => { await registry.start() }, stop: async () => { await registry.stop() } },
      { name: 'agent replication', start: async () => { await replication.start() }, stop: async () => { await replication.stop() } },
      ...(coordinatorExport != null ? [{ name: 'coordinator export', start: () => { coordinatorExport.start() }, stop: async () => { await coordinatorExport.stop() } }] : []),
      { name: 'messaging', start: async () => { await messaging.start() }, stop: async () => { await messaging.stop() } },
      { name: 'operation log', start: () => { opLog.start() }, stop: async () => { await opLog.stop() } },
      { name: 'operation protocol', start: async () => { await protocol.start() }, stop: async () => { await protocol.stop() } },
      // The first heartbeat carries a verdict; then every probes.intervalMs, and status answers from the last.
      { name: 'probes', start: async () => { await probes.probeNow(); probes.start() }, stop: () => { probes.stop() } },
      { name: 'heartbeat', start: () => { heartbeat.start() }, stop: () => { heartbeat.stop() } },
      { name: 'local stall monitor', start: () => { localStall.start() }, stop: () => { localStall.stop() } },
      { name: 'membership', start: () => { membership.start() }, stop: () => { membership.stop() } },
      { name: 'peer connector', start: () => { connector.start() }, stop: () => { connector.stop() } },
      { name: 'silent connection closer', start: () => { silentConnections.start() }, stop: () => { silentConnections.stop() } },
      { name: 'control socket', start: async () => { await daemon.control.start() }, stop: async () => { await daemon.control.stop() } },
      ...(http != null
        ? [{
            name: 'http',
            start: async () => { await http.start(httpSource({ config, startedAt, peers, peerViews, membership, probes, registry, store, durability, messaging, opLog })) },
            stop: async () => { await http.stop() }
          }]
        : []),
      // Last to start, so first to stop.
      { name: 'exchanges in flight', stop: () => { shutdown.abort(new Error('the daemon is stopping')) } }
    ]
    const daemon = new Daemon({
      config,
      log,
      libp2p,
      gater,
      peers,
      connector,
      messaging,
      runner,
      probes,
      epoch,
      parts,
      methods: daemon => controlApi(
        {
          id: controlMethod(noParamsFor('id'), async () => daemon.identity()),
          reload: controlMethod(noParamsFor('reload'), async () => await daemon.reload()),
          peers: controlMethod(noParamsFor('peers'), async () => await peerViews.all()),
          mesh: controlMethod(noParamsFor('mesh'), async () => membership.view())
        },
        operationsControl(runner, opLog),
        registryControl(registry),
        messagingControl(messaging)
      )
    })
    await daemon.lifecycle.start()
    log.info({
      event: 'ready',
      peerId: libp2p.peerId.toString(),
      addrs: libp2p.getMultiaddrs().map(a => a.toString()),
      controlSocket: config.controlSocket,
      peers: config.peers.length,
      privateNetwork: swarmKey != null,
      startMs: Date.now() - startedAt
    }, 'aitbc-mesh daemon ready')
    return daemon
  }

  identity (): { name: string, role: string, peerId: string, addrs: string[], listen: string[], controlSocket: string, startedAt: string } {
    return {
      name: this.config.node.name,
      role: this.config.node.role,
      peerId: this.libp2p.peerId.toString(),
      addrs: this.libp2p.getMultiaddrs().map(a => a.toString()),
      listen: this.config.listen,
      controlSocket: this.config.controlSocket,
      startedAt: new Date(this.startedAt).toISOString()
    }
  }

  /** Re-reads the config file and applies what can change while running (see ConfigReloader). */
  async reload (): Promise<ReloadResult> {
    return await this.reloader.reload()
  }

  /** Stops every part in the reverse of the start order, each step bounded. */
  async stop (): Promise<void> {
    await this.lifecycle.stop()
    this.log.info({ event: 'stopped' }, 'aitbc-mesh daemon stopped')
  }
}

interface HttpSourceParts {
  config: MeshConfig
  startedAt: number
  peers: PeerTable
  peerViews: PeerViews
  membership: Membership
  probes: LocalProbes
  registry: AgentRegistry
  store: StoreBackend
  durability: StoreDurabilityService
  messaging: Messaging
  opLog: OperationLog
}

/** What the status page, /health and /metrics read: the same functions the control methods use. */
function httpSource ({ config, startedAt, peers, peerViews, membership, probes, registry, store, durability, messaging, opLog }: HttpSourceParts): HttpSource {
  return {
    node: config.node,
    heartbeatIntervalMs: config.heartbeat.intervalMs,
    startedAt,
    peerViews: async () => await peerViews.all(),
    peers: () => peers.all(),
    meshView: () => membership.view(),
    liveness: (state, now) => peers.liveness(state, now).liveness,
    localHealth: () => probes.latest(),
    storeHealth: () => registry.health(),
    storeKind: store.kind,
    storeDurability: () => ({ view: durability.current(), ...(durability.issue() != null ? { issue: durability.issue()! } : {}) }),
    agents: () => registry.list({}),
    recentMessages: limit => messaging.recentSent(limit),
    recentOperations: async limit => await opLog.list(limit)
  }
}
