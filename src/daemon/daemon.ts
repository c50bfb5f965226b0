import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import { defaultAgentChainId, loadConfig, type MeshConfig } from '../config/config.js'
import { HANG_UP_TIMEOUT_MS, PEER_LATENCY_REUSE_MS, PEER_PING_TIMEOUT_MS, REDIS_CONNECT_TIMEOUT_MS, SHUTDOWN_STEP_TIMEOUT_MS } from '../constants.js'
import { ControlServer, controlMethod, type ControlMethod, type MethodContext } from '../control/server.js'
import { ConfigError, errorMessage, UsageError, withTimeout } from '../errors.js'
import { AllowlistGater } from '../mesh/gater.js'
import { HeartbeatService } from '../mesh/heartbeat.js'
import { loadIdentity, loadSwarmKey } from '../mesh/identity.js'
import { createMeshLibp2p, type MeshLibp2p } from '../mesh/libp2p.js'
import { PeerConnector } from '../mesh/peer-connector.js'
import { explainListenFailure } from '../mesh/port-owner.js'
import { PeerTable } from '../mesh/peer-table.js'
import { LocalProbes } from '../operations/local-probes.js'
import { OperationProtocol } from '../operations/operation-protocol.js'
import { OperationRunner } from '../operations/runner.js'
import { LastSync, OperationLog } from '../operations/op-log.js'
import type { ActionResult } from '../operations/actions.js'
import { CoordinatorExport } from '../coordinator/export.js'
import { CoordinatorImport } from '../coordinator/import.js'
import { ChangeAuthority } from '../registry/authorship.js'
import { AgentRegistry } from '../registry/registry.js'
import { AgentReplication } from '../registry/replication.js'
import { openStore, type OpenStoreOptions, type StoreBackend } from '../store/index.js'
import { Messaging, messageView } from '../messaging/messaging.js'
import { observedStore } from '../store/observed.js'
import type { HttpService, HttpSource } from '../http/index.js'
import { parseOperationRequest } from '../operations/request.js'
import { heartbeatInput, listInput, registerInput, removeInput } from '../registry/agent.js'
import { parseSend, type InboxMessage } from '../messaging/message.js'
import { inboxFollowParams, inboxListParams, messagesGetParams, messagesWaitParams, noParamsFor, opsGetParams, opsListParams, paramsOf, reportParams } from './control-params.js'

interface DaemonParts {
  config: MeshConfig
  log: Logger
  libp2p: MeshLibp2p
  gater: AllowlistGater
  peers: PeerTable
  connector: PeerConnector
  heartbeat: HeartbeatService
  protocol: OperationProtocol
  runner: OperationRunner
  store: StoreBackend
  registry: AgentRegistry
  replication: AgentReplication
  /** Agents of the local AITBC coordinator, when the store is Redis (the one it uses). */
  coordinatorImport?: CoordinatorImport
  /** Other nodes' agents pushed into the local coordinator, when `coordinator.url` is set. */
  coordinatorExport?: CoordinatorExport
  messaging: Messaging
  opLog: OperationLog
}

export interface PeerView {
  name: string
  role: string
  peerId: string
  self: boolean
  connected: boolean
  status: 'online' | 'degraded' | 'offline'
  reason: string | null
  addrs: string[]
  latency_ms: number | null
  since: string | null
  last_heartbeat: string | null
  last_heartbeat_age_ms: number | null
  /** The node's clock minus ours, from its last heartbeat's send time (transit counted as half the round trip). */
  clock_skew_ms: number | null
  block_height: number | null
}

export interface ReloadResult {
  file: string
  added: string[]
  removed: string[]
  readdressed: string[]
  peers: number
  /** Changed fields that take effect only when the daemon restarts. */
  restart_needed: string[]
}

/** Config fields a reload applies; a change to any other one needs a restart. */
const RELOADABLE_FIELDS = new Set(['file', 'peers', 'probes', 'actions', 'sync', 'logLevel'])

