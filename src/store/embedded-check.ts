import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import type { Logger } from 'pino'
import { EMBEDDED_STORE_CHECK_MAX_ERRORS, EMBEDDED_STORE_FILE_NAME, EMBEDDED_STORE_MARKER_FILE_NAME } from '../constants.js'
import { StoreIntegrityError } from '../errors.js'
import { EmbeddedStoreError, isSqliteDamage, SqliteBackend, sqliteReason } from './sqlite-backend.js'

/**
 * The start-up check of the embedded store. "Data was expected" is known from the marker file
 * store.id, written next to store.sqlite once the store was first created (and once a store made
 * before the marker existed has passed the check). While the marker is there, a store.sqlite that
 * is missing, empty or lacks its tables is refused; a damaged one is refused always. Without the
 * marker and without a store (a new dataDir), the store is created.
 */

const STORE_TABLES = ['kv', 'sets', 'lists']

export type StoreInspection =
  | { state: 'new' }
  | { state: 'ok', marked: boolean }
  | { state: 'missing' | 'empty' | 'damaged', reason: string }

export interface EmbeddedStorePaths {
  file: string
  marker: string
}

export function embeddedStorePaths (dataDir: string): EmbeddedStorePaths {
  return { file: join(dataDir, EMBEDDED_STORE_FILE_NAME), marker: join(dataDir, EMBEDDED_STORE_MARKER_FILE_NAME) }
}

/** What an operator does about a refused store. */
export function embeddedStoreFix (file: string, configFile: string): string {
  return `restore ${basename(file)} from a backup, with the daemon stopped; or start with an empty store once: ` +
    `aitbc-mesh daemon --config ${configFile} --fresh-store, as the daemon's user (it moves the file aside as ${basename(file)}.damaged.<time>; ` +
    'agents are learned again from the peers, while this node\'s inbox, sent messages and operation history start empty)'
}

function sinceMarker (marker: string): string {
  try {
    const since = /since (\S+)/.exec(readFileSync(marker, 'utf8'))?.[1]
    return since != null ? ` (since ${since})` : ''
  } catch {
    return ''
  }
}

/** Reads the store without changing it. Throws EmbeddedStoreError when it cannot be read at all (permissions). */
export function inspectEmbeddedStore ({ file, marker }: EmbeddedStorePaths): StoreInspection {
  const expected = existsSync(marker)
  const why = (): string => `${basename(marker)} shows this node's store was kept here${sinceMarker(marker)}`
  let size: number
  try {
    size = statSync(file).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new EmbeddedStoreError(file, `cannot read the embedded store: ${(err as Error).message}`, { cause: err })
    return expected ? { state: 'missing', reason: `missing, but ${why()}` } : { state: 'new' }
  }
  if (size === 0) return expected ? { state: 'empty', reason: `empty (0 bytes), but ${why()}` } : { state: 'new' }

  let db: DatabaseSync
  try {
    db = new DatabaseSync(file, { readOnly: true })
  } catch (err) {
    if (isSqliteDamage(err)) return { state: 'damaged', reason: `damaged: ${sqliteReason(err)}` }
    throw new EmbeddedStoreError(file, `cannot open the embedded store: ${sqliteReason(err)}`, { cause: err })
  }
  try {
    const problems = (db.prepare(`PRAGMA quick_check(${EMBEDDED_STORE_CHECK_MAX_ERRORS})`).all() as Array<{ quick_check: string }>)
      // A row may span lines ("*** in database main ***\nPage 5: ..."): the refusal is one line.
      .map(row => row.quick_check.replace(/\s*\n\s*/g, ' ')).filter(result => result !== 'ok')
    if (problems.length > 0) return { state: 'damaged', reason: `damaged: SQLite's quick_check found: ${problems.join('; ')}` }
    const tables = new Set((db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all() as Array<{ name: string }>).map(row => row.name))
    const absent = STORE_TABLES.filter(table => !tables.has(table))
    if (absent.length === 0) return { state: 'ok', marked: expected }
    // None of the tables and no marker: a start that stopped right after creating the file.
    if (absent.length === STORE_TABLES.length) return expected ? { state: 'empty', reason: `has none of the store's tables, but ${why()}` } : { state: 'new' }
    return { state: 'damaged', reason: `damaged: table(s) ${absent.join(', ')} missing` }
  } catch (err) {
    if (isSqliteDamage(err)) return { state: 'damaged', reason: `damaged: ${sqliteReason(err)}` }
    throw new EmbeddedStoreError(file, `cannot check the embedded store: ${sqliteReason(err)}`, { cause: err })
  } finally {
    db.close()
  }
}

function fsyncPath (path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Moves store.sqlite and its -wal and -shm aside under one name, so SQLite can still open the copy. */
function moveAside (file: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  let aside = `${file}.damaged.${stamp}`
  for (let n = 2; ['', '-wal', '-shm'].some(suffix => existsSync(aside + suffix)); n++) aside = `${file}.damaged.${stamp}-${n}`
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix)
  }
  return aside
}

/**
 * Opens the embedded store after checking it: refuses (StoreIntegrityError) a store that is
 * missing, empty or damaged where data was expected, unless `freshStore`, which moves it aside and
 * starts empty. An intact store is kept, `freshStore` or not.
 */
export function openEmbeddedStore (opts: { dataDir: string, keyPrefix: string, configFile: string, freshStore: boolean, log: Logger }): SqliteBackend {
  const paths = embeddedStorePaths(opts.dataDir)
  const { file, marker } = paths
  const found = inspectEmbeddedStore(paths)
  if (found.state === 'missing' || found.state === 'empty' || found.state === 'damaged') {
    if (!opts.freshStore) {
      const fix = embeddedStoreFix(file, opts.configFile)
      opts.log.error({ event: 'store_refused', file, state: found.state, reason: found.reason, fix }, 'the embedded store is missing, empty or damaged; not starting')
      throw new StoreIntegrityError(file, found.reason, fix)
    }
    const aside = found.state === 'missing' && !existsSync(file + '-wal') ? undefined : moveAside(file, new Date())
    opts.log.warn({ event: 'store_moved_aside', file, state: found.state, reason: found.reason, ...(aside != null ? { movedTo: aside } : {}) },
      '--fresh-store: starting with an empty store')
  } else if (opts.freshStore) {
    opts.log.info({ event: 'fresh_store_not_needed', file }, '--fresh-store: the store is intact and is kept')
  }
  const store = new SqliteBackend(file, opts.keyPrefix)
  if (found.state !== 'ok' || !found.marked) {
    try {
      // The store must be on disk before the marker says so: a marker without its store would be refused.
      fsyncPath(dirname(file))
      writeFileSync(marker, `aitbc-mesh embedded store: kept here since ${new Date().toISOString()}\n` +
        `While this file exists the daemon refuses to start if ${basename(file)} here is missing, empty or damaged\n` +
        '(`aitbc-mesh daemon --fresh-store` starts afresh and keeps the old file aside). Keep it with the store.\n', { mode: 0o640 })
    } catch (err) {
      opts.log.warn({ event: 'store_marker_not_written', marker, err: (err as Error).message }, 'could not write the store marker; a lost store would not be noticed at the next start')
    }
  }
  return store
}
