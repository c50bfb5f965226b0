import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { StoreOutcomeUnknownError, StoreUnavailableError, type StoreBackend, type WriteOp } from '../../src/store/backend.js'
import { RedisBackend } from '../../src/store/redis-backend.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

const log = pino({ level: 'silent' })

/** What the storage holds, read around the backend: keys exactly as stored (store prefix included). */
interface Raw {
  strings: Record<string, string>
  sets: Record<string, string[]>
}

/** One test's storage: every backend opened on it sees the same data. */
interface Storage {
  open: (prefix?: string) => Promise<StoreBackend>
  raw: () => Promise<Raw>
}

interface Target {
  setup?: () => Promise<void>
  teardown?: () => Promise<void>
  /** Empty storage for one test. */
  fresh: () => Promise<Storage>
  /**
   * An operation that fails when applied (after the earlier operations of its batch ran), or
   * undefined when the backend cannot be made to fail part-way through a batch.
   */
  failingOp?: WriteOp
  /** What `durability()` reports for this target's storage. */
  expectedDurability: string
}

async function ready (backend: StoreBackend): Promise<StoreBackend> {
  await waitFor(`${backend.kind} store ${backend.location} healthy`, () => backend.health().ok, 10_000)
  return backend
}

/** The StoreBackend contract, the same for every backend. */
function contract (name: string, target: Target): void {
  describe(`StoreBackend contract: ${name}`, () => {
    let storage: Storage
    const opened: StoreBackend[] = []

    /** Opens a backend on this test's storage; closed after the test. */
    async function open (prefix = ''): Promise<StoreBackend> {
      const backend = await storage.open(prefix)
      opened.push(backend)
      return backend
    }

    if (target.setup != null) beforeAll(target.setup)
    if (target.teardown != null) afterAll(target.teardown)
    beforeEach(async () => { storage = await target.fresh() })
    afterEach(async () => {
      for (const backend of opened.splice(0)) await backend.close()
    })

    it('answers null for a missing key, [] for a missing set and an empty map for a scan of nothing', async () => {
      const store = await open()
      expect(await store.get('agent:nobody')).toBeNull()
      expect(await store.smembers('agents:active')).toEqual([])
      expect(await store.scan('agent:')).toEqual(new Map())
    })

    it('sets, gets, overwrites and deletes a key', async () => {
      const store = await open()
      await store.write([{ op: 'set', key: 'agent:a', value: '{"v":1}' }])
      expect(await store.get('agent:a')).toBe('{"v":1}')

      await store.write([{ op: 'set', key: 'agent:a', value: '{"v":2}' }])
      expect(await store.get('agent:a')).toBe('{"v":2}')

      await store.write([{ op: 'del', key: 'agent:a' }])
      expect(await store.get('agent:a')).toBeNull()
      // Deleting what is not there is not an error.
      await store.write([{ op: 'del', key: 'agent:a' }])
      expect(await store.get('agent:a')).toBeNull()
    })

    it('keeps set members sorted and without duplicates; srem removes one member; sets are independent', async () => {
      const store = await open()
      await store.write([
        { op: 'sadd', set: 'agents:active', member: 'charlie' },
        { op: 'sadd', set: 'agents:active', member: 'alpha' },
        { op: 'sadd', set: 'agents:active', member: 'bravo' },
        { op: 'sadd', set: 'agents:active', member: 'alpha' },
        { op: 'sadd', set: 'other', member: 'zulu' }
      ])
      expect(await store.smembers('agents:active')).toEqual(['alpha', 'bravo', 'charlie'])
      expect(await store.smembers('other')).toEqual(['zulu'])

      await store.write([{ op: 'srem', set: 'agents:active', member: 'bravo' }, { op: 'srem', set: 'agents:active', member: 'not-a-member' }])
      expect(await store.smembers('agents:active')).toEqual(['alpha', 'charlie'])
      expect(await store.smembers('other')).toEqual(['zulu'])

      await store.write([{ op: 'srem', set: 'agents:active', member: 'alpha' }, { op: 'srem', set: 'agents:active', member: 'charlie' }])
      expect(await store.smembers('agents:active')).toEqual([])
    })

    it('scan returns exactly the keys starting with the prefix, with their values', async () => {
      const store = await open()
      await store.write([
        { op: 'set', key: 'agent:a', value: 'A' },
        { op: 'set', key: 'agent:b', value: 'B' },
        { op: 'set', key: 'agentx', value: 'not under agent:' },
        { op: 'set', key: 'mesh:agent-removed:a', value: 'T' },
        { op: 'set', key: 'a*b', value: 'star' },
        { op: 'set', key: 'axb', value: 'x' }
      ])
      expect(await store.scan('agent:')).toEqual(new Map([['agent:a', 'A'], ['agent:b', 'B']]))
      expect(await store.scan('mesh:agent-removed:')).toEqual(new Map([['mesh:agent-removed:a', 'T']]))
      // Glob characters in the prefix are literal.
      expect(await store.scan('a*')).toEqual(new Map([['a*b', 'star']]))
      expect(await store.scan('nothing:')).toEqual(new Map())
      expect(await store.scan('')).toEqual(new Map([
        ['agent:a', 'A'], ['agent:b', 'B'], ['agentx', 'not under agent:'], ['mesh:agent-removed:a', 'T'], ['a*b', 'star'], ['axb', 'x']
      ]))
    })

    it('scan sees only keys under its own store prefix, and returns them without that prefix', async () => {
      const mesh1 = await open('mesh1:')
      const mesh2 = await open('mesh2:')
      const bare = await open('')
      await mesh1.write([{ op: 'set', key: 'agent:x', value: 'one' }, { op: 'set', key: 'agent:y', value: 'one-y' }])
      await mesh2.write([{ op: 'set', key: 'agent:x', value: 'two' }])

      expect(await mesh1.scan('agent:')).toEqual(new Map([['agent:x', 'one'], ['agent:y', 'one-y']]))
      expect(await mesh2.scan('agent:')).toEqual(new Map([['agent:x', 'two']]))
      expect(await mesh1.get('agent:x')).toBe('one')
      expect(await mesh2.get('agent:x')).toBe('two')
      expect(await bare.get('agent:x')).toBeNull()
      expect(await bare.scan('agent:')).toEqual(new Map())
      expect(await bare.scan('mesh1:')).toEqual(new Map([['mesh1:agent:x', 'one'], ['mesh1:agent:y', 'one-y']]))
    })

    it('applies a batch of mixed operations in order', async () => {
      const store = await open()
      await store.write([{ op: 'set', key: 'agent:old', value: 'old' }, { op: 'sadd', set: 'agents:active', member: 'old' }])
      await store.write([
        { op: 'set', key: 'agent:a', value: 'first' },
        { op: 'set', key: 'agent:a', value: 'second' },
        { op: 'set', key: 'agent:tmp', value: 'tmp' },
        { op: 'del', key: 'agent:tmp' },
        { op: 'del', key: 'agent:old' },
        { op: 'srem', set: 'agents:active', member: 'old' },
        { op: 'sadd', set: 'agents:active', member: 'a' }
      ])
      expect(await store.scan('agent:')).toEqual(new Map([['agent:a', 'second']]))
      expect(await store.smembers('agents:active')).toEqual(['a'])
      // An empty batch is a no-op.
      await store.write([])
      expect(await store.scan('agent:')).toEqual(new Map([['agent:a', 'second']]))
    })

    const failingOp = target.failingOp
    if (failingOp != null) {
      it('applies a batch whose later operation fails not at all, and stays usable', async () => {
        const store = await open()
        await store.write([{ op: 'set', key: 'agent:keep', value: 'kept' }, { op: 'sadd', set: 'agents:active', member: 'keep' }])

        await expect(store.write([
          { op: 'set', key: 'agent:new', value: 'new' },
          { op: 'sadd', set: 'agents:active', member: 'new' },
          { op: 'del', key: 'agent:keep' },
          { op: 'srem', set: 'agents:active', member: 'keep' },
          failingOp!
        ])).rejects.toThrow()

        expect(await store.get('agent:new')).toBeNull()
        expect(await store.get('agent:keep')).toBe('kept')
        expect(await store.smembers('agents:active')).toEqual(['keep'])

        await store.write([{ op: 'set', key: 'agent:after', value: 'after' }])
        expect(await store.scan('agent:')).toEqual(new Map([['agent:after', 'after'], ['agent:keep', 'kept']]))
      })
    }

    it('stores keys and sets under the configured prefix, and exactly as named with prefix ""', async () => {
      const mesh1 = await open('mesh1:')
      await mesh1.write([{ op: 'set', key: 'agent:x', value: '{"agent_id":"x"}' }, { op: 'sadd', set: 'agents:active', member: 'x' }])
      expect(await storage.raw()).toEqual({ strings: { 'mesh1:agent:x': '{"agent_id":"x"}' }, sets: { 'mesh1:agents:active': ['x'] } })

      const bare = await open('')
      await mesh1.write([{ op: 'del', key: 'agent:x' }, { op: 'srem', set: 'agents:active', member: 'x' }])
      await bare.write([{ op: 'set', key: 'agent:x', value: '{"agent_id":"x"}' }, { op: 'sadd', set: 'agents:active', member: 'x' }])
      expect(await storage.raw()).toEqual({ strings: { 'agent:x': '{"agent_id":"x"}' }, sets: { 'agents:active': ['x'] } })
    })

    it('keeps the data across close and reopen', async () => {
      const first = await open('mesh1:')
      await first.write([
        { op: 'set', key: 'agent:a', value: 'A' },
        { op: 'set', key: 'agent:b', value: 'B' },
        { op: 'sadd', set: 'agents:active', member: 'a' }
      ])
      await first.close()

      const second = await open('mesh1:')
      expect(await second.get('agent:a')).toBe('A')
      expect(await second.scan('agent:')).toEqual(new Map([['agent:a', 'A'], ['agent:b', 'B']]))
      expect(await second.smembers('agents:active')).toEqual(['a'])
    })

    it('pages a sorted set by score in both directions, with exclusive lower bounds, in O(limit) reads', async () => {
      const store = await open('mesh1:')
      await store.write([1, 2, 3, 4, 5].map(n => ({ op: 'zadd', set: 'idx', score: 1_700_000_000_000_000 + n, member: `m${n}` })))
      await store.write([{ op: 'zadd', set: 'other', score: 1, member: 'x' }, { op: 'zrem', set: 'idx', member: 'm3' }])
      const base = 1_700_000_000_000_000
      expect(await store.zrange('idx', { limit: 2 })).toEqual([{ member: 'm1', score: base + 1 }, { member: 'm2', score: base + 2 }])
      expect(await store.zrange('idx', { min: base + 2, minExclusive: true, limit: 10 })).toEqual([{ member: 'm4', score: base + 4 }, { member: 'm5', score: base + 5 }])
      expect(await store.zrange('idx', { min: base + 2, limit: 1 })).toEqual([{ member: 'm2', score: base + 2 }])
      expect(await store.zrange('idx', { max: base + 4, reverse: true, limit: 2 })).toEqual([{ member: 'm4', score: base + 4 }, { member: 'm2', score: base + 2 }])
      expect(await store.zscore('idx', 'm4')).toBe(base + 4)
      expect(await store.zscore('idx', 'm3')).toBeNull()
      expect(await store.zcard('idx')).toBe(4)
      expect(await store.zcard('missing')).toBe(0)
      await store.write([{ op: 'zadd', set: 'idx', score: 0, member: 'm5' }])
      expect((await store.zrange('idx', { limit: 1 }))[0]).toEqual({ member: 'm5', score: 0 })
    })

    it('del removes a list or a sorted set as it removes a key', async () => {
      const store = await open()
      await store.write([{ op: 'rpush', list: 'legacy', value: 'a' }, { op: 'zadd', set: 'idx', score: 1, member: 'a' }, { op: 'set', key: 'k', value: 'v' }])
      await store.write([{ op: 'del', key: 'legacy' }, { op: 'del', key: 'idx' }])
      expect(await store.lrange('legacy', 0, -1)).toEqual([])
      expect(await store.zcard('idx')).toBe(0)
      expect(await store.get('k')).toBe('v')
    })

    it('drops a key at its expiry time, and keeps one written again without it', async () => {
      const store = await open()
      const soon = Date.now() + 300
      await store.write([
        { op: 'set', key: 'seen:a', value: '1', expireAtMs: soon },
        { op: 'set', key: 'seen:b', value: '1', expireAtMs: soon },
        { op: 'set', key: 'seen:c', value: '1', expireAtMs: Date.now() + 60_000 }
      ])
      expect(await store.get('seen:a')).toBe('1')
      await store.write([{ op: 'set', key: 'seen:b', value: '2' }])
      await waitFor('seen:a expired', async () => await store.get('seen:a') == null, 5000)
      expect(await store.mget(['seen:a', 'seen:b', 'seen:c'])).toEqual([null, '2', '1'])
      expect([...(await store.scan('seen:')).keys()].sort()).toEqual(['seen:b', 'seen:c'])
    })

    it('reports the durability its settings give', async () => {
      const store = await open()
      const durability = await store.durability()
      expect(durability.level).toBe(target.expectedDurability)
      expect(durability.detail).not.toBe('')
    })
  })
}

