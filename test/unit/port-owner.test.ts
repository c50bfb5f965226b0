import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PORT_OWNER_MAX_LISTED } from '../../src/constants.js'
import {
  addressesInUse, AITBC_GOSSIP_RELAY_UNIT, describePortOwners, explainListenFailure, findPortOwners, ListenAddressInUseError, parseCgroupUnit, parseProcNetTcp,
  portInUseFix, type PortOwners
} from '../../src/mesh/port-owner.js'
import { tempDir } from '../helpers.js'

const TCP_HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'
const TCP6_HEADER = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'

/** A line of /proc/net/tcp or tcp6 as the kernel writes it (x86: each 32-bit word little-endian). */
function tcpLine (sl: number, local: string, remote: string, state: string, uid: number, inode: number): string {
  return `${String(sl).padStart(4)}: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 ${inode} 1 0000000000000000 100 0 0 10 0`
}

const PROC_NET_TCP = [
  TCP_HEADER,
  // 0.0.0.0:7070 LISTEN, root: the AITBC gossip relay on the hub.
  tcpLine(0, '00000000:1B9E', '00000000:0000', '0A', 0, 4242),
  // 127.0.0.1:8006 LISTEN: the blockchain RPC.
  tcpLine(1, '0100007F:1F46', '00000000:0000', '0A', 999, 5000),
  // A connection from port 7070 (ESTABLISHED): not a listener.
  tcpLine(2, '0A01DF5D:1B9E', '0A01DF28:A3C4', '01', 0, 4300),
  // 127.0.0.1:7072 and 127.0.0.2:7072 LISTEN, by a user this one may not inspect.
  tcpLine(3, '0100007F:1BA0', '00000000:0000', '0A', 999, 7001),
  tcpLine(4, '0200007F:1BA0', '00000000:0000', '0A', 999, 7002),
  // 127.0.0.1:7075 LISTEN, shared by several worker processes.
  tcpLine(5, '0100007F:1BA3', '00000000:0000', '0A', 0, 7500),
  ''
].join('\n')

const PROC_NET_TCP6 = [
  TCP6_HEADER,
  // [::]:7073 LISTEN (dual-stack: takes IPv4 too).
  tcpLine(0, '00000000000000000000000000000000:1BA1', '00000000000000000000000000000000:0000', '0A', 0, 6000),
  // [::1]:7074, [::ffff:127.0.0.1]:7074 and [fe80::1]:7074 LISTEN.
  tcpLine(1, '00000000000000000000000001000000:1BA2', '00000000000000000000000000000000:0000', '0A', 0, 6001),
  tcpLine(2, '0000000000000000FFFF00000100007F:1BA2', '00000000000000000000000000000000:0000', '0A', 0, 6002),
  tcpLine(3, '000080FE000000000000000001000000:1BA2', '00000000000000000000000000000000:0000', '0A', 0, 6003),
  ''
].join('\n')

interface FakeProcess { pid: number, comm: string, cmdline: string[], cgroup: string, sockets: number[], fdUnreadable?: boolean }

/** A /proc of our own: net/tcp, net/tcp6 and, per process, fd links, comm, cmdline and cgroup. */
function fakeProc (processes: FakeProcess[]): { procRoot: string, passwdFile: string } {
  const root = tempDir('aitbc-mesh-proc-')
  const procRoot = join(root, 'proc')
  mkdirSync(join(procRoot, 'net'), { recursive: true })
  writeFileSync(join(procRoot, 'net', 'tcp'), PROC_NET_TCP)
  writeFileSync(join(procRoot, 'net', 'tcp6'), PROC_NET_TCP6)
  mkdirSync(join(procRoot, 'sys'))
  for (const p of processes) {
    const dir = join(procRoot, String(p.pid))
    mkdirSync(dir)
    writeFileSync(join(dir, 'comm'), `${p.comm}\n`)
    writeFileSync(join(dir, 'cmdline'), p.cmdline.join('\0') + '\0')
    writeFileSync(join(dir, 'cgroup'), p.cgroup)
    if (p.fdUnreadable === true) {
      // Not a folder: reading it fails as another user's fd folder does (root ignores file modes).
      writeFileSync(join(dir, 'fd'), '')
      continue
    }
    mkdirSync(join(dir, 'fd'))
    symlinkSync('/dev/null', join(dir, 'fd', '0'))
    symlinkSync('pipe:[1111]', join(dir, 'fd', '1'))
    p.sockets.forEach((inode, i) => { symlinkSync(`socket:[${inode}]`, join(dir, 'fd', String(3 + i))) })
  }
  const passwdFile = join(root, 'passwd')
  writeFileSync(passwdFile, 'root:x:0:0:root:/root:/bin/bash\naitbc:x:999:999::/var/lib/aitbc:/usr/sbin/nologin\n')
  return { procRoot, passwdFile }
}

