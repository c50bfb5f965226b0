import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { EMBEDDED_EXPIRY_SWEEP_BATCH, EMBEDDED_EXPIRY_SWEEP_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { BackendHealth, StoreBackend, StoreDurability, WriteOp, ZMember, ZRangeQuery } from './backend.js'

/** An error of the embedded store, naming its database file. */
export class EmbeddedStoreError extends Error {
  override name = 'EmbeddedStoreError'
  constructor (readonly file: string, detail: string, options?: ErrorOptions) {
    super(`${file}: ${detail}`, options)
  }
}

/** SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), extended codes included. */
export function isSqliteDamage (err: unknown): boolean {
  const code = (err as { errcode?: unknown }).errcode
  return typeof code === 'number' && [11, 26].includes(code & 0xff)
}

/** SQLite's own words ("database disk image is malformed"), without Node's generic error code. */
export function sqliteReason (err: unknown): string {
  return (err as { code?: unknown }).code === 'ERR_SQLITE_ERROR' ? (err as Error).message : errorMessage(err)
}

/**
 * The embedded store: SQLite (Node's built-in `node:sqlite`) in WAL mode with synchronous=FULL,
 * so a write that returned survives a crash of the daemon or the host.
 */
export class SqliteBackend implements StoreBackend {
  readonly kind = 'embedded' as const
  private readonly db: DatabaseSync
  private readonly stmts: Record<'get' | 'scan' | 'set' | 'del' | 'delList' | 'delSet' | 'delZset' | 'sadd' | 'srem' | 'smembers' | 'rpush' | 'lrange' | 'llen' | 'zadd' | 'zrem' | 'zscore' | 'zcard' | 'expire', StatementSync>
  /** Range queries differ by bound and direction: prepared once each, on first use. */
  private readonly zrangeStmts = new Map<string, StatementSync>()
  private expiryTimer?: NodeJS.Timeout
  /** Set once SQLite reported the file damaged while running: the store check fails from then on. */
  private damage?: string

  constructor (readonly location: string, private readonly prefix = '') {
    try {
      mkdirSync(dirname(location), { recursive: true, mode: 0o750 })
      this.db = new DatabaseSync(location)
    } catch (err) {
      throw new EmbeddedStoreError(location, `cannot open the embedded store: ${sqliteReason(err)}`, { cause: err })
    }
    try {
      this.stmts = this.guard(() => this.prepare())
    } catch (err) {
      this.db.close()
      throw err
    }
    // Expired keys are invisible at once; the rows go in small batches so no sweep stalls the loop.
    this.expiryTimer = setInterval(() => { this.deleteExpired() }, EMBEDDED_EXPIRY_SWEEP_MS)
    this.expiryTimer.unref()
  }

  private deleteExpired (): void {
    try {
      if (this.db.isOpen) this.stmts.expire.run(Date.now(), EMBEDDED_EXPIRY_SWEEP_BATCH)
    } catch {}
  }

  private prepare (): SqliteBackend['stmts'] {
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS sets (name TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (name, member)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS lists (name TEXT NOT NULL, position INTEGER NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, position)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS zsets (name TEXT NOT NULL, member TEXT NOT NULL, score REAL NOT NULL, PRIMARY KEY (name, member)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS zsets_by_score ON zsets (name, score, member);
    `)
    // Stores made before keys could expire gain the column (NULL: never).
    const columns = this.db.prepare('PRAGMA table_info(kv)').all() as Array<{ name: string }>
    if (!columns.some(c => c.name === 'expires_at')) this.db.exec('ALTER TABLE kv ADD COLUMN expires_at INTEGER')
    this.db.exec('CREATE INDEX IF NOT EXISTS kv_by_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL')
    const live = '(expires_at IS NULL OR expires_at > unixepoch(\'subsec\') * 1000)'
    return {
      get: this.db.prepare(`SELECT value FROM kv WHERE key = ? AND ${live}`),
      scan: this.db.prepare(`SELECT key, value FROM kv WHERE key >= ? AND key < ? || char(1114111) AND ${live}`),
      set: this.db.prepare('INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at'),
      expire: this.db.prepare('DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)'),
      zadd: this.db.prepare('INSERT INTO zsets (name, member, score) VALUES (?, ?, ?) ON CONFLICT(name, member) DO UPDATE SET score = excluded.score'),
      zrem: this.db.prepare('DELETE FROM zsets WHERE name = ? AND member = ?'),
      zscore: this.db.prepare('SELECT score FROM zsets WHERE name = ? AND member = ?'),
      zcard: this.db.prepare('SELECT COUNT(*) AS n FROM zsets WHERE name = ?'),
      del: this.db.prepare('DELETE FROM kv WHERE key = ?'),
      // DEL in Redis removes a key whatever its type: the same names in the other tables go too.
      delList: this.db.prepare('DELETE FROM lists WHERE name = ?'),
      delSet: this.db.prepare('DELETE FROM sets WHERE name = ?'),
      delZset: this.db.prepare('DELETE FROM zsets WHERE name = ?'),
      sadd: this.db.prepare('INSERT OR IGNORE INTO sets (name, member) VALUES (?, ?)'),
      srem: this.db.prepare('DELETE FROM sets WHERE name = ? AND member = ?'),
      smembers: this.db.prepare('SELECT member FROM sets WHERE name = ? ORDER BY member'),
      rpush: this.db.prepare('INSERT INTO lists (name, position, value) VALUES (?1, (SELECT COALESCE(MAX(position) + 1, 0) FROM lists WHERE name = ?1), ?2)'),
      llen: this.db.prepare('SELECT COUNT(*) AS n FROM lists WHERE name = ?'),
      lrange: this.db.prepare('SELECT value FROM lists WHERE name = ? AND position >= ? AND position <= ? ORDER BY position')
    }
  }

  /** Runs `work`; an SQLite error comes out naming the file, and a damaged file fails the store check. */
  private guard<T> (work: () => T): T {
    try {
      return work()
    } catch (err) {
      const reason = sqliteReason(err)
      if (isSqliteDamage(err)) this.damage ??= `${this.location}: ${reason}`
      throw new EmbeddedStoreError(this.location, reason, { cause: err })
    }
  }

  async get (key: string): Promise<string | null> {
    const row = this.guard(() => this.stmts.get.get(this.prefix + key)) as { value: string } | undefined
    return row?.value ?? null
  }

  async scan (prefix: string): Promise<Map<string, string>> {
    const full = this.prefix + prefix
    const rows = this.guard(() => this.stmts.scan.all(full, full)) as Array<{ key: string, value: string }>
    return new Map(rows.map(r => [r.key.slice(this.prefix.length), r.value]))
  }

  async smembers (set: string): Promise<string[]> {
    return (this.guard(() => this.stmts.smembers.all(this.prefix + set)) as Array<{ member: string }>).map(r => r.member)
  }

  /** Redis LRANGE semantics: negative positions count from the end (-1 is the last). */
  async lrange (list: string, start: number, stop: number): Promise<string[]> {
    if (start < 0 || stop < 0) {
      const length = (this.guard(() => this.stmts.llen.get(this.prefix + list)) as { n: number }).n
      if (start < 0) start = Math.max(0, length + start)
      if (stop < 0) stop = length + stop
    }
    return (this.guard(() => this.stmts.lrange.all(this.prefix + list, start, stop)) as Array<{ value: string }>).map(r => r.value)
  }

  async mget (keys: string[]): Promise<Array<string | null>> {
    return this.guard(() => keys.map(key => (this.stmts.get.get(this.prefix + key) as { value: string } | undefined)?.value ?? null))
  }

  async zrange (set: string, query: ZRangeQuery): Promise<ZMember[]> {
    const low = query.min == null ? '' : query.minExclusive === true ? ' AND score > :min' : ' AND score >= :min'
    const high = query.max == null ? '' : ' AND score <= :max'
    const order = query.reverse === true ? 'DESC' : 'ASC'
    const sql = `SELECT member, score FROM zsets WHERE name = :name${low}${high} ORDER BY score ${order}, member ${order} LIMIT :limit`
    let stmt = this.zrangeStmts.get(sql)
    if (stmt == null) this.zrangeStmts.set(sql, stmt = this.guard(() => this.db.prepare(sql)))
    const params: Record<string, string | number> = { name: this.prefix + set, limit: query.limit }
    if (query.min != null) params.min = query.min
    if (query.max != null) params.max = query.max
    return this.guard(() => stmt.all(params)) as unknown as ZMember[]
  }

  async zscore (set: string, member: string): Promise<number | null> {
    const row = this.guard(() => this.stmts.zscore.get(this.prefix + set, member)) as { score: number } | undefined
    return row?.score ?? null
  }

  async zcard (set: string): Promise<number> {
    return (this.guard(() => this.stmts.zcard.get(this.prefix + set)) as { n: number }).n
  }

  /** WAL with synchronous=FULL: a write that returned is on disk, whatever crashes after. */
  async durability (): Promise<StoreDurability> {
    return { level: 'always', detail: `SQLite ${this.location}: WAL, synchronous=FULL (fsync at every commit)` }
  }

  async write (ops: WriteOp[]): Promise<void> {
    if (ops.length === 0) return
    this.guard(() => {
      this.db.exec('BEGIN IMMEDIATE')
      try {
        for (const op of ops) {
          // ttlS is the AITBC coordinator's expiry of its records in Redis; the embedded store keeps them.
          if (op.op === 'set') this.stmts.set.run(this.prefix + op.key, op.value, op.expireAtMs ?? null)
          else if (op.op === 'del') {
            for (const stmt of [this.stmts.del, this.stmts.delList, this.stmts.delSet, this.stmts.delZset]) stmt.run(this.prefix + op.key)
          } else if (op.op === 'sadd') this.stmts.sadd.run(this.prefix + op.set, op.member)
          else if (op.op === 'srem') this.stmts.srem.run(this.prefix + op.set, op.member)
          else if (op.op === 'zadd') this.stmts.zadd.run(this.prefix + op.set, op.member, op.score)
          else if (op.op === 'zrem') this.stmts.zrem.run(this.prefix + op.set, op.member)
          else this.stmts.rpush.run(this.prefix + op.list, op.value)
        }
        this.db.exec('COMMIT')
      } catch (err) {
        // SQLite may have rolled back already (a damaged page, a full disk); the first error is the one to report.
        if (this.db.isTransaction) this.db.exec('ROLLBACK')
        throw err
      }
    })
  }

  health (): BackendHealth {
    return this.damage != null ? { ok: false, reason: this.damage } : { ok: true }
  }

  async whenReady (): Promise<boolean> {
    return true
  }

  onReady (listener: () => void): void {
    queueMicrotask(listener)
  }

  async close (): Promise<void> {
    clearInterval(this.expiryTimer)
    if (this.db.isOpen) this.db.close()
  }
}
