import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { pbStream } from '@libp2p/utils'
import type { Redis } from 'ioredis'
import { beforeAll, describe, expect, it } from 'vitest'
import { Envelope, Receipt, ReceiptStatus } from '../../protocols/messages.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { AllowlistGater } from '../../src/mesh/gater.js'
import { loadIdentity } from '../../src/mesh/identity.js'
import { createMeshLibp2p } from '../../src/mesh/libp2p.js'
import { MESSAGES_PROTOCOL } from '../../src/messaging/delivery/index.js'
import { onCleanup, startTestMesh, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'
import { TestRedis } from '../redis.js'

interface InboxMessage { id: string, body: string, position: number, received_at: number }
interface OpRecord { id: string, started_at: string }

const HOUR_MS = 3600_000

async function cliJson<T> (mesh: LocalMesh, node: string, args: string[]): Promise<T> {
  const res = await mesh.cli(node, [...args, '--json'])
  if (res.code !== 0) throw new Error(`${args.join(' ')} on ${node}: ${res.stderr}`)
  return JSON.parse(res.stdout) as T
}

/** Per-command call counts and key lookups, from INFO. */
async function redisCounters (client: Redis): Promise<{ calls: Record<string, number>, keyLookups: number }> {
  const calls: Record<string, number> = {}
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) calls[m[1]!] = Number(m[2])
  const stats = await client.info('stats')
  const stat = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(stats)?.[1] ?? 0)
  return { calls, keyLookups: stat('keyspace_hits') + stat('keyspace_misses') }
}

function delta (before: Awaited<ReturnType<typeof redisCounters>>, after: Awaited<ReturnType<typeof redisCounters>>): { calls: (name: string) => number, keyLookups: number } {
  return { calls: name => (after.calls[name] ?? 0) - (before.calls[name] ?? 0), keyLookups: after.keyLookups - before.keyLookups }
}

/** Writes `count` inbox messages straight into Redis, in the daemon's layout. */
async function writeInbox (client: Redis, count: number, firstScore: number, prefix: string): Promise<string[]> {
  const ids: string[] = []
  for (let start = 0; start < count; start += 1000) {
    const pipeline = client.pipeline()
    for (let i = start; i < Math.min(count, start + 1000); i++) {
      const id = `${prefix}-${i}`
      const position = firstScore + i
      const receivedAt = Math.floor(position / 1000)
      ids.push(id)
      pipeline.set(`mesh:in:${id}`, JSON.stringify({ id, from: 'aitbc', kind: 'text', body: `body ${i}`, sent_at: receivedAt, expires_at: receivedAt + HOUR_MS, received_at: receivedAt, position }))
      pipeline.zadd('mesh:inbox-index', position, id)
    }
    await pipeline.exec()
  }
  return ids
}

