import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { StoreIntegrityError } from '../../src/errors.js'
import { embeddedStorePaths, inspectEmbeddedStore, openEmbeddedStore } from '../../src/store/embedded-check.js'
import type { Worker } from 'node:worker_threads'
import { StoreOutcomeUnknownError, StoreUnavailableError } from '../../src/store/backend.js'
import { EmbeddedStoreError, SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir } from '../helpers.js'

const log = pino({ level: 'silent' })

/** A closed store with `rows` values, big enough to span many pages. */
async function storeWithData (file: string, rows: number): Promise<void> {
  const store = new SqliteBackend(file)
  await store.write(Array.from({ length: rows }, (_, i) => ({ op: 'set' as const, key: `agent:${String(i).padStart(5, '0')}`, value: 'x'.repeat(300) })))
  await store.close()
}

/** Garbage over one page in the middle (page 1, the header and schema, stays readable). */
function damageMiddlePage (file: string): void {
  const db = new DatabaseSync(file)
  const pages = (db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count
  const pageSize = (db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size
  db.close()
  const fd = openSync(file, 'r+')
  writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, Math.floor(pages / 2) * pageSize)
  closeSync(fd)
}

describe('embedded store errors name the database file', () => {
  it('a read of a damaged page fails naming the file, and the store check fails from then on', async () => {
    const file = join(tempDir(), 'store.sqlite')
    await storeWithData(file, 400)
    damageMiddlePage(file)
    const store = new SqliteBackend(file)
    try {
      expect(store.health()).toEqual({ ok: true })
      const failed = store.scan('agent:')
      await expect(failed).rejects.toBeInstanceOf(EmbeddedStoreError)
      await expect(failed).rejects.toThrow(`${file}: database disk image is malformed`)
      expect(store.health()).toEqual({ ok: false, reason: `${file}: database disk image is malformed` })
    } finally {
      await store.close()
    }
  })

  it('a file that is not a database fails at open, naming the file', () => {
    const file = join(tempDir(), 'store.sqlite')
    writeFileSync(file, Buffer.alloc(8192, 0x41))
    expect(() => new SqliteBackend(file)).toThrow(`${file}: file is not a database`)
  })
})

describe('the start-up check of the embedded store', () => {
  it('tells a new dataDir from a store that was expected and is missing, empty, damaged or without its tables', async () => {
    const dir = tempDir()
    const paths = embeddedStorePaths(dir)
    expect(inspectEmbeddedStore(paths)).toEqual({ state: 'new' })
    writeFileSync(paths.file, '')
    expect(inspectEmbeddedStore(paths)).toEqual({ state: 'new' })
    rmSync(paths.file)

    const store = openEmbeddedStore({ dataDir: dir, keyPrefix: '', configFile: '/etc/aitbc/mesh.yaml', freshStore: false, log })
    await store.write([{ op: 'set', key: 'agent:a', value: 'A' }])
    await store.close()
    expect(inspectEmbeddedStore(paths)).toEqual({ state: 'ok', marked: true })

    rmSync(paths.file)
    expect(inspectEmbeddedStore(paths)).toMatchObject({ state: 'missing', reason: expect.stringMatching(/^missing, but store\.id shows this node's store was kept here \(since \d{4}-/) })
    writeFileSync(paths.file, '')
    expect(inspectEmbeddedStore(paths)).toMatchObject({ state: 'empty' })
    rmSync(paths.file)

    // A database with none of the store's tables: empty while the marker says data was kept here;
    // without the marker, a start that stopped right after creating the file.
    const bare = new DatabaseSync(paths.file)
    bare.exec('PRAGMA journal_mode = WAL')
    bare.close()
    expect(inspectEmbeddedStore(paths)).toMatchObject({ state: 'empty', reason: expect.stringMatching(/^has none of the store's tables, but store\.id shows/) })
    rmSync(paths.marker)
    expect(inspectEmbeddedStore(paths)).toEqual({ state: 'new' })
  })

  it('refuses a damaged store with a StoreIntegrityError naming file, reason and fix, and leaves the file as it was', async () => {
    const dir = tempDir()
    const { file } = embeddedStorePaths(dir)
    await openEmbeddedStore({ dataDir: dir, keyPrefix: '', configFile: '/etc/aitbc/mesh.yaml', freshStore: false, log }).close()
    await storeWithData(file, 400)
    damageMiddlePage(file)
    expect(inspectEmbeddedStore(embeddedStorePaths(dir))).toMatchObject({ state: 'damaged' })
    let err: unknown
    try {
      openEmbeddedStore({ dataDir: dir, keyPrefix: '', configFile: '/etc/aitbc/mesh.yaml', freshStore: false, log })
    } catch (caught) {
      err = caught
    }
    expect(err).toBeInstanceOf(StoreIntegrityError)
    expect((err as StoreIntegrityError).file).toBe(file)
    expect((err as StoreIntegrityError).reason).toMatch(/^damaged: /)
    expect((err as StoreIntegrityError).fix).toContain('aitbc-mesh daemon --config /etc/aitbc/mesh.yaml --fresh-store')
  })
})

describe('embedded store writes run on a writer thread', () => {
  it('concurrent writes are each answered once committed, in the order sent; a read after an answer sees the write', async () => {
    const file = join(tempDir(), 'store.sqlite')
    const store = new SqliteBackend(file)
    try {
      const writes = Array.from({ length: 300 }, async (_, i) => {
        await store.write([{ op: 'set', key: `k:${i % 50}`, value: String(i) }, { op: 'rpush', list: 'log', value: String(i) }, { op: 'zadd', set: 'z', member: `m${i}`, score: i }])
        // Committed before the answer: this read, on the daemon's own connection, sees it.
        expect(Number(await store.get(`k:${i % 50}`))).toBeGreaterThanOrEqual(i)
      })
      await Promise.all(writes)
      expect(await store.lrange('log', 0, -1)).toEqual(Array.from({ length: 300 }, (_, i) => String(i)))
      expect(await store.mget(['k:0', 'k:49'])).toEqual(['250', '299'])
      expect(await store.zcard('z')).toBe(300)
    } finally {
      await store.close()
    }
  })

  it('close commits the writes already sent, and a closed store refuses new ones', async () => {
    const file = join(tempDir(), 'store.sqlite')
    const store = new SqliteBackend(file)
    const sent = Array.from({ length: 100 }, async (_, i) => { await store.write([{ op: 'set', key: `agent:${i}`, value: 'v' }]) })
    await store.close()
    await Promise.all(sent)
    await expect(store.write([{ op: 'set', key: 'late', value: 'v' }])).rejects.toBeInstanceOf(StoreUnavailableError)
    const reopened = new SqliteBackend(file)
    try {
      expect((await reopened.scan('agent:')).size).toBe(100)
    } finally {
      await reopened.close()
    }
  })

  it('a writer thread that dies answers its writes in flight as outcome unknown; the next write starts a new one', async () => {
    const file = join(tempDir(), 'store.sqlite')
    const store = new SqliteBackend(file)
    try {
      await store.write([{ op: 'set', key: 'before', value: '1' }])
      const inFlight = Array.from({ length: 2000 }, async (_, i) => await store.write([{ op: 'set', key: `during:${i}`, value: 'v' }]))
      // The thread is killed with the writes sent (a crash of the writer, not a refusal).
      await (store as unknown as { writer: Worker }).writer.terminate()
      const outcomes = await Promise.allSettled(inFlight)
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(StoreOutcomeUnknownError)
      }
      expect(outcomes.some(o => o.status === 'rejected')).toBe(true)
      // Every write answered as done is there; the store goes on with a new writer.
      const done = outcomes.flatMap((o, i) => o.status === 'fulfilled' ? [`during:${i}`] : [])
      expect((await store.mget(done)).every(v => v === 'v')).toBe(true)
      await store.write([{ op: 'set', key: 'after', value: '2' }])
      expect(await store.mget(['before', 'after'])).toEqual(['1', '2'])
      expect(store.health()).toEqual({ ok: true })
    } finally {
      await store.close()
    }
  })
})
