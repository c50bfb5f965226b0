import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { beforeAll, describe, expect, it } from 'vitest'
import { AgentUpdate } from '../../protocols/agents.js'
import { AllowlistGater } from '../../src/mesh/gater.js'
import { loadIdentity } from '../../src/mesh/identity.js'
import { createMeshLibp2p } from '../../src/mesh/libp2p.js'
import { COORDINATOR_FIELDS_15 } from '../../src/coordinator/record.js'
import { AGENTS_TOPIC } from '../../src/registry/replication.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { onCleanup, startTestMesh, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'
import { TestRedis } from '../redis.js'

interface Agent { agent_id: string, status: string, owner_node: string, last_heartbeat: string, health_score: number, load_metrics: Record<string, number> }

async function list (mesh: LocalMesh, node: string, args: string[] = []): Promise<Agent[]> {
  const res = await mesh.cli(node, ['agents', 'list', '--json', ...args])
  if (res.code !== 0) throw new Error(`agents list on ${node}: ${res.stderr}`)
  return JSON.parse(res.stdout) as Agent[]
}

async function ids (mesh: LocalMesh, node: string): Promise<string[]> {
  return (await list(mesh, node)).map(a => a.agent_id).sort()
}

async function register (mesh: LocalMesh, node: string, id: string, extra: string[] = []): Promise<void> {
  const res = await mesh.cli(node, ['agents', 'register', '--id', id, '--type', 'worker', '--capability', 'gpu', ...extra, '--json'])
  if (res.code !== 0) throw new Error(`agents register ${id} on ${node}: ${res.stderr}`)
}

const NODES = ['aitbc', 'aitbc1', 'aitbc2']

