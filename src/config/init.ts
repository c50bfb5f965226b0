import { chownSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { ensureIdentity, ensureSwarmKey } from '../mesh/identity.js'
import { describePortOwners, findPortOwners, isMeshDaemon, portInUseFix, tcpListenAddress, tryBind } from '../mesh/port-owner.js'
import { CONFIG_FILE_NAME, CONTROL_SOCKET_FILE_NAME, DEFAULT_LISTEN, IDENTITY_FILE_NAME, SWARM_KEY_FILE_NAME } from '../constants.js'
import { UsageError } from '../errors.js'
import { nodeName, ROLES, type Role } from './schema.js'
import { parseConfig } from './config.js'

export interface InitOptions {
  name: string
  role: string
  dir: string
  listen?: string[]
  swarmKey?: boolean
  /** Where the config is written; default `<dir>/mesh.yaml`. */
  config?: string
  controlSocket?: string
  force?: boolean
}

export interface InitResult {
  name: string
  role: Role
  peerId: string
  addrs: string[]
  config: string
  identity: string
  swarmKey?: string
  identityCreated: boolean
  configWritten: boolean
  /** The command other nodes run to add this one to their allowlist. */
  addPeerCommand: string
  /** Listen ports another process holds now: the daemon will not start until they are free. */
  warnings: string[]
}

/** Concrete addresses a listen address is reachable on (0.0.0.0 means every local IPv4 address). */
export function announceAddrs (listen: string[], peerId: string): string[] {
  const out: string[] = []
  for (const addr of listen) {
    const match = /^\/ip4\/0\.0\.0\.0\/tcp\/(\d+)$/.exec(addr)
    if (match != null) {
      const ips = Object.values(networkInterfaces()).flat()
        .filter(i => i != null && i.family === 'IPv4' && !i.internal).map(i => i!.address)
      for (const ip of ips.length > 0 ? ips : ['127.0.0.1']) out.push(`/ip4/${ip}/tcp/${match[1]}/p2p/${peerId}`)
    } else {
      out.push(`${addr}/p2p/${peerId}`)
    }
  }
  return out
}

function yamlString (value: string): string {
  return JSON.stringify(value)
}

function renderConfig (o: { name: string, role: Role, listen: string[], identity: string, dataDir: string, controlSocket: string, swarmKey?: string }): string {
  return `# aitbc-mesh node configuration (see README: Configuration)
node:
  name: ${yamlString(o.name)}
  role: ${o.role}
listen:
${o.listen.map(a => `  - ${a}`).join('\n')}
identity: ${yamlString(o.identity)}
dataDir: ${yamlString(o.dataDir)}
controlSocket: ${yamlString(o.controlSocket)}
${o.swarmKey != null ? `swarmKey: ${yamlString(o.swarmKey)}\n` : '# swarmKey: /etc/aitbc/mesh.swarm.key   # private network: every node needs the same key\n'}# redis: redis://127.0.0.1:6379/1        # local persistence (db 1, as the agent coordinator); REDIS_URL overrides
# The allowlist: only these nodes may connect. Run here the \`aitbc-mesh config add-peer\` line that
# \`aitbc-mesh init\` printed on each other node, then \`aitbc-mesh reload\`.
peers: []
#  - name: aitbc1
#    role: follower
#    addr: /ip4/10.1.223.40/tcp/7070/p2p/12D3KooW...
probes: {}
#  rpc: http://127.0.0.1:8202                   # blockchain RPC (aitbc-blockchain-rpc.service)
#  chainId: ait-mainnet                         # unset: the first of the RPC's supported_chains
#  intervalMs: 5000
#  service: aitbc-blockchain-node.service
#  services: [aitbc-blockchain-rpc.service]
#  configFiles: [{ path: /etc/aitbc/blockchain.env, keys: env }]   # shared keys only; never node.env
heartbeat:
  intervalMs: 1000
`
}

/**
 * The owner of the data folder when init runs as root and the folder belongs to another user
 * (the service user, e.g. `aitbc` after config/install.sh); otherwise undefined.
 */
function serviceOwnerOf (dir: string): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const { uid, gid } = statSync(dir)
  return uid !== 0 ? { uid, gid } : undefined
}

