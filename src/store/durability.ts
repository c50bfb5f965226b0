import type { Logger } from 'pino'
import { DURABLE_STORE_LEVELS, STORE_DURABILITY_RECHECK_MS, type STORE_DURABILITY_MODES } from '../constants.js'
import { errorMessage, StoreDurabilityError, UsageError } from '../errors.js'
import { StoreUnavailableError, type BackendHealth, type DurabilityLevel, type StoreBackend, type StoreDurability } from './backend.js'

export type DurabilityMode = typeof STORE_DURABILITY_MODES[number]

export const DURABILITY_LEVELS = ['always', 'everysec', 'os', 'snapshot', 'none', 'unknown'] as const satisfies readonly DurabilityLevel[]

/** What an acknowledged write survives, per level, in the words status, doctor and the log use. */
export const DURABILITY_GUARANTEES: Record<DurabilityLevel, string> = {
  always: 'append-only, fsync always: nothing acknowledged is lost on a crash of the store or the host',
  everysec: 'append-only, fsync every second: nothing acknowledged is lost on a crash of Redis; a crash of the host can lose about the last second',
  os: 'append-only without fsync (appendfsync no): a crash of the host can lose what the OS had not written yet, up to about 30 s',
  snapshot: 'snapshots only: a crash or restart of Redis loses everything since the last snapshot',
  none: 'no persistence: a restart of Redis loses everything',
  unknown: 'the persistence settings could not be read, so nothing is promised'
}

/** The durability in force as status, `/health` and `doctor` show it. */
export interface DurabilityView {
  level: DurabilityLevel
  detail: string
  guarantee: string
  durable: boolean
}

export function isDurable (level: DurabilityLevel): boolean {
  return (DURABLE_STORE_LEVELS as readonly string[]).includes(level)
}

export function durabilityView (read: StoreDurability): DurabilityView {
  return { level: read.level, detail: read.detail, guarantee: DURABILITY_GUARANTEES[read.level], durable: isDurable(read.level) }
}

/** How to make the store durable; undefined when it is. `location`: the store's URL without its password. */
export function durabilityFix (location: string, level: DurabilityLevel): string | undefined {
  if (isDurable(level)) return undefined
  if (level === 'unknown') return 'CONFIG not permitted: check redis.conf for appendonly yes and appendfsync always (or everysec), then restart Redis'
  const cli = `redis-cli -u ${location}`
  return `${cli} CONFIG SET appendonly yes && ${cli} CONFIG SET appendfsync always && ${cli} CONFIG REWRITE (or in redis.conf: appendonly yes, appendfsync always)`
}

/** Not yet read: the store has not answered since the start. */
const UNREAD: StoreDurability = { level: 'unknown', detail: 'not read yet: the store has not been reachable since the start' }

/**
 * Reads the store's persistence settings at start, after every reconnect and every
 * STORE_DURABILITY_RECHECK_MS, and applies `store.durability`:
 * - `refuse`: a non-durable store refuses the start (StoreDurabilityError); found later, the
 *   store is unusable for writes (StoreUnavailableError saying why) until it is durable again;
 * - `degraded`: the node runs and reports itself degraded with the reason;
 * - `accept`: the node runs; the level is logged at info.
 * Services use `store`, a view of the store that holds writes back while the settings are being
 * read after a reconnect (so nothing is written before the verdict, and the store epoch sees the
 * store as it came back) and while refused. Its onReady listeners run once the store is usable:
 * after the verdict on a reconnect, and when a refused store becomes durable again.
 */
export class StoreDurabilityService {
  readonly store: StoreBackend
  private read?: StoreDurability
  private phase: 'checking' | 'usable' | 'refused' = 'checking'
  private reading?: Promise<void>
  private timer?: NodeJS.Timeout
  private readonly listeners: Array<() => void> = []

  constructor (
    private readonly raw: StoreBackend,
    private readonly mode: DurabilityMode,
    private readonly log: Logger,
    /** Where `store.durability` is set, for the refusal's message. */
    private readonly configFile: string,
    private readonly recheckMs = STORE_DURABILITY_RECHECK_MS
  ) {
    this.store = this.guardedView()
  }