/** One node's daemon: the mesh, its services and the control socket, started and stopped in a fixed order. */
export class Daemon {
  private stopping?: Promise<void>
  readonly startedAt = Date.now()

  readonly config: MeshConfig
  readonly log: Logger
  readonly libp2p: MeshLibp2p
  private readonly gater: AllowlistGater
  private readonly peers: PeerTable
  private readonly connector: PeerConnector
  private readonly heartbeat: HeartbeatService
  private readonly protocol: OperationProtocol
  private readonly runner: OperationRunner
  private readonly store: StoreBackend
  private readonly registry: AgentRegistry
  private readonly replication: AgentReplication
  private readonly coordinatorImport?: CoordinatorImport
  private readonly coordinatorExport?: CoordinatorExport
  private readonly messaging: Messaging
  private readonly opLog: OperationLog
  private readonly control: ControlServer
  private stopProbes?: () => void
  /** Metrics, /health and the status page, when `http:` is configured. */
  private http?: HttpService

  private constructor (parts: DaemonParts) {
    this.config = parts.config
    this.log = parts.log
    this.libp2p = parts.libp2p
    this.gater = parts.gater
    this.peers = parts.peers
    this.connector = parts.connector
    this.heartbeat = parts.heartbeat
    this.protocol = parts.protocol
    this.runner = parts.runner
    this.store = parts.store
    this.registry = parts.registry
    this.replication = parts.replication
    if (parts.coordinatorImport != null) this.coordinatorImport = parts.coordinatorImport
    if (parts.coordinatorExport != null) this.coordinatorExport = parts.coordinatorExport
    this.messaging = parts.messaging
    this.opLog = parts.opLog
    this.control = new ControlServer(parts.config.controlSocket, this.controlMethods(), parts.log)
  }

