import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CONFIG_SYNC_MAX_FILE_BYTES, SYNC_ANSWER_MAX_LISTED, SYNC_ANSWER_MAX_TEXT_CHARS } from '../../src/constants.js'
import { fitList, fitText, parseStepAnswer, StepAnswerError } from '../../src/operations/sync/answers.js'
import { hashFiles, readFiles, writeFiles } from '../../src/operations/sync/config-files.js'
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
  it('accepts what the steps on an honest node produce, including refusals', () => {
    const dir = tempDir()
    const env = join(dir, 'node.env')
    writeFileSync(env, 'CHAIN_ID=ait-mainnet\n')
    mkdirSync(join(dir, 'sub'))
    const missing = join(dir, 'missing.env')
    const hashes = { files: hashFiles([env, missing]) }
    expect(parseStepAnswer('config.inspect', null, hashes)).toEqual(hashes)
    const contents = { files: readFiles([env, missing, join(dir, 'sub')]) }
    expect(parseStepAnswer('config.read', null, contents)).toEqual(contents)
    const payload = { files: [{ path: env, content_base64: Buffer.from('CHAIN_ID=x\n').toString('base64') }, { path: join(dir, 'other.env'), content_base64: '' }] }
    const written = { files: writeFiles(payload.files, [env]) }
    expect(written.files.map(f => f.state)).toEqual(['written', 'refused'])
    expect(parseStepAnswer('config.write', payload, written)).toEqual(written)
    expect(parseStepAnswer('git.inspect', null, gitState())).toEqual(gitState())
    expect(parseStepAnswer('git.apply', null, gitApply({ state: 'refused', reason: 'dirty work tree', head_after: HEAD }))).toMatchObject({ state: 'refused', head_before: HEAD })
    expect(parseStepAnswer('git.apply', null, { state: 'refused', reason: 'git.apply with --force is not accepted' })).toEqual({ state: 'refused', reason: 'git.apply with --force is not accepted' })
    for (const step of ['git.inspect', 'config.inspect', 'config.read', 'config.write'] as const) {
      expect(parseStepAnswer(step, null, { state: 'refused', reason: 'not for you' })).toEqual({ state: 'refused', reason: 'not for you' })
    }
    const action = { action: 'catch-up', state: 'ok', exit_code: 0, duration_ms: 12, output_tail: 'done\n', reason: '', destructive: false, health_before: '', health_after: '' }
    expect(parseStepAnswer('blockchain.catch_up', null, { state: 'ok', reason: '', action })).toEqual({ state: 'ok', reason: '', action })
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
})
