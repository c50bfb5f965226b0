import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { createServer } from 'node:net'
import { endianness } from 'node:os'
import { PORT_OWNER_CMDLINE_MAX_CHARS, PORT_OWNER_MAX_LISTED } from '../constants.js'

/**
 * Who holds a TCP port, from Linux's /proc: the listening socket's inode from /proc/net/tcp and
 * tcp6, then the process whose /proc/<pid>/fd links to `socket:[inode]`, its name, command line
 * and systemd unit. Used by the daemon when its listen fails, by doctor and by init. Elsewhere
 * than Linux the holder is an unknown process.
 */

/** On the AITBC hub this gossip relay listens on 0.0.0.0:7070, the mesh's port. */
export const AITBC_GOSSIP_RELAY_UNIT = 'aitbc-blockchain-p2p.service'

export interface ListeningSocket {
  /** The local address as text: 127.0.0.1, 0.0.0.0, ::, ::1, ::ffff:127.0.0.1. */
  address: string
  family: 4 | 6
  port: number
  /** Owner of the socket (the user that opened it). */
  uid: number
  inode: number
}

export interface PortHolder {
  pid: number
  /** /proc/<pid>/comm: the process name. */
  name: string
  /** /proc/<pid>/cmdline with spaces between the arguments, cut to PORT_OWNER_CMDLINE_MAX_CHARS. */
  cmdline: string
  /** The systemd service the process runs in, from /proc/<pid>/cgroup. */
  unit?: string
}

export interface PortOwners {
  host: string
  port: number
  /** False where there is no /proc/net/tcp to read (not Linux): the holder cannot be named. */
  supported: boolean
  /** The listening sockets on the port that can be the one in the way. */
  sockets: ListeningSocket[]
  holders: PortHolder[]
  /** Processes whose open files this user may not read (another user's, without root). */
  uninspectable: number
  /** User names by uid, for the sockets' owners. */
  users: Record<number, string>
}

/** The state a listening socket has in /proc/net/tcp (TCP_LISTEN). */
const TCP_LISTEN = '0A'

/** One 32-bit word of /proc/net/tcp's address field, in the kernel's byte order, as 4 bytes. */
function wordBytes (hex: string, littleEndian: boolean): number[] {
  const bytes = [0, 2, 4, 6].map(i => parseInt(hex.slice(i, i + 2), 16))
  return littleEndian ? bytes.reverse() : bytes
}

function ipv6Text (bytes: number[]): string {
  const isV4Mapped = bytes.slice(0, 10).every(b => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff
  if (isV4Mapped) return `::ffff:${bytes.slice(12).join('.')}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  // The URL parser writes an IPv6 address in its short form (:: for the longest run of zeros).
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
}

/** The listening sockets in the text of /proc/net/tcp (family 4) or /proc/net/tcp6 (family 6). */
export function parseProcNetTcp (text: string, family: 4 | 6, littleEndian = endianness() === 'LE'): ListeningSocket[] {
  const sockets: ListeningSocket[] = []
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    if (fields.length < 10 || fields[3] !== TCP_LISTEN) continue
    const [addrHex, portHex] = (fields[1] ?? '').split(':')
    const width = family === 4 ? 8 : 32
    if (addrHex == null || portHex == null || addrHex.length !== width || !/^[0-9A-Fa-f]+$/.test(addrHex + portHex)) continue
    const bytes: number[] = []
    for (let i = 0; i < width; i += 8) bytes.push(...wordBytes(addrHex.slice(i, i + 8), littleEndian))
    const uid = Number(fields[7])
    const inode = Number(fields[9])
    if (!Number.isInteger(uid) || !Number.isInteger(inode)) continue
    sockets.push({ address: family === 4 ? bytes.join('.') : ipv6Text(bytes), family, port: parseInt(portHex, 16), uid, inode })
  }
  return sockets
}

/**
 * The systemd service a process runs in, from the text of /proc/<pid>/cgroup: the last part of
 * its cgroup path when that is a `.service` (cgroup v2 `0::/system.slice/x.service`, or v1's
 * `name=systemd` line). A process of a login session or a container has none.
 */
export function parseCgroupUnit (text: string): string | undefined {
  const lines = text.split('\n').filter(l => l !== '')
  const line = lines.find(l => l.startsWith('0::')) ?? lines.find(l => l.includes(':name=systemd:'))
  const last = line?.slice(line.lastIndexOf(':') + 1).split('/').pop()
  return last != null && /^[\w@.:-]+\.service$/.test(last) ? last : undefined
}

/** User names by uid from the text of /etc/passwd. */
export function parsePasswd (text: string): Map<number, string> {
  const users = new Map<number, string>()
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':')
    if (name != null && name !== '' && uid != null && /^\d+$/.test(uid)) users.set(Number(uid), name)
  }
  return users
}

/** An address as it is compared: IPv6 in short form, lower case; a DNS name or IPv4 as given. */
function normalHost (host: string): string {
  if (!host.includes(':')) return host
  try {
    return new URL(`http://[${host}]/`).hostname.slice(1, -1)
  } catch {
    return host.toLowerCase()
  }
}