export async function initNode (opts: InitOptions): Promise<InitResult> {
  const name = nodeName.safeParse(opts.name)
  if (!name.success) throw new UsageError(`--name "${opts.name}": ${name.error.issues[0]?.message}`)
  if (!(ROLES as readonly string[]).includes(opts.role)) throw new UsageError(`--role "${opts.role}": expected genesis or follower`)
  const role = opts.role as Role
  const dir = resolve(opts.dir)
  const listen = opts.listen != null && opts.listen.length > 0 ? opts.listen : [DEFAULT_LISTEN]
  for (const addr of listen) {
    try {
      multiaddr(addr)
    } catch {
      throw new UsageError(`--listen "${addr}": expected a multiaddr such as ${DEFAULT_LISTEN}`)
    }
    if (!/^\/(ip4|ip6)\/[^/]+\/tcp\/\d+$/.test(addr)) throw new UsageError(`--listen "${addr}": expected /ip4/<address>/tcp/<port>`)
  }
  mkdirSync(dir, { recursive: true, mode: 0o750 })
  const configFile = resolve(opts.config ?? join(dir, CONFIG_FILE_NAME))
  const identityFile = join(dir, IDENTITY_FILE_NAME)
  const swarmKeyFile = opts.swarmKey === true ? join(dir, SWARM_KEY_FILE_NAME) : undefined
  const { identity, created } = await ensureIdentity(identityFile)
  const swarmKeyCreated = swarmKeyFile != null && ensureSwarmKey(swarmKeyFile)
  const serviceUser = serviceOwnerOf(dir)
  // Run as root for a service user's folder: that user gets the secrets it must read.
  if (serviceUser != null) {
    if (created) chownSync(identityFile, serviceUser.uid, serviceUser.gid)
    if (swarmKeyCreated) chownSync(swarmKeyFile, serviceUser.uid, serviceUser.gid)
  }

  const configDir = resolve(configFile, '..')
  const rel = (p: string): string => { const r = relative(configDir, p); return r === '' ? '.' : r.startsWith('..') ? p : r }
  let configWritten = false
  if (!existsSync(configFile) || opts.force === true) {
    const text = renderConfig({
      name: name.data,
      role,
      listen,
      identity: rel(identityFile),
      dataDir: rel(dir),
      controlSocket: opts.controlSocket ?? rel(join(dir, CONTROL_SOCKET_FILE_NAME)),
      ...(swarmKeyFile != null ? { swarmKey: rel(swarmKeyFile) } : {})
    })
    parseConfig(text, configFile, {}) // never write a config the daemon would refuse
    mkdirSync(configDir, { recursive: true })
    writeFileSync(configFile, text, { mode: 0o640 })
    // Root keeps the config; the service user's group may read it (0640), not change it.
    if (serviceUser != null) chownSync(configFile, 0, serviceUser.gid)
    configWritten = true
  }
  const peerId = identity.peerId.toString()
  const addrs = announceAddrs(listen, peerId)
  return {
    name: name.data,
    role,
    peerId,
    addrs,
    config: configFile,
    identity: identityFile,
    ...(swarmKeyFile != null ? { swarmKey: swarmKeyFile } : {}),
    identityCreated: created,
    configWritten,
    addPeerCommand: `aitbc-mesh config add-peer ${name.data} ${addrs[0]} --role ${role}`,
    warnings: await listenWarnings(listen, configFile)
  }
}

/**
 * A warning for each listen address another process holds, naming it and the fix (init goes on:
 * the port may be freed before the daemon starts). On the AITBC hub this finds the gossip relay.
 */
async function listenWarnings (listen: string[], configFile: string): Promise<string[]> {
  const warnings: string[] = []
  for (const addr of listen) {
    const at = tcpListenAddress(addr)
    if (at == null || (await tryBind(at.host, at.port))?.code !== 'EADDRINUSE') continue
    const owners = findPortOwners(at.host, at.port)
    const held = `listen ${addr}: port ${at.port} on ${at.host} is in use by ${describePortOwners(owners)}`
    const moveMesh = `give the mesh another --listen /ip4/<address>/tcp/<port> (init --force rewrites the config), or another listen: in ${configFile}`
    if (owners.holders.length > 0 && owners.holders.every(isMeshDaemon)) {
      warnings.push(`${held}; if that is this node's daemon, nothing to do; otherwise ${portInUseFix(owners, moveMesh)}`)
    } else {
      warnings.push(`${held}; the daemon cannot start while it is; fix: ${portInUseFix(owners, moveMesh)}`)
    }
  }
  return warnings
}
