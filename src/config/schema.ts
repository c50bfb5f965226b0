import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { ANTI_ENTROPY_INTERVAL_MS, DEFAULT_GOSSIP_MESH_DEGREE, MAX_ANTI_ENTROPY_INTERVAL_MS, MAX_GOSSIP_MESH_DEGREE, MIN_ANTI_ENTROPY_INTERVAL_MS, MIN_GOSSIP_MESH_DEGREE } from '../constants.js'
import { CONFIG_SYNC_MAX_KEY_CHARS, DEFAULT_AGENT_ISLAND_ID, DEFAULT_COORDINATOR_INACTIVE_AFTER_S, DEFAULT_FORCE_FROM, DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_REMOVALS_FROM, DEFAULT_TRUST_CLOCK_SKEW_MS, DEFAULT_HTTP_ADDRESS, DEFAULT_LISTEN, DEFAULT_MEMPOOL_TOLERANCE, DEFAULT_SYNC_LAG_THRESHOLD, REDIS_MAX_DB_INDEX, RESERVED_TARGET_NAMES, SYNC_MAX_CONFIG_FILES } from '../constants.js'
import { DEFAULT_INBOX_RETENTION_COUNT, DEFAULT_INBOX_RETENTION_S, DEFAULT_OPERATION_RETENTION_COUNT, DEFAULT_OPERATION_RETENTION_S, DEFAULT_SENT_RETENTION_COUNT, DEFAULT_SENT_RETENTION_S, DEFAULT_STORE_DURABILITY, MIN_RETENTION_S, STORE_DURABILITY_MODES } from '../constants.js'
import { HANDLER_DEFAULT_CONCURRENCY, HANDLER_DEFAULT_TIMEOUT_S, HANDLER_MAX_CONCURRENCY, HANDLER_MAX_ENTRIES, HANDLER_MAX_TIMEOUT_S, RESERVED_KIND_PREFIX } from '../constants.js'
import { CHAIN_ID_PATTERN, DEFAULT_AITBC_RPC_URL, DEFAULT_PROBE_INTERVAL_MS, MAX_PROBE_CHAINS, MAX_PROBE_INTERVAL_MS, MAX_PROBE_SERVICES, MIN_PROBE_INTERVAL_MS } from '../constants.js'

export const ROLES = ['genesis', 'follower'] as const
export type Role = typeof ROLES[number]

/** A node name's shape (the reserved target keywords are refused by `nodeName` too). */
export const NODE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i

export const nodeName = z.string()
  .regex(NODE_NAME, 'expected a node name of letters, digits, ".", "_" or "-" (at most 63, starting with a letter or digit)')
  .refine(name => !(RESERVED_TARGET_NAMES as readonly string[]).includes(name.toLowerCase()),
    { message: `must not be one of the target keywords ${RESERVED_TARGET_NAMES.join(', ')}` })

const role = z.enum(ROLES, { message: 'expected "genesis" or "follower"' })

const multiaddrString = z.string().superRefine((value, ctx) => {
  try {
    multiaddr(value)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `expected a multiaddr such as ${DEFAULT_LISTEN}, got "${value}"` })
  }
})

const listenAddr = multiaddrString.refine(value => /^\/(ip4|ip6|dns4|dns6)\/[^/]+\/tcp\/\d+$/.test(value),
  { message: `expected a TCP listen multiaddr such as ${DEFAULT_LISTEN}` })

