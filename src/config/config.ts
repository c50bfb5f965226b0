import { accessSync, constants, readFileSync, statSync } from 'node:fs'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
import { parseDocument } from 'yaml'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { ConfigError } from '../errors.js'
import { AITBC_RPC_RATE_LIMIT_PER_MINUTE, CONFIG_SYNC_MAX_KEEP_LOCAL, CONTROL_SOCKET_FILE_NAME, DEFAULT_AGENT_CHAIN_ID, DEFAULT_CONFIG_PATH, DEFAULT_KEEP_LOCAL_KEYS, IDENTITY_FILE_NAME, OFFLINE_AFTER_INTERVALS, PROBE_RPC_BUDGET_PER_MINUTE } from '../constants.js'
import { configSchema, parseHttpAddress, redisUrlProblem, type ActionConfig, type HandlerConfig, type RawConfig, type Role, type SshConfig } from './schema.js'

export interface NodeEntry {
  name: string
  role: Role
  /** Absent for this node itself. */
  peerId?: PeerId
  addr?: string
}

/**
 * A file configuration sync keeps equal to the genesis node's copy: whole (`keys` absent), or
 * key by key (`keys: 'env'`) with `keepLocal` (DEFAULT_KEEP_LOCAL_KEYS and the file's own) never
 * compared, sent or written.
 */
export interface ConfigFileSpec {
  path: string
  keys?: 'env'
  keepLocal?: string[]
}

export interface MeshConfig {
  file: string
  node: { name: string, role: Role }
  listen: string[]
  identityFile: string
  dataDir: string
  controlSocket: string
  swarmKeyFile?: string
  redisUrl?: string
  /** Where /metrics, /health and the status page are served (loopback only); absent: not served. */
  http?: { host: string, port: number }
  keyPrefix: string
  /** Every other node of the mesh; their peer ids form the allowlist. */
  peers: Array<Required<NodeEntry> & { ssh?: SshConfig }>
  probes: {
    rpc?: string
    /** probes.chainId as a list; empty: the first of the RPC's supported_chains. */
    chainIds: string[]
    intervalMs: number
    /** probes.service then probes.services, without repeats. */
    services: string[]
    repo?: string
    configFiles: ConfigFileSpec[]
  }
  actions: Record<string, ActionConfig>
  /** Message handlers, programs resolved against the config's folder. */
  handlers: HandlerConfig[]
  handlerConcurrency: number
  sync: RawConfig['sync']
  heartbeat: { intervalMs: number, offlineAfterMs: number }
  gossip: RawConfig['gossip']
  trust: { clockSkewMs: number, removalsFrom: string[] }
  agents: { chainId?: string, islandId: string }
  coordinator: { url?: string, recordFields: 15 | 13, envFile?: string, inactiveAfterS: number }
  store: RawConfig['store']
  retention: RawConfig['retention']
  logLevel?: string
}

/** The config path a command uses: flag, then AITBC_MESH_CONFIG, then the system default. */
export function configPathFrom (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.AITBC_MESH_CONFIG ?? DEFAULT_CONFIG_PATH)
}

export function loadConfig (file: string, env: NodeJS.ProcessEnv = process.env): MeshConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(file, '', code === 'ENOENT' ? 'file not found (create one with `aitbc-mesh init`)' : `cannot read: ${(err as Error).message}`)
  }
  return parseConfig(text, file, env)
}

