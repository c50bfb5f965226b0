import { z } from 'zod'
import { ENV_KEY_PATTERN } from '../../config/schema.js'
import {
  ACTION_OUTPUT_TAIL_BYTES, CONFIG_SYNC_MAX_FILE_BYTES, CONFIG_SYNC_MAX_KEEP_LOCAL, CONFIG_SYNC_MAX_KEY_CHARS, CONFIG_SYNC_MAX_KEYS,
  DEFAULT_KEEP_LOCAL_KEYS, SYNC_ANSWER_MAX_LISTED, SYNC_ANSWER_MAX_PATH_CHARS, SYNC_ANSWER_MAX_TEXT_CHARS, SYNC_MAX_CONFIG_FILES
} from '../../constants.js'
import { ProtocolError } from '../../errors.js'
import { clipText } from '../../mesh/wire-bounds.js'
import type { ActionResult } from '../actions.js'
import type { InspectedFile, ReadFile, WriteResult } from './config-files.js'
import type { GitApplyResult, GitState } from './git.js'
import type { SyncStep } from './steps.js'

/**
 * The answers of sync steps, as a requester accepts them from a target (or from itself): every
 * string, list and number bounded, hashes in their form, file paths the ones asked about. The
 * producers (git.ts, config-files.ts, steps.ts) keep to the same bounds with `fitText`/`fitList`,
 * so an honest answer always passes.
 */

/** `text` cut to at most `max` characters, the cut marked. */
export function fitText (text: string, max = SYNC_ANSWER_MAX_TEXT_CHARS): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** The first SYNC_ANSWER_MAX_LISTED of `items`, each cut to `max` characters. */
export function fitList (items: string[], max: number): string[] {
  return items.slice(0, SYNC_ANSWER_MAX_LISTED).map(item => fitText(item, max))
}

/** An action's result with its name and reason fitted (its output tail is cut where it is kept). */
export function fitAction (result: ActionResult): ActionResult {
  return { ...result, action: fitText(result.action), reason: fitText(result.reason) }
}

/** A git.apply result, with the `sync.afterGit` action's result when the checkout moved. */
export type GitApplyAnswer = GitApplyResult & { after_git?: ActionResult }

/** A target's refusal to run a step for this requester, in place of the step's result. */
export interface StepRefusal { state: 'refused', reason: string }

export interface StepAnswers {
  'git.inspect': GitState | StepRefusal
  'git.apply': GitApplyAnswer | StepRefusal
  'blockchain.catch_up': { state: ActionResult['state'], reason: string, action?: ActionResult }
  'config.inspect': { files: InspectedFile[] } | StepRefusal
  'config.read': { files: ReadFile[] } | StepRefusal
  'config.write': { files: WriteResult[] } | StepRefusal
}

const text = z.string().max(SYNC_ANSWER_MAX_TEXT_CHARS)
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const filePath = z.string().min(1).max(SYNC_ANSWER_MAX_PATH_CHARS)
/** A path as `git status` lists it: display only, cut by the target. */
const listedPath = z.string().max(SYNC_ANSWER_MAX_PATH_CHARS)
const listed = (item: z.ZodString): z.ZodArray<z.ZodString> => z.array(item).max(SYNC_ANSWER_MAX_LISTED)
/** SHA-1 object names, or SHA-256 ones in a repository created with --object-format=sha256. */
const commitHash = z.string().regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/, 'not a commit hash (40 or 64 lowercase hex digits)')
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'not a SHA-256 digest (64 lowercase hex digits)')
const base64 = z.string()
  .max(4 * Math.ceil(CONFIG_SYNC_MAX_FILE_BYTES / 3), `longer than a base64 file of ${CONFIG_SYNC_MAX_FILE_BYTES} bytes`)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64')
  .refine(s => s.length % 4 === 0, 'not base64 (length not a multiple of 4)')
  .refine(s => s.length / 4 * 3 - (s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0) <= CONFIG_SYNC_MAX_FILE_BYTES, `decodes to more than ${CONFIG_SYNC_MAX_FILE_BYTES} bytes`)

/** A key of an env-style file (synced by key), as the files' parser reads one. */
const keyName = z.string().max(CONFIG_SYNC_MAX_KEY_CHARS).regex(ENV_KEY_PATTERN, 'not a key name (letters, digits and "_", not starting with a digit)')
const keyNames = z.array(keyName).max(CONFIG_SYNC_MAX_KEYS)
/** A keep-local pattern, as the config allows one: the requester matches its keys against it. */
const keepPattern = z.string().max(CONFIG_SYNC_MAX_KEY_CHARS).regex(/^[A-Za-z0-9_*]+$/, 'not a key name or * pattern')

