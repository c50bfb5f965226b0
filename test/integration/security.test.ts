import { readFileSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { Heartbeat, NodeRole } from '../../protocols/heartbeat.js'
import { AllowlistGater } from '../../src/mesh/gater.js'
import { HEARTBEAT_TOPIC } from '../../src/mesh/heartbeat.js'
import { loadIdentity } from '../../src/mesh/identity.js'
import { createMeshLibp2p } from '../../src/mesh/libp2p.js'
import { generateKey } from '@libp2p/pnet'
import { onCleanup, peersOf, startTestMesh, statusOfPeer, waitAllOnline, waitFor } from '../helpers.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'

function logHas (mesh: LocalMesh, name: string, pattern: RegExp): boolean {
  return mesh.node(name).logLines.some(line => pattern.test(line))
}

describe('trust: allowlist, private network and authenticated heartbeats', () => {
  it('refuses a peer that is not in the allowlist, inbound and outbound', async () => {
    const { mesh, hosts } = await startTestMesh(3, { start: false })
    const genesis = mesh.node('aitbc')
    const follower = mesh.node('aitbc1')
    const intruder = mesh.node('aitbc2')
    // aitbc and aitbc1 know only each other; aitbc2 still lists (and dials) both of them.
    mesh.writeConfig(genesis, undefined, undefined, { peers: [{ name: 'aitbc1', role: 'follower', addr: follower.addr }] })
    mesh.writeConfig(follower, undefined, undefined, { peers: [{ name: 'aitbc', role: 'genesis', addr: genesis.addr }] })
    await mesh.startAll()

    await waitFor('aitbc to refuse the intruder', () => logHas(mesh, 'aitbc', new RegExp(`"event":"peer_refused".*"peerId":"${intruder.peerId}".*"direction":"inbound"`)), 10000)
    await waitFor('aitbc1 to refuse the intruder', () => logHas(mesh, 'aitbc1', new RegExp(`"event":"peer_refused".*"peerId":"${intruder.peerId}"`)), 10000)
    await waitFor('aitbc and aitbc1 online to each other', async () => await statusOfPeer(mesh, 'aitbc', 'aitbc1') === 'online', 10000)
    const seenByIntruder = await peersOf(mesh, 'aitbc2')
    expect(seenByIntruder.filter(p => !p.self).map(p => [p.name, p.connected, p.status])).toEqual([['aitbc', false, 'offline'], ['aitbc1', false, 'offline']])
    // The allowlisted nodes never report the intruder, and their only connection is to each other.
    const seenByGenesis = await peersOf(mesh, 'aitbc')
    expect(seenByGenesis.map(p => p.name)).toEqual(['aitbc', 'aitbc1'])
    const status = JSON.parse((await mesh.cli('aitbc', ['status', '--target', 'aitbc', '--json'])).stdout)
    expect(status.nodes_status.aitbc.p2p_connections).toBe(1)

    // Outbound: an impersonator listening at a configured peer's address is refused, because the
    // handshake proves a different peer id than the one in the config.
    await mesh.stop('aitbc1', 'SIGKILL')
    await waitFor('aitbc1 offline at aitbc', async () => await statusOfPeer(mesh, 'aitbc', 'aitbc1') === 'offline', 5000)
    mesh.writeConfig(intruder, undefined, undefined, { listen: [`/ip4/${hosts[1]}/tcp/7070`], peers: [] })
    await mesh.stop('aitbc2')
    await waitFor('aitbc to fail dialling aitbc1 (connection refused)', () => logHas(mesh, 'aitbc', /"event":"dial_failed".*"peer":"aitbc1".*ECONNREFUSED/), 10000)
    genesis.logLines.length = 0
    await mesh.start('aitbc2')
    const before = (await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc1')
    const impersonatorRefused = await waitFor('aitbc to refuse the impersonator', () =>
      genesis.logLines.find(l => /"event":"dial_failed".*"peer":"aitbc1"/.test(l) && !l.includes('ECONNREFUSED')), 10000)
    expect(JSON.parse(impersonatorRefused).err).toMatch(/Payload identity key \w+ does not match expected remote/)
    const after = (await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc1')
    expect(before?.connected).toBe(false)
    expect(after).toMatchObject({ connected: false, status: 'offline' })
  })

  it('with a swarm key, a node with another key or none cannot complete a connection', async () => {
    const { mesh } = await startTestMesh(3, { swarmKey: true, start: false })
    const outsider = mesh.node('aitbc2')
    const otherKey = join(outsider.dir, 'other.swarm.key')
    const key = new Uint8Array(95)
    generateKey(key)
    writeFileSync(otherKey, key)
    chmodSync(otherKey, 0o600)
    // aitbc2 is allowlisted everywhere, so only the swarm key keeps it out.
    mesh.writeConfig(outsider, otherKey)
    await mesh.startAll()
    await waitFor('aitbc and aitbc1 online to each other', async () => await statusOfPeer(mesh, 'aitbc', 'aitbc1') === 'online', 10000)
    await waitFor('aitbc2 (other key) to fail its dials', () => logHas(mesh, 'aitbc2', /"event":"dial_failed".*"peer":"aitbc"/), 10000)
    expect((await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc2')).toMatchObject({ connected: false, status: 'offline' })
    expect((await peersOf(mesh, 'aitbc2')).filter(p => p.connected && !p.self)).toEqual([])

    // No key at all.
    await mesh.stop('aitbc2')
    mesh.writeConfig(outsider)
    outsider.logLines.length = 0
    await mesh.start('aitbc2')
    await waitFor('aitbc2 (no key) to fail its dials', () => logHas(mesh, 'aitbc2', /"event":"dial_failed".*"peer":"aitbc"/), 10000)
    expect((await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc2')).toMatchObject({ connected: false, status: 'offline' })

    // With the mesh's key it joins: the key was the only thing keeping it out.
    await mesh.stop('aitbc2')
    mesh.writeConfig(outsider, join(mesh.baseDir, 'swarm.key'))
    await mesh.start('aitbc2')
    await waitAllOnline(mesh)
  })

  it('drops a heartbeat signed by one node that claims to be another', async () => {
    const { mesh } = await startTestMesh(3)
    await waitAllOnline(mesh)
    await mesh.stop('aitbc1', 'SIGKILL')
    await mesh.stop('aitbc2')
    await waitFor('aitbc1 offline at aitbc', async () => await statusOfPeer(mesh, 'aitbc', 'aitbc1') === 'offline', 5000)

    // A process holding aitbc2's real (allowlisted) key publishes heartbeats in aitbc1's name.
    const genesis = mesh.node('aitbc')
    const forgerIdentity = loadIdentity(join(mesh.node('aitbc2').dir, 'identity.key'))
    const forger = await createMeshLibp2p({
      privateKey: forgerIdentity.privateKey,
      listen: [],
      gater: new AllowlistGater([loadIdentity(join(genesis.dir, 'identity.key')).peerId])
    })
    await forger.start()
    onCleanup(async () => { await forger.stop() })
    forger.services.pubsub.subscribe(HEARTBEAT_TOPIC)
    await forger.dial(multiaddr(genesis.addr))
    let seq = 0n
    const forged = (): Uint8Array => Heartbeat.encode({
      node: 'aitbc1', role: NodeRole.FOLLOWER, seq: ++seq, startedAtMs: BigInt(Date.now()), sentAtMs: BigInt(Date.now()), healthy: true, p2pConnections: 2
    })
    await waitFor('aitbc to reject the forged heartbeat', async () => {
      await forger.services.pubsub.publish(HEARTBEAT_TOPIC, forged())
      return logHas(mesh, 'aitbc', /"event":"heartbeat_rejected".*claims to be from \\"aitbc1\\"/)
    }, 10000, 200)
    // Keep forging for a while longer: aitbc1 must stay offline all along.
    for (let i = 0; i < 5; i++) {
      await forger.services.pubsub.publish(HEARTBEAT_TOPIC, forged())
      expect(await statusOfPeer(mesh, 'aitbc', 'aitbc1')).toBe('offline')
    }
    const peer = (await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc1') as unknown as { last_heartbeat: string | null, connected: boolean }
    expect(peer.connected).toBe(false)
    expect(readFileSync(join(genesis.dir, 'daemon.log'), 'utf8')).toContain('heartbeat_rejected')
  })
})
