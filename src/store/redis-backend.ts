import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { errorMessage } from '../errors.js'
import { REDIS_COMMAND_TIMEOUT_MS, REDIS_CONNECT_TIMEOUT_MS, REDIS_DISCONNECT_TIMEOUT_MS, REDIS_MAX_RETRY_DELAY_MS } from '../constants.js'
import { StoreOutcomeUnknownError, StoreUnavailableError, type BackendHealth, type StoreBackend, type StoreDurability, type WriteOp, type ZMember, type ZRangeQuery } from './backend.js'

/** The URL without its password, for logs. */
export function redactRedisUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return 'redis://(unparseable url)'
  }
}

/**
 * Reads appendonly, appendfsync and save with CONFIG GET. Where CONFIG is not permitted
 * (renamed, or an ACL without it), INFO persistence still tells whether append-only is on.
 * `location`: the redacted URL, for the detail. Also used by `doctor` on a client of its own.
 */
export async function readRedisDurability (redis: Redis, location: string): Promise<StoreDurability> {
  let settings: Record<string, string>
  try {
    settings = {}
    for (const name of ['appendonly', 'appendfsync', 'save']) {
      const pair = await redis.config('GET', name) as string[]
      settings[name] = pair[1] ?? ''
    }
  } catch (err) {
    let info = ''
    try {
      const text = await redis.info('persistence')
      const aof = /aof_enabled:(\d)/.exec(text)?.[1]
      if (aof != null) info = `; INFO says append-only is ${aof === '1' ? 'on' : 'off'}`
    } catch {}
    return { level: 'unknown', detail: `CONFIG GET is not permitted on ${location} (${errorMessage(err)})${info}` }
  }
  const save = settings.save === '' ? '""' : settings.save
  const detail = `appendonly ${settings.appendonly}, appendfsync ${settings.appendfsync}, save ${save}`
  if (settings.appendonly === 'yes') {
    const level = settings.appendfsync === 'always' ? 'always' : settings.appendfsync === 'everysec' ? 'everysec' : 'os'
    return { level, detail }
  }
  return { level: settings.save != null && settings.save.trim() !== '' ? 'snapshot' : 'none', detail }
}

/**
 * The node's own Redis. Commands fail at once while the connection is down (no offline queue,
 * so nothing waits unbounded); ioredis reconnects forever with capped backoff, and listeners
 * registered with onReady write what changed once it is back.
 */
export class RedisBackend implements StoreBackend {
  readonly kind = 'redis' as const
  readonly location: string
  private readonly redis: Redis
  private lastError?: string
  private ready = false
  private readonly readyListeners: Array<() => void> = []

