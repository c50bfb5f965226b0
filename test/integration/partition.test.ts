import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalMesh, type LocalNodeSpec } from '../../src/devmesh/local-mesh.js'
import { tempDir, waitFor } from '../helpers.js'
import { SwitchedHosts } from '../netns.js'

/**
 * Partitions between real daemons, each in its own network namespace; the namespaces are joined
 * by a bridge, and a partition moves hosts off it (packets then vanish without a reset, as when
 * a real link or switch fails). Needs root, like the install test.
 */

const EXIT_FAILED = 1
const EXIT_NO_QUORUM = 5
/** The daemons' heartbeat; the offline window is three of them. */
const HEARTBEAT_MS = 1000
const OFFLINE_WINDOW_S = 3 * HEARTBEAT_MS / 1000

interface MeshView { reachable: string[], unreachable: string[], configured: number, quorum: boolean, since: string }

function nodeName (i: number): string {
  return i === 0 ? 'aitbc' : `aitbc${i}`
}

/** A mesh of `count` daemons, node i in network namespace i; every node has a destructive action and a synced file. */
async function partitionedMesh (count: number): Promise<{ hosts: SwitchedHosts, mesh: LocalMesh, marker: (name: string) => string, envFile: (name: string) => string }> {
  SwitchedHosts.requireRoot('the partition test')
  const hosts = new SwitchedHosts(count)
  await hosts.create()
  const base = tempDir('aitbc-mesh-partition-')
  const marker = (name: string): string => join(base, name, 'restarts.log')
  const envFile = (name: string): string => join(base, name, 'chain.env')
  const specs: LocalNodeSpec[] = Array.from({ length: count }, (_, i) => ({
    name: nodeName(i),
    role: i === 0 ? 'genesis' : 'follower',
    host: hosts.addresses[i]!,
    config: {
      actions: {
        'restart-chain': { run: ['sh', '-c', `echo restarted >> ${marker(nodeName(i))}`], destructive: true, allowFrom: ['self', 'genesis', 'follower'] }
      },
      sync: { forceFrom: ['self', 'genesis'] },
      probes: { configFiles: [envFile(nodeName(i))] }
    }
  }))
  const mesh = await LocalMesh.create(base, specs, { heartbeatMs: HEARTBEAT_MS, launchPrefix: name => hosts.exec(specs.findIndex(s => s.name === name)) })
  for (const spec of specs) writeFileSync(envFile(spec.name), spec.role === 'genesis' ? 'CHAIN_ID=ait-hub\n' : 'CHAIN_ID=drifted\n')
  await mesh.startAll()
  return { hosts, mesh, marker, envFile }
}

async function meshView (mesh: LocalMesh, node: string): Promise<MeshView> {
  const res = await mesh.cli(node, ['peers', '--json'])
  return (JSON.parse(res.stdout) as { mesh_view: MeshView }).mesh_view
}

