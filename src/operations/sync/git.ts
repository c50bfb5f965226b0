import { execFile } from 'node:child_process'
import { SYNC_ANSWER_MAX_PATH_CHARS, SYNC_ANSWER_MAX_TEXT_CHARS } from '../../constants.js'
import { fitList, fitText } from './answers.js'

export interface GitState {
  head: string
  upstream: string
  upstream_ref: string
  ahead: number
  behind: number
  /**
   * Tracked files with changes (`git status --porcelain`, untracked files left out: a reset
   * keeps them), the first SYNC_ANSWER_MAX_LISTED; `dirty_file_count` counts them all.
   */
  dirty_files: string[]
  dirty_file_count?: number
  /** Commits on HEAD that the upstream does not have (what a reset would drop), the first SYNC_ANSWER_MAX_LISTED; `ahead` counts them all. */
  local_commits: string[]
}

export interface GitApplyResult {
  state: 'up_to_date' | 'fast_forwarded' | 'reset' | 'refused' | 'failed'
  reason: string
  head_before: string | null
  head_after: string | null
  /** What a reset dropped, the first SYNC_ANSWER_MAX_LISTED of each; the counts are exact. */
  lost_commits: string[]
  lost_files: string[]
  lost_commit_count?: number
  lost_file_count?: number
}

async function git (repo: string, args: string[], timeoutMs: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile('git', ['-C', repo, ...args], { timeout: timeoutMs, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' }, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err != null) {
        const detail = stderr.trim().split('\n').filter(l => l !== '').slice(-1)[0] ?? err.message
        reject(new Error(`git ${args[0] ?? ''}: ${detail}`))
      } else resolve(stdout)
    })
  })
}

/** Fetches the upstream and describes where the checkout stands against it. Changes nothing locally. */
export async function inspectRepo (repo: string, timeoutMs: number): Promise<GitState> {
  const upstreamRef = (await git(repo, ['rev-parse', '--abbrev-ref', '--symbolic-full-name', '@{u}'], timeoutMs).catch(() => {
    throw new Error(`${repo}: the current branch has no upstream (set one with git branch --set-upstream-to)`)
  })).trim()
  await git(repo, ['fetch', '--quiet'], timeoutMs)
  const [head, upstream, counts, status, local] = await Promise.all([
    git(repo, ['rev-parse', 'HEAD'], timeoutMs),
    git(repo, ['rev-parse', '@{u}'], timeoutMs),
    git(repo, ['rev-list', '--left-right', '--count', 'HEAD...@{u}'], timeoutMs),
    git(repo, ['status', '--porcelain', '--untracked-files=no'], timeoutMs),
    git(repo, ['log', '--format=%h %s', '@{u}..HEAD'], timeoutMs)
  ])
  const [ahead, behind] = counts.trim().split(/\s+/).map(Number)
  const dirty = status.split('\n').filter(l => l.trim() !== '').map(l => l.slice(3))
  return {
    head: head.trim(),
    upstream: upstream.trim(),
    upstream_ref: fitText(upstreamRef),
    ahead: ahead ?? 0,
    behind: behind ?? 0,
    dirty_files: fitList(dirty, SYNC_ANSWER_MAX_PATH_CHARS),
    dirty_file_count: dirty.length,
    local_commits: fitList(local.split('\n').filter(l => l !== ''), SYNC_ANSWER_MAX_TEXT_CHARS)
  }
}

/**
 * Brings the checkout to its upstream: a fast-forward when that loses nothing. A dirty work
 * tree or local commits are refused with the reason, unless `force`, which resets to the
 * upstream and reports exactly what was dropped.
 */
export async function applyRepo (repo: string, force: boolean, timeoutMs: number): Promise<GitApplyResult> {
  let state: GitState
  try {
    state = await inspectRepo(repo, timeoutMs)
  } catch (err) {
    return { state: 'failed', reason: fitText((err as Error).message), head_before: null, head_after: null, lost_commits: [], lost_files: [] }
  }
  const base = { head_before: state.head, lost_commits: [] as string[], lost_files: [] as string[] }
  const dirtyCount = state.dirty_file_count ?? state.dirty_files.length
  if (state.behind === 0 && state.ahead === 0 && dirtyCount === 0) {
    return { ...base, state: 'up_to_date', reason: '', head_after: state.head }
  }
  const problems: string[] = []
  if (dirtyCount > 0) problems.push(`dirty work tree: ${dirtyCount} changed file(s) (${state.dirty_files.slice(0, 5).map(f => fitText(f, 256)).join(', ')})`)
  if (state.ahead > 0) problems.push(`diverged: ${state.ahead} local commit(s) not in ${fitText(state.upstream_ref, 256)} (${state.local_commits.slice(0, 3).map(c => fitText(c, 256)).join('; ')})`)
  try {
    if (problems.length === 0) {
      await git(repo, ['merge', '--ff-only', '--quiet', '@{u}'], timeoutMs)
      return { ...base, state: 'fast_forwarded', reason: '', head_after: (await git(repo, ['rev-parse', 'HEAD'], timeoutMs)).trim() }
    }
    if (!force) return { ...base, state: 'refused', reason: fitText(`${problems.join('; ')}; --force resets to ${state.upstream_ref} and drops them`), head_after: state.head }
    await git(repo, ['reset', '--hard', '--quiet', '@{u}'], timeoutMs)
    return {
      state: 'reset',
      reason: fitText(problems.join('; ')),
      head_before: state.head,
      head_after: (await git(repo, ['rev-parse', 'HEAD'], timeoutMs)).trim(),
      lost_commits: state.local_commits,
      lost_files: state.dirty_files,
      lost_commit_count: state.ahead,
      lost_file_count: dirtyCount
    }
  } catch (err) {
    return { ...base, state: 'failed', reason: fitText((err as Error).message), head_after: null }
  }
}