  /** Reads the settings if the store is reachable; in mode `refuse`, a non-durable store throws StoreDurabilityError. */
  async start (): Promise<void> {
    this.raw.onReady(() => { void this.afterReady() })
    this.timer = setInterval(() => { void this.recheck() }, this.recheckMs)
    this.timer.unref()
    if (!this.raw.health().ok) return
    await this.check()
    if (this.phase === 'refused') {
      const current = this.current()
      throw new StoreDurabilityError(this.raw.location,
        `${this.raw.kind === 'redis' ? 'Redis' : 'the store'} is not durable (${current.detail}): ${current.guarantee}; store.durability is refuse in ${this.configFile}, so the daemon does not start`,
        `${durabilityFix(this.raw.location, current.level) ?? ''}; or accept the risk with store.durability: degraded in ${this.configFile}`)
    }
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /** The settings as last read (level unknown until the store has answered once). */
  current (): DurabilityView {
    return durabilityView(this.read ?? UNREAD)
  }

  /** Why the node is degraded by its store's durability (mode `degraded`, a non-durable store read); else undefined. */
  issue (): string | undefined {
    if (this.mode !== 'degraded' || this.read == null || isDurable(this.read.level)) return undefined
    return `store not durable (${this.read.level}: ${this.read.detail}): ${DURABILITY_GUARANTEES[this.read.level]}; fix: ${durabilityFix(this.raw.location, this.read.level) ?? ''}`
  }

  /** Writes held back while the settings are read after a reconnect, or while refused. */
  private afterReady (): void {
    this.phase = 'checking'
    void this.check().then(() => { if (this.phase === 'usable') this.notifyUsable() })
  }

  private async recheck (): Promise<void> {
    if (!this.raw.health().ok || this.reading != null) return
    const before = this.phase
    await this.check()
    if (before === 'refused' && this.phase === 'usable') this.notifyUsable()
  }

  /** One read at a time; callers share the one in flight. */
  private async check (): Promise<void> {
    this.reading ??= this.readSettings().finally(() => { delete this.reading })
    await this.reading
  }

  private async readSettings (): Promise<void> {
    let read: StoreDurability | undefined
    try {
      read = await this.raw.durability()
    } catch (err) {
      // Unreachable again, or no answer: the last reading stands; a reconnect reads again.
      this.log.warn({ event: 'store_durability_unread', store: this.raw.location, err: errorMessage(err) }, 'could not read the store\'s persistence settings')
    }
    if (read != null) {
      const previous = this.read
      this.read = read
      if (previous?.level !== read.level) this.logLevel(previous, read)
    }
    const level = this.read?.level
    this.phase = this.mode !== 'refuse' || (level != null && isDurable(level)) ? 'usable' : 'refused'
  }

  private logLevel (previous: StoreDurability | undefined, read: StoreDurability): void {
    const view = durabilityView(read)
    const fields = { event: 'store_durability', store: this.raw.location, durability: read.level, detail: read.detail, guarantee: view.guarantee, durable: view.durable, mode: this.mode, ...(previous != null ? { previous: previous.level } : {}) }
    if (view.durable || this.mode === 'accept') {
      this.log.info(fields, `store durability: ${view.guarantee}`)
    } else {
      const fix = durabilityFix(this.raw.location, read.level)
      const consequence = this.mode === 'refuse' ? 'writes are refused until it is durable (store.durability: refuse)' : 'the node reports itself degraded (store.durability: degraded)'
      this.log.warn({ ...fields, fix }, `store not durable: ${view.guarantee}; ${consequence}; fix: ${fix ?? ''}`)
    }
  }

  private notifyUsable (): void {
    for (const listener of this.listeners) listener()
  }

  private guardedHealth (): BackendHealth {
    const raw = this.raw.health()
    if (!raw.ok || this.phase === 'usable') return raw
    if (this.phase === 'checking') return { ok: false, reason: `${this.raw.location}: reading its persistence settings before writing` }
    const current = this.current()
    return { ok: false, reason: `${this.raw.location} is not durable (${current.detail}); writes are refused (store.durability: refuse); fix: ${durabilityFix(this.raw.location, current.level) ?? ''}` }
  }

  private guardedView (): StoreBackend {
    const raw = this.raw
    return {
      kind: raw.kind,
      location: raw.location,
      get: async key => await raw.get(key),
      scan: async prefix => await raw.scan(prefix),
      smembers: async set => await raw.smembers(set),
      lrange: async (list, start, stop) => await raw.lrange(list, start, stop),
      mget: async keys => await raw.mget(keys),
      zrange: async (set, query) => await raw.zrange(set, query),
      zscore: async (set, member) => await raw.zscore(set, member),
      zcard: async set => await raw.zcard(set),
      durability: async () => await raw.durability(),
      write: async ops => {
        if (ops.length > 0 && this.phase !== 'usable') {
          const health = this.guardedHealth()
          throw new StoreUnavailableError(health.reason ?? 'store unavailable')
        }
        await raw.write(ops)
      },
      health: () => this.guardedHealth(),
      whenReady: async timeoutMs => await raw.whenReady(timeoutMs),
      onReady: listener => {
        this.listeners.push(listener)
        if (this.phase === 'usable' && raw.health().ok) queueMicrotask(listener)
      },
      close: async () => { this.stop(); await raw.close() }
    }
  }
}

/** Test-only: AITBC_MESH_TEST_DURABILITY_RECHECK_MS shortens the recheck so a test need not wait a minute. */
export function durabilityRecheckMsFromEnv (env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.AITBC_MESH_TEST_DURABILITY_RECHECK_MS
  if (raw == null || raw === '') return STORE_DURABILITY_RECHECK_MS
  const ms = Number(raw)
  if (!Number.isInteger(ms) || ms < 100) throw new UsageError(`AITBC_MESH_TEST_DURABILITY_RECHECK_MS "${raw}": expected whole milliseconds, at least 100`)
  return ms
}