const peerAddr = multiaddrString.superRefine((value, ctx) => {
  const match = /^\/(?:ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+\/p2p\/([^/]+)$/.exec(value)
  if (match == null) {
    ctx.addIssue({ code: 'custom', message: `expected /ip4/<address>/tcp/<port>/p2p/<peer id>, got "${value}"` })
    return
  }
  try {
    peerIdFromString(match[1] as string)
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${match[1]}" is not a valid peer id` })
  }
})

const httpUrl = z.string().url({ message: `expected an http(s) URL such as ${DEFAULT_AITBC_RPC_URL}` })
  .refine(value => /^https?:\/\//.test(value), { message: 'expected an http:// or https:// URL' })

const CHAIN_ID_EXPECTED = 'expected a chain id such as ait-devnet (letters, digits, ".", "_" or "-", at most 64)'
/** One chain id, or a list of them; always a list after parsing. */
const chainIdList = z.unknown().transform((value, ctx): string[] => {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list)) {
    ctx.addIssue({ code: 'custom', message: `${CHAIN_ID_EXPECTED}, or a list of them` })
    return z.NEVER
  }
  if (list.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one chain id' })
  if (list.length > MAX_PROBE_CHAINS) ctx.addIssue({ code: 'custom', message: `expected at most ${MAX_PROBE_CHAINS} chain ids` })
  list.forEach((item, i) => {
    if (typeof item !== 'string' || !CHAIN_ID_PATTERN.test(item)) ctx.addIssue({ code: 'custom', path: typeof value === 'string' ? [] : [i], message: CHAIN_ID_EXPECTED })
  })
  return list as string[]
})
const unitName = z.string().regex(/^[\w@.:-]+$/, 'expected a systemd unit name such as aitbc-blockchain-node.service')

const REDIS_URL_EXPECTED = 'expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379/1'

/** Why a URL that does not parse was refused, naming the part at fault but never the password. */
function unparseableRedisUrl (value: string): string {
  const authority = value.replace(/^rediss?:\/\//, '').split(/[/?#]/)[0] ?? ''
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1)
  let host = hostPort
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']')
    if (close < 0) return `IPv6 address "${hostPort}" has no closing "]"`
    host = hostPort.slice(0, close + 1)
  } else if (hostPort.includes(':')) {
    host = hostPort.slice(0, hostPort.lastIndexOf(':'))
  }
  const rest = hostPort.slice(host.length)
  const port = rest.startsWith(':') ? rest.slice(1) : undefined
  if (port != null && !/^\d+$/.test(port)) return `port "${port}" is not a number from 1 to 65535`
  if (port != null && Number(port) > 65535) return `port ${port} is out of range 1-65535`
  return `host "${host}" is not a valid host name or address`
}

/** The reason a Redis URL is refused (it would fail at every connect), or undefined. */
export function redisUrlProblem (value: string): string | undefined {
  if (!/^rediss?:\/\//.test(value)) return REDIS_URL_EXPECTED
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return `${unparseableRedisUrl(value)}; ${REDIS_URL_EXPECTED}`
  }
  if (url.port === '0') return `port 0 is out of range 1-65535; ${REDIS_URL_EXPECTED}`
  const databases = [...(url.pathname !== '' && url.pathname !== '/' ? [url.pathname.slice(1)] : []), ...url.searchParams.getAll('db')]
  for (const db of databases) {
    if (!/^\d{1,9}$/.test(db) || Number(db) > REDIS_MAX_DB_INDEX) {
      return `database "${db}" is not a number from 0 to ${REDIS_MAX_DB_INDEX} (Redis's default databases 16); ${REDIS_URL_EXPECTED}`
    }
  }
  return undefined
}

const redisUrl = z.string().superRefine((value, ctx) => {
  const problem = redisUrlProblem(value)
  if (problem != null) ctx.addIssue({ code: 'custom', message: problem })
})

/**
 * `http:` as "host:port" (IPv6 in brackets), or the reason it is refused. Only loopback hosts
 * (127.0.0.0/8, ::1, localhost) are accepted: metrics and the status page are for this host.
 */
export function parseHttpAddress (value: string): { host: string, port: number } | string {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
  const expected = `expected a loopback address and port such as ${DEFAULT_HTTP_ADDRESS} (127.0.0.0/8, [::1] or localhost)`
  if (match == null) return `${expected}, got "${value}"`
  const host = (match[1] ?? match[2]) as string
  const port = Number(match[3])
  if (port < 1 || port > 65535) return `port ${port} is out of range 1-65535`
  const loopback = host === 'localhost' || host === '::1' ||
    (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) && host.split('.').every(o => Number(o) <= 255))
  if (!loopback) return `${expected}; "${host}" is not a loopback address (metrics and the status page are served to this host only)`
  return { host, port }
}

const httpAddress = z.string({ message: `expected "host:port" such as ${DEFAULT_HTTP_ADDRESS}` }).superRefine((value, ctx) => {
  const parsed = parseHttpAddress(value)
  if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed })
})

/** Opt-in SSH fallback for a peer: used only when the mesh cannot reach it, only for status and health. */
export const sshSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().min(1),
  /** Path of the private key (key authentication only; no passwords). */
  privateKey: z.string().min(1),
  /** The host's public key, pinned: "ssh-ed25519 AAAA..." as in known_hosts. */
  hostKey: z.string().regex(/^ssh-[\w-]+ [A-Za-z0-9+/=]+/, 'expected the host key as "ssh-ed25519 AAAA..." (from the host\'s /etc/ssh/ssh_host_*_key.pub)'),
  /** What runs on the host: the node's own probes, printed as JSON. */
  command: z.string().min(1).default('aitbc-mesh probe --json')
}).strict()