// ---- embedded (SQLite) ----

contract('embedded (SQLite)', {
  fresh: async () => {
    const file = join(tempDir('aitbc-mesh-store-'), 'nested', 'store.db')
    return {
      open: async prefix => await ready(new SqliteBackend(file, prefix)),
      raw: async () => {
        const db = new DatabaseSync(file, { readOnly: true })
        try {
          const strings: Record<string, string> = {}
          for (const row of db.prepare('SELECT key, value FROM kv').all() as Array<{ key: string, value: string }>) strings[row.key] = row.value
          const sets: Record<string, string[]> = {}
          for (const row of db.prepare('SELECT name, member FROM sets ORDER BY member').all() as Array<{ name: string, member: string }>) (sets[row.name] ??= []).push(row.member)
          return { strings, sets }
        } finally {
          db.close()
        }
      }
    }
  },
  // A NULL value violates the table's NOT NULL constraint when the statement runs.
  failingOp: { op: 'set', key: 'agent:broken', value: null as unknown as string },
  expectedDurability: 'always'
})

// ---- Redis ----

let redis: TestRedis

contract('redis', {
  setup: async () => { redis = await new TestRedis().start() },
  teardown: async () => { await redis.stop() },
  fresh: async () => {
    const client = redis.client()
    try {
      await client.flushdb()
    } finally {
      client.disconnect()
    }
    return {
      open: async prefix => await ready(new RedisBackend(redis.url, prefix ?? '', log)),
      raw: async () => {
        const client = redis.client()
        try {
          const strings: Record<string, string> = {}
          const sets: Record<string, string[]> = {}
          for (const key of await client.keys('*')) {
            const type = await client.type(key)
            if (type === 'string') strings[key] = (await client.get(key))!
            else if (type === 'set') sets[key] = (await client.smembers(key)).sort()
            else if (type === 'zset') continue
            else throw new Error(`unexpected ${type} key ${key}`)
          }
          return { strings, sets }
        } finally {
          client.disconnect()
        }
      }
    }
  },
  expectedDurability: 'always'
  // No failingOp for Redis: MULTI/EXEC does not roll back a command that fails while running
  // (the store contract says so); a batch refused up front is covered by the outage tests.
})

