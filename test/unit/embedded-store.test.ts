import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { StoreIntegrityError } from '../../src/errors.js'
import { embeddedStorePaths, inspectEmbeddedStore, openEmbeddedStore } from '../../src/store/embedded-check.js'
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
