import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { RedisBackend } from '../../src/store/redis-backend.js'
import { STORE_EPOCH_KEY, StoreEpoch, type StoreLoss } from '../../src/store/epoch.js'
import { waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

const log = pino({ level: 'silent' })
/** Marks every 100 ms so the tests see several of them quickly. */
const MARK_MS = 100

interface Stored { epoch: string, created_at: number, marked_at: number, lost_from_ms: number }

describe('StoreEpoch (real Redis)', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  async function started (redis: TestRedis): Promise<{ epoch: StoreEpoch, losses: StoreLoss[] }> {
    const backend = new RedisBackend(redis.url, '', log)
    expect(await backend.whenReady(5000)).toBe(true)
    const epoch = new StoreEpoch(backend, log, MARK_MS)
    const losses: StoreLoss[] = []
    epoch.onLoss(loss => { losses.push(loss) })
    await epoch.start()
    cleanups.push(async () => { await epoch.stop(); await backend.close() })
    return { epoch, losses }
  }

  async function stored (redis: TestRedis): Promise<Stored | null> {
    const client = redis.client()
    try {
      const text = await client.get(STORE_EPOCH_KEY)
      return text == null ? null : JSON.parse(text) as Stored
    } finally {
      client.disconnect()
    }
  }

  it('begins an epoch on an empty store and adopts it on the next start', async () => {
    const redis = await new TestRedis().start()
    const first = await started(redis)
    expect(first.epoch.epoch).toMatch(/^[\w-]{1,64}$/)
    expect(first.epoch.lostFromMs).toBe(0)
    expect((await stored(redis))?.epoch).toBe(first.epoch.epoch)
    await cleanups.pop()!()

    const second = await started(redis)
    expect(second.epoch.epoch).toBe(first.epoch.epoch)
    expect(second.losses).toEqual([])
  })

  it('a Redis that comes back empty is a loss of everything: a new epoch, listeners told with lostFromMs 0', async () => {
    const redis = await new TestRedis().start()
    const { epoch, losses } = await started(redis)
    const before = epoch.epoch
    await redis.restartEmpty()
    await waitFor('the loss told', () => losses.length > 0, 10000, 20)
    expect(losses).toEqual([{ epoch: epoch.epoch, lostFromMs: 0 }])
    expect(epoch.epoch).not.toBe(before)
    expect(epoch.lostFromMs).toBe(0)
    await waitFor('the new epoch stored', async () => (await stored(redis))?.epoch === epoch.epoch, 5000, 20)
  })

  it('a Redis restored with an older mark is a loss from that mark', async () => {
    const redis = await new TestRedis().start()
    const { epoch, losses } = await started(redis)
    const current = epoch.epoch
    await waitFor('a few marks written', async () => ((await stored(redis))?.marked_at ?? 0) > Date.now() - MARK_MS && losses.length === 0, 5000, 20)
    const old = Date.now() - 60_000
    // The older copy replaces the key and the daemon's connection drops in one step, so no mark comes between.
    const client = redis.client()
    try {
      await client.multi()
        .set(STORE_EPOCH_KEY, JSON.stringify({ epoch: current, created_at: old - 1000, marked_at: old, lost_from_ms: 0 }))
        .client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
        .exec()
    } finally {
      client.disconnect()
    }
    await waitFor('the loss told', () => losses.length > 0, 10000, 20)
    expect(losses).toEqual([{ epoch: epoch.epoch, lostFromMs: old }])
    expect(epoch.epoch).not.toBe(current)
    expect(epoch.lostFromMs).toBe(old)
    await waitFor('the new epoch stored with what it lost', async () => {
      const now = await stored(redis)
      return now?.epoch === epoch.epoch && now.lost_from_ms === old
    }, 5000, 20)
  })

  it('a Redis restarted with its append-only file is no loss: the epoch goes on being marked', async () => {
    const redis = await new TestRedis().start()
    const { epoch, losses } = await started(redis)
    const current = epoch.epoch
    await waitFor('a mark written', async () => ((await stored(redis))?.marked_at ?? 0) > 0, 5000, 20)
    await redis.stop()
    await redis.start()
    const restartedAt = Date.now()
    await waitFor('a mark after the restart', async () => ((await stored(redis))?.marked_at ?? 0) > restartedAt, 10000, 20)
    expect(losses).toEqual([])
    expect(epoch.epoch).toBe(current)
    expect((await stored(redis))?.epoch).toBe(current)
  })
})
