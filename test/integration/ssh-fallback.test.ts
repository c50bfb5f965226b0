import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Server, utils } from 'ssh2'
import { beforeAll, describe, expect, it } from 'vitest'
import { CLI_ENTRY } from '../../src/devmesh/local-mesh.js'
import { onCleanup, startTestMesh, statusOfPeer, tempDir, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'

const PROBE_COMMAND = 'aitbc-mesh probe --json'

describe('SSH fallback for status and health of a peer the mesh cannot reach', () => {
  let t: TestMesh
  const commands: string[] = []
  const hostKey = utils.generateKeyPairSync('ed25519')
  const otherHostKey = utils.generateKeyPairSync('ed25519')
  const clientKey = utils.generateKeyPairSync('ed25519')
  const dir = tempDir('aitbc-mesh-ssh-')
  let port = 0

  function sshPeerConfig (pinned: string): Record<string, unknown> {
    const genesis = t.mesh.node('aitbc')
    return {
      peers: ['aitbc1', 'aitbc2'].map(name => ({
        name,
        role: 'follower',
        addr: t.mesh.node(name).addr,
        ...(name === 'aitbc2' ? { ssh: { host: '127.0.0.1', port, user: 'aitbc', privateKey: join(dir, 'id_ed25519'), hostKey: pinned } } : {})
      })),
      probes: JSON.parse(JSON.stringify(genesis.spec.config?.probes ?? {}))
    }
  }

  beforeAll(async () => {
    writeFileSync(join(dir, 'id_ed25519'), clientKey.private, { mode: 0o600 })
    const allowed = utils.parseKey(clientKey.public)
    if (allowed instanceof Error) throw allowed
    // The "host" of aitbc2: an SSH server that accepts only our key and runs the probe command
    // against aitbc2's config, as sshd would on that host.
    const server = new Server({ hostKeys: [hostKey.private] }, client => {
      client.on('authentication', ctx => {
        if (ctx.method !== 'publickey' || ctx.key.algo !== 'ssh-ed25519' || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject(['publickey'])
        if (ctx.signature == null) return ctx.accept()
        if (allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true) ctx.accept()
        else ctx.reject(['publickey'])
      })
      client.on('ready', () => {
        client.on('session', accept => {
          accept().on('exec', (acceptExec, _reject, info) => {
            commands.push(info.command)
            const stream = acceptExec()
            if (info.command !== PROBE_COMMAND) {
              stream.stderr.write('command not allowed\n')
              stream.exit(126)
              stream.end()
              return
            }
            const child = spawn(process.execPath, [CLI_ENTRY, 'probe', '--json', '--config', t.mesh.node('aitbc2').configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
            child.stdout.pipe(stream, { end: false })
            child.stderr.pipe(stream.stderr, { end: false })
            child.on('close', code => { stream.exit(code ?? 1); stream.end() })
          })
        })
      })
      client.on('error', () => {})
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => { resolve() }))
    port = (server.address() as AddressInfo).port
    onCleanup(() => { server.close() })

    t = await startTestMesh(3, { start: false })
    t.mesh.writeConfig(t.mesh.node('aitbc'), undefined, undefined, sshPeerConfig(hostKey.public))
    await t.mesh.startAll()
    await waitAllOnline(t.mesh)
  })

  it('is not used while the mesh reaches the peer', async () => {
    const res = await t.mesh.cli('aitbc', ['status', '--target', 'aitbc2', '--json'])
    expect(res.code).toBe(0)
    expect(JSON.parse(res.stdout).nodes_status.aitbc2.via).toBeUndefined()
    expect(commands).toEqual([])
  })

  it('obtains status and health of an unreachable peer over SSH, marked as such, with the one fixed command', async () => {
    await t.mesh.stop('aitbc2')
    await waitFor('aitbc2 offline', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc2') === 'offline', 5000)
    const res = await t.mesh.cli('aitbc', ['status', '--target', 'all', '--json'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc2).toMatchObject({ via: 'ssh', role: 'follower', block_height: 1002, mempool_size: 12 })
    expect(out.issues).toContainEqual(expect.stringMatching(/^aitbc2: status obtained over SSH \(aitbc@127\.0\.0\.1\); mesh unreachable: /))
    const health = await t.mesh.cli('aitbc', ['health', '--target', 'aitbc2', '--json'])
    expect(JSON.parse(health.stdout).nodes_status.aitbc2.via).toBe('ssh')
    expect(new Set(commands)).toEqual(new Set([PROBE_COMMAND]))

    // Nothing else goes over SSH: a sync of the unreachable peer fails instead.
    const before = commands.length
    const sync = await t.mesh.cli('aitbc', ['sync', '--type', 'mempool', '--target', 'aitbc2', '--json'])
    expect(sync.code).toBe(1)
    expect(commands.length).toBe(before)
  })

  it('refuses a host whose key is not the pinned one', async () => {
    await t.mesh.stop('aitbc')
    t.mesh.writeConfig(t.mesh.node('aitbc'), undefined, undefined, sshPeerConfig(otherHostKey.public))
    await t.mesh.start('aitbc')
    const before = commands.length
    const res = await t.mesh.cli('aitbc', ['status', '--target', 'aitbc2', '--json'])
    expect(res.code).toBe(1)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc2.status).toBe('offline')
    expect(out.issues).toContainEqual(expect.stringMatching(/^aitbc2: SSH fallback failed: ssh 127\.0\.0\.1:\d+: host key does not match the pinned key; refused/))
    expect(commands.length).toBe(before)
  })
})
