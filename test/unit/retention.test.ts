import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { StoreBackend } from '../../src/store/backend.js'
import { LegacyListMigration } from '../../src/store/legacy-list.js'
import { RedisBackend } from '../../src/store/redis-backend.js'
import { IndexedRecords } from '../../src/store/retention.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

const log = pino({ level: 'silent' })
const HOUR_MS = 3600_000

interface Target {
  setup?: () => Promise<void>
  teardown?: () => Promise<void>
  open: (prefix: string) => Promise<StoreBackend>
}

function records (store: StoreBackend, limits: { maxAgeS: number, maxCount: number }, batch = 3): IndexedRecords {
  return new IndexedRecords({ store, index: 'idx', keyPrefix: 'rec:', scoresPerMs: 1, limits, log, label: 'test', batch })
}

function suite (name: string, target: Target): void {
  describe(`zset-indexed records with retention: ${name}`, () => {
    let n = 0
    const opened: StoreBackend[] = []
    async function open (): Promise<StoreBackend> {
      const store = await target.open(`t${n++}:`)
      opened.push(store)
      return store
    }
    if (target.setup != null) beforeAll(target.setup)
    if (target.teardown != null) afterAll(target.teardown)
    afterEach(async () => { for (const s of opened.splice(0)) await s.close() })

    it('removes records older than maxAgeS, in batches, and keeps the fresh ones', async () => {
      const store = await open()
      const now = Date.now()
      const r = records(store, { maxAgeS: 3600, maxCount: 1000 })
      // 7 records two hours old (three batches of 3), 2 fresh ones.
      const ages = [...Array<number>(7).fill(2 * HOUR_MS), 60_000, 0]
      await store.write(ages.flatMap((age, i) => r.addOps(`r${i}`, now - age - (ages.length - i), `v${i}`)))
      expect(await r.prune(now)).toBe(7)
      expect((await r.page({ limit: 100 })).map(x => x.id)).toEqual(['r7', 'r8'])
      expect(await store.mget(['rec:r0', 'rec:r6', 'rec:r7'])).toEqual([null, null, 'v7'])
      expect(await store.zcard('idx')).toBe(2)
    })

    it('keeps only the newest maxCount records', async () => {
      const store = await open()
      const now = Date.now()
      const r = records(store, { maxAgeS: 3600, maxCount: 4 })
      await store.write(Array.from({ length: 10 }, (_, i) => r.addOps(`r${i}`, now - 1000 + i, `v${i}`)).flat())
      expect(await r.prune(now)).toBe(6)
      expect((await r.page({ limit: 100 })).map(x => x.id)).toEqual(['r6', 'r7', 'r8', 'r9'])
      expect(await r.prune(now)).toBe(0)
    })

    it('pages forward after a score and newest first, skipping entries whose value is gone', async () => {
      const store = await open()
      const r = records(store, { maxAgeS: 3600, maxCount: 100 })
      await store.write(Array.from({ length: 6 }, (_, i) => r.addOps(`r${i}`, 100 + i, `v${i}`)).flat())
      await store.write([{ op: 'del', key: 'rec:r2' }])
      expect((await r.page({ min: 100, minExclusive: true, limit: 3 })).map(x => x.id)).toEqual(['r1', 'r3', 'r4'])
      expect((await r.page({ limit: 2, reverse: true })).map(x => [x.id, x.score, x.value])).toEqual([['r5', 105, 'v5'], ['r4', 104, 'v4']])
      expect(await r.score('r4')).toBe(104)
      expect(await r.lastScore()).toBe(105)
    })

    it('moves a legacy list into the index in batches, resumably, then deletes the list', async () => {
      const store = await open()
      await store.write(Array.from({ length: 7 }, (_, i) => [{ op: 'rpush' as const, list: 'old', value: `r${i}` }, { op: 'set' as const, key: `rec:r${i}`, value: String(1000 + i) }]).flat())
      const migration = (): LegacyListMigration<number> => new LegacyListMigration<number>({
        store,
        log,
        label: 'test',
        list: 'old',
        cursorKey: 'old-cursor',
        valueKey: id => `rec:${id}`,
        batch: 3,
        convert: (entries, moved) => ({ ops: entries.map(e => ({ op: 'zadd' as const, set: 'idx', score: Number(e.value), member: e.id })), state: moved + entries.length })
      })
      const first = migration()
      expect(await first.lastId()).toBe('r6')
      expect(await first.length()).toBe(7)
      // A run stopped after its first batch leaves the cursor behind; the next run resumes from it.
      let cursor = await first.begin(0)
      const stopAfterFirstBatch = setImmediate(() => { first.stop() })
      await first.run(cursor, () => {})
      clearImmediate(stopAfterFirstBatch)
      cursor = (await migration().cursor())!
      expect(cursor.next).toBeGreaterThanOrEqual(3)
      let moved = false
      await migration().run(cursor, () => { moved = true })
      expect(moved).toBe(true)
      expect((await store.zrange('idx', { limit: 100 })).map(e => e.member)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6'])
      expect(await store.lrange('old', 0, -1)).toEqual([])
      expect(await store.get('old-cursor')).toBeNull()
      expect(await migration().lastId()).toBeUndefined()
    })
  })
}

suite('embedded', {
  open: async prefix => new SqliteBackend(join(tempDir('aitbc-mesh-retention-'), 'store.sqlite'), prefix)
})

const redis = new TestRedis()
suite('redis', {
  setup: async () => { await redis.start() },
  teardown: async () => { await redis.stop() },
  open: async prefix => {
    const store = new RedisBackend(redis.url, prefix, log)
    await waitFor('redis store ready', () => store.health().ok, 10_000)
    return store
  }
})