describe('retention: inbox, dedupe and operation records, with a short retention configured', () => {
  let t: TestMesh
  let redis: TestRedis
  let client: Redis

  beforeAll(async () => {
    redis = await new TestRedis().start()
    client = redis.client()
    onCleanup(() => { client.disconnect() })
    t = await startTestMesh(2, {
      extra: i => i === 1
        ? { redis: redis.url, retention: { inbox: { maxAgeS: 600, maxCount: 5 }, operations: { maxAgeS: 600, maxCount: 3 } } }
        : {}
    })
    await waitAllOnline(t.mesh)
  })

  it('removes old and surplus inbox entries, keeps the fresh ones, and still answers a resent id DUPLICATE', async () => {
    // Two messages an hour old, written straight into the store: past maxAgeS.
    await writeInbox(client, 2, (Date.now() - HOUR_MS) * 1000, 'old')
    // Play aitbc over the real protocol, so ids can be chosen and resent.
    await t.mesh.stop('aitbc')
    const identity = loadIdentity(join(t.mesh.node('aitbc').dir, 'identity.key'))
    const sender = await createMeshLibp2p({ privateKey: identity.privateKey, listen: [], gater: new AllowlistGater([loadIdentity(join(t.mesh.node('aitbc1').dir, 'identity.key')).peerId]) })
    await sender.start()
    onCleanup(async () => { await sender.stop() })
    const deliver = async (id: string): Promise<Receipt> => {
      const stream = await sender.dialProtocol(multiaddr(t.mesh.node('aitbc1').addr), MESSAGES_PROTOCOL)
      const pb = pbStream(stream)
      await pb.write({ id, from: 'aitbc', kind: 'text', body: new TextEncoder().encode(`body of ${id}`), sentAtMs: BigInt(Date.now()), expiresAtMs: BigInt(Date.now() + 600_000), seq: 1n }, Envelope)
      const receipt = await pb.read(Receipt)
      await stream.close()
      return receipt
    }
    for (let i = 0; i < 7; i++) expect((await waitFor(`keep-${i} stored`, async () => await deliver(`keep-${i}`), 10000, 200)).status).toBe(ReceiptStatus.STORED)

    const kept = ['keep-2', 'keep-3', 'keep-4', 'keep-5', 'keep-6']
    await waitFor('the inbox trimmed to the newest 5', async () => {
      const ids = (await cliJson<InboxMessage[]>(t.mesh, 'aitbc1', ['inbox'])).map(m => m.id)
      return JSON.stringify(ids) === JSON.stringify(kept)
    }, 20000, 250)
    expect(await client.exists('mesh:in:old-0', 'mesh:in:old-1', 'mesh:in:keep-0', 'mesh:in:keep-1')).toBe(0)
    expect(await client.zcard('mesh:inbox-index')).toBe(5)

    // keep-0 is gone from the inbox, but its id is kept until it expires: a resend is a duplicate.
    expect(await client.pttl('mesh:seen:keep-0')).toBeGreaterThan(500_000)
    expect(await deliver('keep-0')).toMatchObject({ id: 'keep-0', status: ReceiptStatus.DUPLICATE })
    expect((await cliJson<InboxMessage[]>(t.mesh, 'aitbc1', ['inbox'])).map(m => m.id)).toEqual(kept)
    expect(await client.exists('mesh:in:keep-0')).toBe(0)
    await sender.stop()
  })

  it('removes old and surplus operation records and keeps the newest', async () => {
    // Two records an hour old, written straight into the store: past maxAgeS.
    for (const id of ['op-old-1', 'op-old-2']) {
      const startedAt = Date.now() - HOUR_MS
      await client.set(`mesh:op:${id}`, JSON.stringify({ id, request: { operation: 'status' }, started_at: new Date(startedAt).toISOString(), finished_at: null, result: null, error: null }))
      await client.zadd('mesh:op-index', startedAt, id)
    }
    const run: string[] = []
    for (let i = 0; i < 4; i++) {
      const res = await t.mesh.cli('aitbc1', ['status', '--target', 'aitbc1', '--json'])
      expect(res.code).toBe(0)
      run.push((await cliJson<OpRecord[]>(t.mesh, 'aitbc1', ['ops', '--limit', '1']))[0]!.id)
    }
    await waitFor('the operation records trimmed to the newest 3', async () => await client.zcard('mesh:op-index') === 3, 20000, 250)
    expect((await cliJson<OpRecord[]>(t.mesh, 'aitbc1', ['ops'])).map(r => r.id)).toEqual(run.slice(1).reverse())
    expect(await client.exists('mesh:op:op-old-1', 'mesh:op:op-old-2', `mesh:op:${run[0]!}`)).toBe(0)
  })
})