export const peerSchema = z.object({
  name: nodeName,
  role,
  addr: peerAddr,
  ssh: sshSchema.optional()
}).strict()

export type SshConfig = z.infer<typeof sshSchema>

export const actionSchema = z.object({
  run: z.array(z.string().min(1)).min(1, 'expected the command as a list: [program, arg, ...]'),
  destructive: z.boolean().default(false),
  timeout: z.number().int().positive().max(120).optional(),
  /**
   * Who may run it: node names, the roles genesis/follower, or self (this node's own CLI).
   * Unset: anyone on the allowlist, or for a destructive action DEFAULT_DESTRUCTIVE_FROM.
   */
  allowFrom: z.array(z.string().min(1)).optional()
}).strict()

/**
 * A message handler: a program from this node's config run for each stored message whose kind
 * is `kind` (exact), or starts with the text before a final `*`.
 */
export const handlerSchema = z.object({
  kind: z.string().regex(/^[\w.:-]{1,64}\*?$|^\*$/, 'expected a message kind (letters, digits, ".", ":", "_" or "-"), or a prefix ending in "*"')
    .refine(kind => !kind.startsWith(RESERVED_KIND_PREFIX), { message: `kinds starting with "${RESERVED_KIND_PREFIX}" are the daemon's own` }),
  run: z.array(z.string().min(1, 'expected a non-empty argument')).min(1, 'expected the program and its arguments as a list: [program, arg, ...]'),
  timeout: z.number({ message: `expected seconds, from 1 to ${HANDLER_MAX_TIMEOUT_S}` }).int('expected whole seconds')
    .min(1, `expected seconds, from 1 to ${HANDLER_MAX_TIMEOUT_S}`).max(HANDLER_MAX_TIMEOUT_S, `expected seconds, from 1 to ${HANDLER_MAX_TIMEOUT_S}`).default(HANDLER_DEFAULT_TIMEOUT_S)
}).strict()

/** A key name in a KEY=VALUE file (what systemd's EnvironmentFile and AITBC's settings read). */
export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * A configuration file kept in sync: a path (the whole file is compared and copied), or
 * `{ path, keys: env, keepLocal }` for a KEY=VALUE file compared and merged key by key, where
 * DEFAULT_KEEP_LOCAL_KEYS and `keepLocal` (names or `*` globs) are never compared, sent or written.
 */
const configFileEntry = z.union([
  z.string().min(1),
  z.object({
    path: z.string().min(1),
    keys: z.literal('env', { message: 'expected keys: env (a file of KEY=VALUE lines, synced key by key)' }),
    keepLocal: z.array(z.string().max(CONFIG_SYNC_MAX_KEY_CHARS, `expected at most ${CONFIG_SYNC_MAX_KEY_CHARS} characters`).regex(/^[A-Za-z0-9_*]+$/, 'expected a key name, or a pattern with * such as *SECRET*')).default([])
  }).strict()
], { message: 'expected a path, or { path, keys: env, keepLocal: [...] }' })

/** How long and how many of one kind of record are kept; the older go first when either is exceeded. */
function retention (maxAgeS: number, maxCount: number) {
  return z.object({
    maxAgeS: z.number().int().min(MIN_RETENTION_S).max(10 * 365 * 24 * 3600).default(maxAgeS),
    maxCount: z.number().int().min(1).max(100_000_000).default(maxCount)
  }).strict().default({ maxAgeS, maxCount })
}