describe('RedisBackend when its Redis goes away and comes back', () => {
  let server: TestRedis
  let backend: RedisBackend | undefined

  beforeAll(async () => { server = await new TestRedis().start() })
  afterAll(async () => {
    await backend?.close()
    await server.stop()
  })

  it('reports the outage by URL without the password, fails fast, then recovers with the data and fires onReady again', async () => {
    const url = `redis://default:s3cret-pw@127.0.0.1:${server.port}/0`
    const store = new RedisBackend(url, 'mesh1:', log)
    backend = store
    expect(store.location).not.toContain('s3cret-pw')
    await ready(store)

    let readyCalls = 0
    store.onReady(() => { readyCalls++ })
    await waitFor('onReady called for an already connected store', () => readyCalls === 1)

    await store.write([{ op: 'set', key: 'agent:a', value: 'before the outage' }, { op: 'sadd', set: 'agents:active', member: 'a' }])

    await server.stop()
    const down = await waitFor('health not ok', () => { const h = store.health(); return h.ok ? false : h })
    expect(down.reason).toContain(`127.0.0.1:${server.port}`)
    expect(down.reason).toContain(store.location)
    expect(down.reason).not.toContain('s3cret-pw')

    const started = Date.now()
    const failed = store.write([{ op: 'set', key: 'agent:b', value: 'during the outage' }])
    await expect(failed).rejects.toBeInstanceOf(StoreUnavailableError)
    await expect(failed).rejects.toThrow(store.location)
    expect(Date.now() - started).toBeLessThan(500)
    await expect(store.get('agent:a')).rejects.toBeInstanceOf(StoreUnavailableError)
    expect(readyCalls).toBe(1)

    await server.start()
    await waitFor('health ok again', () => store.health().ok, 15_000)
    await waitFor('onReady listener called again', () => readyCalls === 2)
    expect(store.health()).toEqual({ ok: true })
    expect(await store.get('agent:a')).toBe('before the outage')
    expect(await store.get('agent:b')).toBeNull()
    expect(await store.smembers('agents:active')).toEqual(['a'])

    const client = server.client()
    try {
      expect(await client.get('mesh1:agent:a')).toBe('before the outage')
    } finally {
      client.disconnect()
    }
    await store.write([{ op: 'set', key: 'agent:b', value: 'after the outage' }])
    expect(await store.get('agent:b')).toBe('after the outage')
  })
})