const RELAY: FakeProcess = {
  pid: 812,
  comm: 'python3',
  cmdline: ['/opt/aitbc/venv/bin/python3', '-m', 'aitbc.p2p.gossip_relay', '--host', '0.0.0.0', '--port', '7070'],
  cgroup: `0::/system.slice/${AITBC_GOSSIP_RELAY_UNIT}\n`,
  sockets: [4242]
}
const RPC: FakeProcess = { pid: 700, comm: 'uvicorn', cmdline: ['uvicorn', 'app:app', '--port', '8006'], cgroup: '0::/system.slice/aitbc-blockchain-rpc.service\n', sockets: [5000] }
const HIDDEN: FakeProcess = { pid: 950, comm: 'other', cmdline: ['other'], cgroup: '0::/system.slice/other.service\n', sockets: [], fdUnreadable: true }
const SHELL: FakeProcess = { pid: 1500, comm: 'bash', cmdline: ['-bash'], cgroup: '0::/user.slice/user-1000.slice/session-3.scope\n', sockets: [] }
const WORKERS: FakeProcess[] = [0, 1, 2, 3, 4].map(i => ({ pid: 2000 + i, comm: 'gunicorn', cmdline: ['gunicorn', '-w', '5'], cgroup: '0::/system.slice/workers.service\n', sockets: [7500] }))

describe('port owner: /proc/net/tcp and tcp6', () => {
  it('reads the listening sockets, with addresses, ports, owners and inodes; connections are left out', () => {
    expect(parseProcNetTcp(PROC_NET_TCP, 4, true)).toEqual([
      { address: '0.0.0.0', family: 4, port: 7070, uid: 0, inode: 4242 },
      { address: '127.0.0.1', family: 4, port: 8006, uid: 999, inode: 5000 },
      { address: '127.0.0.1', family: 4, port: 7072, uid: 999, inode: 7001 },
      { address: '127.0.0.2', family: 4, port: 7072, uid: 999, inode: 7002 },
      { address: '127.0.0.1', family: 4, port: 7075, uid: 0, inode: 7500 }
    ])
    expect(parseProcNetTcp(PROC_NET_TCP6, 6, true).map(s => [s.address, s.port, s.inode])).toEqual([
      ['::', 7073, 6000], ['::1', 7074, 6001], ['::ffff:127.0.0.1', 7074, 6002], ['fe80::1', 7074, 6003]
    ])
  })

  it('reads the words in the byte order of the host that wrote them', () => {
    expect(parseProcNetTcp([TCP_HEADER, tcpLine(0, '7F000001:1B9E', '00000000:0000', '0A', 0, 1)].join('\n'), 4, false)[0]?.address).toBe('127.0.0.1')
  })

  it('skips lines it cannot read instead of failing', () => {
    const text = [TCP_HEADER, 'garbage', '   0: 0100007F 00000000:0000 0A', tcpLine(1, 'ZZ00007F:1B9E', '00000000:0000', '0A', 0, 1), tcpLine(2, '0100007F:1B9E', '00000000:0000', '0A', 0, 77)].join('\n')
    expect(parseProcNetTcp(text, 4, true)).toEqual([{ address: '127.0.0.1', family: 4, port: 7070, uid: 0, inode: 77 }])
  })
})

describe('port owner: the systemd unit from /proc/<pid>/cgroup', () => {
  it('names the service a process runs in, under cgroup v2 or v1', () => {
    expect(parseCgroupUnit(`0::/system.slice/${AITBC_GOSSIP_RELAY_UNIT}\n`)).toBe(AITBC_GOSSIP_RELAY_UNIT)
    expect(parseCgroupUnit('12:pids:/system.slice/redis-server.service\n1:name=systemd:/system.slice/redis-server.service\n')).toBe('redis-server.service')
    expect(parseCgroupUnit('0::/user.slice/user-1000.slice/user@1000.service/app.slice/relay.service\n')).toBe('relay.service')
  })

  it('names none for a login session, a container or an empty file', () => {
    expect(parseCgroupUnit('0::/user.slice/user-1000.slice/session-3.scope\n')).toBeUndefined()
    expect(parseCgroupUnit('0::/\n')).toBeUndefined()
    expect(parseCgroupUnit('')).toBeUndefined()
  })
})