async function waitForView (mesh: LocalMesh, nodes: string[], what: string, check: (view: MeshView) => boolean, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${what} on ${nodes.join(', ')}`, async () => {
    for (const node of nodes) if (!check(await meshView(mesh, node))) return false
    return true
  }, timeoutMs, 100)
}

interface NodeView { name: string, status: string, reason: string | null, connected: boolean, last_heartbeat: string | null }

async function nodesOf (mesh: LocalMesh, node: string): Promise<NodeView[]> {
  const res = await mesh.cli(node, ['peers', '--json'])
  return (JSON.parse(res.stdout) as { nodes: NodeView[] }).nodes
}

function restarts (marker: string): number {
  return existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter(l => l === 'restarted').length : 0
}

function logEvents (mesh: LocalMesh, node: string, event: string): Array<Record<string, unknown>> {
  return mesh.node(node).logLines.filter(l => l.includes(`"event":"${event}"`)).map(l => JSON.parse(l) as Record<string, unknown>)
}

async function stopAll (mesh: LocalMesh | undefined): Promise<void> {
  if (mesh == null) return
  await Promise.all([...mesh.nodes.keys()].map(async name => { if (mesh.isRunning(name)) await mesh.stop(name, 'SIGKILL') }))
}

/** The minority's status --target all: every other node offline with the reason, answered without asking them. */
async function expectFastStatus (mesh: LocalMesh, at: string, cutOff: string[]): Promise<void> {
  const res = await mesh.cli(at, ['status', '--target', 'all', '--timeout', '60', '--json'])
  expect(res.code).toBe(EXIT_FAILED)
  const out = JSON.parse(res.stdout) as { nodes_status: Record<string, { status: string }>, issues: string[], execution_time: number, mesh_view: MeshView }
  for (const node of cutOff) {
    expect(out.nodes_status[node]?.status).toBe('offline')
    // The reason is the heartbeat verdict taken before asking: a request sent over the silent
    // connection would have ended as "did not answer within ..." at the 60 s timeout instead.
    expect(out.issues.find(i => i.startsWith(`${node}: offline: `))).toMatch(/: offline: (unreachable: )?(no heartbeat for|connection lost)/)
  }
  expect(out.nodes_status[at]?.status).not.toBe('offline')
  // Answered before even one more offline window could pass (it takes milliseconds; see bench/partition.ts).
  expect(out.execution_time).toBeLessThan(OFFLINE_WINDOW_S)
  expect(out.mesh_view).toMatchObject({ quorum: false, unreachable: expect.arrayContaining(cutOff) })
}

describe('three nodes, one cut off', () => {
  let t: Awaited<ReturnType<typeof partitionedMesh>> | undefined

  beforeAll(async () => { t = await partitionedMesh(3) }, 60_000)
  afterAll(async () => {
    await stopAll(t?.mesh)
    t?.hosts.destroy()
  })

  it('every node sees quorum while the mesh is whole', async () => {
    const { mesh } = t!
    await waitForView(mesh, ['aitbc', 'aitbc1', 'aitbc2'], 'quorum with all three', v => v.quorum && v.unreachable.length === 0)
    const text = await mesh.cli('aitbc', ['peers'])
    expect(text.stdout).toMatch(/^mesh view: quorum, 3 of 3 configured nodes reachable/m)
  })

  it('the cut-off node knows it is the minority, refuses destructive work, and answers status at once; the majority runs it', async () => {
    const { mesh, hosts, marker } = t!
    // Before the cut: an agent of aitbc2 known everywhere, to be changed on both sides.
    expect((await mesh.cli('aitbc2', ['agents', 'register', '--id', 'split-agent', '--type', 'worker'])).code).toBe(0)
    await waitFor('split-agent on aitbc', async () => (await mesh.cli('aitbc', ['agents', 'list', '--json'])).stdout.includes('"split-agent"'))

    await hosts.move([2], 'none')
    await waitForView(mesh, ['aitbc2'], 'no quorum', v => !v.quorum && v.unreachable.join() === 'aitbc,aitbc1')
    await waitForView(mesh, ['aitbc', 'aitbc1'], 'quorum without aitbc2', v => v.quorum && v.unreachable.join() === 'aitbc2')
    const peersText = await mesh.cli('aitbc2', ['peers'])
    expect(peersText.stdout).toMatch(/^mesh view: NO QUORUM, 1 of 3 configured nodes reachable; unreachable: aitbc, aitbc1/m)

    const refused = await mesh.cli('aitbc2', ['coordinate', 'restart-chain', '--force', '--target', 'all'])
    expect(refused.code).toBe(EXIT_NO_QUORUM)
    expect(refused.stderr).toMatch(/coordinate refused: no quorum: aitbc2 reaches 1 of 3 configured nodes \(unreachable: aitbc, aitbc1\)/)
    const refusedSync = await mesh.cli('aitbc2', ['sync', '--type', 'configuration', '--force', '--json'])
    expect(refusedSync.code).toBe(EXIT_NO_QUORUM)
    expect(refusedSync.stderr).toMatch(/sync refused: no quorum: .*\(unreachable: aitbc, aitbc1\)/)
    expect(restarts(marker('aitbc2'))).toBe(0)

    await expectFastStatus(mesh, 'aitbc2', ['aitbc', 'aitbc1'])

    const ran = await mesh.cli('aitbc', ['coordinate', 'restart-chain', '--force', '--target', 'all', '--json'])
    expect(ran.code).toBe(EXIT_FAILED) // aitbc2 unreachable
    const out = JSON.parse(ran.stdout) as { nodes_status: Record<string, { action: { state: string } }>, mesh_view: MeshView }
    expect(out.nodes_status.aitbc?.action.state).toBe('ok')
    expect(out.nodes_status.aitbc1?.action.state).toBe('ok')
    expect(out.nodes_status.aitbc2?.action.state).toBe('unreachable')
    expect(out.mesh_view).toMatchObject({ quorum: true, unreachable: ['aitbc2'] })
    expect([restarts(marker('aitbc')), restarts(marker('aitbc1')), restarts(marker('aitbc2'))]).toEqual([1, 1, 0])
  })

  it('after the heal every node has quorum again; registry and messages converge, and the losing agent change is logged', async () => {
    const { mesh, hosts } = t!
    // Both sides change split-agent and send messages while cut.
    expect((await mesh.cli('aitbc', ['agents', 'remove', 'split-agent'])).code).toBe(0)
    const heartbeat = await mesh.cli('aitbc2', ['agents', 'heartbeat', 'split-agent', '--status', 'busy'])
    expect(heartbeat.code, heartbeat.stderr).toBe(0)
    const fromMajority = JSON.parse((await mesh.cli('aitbc', ['send', '--to', 'all', '--ttl', '300', '--json', 'sent by the majority during the cut'])).stdout) as { id: string }
    const fromMinority = JSON.parse((await mesh.cli('aitbc2', ['send', '--to', 'genesis', '--ttl', '300', '--json', 'sent by the minority during the cut'])).stdout) as { id: string }

    await hosts.move([2], 'main')
    await waitForView(mesh, ['aitbc', 'aitbc1', 'aitbc2'], 'quorum with all three again', v => v.quorum && v.unreachable.length === 0, 60_000)

    // The later change (aitbc2's heartbeat) wins everywhere; the earlier removal is logged as the loser.
    for (const node of ['aitbc', 'aitbc1', 'aitbc2']) {
      await waitFor(`split-agent busy on ${node}`, async () => {
        const list = JSON.parse((await mesh.cli(node, ['agents', 'list', '--json'])).stdout) as Array<{ agent_id: string, status: string }>
        return list.find(a => a.agent_id === 'split-agent')?.status === 'busy'
      }, 30_000, 200)
    }
    await waitFor('the removal logged as superseded on aitbc', () => logEvents(mesh, 'aitbc', 'agent_change_superseded')
      .find(e => e.agentId === 'split-agent' && (e.lost as { author: string, change: string }).change === 'removed'), 10_000)
    const superseded = logEvents(mesh, 'aitbc', 'agent_change_superseded').find(e => (e.lost as { change: string }).change === 'removed')!
    expect(superseded).toMatchObject({ lost: { author: 'aitbc' }, won: { author: 'aitbc2' } })

    // Messages sent on either side during the cut arrive, each once.
    for (const [node, id] of [['aitbc1', fromMajority.id], ['aitbc2', fromMajority.id], ['aitbc', fromMinority.id]] as const) {
      await waitFor(`${id} in ${node}'s inbox`, async () => {
        const inbox = JSON.parse((await mesh.cli(node, ['inbox', '--json'])).stdout) as Array<{ id: string }>
        return inbox.filter(m => m.id === id).length === 1
      }, 60_000, 200)
    }
    await waitFor('every receipt of the majority\'s message', async () => {
      const view = JSON.parse((await mesh.cli('aitbc', ['message', fromMajority.id, '--json'])).stdout) as { message_delivery: { sent: number, delivered: number } }
      return view.message_delivery.delivered === view.message_delivery.sent
    }, 60_000, 200)
  })
})

