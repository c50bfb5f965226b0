import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pbStream } from '@libp2p/utils'
import { describe, expect, it } from 'vitest'
import { AgentUpdate, SyncPush, SyncRequest, SyncResponse } from '../../protocols/agents.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { loadIdentity } from '../../src/mesh/identity.js'
import type { AgentRecord } from '../../src/registry/agent.js'
import { ChangeAuthority } from '../../src/registry/authorship.js'
import type { Clock } from '../../src/registry/clock.js'
import { toWire, type AgentEntry } from '../../src/registry/entry.js'
import { AGENTS_SYNC_PROTOCOL, AGENTS_TOPIC } from '../../src/registry/replication.js'
import { startHostilePeer, type HostilePeer } from '../hostile-peer.js'
import { peersOf, startTestMesh, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

const HONEST = ['aitbc', 'aitbc1', 'aitbc2']

interface Agent { agent_id: string, owner_node: string, endpoints: Record<string, string>, last_heartbeat: string, status: string }

async function list (mesh: LocalMesh, node: string): Promise<Agent[]> {
  const res = await mesh.cli(node, ['agents', 'list', '--json'])
  if (res.code !== 0) throw new Error(`agents list on ${node}: ${res.stderr}`)
  return (JSON.parse(res.stdout) as Agent[]).sort((a, b) => a.agent_id.localeCompare(b.agent_id))
}

async function register (mesh: LocalMesh, node: string, id: string): Promise<void> {
  const res = await mesh.cli(node, ['agents', 'register', '--id', id, '--type', 'worker', '--endpoint', `api=http://${node}.example:9000`, '--json'])
  if (res.code !== 0) throw new Error(`agents register ${id} on ${node}: ${res.stderr}`)
}

function record (id: string, owner: string, over: Partial<AgentRecord> = {}): AgentRecord {
  const now = new Date().toISOString()
  return {
    agent_id: id, agent_type: 'worker', status: 'active', capabilities: [], services: [], endpoints: { api: 'http://attacker.example:1' }, metadata: {},
    last_heartbeat: now, registration_time: now, load_metrics: {}, health_score: 1, version: '1.0.0', tags: [], chain_id: 'ait-hub', island_id: 'default', owner_node: owner, ...over
  }
}

/** Anti-entropy as a hostile dialer runs it: a digest claiming newer copies, then a push of whatever it likes. */
async function antiEntropyPush (hostile: HostilePeer, target: string, updates: AgentUpdate[]): Promise<void> {
  const stream = await hostile.stream(target, AGENTS_SYNC_PROTOCOL)
  try {
    const pb = pbStream(stream, { maxDataLength: 32 * 1024 * 1024 })
    await pb.write({ digest: updates.map(u => ({ agentId: u.agentId, clock: u.clock })) }, SyncRequest)
    const response = await pb.read(SyncResponse)
    if (response.want.length > 0) await pb.write({ updates }, SyncPush)
    await stream.close()
  } catch (err) {
    stream.abort(err as Error)
  }
}

function rssKiB (pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(match?.[1])
}

function rejectionLines (mesh: LocalMesh, node: string, reason: string): string[] {
  return mesh.node(node).logLines.filter(l => l.includes('"event":"agent_change_rejected"') && l.includes(`"reason":"${reason}"`))
}

describe.each(['embedded', 'redis'] as const)('agent registry against a hostile allowlisted peer (%s store)', (backend) => {
  it('forged authors, takeovers, foreign removals, out-of-range clocks and oversized digests change nothing, and acknowledged data survives a restart of every daemon', async () => {
    const redis = new Map<string, TestRedis>()
    if (backend === 'redis') for (const node of HONEST) redis.set(node, await new TestRedis().start())
    // aitbc3 is the hostile peer: allowlisted by aitbc1 only, so whatever it gets aitbc1 to take
    // would reach the others past their allowlists.
    const { mesh } = await startTestMesh(4, { start: false, extra: i => i < 3 && backend === 'redis' ? { redis: redis.get(HONEST[i]!)!.url } : {} })
    const addrOf = (name: string): { name: string, role: string, addr: string } => ({ name, role: mesh.node(name).spec.role, addr: mesh.node(name).addr })
    mesh.writeConfig(mesh.node('aitbc'), undefined, undefined, { peers: [addrOf('aitbc1'), addrOf('aitbc2')] })
    mesh.writeConfig(mesh.node('aitbc2'), undefined, undefined, { peers: [addrOf('aitbc'), addrOf('aitbc1')] })
    for (const node of HONEST) await mesh.start(node)
    await waitFor('the three honest nodes online to each other', async () => {
      for (const node of HONEST) {
        const peers = await peersOf(mesh, node)
        if (!peers.filter(p => HONEST.includes(p.name)).every(p => p.status === 'online')) return false
      }
      return true
    }, 15000, 50)

    await register(mesh, 'aitbc', 'g-agent')
    await register(mesh, 'aitbc1', 'f1-agent')
    await register(mesh, 'aitbc2', 'f2-agent')
    const honest = async (node: string): Promise<string> => JSON.stringify((await list(mesh, node)).filter(a => a.agent_id !== 'h-own').map(a => [a.agent_id, a.owner_node, a.endpoints]))
    await waitFor('three agents everywhere', async () => {
      for (const node of HONEST) if ((await list(mesh, node)).length !== 3) return false
      return true
    }, 10000, 50)
    const expected = await honest('aitbc')
    expect(JSON.parse(expected)).toEqual([
      ['f1-agent', 'aitbc1', { api: 'http://aitbc1.example:9000' }],
      ['f2-agent', 'aitbc2', { api: 'http://aitbc2.example:9000' }],
      ['g-agent', 'aitbc', { api: 'http://aitbc.example:9000' }]
    ])

    const hostile = await startHostilePeer(mesh, 'aitbc3', ['aitbc1'])
    const hostileKey = loadIdentity(join(mesh.node('aitbc3').dir, 'identity.key')).privateKey
    /** Signs with the hostile peer's own key, whoever the change claims as its author. */
    const sign = (author: string, agentId: string, clock: Omit<Clock, 'node'>, owner: string, rec?: AgentRecord): AgentUpdate => {
      const authority = new ChangeAuthority({ node: author, privateKey: hostileKey, peerKey: () => undefined, roleOf: () => undefined, removalsFrom: () => [] })
      const entry: AgentEntry = authority.sign({ agentId, clock: { ...clock, node: author }, owner, recordJson: rec != null ? JSON.stringify(rec) : '', ...(rec != null ? { record: rec } : { removedAt: clock.ms }) })
      return toWire(entry, 'aitbc3')
    }
    const soon = (): Omit<Clock, 'node'> => ({ ms: Date.now() + 1000, counter: 0 })
    const attacks: Array<[string, () => AgentUpdate]> = [
      ['bad-signature', () => sign('aitbc', 'g-agent', soon(), 'aitbc')],
      ['bad-signature', () => sign('aitbc2', 'f2-agent', soon(), 'aitbc2', record('f2-agent', 'aitbc2'))],
      ['time-out-of-range', () => sign('aitbc2', 'f2-agent', soon(), 'aitbc2', record('f2-agent', 'aitbc2', { last_heartbeat: new Date(Date.now() + 365 * 86400_000).toISOString() }))],
      ['not-owner', () => sign('aitbc3', 'f2-agent', soon(), 'aitbc3', record('f2-agent', 'aitbc3'))],
      ['removal-not-allowed', () => sign('aitbc3', 'f1-agent', soon(), 'aitbc1')],
      ['clock-out-of-range', () => sign('aitbc3', 'h-poison', { ms: 9e15, counter: 0 }, 'aitbc3')]
    ]
    // Repeated, as a hostile peer would: each reason is logged once, not once per attempt.
    for (let round = 0; round < 10; round++) {
      await antiEntropyPush(hostile, 'aitbc1', [...attacks.map(([, make]) => make()), sign('aitbc3', 'h-own', { ms: Date.now(), counter: round }, 'aitbc3', record('h-own', 'aitbc3'))])
    }
    for (const reason of new Set(attacks.map(([reason]) => reason))) {
      await waitFor(`aitbc1 to log the ${reason} rejection`, () => rejectionLines(mesh, 'aitbc1', reason).length > 0, 10000)
      expect(rejectionLines(mesh, 'aitbc1', reason).length, reason).toBeLessThanOrEqual(2)
      expect(JSON.parse(rejectionLines(mesh, 'aitbc1', reason)[0]!)).toMatchObject({ level: 'warn', peer: 'aitbc3' })
    }

    // Over gossip, under its own name: removing another node's agent.
    hostile.libp2p.services.pubsub.subscribe(AGENTS_TOPIC)
    await waitFor('aitbc1 to refuse a gossiped removal of f2-agent', async () => {
      await hostile.libp2p.services.pubsub.publish(AGENTS_TOPIC, AgentUpdate.encode(sign('aitbc3', 'f2-agent', soon(), 'aitbc2'))).catch(() => undefined)
      return mesh.node('aitbc1').logLines.some(l => l.includes('"event":"agent_update_rejected"') && l.includes('"reason":"removal-not-allowed"'))
    }, 10000, 200)

    // A digest of 100,000 entries is refused before it is decoded into memory.
    const aitbc1Pid = mesh.node('aitbc1').process!.pid!
    const rssBefore = rssKiB(aitbc1Pid)
    const huge = Array.from({ length: 100_000 }, (_, i) => ({ agentId: `flood-${i}`, clock: { ms: BigInt(Date.now()), counter: 0, node: 'aitbc3' } }))
    for (let i = 0; i < 3; i++) {
      const stream = await hostile.stream('aitbc1', AGENTS_SYNC_PROTOCOL)
      const pb = pbStream(stream, { maxDataLength: 32 * 1024 * 1024 })
      await pb.write({ digest: huge }, SyncRequest)
      await pb.read(SyncResponse).then(() => { throw new Error('a 100,000-entry digest was answered') }, () => undefined)
      stream.abort(new Error('done'))
    }
    await waitFor('aitbc1 to log the refused digest', () => mesh.node('aitbc1').logLines.some(l => l.includes('"event":"anti_entropy_rejected"') && l.includes('"reason":"bad-digest"')), 10000)
    expect(rssKiB(aitbc1Pid) - rssBefore).toBeLessThan(100 * 1024)

    // Nothing forged was applied anywhere; the hostile peer's own agent stays where it is allowlisted.
    for (const node of HONEST) expect(await honest(node), node).toBe(expected)
    expect((await list(mesh, 'aitbc1')).map(a => a.agent_id)).toContain('h-own')
    // Every node stays online with a healthy store, and keeps storing what it acknowledges.
    const health = JSON.parse((await mesh.cli('aitbc', ['health', '--target', 'aitbc,aitbc1,aitbc2', '--json'])).stdout)
    for (const node of HONEST) expect(health.nodes_status[node].status, `${node}: ${JSON.stringify(health.issues)}`).toBe('online')
    await register(mesh, 'aitbc1', 'after-attack')
    expect((await mesh.cli('aitbc1', ['agents', 'remove', 'f1-agent'])).code).toBe(0)

    // A restart of every daemon: what was acknowledged is there, nothing removed comes back,
    // and the hostile peer's agent, relayed by aitbc1, is refused by the nodes that do not know it.
    for (const node of HONEST) await mesh.stop(node)
    for (const node of HONEST) await mesh.start(node)
    const afterRestart = JSON.stringify([['after-attack', 'aitbc1'], ['f2-agent', 'aitbc2'], ['g-agent', 'aitbc']])
    for (const node of HONEST) {
      await waitFor(`${node} to have every acknowledged agent after the restart`, async () =>
        JSON.stringify((await list(mesh, node)).filter(a => a.agent_id !== 'h-own').map(a => [a.agent_id, a.owner_node])) === afterRestart, 15000, 100)
    }
    for (const node of ['aitbc', 'aitbc2']) {
      await waitFor(`${node} to refuse the relayed change of an author it does not know`, () => rejectionLines(mesh, node, 'unknown-author').some(l => l.includes('"peer":"aitbc1"')), 20000, 100)
      expect((await list(mesh, node)).map(a => a.agent_id)).not.toContain('h-own')
    }
    if (backend === 'redis') {
      const client = redis.get('aitbc2')!.client()
      try {
        expect((await client.keys('agent:*')).sort()).toEqual(['agent:after-attack', 'agent:f2-agent', 'agent:g-agent'])
        expect(JSON.parse((await client.get('agent:f2-agent'))!).endpoints).toEqual({ api: 'http://aitbc2.example:9000' })
      } finally {
        client.disconnect()
      }
    }
  }, 120_000)
})
