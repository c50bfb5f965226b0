import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../src/store/backend.js'
import { StoreDurabilityService, type DurabilityMode } from '../../src/store/durability.js'
import { StoreDurabilityError } from '../../src/errors.js'
import { RedisBackend } from '../../src/store/redis-backend.js'
import { waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

const log = pino({ level: 'silent' })

describe('StoreDurabilityService (real Redis)', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  async function service (redis: TestRedis, mode: DurabilityMode): Promise<StoreDurabilityService> {
    const backend = new RedisBackend(redis.url, '', log)
    expect(await backend.whenReady(5000)).toBe(true)
    // A recheck far away: only the start and reconnects read the settings here.
    const durability = new StoreDurabilityService(backend, mode, log, '/etc/aitbc/mesh.yaml', 3_600_000)
    cleanups.push(async () => { await durability.store.close() })
    return durability
  }

  /** Drops every client connection, as a Redis restart would, so the service reconnects. */
  async function dropConnections (redis: TestRedis, config: Record<string, string> = {}): Promise<void> {
    const client = redis.client()
    try {
      for (const [name, value] of Object.entries(config)) await client.config('SET', name, value)
      await client.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    } finally {
      client.disconnect()
    }
  }

  it('refuse: a non-durable Redis at start throws, naming the store, the settings and the fix', async () => {
    const redis = await new TestRedis(undefined, { persistence: 'none' }).start()
    const durability = await service(redis, 'refuse')
    const refused = await durability.start().catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(StoreDurabilityError)
    expect((refused as Error).message).toBe(`${redis.url}: Redis is not durable (appendonly no, appendfsync everysec, save ""): no persistence: a restart of Redis loses everything; ` +
      'store.durability is refuse in /etc/aitbc/mesh.yaml, so the daemon does not start; ' +
      `fix: redis-cli -u ${redis.url} CONFIG SET appendonly yes && redis-cli -u ${redis.url} CONFIG SET appendfsync always && redis-cli -u ${redis.url} CONFIG REWRITE (or in redis.conf: appendonly yes, appendfsync always); ` +
      'or accept the risk with store.durability: degraded in /etc/aitbc/mesh.yaml')
  })

  it('refuse: found non-durable on a reconnect, writes fail as unavailable saying why; durable again, the store is usable and its listeners told', async () => {
    const redis = await new TestRedis().start()
    const durability = await service(redis, 'refuse')
    await durability.start()
    const store = durability.store
    let usable = 0
    store.onReady(() => { usable++ })
    await waitFor('the listener told the store is usable', () => usable === 1, 5000, 10)
    await store.write([{ op: 'set', key: 'k', value: '1' }])

    await dropConnections(redis, { appendonly: 'no' })
    await waitFor('writes refused', () => durability.current().level === 'none' && !store.health().ok, 10000, 20)
    expect(store.health().reason).toMatch(/is not durable \(appendonly no, appendfsync always, save ""\); writes are refused \(store\.durability: refuse\); fix: redis-cli -u /)
    await expect(store.write([{ op: 'set', key: 'k', value: '2' }])).rejects.toThrow(StoreUnavailableError)
    expect(await store.get('k')).toBe('1')
    expect(usable).toBe(1)

    await dropConnections(redis, { appendonly: 'yes' })
    await waitFor('the listener told the store is usable again', () => usable === 2, 10000, 20)
    expect(durability.current()).toMatchObject({ level: 'always', durable: true })
    expect(store.health()).toEqual({ ok: true })
    await store.write([{ op: 'set', key: 'k', value: '3' }])
    expect(await store.get('k')).toBe('3')
  })

  it('degraded: a non-durable Redis is written to, and the issue names the level and the fix', async () => {
    const redis = await new TestRedis(undefined, { persistence: 'none' }).start()
    const durability = await service(redis, 'degraded')
    await durability.start()
    await durability.store.write([{ op: 'set', key: 'k', value: '1' }])
    expect(durability.current()).toMatchObject({ level: 'none', durable: false })
    expect(durability.issue()).toMatch(/^store not durable \(none: appendonly no, appendfsync everysec, save ""\): no persistence: a restart of Redis loses everything; fix: redis-cli -u /)
  })
})
