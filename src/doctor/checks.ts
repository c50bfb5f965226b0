import { readFileSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { loadConfig, type MeshConfig } from '../config/config.js'
import { AITBC_RPC_RATE_LIMIT_PER_MINUTE, AITBC_RPC_UNIT, DEFAULT_AITBC_RPC_URL, DOCTOR_MAX_CLOCK_SKEW_MS, PROBE_RPC_BUDGET_PER_MINUTE } from '../constants.js'
import { ConfigError, errorMessage } from '../errors.js'
import { loadIdentity, loadSwarmKey } from '../mesh/identity.js'
import { describePortOwners, findPortOwners, portInUseFix, tcpListenAddress, tryBind } from '../mesh/port-owner.js'
import { parseRetryAfter, parseSupportedChains } from '../operations/probes/rpc.js'
import { parseEnv } from '../operations/sync/config-files.js'
import { embeddedStoreFix, embeddedStorePaths, inspectEmbeddedStore } from '../store/embedded-check.js'

/** One line of `aitbc-mesh doctor`: what was checked, the verdict, and for a failure how to fix it. */
export interface CheckResult {
  name: string
  ok: boolean
  detail: string
  fix: string | null
}

const START_DAEMON_FIX = 'start the daemon: systemctl start aitbc-mesh (or `aitbc-mesh daemon --config FILE` in the foreground)'

function pass (name: string, detail: string): CheckResult {
  return { name, ok: true, detail, fix: null }
}

function fail (name: string, detail: string, fix: string): CheckResult {
  return { name, ok: false, detail, fix }
}

function octal (mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0')
}

function isRoot (): boolean {
  return process.getuid?.() === 0
}

export function checkConfig (file: string): { result: CheckResult, config?: MeshConfig } {
  const name = 'config valid'
  try {
    const config = loadConfig(file)
    const peers = config.peers.length
    return { result: pass(name, `${file}: node ${config.node.name}, ${config.node.role}, ${peers} peer${peers === 1 ? '' : 's'}`), config }
  } catch (err) {
    const missing = (err as { message?: string }).message?.includes('file not found') === true
    return {
      result: fail(name, errorMessage(err), missing
        ? `create it: sudo aitbc-mesh init --name NAME --role genesis|follower --dir /var/lib/aitbc/mesh --config ${file} --control-socket /run/aitbc/mesh.sock`
        : `correct the field named above in ${file} (README: Configuration), then run doctor again`)
    }
  }
}

/**
 * A secret file the daemon reads (identity key, swarm key): present, mode 0600 (no group or other
 * bits), and parseable. Run by someone who may not read it (an operator in the daemon's group),
 * the mode and owner are checked and the content is not.
 */
function checkSecretFile (name: string, file: string, load: (file: string) => string, createFix: string): CheckResult {
  let mode: number
  let uid: number
  try {
    ({ mode, uid } = statSync(file))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return fail(name, `${file} not found`, createFix)
    return fail(name, `cannot stat ${file}: ${errorMessage(err)}`, `make ${dirname(file)} searchable by the daemon's user, or run doctor as root`)
  }
  if ((mode & 0o077) !== 0) {
    return fail(name, `${file} has mode ${octal(mode)}: other users can read this secret`, `chmod 600 ${file}`)
  }
  try {
    const what = load(file)
    return pass(name, `${file}, mode ${octal(mode)}${what !== '' ? `, ${what}` : ''}`)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (/EACCES/.test(errorMessage(err)) ? 'EACCES' : undefined)
    if (code === 'EACCES' && !isRoot()) {
      return pass(name, `${file}, mode ${octal(mode)}, owner uid ${uid}; not readable by this user, so its content was not checked (run doctor as root for that)`)
    }
    // A damaged file says its own fix (restore from backup), which creating a new one is not.
    if (err instanceof ConfigError && err.fix != null) return fail(name, `${err.file}: ${err.detail}`, err.fix)
    return fail(name, errorMessage(err), code === 'EACCES'
      ? `give the file to the daemon's user: chown aitbc: ${file} && chmod 600 ${file}`
      : createFix)
  }
}

export function checkIdentity (config: MeshConfig): CheckResult {
  return checkSecretFile('identity key', config.identityFile, file => `peer id ${loadIdentity(file).peerId.toString()}`,
    `create it: sudo aitbc-mesh init --name ${config.node.name} --role ${config.node.role} --dir ${dirname(config.identityFile)} --config ${config.file} (an existing config is kept; a new key means a new peer id, so every other node must add this one again)`)
}

export function checkSwarmKey (config: MeshConfig): CheckResult {
  const name = 'swarm key'
  if (config.swarmKeyFile == null) return pass(name, 'swarmKey not configured: public network, peers admitted by the allowlist only')
  return checkSecretFile(name, config.swarmKeyFile, file => { loadSwarmKey(file); return '' },
    `copy the swarm key from another node of the mesh to ${config.swarmKeyFile} (owner aitbc, mode 0600), or remove swarmKey: from ${config.file}`)
}

/** The embedded store (when Redis is not configured): what the daemon checks at start, with the same fix. */
export function checkEmbeddedStore (config: MeshConfig): CheckResult {
  const name = 'embedded store'
  const paths = embeddedStorePaths(config.dataDir)
  try {
    const found = inspectEmbeddedStore(paths)
    if (found.state === 'new') return pass(name, `${paths.file} not created yet: the daemon creates it at its first start`)
    if (found.state === 'ok') return pass(name, `${paths.file}: quick_check ok`)
    return fail(name, `${paths.file}: ${found.reason}`, embeddedStoreFix(paths.file, config.file))
  } catch (err) {
    // Run by an operator in the daemon's group the folder may not be writable, which SQLite needs even to read a store in WAL mode.
    if (!isRoot()) return pass(name, `${paths.file}: ${errorMessage(err).replace(`${paths.file}: `, '')}; not checked as this user (run doctor as root for that)`)
    return fail(name, errorMessage(err), `make ${paths.file} readable and writable by the daemon's user: chown aitbc: ${paths.file}`)
  }
}

/** What the local daemon reports about itself, if it is running. */
export interface DaemonIdentity {
  peerId: string
  listen: string[]
}

/**
 * Binds the listen address briefly: free, held by this node's daemon, or held by something else,
 * named (pid, command line, systemd unit) when /proc tells.
 */
export async function checkListen (config: MeshConfig, addr: string, daemon: DaemonIdentity | undefined): Promise<CheckResult> {
  const name = `listen ${addr}`
  const at = tcpListenAddress(addr)
  if (at == null || !/\/tcp\/\d+$/.test(addr)) return fail(name, 'not a TCP listen address', `correct listen: in ${config.file}`)
  const { host, port } = at
  const heldByDaemon = daemon?.listen.includes(addr) === true
  const error = await tryBind(host, port)
  if (error == null) {
    if (daemon != null && heldByDaemon) return fail(name, `port ${port} is free, but the running daemon says it listens there`, 'restart the daemon: systemctl restart aitbc-mesh')
    return pass(name, `port ${port} is free${daemon == null ? '; the daemon is not running' : ''}`)
  }
  if (error.code === 'EADDRINUSE') {
    if (heldByDaemon) return pass(name, `held by this node's daemon, peer id ${daemon!.peerId}`)
    const owners = findPortOwners(host, port)
    return fail(name, `port ${port} on ${host} is in use by ${describePortOwners(owners)}${daemon != null ? ` (the running daemon listens on ${daemon.listen.join(', ')})` : ''}`,
      portInUseFix(owners, `give the mesh another listen address in listen: of ${config.file}${daemon != null ? ', then restart the daemon' : ''}`))
  }
  if (error.code === 'EADDRNOTAVAIL') return fail(name, `${host} is not an address of this host`, `correct listen: in ${config.file} (0.0.0.0 listens on every address)`)
  if (error.code === 'EACCES') return fail(name, `binding port ${port} needs privileges the daemon does not have`, `use a port above 1023 in listen: in ${config.file}`)
  return fail(name, `cannot bind ${host}:${port}: ${errorMessage(error)}`, `correct listen: in ${config.file}`)
}

export async function checkRedis (config: MeshConfig, timeoutMs: number): Promise<CheckResult> {
  const name = 'redis reachable'
  if (config.redisUrl == null) return pass(name, `redis not configured: the embedded store ${config.dataDir}/store.sqlite serves`)
  const [{ Redis }, { redactRedisUrl }] = await Promise.all([import('ioredis'), import('../store/redis-backend.js')])
  const url = redactRedisUrl(config.redisUrl)
  const client = new Redis(config.redisUrl, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null
  })
  // connect() rejects with "Connection is closed"; the cause (ECONNREFUSED, ...) comes as an event.
  let cause: Error | undefined
  client.on('error', (err: Error) => { cause ??= err })
  const started = Date.now()
  try {
    await client.connect()
    await client.ping()
    return pass(name, `${url}: PONG in ${Date.now() - started} ms`)
  } catch (err) {
    return fail(name, `${url}: ${errorMessage(cause ?? err)}`,
      `start this node's Redis (systemctl start redis-server) or correct redis: in ${config.file} / REDIS_URL in /etc/aitbc/mesh.env`)
  } finally {
    client.disconnect()
  }
}

