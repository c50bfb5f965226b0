import type { Logger } from 'pino'
import { loadConfig, type MeshConfig } from '../config/config.js'
import { HANG_UP_TIMEOUT_MS } from '../constants.js'
import { ConfigError, errorMessage, UsageError, withTimeout } from '../errors.js'
import type { AllowlistGater } from '../mesh/gater.js'
import type { MeshLibp2p } from '../mesh/libp2p.js'
import type { PeerConnector } from '../mesh/peer-connector.js'
import type { PeerTable } from '../mesh/peer-table.js'
import type { Messaging } from '../messaging/messaging.js'
import type { LocalProbes } from '../operations/local-probes.js'
import type { OperationRunner } from '../operations/runner.js'

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
const RELOADABLE_FIELDS = new Set(['file', 'peers', 'probes', 'actions', 'handlers', 'handlerConcurrency', 'sync', 'logLevel'])

/** What a reload touches: the allowlist and the parts that take reloadable settings through setters. */
export interface ReloadTargets {
  /** The config the daemon started with; compared with the file to list what needs a restart. */
  config: MeshConfig
  log: Logger
  libp2p: MeshLibp2p
  gater: AllowlistGater
  peers: PeerTable
  connector: PeerConnector
  messaging: Messaging
  runner: OperationRunner
  probes: LocalProbes
}

/**
 * Re-reads the config file and applies what can change while running: the peer allowlist
 * (new peers are dialled, removed ones disconnected and refused from then on, no other
 * connection is touched), probes, actions, sync settings and the log level, each handed to the
 * part that uses it. Fields that need a restart are reported, not applied. A config that does
 * not validate changes nothing. Reloads run one at a time.
 */
export class ConfigReloader {
  constructor (private readonly parts: ReloadTargets) {}

  private reloading: Promise<unknown> = Promise.resolve()

  async reload (): Promise<ReloadResult> {
    const run = this.reloading.then(async () => await this.applyReload(), async () => await this.applyReload())
    this.reloading = run.catch(() => {})
    return await run
  }

  private async applyReload (): Promise<ReloadResult> {
    let next: MeshConfig
    try {
      next = loadConfig(this.parts.config.file)
    } catch (err) {
      this.parts.log.error({ event: 'reload_refused', file: this.parts.config.file, err: errorMessage(err) }, 'config reload refused; keeping the running config')
      // A config the operator must fix is bad input, not a daemon failure.
      if (err instanceof ConfigError) throw new UsageError(`reload refused, nothing changed: ${err.message}`)
      throw err
    }
    const current = this.parts.config as unknown as Record<string, unknown>
    const proposed = next as unknown as Record<string, unknown>
    const restartNeeded = Object.keys({ ...current, ...proposed })
      .filter(key => !RELOADABLE_FIELDS.has(key) && JSON.stringify(current[key]) !== JSON.stringify(proposed[key]))

    const changes = this.parts.peers.apply(next.peers)
    this.parts.gater.setAllowed(next.peers.map(p => p.peerId))
    // Each part that uses a reloadable field gets the new value through its own setter.
    this.parts.messaging.setPeers(next.peers)
    this.parts.messaging.setHandlers(next.handlers, next.handlerConcurrency)
    this.parts.runner.setSettings({ peers: next.peers, actions: next.actions, sync: next.sync, probes: next.probes })
    this.parts.probes.setProbes(next.probes)
    if (process.env.LOG_LEVEL == null || process.env.LOG_LEVEL === '') this.parts.log.level = next.logLevel ?? 'info'

    for (const removed of changes.removed) {
      this.parts.connector.forget(removed.peerId)
      const failed = this.parts.messaging.forgetNode(removed.name)
      try {
        await withTimeout(`closing the connection to ${removed.name}`, async signal => { await this.parts.libp2p.hangUp(removed.peerId, { signal }) }, HANG_UP_TIMEOUT_MS)
      } catch (err) {
        this.parts.log.warn({ event: 'hang_up_failed', peer: removed.name, peerId: removed.peerId.toString(), err: errorMessage(err) }, 'could not close the connection to a removed peer')
      }
      this.parts.log.info({ event: 'peer_removed', peer: removed.name, peerId: removed.peerId.toString(), failedMessages: failed }, 'peer removed from the allowlist; its connections are closed')
    }
    for (const added of changes.added) {
      this.parts.connector.add(added)
      this.parts.log.info({ event: 'peer_added', peer: added.name, peerId: added.peerId.toString(), addr: added.configuredAddr }, 'peer added to the allowlist; dialling it')
    }
    for (const moved of changes.readdressed) this.parts.connector.redial(moved)

    const result: ReloadResult = {
      file: this.parts.config.file,
      added: changes.added.map(p => p.name),
      removed: changes.removed.map(p => p.name),
      readdressed: changes.readdressed.map(p => p.name),
      peers: next.peers.length,
      restart_needed: restartNeeded
    }
    this.parts.log.info({ event: 'config_reloaded', ...result }, restartNeeded.length > 0
      ? `config reloaded; these fields change only on restart: ${restartNeeded.join(', ')}`
      : 'config reloaded')
    return result
  }
}