  constructor (url: string, private readonly prefix: string, private readonly log: Logger) {
    this.location = redactRedisUrl(url)
    this.redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
      disconnectTimeout: REDIS_DISCONNECT_TIMEOUT_MS,
      retryStrategy: times => Math.min(REDIS_MAX_RETRY_DELAY_MS, 100 * 2 ** Math.min(times, 10))
    })
    this.redis.on('ready', () => {
      const wasDown = this.lastError != null
      this.ready = true
      delete this.lastError
      if (wasDown) this.log.info({ event: 'store_reconnected', store: this.location }, 'Redis is back')
      for (const listener of this.readyListeners) listener()
    })
    this.redis.on('error', err => {
      const reason = errorMessage(err)
      if (reason !== this.lastError) this.log.warn({ event: 'store_error', store: this.location, err: reason }, 'Redis error')
      this.lastError = reason
    })
    this.redis.on('close', () => {
      if (this.ready) this.log.warn({ event: 'store_disconnected', store: this.location }, 'Redis connection lost; serving from memory')
      this.ready = false
      this.lastError ??= 'connection closed'
    })
  }

  private check (): void {
    if (!this.ready) throw new StoreUnavailableError(`Redis ${this.location} unavailable: ${this.lastError ?? 'not connected yet'}`)
  }

  async get (key: string): Promise<string | null> {
    this.check()
    return await this.redis.get(this.prefix + key)
  }

  async scan (prefix: string): Promise<Map<string, string>> {
    this.check()
    const out = new Map<string, string>()
    const pattern = this.prefix.replace(/[*?[\]\\]/g, '\\$&') + prefix.replace(/[*?[\]\\]/g, '\\$&') + '*'
    let cursor = '0'
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) {
        const values = await this.redis.mget(...keys)
        keys.forEach((key, i) => {
          const value = values[i]
          if (value != null) out.set(key.slice(this.prefix.length), value)
        })
      }
    } while (cursor !== '0')
    return out
  }

  async smembers (set: string): Promise<string[]> {
    this.check()
    return (await this.redis.smembers(this.prefix + set)).sort()
  }

  async lrange (list: string, start: number, stop: number): Promise<string[]> {
    this.check()
    return await this.redis.lrange(this.prefix + list, start, stop)
  }

  async mget (keys: string[]): Promise<Array<string | null>> {
    if (keys.length === 0) return []
    this.check()
    return await this.redis.mget(...keys.map(k => this.prefix + k))
  }

  async zrange (set: string, query: ZRangeQuery): Promise<ZMember[]> {
    this.check()
    const low = query.min == null ? '-inf' : `${query.minExclusive === true ? '(' : ''}${query.min}`
    const high = query.max == null ? '+inf' : String(query.max)
    const flat = query.reverse === true
      ? await this.redis.zrevrangebyscore(this.prefix + set, high, low, 'WITHSCORES', 'LIMIT', 0, query.limit)
      : await this.redis.zrangebyscore(this.prefix + set, low, high, 'WITHSCORES', 'LIMIT', 0, query.limit)
    const out: ZMember[] = []
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: Number(flat[i + 1]) })
    return out
  }

  async zscore (set: string, member: string): Promise<number | null> {
    this.check()
    const score = await this.redis.zscore(this.prefix + set, member)
    return score == null ? null : Number(score)
  }

  async zcard (set: string): Promise<number> {
    this.check()
    return await this.redis.zcard(this.prefix + set)
  }

  async write (ops: WriteOp[]): Promise<void> {
    if (ops.length === 0) return
    this.check()
    const multi = this.redis.multi()
    for (const op of ops) {
      if (op.op === 'set') {
        if (op.expireAtMs != null) multi.set(this.prefix + op.key, op.value, 'PXAT', Math.max(1, Math.floor(op.expireAtMs)))
        else if (op.ttlS != null) multi.set(this.prefix + op.key, op.value, 'EX', op.ttlS)
        else multi.set(this.prefix + op.key, op.value)
      } else if (op.op === 'del') multi.del(this.prefix + op.key)
      else if (op.op === 'sadd') multi.sadd(this.prefix + op.set, op.member)
      else if (op.op === 'srem') multi.srem(this.prefix + op.set, op.member)
      else if (op.op === 'zadd') multi.zadd(this.prefix + op.set, op.score, op.member)
      else if (op.op === 'zrem') multi.zrem(this.prefix + op.set, op.member)
      else multi.rpush(this.prefix + op.list, op.value)
    }
    let results: Array<[Error | null, unknown]> | null
    try {
      results = await multi.exec()
    } catch (err) {
      // Redis answered with an error: nothing of the transaction ran (EXECABORT and the like).
      if ((err as Error).name === 'ReplyError') throw err
      // Sent, but no answer (timeout, connection lost while waiting): Redis may have applied it.
      throw new StoreOutcomeUnknownError(`Redis ${this.location} did not answer the write: ${errorMessage(err)}`, { cause: err })
    }
    const failed = results?.find(([err]) => err != null)
    if (results == null) throw new StoreUnavailableError('Redis transaction aborted')
    const error = failed?.[0]
    if (error != null) throw error instanceof Error ? error : new Error(String(error))
  }

  async durability (): Promise<StoreDurability> {
    this.check()
    return await readRedisDurability(this.redis, this.location)
  }

  health (): BackendHealth {
    return this.ready ? { ok: true } : { ok: false, reason: `Redis ${this.location} unreachable: ${this.lastError ?? 'connecting'}` }
  }

  async whenReady (timeoutMs: number): Promise<boolean> {
    if (this.ready) return true
    return await new Promise(resolve => {
      const timer = setTimeout(() => { resolve(false) }, timeoutMs)
      this.redis.once('ready', () => { clearTimeout(timer); resolve(true) })
    })
  }

  onReady (listener: () => void): void {
    this.readyListeners.push(listener)
    if (this.ready) queueMicrotask(listener)
  }

  async close (): Promise<void> {
    this.redis.disconnect(false)
  }
}