describe('port owner: who holds a port', () => {
  it('finds the AITBC gossip relay on 0.0.0.0:7070: pid, name, command line, unit; and says to move it', () => {
    const proc = fakeProc([RPC, RELAY, SHELL])
    for (const host of ['0.0.0.0', '10.1.223.93', '127.0.0.1']) {
      const owners = findPortOwners(host, 7070, proc)
      expect(owners.supported).toBe(true)
      expect(owners.sockets.map(s => s.inode)).toEqual([4242])
      expect(owners.holders).toEqual([{ pid: 812, name: 'python3', cmdline: '/opt/aitbc/venv/bin/python3 -m aitbc.p2p.gossip_relay --host 0.0.0.0 --port 7070', unit: AITBC_GOSSIP_RELAY_UNIT }])
    }
    const owners = findPortOwners('0.0.0.0', 7070, proc)
    expect(describePortOwners(owners)).toBe(`pid 812 (python3: /opt/aitbc/venv/bin/python3 -m aitbc.p2p.gossip_relay --host 0.0.0.0 --port 7070), systemd unit ${AITBC_GOSSIP_RELAY_UNIT}`)
    expect(portInUseFix(owners, 'give the mesh another --listen')).toBe(`port 7070 is the mesh's: move the AITBC gossip relay ${AITBC_GOSSIP_RELAY_UNIT} to another port (or stop it: systemctl stop ${AITBC_GOSSIP_RELAY_UNIT}), or give the mesh another --listen`)
  })

  it('picks the listener in the way of the address: a specific one, or every one for a wildcard', () => {
    const proc = fakeProc([])
    expect(findPortOwners('127.0.0.2', 7072, proc).sockets.map(s => s.inode)).toEqual([7002])
    expect(findPortOwners('0.0.0.0', 7072, proc).sockets.map(s => s.inode)).toEqual([7001, 7002])
    // [::] takes IPv4 as well; [::1] and IPv4-mapped listeners only their own address.
    expect(findPortOwners('127.0.0.1', 7073, proc).sockets.map(s => s.inode)).toEqual([6000])
    expect(findPortOwners('::1', 7074, proc).sockets.map(s => s.inode)).toEqual([6001])
    expect(findPortOwners('0:0:0:0:0:0:0:1', 7074, proc).sockets.map(s => s.inode)).toEqual([6001])
    expect(findPortOwners('127.0.0.1', 7074, proc).sockets.map(s => s.inode)).toEqual([6002])
    expect(findPortOwners('::', 7074, proc).sockets.map(s => s.inode)).toEqual([6001, 6002, 6003])
  })

  it('names a fix for any other service, and lists a few of many holders', () => {
    const proc = fakeProc([RPC, ...WORKERS])
    const rpc = findPortOwners('127.0.0.1', 8006, proc)
    expect(portInUseFix(rpc, 'move the mesh')).toBe('stop or move aitbc-blockchain-rpc.service (systemctl stop aitbc-blockchain-rpc.service), or move the mesh')
    const workers = findPortOwners('127.0.0.1', 7075, proc)
    expect(workers.holders.map(h => h.pid)).toEqual([2000, 2001, 2002, 2003, 2004])
    const described = describePortOwners(workers)
    expect(described.match(/pid \d+ \(gunicorn: gunicorn -w 5\), systemd unit workers\.service/g)).toHaveLength(PORT_OWNER_MAX_LISTED)
    expect(described).toMatch(new RegExp(`; and ${5 - PORT_OWNER_MAX_LISTED} more$`))
  })

  it('says when another aitbc-mesh daemon holds the port', () => {
    const mesh: FakeProcess = { pid: 3000, comm: 'MainThread', cmdline: ['/opt/aitbc-mesh/node_modules/.bin/node', '/opt/aitbc-mesh/dist/src/cli/main.js', 'daemon', '--config', '/etc/aitbc/mesh.yaml'], cgroup: '0::/system.slice/aitbc-mesh.service\n', sockets: [4242] }
    const owners = findPortOwners('0.0.0.0', 7070, fakeProc([mesh]))
    expect(portInUseFix(owners, 'move the mesh')).toBe('another aitbc-mesh daemon (pid 3000) already listens there: stop it, or move the mesh')
  })

  it("says when the holder is another user's process this user may not inspect, naming that user", () => {
    const owners = findPortOwners('127.0.0.1', 7072, fakeProc([RPC, HIDDEN]))
    expect(owners.holders).toEqual([])
    expect(owners.uninspectable).toBe(1)
    expect(describePortOwners(owners)).toBe(`a process of user aitbc (uid 999) that this user (uid ${process.getuid!()}) may not inspect (run as root to name it)`)
    expect(portInUseFix(owners, 'move the mesh')).toBe("find it with `sudo ss -ltnp 'sport = :7072'` and stop or move it, or move the mesh")
  })

  it('says when no listener is found, and degrades to an unknown process without /proc', () => {
    const none = findPortOwners('127.0.0.1', 7099, fakeProc([RELAY]))
    expect(describePortOwners(none)).toBe('an unknown process (no socket listens on port 7099 in /proc/net/tcp or tcp6: it may be in another network namespace, or have just closed)')
    const noProc = findPortOwners('127.0.0.1', 7070, { procRoot: join(tempDir(), 'no-proc') })
    expect(noProc).toMatchObject({ supported: false, sockets: [], holders: [] })
    expect(describePortOwners(noProc)).toBe('an unknown process (naming it needs Linux /proc)')
  })

  it('keeps a command line to one bounded line', () => {
    const long: FakeProcess = { ...RELAY, cmdline: ['relay', 'line\nbreak', 'x'.repeat(500)] }
    const [holder] = findPortOwners('0.0.0.0', 7070, fakeProc([long])).holders
    expect(holder!.cmdline).not.toMatch(/\n/)
    expect(holder!.cmdline).toMatch(/^relay line break x+\.\.\.$/)
    expect(holder!.cmdline.length).toBeLessThan(220)
  })

  it('finds this process as the holder of a port it listens on, on the real /proc', async () => {
    const { createServer } = await import('node:net')
    const server = createServer()
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => { resolve() }))
    try {
      const port = (server.address() as { port: number }).port
      const owners: PortOwners = findPortOwners('127.0.0.1', port)
      expect(owners.holders.map(h => h.pid)).toEqual([process.pid])
    } finally {
      server.close()
    }
  })
})

