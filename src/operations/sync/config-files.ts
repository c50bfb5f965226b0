import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import type { ConfigFileSpec } from '../../config/config.js'
import { CONFIG_SYNC_MAX_FILE_BYTES, CONFIG_SYNC_MAX_KEY_CHARS, CONFIG_SYNC_MAX_KEYS } from '../../constants.js'
import { fitText } from './answers.js'

/** A whole file's hash (`sha256: null` with `error` when it cannot be read). */
export interface FileHash {
  path: string
  sha256: string | null
  error?: string
}

/**
 * An env-style file's shared keys, each with the hash of its value; keys kept local are named
 * (`kept_local`) but neither hashed nor sent. `keep_local` is this node's list, so the requester
 * leaves out what the target would refuse to write.
 */
export interface EnvKeyHashes {
  path: string
  keys: 'env'
  key_hashes: Array<{ key: string, sha256: string }>
  kept_local: string[]
  keep_local: string[]
  error?: string
}

export type InspectedFile = FileHash | EnvKeyHashes

export function isEnvHashes (file: InspectedFile): file is EnvKeyHashes {
  return 'keys' in file && file.keys === 'env'
}

/** A whole file's content, or an env-style file's shared keys and values (keys kept local never). */
export type ReadFile =
  | { path: string, content_base64: string | null, error?: string }
  | { path: string, keys: 'env', values: Array<{ key: string, value: string }>, skipped: Array<{ key: string, reason: string }>, error?: string }

/** What a target asks to be written: a whole file's content, or env keys merged into its own copy. */
export type WriteFile =
  | { path: string, content_base64: string }
  | { path: string, keys: 'env', set: Array<{ key: string, value: string }> }

export interface WriteResult {
  path: string
  state: 'written' | 'unchanged' | 'refused' | 'failed'
  backup?: string
  /** Keys merged (env-style files). */
  keys?: string[]
  /** Keys the request named that this node keeps local: not written. */
  refused_keys?: string[]
  reason?: string
}

/** One KEY=VALUE assignment: where it is (lines `start`..`end` inclusive) and its raw value. */
interface EnvAssignment {
  key: string
  value: string
  start: number
  end: number
  /** Spread over lines with trailing backslashes: compared, but never sent or written. */
  multiline: boolean
}

const ASSIGNMENT = /^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$/

/**
 * Splits a KEY=VALUE file into lines and assignments. Comments, blank lines and anything else are
 * left alone (and kept as they are by a merge). A repeated key counts with its last value, as
 * systemd and dotenv read it.
 */
export function parseEnv (text: string): { lines: string[], assignments: EnvAssignment[] } {
  const lines = text.split('\n')
  const assignments: EnvAssignment[] = []
  for (let i = 0; i < lines.length; i++) {
    const start = i
    const body = (l: string): string => l.endsWith('\r') ? l.slice(0, -1) : l
    let line = body(lines[i]!)
    const match = ASSIGNMENT.exec(line)
    let value = match?.[4] ?? ''
    let multiline = false
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) {
      multiline = true
      i++
      line = body(lines[i]!)
      value += '\n' + line
    }
    if (match == null || /^\s*[#;]/.test(lines[start]!)) continue
    assignments.push({ key: match[2]!, value: value.trim(), start, end: i, multiline })
  }
  return { lines, assignments }
}

/**
 * Whether `key` matches one of `patterns` (names or `*` globs), ignoring case. Matched without
 * regular expressions, in time at most the key's length times the pattern's: a requester matches
 * its keys against the patterns a target answers, and `*a*a*a…` as a backtracking regex hangs.
 */
export function keptLocal (key: string, patterns: readonly string[]): boolean {
  const text = key.toLowerCase()
  return patterns.some(p => globMatch(p.toLowerCase(), text))
}

/** `*` matches any run of characters, every other character itself. */
function globMatch (pattern: string, text: string): boolean {
  let p = 0
  let t = 0
  // The last star seen, and where in `text` its run ends for now.
  let star = -1
  let mark = 0
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++
      mark = t
    } else if (p < pattern.length && pattern[p] === text[t]) {
      p++
      t++
    } else if (star !== -1) {
      p = star + 1
      t = ++mark
    } else {
      return false
    }
  }
  while (pattern[p] === '*') p++
  return p === pattern.length
}