describe('RedisBackend: what a write survives, and writes whose outcome is unknown', () => {
  const opened: Array<{ store: RedisBackend, server: TestRedis }> = []
  afterEach(async () => {
    for (const { store, server } of opened.splice(0)) {
      server.resume()
      await store.close()
      await server.stop('SIGKILL')
    }
  })

  async function connect (server: TestRedis): Promise<RedisBackend> {
    await server.start()
    const store = new RedisBackend(server.url, '', log)
    opened.push({ store, server })
    await ready(store)
    return store
  }

  it('reads each persistence setting as the guarantee it gives', async () => {
    const none = await connect(new TestRedis(undefined, { persistence: 'none' }))
    expect(await none.durability()).toEqual({ level: 'none', detail: 'appendonly no, appendfsync everysec, save ""' })
    const everysec = await connect(new TestRedis(undefined, { persistence: 'everysec' }))
    expect((await everysec.durability()).level).toBe('everysec')
    const snapshots = await connect(new TestRedis(undefined, { persistence: 'none', extraArgs: ['--save', '3600 1'] }))
    expect(await snapshots.durability()).toMatchObject({ level: 'snapshot', detail: expect.stringContaining('save 3600 1') })
  })

  it('says so when CONFIG is not permitted, with what INFO still tells', async () => {
    const store = await connect(new TestRedis(undefined, { persistence: 'always', extraArgs: ['--rename-command', 'CONFIG', '""'] }))
    const durability = await store.durability()
    expect(durability.level).toBe('unknown')
    expect(durability.detail).toMatch(/CONFIG GET is not permitted/)
    expect(durability.detail).toContain('append-only is on')
  })

  it('a write sent to a stalled Redis fails as outcome-unknown, and is applied once Redis resumes', async () => {
    const server = new TestRedis()
    const store = await connect(server)
    server.pause()
    const write = store.write([{ op: 'set', key: 'out:m1', value: 'stored?' }])
    await expect(write).rejects.toBeInstanceOf(StoreOutcomeUnknownError)
    server.resume()
    const client = server.client()
    try {
      await waitFor('the stalled write applied after all', async () => await client.get('out:m1') === 'stored?', 10_000)
    } finally {
      client.disconnect()
    }
  })
})