export const configSchema = z.object({
  node: z.object({ name: nodeName, role }).strict(),
  listen: z.array(listenAddr).min(1, 'expected at least one listen address').default([DEFAULT_LISTEN]),
  identity: z.string().min(1).optional(),
  dataDir: z.string().min(1),
  controlSocket: z.string().min(1).optional(),
  swarmKey: z.string().min(1).optional(),
  redis: redisUrl.optional(),
  /** Serves /metrics, /health and the status page on this loopback address; off when absent. */
  http: httpAddress.optional(),
  /** Prepended to every store key; empty gives the AITBC agent coordinator's own key names. */
  keyPrefix: z.string().max(64).regex(/^[\w:.-]*$/, 'expected letters, digits, ":", ".", "_" or "-"').default(''),
  peers: z.array(peerSchema).default([]),
  probes: z.object({
    rpc: httpUrl.optional(),
    /**
     * The chain(s) whose height and mempool are read (the RPC counts a mempool per chain);
     * absent: the first of the RPC's `supported_chains` from GET /health.
     */
    chainId: chainIdList.optional(),
    /** How often the daemon probes; status answers from the last probe. */
    intervalMs: z.number().int().min(MIN_PROBE_INTERVAL_MS).max(MAX_PROBE_INTERVAL_MS).default(DEFAULT_PROBE_INTERVAL_MS),
    service: unitName.optional(),
    /** More units whose state is reported (with `service`, e.g. the node's and the RPC's). */
    services: z.array(unitName).max(MAX_PROBE_SERVICES, `expected at most ${MAX_PROBE_SERVICES} units`).optional(),
    repo: z.string().min(1).optional(),
    configFiles: z.array(configFileEntry).max(SYNC_MAX_CONFIG_FILES, `expected at most ${SYNC_MAX_CONFIG_FILES} files`).default([])
  }).strict().default({ configFiles: [], intervalMs: DEFAULT_PROBE_INTERVAL_MS }),
  actions: z.record(z.string().regex(/^[\w.-]+$/, 'expected an action name of letters, digits, ".", "_" or "-"'), actionSchema).default({}),
  /** Programs run for received messages of a kind (see handlerSchema). */
  handlers: z.array(handlerSchema).max(HANDLER_MAX_ENTRIES, `expected at most ${HANDLER_MAX_ENTRIES} handlers`).default([]),
  /** Handler runs at once on this node; more wait in line (in arrival order per sender). */
  handlerConcurrency: z.number({ message: `expected a whole number from 1 to ${HANDLER_MAX_CONCURRENCY}` }).int(`expected a whole number from 1 to ${HANDLER_MAX_CONCURRENCY}`)
    .min(1, `expected a whole number from 1 to ${HANDLER_MAX_CONCURRENCY}`).max(HANDLER_MAX_CONCURRENCY, `expected a whole number from 1 to ${HANDLER_MAX_CONCURRENCY}`).default(HANDLER_DEFAULT_CONCURRENCY),
  sync: z.object({
    /** A node more than this many blocks behind the highest one runs its catch-up. */
    lagThreshold: z.number().int().min(0).default(DEFAULT_SYNC_LAG_THRESHOLD),
    /**
     * How this node catches up: one of its actions (for AITBC, starting aitbc-blockchain-sync.service),
     * or an HTTP POST with no body to a path of its own RPC. Unset: catch-up is refused, saying so.
     */
    catchUp: z.union([
      z.object({ post: z.string().regex(/^\//, 'expected a path of the RPC such as /rpc/sync') }).strict(),
      z.object({ action: z.string().min(1) }).strict()
    ]).optional(),
    /** An action run after a git sync moved this node's HEAD (for AITBC, the repository's update script). */
    afterGit: z.object({ action: z.string().min(1) }).strict().optional(),
    /** Mempool sizes that differ by at most this many transactions count as in sync. */
    mempoolTolerance: z.number().int().min(0).default(DEFAULT_MEMPOOL_TOLERANCE),
    /** Who may ask this node for a forced step (git reset, config overwrite): names, roles or self. */
    forceFrom: z.array(z.string().min(1)).default([...DEFAULT_FORCE_FROM])
  }).strict().default({ lagThreshold: DEFAULT_SYNC_LAG_THRESHOLD, mempoolTolerance: DEFAULT_MEMPOOL_TOLERANCE, forceFrom: [...DEFAULT_FORCE_FROM] }),
  heartbeat: z.object({
    intervalMs: z.number().int().min(100).max(60000).default(DEFAULT_HEARTBEAT_INTERVAL_MS),
    offlineAfterMs: z.number().int().min(200).max(600000).optional()
  }).strict().default({ intervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS }),
  /** How widely heartbeats and agent changes are gossiped; the defaults suit meshes up to about 100 nodes (README "Beyond one machine"). */
  gossip: z.object({
    meshDegree: z.number({ message: `expected a whole number from ${MIN_GOSSIP_MESH_DEGREE} to ${MAX_GOSSIP_MESH_DEGREE}` }).int(`expected a whole number from ${MIN_GOSSIP_MESH_DEGREE} to ${MAX_GOSSIP_MESH_DEGREE}`)
      .min(MIN_GOSSIP_MESH_DEGREE, `expected a whole number from ${MIN_GOSSIP_MESH_DEGREE} to ${MAX_GOSSIP_MESH_DEGREE}`).max(MAX_GOSSIP_MESH_DEGREE, `expected a whole number from ${MIN_GOSSIP_MESH_DEGREE} to ${MAX_GOSSIP_MESH_DEGREE}`).default(DEFAULT_GOSSIP_MESH_DEGREE),
    /** Each node's own heartbeats and changes go to every connected peer (true), or to its mesh peers only. */
    floodPublish: z.boolean().default(true),
    /** How often the agent registry is compared with one peer, to repair what gossip missed. */
    antiEntropyIntervalMs: z.number().int().min(MIN_ANTI_ENTROPY_INTERVAL_MS).max(MAX_ANTI_ENTROPY_INTERVAL_MS).default(ANTI_ENTROPY_INTERVAL_MS)
  }).strict().default({ meshDegree: DEFAULT_GOSSIP_MESH_DEGREE, floodPublish: true, antiEntropyIntervalMs: ANTI_ENTROPY_INTERVAL_MS }),
  /** Agents registered on this node: the chain and island the AITBC coordinator files them under. */
  agents: z.object({
    /** Default chain_id of an agent registered here (unset: the first of probes.chainId, else the coordinator's default chain). */
    chainId: z.string().min(1).max(64).regex(/^[\w.:-]+$/, 'expected a chain id such as ait-hub').optional(),
    islandId: z.string().min(1).max(64).regex(/^[\w.:-]+$/, 'expected an island id of letters, digits, ".", ":", "_" or "-"').default(DEFAULT_AGENT_ISLAND_ID)
  }).strict().default({ islandId: DEFAULT_AGENT_ISLAND_ID }),
  /** The AITBC agent coordinator running beside this node (the hub), if any. */
  coordinator: z.object({
    /** Its HTTP API (every route under /v1): remote agents are exported into it live. */
    url: httpUrl.optional(),
    /** Record layout it loads from Redis: 15 fields (newest release) or 13 (older release). */
    recordFields: z.union([z.literal(15), z.literal(13)]).default(15),
    /** The coordinator's environment file, where `doctor` reads its REDIS_URL. */
    envFile: z.string().min(1).optional(),
    /** After how long without a heartbeat it marks an agent inactive (its heartbeat monitor: 120 s). */
    inactiveAfterS: z.number().int().min(2).max(3600).default(DEFAULT_COORDINATOR_INACTIVE_AFTER_S)
  }).strict().default({ recordFields: 15, inactiveAfterS: DEFAULT_COORDINATOR_INACTIVE_AFTER_S }),
  /** What this node accepts from its peers beyond the allowlist. */
  trust: z.object({
    /** Timestamps and clock stamps from the wire further than this from our clock are refused. */
    clockSkewMs: z.number().int().min(1000).max(3600_000).default(DEFAULT_TRUST_CLOCK_SKEW_MS),
    /**
     * Nodes (names, or the roles genesis/follower) whose removals of agents owned by other nodes
     * are applied; every node may always remove its own agents.
     */
    removalsFrom: z.array(z.string().min(1)).default([...DEFAULT_REMOVALS_FROM])
  }).strict().default({ clockSkewMs: DEFAULT_TRUST_CLOCK_SKEW_MS, removalsFrom: [...DEFAULT_REMOVALS_FROM] }),
  store: z.object({
    /**
     * What a store that can lose acknowledged writes does: refuse (the daemon does not start, and
     * stops storing if it finds one later), degraded (runs, reported), accept (runs, logged once).
     */
    durability: z.enum(STORE_DURABILITY_MODES, { message: `expected one of ${STORE_DURABILITY_MODES.join(', ')}` }).default(DEFAULT_STORE_DURABILITY)
  }).strict().default({ durability: DEFAULT_STORE_DURABILITY }),
  retention: z.object({
    inbox: retention(DEFAULT_INBOX_RETENTION_S, DEFAULT_INBOX_RETENTION_COUNT),
    sent: retention(DEFAULT_SENT_RETENTION_S, DEFAULT_SENT_RETENTION_COUNT),
    operations: retention(DEFAULT_OPERATION_RETENTION_S, DEFAULT_OPERATION_RETENTION_COUNT)
  }).strict().default({
    inbox: { maxAgeS: DEFAULT_INBOX_RETENTION_S, maxCount: DEFAULT_INBOX_RETENTION_COUNT },
    sent: { maxAgeS: DEFAULT_SENT_RETENTION_S, maxCount: DEFAULT_SENT_RETENTION_COUNT },
    operations: { maxAgeS: DEFAULT_OPERATION_RETENTION_S, maxCount: DEFAULT_OPERATION_RETENTION_COUNT }
  }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional()
}).strict()

export type RawConfig = z.infer<typeof configSchema>
export type PeerConfig = z.infer<typeof peerSchema>
export type ActionConfig = z.infer<typeof actionSchema>
export type HandlerConfig = z.infer<typeof handlerSchema>