/**
 * Whether a listener on `socket` stands in the way of binding `host` (Linux semantics, roughly:
 * a wildcard on either side collides, `::` also takes IPv4 unless the socket is IPv6-only).
 */
function collides (socket: ListeningSocket, host: string): boolean {
  const wanted = normalHost(host)
  const isIp4 = /^\d+\.\d+\.\d+\.\d+$/.test(wanted)
  const isIp6 = wanted.includes(':')
  if (!isIp4 && !isIp6) return true // a DNS name: any listener on the port
  if (socket.family === 4) {
    if (isIp6) return wanted === '::' || wanted === `::ffff:${socket.address}`
    return socket.address === '0.0.0.0' || wanted === '0.0.0.0' || socket.address === wanted
  }
  if (socket.address === '::') return true
  if (isIp4) return wanted === '0.0.0.0' ? socket.address.startsWith('::ffff:') : socket.address === `::ffff:${wanted}`
  return wanted === '::' || socket.address === wanted
}

function readText (file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

/** Command lines name arguments apart with NULs; one line for a log and a message. */
function commandLine (raw: string): string {
  // eslint-disable-next-line no-control-regex
  const text = raw.replace(/\0+$/, '').replace(/[\0-\x1f\x7f]+/g, ' ').trim()
  return text.length > PORT_OWNER_CMDLINE_MAX_CHARS ? `${text.slice(0, PORT_OWNER_CMDLINE_MAX_CHARS)}...` : text
}

export interface FindPortOwnersOptions {
  /** Another /proc (a test's fixture). */
  procRoot?: string
  /** Another /etc/passwd. */
  passwdFile?: string
}

/** Who listens on `port` in the way of binding `host`; read from /proc, best effort, never throws. */
export function findPortOwners (host: string, port: number, opts: FindPortOwnersOptions = {}): PortOwners {
  const proc = opts.procRoot ?? '/proc'
  const owners: PortOwners = { host, port, supported: false, sockets: [], holders: [], uninspectable: 0, users: {} }
  const tcp4 = readText(`${proc}/net/tcp`)
  const tcp6 = readText(`${proc}/net/tcp6`)
  if (tcp4 == null && tcp6 == null) return owners
  owners.supported = true
  const onPort = [...parseProcNetTcp(tcp4 ?? '', 4), ...parseProcNetTcp(tcp6 ?? '', 6)].filter(s => s.port === port)
  const colliding = onPort.filter(s => collides(s, host))
  // The bind failed, so one of them is in the way even if the rule above missed it.
  owners.sockets = colliding.length > 0 ? colliding : onPort
  if (owners.sockets.length === 0) return owners
  const passwd = parsePasswd(readText(opts.passwdFile ?? '/etc/passwd') ?? '')
  for (const socket of owners.sockets) {
    const user = passwd.get(socket.uid)
    if (user != null) owners.users[socket.uid] = user
  }

  const wanted = new Set(owners.sockets.map(s => `socket:[${s.inode}]`))
  let pids: string[]
  try {
    pids = readdirSync(proc).filter(entry => /^\d+$/.test(entry))
  } catch {
    return owners
  }
  for (const pid of pids) {
    let fds: string[]
    try {
      fds = readdirSync(`${proc}/${pid}/fd`)
    } catch (err) {
      // Gone since the listing (ENOENT), or another user's (EACCES): only the latter hides a holder.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') owners.uninspectable++
      continue
    }
    const holds = fds.some(fd => {
      try {
        return wanted.has(readlinkSync(`${proc}/${pid}/fd/${fd}`))
      } catch {
        return false
      }
    })
    if (!holds) continue
    const unit = parseCgroupUnit(readText(`${proc}/${pid}/cgroup`) ?? '')
    owners.holders.push({
      pid: Number(pid),
      name: (readText(`${proc}/${pid}/comm`) ?? '?').trim(),
      cmdline: commandLine(readText(`${proc}/${pid}/cmdline`) ?? ''),
      ...(unit != null ? { unit } : {})
    })
  }
  owners.holders.sort((a, b) => a.pid - b.pid)
  return owners
}

/** An aitbc-mesh daemon: its unit, or the CLI's `daemon` command on its command line. */
export function isMeshDaemon (holder: PortHolder): boolean {
  return holder.unit === 'aitbc-mesh.service' || /(aitbc-mesh|cli\/main\.js)\s+daemon\b/.test(holder.cmdline)
}

function describeHolder (holder: PortHolder): string {
  const what = holder.cmdline !== '' && holder.cmdline !== holder.name ? `${holder.name}: ${holder.cmdline}` : holder.name
  return `pid ${holder.pid} (${what})${holder.unit != null ? `, systemd unit ${holder.unit}` : ''}`
}

/** The holder in a few words for a message: pid, name, command line and unit, or why it is not known. */
export function describePortOwners (owners: PortOwners): string {
  if (!owners.supported) return 'an unknown process (naming it needs Linux /proc)'
  if (owners.sockets.length === 0) return `an unknown process (no socket listens on port ${owners.port} in /proc/net/tcp or tcp6: it may be in another network namespace, or have just closed)`
  if (owners.holders.length > 0) {
    const listed = owners.holders.slice(0, PORT_OWNER_MAX_LISTED).map(describeHolder).join('; ')
    const more = owners.holders.length - PORT_OWNER_MAX_LISTED
    return more > 0 ? `${listed}; and ${more} more` : listed
  }
  const uids = [...new Set(owners.sockets.map(s => s.uid))]
  const whose = uids.map(uid => owners.users[uid] != null ? `user ${owners.users[uid]!} (uid ${uid})` : `uid ${uid}`).join(', ')
  const self = process.getuid?.()
  if (owners.uninspectable > 0) return `a process of ${whose} that this user${self != null ? ` (uid ${self})` : ''} may not inspect (run as root to name it)`
  return `a process of ${whose} that was not found in /proc (it may have just exited)`
}

/** What the operator does: move the holder (the AITBC relay above all: 7070 is the mesh's), or move the mesh. */
export function portInUseFix (owners: PortOwners, moveMesh: string): string {
  const port = owners.port
  const relay = owners.holders.find(h => h.unit === AITBC_GOSSIP_RELAY_UNIT)
  if (relay != null) {
    return `port ${port} is the mesh's: move the AITBC gossip relay ${AITBC_GOSSIP_RELAY_UNIT} to another port (or stop it: systemctl stop ${AITBC_GOSSIP_RELAY_UNIT}), or ${moveMesh}`
  }
  const mesh = owners.holders.find(isMeshDaemon)
  if (mesh != null) return `another aitbc-mesh daemon (pid ${mesh.pid}) already listens there: stop it, or ${moveMesh}`
  const unit = owners.holders.find(h => h.unit != null)?.unit
  if (unit != null) return `stop or move ${unit} (systemctl stop ${unit}), or ${moveMesh}`
  const holder = owners.holders[0]
  if (holder != null) return `stop or move pid ${holder.pid} (${holder.name}), or ${moveMesh}`
  return `find it with \`sudo ss -ltnp 'sport = :${port}'\` and stop or move it, or ${moveMesh}`
}

/** Host and port of a TCP listen multiaddr (/ip4, /ip6, /dns4, /dns6), or undefined. */
export function tcpListenAddress (addr: string): { host: string, port: number } | undefined {
  const match = /^\/(?:ip4|ip6|dns4|dns6)\/([^/]+)\/tcp\/(\d+)(?:\/|$)/.exec(addr)
  return match != null ? { host: match[1]!, port: Number(match[2]) } : undefined
}

/** `host:port` as a socket address is written (IPv6 in brackets). */
export function hostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** Binds `host:port` and lets go at once: undefined if it could be bound, else the error. */
export async function tryBind (host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', err => { resolve(err) })
    server.listen({ host, port, exclusive: true }, () => { server.close(() => { resolve(undefined) }) })
  })
}