describe('agent registry across three daemons, each with its own Redis', () => {
  let t: TestMesh
  const redis = new Map<string, TestRedis>()

  async function everywhere (what: string, expected: string[]): Promise<void> {
    for (const node of NODES) await waitFor(`${what} on ${node}`, async () => JSON.stringify(await ids(t.mesh, node)) === JSON.stringify(expected), 10000, 50)
  }

  beforeAll(async () => {
    for (const node of NODES) redis.set(node, await new TestRedis().start())
    t = await startTestMesh(3, { extra: i => ({ redis: redis.get(NODES[i]!)!.url }) })
    await waitAllOnline(t.mesh)
  })

  it('an agent registered on genesis is listed on both followers and stored under the AITBC key names', async () => {
    await register(t.mesh, 'aitbc', 'agent-1', ['--service', 'inference', '--tag', 'eu', '--endpoint', 'api=http://10.0.0.1:9000', '--meta', 'gpu=a100'])
    await everywhere('agent-1 listed', ['agent-1'])
    const [remote] = await list(t.mesh, 'aitbc2')
    expect(remote).toMatchObject({ agent_id: 'agent-1', owner_node: 'aitbc', status: 'active', health_score: 1 })
    for (const node of NODES) {
      const client = redis.get(node)!.client()
      try {
        await waitFor(`agent:agent-1 in ${node}'s Redis`, async () => await client.get('agent:agent-1') != null)
        const stored = JSON.parse((await client.get('agent:agent-1'))!)
        expect(stored).toMatchObject({ agent_id: 'agent-1', agent_type: 'worker', status: 'active', capabilities: ['gpu'], services: ['inference'], tags: ['eu'], endpoints: { api: 'http://10.0.0.1:9000' }, metadata: { gpu: 'a100' }, chain_id: 'ait-hub', island_id: 'default' })
        // Exactly the AITBC coordinator's fields: the owner, clock and signature live under mesh:agent-change:.
        expect(Object.keys(stored).sort()).toEqual([...COORDINATOR_FIELDS_15].sort())
        expect(stored.last_heartbeat).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/)
        expect(await client.ttl('agent:agent-1')).toBeGreaterThan(24 * 3600 - 60)
        expect(JSON.parse((await client.get('mesh:agent-change:agent-1'))!)).toMatchObject({ owner: 'aitbc', removed: false })
        expect(await client.smembers('agents:active')).toContain('agent-1')
      } finally {
        client.disconnect()
      }
    }
  })

  it('heartbeats travel: status and load set on the owning node show on the others; another node cannot change the agent', async () => {
    const res = await t.mesh.cli('aitbc', ['agents', 'heartbeat', 'agent-1', '--status', 'busy', '--load', 'cpu=0.9', '--load', 'mem=0.8', '--json'])
    expect(res.code, res.stderr).toBe(0)
    await waitFor('busy on aitbc2', async () => (await list(t.mesh, 'aitbc2')).find(a => a.agent_id === 'agent-1')?.status === 'busy', 10000, 50)
    const [agent] = await list(t.mesh, 'aitbc2')
    expect(agent!.load_metrics).toEqual({ cpu: 0.9, mem: 0.8 })
    expect(agent!.health_score).toBe(0.6) // busy -0.1, average load 0.85 > 0.8 -0.3
    expect(await list(t.mesh, 'aitbc', ['--status', 'active'])).toEqual([])
    const client = redis.get('aitbc')!.client()
    try {
      await waitFor('agent-1 out of agents:active', async () => !(await client.smembers('agents:active')).includes('agent-1'))
    } finally {
      client.disconnect()
    }
    // Only the node an agent registered on changes it: it is the one that signs its records.
    const elsewhere = await t.mesh.cli('aitbc1', ['agents', 'heartbeat', 'agent-1', '--status', 'error'])
    expect(elsewhere.code).toBe(2)
    expect(elsewhere.stderr).toMatch(/agent "agent-1" is owned by node aitbc; heartbeat it there/)
    const removeElsewhere = await t.mesh.cli('aitbc1', ['agents', 'remove', 'agent-1'])
    expect(removeElsewhere.code).toBe(2)
    expect(removeElsewhere.stderr).toMatch(/owned by node aitbc; remove it there/)
    expect((await list(t.mesh, 'aitbc1')).find(a => a.agent_id === 'agent-1')?.status).toBe('busy')
  })

  it('a removal on a follower removes the agent everywhere, Redis included', async () => {
    await register(t.mesh, 'aitbc2', 'agent-2')
    await everywhere('agent-2 listed', ['agent-1', 'agent-2'])
    const res = await t.mesh.cli('aitbc2', ['agents', 'remove', 'agent-2'])
    expect(res.code, res.stderr).toBe(0)
    await everywhere('agent-2 removed', ['agent-1'])
    const client = redis.get('aitbc')!.client()
    try {
      await waitFor('agent:agent-2 deleted from aitbc\'s Redis', async () => await client.get('agent:agent-2') == null)
      expect(await client.smembers('agents:active')).not.toContain('agent-2')
    } finally {
      client.disconnect()
    }
  })

  it('a follower stopped during registrations and a removal catches up after restart', async () => {
    await t.mesh.stop('aitbc2')
    for (let i = 0; i < 5; i++) await register(t.mesh, i % 2 === 0 ? 'aitbc' : 'aitbc1', `late-${i}`)
    expect((await t.mesh.cli('aitbc', ['agents', 'remove', 'late-0'])).code).toBe(0)
    await t.mesh.start('aitbc2')
    await everywhere('late agents everywhere', ['agent-1', 'late-1', 'late-2', 'late-3', 'late-4'])
  })

  it('a follower restarted with its Redis wiped catches up without anyone registering again', async () => {
    await t.mesh.stop('aitbc1')
    const client = redis.get('aitbc1')!.client()
    try {
      await client.flushall()
      expect(await client.keys('*')).toEqual([])
      await t.mesh.start('aitbc1')
      await everywhere('all agents back on aitbc1', ['agent-1', 'late-1', 'late-2', 'late-3', 'late-4'])
      await waitFor('aitbc1\'s Redis refilled', async () => (await client.keys('agent:*')).length === 5)
      // The removal is remembered too: late-0 does not come back.
      expect(await client.get('agent:late-0')).toBeNull()
    } finally {
      client.disconnect()
    }
  })

  it('concurrent updates by the owner and a removal by the genesis node converge to the same state on all three nodes', async () => {
    await register(t.mesh, 'aitbc1', 'contested')
    await everywhere('contested listed', ['agent-1', 'contested', 'late-1', 'late-2', 'late-3', 'late-4'])
    const [owner1, owner2, genesis] = await Promise.all([t.mesh.client('aitbc1'), t.mesh.client('aitbc1'), t.mesh.client('aitbc')])
    try {
      const updates: Array<Promise<unknown>> = []
      for (let round = 0; round < 5; round++) {
        updates.push(owner1.call('agents.heartbeat', { agent_id: 'contested', status: 'maintenance', load_metrics: { cpu: 0.1 } }).catch(() => undefined))
        updates.push(owner2.call('agents.heartbeat', { agent_id: 'contested', status: 'error', load_metrics: { cpu: 0.2 } }).catch(() => undefined))
        if (round === 2) updates.push(genesis.call('agents.remove', { agent_id: 'contested' }).catch(() => undefined))
      }
      await Promise.all(updates)
    } finally {
      owner1.close()
      owner2.close()
      genesis.close()
    }
    await waitFor('one state everywhere', async () => {
      const views = await Promise.all(NODES.map(async n => (await list(t.mesh, n)).find(a => a.agent_id === 'contested')))
      const keys = views.map(v => JSON.stringify([v?.status, v?.last_heartbeat, v?.load_metrics]))
      return keys.every(k => k === keys[0]) ? keys[0] : false
    }, 10000, 100)
    // The stored signed changes agree too (same change, same clock), whatever order they arrived in.
    const stored = await Promise.all(NODES.map(async n => {
      const client = redis.get(n)!.client()
      try {
        return await waitFor(`the change of contested in ${n}'s Redis`, async () => await client.get('mesh:agent-change:contested'))
      } finally {
        client.disconnect()
      }
    }))
    await waitFor('the same clock in every Redis', async () => {
      const now = await Promise.all(NODES.map(async n => {
        const client = redis.get(n)!.client()
        try {
          return JSON.stringify(JSON.parse((await client.get('mesh:agent-change:contested'))!).clock)
        } finally {
          client.disconnect()
        }
      }))
      return new Set(now).size === 1
    }, 10000, 100)
    expect(stored).toHaveLength(3)
  })

  it('Redis restarted under a running daemon loses nothing, and the node is degraded meanwhile', async () => {
    const own = redis.get('aitbc')!
    await own.stop()
    await waitFor('aitbc degraded with the store reason', async () => {
      const out = JSON.parse((await t.mesh.cli('aitbc', ['health', '--target', 'aitbc', '--json'])).stdout)
      return out.nodes_status.aitbc.status === 'degraded' && out.issues.some((i: string) => /^aitbc: store: Redis redis:\/\/127\.0\.0\.1:\d+\/0 unreachable/.test(i))
    }, 10000, 100)
    // Still serving, and still acknowledging registrations.
    await register(t.mesh, 'aitbc', 'while-down')
    expect((await ids(t.mesh, 'aitbc'))).toContain('while-down')
    await own.start()
    const client = own.client()
    try {
      await waitFor('the registration made while Redis was down written', async () => await client.get('agent:while-down') != null, 15000, 100)
      expect((await client.keys('agent:*')).sort()).toEqual((await ids(t.mesh, 'aitbc')).map(id => `agent:${id}`))
      expect(await ids(t.mesh, 'aitbc')).toContain('while-down')
    } finally {
      client.disconnect()
    }
    await waitFor('aitbc online again', async () => JSON.parse((await t.mesh.cli('aitbc', ['health', '--target', 'aitbc', '--json'])).stdout).nodes_status.aitbc.status === 'online', 10000, 100)
  })

  it('refuses bad registrations with exit 2 and stores nothing', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['agents', 'register', '--id', 'x1'], /required option '--type <type>' not specified/],
      [['agents', 'register', '--id', 'x1', '--type', 'worker', '--status', 'sleeping'], /"status": expected one of active, inactive, busy, maintenance, error/],
      [['agents', 'register', '--id', 'has space', '--type', 'worker'], /"agent_id": expected letters, digits/],
      [['agents', 'register', '--id', 'x1', '--type', 'worker', '--meta', `blob=${'x'.repeat(4000)}`, ...Array.from({ length: 20 }, (_, i) => ['--meta', `k${i}=${'y'.repeat(4000)}`]).flat()], /over the 65536 byte limit/],
      [['agents', 'register', '--id', 'x1', '--type', 'worker', '--endpoint', 'no-equals-sign'], /--endpoint "no-equals-sign": expected KEY=VALUE/],
      [['agents', 'heartbeat', 'x1'], /unknown agent "x1"/],
      [['agents', 'heartbeat', 'agent-1', '--load', 'cpu=high'], /--load "cpu=high": expected a number/],
      [['agents', 'list', '--min-health', '2'], /--min-health "2": expected a number from 0 to 1/]
    ]
    for (const [args, message] of cases) {
      const res = await t.mesh.cli('aitbc', args)
      expect(res.code, `${args.slice(0, 4).join(' ')}: ${res.stderr}`).toBe(2)
      expect(res.stderr).toMatch(message)
    }
    expect(await ids(t.mesh, 'aitbc')).not.toContain('x1')
  })

  it('drops malformed and forged agent gossip from a peer, storing nothing', async () => {
    await t.mesh.stop('aitbc2')
    const genesis = t.mesh.node('aitbc')
    const identity = loadIdentity(join(t.mesh.node('aitbc2').dir, 'identity.key'))
    const forger = await createMeshLibp2p({ privateKey: identity.privateKey, listen: [], gater: new AllowlistGater([loadIdentity(join(genesis.dir, 'identity.key')).peerId]) })
    await forger.start()
    onCleanup(async () => { await forger.stop() })
    forger.services.pubsub.subscribe(AGENTS_TOPIC)
    await forger.dial(multiaddr(genesis.addr))
    const record = (id: string): string => JSON.stringify({ agent_id: id, agent_type: 'worker', status: 'active', capabilities: [], services: [], endpoints: {}, metadata: {}, last_heartbeat: new Date().toISOString(), registration_time: new Date().toISOString(), load_metrics: {}, health_score: 1, version: '1', tags: [], chain_id: 'ait-hub', island_id: 'default', owner_node: 'aitbc1' })
    const bad: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array([0xff, 0xff, 0xff, 0x01]), /"reason":"undecodable"/],
      [AgentUpdate.encode({ origin: 'aitbc1', agentId: 'forged', clock: { ms: BigInt(Date.now()), counter: 0, node: 'aitbc1' }, removed: false, recordJson: record('forged'), owner: 'aitbc1', signature: new Uint8Array(64) }), /claims origin \\"aitbc1\\"/],
      [AgentUpdate.encode({ origin: 'aitbc2', agentId: 'junk', clock: { ms: BigInt(Date.now()), counter: 0, node: 'aitbc2' }, removed: false, recordJson: '{"agent_id":"junk","status":"flying"}', owner: 'aitbc2', signature: new Uint8Array(64) }), /invalid record/]
    ]
    for (const [data, reason] of bad) {
      await waitFor(`aitbc to reject ${String(reason)}`, async () => {
        await forger.services.pubsub.publish(AGENTS_TOPIC, data)
        return genesis.logLines.some(l => l.includes('"event":"agent_update_rejected"') && reason.test(l))
      }, 10000, 200)
    }
    const known = await ids(t.mesh, 'aitbc')
    expect(known).not.toContain('forged')
    expect(known).not.toContain('junk')
  })
})