const refusal: z.ZodType<StepRefusal> = z.object({ state: z.literal('refused'), reason: text })

const actionResult: z.ZodType<ActionResult> = z.object({
  action: z.string().min(1).max(SYNC_ANSWER_MAX_TEXT_CHARS),
  state: z.enum(['ok', 'failed', 'refused', 'timed_out']),
  exit_code: z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1).nullable(),
  duration_ms: count,
  output_tail: z.string().max(ACTION_OUTPUT_TAIL_BYTES),
  reason: text,
  destructive: z.boolean(),
  health_before: z.string().max(64),
  health_after: z.string().max(64)
})

const gitState: z.ZodType<GitState> = z.object({
  head: commitHash,
  upstream: commitHash,
  upstream_ref: text.min(1),
  ahead: count,
  behind: count,
  dirty_files: listed(listedPath),
  dirty_file_count: count.optional(),
  local_commits: listed(text)
})

const gitApply: z.ZodType<GitApplyAnswer> = z.object({
  state: z.enum(['up_to_date', 'fast_forwarded', 'reset', 'refused', 'failed']),
  reason: text,
  head_before: commitHash.nullable(),
  head_after: commitHash.nullable(),
  lost_commits: listed(text),
  lost_files: listed(listedPath),
  lost_commit_count: count.optional(),
  lost_file_count: count.optional(),
  after_git: actionResult.optional()
})

const catchUp: z.ZodType<StepAnswers['blockchain.catch_up']> = z.object({
  state: z.enum(['ok', 'failed', 'refused', 'timed_out']),
  reason: text,
  action: actionResult.optional()
})

// A file is synced whole (no `keys`) or by key (`keys: "env"`): each entry is checked as what it says it is.
const configInspect: z.ZodType<{ files: InspectedFile[] }> = z.object({
  files: z.array(z.discriminatedUnion('keys', [
    z.object({ path: filePath, keys: z.undefined().optional(), sha256: sha256.nullable(), error: text.optional() }),
    z.object({
      path: filePath,
      keys: z.literal('env'),
      key_hashes: z.array(z.object({ key: keyName, sha256 })).max(CONFIG_SYNC_MAX_KEYS),
      kept_local: keyNames,
      keep_local: z.array(keepPattern).max(CONFIG_SYNC_MAX_KEEP_LOCAL + DEFAULT_KEEP_LOCAL_KEYS.length),
      error: text.optional()
    })
  ])).max(SYNC_MAX_CONFIG_FILES)
})
const configRead: z.ZodType<{ files: ReadFile[] }> = z.object({
  files: z.array(z.discriminatedUnion('keys', [
    z.object({ path: filePath, keys: z.undefined().optional(), content_base64: base64.nullable(), error: text.optional() }),
    z.object({
      path: filePath,
      keys: z.literal('env'),
      // As a config.write accepts them: the requester passes them on to followers.
      values: z.array(z.object({
        key: keyName,
        value: z.string().max(CONFIG_SYNC_MAX_FILE_BYTES).regex(/^[^\r\n\0]*$/, 'not a value on one line')
      })).max(CONFIG_SYNC_MAX_KEYS),
      skipped: z.array(z.object({ key: keyName, reason: text })).max(CONFIG_SYNC_MAX_KEYS),
      error: text.optional()
    })
  ])).max(SYNC_MAX_CONFIG_FILES)
})
const configWrite: z.ZodType<{ files: WriteResult[] }> = z.object({
  files: z.array(z.object({
    path: filePath,
    state: z.enum(['written', 'unchanged', 'refused', 'failed']),
    backup: z.string().max(SYNC_ANSWER_MAX_PATH_CHARS + 32).optional(),
    keys: keyNames.optional(),
    refused_keys: keyNames.optional(),
    reason: text.optional()
  })).max(SYNC_MAX_CONFIG_FILES)
})

/** One thing wrong with an answer: where, a stable category (no values) and the detail. */
export interface AnswerProblem {
  field: string
  category: string
  detail: string
}

/** A step's answer that is not one the step can give. */
export class StepAnswerError extends ProtocolError {
  override name = 'StepAnswerError'
  constructor (readonly step: string, readonly problems: AnswerProblem[]) {
    super(problems.slice(0, 3).map(p => `${p.field}: ${p.detail}`).join('; ') + (problems.length > 3 ? `; and ${problems.length - 3} more` : ''))
  }