export interface AddressInUse {
  /** The listen multiaddr of the config. */
  listen: string
  /** host:port */
  address: string
  owners: PortOwners
}

/**
 * The daemon could not listen because another process holds the address. A port can clear (the
 * other process moves or stops), so this start failure is retried by systemd: CLI exit 75.
 */
export class ListenAddressInUseError extends Error {
  override name = 'ListenAddressInUseError'
  constructor (readonly inUse: AddressInUse[], readonly fix: string) {
    super(`${inUse.map(u => `cannot listen on ${u.listen} (${u.address}): address already in use, held by ${describePortOwners(u.owners)}`).join('; ')}; fix: ${fix}`)
  }

  /** Fields of the `start_failed` log line. */
  logFields (): Record<string, unknown> {
    return {
      reason: 'listen_address_in_use',
      addresses: this.inUse.map(u => ({ listen: u.listen, address: u.address, holders: u.owners.holders, holder: describePortOwners(u.owners) })),
      fix: this.fix
    }
  }
}

/**
 * The listen addresses a failed libp2p start names as in use. libp2p reports every address that
 * failed in one error, a line `  <multiaddr>: Error: listen EADDRINUSE: ...` each.
 */
export function addressesInUse (err: unknown, listen: string[]): string[] {
  const text = err instanceof Error ? `${err.message}\n${String((err as { cause?: unknown }).cause ?? '')}` : String(err)
  if (!text.includes('EADDRINUSE')) return []
  const named = [...text.matchAll(/^\s*(\/\S+): .*EADDRINUSE/gm)].map(m => m[1]!).filter(a => listen.includes(a))
  return named.length > 0 ? [...new Set(named)] : (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && listen.length === 1 ? listen : []
}

/**
 * A failed listen turned into the error the operator reads: the address, who holds it and the fix;
 * any other failure as it was.
 */
export function explainListenFailure (err: unknown, listen: string[], configFile: string): unknown {
  const inUse: AddressInUse[] = []
  for (const addr of addressesInUse(err, listen)) {
    const at = tcpListenAddress(addr)
    if (at == null) continue
    inUse.push({ listen: addr, address: hostPort(at.host, at.port), owners: findPortOwners(at.host, at.port) })
  }
  if (inUse.length === 0) return err
  return new ListenAddressInUseError(inUse, portInUseFix(inUse[0]!.owners, `give the mesh another listen address in listen: of ${configFile} (every other node's peers[].addr for this node changes with it)`))
}
