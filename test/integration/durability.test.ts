import { describe, expect, it } from 'vitest'
import { runCli, startTestMesh, waitFor, type TestMesh } from '../helpers.js'
import { TestRedis } from '../redis.js'

/** The daemons re-read the persistence settings this often here, instead of every minute. */
const RECHECK_ENV = { AITBC_MESH_TEST_DURABILITY_RECHECK_MS: '300' }

interface StoreSection { kind: string, durability: { level: string, detail: string, guarantee: string, durable: boolean } }
interface NodeStatus { status: string, store: StoreSection | null, checks?: Array<{ name: string, ok: boolean, detail: string }> }
interface DoctorCheck { name: string, ok: boolean, detail: string, fix: string | null }

/** One node on `redis` (the embedded store without it), with store.durability `mode` when given. */
async function oneNode (redis: TestRedis | undefined, mode?: 'refuse' | 'degraded' | 'accept', start = true): Promise<TestMesh> {
  return await startTestMesh(1, {
    start,
    env: RECHECK_ENV,
    extra: () => ({ ...(redis != null ? { redis: redis.url } : {}), ...(mode != null ? { store: { durability: mode } } : {}) })
  })
}

async function nodeStatus (t: TestMesh, kind: 'status' | 'health' = 'health'): Promise<{ node: NodeStatus, issues: string[] }> {
  const res = await t.mesh.cli('aitbc', [kind, '--target', 'aitbc', '--json'])
  const out = JSON.parse(res.stdout) as { nodes_status: Record<string, NodeStatus>, issues: string[] }
  return { node: out.nodes_status.aitbc!, issues: out.issues }
}

async function doctorCheck (t: TestMesh): Promise<DoctorCheck> {
  const res = await runCli(['doctor', '--config', t.mesh.node('aitbc').configFile, '--json'])
  const check = (JSON.parse(res.stdout) as DoctorCheck[]).find(c => c.name === 'store durability')
  if (check == null) throw new Error(`doctor printed no store durability check: ${res.stdout}`)
  return check
}

function logged (t: TestMesh, event: string): Array<Record<string, unknown>> {
  return t.mesh.node('aitbc').logLines.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.event === event)
}

const FIX = (url: string): string => `redis-cli -u ${url} CONFIG SET appendonly yes && redis-cli -u ${url} CONFIG SET appendfsync always && redis-cli -u ${url} CONFIG REWRITE (or in redis.conf: appendonly yes, appendfsync always)`