  static async start (config: MeshConfig, log: Logger, opts: OpenStoreOptions = {}): Promise<Daemon> {
    const startedAt = Date.now()
    // The files first: a damaged identity or store refuses the start before anything listens.
    const identity = loadIdentity(config.identityFile)
    const swarmKey = config.swarmKeyFile != null ? loadSwarmKey(config.swarmKeyFile) : undefined
    const opened = await openStore(config, log, opts)
    const peers = new PeerTable(config.peers, config.heartbeat.offlineAfterMs)
    const gater = new AllowlistGater(config.peers.map(p => p.peerId))
    gater.onRefused = (peerId, direction) => {
      log.warn({ event: 'peer_refused', peerId: peerId.toString(), direction }, 'refused a peer that is not in the allowlist')
    }
    // Metrics, /health and the status page: loaded only when configured (prom-client is not small).
    const http = config.http != null ? new (await import('../http/index.js')).HttpService({ address: config.http, node: config.node, log }) : undefined
    const metrics = http?.metrics
    const libp2p = await createMeshLibp2p({ privateKey: identity.privateKey, listen: config.listen, gater, ...(swarmKey != null ? { swarmKey } : {}), ...(http != null ? { metrics: http.libp2pMetrics() } : {}) })
      .catch(async (err: unknown) => { await opened.close(); throw err })

    const connector = new PeerConnector(libp2p, peers, log)
    const store = metrics != null ? observedStore(opened, metrics) : opened
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
    const replication = new AgentReplication({ libp2p, peers, registry, node: config.node.name, log })
    const coordinatorImport = config.redisUrl != null ? new CoordinatorImport({ redisUrl: config.redisUrl, registry, recordFields: config.coordinator.recordFields, log }) : undefined
    const coordinatorExport = CoordinatorExport.fromConfig(config, registry, log)
    const probes = new LocalProbes({
      config,
      peers,
      connectedPeers: () => libp2p.getPeers().filter(p => gater.isAllowed(p)).length,
      startedAt,
      storeHealth: () => registry.health(),
      lastSync: () => lastSync.get(),
      log
    })
    const heartbeat = new HeartbeatService({
      libp2p, peers, node: config.node, intervalMs: config.heartbeat.intervalMs, clockSkewMs: config.trust.clockSkewMs, log, localHealth: () => probes.latest()
    })
    const protocol: OperationProtocol = new OperationProtocol({
      libp2p,
      peers,
      log,
      clockSkewMs: config.trust.clockSkewMs,
      localReport: async kind => await probes.reportFor(kind),
      // The runner is created next; a peer's request can only arrive once everything has started.
      localAction: async (action, force, timeoutMs, requester): Promise<ActionResult> => await runner.localAction(action, force, timeoutMs, requester),
      localSync: async (step, payload, force, timeoutMs, requester): Promise<unknown> => await runner.localSync(step, payload, force, timeoutMs, requester)
    })
    const messaging = new Messaging({ config, libp2p, peers, store, log, metrics })
    const opLog = new OperationLog(store, log, metrics, config.retention.operations)
    const runner: OperationRunner = new OperationRunner({ config, peers, probes, protocol, log, messaging, opLog, markSynced: () => { lastSync.mark() } })

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

    const daemon = new Daemon({ config, log, libp2p, gater, peers, connector, heartbeat, protocol, runner, store, registry, replication, messaging, opLog, ...(coordinatorImport != null ? { coordinatorImport } : {}), ...(coordinatorExport != null ? { coordinatorExport } : {}) })

    // Give Redis a moment to connect so the first requests find it; without it the daemon still
    // starts (degraded) and writes once it is back.
    if (!await store.whenReady(REDIS_CONNECT_TIMEOUT_MS)) {
      log.warn({ event: 'store_unavailable_at_start', store: store.location, reason: store.health().reason }, 'starting without the store; serving from memory until it is back')
    }
    try {
      await libp2p.start()
    } catch (err) {
      // libp2p stops what it started; the store is ours to close: a Redis connection, open or
      // retrying forever, would keep the failed process alive instead of letting it exit.
      await withTimeout('closing the store', store.close(), SHUTDOWN_STEP_TIMEOUT_MS)
        .catch((closeErr: unknown) => { log.warn({ event: 'shutdown_step_failed', step: 'store', err: errorMessage(closeErr) }, 'closing the store after a failed start failed') })
      throw explainListenFailure(err, config.listen, config.file)
    }
    try {
      await lastSync.load()
      await coordinatorImport?.start()
      await registry.start()
      await replication.start()
      coordinatorExport?.start()
      await messaging.start()
      opLog.start()
      await protocol.start()
      await probes.probeNow()
      heartbeat.start()
      connector.start()
      await daemon.control.start()
      if (http != null) {
        daemon.http = http
        await http.start(daemon.httpSource(probes))
      }
    } catch (err) {
      await daemon.stop()
      throw err
    }
    // Probe every probes.intervalMs: heartbeats carry the latest verdict, status answers from it.
    probes.start()
    daemon.stopProbes = () => { probes.stop() }
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

  /** Each method's params are checked before its handler runs; a bad one is answered with invalid params naming the field. */
  private controlMethods (): Record<string, ControlMethod> {
    return {
      id: controlMethod(noParamsFor('id'), async () => this.identity()),
      reload: controlMethod(noParamsFor('reload'), async () => await this.reload()),
      peers: controlMethod(noParamsFor('peers'), async () => await this.peerViews()),
      // Progress (queued, started, each node as it finishes) goes out as events.
      op: controlMethod(parseOperationRequest, async (params, ctx) => await this.runner.run(params, event => { ctx.notify(event) })),
      'ops.list': controlMethod(paramsOf(opsListParams, 'ops.list'), async params => await this.opLog.list(params.limit)),
      'ops.get': controlMethod(paramsOf(opsGetParams, 'ops.get'), async params => await this.opLog.get(params.id)),
      'agents.register': controlMethod(paramsOf(registerInput, 'agents register'), async params => await this.registry.register(params)),
      'agents.heartbeat': controlMethod(paramsOf(heartbeatInput, 'agents heartbeat'), async params => await this.registry.heartbeat(params)),
      'agents.remove': controlMethod(paramsOf(removeInput, 'agents remove'), async params => await this.registry.remove(params)),
      'agents.list': controlMethod(paramsOf(listInput, 'agents list'), async params => this.registry.list(params)),
      // The answer leaves out the body the caller just sent.
      'messages.send': controlMethod(parseSend, async params => { const { body: _body, ...view } = messageView(await this.messaging.send(params)); return view }),
      'messages.get': controlMethod(paramsOf(messagesGetParams, 'messages.get'), async params => messageView(await this.messaging.get(params.id))),
      // Events for each target as it finishes; the result once all have (or at the timeout).
      'messages.wait': controlMethod(paramsOf(messagesWaitParams, 'messages.wait'), async (params, ctx) =>
        messageView(await this.messaging.wait(params.id, params.timeout * 1000, event => { ctx.notify(event) }, ctx.signal))),
      'messages.watch': controlMethod(noParamsFor('messages.watch'), async (_params, ctx) => await this.streamUntilClosed(ctx, notify => this.messaging.watchDeliveries(notify))),
      'inbox.list': controlMethod(paramsOf(inboxListParams, 'inbox.list'), async params => await this.messaging.inboxList(params)),
      // What is in the inbox after `since`, then every new message, until the caller disconnects or half-closes.
      'inbox.follow': controlMethod(paramsOf(inboxFollowParams, 'inbox.follow'), async (params, ctx) => {
        const buffered: InboxMessage[] = []
        let live = false
        const unfollow = this.messaging.followInbox(message => { if (live) ctx.notify(message); else buffered.push(message) })
        try {
          // Replayed a page at a time; positions increase, so what arrived meanwhile and was replayed is skipped.
          let shownUpTo = -1
          for await (const page of this.messaging.inboxReplay(params.since)) {
            if (ctx.signal.aborted) break
            for (const message of page) ctx.notify(message)
            shownUpTo = page[page.length - 1]!.position
          }
          for (const message of buffered) if (message.position > shownUpTo) ctx.notify(message)
          live = true
          await untilAborted(ctx.inputEnded)
        } finally {
          unfollow()
        }
        return { following: false }
      }),
      // Streams every change as an event until the caller disconnects or half-closes.
      'agents.watch': controlMethod(noParamsFor('agents.watch'), async (_params, ctx) => await this.streamUntilClosed(ctx, notify => this.registry.watch(entry => {
        notify({ agent_id: entry.agentId, removed: entry.record == null, record: entry.record != null ? this.registry.get(entry.agentId) ?? null : null })
      }))),
      status: controlMethod(paramsOf(reportParams, 'status'), async (params, ctx) => await this.runner.run({ ...params, operation: 'status' }, event => { ctx.notify(event) })),
      health: controlMethod(paramsOf(reportParams, 'health'), async (params, ctx) => await this.runner.run({ ...params, operation: 'health' }, event => { ctx.notify(event) }))
    }
  }

  /** Streams until the client disconnects or half-closes (it will send nothing more). */
  private async streamUntilClosed<T> (ctx: MethodContext, subscribe: (notify: (event: T) => void) => () => void): Promise<{ watching: false }> {
    const unsubscribe = subscribe(event => { ctx.notify(event) })
    await untilAborted(ctx.inputEnded)
    unsubscribe()
    return { watching: false }
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

  async peerViews (): Promise<PeerView[]> {
    const now = Date.now()
    const self: PeerView = {
      name: this.config.node.name,
      role: this.config.node.role,
      peerId: this.libp2p.peerId.toString(),
      self: true,
      connected: true,
      status: 'online',
      reason: null,
      addrs: this.libp2p.getMultiaddrs().map(a => a.toString()),
      latency_ms: 0,
      since: new Date(this.startedAt).toISOString(),
      last_heartbeat: null,
      last_heartbeat_age_ms: null,
      clock_skew_ms: 0,
      block_height: null
    }
    const others = await Promise.all(this.peers.all().map(async (state): Promise<PeerView> => {
      const verdict = this.peers.liveness(state, now)
      const latency = state.connected ? await this.latencyTo(state.peerId) : null
      const clock = this.peers.senderClock(state)
      const since = state.connected ? state.connectedSince : state.disconnectedAt
      return {
        name: state.name,
        role: state.role,
        peerId: state.peerId.toString(),
        self: false,
        connected: state.connected,
        status: verdict.liveness,
        reason: verdict.reason ?? null,
        addrs: state.connected && state.remoteAddr != null ? [state.remoteAddr] : [state.configuredAddr],
        latency_ms: latency,
        since: since != null ? new Date(since).toISOString() : null,
        last_heartbeat: state.lastHeartbeatAt != null ? new Date(state.lastHeartbeatAt).toISOString() : null,
        last_heartbeat_age_ms: state.lastHeartbeatAt != null ? now - state.lastHeartbeatAt : null,
        clock_skew_ms: clock != null ? Math.round(clock.sentAtMs + (latency ?? 0) / 2 - clock.receivedAt) : null,
        block_height: state.lastHeartbeat?.blockHeight ?? null
      }
    }))
    return [self, ...others]
  }

  /** What the status page, /health and /metrics read: the same functions the control methods use. */
  private httpSource (probes: LocalProbes): HttpSource {
    return {
      node: this.config.node,
      heartbeatIntervalMs: this.config.heartbeat.intervalMs,
      startedAt: this.startedAt,
      peerViews: async () => await this.peerViews(),
      peers: () => this.peers.all(),
      liveness: (state, now) => this.peers.liveness(state, now).liveness,
      localHealth: () => probes.latest(),
      storeHealth: () => this.registry.health(),
      storeKind: this.store.kind,
      agents: () => this.registry.list({}),
      recentMessages: limit => this.messaging.recentSent(limit),
      recentOperations: async limit => await this.opLog.list(limit)
    }
  }

  private readonly latencies = new Map<string, { at: number, value: Promise<number | null> }>()

  /**
   * Round-trip time to a peer: the connection monitor's last ping, else one ping of our own,
   * shared by concurrent callers and reused for a while (ping allows one stream per peer).
   */
  private async latencyTo (peerId: PeerId): Promise<number | null> {
    const rtt = this.libp2p.getConnections(peerId).map(c => c.rtt).find((r): r is number => typeof r === 'number')
    if (rtt != null) return Math.round(rtt * 10) / 10
    const key = peerId.toString()
    const cached = this.latencies.get(key)
    if (cached != null && Date.now() - cached.at < PEER_LATENCY_REUSE_MS) return await cached.value
    const value = this.libp2p.services.ping.ping(peerId, { signal: AbortSignal.timeout(PEER_PING_TIMEOUT_MS) }).catch(() => null)
    this.latencies.set(key, { at: Date.now(), value })
    return await value
  }

  private reloading: Promise<unknown> = Promise.resolve()

  /**
   * Re-reads the config file and applies what can change while running: the peer allowlist
   * (new peers are dialled, removed ones disconnected and refused from then on, no other
   * connection is touched), probes, actions, sync settings and the log level. Fields that need a
   * restart are reported, not applied. A config that does not validate changes nothing.
   */
  async reload (): Promise<ReloadResult> {
    const run = this.reloading.then(async () => await this.applyReload(), async () => await this.applyReload())
    this.reloading = run.catch(() => {})
    return await run
  }

  private async applyReload (): Promise<ReloadResult> {
    let next: MeshConfig
    try {
      next = loadConfig(this.config.file)
    } catch (err) {
      this.log.error({ event: 'reload_refused', file: this.config.file, err: errorMessage(err) }, 'config reload refused; keeping the running config')
      // A config the operator must fix is bad input, not a daemon failure.
      if (err instanceof ConfigError) throw new UsageError(`reload refused, nothing changed: ${err.message}`)
      throw err
    }
    const current = this.config as unknown as Record<string, unknown>
    const proposed = next as unknown as Record<string, unknown>
    const restartNeeded = Object.keys({ ...current, ...proposed })
      .filter(key => !RELOADABLE_FIELDS.has(key) && JSON.stringify(current[key]) !== JSON.stringify(proposed[key]))

    const changes = this.peers.apply(next.peers)
    this.gater.setAllowed(next.peers.map(p => p.peerId))
    // Services read these through the shared config object when they next use them.
    this.config.peers = next.peers
    this.config.probes = next.probes
    this.config.actions = next.actions
    this.config.sync = next.sync
    if (next.logLevel != null) this.config.logLevel = next.logLevel
    else delete this.config.logLevel
    if (process.env.LOG_LEVEL == null || process.env.LOG_LEVEL === '') this.log.level = next.logLevel ?? 'info'

    for (const removed of changes.removed) {
      this.connector.forget(removed.peerId)
      const failed = this.messaging.forgetNode(removed.name)
      try {
        await withTimeout(`closing the connection to ${removed.name}`, this.libp2p.hangUp(removed.peerId), HANG_UP_TIMEOUT_MS)
      } catch (err) {
        this.log.warn({ event: 'hang_up_failed', peer: removed.name, peerId: removed.peerId.toString(), err: errorMessage(err) }, 'could not close the connection to a removed peer')
      }
      this.log.info({ event: 'peer_removed', peer: removed.name, peerId: removed.peerId.toString(), failedMessages: failed }, 'peer removed from the allowlist; its connections are closed')
    }
    for (const added of changes.added) {
      this.connector.add(added)
      this.log.info({ event: 'peer_added', peer: added.name, peerId: added.peerId.toString(), addr: added.configuredAddr }, 'peer added to the allowlist; dialling it')
    }
    for (const moved of changes.readdressed) this.connector.redial(moved)

    const result: ReloadResult = {
      file: this.config.file,
      added: changes.added.map(p => p.name),
      removed: changes.removed.map(p => p.name),
      readdressed: changes.readdressed.map(p => p.name),
      peers: next.peers.length,
      restart_needed: restartNeeded
    }
    this.log.info({ event: 'config_reloaded', ...result }, restartNeeded.length > 0
      ? `config reloaded; these fields change only on restart: ${restartNeeded.join(', ')}`
      : 'config reloaded')
    return result
  }

  /** Stops in a fixed order, each step bounded: nothing new comes in, then the mesh goes. */
  async stop (): Promise<void> {
    this.stopping ??= this.doStop()
    await this.stopping
  }

  private async doStop (): Promise<void> {
    this.stopProbes?.()
    const steps: Array<[string, () => Promise<void> | void]> = [
      ['control socket', async () => { await this.control.stop() }],
      ['http', async () => { await this.http?.stop() }],
      ['peer connector', () => { this.connector.stop() }],
      ['heartbeat', () => { this.heartbeat.stop() }],
      ['coordinator export', async () => { await this.coordinatorExport?.stop() }],
      ['coordinator import', async () => { await this.coordinatorImport?.stop() }],
      ['agent replication', async () => { await this.replication.stop() }],
      ['messaging', async () => { await this.messaging.stop() }],
      ['operation protocol', async () => { await this.protocol.stop() }],
      ['operation log', async () => { await this.opLog.stop() }],
      ['agent registry', async () => { await this.registry.stop() }],
      ['libp2p', async () => { await this.libp2p.stop() }],
      ['store', async () => { await this.store.close() }]
    ]
    for (const [label, step] of steps) {
      try {
        await withTimeout(label, Promise.resolve().then(step), SHUTDOWN_STEP_TIMEOUT_MS)
      } catch (err) {
        this.log.warn({ event: 'shutdown_step_failed', step: label, err: errorMessage(err) }, 'shutdown step failed; continuing')
      }
    }
    this.log.info({ event: 'stopped' }, 'aitbc-mesh daemon stopped')
  }
}

async function untilAborted (signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => { signal.addEventListener('abort', () => { resolve() }, { once: true }) })
}