describe('three nodes, the link between two of them cut', () => {
  let t: Awaited<ReturnType<typeof partitionedMesh>> | undefined

  beforeAll(async () => { t = await partitionedMesh(3) }, 60_000)
  afterAll(async () => {
    await stopAll(t?.mesh)
    t?.hosts.destroy()
  })

  it('each end sees its connection to the other closed, yet the other online through the heartbeats aitbc1 relays; they reconnect after the heal', async () => {
    const { mesh, hosts } = t!
    await waitForView(mesh, ['aitbc', 'aitbc1', 'aitbc2'], 'quorum with all three', v => v.quorum && v.unreachable.length === 0)
    await hosts.cutLink(0, 2)
    const ends = [['aitbc', 'aitbc2'], ['aitbc2', 'aitbc']] as const
    // The silent connection is closed once a ping over it fails; a heartbeat sent after that, relayed, shows the other end alive.
    for (const [at, other] of ends) {
      await waitFor(`${at} to see ${other} online with the connection closed`, async () => {
        const peer = (await nodesOf(mesh, at)).find(p => p.name === other)
        return peer?.connected === false && peer.status === 'online'
      }, 60_000, 100)
    }
    // And it stays so through the next heartbeats: no look finds the other end offline for the lost
    // connection (a look may find its heartbeats late when the machine is overloaded: that is not the close).
    for (const [at, other] of ends) {
      const heartbeats = new Set<string>()
      const looks: string[] = []
      await waitFor(`${at} to get 3 more heartbeats of ${other}`, async () => {
        const peer = (await nodesOf(mesh, at)).find(p => p.name === other)!
        looks.push(`${peer.status}${peer.reason != null ? ` (${peer.reason})` : ''}`)
        heartbeats.add(peer.last_heartbeat!)
        return heartbeats.size > 3
      }, 30_000, 100)
      expect(looks.filter(look => look.includes('connection lost'))).toEqual([])
      expect(looks.at(-1)).toBe('online')
    }
    await waitForView(mesh, ['aitbc', 'aitbc2'], 'quorum with all three reachable', v => v.quorum && v.unreachable.length === 0)

    await hosts.healLink(0, 2)
    for (const [at, other] of ends) {
      await waitFor(`${at} connected to ${other} again`, async () => (await nodesOf(mesh, at)).find(p => p.name === other)?.connected === true, 60_000, 100)
    }
  })
})