describe('port owner: a failed libp2p listen', () => {
  const libp2pError = new Error('Some configured addresses failed to be listened on, you may need to remove one or more listen addresses from your configuration or set `transportManager.faultTolerance` to NO_FATAL:\n\n' +
    '  /ip4/127.0.0.1/tcp/7070: Error: listen EADDRINUSE: address already in use 127.0.0.1:7070\n      at Server.setupListenHandle [as _listen2] (node:net:2328:16)\n\n' +
    '  /ip6/::1/tcp/7070: Error: listen EADDRNOTAVAIL: address not available ::1:7070\n')

  it('names the addresses in use, and only those of the config', () => {
    expect(addressesInUse(libp2pError, ['/ip4/127.0.0.1/tcp/7070', '/ip6/::1/tcp/7070'])).toEqual(['/ip4/127.0.0.1/tcp/7070'])
    expect(addressesInUse(new Error('listen EADDRNOTAVAIL'), ['/ip4/127.0.0.1/tcp/7070'])).toEqual([])
    expect(addressesInUse(Object.assign(new Error('listen EADDRINUSE: address already in use'), { code: 'EADDRINUSE' }), ['/ip4/127.0.0.1/tcp/7070'])).toEqual(['/ip4/127.0.0.1/tcp/7070'])
  })

  it('becomes one line with the address, the holder and the fix; other failures pass through', () => {
    const explained = explainListenFailure(libp2pError, ['/ip4/127.0.0.1/tcp/7070', '/ip6/::1/tcp/7070'], '/etc/aitbc/mesh.yaml')
    expect(explained).toBeInstanceOf(ListenAddressInUseError)
    const message = (explained as Error).message
    expect(message.split('\n')).toHaveLength(1)
    expect(message).toMatch(/^cannot listen on \/ip4\/127\.0\.0\.1\/tcp\/7070 \(127\.0\.0\.1:7070\): address already in use, held by .+; fix: .+give the mesh another listen address in listen: of \/etc\/aitbc\/mesh\.yaml/)
    const other = new Error('something else')
    expect(explainListenFailure(other, ['/ip4/127.0.0.1/tcp/7070'], '/etc/aitbc/mesh.yaml')).toBe(other)
  })
})