/**
 * What an acknowledged write survives in this node's store, read from the store's own settings:
 * durable (append-only, fsync always or everysec) passes; anything else fails with the fix,
 * unless store.durability is accept.
 */
export async function checkStoreDurability (config: MeshConfig, timeoutMs: number): Promise<CheckResult> {
  const name = 'store durability'
  const { durabilityFix, durabilityView } = await import('../store/durability.js')
  if (config.redisUrl == null) {
    const { level, guarantee } = durabilityView({ level: 'always', detail: '' })
    return pass(name, `embedded store: ${level} (SQLite WAL, synchronous=FULL): ${guarantee}`)
  }
  const [{ Redis }, { readRedisDurability, redactRedisUrl }] = await Promise.all([import('ioredis'), import('../store/redis-backend.js')])
  const url = redactRedisUrl(config.redisUrl)
  const client = new Redis(config.redisUrl, { lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  let cause: Error | undefined
  client.on('error', (err: Error) => { cause ??= err })
  try {
    await client.connect()
    const view = durabilityView(await readRedisDurability(client, url))
    const mode = config.store.durability
    const said = `${url}: ${view.level} (${view.detail}): ${view.guarantee}`
    if (view.durable) return pass(name, said)
    if (mode === 'accept') return pass(name, `${said}; accepted (store.durability: accept in ${config.file})`)
    const consequence = mode === 'refuse' ? 'the daemon refuses to start on it' : 'the node reports itself degraded'
    return fail(name, `${said}; store.durability is ${mode}: ${consequence}`, durabilityFix(url, view.level) ?? '')
  } catch (err) {
    return fail(name, `not checked: ${url}: ${errorMessage(cause ?? err)}`, `start this node's Redis (systemctl start redis-server) or correct redis: in ${config.file}`)
  } finally {
    client.disconnect()
  }
}

export async function checkRpc (config: MeshConfig, timeoutMs: number): Promise<CheckResult> {
  const name = 'blockchain RPC reachable'
  if (config.probes.rpc == null) return pass(name, 'probes.rpc not configured: block height and mempool are reported as null')
  const url = `${config.probes.rpc}/health`
  const units = config.probes.services
  const fix = `start the blockchain node${units.length > 0 ? ` (systemctl start ${units.join(' ')})` : ''} or correct probes.rpc in ${config.file}`
  let res: Response
  let text: string
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
    text = await res.text()
  } catch (err) {
    const name2 = (err as Error).name
    const why = name2 === 'TimeoutError' || name2 === 'AbortError' ? `no answer within ${timeoutMs} ms` : errorMessage(err)
    // Releases before the RPC had its own unit served it on 8006.
    const moved = /:8006$/.test(new URL(config.probes.rpc).host) ? `; today's AITBC serves the RPC on ${DEFAULT_AITBC_RPC_URL} (${AITBC_RPC_UNIT})` : ''
    return fail(name, `GET ${url}: ${why}`, fix + moved)
  }
  if (res.status === 429) {
    const wait = parseRetryAfter(res.headers.get('retry-after'))
    return fail(name, `GET ${url} answered 429: rate-limited${wait != null ? ` for ${Math.ceil(wait / 1000)} s` : ''} (the RPC allows about ${AITBC_RPC_RATE_LIMIT_PER_MINUTE} calls a minute per client address and handler)`,
      `find the local client calling the RPC most (journalctl -u ${AITBC_RPC_UNIT}); aitbc-mesh itself makes at most ${PROBE_RPC_BUDGET_PER_MINUTE} a minute`)
  }
  if (!res.ok) return fail(name, `GET ${url} answered ${res.status}`, fix)
  let supported: string[] | null = null
  try {
    supported = parseSupportedChains((JSON.parse(text) as { supported_chains?: unknown } | null)?.supported_chains)
  } catch {
    return fail(name, `GET ${url} answered ${res.status} with a body that is not JSON`, `check that probes.rpc in ${config.file} names the blockchain RPC (${DEFAULT_AITBC_RPC_URL})`)
  }
  const configured = config.probes.chainIds
  if (supported == null) {
    return pass(name, `GET ${url} answered ${res.status}; it lists no supported_chains${configured.length > 0 ? `, probing ${configured.join(', ')}` : ''}`)
  }
  const unknown = configured.filter(c => !supported.includes(c))
  if (unknown.length > 0) {
    return fail(name, `GET ${url} answered ${res.status}, but probes.chainId ${unknown.join(', ')} is not among the chains it serves (${supported.join(', ') || 'none'})`,
      `set probes.chainId in ${config.file} to chains this node serves: ${supported.join(', ') || '(none listed)'}`)
  }
  const probing = configured.length > 0 ? configured.join(', ') : supported[0] != null ? `${supported[0]} (the first; probes.chainId chooses)` : 'no chain: the mempool is not counted'
  return pass(name, `GET ${url} answered ${res.status}; chains ${supported.join(', ') || '(none)'}; probing ${probing}`)
}

/** The fields of the daemon's `peers` answer the doctor reads. */
export interface PeerViewLike {
  name: string
  self: boolean
  connected: boolean
  status: string
  reason: string | null
  addrs: string[]
  latency_ms: number | null
  clock_skew_ms: number | null
}

export function checkDaemon (socket: string, id: { peerId: string, startedAt?: string } | undefined, error: string | undefined): CheckResult {
  const name = 'daemon running'
  if (id == null) return fail(name, error ?? `no answer on ${socket}`, START_DAEMON_FIX)
  return pass(name, `answers on ${socket}, peer id ${id.peerId}${id.startedAt != null ? `, up since ${id.startedAt}` : ''}`)
}

export function checkPeerMesh (config: MeshConfig, peer: MeshConfig['peers'][number], views: PeerViewLike[] | undefined): CheckResult {
  const name = `peer ${peer.name} over the mesh`
  if (views == null) return fail(name, 'not checked: the local daemon is not running', START_DAEMON_FIX)
  const view = views.find(v => v.name === peer.name && !v.self)
  if (view == null) return fail(name, `the running daemon does not know ${peer.name} (the config changed after it started)`, 'apply the config: aitbc-mesh reload')
  if (view.status === 'offline') {
    const target = /^\/(?:ip4|ip6|dns4|dns6|dns)\/([^/]+)\/tcp\/(\d+)/.exec(peer.addr)
    const where = target != null ? `${target[1]!} TCP ${target[2]!}` : peer.addr
    return fail(name, `offline: ${view.reason ?? 'no heartbeat'} (${peer.addr})`,
      `check that aitbc-mesh runs on ${peer.name} (aitbc-mesh status there), that this host reaches ${where} (firewall), and that ${peer.name}'s allowlist names ${config.node.name} (aitbc-mesh config add-peer there)`)
  }
  const latency = view.latency_ms != null ? `, ${view.latency_ms} ms` : ''
  return pass(name, `${view.connected ? 'connected' : 'heard through other nodes'}, ${view.status}${view.status !== 'online' && view.reason != null ? ` (${view.reason})` : ''}${latency}, ${view.addrs[0] ?? peer.addr}`)
}

export async function checkPeerSsh (config: MeshConfig, peer: MeshConfig['peers'][number], timeoutMs: number): Promise<CheckResult | undefined> {
  const ssh = peer.ssh
  if (ssh == null) return undefined
  const name = `peer ${peer.name} over SSH`
  const { reportOverSsh } = await import('../operations/ssh-fallback.js')
  try {
    const report = await reportOverSsh({ name: peer.name, role: peer.role }, ssh, timeoutMs)
    return pass(name, `${ssh.user}@${ssh.host}:${ssh.port} ran "${ssh.command}": ${peer.name} is ${report.status}`)
  } catch (err) {
    return fail(name, errorMessage(err),
      `check peers[].ssh of ${peer.name} in ${config.file}: host, port, user, privateKey (readable by the daemon's user), hostKey (that host's /etc/ssh/ssh_host_ed25519_key.pub); the public key must be in ${ssh.user}'s authorized_keys there`)
  }
}

function signed (ms: number): string {
  return `${ms >= 0 ? '+' : ''}${ms} ms`
}

/** Clock difference to each peer, from its last heartbeat; the limit is DOCTOR_MAX_CLOCK_SKEW_MS. */
export function checkClockSkew (config: MeshConfig, views: PeerViewLike[] | undefined, maxSkewMs = DOCTOR_MAX_CLOCK_SKEW_MS): CheckResult {
  const name = 'clock skew against peers'
  if (config.peers.length === 0) return pass(name, 'no peers configured')
  if (views == null) return fail(name, 'not checked: the local daemon is not running', START_DAEMON_FIX)
  const known: Array<{ name: string, skew: number }> = []
  const unknown: string[] = []
  for (const peer of config.peers) {
    const skew = views.find(v => v.name === peer.name && !v.self)?.clock_skew_ms
    if (typeof skew === 'number') known.push({ name: peer.name, skew })
    else unknown.push(peer.name)
  }
  const listing = [...known.map(k => `${k.name} ${signed(k.skew)}`), ...unknown.map(n => `${n} unknown (no heartbeat)`)].join(', ')
  if (known.length === 0) return fail(name, `no heartbeat from any peer yet, so no clock could be compared: ${listing}`, 'make the peers reachable over the mesh (see the lines above)')
  const off = known.filter(k => Math.abs(k.skew) > maxSkewMs)
  if (off.length > 0) {
    return fail(name, `${off.map(k => `${k.name} is ${Math.abs(k.skew)} ms ${k.skew > 0 ? 'ahead' : 'behind'}`).join(', ')} (more than ${maxSkewMs} ms)`,
      'synchronise the clocks: enable NTP on every host (timedatectl set-ntp true, or chrony)')
  }
  return pass(name, `within ${maxSkewMs} ms: ${listing}`)
}

/** The coordinator's own default when its REDIS_URL is unset. */
export const COORDINATOR_DEFAULT_REDIS_URL = 'redis://localhost:6379/1'

/** Host, port and database of a Redis URL, with localhost and 127.0.0.1 as one host. */
function redisTarget (url: string): { host: string, port: number, db: number } | undefined {
  try {
    const u = new URL(url)
    const host = u.hostname === 'localhost' || u.hostname === '::1' || u.hostname === '[::1]' ? '127.0.0.1' : u.hostname
    const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0
    return { host, port: u.port === '' ? 6379 : Number(u.port), db }
  } catch {
    return undefined
  }
}

/** A key's value in an environment file (the last assignment wins, quotes removed), as configuration sync reads it. */
export function readEnvValue (text: string, key: string): string | undefined {
  const found = parseEnv(text).assignments.filter(a => a.key === key).pop()
  return found?.value.replace(/^(['"])(.*)\1$/, '$2')
}

/**
 * The AITBC coordinator reads `agent:*` from its REDIS_URL (default db 1): the mesh must write
 * to the same Redis and database, with no key prefix, for the coordinator to see every node's
 * agents. Undefined when no coordinator is configured.
 */
export function checkCoordinatorRedis (config: MeshConfig): CheckResult | undefined {
  const { url, envFile } = config.coordinator
  if (url == null && envFile == null) return undefined
  const name = 'coordinator shares this node\'s Redis'
  let coordinatorUrl = COORDINATOR_DEFAULT_REDIS_URL
  let from = `its default (${COORDINATOR_DEFAULT_REDIS_URL})`
  if (envFile != null) {
    let text: string
    try {
      text = readFileSync(envFile, 'utf8')
    } catch (err) {
      return fail(name, `cannot read the coordinator's environment file ${envFile}: ${errorMessage(err)}`, `correct coordinator.envFile in ${config.file}`)
    }
    const value = readEnvValue(text, 'REDIS_URL')
    if (value != null && value !== '') {
      coordinatorUrl = value
      from = `REDIS_URL in ${envFile}`
    }
  }
  const redact = (u: string): string => u.replace(/\/\/([^@/]*)@/, '//***@')
  if (config.redisUrl == null) {
    return fail(name, `the coordinator reads ${redact(coordinatorUrl)} (${from}) but this node has no Redis`, `set redis: ${redact(coordinatorUrl)} in ${config.file} (or REDIS_URL in /etc/aitbc/mesh.env)`)
  }
  if (config.keyPrefix !== '') {
    return fail(name, `keyPrefix "${config.keyPrefix}" puts the agents where the coordinator does not read them`, `remove keyPrefix from ${config.file}`)
  }
  const mine = redisTarget(config.redisUrl)
  const theirs = redisTarget(coordinatorUrl)
  if (mine == null || theirs == null || mine.host !== theirs.host || mine.port !== theirs.port || mine.db !== theirs.db) {
    return fail(name, `this node writes to ${redact(config.redisUrl)}, the coordinator reads ${redact(coordinatorUrl)} (${from})`,
      `use the same Redis and database on both: redis: in ${config.file} or REDIS_URL of the coordinator`)
  }
  return pass(name, `both use ${theirs.host}:${theirs.port} database ${theirs.db} (${from})`)
}

/** The coordinator's `GET /health`, when its URL is configured. */
export async function checkCoordinatorHealth (config: MeshConfig, timeoutMs: number): Promise<CheckResult | undefined> {
  if (config.coordinator.url == null) return undefined
  const name = 'coordinator reachable'
  const url = `${config.coordinator.url}/health`
  const fix = `start the AITBC agent coordinator on this host or correct coordinator.url in ${config.file}`
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
    await res.body?.cancel()
    if (!res.ok) return fail(name, `GET ${url} answered ${res.status}`, fix)
    return pass(name, `GET ${url} answered ${res.status}`)
  } catch (err) {
    const errName = (err as Error).name
    return fail(name, `GET ${url}: ${errName === 'TimeoutError' || errName === 'AbortError' ? `no answer within ${timeoutMs} ms` : errorMessage(err)}`, fix)
  }
}