describe('the durability of the store in force: read, reported and enforced', () => {
  it('a Redis without persistence: the node runs degraded, says why in status, health and the log, doctor gives the fix; fixed at runtime, it is durable again', async () => {
    const redis = await new TestRedis(undefined, { persistence: 'none' }).start()
    const t = await oneNode(redis)
    const { node, issues } = await nodeStatus(t)
    expect(node.status).toBe('degraded')
    expect(node.store).toEqual({
      kind: 'redis',
      durability: { level: 'none', detail: 'appendonly no, appendfsync everysec, save ""', guarantee: 'no persistence: a restart of Redis loses everything', durable: false }
    })
    expect(node.checks?.find(c => c.name === 'store_durability')).toMatchObject({ ok: false })
    expect(issues).toContain(`aitbc: store not durable (none: appendonly no, appendfsync everysec, save ""): no persistence: a restart of Redis loses everything; fix: ${FIX(redis.url)}`)
    expect(logged(t, 'store_durability')).toEqual([expect.objectContaining({ level: 'warn', durable: false, mode: 'degraded' })])

    const check = await doctorCheck(t)
    expect(check).toEqual({
      name: 'store durability',
      ok: false,
      detail: `${redis.url}: none (appendonly no, appendfsync everysec, save ""): no persistence: a restart of Redis loses everything; store.durability is degraded: the node reports itself degraded`,
      fix: FIX(redis.url)
    })

    // The operator applies the fix (CONFIG SET, as the fix says): the next read sees it.
    const client = redis.client()
    try {
      await client.config('SET', 'appendonly', 'yes')
      await client.config('SET', 'appendfsync', 'always')
    } finally {
      client.disconnect()
    }
    await waitFor('aitbc online with a durable store', async () => {
      const now = await nodeStatus(t)
      return now.node.status === 'online' && now.node.store?.durability.level === 'always'
    }, 15000, 100)
    expect(logged(t, 'store_durability')).toEqual([
      expect.objectContaining({ level: 'warn', durability: 'none' }),
      expect.objectContaining({ level: 'info', durability: 'always', previous: 'none', durable: true })
    ])
    expect((await doctorCheck(t)).ok).toBe(true)
  })

  it('store.durability refuse: a Redis without persistence refuses the start with exit 2, naming the store, its settings and the fix', async () => {
    const redis = await new TestRedis(undefined, { persistence: 'none' }).start()
    const t = await oneNode(redis, 'refuse', false)
    const configFile = t.mesh.node('aitbc').configFile
    const res = await runCli(['daemon', '--config', configFile], undefined, RECHECK_ENV)
    expect(res.code, res.stderr).toBe(2)
    expect(res.stderr.trimEnd().split('\n')).toEqual([
      `aitbc-mesh: ${redis.url}: Redis is not durable (appendonly no, appendfsync everysec, save ""): no persistence: a restart of Redis loses everything; ` +
      `store.durability is refuse in ${configFile}, so the daemon does not start; fix: ${FIX(redis.url)}; or accept the risk with store.durability: degraded in ${configFile}`
    ])
  })

  it('store.durability refuse: a Redis that stops being durable at runtime is refused for writes until it is durable again; what was held is written then', async () => {
    const redis = await new TestRedis(undefined, { persistence: 'everysec' }).start()
    const t = await oneNode(redis, 'refuse')
    const { node } = await nodeStatus(t, 'status')
    expect(node.status).toBe('online')
    expect(node.store?.durability).toEqual({
      level: 'everysec',
      detail: 'appendonly yes, appendfsync everysec, save ""',
      guarantee: 'append-only, fsync every second: nothing acknowledged is lost on a crash of Redis; a crash of the host can lose about the last second',
      durable: true
    })

    const client = redis.client()
    try {
      await client.config('SET', 'appendonly', 'no')
      await waitFor('aitbc degraded: writes refused', async () => {
        const now = await nodeStatus(t)
        return now.node.status === 'degraded' && now.issues.some(i => i.includes('writes are refused (store.durability: refuse)'))
      }, 15000, 100)
      expect(logged(t, 'store_durability').at(-1)).toMatchObject({ level: 'warn', durable: false, mode: 'refuse' })
      // Accepted into memory while refused, not written to the non-durable Redis.
      const registered = await t.mesh.cli('aitbc', ['agents', 'register', '--id', 'held', '--type', 'worker'])
      expect(registered.code, registered.stderr).toBe(0)
      expect(await client.get('agent:held')).toBeNull()

      await client.config('SET', 'appendonly', 'yes')
      await waitFor('the agent held in memory written once Redis is durable', async () => await client.get('agent:held') != null, 15000, 100)
      expect((await nodeStatus(t)).node.status).toBe('online')
    } finally {
      client.disconnect()
    }
  })

  it('store.durability accept: a Redis without persistence runs online, reports the level and logs it once at info; doctor passes saying so', async () => {
    const redis = await new TestRedis(undefined, { persistence: 'none' }).start()
    const t = await oneNode(redis, 'accept')
    const { node } = await nodeStatus(t)
    expect(node.status).toBe('online')
    expect(node.store?.durability).toMatchObject({ level: 'none', durable: false })
    expect(logged(t, 'store_durability')).toEqual([expect.objectContaining({ level: 'info', durable: false, mode: 'accept' })])
    expect(await doctorCheck(t)).toMatchObject({ ok: true, detail: expect.stringMatching(/: none \(.*\): no persistence: .*; accepted \(store\.durability: accept in .*mesh\.yaml\)$/) })
  })

  it('a Redis whose CONFIG is not permitted: unknown, said so, and the fix points at redis.conf', async () => {
    const redis = await new TestRedis(undefined, { extraArgs: ['--rename-command', 'CONFIG', '""'] }).start()
    const t = await oneNode(redis)
    const { node } = await nodeStatus(t)
    expect(node.status).toBe('degraded')
    expect(node.store?.durability).toMatchObject({ level: 'unknown', durable: false, guarantee: 'the persistence settings could not be read, so nothing is promised' })
    expect(node.store?.durability.detail).toMatch(/^CONFIG GET is not permitted on redis:\/\/127\.0\.0\.1:\d+\/0 \(.*\); INFO says append-only is on$/)
    const check = await doctorCheck(t)
    expect(check.ok).toBe(false)
    expect(check.fix).toBe('CONFIG not permitted: check redis.conf for appendonly yes and appendfsync always (or everysec), then restart Redis')
  })

  it('the embedded store is reported durable: always (WAL, synchronous=FULL)', async () => {
    const t = await oneNode(undefined)
    const { node } = await nodeStatus(t, 'status')
    expect(node.status).toBe('online')
    expect(node.store).toEqual({
      kind: 'embedded',
      durability: {
        level: 'always',
        detail: expect.stringMatching(/^SQLite .*store\.sqlite: WAL, synchronous=FULL \(fsync at every commit\)$/),
        guarantee: 'append-only, fsync always: nothing acknowledged is lost on a crash of the store or the host',
        durable: true
      }
    })
    expect(await doctorCheck(t)).toMatchObject({ ok: true, detail: 'embedded store: always (SQLite WAL, synchronous=FULL): append-only, fsync always: nothing acknowledged is lost on a crash of the store or the host' })
  })

  it('a Redis that comes back empty: the loss is logged and the agents and operation records are written back', async () => {
    const redis = await new TestRedis().start()
    const t = await oneNode(redis)
    const registered = await t.mesh.cli('aitbc', ['agents', 'register', '--id', 'kept', '--type', 'worker'])
    expect(registered.code, registered.stderr).toBe(0)
    expect((await t.mesh.cli('aitbc', ['status', '--target', 'aitbc', '--json'])).code).toBe(0)
    const ops = JSON.parse((await t.mesh.cli('aitbc', ['ops', '--json'])).stdout) as Array<{ id: string }>
    expect(ops.length).toBeGreaterThan(0)
    const client = redis.client()
    try {
      await waitFor('the operation record stored', async () => await client.get(`mesh:op:${ops[0]!.id}`) != null, 5000, 50)
    } finally {
      client.disconnect()
    }

    await redis.restartEmpty()
    await waitFor('the loss logged', () => logged(t, 'store_loss_detected').length > 0, 15000, 50)
    expect(logged(t, 'store_loss_detected')[0]).toMatchObject({ level: 'warn', lostFrom: 'everything' })
    const after = redis.client()
    try {
      await waitFor('the agent and the operation records written back', async () =>
        await after.get('agent:kept') != null && await after.get(`mesh:op:${ops[0]!.id}`) != null, 15000, 100)
      expect(await after.zrange('mesh:op-index', 0, -1)).toEqual(expect.arrayContaining(ops.map(o => o.id)))
    } finally {
      after.disconnect()
    }
  })
})
