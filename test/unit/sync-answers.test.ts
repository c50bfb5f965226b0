import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { ConfigFileSpec } from '../../src/config/config.js'
import { CONFIG_SYNC_MAX_FILE_BYTES, CONFIG_SYNC_MAX_KEY_CHARS, CONFIG_SYNC_MAX_KEYS, DEFAULT_KEEP_LOCAL_KEYS, SYNC_ANSWER_MAX_LISTED, SYNC_ANSWER_MAX_TEXT_CHARS } from '../../src/constants.js'
import { fitList, fitText, parseStepAnswer, StepAnswerError } from '../../src/operations/sync/answers.js'
import { hashFiles, keptLocal, readFiles, writeFiles } from '../../src/operations/sync/config-files.js'
import { tempDir } from '../helpers.js'

const HEAD = 'a'.repeat(40)
const UPSTREAM = 'b'.repeat(40)

function gitState (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { head: HEAD, upstream: UPSTREAM, upstream_ref: 'origin/main', ahead: 1, behind: 2, dirty_files: ['README'], dirty_file_count: 1, local_commits: ['aaaaaaa local'], ...extra }
}

function gitApply (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { state: 'fast_forwarded', reason: '', head_before: HEAD, head_after: UPSTREAM, lost_commits: [], lost_files: [], ...extra }
}

/** The StepAnswerError `work` throws. */
function refusedWith (work: () => unknown): StepAnswerError {
  try {
    work()
  } catch (err) {
    if (err instanceof StepAnswerError) return err
    throw err
  }
  throw new Error('the answer was accepted')
}

