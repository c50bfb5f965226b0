import { spawn } from 'node:child_process'
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Server, utils } from 'ssh2'
import { beforeAll, describe, expect, it } from 'vitest'
import { CLI_ENTRY } from '../../src/devmesh/local-mesh.js'
import { onCleanup, runCli, startTestMesh, statusOfPeer, tempDir, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'
import { holdPort } from '../port-holder.js'
import { TestRedis } from '../redis.js'

/** The lines of `aitbc-mesh doctor` for node `aitbc`, with its exit code. */
async function doctor (t: TestMesh, extra: string[] = []): Promise<{ code: number | null, lines: string[], stderr: string }> {
  const res = await runCli(['doctor', '--config', t.mesh.node('aitbc').configFile, ...extra])
  return { code: res.code, lines: res.stdout.trim().split('\n'), stderr: res.stderr }
}

function lineOf (lines: string[], check: string): string {
  const line = lines.find(l => l.startsWith(`PASS ${check} (`) || l.startsWith(`FAIL ${check}: `))
  if (line == null) throw new Error(`no "${check}" line in:\n${lines.join('\n')}`)
  return line
}

/** An SSH server standing in for aitbc1's sshd: only our key, and it runs the probe command against aitbc1's config. */
async function startSshHost (t: TestMesh, hostKey: string, clientPublicKey: string): Promise<number> {
  const allowed = utils.parseKey(clientPublicKey)
  if (allowed instanceof Error) throw allowed
  const server = new Server({ hostKeys: [hostKey] }, client => {
    client.on('authentication', ctx => {
      if (ctx.method !== 'publickey' || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject(['publickey'])
      if (ctx.signature == null) return ctx.accept()
      if (allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true) ctx.accept()
      else ctx.reject(['publickey'])
    })
    client.on('ready', () => {
      client.on('session', accept => {
        accept().on('exec', (acceptExec, _reject, info) => {
          const stream = acceptExec()
          if (info.command !== 'aitbc-mesh probe --json') {
            stream.exit(126)
            stream.end()
            return
          }
          const child = spawn(process.execPath, [CLI_ENTRY, 'probe', '--json', '--config', t.mesh.node('aitbc1').configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
          child.stdout.pipe(stream, { end: false })
          child.on('close', code => { stream.exit(code ?? 1); stream.end() })
        })
      })
    })
    client.on('error', () => {})
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => { resolve() }))
  onCleanup(() => { server.close() })
  return (server.address() as AddressInfo).port
}

describe('aitbc-mesh doctor on a two-node mesh with Redis, RPC, swarm key and SSH fallback', () => {
  let t: TestMesh
  let redis: TestRedis
  let identityFile: string
  let swarmKeyFile: string
  let host: string
  const hostKey = utils.generateKeyPairSync('ed25519')
  const otherHostKey = utils.generateKeyPairSync('ed25519')
  const clientKey = utils.generateKeyPairSync('ed25519')
  const keyDir = tempDir('aitbc-mesh-doctor-ssh-')
  let sshPort = 0

  function writeGenesisConfig (pinnedHostKey: string): void {
    const genesis = t.mesh.node('aitbc')
    t.mesh.writeConfig(genesis, swarmKeyFile, undefined, {
      peers: [{
        name: 'aitbc1',
        role: 'follower',
        addr: t.mesh.node('aitbc1').addr,
        ssh: { host: '127.0.0.1', port: sshPort, user: 'aitbc', privateKey: join(keyDir, 'id_ed25519'), hostKey: pinnedHostKey }
      }]
    })
  }

  beforeAll(async () => {
    redis = await new TestRedis().start()
    t = await startTestMesh(2, { swarmKey: true, start: false, extra: i => i === 0 ? { redis: redis.url } : {} })
    host = t.hosts[0]!
    identityFile = join(t.mesh.node('aitbc').dir, 'identity.key')
    swarmKeyFile = join(t.mesh.baseDir, 'swarm.key')
    writeFileSync(join(keyDir, 'id_ed25519'), clientKey.private, { mode: 0o600 })
    sshPort = await startSshHost(t, hostKey.private, clientKey.public)
    writeGenesisConfig(hostKey.public)
    await t.mesh.startAll()
    await waitAllOnline(t.mesh)
  })

  it('passes every check on a healthy node and exits 0', async () => {
    const { code, lines, stderr } = await doctor(t)
    expect(code, lines.join('\n') + stderr).toBe(0)
    const configFile = t.mesh.node('aitbc').configFile
    expect(lines).toEqual([
      `PASS config valid (${configFile}: node aitbc, genesis, 1 peer)`,
      `PASS identity key (${identityFile}, mode 0600, peer id ${t.mesh.node('aitbc').peerId})`,
      `PASS swarm key (${swarmKeyFile}, mode 0600)`,
      `PASS listen /ip4/${host}/tcp/7070 (held by this node's daemon, peer id ${t.mesh.node('aitbc').peerId})`,
      expect.stringMatching(new RegExp(`^PASS redis reachable \\(redis://127\\.0\\.0\\.1:${redis.port}/0: PONG in \\d+ ms\\)$`)),
      `PASS store durability (redis://127.0.0.1:${redis.port}/0: always (appendonly yes, appendfsync always, save ""): append-only, fsync always: nothing acknowledged is lost on a crash of the store or the host)`,
      expect.stringMatching(/^PASS blockchain RPC reachable \(GET http:\/\/[\d.]+:\d+\/health answered 200; chains ait-devnet; probing ait-devnet \(the first; probes\.chainId chooses\)\)$/),
      expect.stringMatching(new RegExp(`^PASS daemon running \\(answers on ${t.mesh.node('aitbc').socket}, peer id 12D3KooW\\w+, up since `)),
      expect.stringMatching(/^PASS peer aitbc1 over the mesh \(connected, online, /),
      `PASS peer aitbc1 over SSH (aitbc@127.0.0.1:${sshPort} ran "aitbc-mesh probe --json": aitbc1 is online)`,
      expect.stringMatching(/^PASS clock skew against peers \(within 1000 ms: aitbc1 [+-]\d+ ms\)$/)
    ])

    const json = await runCli(['doctor', '--config', configFile, '--json'])
    expect(json.code).toBe(0)
    const checks = JSON.parse(json.stdout) as Array<Record<string, unknown>>
    expect(checks.map(c => c.name)).toEqual(['config valid', 'identity key', 'swarm key', `listen /ip4/${host}/tcp/7070`, 'redis reachable', 'store durability',
      'blockchain RPC reachable', 'daemon running', 'peer aitbc1 over the mesh', 'peer aitbc1 over SSH', 'clock skew against peers'])
    expect(checks.every(c => c.ok === true && c.fix === null && typeof c.detail === 'string')).toBe(true)
  })

  it('fails an identity key other users can read, with the chmod that fixes it', async () => {
    chmodSync(identityFile, 0o644)
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, 'identity key')).toBe(`FAIL identity key: ${identityFile} has mode 0644: other users can read this secret — fix: chmod 600 ${identityFile}`)
      expect(lines.filter(l => l.startsWith('FAIL'))).toHaveLength(1)
    } finally {
      chmodSync(identityFile, 0o600)
    }
  })

  it('fails a missing or damaged swarm key', async () => {
    const original = readFileSync(swarmKeyFile)
    renameSync(swarmKeyFile, swarmKeyFile + '.moved')
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, 'swarm key')).toMatch(new RegExp(`^FAIL swarm key: ${swarmKeyFile} not found — fix: copy the swarm key from another node of the mesh to ${swarmKeyFile} \\(owner aitbc, mode 0600\\), or remove swarmKey: from `))
    } finally {
      renameSync(swarmKeyFile + '.moved', swarmKeyFile)
    }
    writeFileSync(swarmKeyFile, 'not a key\n', { mode: 0o600 })
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, 'swarm key')).toMatch(/^FAIL swarm key: .*swarmKey: not a swarm key: expected .* — fix: copy the swarm key from another node/)
    } finally {
      writeFileSync(swarmKeyFile, original, { mode: 0o600 })
    }
  })

  it('fails when Redis is down, naming the address and how to fix it', async () => {
    await redis.stop()
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, 'redis reachable')).toMatch(new RegExp(`^FAIL redis reachable: redis://127\\.0\\.0\\.1:${redis.port}/0: .*ECONNREFUSED 127\\.0\\.0\\.1:${redis.port}.* — fix: start this node's Redis \\(systemctl start redis-server\\) or correct redis: in .*mesh\\.yaml / REDIS_URL in /etc/aitbc/mesh\\.env$`))
    } finally {
      await redis.start()
    }
  })

  it('fails when the blockchain RPC is down', async () => {
    const rpc = t.rpcs.get('aitbc')!
    const url = new URL((t.mesh.node('aitbc').spec.config?.probes as { rpc: string }).rpc)
    await rpc.stop()
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, 'blockchain RPC reachable')).toMatch(new RegExp(`^FAIL blockchain RPC reachable: GET http://${url.host.replace(/\./g, '\\.')}/health: .*ECONNREFUSED.* — fix: start the blockchain node or correct probes\\.rpc in `))
    } finally {
      await rpc.start(url.hostname, Number(url.port))
    }
  })

  it('fails a peer the mesh cannot reach, and its SSH check with a host key that is not the pinned one', async () => {
    await t.mesh.stop('aitbc1', 'SIGKILL')
    await waitFor('aitbc1 offline at aitbc', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc1') === 'offline', 5000)
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, 'peer aitbc1 over the mesh')).toMatch(new RegExp(`^FAIL peer aitbc1 over the mesh: offline: .* — fix: check that aitbc-mesh runs on aitbc1 \\(aitbc-mesh status there\\), that this host reaches ${t.hosts[1]!.replace(/\./g, '\\.')} TCP 7070 \\(firewall\\), and that aitbc1's allowlist names aitbc`))
    } finally {
      await t.mesh.start('aitbc1')
    }
    await waitAllOnline(t.mesh)

    writeGenesisConfig(otherHostKey.public)
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, 'peer aitbc1 over SSH')).toMatch(/^FAIL peer aitbc1 over SSH: ssh 127\.0\.0\.1:\d+: host key does not match the pinned key; refused — fix: check peers\[\]\.ssh of aitbc1 in /)
    } finally {
      writeGenesisConfig(hostKey.public)
    }
  })

  it('with the daemon stopped: its port held by another process fails, and the mesh checks say to start the daemon', async () => {
    await t.mesh.stop('aitbc')
    // Another program on the port, as the AITBC gossip relay on the hub (it hangs up on aitbc1's redials).
    const squatter = await holdPort(host, 7070)
    const name = readFileSync(`/proc/${squatter.pid}/comm`, 'utf8').trim()
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lineOf(lines, `listen /ip4/${host}/tcp/7070`)).toBe(`FAIL listen /ip4/${host}/tcp/7070: port 7070 on ${host} is in use by pid ${squatter.pid} (${name}: ${squatter.cmdline}) — fix: stop or move pid ${squatter.pid} (${name}), or give the mesh another listen address in listen: of ${t.mesh.node('aitbc').configFile}`)
      expect(lineOf(lines, 'daemon running')).toMatch(/^FAIL daemon running: cannot reach the daemon on .*mesh\.sock: .* — fix: start the daemon: systemctl start aitbc-mesh/)
      expect(lineOf(lines, 'peer aitbc1 over the mesh')).toMatch(/^FAIL peer aitbc1 over the mesh: not checked: the local daemon is not running — fix: start the daemon: systemctl start aitbc-mesh/)
      expect(lineOf(lines, 'clock skew against peers')).toMatch(/^FAIL clock skew against peers: not checked: the local daemon is not running — fix: start the daemon/)
      // Local checks still run without the daemon.
      expect(lineOf(lines, 'redis reachable')).toMatch(/^PASS /)
    } finally {
      await squatter.stop()
    }
    const { lines } = await doctor(t)
    expect(lineOf(lines, `listen /ip4/${host}/tcp/7070`)).toBe(`PASS listen /ip4/${host}/tcp/7070 (port 7070 is free; the daemon is not running)`)
    await t.mesh.start('aitbc')
    await waitAllOnline(t.mesh)
    expect((await doctor(t)).code).toBe(0)
  })

  it('reports an invalid config alone, with the file and field, and exits 1', async () => {
    const file = t.mesh.node('aitbc').configFile
    const good = readFileSync(file, 'utf8')
    writeFileSync(file, good.replace(/addr: \/ip4\/([\d.]+)\/tcp\/7070\/p2p\/\w+/, 'addr: /ip4/$1/tcp/7070'))
    try {
      const { code, lines } = await doctor(t)
      expect(code).toBe(1)
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^FAIL config valid: ${file}: peers\\[0\\]\\.addr: expected /ip4/<address>/tcp/<port>/p2p/<peer id>, got ".*" — fix: correct the field named above in ${file}`))])
    } finally {
      writeFileSync(file, good)
    }
  })
})