describe('a large inbox: reads cost O(limit), a restart loads nothing whole, and a legacy inbox list is moved into the index', () => {
  let t: TestMesh
  let redis: TestRedis
  let client: Redis
  let ids: string[]

  beforeAll(async () => {
    redis = await new TestRedis().start()
    client = redis.client()
    onCleanup(() => { client.disconnect() })
    t = await startTestMesh(1, { extra: () => ({ redis: redis.url }) })
    ids = await writeInbox(client, 20_000, Date.now() * 1000 - 20_000_000, 'bulk')
  })

  it('inbox --limit 10 answers the right 10 from 20,000, reading about 10 keys', async () => {
    const before = await redisCounters(client)
    const first = await cliJson<InboxMessage[]>(t.mesh, 'aitbc', ['inbox', '--limit', '10'])
    const d = delta(before, await redisCounters(client))
    expect(first.map(m => m.id)).toEqual(ids.slice(0, 10))
    expect(d.calls('lrange')).toBe(0)
    expect(d.calls('mget')).toBe(1)
    expect(d.calls('zrangebyscore')).toBeLessThanOrEqual(3) // this read, and perhaps a retention pass
    // 10 values and the index; a retention pass in between adds a few. Far from 20,000.
    expect(d.keyLookups).toBeLessThan(50)

    const since = await cliJson<InboxMessage[]>(t.mesh, 'aitbc', ['inbox', '--since', ids[15_000]!, '--limit', '10'])
    expect(since.map(m => m.id)).toEqual(ids.slice(15_001, 15_011))
    const time = new Date(since[0]!.received_at).toISOString()
    const byTime = await cliJson<InboxMessage[]>(t.mesh, 'aitbc', ['inbox', '--since', time, '--limit', '3'])
    expect(byTime.every(m => m.received_at > since[0]!.received_at)).toBe(true)
    expect(byTime[0]!.position).toBeGreaterThan(since[0]!.position)
    const bad = await t.mesh.cli('aitbc', ['inbox', '--since', 'no-such-id'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('not a message id in this inbox')
  })

  it('a restarted daemon reads nothing whole: its start costs a few key lookups, not 20,000', async () => {
    await t.mesh.stop('aitbc')
    const before = await redisCounters(client)
    await t.mesh.start('aitbc')
    const d = delta(before, await redisCounters(client))
    expect(d.keyLookups).toBeLessThan(200)
    // One read of each legacy list's last entry (inbox, operations; there is none).
    expect(d.calls('lrange')).toBeLessThanOrEqual(2)
    expect((await cliJson<InboxMessage[]>(t.mesh, 'aitbc', ['inbox', '--limit', '2'])).map(m => m.id)).toEqual(ids.slice(0, 2))
  })

  it('moves a legacy inbox list and operation list into the indexes at start, in order, deduplicating their ids', async () => {
    await t.mesh.stop('aitbc')
    await client.flushdb()
    const now = Date.now()
    const legacy = Array.from({ length: 1200 }, (_, i) => `legacy-${i}`)
    const pipeline = client.pipeline()
    legacy.forEach((id, i) => {
      const receivedAt = now - 60_000 + Math.floor(i / 3) // three to a millisecond: positions must still increase
      pipeline.set(`mesh:in:${id}`, JSON.stringify({ id, from: 'aitbc', kind: 'text', body: `legacy ${i}`, sent_at: receivedAt, expires_at: now + HOUR_MS, received_at: receivedAt, position: i }))
      pipeline.rpush('mesh:inbox', id)
    })
    for (let i = 0; i < 3; i++) {
      const id = `legacy-op-${i}`
      pipeline.set(`mesh:op:${id}`, JSON.stringify({ id, request: { operation: 'status' }, started_at: new Date(now - 10_000 + i).toISOString(), finished_at: null, result: null, error: null }))
      pipeline.rpush('mesh:ops', id)
    }
    await pipeline.exec()

    await t.mesh.start('aitbc')
    await waitFor('the legacy lists moved', async () => await client.exists('mesh:inbox', 'mesh:ops', 'mesh:inbox-migration', 'mesh:ops-migration') === 0, 20000, 100)
    expect(await client.zcard('mesh:inbox-index')).toBe(1200)
    const all = await cliJson<InboxMessage[]>(t.mesh, 'aitbc', ['inbox', '--limit', '2000'])
    expect(all.map(m => m.id)).toEqual(legacy)
    expect(all.every((m, i) => i === 0 || m.position > all[i - 1]!.position)).toBe(true)
    expect(all[0]!.position).toBeGreaterThanOrEqual(all[0]!.received_at * 1000)
    expect((await cliJson<InboxMessage[]>(t.mesh, 'aitbc', ['inbox', '--since', 'legacy-1000', '--limit', '3'])).map(m => m.id)).toEqual(['legacy-1001', 'legacy-1002', 'legacy-1003'])
    expect(await client.pttl('mesh:seen:legacy-7')).toBeGreaterThan(HOUR_MS - 120_000)
    expect((await cliJson<OpRecord[]>(t.mesh, 'aitbc', ['ops'])).map(r => r.id)).toEqual(['legacy-op-2', 'legacy-op-1', 'legacy-op-0'])
  })
})