describe('sync step answers are checked before use', () => {
  it('accepts what the steps on an honest node produce, whole files and files by key, including refusals', () => {
    const dir = tempDir()
    const whole = join(dir, 'chain.json')
    writeFileSync(whole, '{"chain":"ait-mainnet"}\n')
    const env = join(dir, 'blockchain.env')
    writeFileSync(env, '# shared\nCHAIN_ID=ait-mainnet\nNODE_ID=aitbc\nAPI_KEY_HASH_SECRET=s\nX=a \\\nb\nNUL=a\0b\n')
    mkdirSync(join(dir, 'sub'))
    const keepLocal = [...DEFAULT_KEEP_LOCAL_KEYS, 'LOCAL_*']
    const specs: ConfigFileSpec[] = [
      { path: whole }, { path: join(dir, 'missing.json') }, { path: join(dir, 'sub') },
      { path: env, keys: 'env', keepLocal }, { path: join(dir, 'missing.env'), keys: 'env', keepLocal }
    ]
    const hashes = { files: hashFiles(specs) }
    expect(hashes.files[3]).toMatchObject({ keys: 'env', kept_local: ['NODE_ID', 'API_KEY_HASH_SECRET'] })
    expect(parseStepAnswer('config.inspect', null, hashes)).toEqual(hashes)
    const contents = { files: readFiles(specs) }
    // A value holding NUL is compared, never sent: a config.write would refuse it.
    expect(contents.files[3]).toEqual({
      path: env,
      keys: 'env',
      values: [{ key: 'CHAIN_ID', value: 'ait-mainnet' }],
      skipped: [{ key: 'X', reason: 'a value continued over several lines is not synced' }, { key: 'NUL', reason: 'a value with a NUL character is not synced' }]
    })
    expect(parseStepAnswer('config.read', null, contents)).toEqual(contents)
    const payload = {
      files: [
        { path: whole, content_base64: Buffer.from('{}\n').toString('base64') },
        { path: join(dir, 'other.env'), content_base64: '' },
        { path: env, keys: 'env' as const, set: [{ key: 'CHAIN_ID', value: 'ait-devnet' }, { key: 'node_id', value: 'evil' }] }
      ]
    }
    const written = { files: writeFiles(payload.files, specs) }
    expect(written.files.map(f => f.state)).toEqual(['written', 'refused', 'written'])
    expect(written.files[2]).toMatchObject({ keys: ['CHAIN_ID'], refused_keys: ['node_id'] })
    expect(parseStepAnswer('config.write', payload, written)).toEqual(written)
    const again = { files: [{ path: env, keys: 'env' as const, set: [{ key: 'CHAIN_ID', value: 'ait-devnet' }] }] }
    const unchanged = { files: writeFiles(again.files, specs) }
    expect(unchanged.files).toEqual([{ path: env, state: 'unchanged', keys: ['CHAIN_ID'] }])
    expect(parseStepAnswer('config.write', again, unchanged)).toEqual(unchanged)
    expect(parseStepAnswer('git.inspect', null, gitState())).toEqual(gitState())
    expect(parseStepAnswer('git.apply', null, gitApply({ state: 'refused', reason: 'dirty work tree', head_after: HEAD }))).toMatchObject({ state: 'refused', head_before: HEAD })
    expect(parseStepAnswer('git.apply', null, { state: 'refused', reason: 'git.apply with --force is not accepted' })).toEqual({ state: 'refused', reason: 'git.apply with --force is not accepted' })
    for (const step of ['git.inspect', 'config.inspect', 'config.read', 'config.write'] as const) {
      expect(parseStepAnswer(step, null, { state: 'refused', reason: 'not for you' })).toEqual({ state: 'refused', reason: 'not for you' })
    }
    const action = { action: 'catch-up', state: 'ok', exit_code: 0, duration_ms: 12, output_tail: 'done\n', reason: '', destructive: false, health_before: '', health_after: '' }
    expect(parseStepAnswer('blockchain.catch_up', null, { state: 'ok', reason: '', action })).toEqual({ state: 'ok', reason: '', action })
    const afterGit = { ...action, action: 'after-git', state: 'failed', exit_code: 3, reason: 'exited with 3' }
    expect(parseStepAnswer('git.apply', null, gitApply({ after_git: afterGit }))).toEqual(gitApply({ after_git: afterGit }))
    // SHA-256 repositories have 64-digit object names.
    expect(parseStepAnswer('git.inspect', null, gitState({ head: 'c'.repeat(64) }))).toMatchObject({ head: 'c'.repeat(64) })
  })

  it('drops fields the step does not answer', () => {
    expect(parseStepAnswer('git.inspect', null, gitState({ injected: 'x'.repeat(1000) }))).not.toHaveProperty('injected')
  })

  it('refuses wrong types, with the field, what was expected and what came', () => {
    expect(refusedWith(() => parseStepAnswer('git.apply', null, gitApply({ lost_commits: 'abc' }))).message)
      .toBe('lost_commits: expected array, got "abc"')
    expect(refusedWith(() => parseStepAnswer('git.inspect', null, 'hello')).message).toBe('(answer): expected object, got "hello"')
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, null)).message).toBe('(answer): expected object, got null')
    expect(refusedWith(() => parseStepAnswer('git.inspect', null, gitState({ head: undefined }))).message).toBe('head: missing')
    expect(refusedWith(() => parseStepAnswer('blockchain.catch_up', null, { state: 'exploded', reason: '' })).message)
      .toBe('state: expected one of ok, failed, refused, timed_out, got "exploded"')
    expect(refusedWith(() => parseStepAnswer('git.apply', null, gitApply({ state: 7 }))).message).toMatch(/^state: expected one of up_to_date, .*, got number 7$/)
  })

  it('refuses hashes that are not hex of the right length', () => {
    for (const head of ['z'.repeat(40), 'A'.repeat(40), 'a'.repeat(39), 'a'.repeat(41), `${'a'.repeat(40)}\n`]) {
      const err = refusedWith(() => parseStepAnswer('git.inspect', null, gitState({ head })))
      expect(err.problems[0]).toMatchObject({ field: 'head', category: 'not a commit hash (40 or 64 lowercase hex digits)' })
    }
    const err = refusedWith(() => parseStepAnswer('config.inspect', null, { files: [{ path: '/etc/a', sha256: 'a'.repeat(40) }] }))
    expect(err.message).toBe(`files[0].sha256: not a SHA-256 digest (64 lowercase hex digits), got "${'a'.repeat(40)}"`)
  })

  it('refuses oversized strings, lists and numbers without repeating them', () => {
    const huge = 'x'.repeat(10 * 1024 * 1024)
    const reason = refusedWith(() => parseStepAnswer('git.apply', null, gitApply({ reason: huge })))
    expect(reason.message).toBe(`reason: longer than ${SYNC_ANSWER_MAX_TEXT_CHARS} characters, got a string of ${huge.length} characters`)
    expect(reason.message.length).toBeLessThan(200)
    const list = refusedWith(() => parseStepAnswer('git.apply', null, gitApply({ lost_files: Array.from({ length: SYNC_ANSWER_MAX_LISTED + 1 }, (_, i) => `f${i}`) })))
    expect(list.message).toBe(`lost_files: more than ${SYNC_ANSWER_MAX_LISTED} entries, got an array of ${SYNC_ANSWER_MAX_LISTED + 1} entries`)
    const ahead = refusedWith(() => parseStepAnswer('git.inspect', null, gitState({ ahead: 2 ** 60 })))
    expect(ahead.problems[0]).toMatchObject({ field: 'ahead', detail: `over ${Number.MAX_SAFE_INTEGER}, got number ${2 ** 60}` })
    for (const behind of [-1, 1.5, Number.NaN]) {
      expect(() => parseStepAnswer('git.inspect', null, gitState({ behind }))).toThrow(StepAnswerError)
    }
    const duration = refusedWith(() => parseStepAnswer('blockchain.catch_up', null, { state: 'ok', reason: '', action: { action: 'a', state: 'ok', exit_code: 0, duration_ms: 2 ** 60, output_tail: '', reason: '', destructive: false, health_before: '', health_after: '' } }))
    expect(duration.problems[0]!.field).toBe('action.duration_ms')
    // A refusal's reason is bounded like any other.
    expect(() => parseStepAnswer('config.read', null, { state: 'refused', reason: huge })).toThrow(StepAnswerError)
  })

  it('refuses file contents that are not base64 or decode past the file size limit', () => {
    const over = Buffer.alloc(CONFIG_SYNC_MAX_FILE_BYTES + 1).toString('base64')
    expect(refusedWith(() => parseStepAnswer('config.read', null, { files: [{ path: '/etc/a', content_base64: over }] })).problems[0]!.field).toBe('files[0].content_base64')
    const exact = Buffer.alloc(CONFIG_SYNC_MAX_FILE_BYTES).toString('base64')
    expect(parseStepAnswer('config.read', null, { files: [{ path: '/etc/a', content_base64: exact }] })).toBeTruthy()
    for (const junk of ['not base64!', 'abc', '====']) {
      expect(() => parseStepAnswer('config.read', null, { files: [{ path: '/etc/a', content_base64: junk }] }), junk).toThrow(/files\[0\]\.content_base64: not base64/)
    }
  })

  it('refuses a config.write answer for paths that were not asked for, missing or repeated, or with a backup elsewhere', () => {
    const payload = { files: [{ path: '/etc/aitbc/node.env', content_base64: '' }] }
    const notAsked = refusedWith(() => parseStepAnswer('config.write', payload, { files: [{ path: '/etc/aitbc/node.env', state: 'written' }, { path: '/etc/shadow', state: 'written' }] }))
    expect(notAsked.message).toBe('files[1].path: not a path that was asked for: "/etc/shadow"')
    expect(notAsked.category).toBe('config.write files[].path: not a path that was asked for')
    expect(refusedWith(() => parseStepAnswer('config.write', payload, { files: [] })).message).toBe('files: no answer for "/etc/aitbc/node.env"')
    expect(refusedWith(() => parseStepAnswer('config.write', payload, { files: [{ path: '/etc/aitbc/node.env', state: 'written' }, { path: '/etc/aitbc/node.env', state: 'written' }] })).category)
      .toBe('config.write files[].path: path listed twice')
    expect(refusedWith(() => parseStepAnswer('config.write', payload, { files: [{ path: '/etc/aitbc/node.env', state: 'written', backup: '/tmp/elsewhere' }] })).category)
      .toBe('config.write files[].backup: not a backup beside the file')
    expect(parseStepAnswer('config.write', payload, { files: [{ path: '/etc/aitbc/node.env', state: 'written', backup: '/etc/aitbc/node.env.bak.20260101T000000Z' }] })).toBeTruthy()
    expect(() => parseStepAnswer('config.inspect', null, { files: [{ path: '/a', sha256: null }, { path: '/a', sha256: null }] })).toThrow(/path listed twice/)
  })

  it('names a stable category for the rejection log: no values and no indexes', () => {
    const a = refusedWith(() => parseStepAnswer('config.inspect', null, { files: [{ path: '/a', sha256: 'zz' }] }))
    const b = refusedWith(() => parseStepAnswer('config.inspect', null, { files: [{ path: '/a', sha256: null }, { path: '/b', sha256: 'yy' }] }))
    expect(a.category).toBe('config.inspect files[].sha256: not a SHA-256 digest (64 lowercase hex digits)')
    expect(b.category).toBe(a.category)
    expect(refusedWith(() => parseStepAnswer('git.inspect', null, gitState({ ahead: 2 ** 60 }))).category).toBe(refusedWith(() => parseStepAnswer('git.inspect', null, gitState({ ahead: 2 ** 61 }))).category)
  })

  it('producers fit their texts and lists to the bounds', () => {
    expect(fitText('x'.repeat(10_000))).toHaveLength(SYNC_ANSWER_MAX_TEXT_CHARS)
    expect(fitText('short')).toBe('short')
    const listed = fitList(Array.from({ length: 5000 }, () => 'p'.repeat(5000)), 100)
    expect(listed).toHaveLength(SYNC_ANSWER_MAX_LISTED)
    expect(listed.every(p => p.length === 100)).toBe(true)
  })

  it('checks files by key: hashes, key names, counts, patterns, one-line values, each key once', () => {
    const hash = 'c'.repeat(64)
    const inspect = (extra: Record<string, unknown>): unknown => ({ files: [{ path: '/etc/aitbc/blockchain.env', keys: 'env', key_hashes: [{ key: 'CHAIN_ID', sha256: hash }], kept_local: ['NODE_ID'], keep_local: ['NODE_ID', '*SECRET*'], ...extra }] })
    expect(parseStepAnswer('config.inspect', null, inspect({}))).toEqual(inspect({}))
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, inspect({ key_hashes: [{ key: 'CHAIN_ID', sha256: 'ait-mainnet' }] }))).message)
      .toBe('files[0].key_hashes[0].sha256: not a SHA-256 digest (64 lowercase hex digits), got "ait-mainnet"')
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, inspect({ key_hashes: [{ key: 'A=B\nNODE_ID', sha256: hash }] }))).category)
      .toBe('config.inspect files[].key_hashes[].key: not a key name (letters, digits and "_", not starting with a digit)')
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, inspect({ key_hashes: [{ key: 'K'.repeat(CONFIG_SYNC_MAX_KEY_CHARS + 1), sha256: hash }] }))).message)
      .toBe(`files[0].key_hashes[0].key: longer than ${CONFIG_SYNC_MAX_KEY_CHARS} characters, got a string of ${CONFIG_SYNC_MAX_KEY_CHARS + 1} characters`)
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, inspect({ kept_local: Array.from({ length: CONFIG_SYNC_MAX_KEYS + 1 }, (_, i) => `K${i}`) }))).category)
      .toBe(`config.inspect files[].kept_local: more than ${CONFIG_SYNC_MAX_KEYS} entries`)
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, inspect({ keep_local: ['.*(a+)+$'] }))).category)
      .toBe('config.inspect files[].keep_local[]: not a key name or * pattern')
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, inspect({ key_hashes: [{ key: 'A', sha256: hash }, { key: 'A', sha256: hash }] }))).message)
      .toBe('files[0].key_hashes[1].key: key listed twice: "A"')
    // Neither whole nor by key; by key without its hashes.
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, inspect({ keys: 'yaml' }))).message)
      .toBe('files[0].keys: expected one of (absent), "env", got "yaml"')
    expect(refusedWith(() => parseStepAnswer('config.inspect', null, { files: [{ path: '/a', keys: 'env', sha256: hash }] })).message).toMatch(/^files\[0\]\.key_hashes: missing/)

    const read = (values: unknown, skipped: unknown = []): unknown => ({ files: [{ path: '/etc/aitbc/blockchain.env', keys: 'env', values, skipped }] })
    expect(parseStepAnswer('config.read', null, read([{ key: 'CHAIN_ID', value: 'ait-mainnet' }]))).toEqual(read([{ key: 'CHAIN_ID', value: 'ait-mainnet' }]))
    // A value that would add lines on the follower; described by its length, never repeated.
    const smuggled = refusedWith(() => parseStepAnswer('config.read', null, read([{ key: 'CHAIN_ID', value: 'x\nNODE_ID=evil' }])))
    expect(smuggled.message).toBe('files[0].values[0].value: not a value on one line, got a string of 14 characters')
    expect(smuggled.message).not.toContain('evil')
    expect(refusedWith(() => parseStepAnswer('config.read', null, read([{ key: 'A', value: 'x'.repeat(CONFIG_SYNC_MAX_FILE_BYTES + 1) }]))).category)
      .toBe(`config.read files[].values[].value: longer than ${CONFIG_SYNC_MAX_FILE_BYTES} characters`)
    expect(refusedWith(() => parseStepAnswer('config.read', null, read([{ key: 'A', value: '1' }], [{ key: 'A', reason: 'multi-line' }]))).message)
      .toBe('files[0].skipped[0].key: key listed twice: "A"')
    expect(refusedWith(() => parseStepAnswer('config.read', null, read([{ key: 'A', value: 1 }]))).message).toBe('files[0].values[0].value: expected string, got number 1')
  })

  it('refuses a config.write answer naming keys that were not sent for that file', () => {
    const path = '/etc/aitbc/blockchain.env'
    const payload = { files: [{ path, keys: 'env', set: [{ key: 'CHAIN_ID', value: 'ait-mainnet' }] }, { path: '/etc/aitbc/chain.json', content_base64: '' }] }
    const whole = { path: '/etc/aitbc/chain.json', state: 'written' }
    expect(parseStepAnswer('config.write', payload, { files: [{ path, state: 'written', keys: ['CHAIN_ID'] }, whole] })).toBeTruthy()
    expect(refusedWith(() => parseStepAnswer('config.write', payload, { files: [{ path, state: 'written', keys: ['CHAIN_ID', 'NODE_ID'] }, whole] })).message)
      .toBe('files[0].keys[1]: not a key that was sent for this file: "NODE_ID"')
    expect(refusedWith(() => parseStepAnswer('config.write', payload, { files: [{ path, state: 'refused', refused_keys: ['p2p_node_id'] }, whole] })).category)
      .toBe('config.write files[].refused_keys[]: not a key that was sent')
    expect(refusedWith(() => parseStepAnswer('config.write', payload, { files: [{ path, state: 'unchanged' }, { ...whole, keys: ['CHAIN_ID'] }] })).message)
      .toBe('files[1].keys[0]: not a key that was sent for this file: "CHAIN_ID"')
    expect(refusedWith(() => parseStepAnswer('config.write', payload, { files: [{ path, state: 'merged' }, whole] })).message)
      .toBe('files[0].state: expected one of written, unchanged, refused, failed, got "merged"')
  })

  it('checks the after-git action result in a git.apply answer', () => {
    const action = { action: 'after-git', state: 'ok', exit_code: 0, duration_ms: 12, output_tail: '', reason: '', destructive: false, health_before: '', health_after: '' }
    expect(refusedWith(() => parseStepAnswer('git.apply', null, gitApply({ after_git: { ...action, exit_code: 1.5 } }))).category).toBe('git.apply after_git.exit_code: expected int')
    expect(refusedWith(() => parseStepAnswer('git.apply', null, gitApply({ after_git: { ...action, output_tail: 'o'.repeat(100_000) } }))).problems[0]!.field).toBe('after_git.output_tail')
    expect(refusedWith(() => parseStepAnswer('git.apply', null, gitApply({ after_git: 'ok' }))).message).toBe('after_git: expected object, got "ok"')
  })

  it('a target keeps a file by key within the bounds: too many keys or a key name too long is an error, not a cut list', () => {
    const dir = tempDir()
    const many = join(dir, 'many.env')
    writeFileSync(many, Array.from({ length: CONFIG_SYNC_MAX_KEYS + 1 }, (_, i) => `K${i}=1`).join('\n'))
    const long = join(dir, 'long.env')
    writeFileSync(long, `A=1\n${'L'.repeat(CONFIG_SYNC_MAX_KEY_CHARS + 1)}=2\n`)
    const specs: ConfigFileSpec[] = [{ path: many, keys: 'env', keepLocal: [] }, { path: long, keys: 'env', keepLocal: [] }]
    const hashes = { files: hashFiles(specs) }
    expect(hashes.files).toEqual([
      { path: many, keys: 'env', keep_local: [], key_hashes: [], kept_local: [], error: `${CONFIG_SYNC_MAX_KEYS + 1} keys, over the ${CONFIG_SYNC_MAX_KEYS} key limit` },
      { path: long, keys: 'env', keep_local: [], key_hashes: [], kept_local: [], error: expect.stringMatching(/^a key name of 257 characters \(L+…\), over the 256 character limit$/) }
    ])
    expect(parseStepAnswer('config.inspect', null, hashes)).toEqual(hashes)
    const contents = { files: readFiles(specs) }
    expect(contents.files.map(f => f.error)).toEqual(hashes.files.map(f => f.error))
    expect(parseStepAnswer('config.read', null, contents)).toEqual(contents)
  })

  it('matches keep-local patterns from a target without backtracking', () => {
    // As a regular expression (^.*a.*a…$) this pattern takes exponential time on such a key.
    const pattern = `${'*a'.repeat(60)}*b`
    const started = performance.now()
    expect(keptLocal('a'.repeat(CONFIG_SYNC_MAX_KEY_CHARS), [pattern])).toBe(false)
    expect(performance.now() - started).toBeLessThan(1000)
    expect(keptLocal(`${'a'.repeat(60)}b`, [pattern])).toBe(true)
    expect(keptLocal('API_KEY_HASH_SECRET', ['*key*'])).toBe(true)
    expect(keptLocal('NODE_IDS', ['node_id'])).toBe(false)
    expect(keptLocal('xNODE_ID', ['*NODE_ID'])).toBe(true)
    expect(keptLocal('', ['*'])).toBe(true)
    expect(keptLocal('ab', ['a*b*'])).toBe(true)
    expect(keptLocal('abc', ['a*b'])).toBe(false)
  })
})