/** The last value of each key, in order of first appearance. */
function valuesOf (assignments: EnvAssignment[]): Map<string, EnvAssignment> {
  const values = new Map<string, EnvAssignment>()
  for (const a of assignments) values.set(a.key, a)
  return values
}

function sha256 (data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

function readError (err: unknown): string {
  return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : fitText((err as Error).message)
}

function readBounded (path: string): Buffer {
  const size = statSync(path).size
  if (size > CONFIG_SYNC_MAX_FILE_BYTES) throw new Error(`${size} bytes, over the ${CONFIG_SYNC_MAX_FILE_BYTES} byte limit`)
  return readFileSync(path)
}

/**
 * The keys of an env-style file with their last values. A file whose keys could not be answered
 * within the bounds a requester accepts (too many, or a name too long) is refused as a whole,
 * like a file over the size limit: a key left out would hide its drift.
 */
function readEnv (path: string): Map<string, EnvAssignment> {
  const values = valuesOf(parseEnv(readBounded(path).toString('utf8')).assignments)
  if (values.size > CONFIG_SYNC_MAX_KEYS) throw new Error(`${values.size} keys, over the ${CONFIG_SYNC_MAX_KEYS} key limit`)
  const long = [...values.keys()].find(k => k.length > CONFIG_SYNC_MAX_KEY_CHARS)
  if (long != null) throw new Error(`a key name of ${long.length} characters (${long.slice(0, 32)}…), over the ${CONFIG_SYNC_MAX_KEY_CHARS} character limit`)
  return values
}

/** Why a value is compared but never sent or written, or null: only a single line without NUL is. */
function notSynced (a: EnvAssignment): string | null {
  if (a.multiline) return 'a value continued over several lines is not synced'
  if (a.value.includes('\0')) return 'a value with a NUL character is not synced'
  return null
}

/** Hashes of this node's configured files: whole, or per shared key. No value leaves this function. */
export function hashFiles (specs: ConfigFileSpec[]): InspectedFile[] {
  return specs.map(spec => {
    const { path } = spec
    if (spec.keys !== 'env') {
      try {
        return { path, sha256: sha256(readFileSync(path)) }
      } catch (err) {
        return { path, sha256: null, error: readError(err) }
      }
    }
    const keepLocal = spec.keepLocal ?? []
    const base = { path, keys: 'env' as const, keep_local: keepLocal }
    try {
      const values = readEnv(path)
      const keys = [...values.keys()]
      return {
        ...base,
        key_hashes: keys.filter(k => !keptLocal(k, keepLocal)).map(key => ({ key, sha256: sha256(values.get(key)!.value) })),
        kept_local: keys.filter(k => keptLocal(k, keepLocal))
      }
    } catch (err) {
      return { ...base, key_hashes: [], kept_local: [], error: readError(err) }
    }
  })
}

/** Contents of this node's configured files: whole files as they are, env-style files' shared keys only. */
export function readFiles (specs: ConfigFileSpec[]): ReadFile[] {
  return specs.map(spec => {
    const { path } = spec
    if (spec.keys !== 'env') {
      try {
        return { path, content_base64: readBounded(path).toString('base64') }
      } catch (err) {
        return { path, content_base64: null, error: fitText((err as Error).message) }
      }
    }
    try {
      const values = [...readEnv(path).values()].filter(a => !keptLocal(a.key, spec.keepLocal ?? [])).map(a => ({ ...a, skip: notSynced(a) }))
      return {
        path,
        keys: 'env' as const,
        values: values.filter(a => a.skip == null).map(a => ({ key: a.key, value: a.value })),
        skipped: values.flatMap(a => a.skip != null ? [{ key: a.key, reason: a.skip }] : [])
      }
    } catch (err) {
      return { path, keys: 'env' as const, values: [], skipped: [], error: fitText((err as Error).message) }
    }
  })
}

/**
 * Sets `set` in the env-style text, keeping comments, order and the keys not named; a key not
 * there yet is appended. Each occurrence of a repeated key gets the value.
 */
export function mergeEnv (text: string, set: Map<string, string>): string {
  const { lines, assignments } = parseEnv(text)
  const out = [...lines]
  const done = new Set<string>()
  // From the end, so replacing a multi-line assignment by one line keeps earlier indexes valid.
  for (const a of [...assignments].reverse()) {
    if (!set.has(a.key)) continue
    const match = ASSIGNMENT.exec(lines[a.start]!.replace(/\r$/, ''))!
    const cr = lines[a.end]!.endsWith('\r') ? '\r' : ''
    out.splice(a.start, a.end - a.start + 1, `${match[1]!}${match[2]!}${match[3]!}${set.get(a.key)!}${cr}`)
    done.add(a.key)
  }
  const added = [...set].filter(([key]) => !done.has(key)).map(([key, value]) => `${key}=${value}`)
  if (added.length === 0) return out.join('\n')
  const body = out.join('\n')
  return body === '' ? added.join('\n') + '\n' : `${body}${body.endsWith('\n') ? '' : '\n'}${added.join('\n')}\n`
}

/** Writes `content` over `path` through a temporary file, keeping the mode and a backup of what was there. */
function replaceFile (path: string, content: Buffer, stamp: string): { backup?: string } {
  let mode = 0o640
  let backup: string | undefined
  try {
    mode = statSync(path).mode & 0o7777
    backup = `${path}.bak.${stamp}`
    copyFileSync(path, backup)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const temp = `${path}.aitbc-mesh.tmp`
  writeFileSync(temp, content, { mode })
  chmodSync(temp, mode)
  renameSync(temp, path)
  return backup != null ? { backup } : {}
}

/**
 * Writes configured files: a whole file is replaced, an env-style file gets the named keys
 * merged in, never one of its keep-local keys. Each changed file is first copied to
 * `<file>.bak.<timestamp>`. Only this node's own probes.configFiles are written, each only the
 * way it is listed here (whole or by key), whatever the request says.
 */
export function writeFiles (files: WriteFile[], specs: ConfigFileSpec[], now = new Date()): WriteResult[] {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return files.map(file => {
    const spec = specs.find(s => s.path === file.path)
    if (spec == null) return { path: file.path, state: 'refused' as const, reason: 'not one of this node\'s probes.configFiles' }
    try {
      if ('content_base64' in file) {
        if (spec.keys === 'env') return { path: file.path, state: 'refused' as const, reason: 'synced by key here (keys: env); a whole copy would overwrite the keys this node keeps local' }
        return { path: file.path, state: 'written' as const, ...replaceFile(file.path, Buffer.from(file.content_base64, 'base64'), stamp) }
      }
      if (spec.keys !== 'env') return { path: file.path, state: 'refused' as const, reason: 'synced whole here; list it with keys: env to merge it key by key' }
      const refused = file.set.filter(({ key }) => keptLocal(key, spec.keepLocal ?? [])).map(({ key }) => key)
      const set = new Map(file.set.filter(({ key }) => !refused.includes(key)).map(({ key, value }) => [key, value]))
      const refusedField = refused.length > 0 ? { refused_keys: refused } : {}
      if (set.size === 0) return { path: file.path, state: 'refused' as const, ...refusedField, reason: 'every key named is kept local here' }
      let before = ''
      try {
        before = readBounded(file.path).toString('utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
      const after = mergeEnv(before, set)
      const keys = [...set.keys()]
      if (after === before) return { path: file.path, state: 'unchanged' as const, keys, ...refusedField }
      return { path: file.path, state: 'written' as const, keys, ...refusedField, ...replaceFile(file.path, Buffer.from(after, 'utf8'), stamp) }
    } catch (err) {
      return { path: file.path, state: 'failed' as const, reason: fitText((err as Error).message) }
    }
  })
}
