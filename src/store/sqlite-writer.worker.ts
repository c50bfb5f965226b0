// The embedded store's writer: commits run here, so their fsync (synchronous=FULL) never stalls
// the daemon's event loop. Requests that queue up while a commit is on disk go out together in the
// next transaction (group commit), each in its own savepoint so one failing request fails alone.
// Loaded as a worker from the built .js, or from this .ts under the test runner (type stripping),
// so it imports nothing but Node's own modules.
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'

/** One operation, the store's prefix already applied. */
export type EncodedOp =
  | ['set', string, string, number | null]
  | ['del', string]
  | ['sadd', string, string]
  | ['srem', string, string]
  | ['zadd', string, string, number]
  | ['zrem', string, string]
  | ['rpush', string, string]
  /** Deletes up to `limit` keys expired at `now`. */
  | ['expire', number, number]

export type WriterRequest = { id: number, ops: EncodedOp[] } | { close: true }

export interface WriterError { message: string, code?: string, errcode?: number }

export type WriterAnswer = { id: number, ok: true } | { id: number, ok: false, error: WriterError }

function asWriterError (err: unknown): WriterError {
  const e = err as { message?: unknown, code?: unknown, errcode?: unknown }
  return {
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(typeof e?.errcode === 'number' ? { errcode: e.errcode } : {})
  }
}

function prepare (db: DatabaseSync): Record<EncodedOp[0] | 'delList' | 'delSet' | 'delZset', StatementSync> {
  return {
    set: db.prepare('INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at'),
    del: db.prepare('DELETE FROM kv WHERE key = ?'),
    // DEL in Redis removes a key whatever its type: the same names in the other tables go too.
    delList: db.prepare('DELETE FROM lists WHERE name = ?'),
    delSet: db.prepare('DELETE FROM sets WHERE name = ?'),
    delZset: db.prepare('DELETE FROM zsets WHERE name = ?'),
    sadd: db.prepare('INSERT OR IGNORE INTO sets (name, member) VALUES (?, ?)'),
    srem: db.prepare('DELETE FROM sets WHERE name = ? AND member = ?'),
    zadd: db.prepare('INSERT INTO zsets (name, member, score) VALUES (?, ?, ?) ON CONFLICT(name, member) DO UPDATE SET score = excluded.score'),
    zrem: db.prepare('DELETE FROM zsets WHERE name = ? AND member = ?'),
    rpush: db.prepare('INSERT INTO lists (name, position, value) VALUES (?1, (SELECT COALESCE(MAX(position) + 1, 0) FROM lists WHERE name = ?1), ?2)'),
    expire: db.prepare('DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)')
  }
}

function run (stmts: ReturnType<typeof prepare>, op: EncodedOp): void {
  switch (op[0]) {
    case 'set': stmts.set.run(op[1], op[2], op[3]); break
    case 'del': for (const stmt of [stmts.del, stmts.delList, stmts.delSet, stmts.delZset]) stmt.run(op[1]); break
    case 'sadd': stmts.sadd.run(op[1], op[2]); break
    case 'srem': stmts.srem.run(op[1], op[2]); break
    case 'zadd': stmts.zadd.run(op[1], op[2], op[3]); break
    case 'zrem': stmts.zrem.run(op[1], op[2]); break
    case 'rpush': stmts.rpush.run(op[1], op[2]); break
    case 'expire': stmts.expire.run(op[1], op[2]); break
  }
}

/** Commits the requests as one transaction, each in a savepoint; answers each. */
function commit (db: DatabaseSync, stmts: ReturnType<typeof prepare>, batch: Array<{ id: number, ops: EncodedOp[] }>): WriterAnswer[] {
  try {
    db.exec('BEGIN IMMEDIATE')
  } catch (err) {
    return batch.map(r => ({ id: r.id, ok: false, error: asWriterError(err) }))
  }
  const answers: WriterAnswer[] = []
  for (const request of batch) {
    db.exec('SAVEPOINT request')
    try {
      for (const op of request.ops) run(stmts, op)
      db.exec('RELEASE request')
      answers.push({ id: request.id, ok: true })
    } catch (err) {
      const error = asWriterError(err)
      if (!db.isTransaction) {
        // SQLite rolled the whole transaction back (a full disk, a damaged page): nothing of the batch is applied.
        return batch.map(r => ({ id: r.id, ok: false, error }))
      }
      db.exec('ROLLBACK TO request')
      db.exec('RELEASE request')
      answers.push({ id: request.id, ok: false, error })
    }
  }
  try {
    db.exec('COMMIT')
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    const error = asWriterError(err)
    return batch.map(r => ({ id: r.id, ok: false, error }))
  }
  return answers
}

function main (): void {
  const port = parentPort
  if (port == null) throw new Error('the embedded store writer runs as a worker thread')
  const db = new DatabaseSync((workerData as { location: string }).location)
  // WAL is a property of the file (set by the daemon's connection); synchronous is per connection.
  db.exec('PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
  const stmts = prepare(db)
  port.on('message', (first: WriterRequest) => {
    const queued: WriterRequest[] = [first]
    for (let next = receiveMessageOnPort(port); next != null; next = receiveMessageOnPort(port)) queued.push(next.message as WriterRequest)
    const closeAt = queued.findIndex(r => 'close' in r)
    const writes = (closeAt >= 0 ? queued.slice(0, closeAt) : queued) as Array<{ id: number, ops: EncodedOp[] }>
    if (writes.length > 0) for (const answer of commit(db, stmts, writes)) port.postMessage(answer)
    if (closeAt >= 0) {
      db.close()
      port.close()
    }
  })
}

main()
