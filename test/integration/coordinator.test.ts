import { describe, expect, it } from 'vitest'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { StandInCoordinator } from '../coordinator-stand-in.js'
import { onCleanup, startTestMesh, waitAllOnline, waitFor } from '../helpers.js'
import { freePort, TestRedis } from '../redis.js'

const NODES = ['aitbc', 'aitbc1', 'aitbc2']
/** The coordinators' inactivity window, shortened from 120 s; the hub's export keeps agents live within it. */
const INACTIVE_AFTER_S = 4

async function ids (mesh: LocalMesh, node: string): Promise<string[]> {
  const res = await mesh.cli(node, ['agents', 'list', '--json'])
  if (res.code !== 0) throw new Error(`agents list on ${node}: ${res.stderr}`)
  return (JSON.parse(res.stdout) as Array<{ agent_id: string }>).map(a => a.agent_id).sort()
}

async function post (url: string, body: unknown, method = 'POST'): Promise<{ status: number, json: any }> {
  const response = await fetch(url, { method, body: body != null ? JSON.stringify(body) : null, headers: { 'content-type': 'application/json' } })
  return { status: response.status, json: await response.json().catch(() => null) }
}

async function discover (coordinator: StandInCoordinator, query: Record<string, unknown> = {}): Promise<Array<{ agent_id: string, status: string, chain_id: string }>> {
  return (await post(`${coordinator.url}/v1/agents/discover`, query)).json.agents
}

describe('beside the AITBC agent coordinator (stand-ins as strict as the real one)', () => {
  it('the hub\'s coordinator loads every node\'s agents at its start, sees later ones live and keeps them active; removals and chains work; no loops', async () => {
    const redis = new Map<string, TestRedis>()
    for (const node of NODES) redis.set(node, await new TestRedis().start())
    const hubPort = await freePort()
    const { mesh } = await startTestMesh(3, {
      extra: i => ({
        redis: redis.get(NODES[i]!)!.url,
        ...(i === 0 ? { coordinator: { url: `http://127.0.0.1:${hubPort}`, inactiveAfterS: INACTIVE_AFTER_S } } : {})
      })
    })
    await waitAllOnline(mesh)

    // aitbc2 has a coordinator of its own: an agent registered through it enters the mesh.
    const follower = new StandInCoordinator({ redisUrl: redis.get('aitbc2')!.url, inactiveAfterMs: 60_000 })
    await follower.start()
    onCleanup(async () => { await follower.stop() })
    const registered = await post(`${follower.url}/v1/agents/register`, {
      agent_id: 'via-coordinator', agent_type: 'specialist', capabilities: ['vision'], services: [], endpoints: { api: 'http://10.1.0.2:9000' },
      metadata: { model: { name: 'vit', params: 86 } }, chain_id: 'ait-devnet', island_id: 'eu-1'
    })
    expect(registered.status, JSON.stringify(registered.json)).toBe(200)
    expect((await mesh.cli('aitbc1', ['agents', 'register', '--id', 'via-cli', '--type', 'worker', '--capability', 'gpu', '--chain', 'ait-devnet'])).code).toBe(0)
    for (const node of NODES) await waitFor(`both agents on ${node}`, async () => JSON.stringify(await ids(mesh, node)) === '["via-cli","via-coordinator"]', 10000, 50)
    const onHub = JSON.parse((await mesh.cli('aitbc', ['agents', 'list', '--json'])).stdout) as Array<Record<string, unknown>>
    expect(onHub.find(a => a.agent_id === 'via-coordinator')).toMatchObject({ owner_node: 'aitbc2', chain_id: 'ait-devnet', island_id: 'eu-1', metadata: { model: { name: 'vit', params: 86 } } })

    // The hub's coordinator starts now: its strict load of agent:* takes both, nothing stops it.
    const hubRedis = redis.get('aitbc')!.client()
    onCleanup(() => { hubRedis.disconnect() })
    await waitFor('both agents in the hub\'s Redis', async () => (await hubRedis.keys('agent:*')).length === 2, 10000, 50)
    const hub = new StandInCoordinator({ redisUrl: redis.get('aitbc')!.url, port: hubPort, inactiveAfterMs: INACTIVE_AFTER_S * 1000, monitorIntervalMs: 250 })
    await hub.start()
    onCleanup(async () => { await hub.stop() })
    expect(hub.load.error).toBeUndefined()
    expect([...hub.load.loaded].sort()).toEqual(['via-cli', 'via-coordinator'])

    // Registered after its start: seen live, through the export, without a restart.
    expect((await mesh.cli('aitbc1', ['agents', 'register', '--id', 'late', '--type', 'worker', '--capability', 'gpu'])).code).toBe(0)
    await waitFor('the late agent in the hub coordinator\'s discovery', async () => (await discover(hub)).some(a => a.agent_id === 'late'), 15000, 100)

    // Three inactivity windows: every remote agent stays active in the coordinator all along.
    const watchedFrom = Date.now()
    await waitFor('three inactivity windows with every agent active at the hub', async () => {
      const agents = await discover(hub)
      const inactive = agents.filter(a => a.status !== 'active').map(a => a.agent_id)
      expect(inactive, 'agents the hub coordinator shows inactive').toEqual([])
      expect(agents.map(a => a.agent_id).sort()).toEqual(['late', 'via-cli', 'via-coordinator'])
      return Date.now() - watchedFrom > 3 * INACTIVE_AFTER_S * 1000
    }, 30000, 200)

    // No loops: with the coordinator's keepalive writes and events going on, nothing changes in the mesh.
    const changeOf = async (node: string, id: string): Promise<string | null> => {
      const client = redis.get(node)!.client()
      try {
        return await client.get(`mesh:agent-change:${id}`)
      } finally {
        client.disconnect()
      }
    }
    const before = await Promise.all(NODES.map(async n => await changeOf(n, 'via-cli')))
    const eventsBefore = hub.requests.length
    await waitFor('two keepalive rounds at the hub', () => hub.requests.length >= eventsBefore + 4 ? true : undefined, 15000, 100)
    expect(await Promise.all(NODES.map(async n => await changeOf(n, 'via-cli')))).toEqual(before)
    expect(mesh.node('aitbc').logLines.filter(l => l.includes('"event":"coordinator_import"') && l.includes('"result":"imported"'))).toEqual([])

    // Tasks for a chain find the mesh's agent of that chain.
    const task = await post(`${hub.url}/v1/tasks/submit`, { task_data: {}, chain_id: 'ait-devnet', requirements: { capabilities: ['gpu'] } })
    expect(task.json.assigned_agent).toBe('via-cli')
    const hubTask = await post(`${hub.url}/v1/tasks/submit`, { task_data: {}, requirements: { capabilities: ['gpu'] } })
    expect(hubTask.json.assigned_agent).toBe('late')

    // A removal through aitbc2's coordinator: gone everywhere, the hub coordinator included.
    expect((await post(`${follower.url}/v1/agents/via-coordinator`, null, 'DELETE')).status).toBe(200)
    for (const node of NODES) await waitFor(`via-coordinator removed on ${node}`, async () => !(await ids(mesh, node)).includes('via-coordinator'), 10000, 50)
    await waitFor('via-coordinator gone from the hub coordinator', async () => !(await discover(hub)).some(a => a.agent_id === 'via-coordinator'), 15000, 100)
    expect(await hubRedis.get('agent:via-coordinator')).toBeNull()
  }, 120_000)
})