export function parseConfig (text: string, file: string, env: NodeJS.ProcessEnv = process.env): MeshConfig {
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!
    const line = first.linePos?.[0]
    throw new ConfigError(file, line == null ? '' : `line ${line.line}, column ${line.col}`, `invalid YAML: ${first.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}`)
  }
  const data: unknown = doc.toJS()
  if (data == null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(file, '', 'expected a YAML mapping with at least node, dataDir')
  }
  const parsed = configSchema.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const field = issue.path.map((part, i) => typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`).join('')
    let message = issue.message
    if (issue.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.join(', ')}`
    if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = 'missing (required)'
    throw new ConfigError(file, field === '' ? '(top level)' : field, message)
  }
  const raw = parsed.data
  const base = dirname(file)
  const abs = (p: string): string => isAbsolute(p) ? p : join(base, p)

  const names = new Set<string>([raw.node.name])
  const peerIds = new Set<string>()
  const peers: MeshConfig['peers'] = []
  raw.peers.forEach((peer, i) => {
    if (names.has(peer.name)) throw new ConfigError(file, `peers[${i}].name`, `"${peer.name}" is used twice; node names must be unique`)
    names.add(peer.name)
    const id = peer.addr.split('/p2p/')[1] as string
    if (peerIds.has(id)) throw new ConfigError(file, `peers[${i}].addr`, `peer id ${id} is listed twice`)
    peerIds.add(id)
    peers.push({
      name: peer.name,
      role: peer.role,
      peerId: peerIdFromString(id),
      addr: peer.addr,
      ...(peer.ssh != null ? { ssh: { ...peer.ssh, privateKey: isAbsolute(peer.ssh.privateKey) ? peer.ssh.privateKey : join(dirname(file), peer.ssh.privateKey) } } : {})
    })
  })
  const genesisCount = [raw.node.role, ...raw.peers.map(p => p.role)].filter(r => r === 'genesis').length
  if (genesisCount > 1) {
    throw new ConfigError(file, 'peers', `${genesisCount} nodes have role genesis; a mesh has exactly one genesis node`)
  }

  const configFiles: ConfigFileSpec[] = raw.probes.configFiles.map((entry, i) => {
    const spec: ConfigFileSpec = typeof entry === 'string'
      ? { path: abs(entry) }
      : { path: abs(entry.path), keys: entry.keys, keepLocal: [...DEFAULT_KEEP_LOCAL_KEYS, ...entry.keepLocal] }
    const problem = neverSynced(spec)
    if (problem != null) throw new ConfigError(file, `probes.configFiles[${i}]`, problem)
    // Checked here rather than in the schema, whose union would name only the entry.
    if (typeof entry !== 'string' && entry.keepLocal.length > CONFIG_SYNC_MAX_KEEP_LOCAL) {
      throw new ConfigError(file, `probes.configFiles[${i}].keepLocal`, `expected at most ${CONFIG_SYNC_MAX_KEEP_LOCAL} patterns, got ${entry.keepLocal.length}`)
    }
    return spec
  })
  const configNames = configFiles.map(f => basename(f.path))
  const clash = configNames.find((n, i) => configNames.indexOf(n) !== i)
  if (clash != null) throw new ConfigError(file, 'probes.configFiles', `two files are named "${clash}"; configuration sync matches files by name, so names must be unique`)
  for (const [field, step] of [['sync.catchUp.action', raw.sync.catchUp], ['sync.afterGit.action', raw.sync.afterGit]] as const) {
    if (step == null || !('action' in step) || Object.hasOwn(raw.actions, step.action)) continue
    const known = Object.keys(raw.actions)
    throw new ConfigError(file, field, `"${step.action}" is not an action of this config (actions: ${known.length > 0 ? known.join(', ') : 'none'}); add it under actions:`)
  }
  const chainIds = raw.probes.chainId ?? []
  const repeatedChain = chainIds.find((c, i) => chainIds.indexOf(c) !== i)
  if (repeatedChain != null) throw new ConfigError(file, 'probes.chainId', `"${repeatedChain}" is listed twice`)
  // Calls a minute to each RPC handler: one per chain per probe (GET /health: one per probe).
  const callsPerMinute = Math.max(1, chainIds.length) * 60_000 / raw.probes.intervalMs
  if (callsPerMinute > PROBE_RPC_BUDGET_PER_MINUTE) {
    const minimum = Math.ceil(Math.max(1, chainIds.length) * 60_000 / PROBE_RPC_BUDGET_PER_MINUTE)
    throw new ConfigError(file, 'probes.intervalMs', `${raw.probes.intervalMs} with ${Math.max(1, chainIds.length)} chain(s) makes ${Math.round(callsPerMinute)} calls a minute to each RPC handler, more than the ${PROBE_RPC_BUDGET_PER_MINUTE} aitbc-mesh may use of the RPC's ${AITBC_RPC_RATE_LIMIT_PER_MINUTE} per client address; use at least ${minimum}`)
  }
  raw.trust.removalsFrom.forEach((who, i) => {
    if (who !== 'genesis' && who !== 'follower' && !names.has(who)) {
      throw new ConfigError(file, `trust.removalsFrom[${i}]`, `"${who}" is neither a role (genesis, follower) nor a node of this config (${[...names].join(', ')})`)
    }
  })
  const requesterLists: Array<[string, string[] | undefined]> = [
    ['sync.forceFrom', raw.sync.forceFrom],
    ...Object.entries(raw.actions).map(([name, action]): [string, string[] | undefined] => [`actions.${name}.allowFrom`, action.allowFrom])
  ]
  for (const [field, list] of requesterLists) {
    list?.forEach((who, i) => {
      if (who !== 'self' && who !== 'genesis' && who !== 'follower' && !names.has(who)) {
        throw new ConfigError(file, `${field}[${i}]`, `"${who}" is neither self, a role (genesis, follower) nor a node of this config (${[...names].join(', ')})`)
      }
    })
  }
  const dataDir = abs(raw.dataDir)
  const intervalMs = raw.heartbeat.intervalMs
  if (raw.heartbeat.offlineAfterMs != null && raw.heartbeat.offlineAfterMs < 2 * intervalMs) {
    throw new ConfigError(file, 'heartbeat.offlineAfterMs', `${raw.heartbeat.offlineAfterMs} is shorter than two heartbeat intervals (${2 * intervalMs}); peers would flap offline between heartbeats`)
  }
  const redisUrl = env.REDIS_URL != null && env.REDIS_URL !== '' ? env.REDIS_URL : raw.redis
  if (redisUrl != null && redisUrl === env.REDIS_URL) {
    const problem = redisUrlProblem(redisUrl)
    if (problem != null) throw new ConfigError(file, 'REDIS_URL (environment)', problem, 'correct REDIS_URL where it is set (under systemd: /etc/aitbc/mesh.env), or unset it to use redis: from this file')
  }
  return {
    file,
    node: raw.node,
    listen: raw.listen,
    identityFile: raw.identity != null ? abs(raw.identity) : join(dataDir, IDENTITY_FILE_NAME),
    dataDir,
    controlSocket: raw.controlSocket != null ? abs(raw.controlSocket) : join(dataDir, CONTROL_SOCKET_FILE_NAME),
    ...(raw.swarmKey != null ? { swarmKeyFile: abs(raw.swarmKey) } : {}),
    ...(redisUrl != null ? { redisUrl } : {}),
    ...(raw.http != null ? { http: parseHttpAddress(raw.http) as { host: string, port: number } } : {}),
    keyPrefix: raw.keyPrefix,
    peers,
    probes: {
      ...(raw.probes.rpc != null ? { rpc: raw.probes.rpc.replace(/\/+$/, '') } : {}),
      chainIds,
      intervalMs: raw.probes.intervalMs,
      services: [...new Set([...(raw.probes.service != null ? [raw.probes.service] : []), ...(raw.probes.services ?? [])])],
      ...(raw.probes.repo != null ? { repo: abs(raw.probes.repo) } : {}),
      configFiles
    },
    actions: raw.actions,
    handlers: handlersFrom(raw.handlers, file, abs),
    handlerConcurrency: raw.handlerConcurrency,
    sync: raw.sync,
    heartbeat: { intervalMs, offlineAfterMs: raw.heartbeat.offlineAfterMs ?? intervalMs * OFFLINE_AFTER_INTERVALS },
    gossip: raw.gossip,
    trust: raw.trust,
    agents: raw.agents,
    coordinator: {
      recordFields: raw.coordinator.recordFields,
      inactiveAfterS: raw.coordinator.inactiveAfterS,
      ...(raw.coordinator.url != null ? { url: raw.coordinator.url.replace(/\/+$/, '') } : {}),
      ...(raw.coordinator.envFile != null ? { envFile: abs(raw.coordinator.envFile) } : {})
    },
    store: raw.store,
    retention: raw.retention,
    ...(raw.logLevel != null ? { logLevel: raw.logLevel } : {})
  }
}

