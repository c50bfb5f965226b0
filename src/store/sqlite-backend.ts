import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { Worker } from 'node:worker_threads'
import { EMBEDDED_EXPIRY_SWEEP_BATCH, EMBEDDED_EXPIRY_SWEEP_MS, EMBEDDED_WRITER_CLOSE_TIMEOUT_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import { StoreOutcomeUnknownError, StoreUnavailableError, type BackendHealth, type StoreBackend, type StoreDurability, type WriteOp, type ZMember, type ZRangeQuery } from './backend.js'
import type { EncodedOp, WriterAnswer, WriterError, WriterRequest } from './sqlite-writer.worker.js'

/** The writer worker: built next to this module, or the TypeScript source under the test runner. */
const WRITER_URL = new URL(import.meta.url.endsWith('.ts') ? './sqlite-writer.worker.ts' : './sqlite-writer.worker.js', import.meta.url)

interface PendingWrite { resolve: () => void, reject: (err: Error) => void }

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
 * so a write that returned survives a crash of the daemon or the host. Reads run here, on the
 * daemon's thread (no fsync, microseconds); writes go to a worker thread with its own connection,
 * so the fsync of each commit never stalls the event loop (heartbeats, receipts, the control
 * socket). WAL lets the two connections work at once, and a read after a write's answer sees it.
 */
export class SqliteBackend implements StoreBackend {
  readonly kind = 'embedded' as const
  private readonly db: DatabaseSync
  private readonly stmts: Record<'get' | 'scan' | 'smembers' | 'lrange' | 'llen' | 'zscore' | 'zcard', StatementSync>
  /** Range queries differ by bound and direction: prepared once each, on first use. */
  private readonly zrangeStmts = new Map<string, StatementSync>()
  private expiryTimer?: NodeJS.Timeout
  /** Set once SQLite reported the file damaged while running: the store check fails from then on. */
  private damage?: string
  private writer?: Worker
  /** The current writer thread has started (a write sent to it may have been applied). */
  private writerOnline = false
  private readonly pending = new Map<number, PendingWrite>()
  private nextWriteId = 1
  private closing = false

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
    if (this.closing) return
    this.send([['expire', Date.now(), EMBEDDED_EXPIRY_SWEEP_BATCH]]).catch(() => {})
  }

  /** The writer thread, started on first use and again after it died. */
  private writerThread (): Worker {
    if (this.writer != null) return this.writer
    const writer = new Worker(WRITER_URL, { workerData: { location: this.location } })
    this.writer = writer
    this.writerOnline = false
    writer.on('online', () => { this.writerOnline = true })
    writer.on('message', (answer: WriterAnswer) => { this.answered(answer) })
    writer.on('error', err => { this.writerGone(writer, err) })
    writer.on('exit', code => { this.writerGone(writer, new Error(`the writer thread exited (code ${code})`)) })
    return writer
  }

  private answered (answer: WriterAnswer): void {
    const pending = this.pending.get(answer.id)
    if (pending == null) return
    this.pending.delete(answer.id)
    if (this.pending.size === 0) this.writer?.unref()
    if (answer.ok) pending.resolve()
    else pending.reject(this.writeError(answer.error))
  }

  /** An SQLite error from the writer, as the daemon's thread would have raised it. */
  private writeError (error: WriterError): EmbeddedStoreError {
    const cause = Object.assign(new Error(error.message), { code: error.code, errcode: error.errcode })
    const reason = sqliteReason(cause)
    if (isSqliteDamage(cause)) this.damage ??= `${this.location}: ${reason}`
    return new EmbeddedStoreError(this.location, reason, { cause })
  }

  /**
   * The writer died (or was closed): writes it had may or may not be on disk; a writer that never
   * started applied nothing. The next write starts a new one.
   */
  private writerGone (writer: Worker, err: Error): void {
    if (this.writer !== writer) return
    this.writer = undefined
    const started = this.writerOnline
    for (const [id, pending] of this.pending) {
      this.pending.delete(id)
      pending.reject(started
        ? new StoreOutcomeUnknownError(`${this.location}: the embedded store's writer stopped before answering: ${errorMessage(err)}`)
        : new StoreUnavailableError(`${this.location}: the embedded store's writer did not start: ${errorMessage(err)}`))
    }
  }

  private async send (ops: EncodedOp[]): Promise<void> {
    if (this.closing) throw new StoreUnavailableError(`${this.location}: the embedded store is closed`)
    const writer = this.writerThread()
    const id = this.nextWriteId++
    return await new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      // A write in flight keeps the process alive until it is answered.
      writer.ref()
      writer.postMessage({ id, ops } satisfies WriterRequest)
    })
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
      zscore: this.db.prepare('SELECT score FROM zsets WHERE name = ? AND member = ?'),
      zcard: this.db.prepare('SELECT COUNT(*) AS n FROM zsets WHERE name = ?'),
      smembers: this.db.prepare('SELECT member FROM sets WHERE name = ? ORDER BY member'),
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
    const p = this.prefix
    await this.send(ops.map((op): EncodedOp => {
      // ttlS is the AITBC coordinator's expiry of its records in Redis; the embedded store keeps them.
      switch (op.op) {
        case 'set': return ['set', p + op.key, op.value, op.expireAtMs ?? null]
        case 'del': return ['del', p + op.key]
        case 'sadd': return ['sadd', p + op.set, op.member]
        case 'srem': return ['srem', p + op.set, op.member]
        case 'zadd': return ['zadd', p + op.set, op.member, op.score]
        case 'zrem': return ['zrem', p + op.set, op.member]
        case 'rpush': return ['rpush', p + op.list, op.value]
      }
      throw new Error('unknown write operation')
    }))
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

  /** Writes already sent are committed first; the writer gets a bounded time to finish them. */
  async close (): Promise<void> {
    clearInterval(this.expiryTimer)
    this.closing = true
    const writer = this.writer
    if (writer != null) {
      const exited = new Promise<void>(resolve => writer.once('exit', () => { resolve() }))
      writer.ref()
      writer.postMessage({ close: true } satisfies WriterRequest)
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, EMBEDDED_WRITER_CLOSE_TIMEOUT_MS) })
      if (await Promise.race([exited.then(() => false), timedOut])) await writer.terminate()
      clearTimeout(timer)
    }
    if (this.db.isOpen) this.db.close()
  }
}
