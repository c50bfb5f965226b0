import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/config.js'
import { freeLoopbackBlock, LocalMesh } from '../../src/devmesh/local-mesh.js'
import { onCleanup, runCli, tempDir, waitFor } from '../helpers.js'
import { holdPort } from '../port-holder.js'

describe('aitbc-mesh init', () => {
  it('writes an Ed25519 identity (0600) and a config, and prints name, role, peer id and full addrs', async () => {
    const dir = join(tempDir(), 'node')
    const res = await runCli(['init', '--name', 'aitbc1', '--role', 'follower', '--dir', dir, '--listen', '/ip4/10.1.223.40/tcp/7070', '--json'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(Object.keys(out).sort()).toEqual(['addPeer', 'addrs', 'config', 'identity', 'name', 'peerId', 'role'])
    expect(out).toMatchObject({ name: 'aitbc1', role: 'follower', config: join(dir, 'mesh.yaml'), identity: join(dir, 'identity.key') })
    expect(out.peerId).toMatch(/^12D3KooW/)
    expect(out.addrs).toEqual([`/ip4/10.1.223.40/tcp/7070/p2p/${out.peerId as string}`])
    expect(statSync(out.identity).mode & 0o777).toBe(0o600)
    const config = loadConfig(out.config)
    expect(config.node).toEqual({ name: 'aitbc1', role: 'follower' })
    expect(config.listen).toEqual(['/ip4/10.1.223.40/tcp/7070'])
    expect(config.identityFile).toBe(out.identity)

    // Running init again never replaces the identity.
    const keyBefore = readFileSync(out.identity)
    const again = await runCli(['init', '--name', 'aitbc1', '--role', 'follower', '--dir', dir, '--json', '--force'])
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout).peerId).toBe(out.peerId)
    expect(readFileSync(out.identity).equals(keyBefore)).toBe(true)
  })

  it('with --swarm-key writes a private swarm key and names it in the config', async () => {
    const dir = tempDir()
    const res = await runCli(['init', '--name', 'aitbc', '--role', 'genesis', '--dir', dir, '--swarm-key', '--json'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    const keyFile = join(dir, 'swarm.key')
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    expect(loadConfig(out.config).swarmKeyFile).toBe(keyFile)
  })

  it('prints the add-peer command other nodes run to admit it', async () => {
    const res = await runCli(['init', '--name', 'aitbc', '--role', 'genesis', '--dir', tempDir(), '--listen', '/ip4/10.0.0.5/tcp/7070'])
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/^ {2}aitbc-mesh config add-peer aitbc \/ip4\/10\.0\.0\.5\/tcp\/7070\/p2p\/12D3KooW\w+ --role genesis$/m)
  })

  it('refuses bad names, roles and listen addresses with exit 2', async () => {
    const dir = tempDir()
    const cases: Array<[string[], RegExp]> = [
      [['--name', 'all', '--role', 'genesis'], /--name "all": must not be one of the target keywords all, genesis, follower/],
      [['--name', 'bad name', '--role', 'genesis'], /--name "bad name": expected a node name/],
      [['--name', 'n1', '--role', 'leader'], /--role "leader": expected genesis or follower/],
      [['--name', 'n1', '--role', 'genesis', '--listen', 'port-7070'], /--listen "port-7070": expected a multiaddr/]
    ]
    for (const [args, message] of cases) {
      const res = await runCli(['init', ...args, '--dir', dir])
      expect(res.code, args.join(' ')).toBe(2)
      expect(res.stderr).toMatch(message)
    }
  })

  it('warns, naming the process and the fix, when another process holds the listen port; still writes the node', async () => {
    const [host] = await freeLoopbackBlock(1)
    const relay = await holdPort(host!, 7070)
    const name = readFileSync(`/proc/${relay.pid}/comm`, 'utf8').trim()
    const dir = tempDir()
    const warning = `listen /ip4/${host!}/tcp/7070: port 7070 on ${host!} is in use by pid ${relay.pid} (${name}: ${relay.cmdline}); the daemon cannot start while it is; ` +
      `fix: stop or move pid ${relay.pid} (${name}), or give the mesh another --listen /ip4/<address>/tcp/<port> (init --force rewrites the config), or another listen: in ${join(dir, 'mesh.yaml')}`
    const human = await runCli(['init', '--name', 'hub', '--role', 'genesis', '--dir', dir, '--listen', `/ip4/${host!}/tcp/7070`])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stderr).toBe(`aitbc-mesh: warning: ${warning}\n`)
    expect(human.stdout).toMatch(/^config: {4}.*mesh\.yaml \(written\)$/m)

    const json = await runCli(['init', '--name', 'hub', '--role', 'genesis', '--dir', dir, '--listen', `/ip4/${host!}/tcp/7070`, '--json'])
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout).warnings).toEqual([warning])

    // Once the port is free, no warning and no warnings field.
    await relay.stop()
    const free = await runCli(['init', '--name', 'hub', '--role', 'genesis', '--dir', dir, '--listen', `/ip4/${host!}/tcp/7070`, '--json'])
    expect(free.code, free.stderr).toBe(0)
    expect(free.stderr).toBe('')
    expect(JSON.parse(free.stdout)).not.toHaveProperty('warnings')
  })

  it('creates a config the daemon starts with', async () => {
    const [host] = await freeLoopbackBlock(1)
    const dir = tempDir()
    const res = await runCli(['init', '--name', 'solo', '--role', 'genesis', '--dir', dir, '--listen', `/ip4/${host!}/tcp/7070`, '--json'])
    const out = JSON.parse(res.stdout)
    const mesh = await LocalMesh.create(dir, [])
    mesh.nodes.set('solo', { spec: { name: 'solo', role: 'genesis', host: host! }, dir, configFile: out.config, socket: join(dir, 'mesh.sock'), peerId: out.peerId, addr: out.addrs[0], logLines: [] })
    onCleanup(async () => { await mesh.stopAll() })
    await mesh.start('solo')
    const id = await mesh.cli('solo', ['id', '--json'])
    expect(JSON.parse(id.stdout)).toMatchObject({ name: 'solo', peerId: out.peerId, addrs: [`/ip4/${host!}/tcp/7070/p2p/${out.peerId as string}`] })
    await waitFor('status to answer', async () => (await mesh.cli('solo', ['status', '--json'])).code === 0)
  })
})