  /** For the rejection log: the step and its first problem, without indexes or values. */
  get category (): string {
    const first = this.problems[0]
    return first == null ? `${this.step}: invalid` : `${this.step} ${first.field.replace(/\[\d+\]/g, '[]')}: ${first.category}`
  }
}

function fieldName (path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(answer)'
  return path.map((key, i) => typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`).join('')
}

function valueAt (root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root
  for (const key of path) {
    if (value == null || typeof value !== 'object') return undefined
    value = (value as Record<PropertyKey, unknown>)[key]
  }
  return value
}

/** Fields holding configuration values: described by their size only, never repeated in a log. */
const VALUE_FIELDS = new Set<PropertyKey>(['value', 'content_base64'])

/** What a value is, briefly: its type and size, or the start of a string (`opaque`: its size only). */
function described (value: unknown, opaque = false): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (typeof value === 'string') return value.length > 64 || opaque ? `a string of ${value.length} characters` : JSON.stringify(value)
  if (Array.isArray(value)) return `an array of ${value.length} entries`
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${clipText(String(value), 64)}`
}

function problemOf (issue: z.core.$ZodIssue, answer: unknown): AnswerProblem {
  const value = valueAt(answer, issue.path)
  const field = fieldName(issue.path)
  const got = `, got ${described(value, VALUE_FIELDS.has(issue.path[issue.path.length - 1] ?? ''))}`
  switch (issue.code) {
    case 'invalid_type':
      return { field, category: value === undefined ? 'missing' : `expected ${issue.expected}`, detail: value === undefined ? 'missing' : `expected ${issue.expected}${got}` }
    case 'too_big': {
      const what = issue.origin === 'string' ? `longer than ${String(issue.maximum)} characters`
        : issue.origin === 'array' ? `more than ${String(issue.maximum)} entries`
          : `over ${String(issue.maximum)}`
      return { field, category: what, detail: `${what}${got}` }
    }
    case 'too_small': {
      const what = issue.origin === 'string' ? 'empty' : `under ${String(issue.minimum)}`
      return { field, category: what, detail: `${what}${got}` }
    }
    case 'invalid_value': {
      const what = `expected one of ${issue.values.map(v => String(v)).join(', ')}`
      return { field, category: what, detail: `${what}${got}` }
    }
    case 'invalid_union': {
      // A file entry whose `keys` names neither way of syncing it.
      const options = (issue as { options?: unknown[] }).options
      if (options == null) return { field, category: issue.message, detail: `${issue.message}${got}` }
      const what = `expected one of ${options.map(o => o == null ? '(absent)' : JSON.stringify(o)).join(', ')}`
      return { field, category: what, detail: `${what}${got}` }
    }
    default:
      // Format checks carry their own value-free messages (regex, refine).
      return { field, category: issue.message, detail: `${issue.message}${got}` }
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value != null && typeof value === 'object' && !Array.isArray(value)
}

function check<T> (schema: z.ZodType<T>, step: string, answer: unknown): T {
  const parsed = schema.safeParse(answer)
  if (parsed.success) return parsed.data
  // The first problem of each field: a value can fail two checks that say the same (an integer
  // over the safe range, as an int and as a number).
  const problems = new Map<string, AnswerProblem>()
  for (const issue of parsed.error.issues) {
    const problem = problemOf(issue, answer)
    if (!problems.has(problem.field)) problems.set(problem.field, problem)
  }
  throw new StepAnswerError(step, [...problems.values()])
}

/** A problem for each entry of `names` (at `field(i)`) already seen before it. */
function repeated (names: string[], field: (i: number) => string, what: string): AnswerProblem[] {
  const seen = new Set<string>()
  return names.flatMap((name, i) => {
    if (!seen.has(name)) {
      seen.add(name)
      return []
    }
    return [{ field: field(i), category: `${what} listed twice`, detail: `${what} listed twice: ${JSON.stringify(clipText(name, 256))}` }]
  })
}

/** Files are answered once each, and a file synced by key names each of its keys once. */
function listedOnce (step: string, files: Array<InspectedFile | ReadFile>): void {
  const problems = repeated(files.map(f => f.path), i => `files[${i}].path`, 'path')
  files.forEach((file, i) => {
    if ('key_hashes' in file) problems.push(...repeated(file.key_hashes.map(k => k.key), j => `files[${i}].key_hashes[${j}].key`, 'key'))
    if ('values' in file) {
      // A key is sent, or skipped with the reason: never both.
      const keys = [...file.values.map(v => v.key), ...file.skipped.map(k => k.key)]
      problems.push(...repeated(keys, j => j < file.values.length ? `files[${i}].values[${j}].key` : `files[${i}].skipped[${j - file.values.length}].key`, 'key'))
    }
  })
  if (problems.length > 0) throw new StepAnswerError(step, problems)
}

/** What a config.write request asked to write (the requester's own payload): each path, with the keys sent for it (null: the whole file). */
function askedWrites (payload: unknown): Map<string, Set<string> | null> {
  const files = isObject(payload) && Array.isArray(payload.files) ? payload.files : []
  return new Map(files.flatMap(f => {
    if (!isObject(f) || typeof f.path !== 'string') return []
    const keys = Array.isArray(f.set) ? f.set.flatMap(v => isObject(v) && typeof v.key === 'string' ? [v.key] : []) : null
    return [[f.path, keys == null ? null : new Set(keys)] as const]
  }))
}

/**
 * A config.write answer must account for exactly the files it was sent, each once, and name as
 * merged or kept local only keys it was sent for that file.
 */
function writtenAsAsked (files: WriteResult[], payload: unknown): void {
  const asked = askedWrites(payload)
  const problems: AnswerProblem[] = repeated(files.map(f => f.path), i => `files[${i}].path`, 'path')
  files.forEach((file, i) => {
    if (!asked.has(file.path)) {
      problems.push({ field: `files[${i}].path`, category: 'not a path that was asked for', detail: `not a path that was asked for: ${JSON.stringify(clipText(file.path, 256))}` })
      return
    }
    if (file.backup != null && !(file.backup.startsWith(`${file.path}.bak.`) && /^\d{8}T\d{6}Z$/.test(file.backup.slice(file.path.length + 5)))) {
      problems.push({ field: `files[${i}].backup`, category: 'not a backup beside the file', detail: `not <path>.bak.<timestamp>: ${JSON.stringify(clipText(file.backup, 256))}` })
    }
    const sent = asked.get(file.path) ?? new Set<string>()
    for (const field of ['keys', 'refused_keys'] as const) {
      const j = (file[field] ?? []).findIndex(key => !sent.has(key))
      if (j !== -1) problems.push({ field: `files[${i}].${field}[${j}]`, category: 'not a key that was sent', detail: `not a key that was sent for this file: ${JSON.stringify(clipText(file[field]![j]!, 256))}` })
    }
  })
  const answered = new Set(files.map(f => f.path))
  const missing = [...asked.keys()].filter(path => !answered.has(path))
  if (missing.length > 0) problems.push({ field: 'files', category: 'a file asked for is not answered', detail: `no answer for ${missing.map(p => JSON.stringify(clipText(p, 256))).join(', ')}` })
  if (problems.length > 0) throw new StepAnswerError('config.write', problems)
}

/**
 * `answer` (the JSON a target sent for `step`, run with `payload`) checked against what that
 * step can answer, or a StepAnswerError saying what is wrong. Unknown fields are dropped.
 */
export function parseStepAnswer<S extends SyncStep> (step: S, payload: unknown, answer: unknown): StepAnswers[S] {
  // A refusal replaces the result of a step that has no refused state of its own.
  const refused = isObject(answer) && answer.state === 'refused'
  switch (step) {
    case 'git.inspect':
      return (refused ? check(refusal, step, answer) : check(gitState, step, answer)) as StepAnswers[S]
    case 'git.apply':
      // git.apply has a refused state of its own, with the heads; a refusal to run it has only a reason.
      return (refused && isObject(answer) && !('head_before' in answer) ? check(refusal, step, answer) : check(gitApply, step, answer)) as StepAnswers[S]
    case 'blockchain.catch_up':
      return check(catchUp, step, answer) as StepAnswers[S]
    case 'config.inspect':
    case 'config.read': {
      if (refused) return check(refusal, step, answer) as StepAnswers[S]
      const value = check<{ files: Array<InspectedFile | ReadFile> }>(step === 'config.inspect' ? configInspect : configRead, step, answer)
      listedOnce(step, value.files)
      return value as StepAnswers[S]
    }
    case 'config.write': {
      if (refused) return check(refusal, step, answer) as StepAnswers[S]
      const value = check(configWrite, step, answer)
      writtenAsAsked(value.files, payload)
      return value as StepAnswers[S]
    }
    default:
      throw new StepAnswerError(step, [{ field: '(step)', category: 'unknown step', detail: `unknown step "${clipText(String(step), 64)}"` }])
  }
}