/**
 * Handlers with their program checked: a path (relative ones against the config's folder) to an
 * executable file, so a typo is refused at start rather than failing every message later. A kind
 * named twice is refused too (which one would run?).
 */
function handlersFrom (handlers: HandlerConfig[], file: string, abs: (p: string) => string): HandlerConfig[] {
  const kinds = new Set<string>()
  return handlers.map((handler, i) => {
    if (kinds.has(handler.kind)) throw new ConfigError(file, `handlers[${i}].kind`, `"${handler.kind}" has a handler already; each kind has one`)
    kinds.add(handler.kind)
    const [program, ...args] = handler.run as [string, ...string[]]
    if (!program.includes('/')) throw new ConfigError(file, `handlers[${i}].run[0]`, `"${program}" is not a path; name the program by its path, such as /usr/local/bin/${program}`)
    const path = abs(program)
    try {
      accessSync(path, constants.X_OK)
      if (!statSync(path).isFile()) throw new Error('not a file')
    } catch {
      throw new ConfigError(file, `handlers[${i}].run[0]`, `${path} is not an executable file`)
    }
    return { ...handler, run: [path, ...args] }
  })
}

/**
 * Why a configFiles entry is refused, or null. AITBC's node.env is "unique to each node - DO NOT
 * share" (NODE_ID, p2p_node_id, p2p_peers), secrets files hold secrets, and the legacy .env holds
 * proposer_id: copying them whole would give a follower the genesis node's identity.
 */
function neverSynced (spec: ConfigFileSpec): string | null {
  const name = basename(spec.path)
  if (/secret/i.test(name)) return `${spec.path} holds secrets; configuration sync never copies secrets, so leave it out`
  if (name === 'node.env') return `${spec.path} is unique to each node (NODE_ID, p2p_node_id, p2p_peers); configuration sync must not share it, so leave it out`
  if (name === '.env' && spec.keys == null) return `${spec.path} holds per-node values (proposer_id, p2p_node_id) and must not be copied whole; sync its shared keys with { path: ${spec.path}, keys: env } or leave it out`
  return null
}

/**
 * The chain of an agent registered here without one: agents.chainId, else the node's own chain
 * (the first of probes.chainId), else the coordinator's default.
 */
export function defaultAgentChainId (config: { agents: Pick<MeshConfig['agents'], 'chainId'>, probes: Pick<MeshConfig['probes'], 'chainIds'> }): string {
  return config.agents.chainId ?? config.probes.chainIds[0] ?? DEFAULT_AGENT_CHAIN_ID
}

/** Every node of the mesh, this one first. */
export function allNodes (config: MeshConfig): NodeEntry[] {
  return [{ name: config.node.name, role: config.node.role }, ...config.peers]
}