describe('five nodes, two cut off together', () => {
  let t: Awaited<ReturnType<typeof partitionedMesh>> | undefined

  beforeAll(async () => { t = await partitionedMesh(5) }, 90_000)
  afterAll(async () => {
    await stopAll(t?.mesh)
    t?.hosts.destroy()
  })

  it('the pair is a minority: it refuses destructive work unless overridden (logged with who asked); the majority of three runs it', async () => {
    const { mesh, hosts, marker, envFile } = t!
    const all = ['aitbc', 'aitbc1', 'aitbc2', 'aitbc3', 'aitbc4']
    await waitForView(mesh, all, 'quorum with all five', v => v.quorum && v.unreachable.length === 0, 60_000)

    // aitbc3 and aitbc4 still reach each other, on a bridge of their own.
    await hosts.move([3, 4], 'side')
    await waitForView(mesh, ['aitbc3', 'aitbc4'], 'no quorum (2 of 5)', v => !v.quorum && v.reachable.join() === 'aitbc3,aitbc4')
    await waitForView(mesh, ['aitbc', 'aitbc1', 'aitbc2'], 'quorum (3 of 5)', v => v.quorum && v.unreachable.join() === 'aitbc3,aitbc4')

    const refused = await mesh.cli('aitbc3', ['coordinate', 'restart-chain', '--force', '--target', 'aitbc3,aitbc4'])
    expect(refused.code).toBe(EXIT_NO_QUORUM)
    expect(refused.stderr).toMatch(/no quorum: aitbc3 reaches 2 of 5 configured nodes \(unreachable: aitbc, aitbc1, aitbc2\)/)
    const refusedSync = await mesh.cli('aitbc4', ['sync', '--type', 'configuration', '--force', '--target', 'aitbc4'])
    expect(refusedSync.code).toBe(EXIT_NO_QUORUM)
    expect(restarts(marker('aitbc3')) + restarts(marker('aitbc4'))).toBe(0)

    await expectFastStatus(mesh, 'aitbc3', ['aitbc', 'aitbc1', 'aitbc2'])

    // The operator's deliberate decision: both minority nodes run it, and each logs who asked.
    const overridden = await mesh.cli('aitbc3', ['coordinate', 'restart-chain', '--force', '--override-quorum', '--target', 'aitbc3,aitbc4', '--json'])
    expect(overridden.code, overridden.stderr).toBe(0)
    expect([restarts(marker('aitbc3')), restarts(marker('aitbc4'))]).toEqual([1, 1])
    expect(logEvents(mesh, 'aitbc3', 'quorum_overridden')).toEqual(expect.arrayContaining([
      expect.objectContaining({ requestedBy: 'local operator', node: 'aitbc3', operation: 'coordinate', action: 'restart-chain', unreachable: ['aitbc', 'aitbc1', 'aitbc2'] })
    ]))
    expect(logEvents(mesh, 'aitbc4', 'quorum_overridden')).toEqual([
      expect.objectContaining({ requestedBy: 'the operator of aitbc3', from: 'aitbc3', node: 'aitbc4', action: 'restart-chain' })
    ])

    // The majority runs the destructive coordinate and the forced sync on its side.
    const ran = await mesh.cli('aitbc', ['coordinate', 'restart-chain', '--force', '--target', 'all', '--json'])
    const out = JSON.parse(ran.stdout) as { nodes_status: Record<string, { action: { state: string } }> }
    expect(Object.fromEntries(Object.entries(out.nodes_status).map(([n, s]) => [n, s.action.state]))).toEqual({ aitbc: 'ok', aitbc1: 'ok', aitbc2: 'ok', aitbc3: 'unreachable', aitbc4: 'unreachable' })
    const synced = await mesh.cli('aitbc', ['sync', '--type', 'configuration', '--force', '--target', 'aitbc1,aitbc2', '--json'])
    expect(synced.code, synced.stderr).toBe(0)
    for (const node of ['aitbc1', 'aitbc2']) expect(readFileSync(envFile(node), 'utf8')).toBe('CHAIN_ID=ait-hub\n')
    for (const node of ['aitbc3', 'aitbc4']) expect(readFileSync(envFile(node), 'utf8')).toBe('CHAIN_ID=drifted\n')

    await hosts.move([3, 4], 'main')
    await waitForView(mesh, all, 'quorum with all five again', v => v.quorum && v.unreachable.length === 0, 60_000)
    for (const node of all) expect(logEvents(mesh, node, 'quorum_changed').length).toBeGreaterThan(0)
  })
})
