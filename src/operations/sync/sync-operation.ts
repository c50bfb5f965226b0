import { allNodes, type MeshConfig, type NodeEntry } from '../../config/config.js'
import { SYNC_VERIFY_POLL_MS } from '../../constants.js'
import { errorMessage } from '../../errors.js'
import type { NodeReport } from '../report.js'
import type { OperationRequest } from '../request.js'
import { basename } from 'node:path'
import type { StepAnswers, StepRefusal } from './answers.js'
import type { FileHash } from './config-files.js'
import type { GitApplyResult } from './git.js'
import type { SyncStep } from './steps.js'

export type SyncKind = 'blockchain' | 'mempool' | 'configuration' | 'git'
const ALL_KINDS: SyncKind[] = ['blockchain', 'mempool', 'configuration', 'git']

export interface SyncDeps {
  config: MeshConfig
  /**
   * Runs a sync step on `node` (locally for this node, over the mesh for the others) and gives
   * its answer once checked against what the step can answer; throws with the reason otherwise.
   */
  step: <S extends SyncStep>(node: NodeEntry, step: S, payload: unknown, force: boolean) => Promise<StepAnswers[S]>
  /** A fresh report of `node` (health probes), with `status: offline` when it cannot answer. */
  report: (node: NodeEntry) => Promise<NodeReport>
  progress: (node: string, state: string, detail?: string) => void
}

export interface SyncOutcome {
  perNode: Record<string, Record<string, unknown>>
  reports: Map<string, NodeReport>
  details: Record<SyncKind, boolean | null>
  issues: string[]
}

/** A refusal in place of the result of a step whose result has no `state` of its own. */
function isRefusal<T extends object> (value: T | StepRefusal): value is StepRefusal {
  return 'state' in value && value.state === 'refused'
}

/** Runs a step whose result has no `refused` state of its own; a refusal becomes an error. */
async function expectResult<T extends object> (answer: Promise<T | StepRefusal>): Promise<T> {
  const value = await answer
  if (isRefusal(value)) throw new Error(`refused: ${value.reason}`)
  return value
}

async function attempt<T> (work: () => Promise<T>): Promise<{ ok: true, value: T } | { ok: false, error: string }> {
  try {
    return { ok: true, value: await work() }
  } catch (err) {
    return { ok: false, error: errorMessage(err) }
  }
}

/**
 * Runs a sync across the targets: each kind compares the targets with each other (and the
 * genesis node), and each target repairs itself with its own configured means.
 */
export async function runSync (deps: SyncDeps, request: OperationRequest, targets: NodeEntry[]): Promise<SyncOutcome> {
  const kinds = request.sync_type == null || request.sync_type === 'all' ? ALL_KINDS : [request.sync_type as SyncKind]
  const genesis = allNodes(deps.config).find(n => n.role === 'genesis')
  const perNode: Record<string, Record<string, unknown>> = Object.fromEntries(targets.map(t => [t.name, {}]))
  const issues: string[] = []
  const details: Record<SyncKind, boolean | null> = { blockchain: null, mempool: null, configuration: null, git: null }
  const deadline = Date.now() + request.timeout * 1000
  let reports = new Map((await Promise.all(targets.map(async t => [t.name, await deps.report(t)] as const))))

  for (const kind of kinds) {
    if (kind === 'git') details.git = await syncGit()
    else if (kind === 'blockchain') details.blockchain = await syncBlockchain()
    else if (kind === 'mempool') details.mempool = syncMempool()
    else details.configuration = await syncConfiguration()
  }
  return { perNode, reports, details, issues }

  async function syncGit (): Promise<boolean> {
    // With --force, first show what a reset would drop on each node, then apply.
    if (request.force) {
      await Promise.all(targets.map(async node => {
        const plan = await attempt(async () => await expectResult(deps.step(node, 'git.inspect', null, false)))
        if (!plan.ok) {
          deps.progress(node.name, 'git: cannot list what --force will drop', plan.error)
          return
        }
        const loss = [...plan.value.local_commits.map(c => `commit ${c}`), ...plan.value.dirty_files.map(f => `changes to ${f}`)]
        perNode[node.name]!.git_would_lose = loss
        if (loss.length > 0) deps.progress(node.name, 'git: --force will drop', loss.join('; '))
      }))
    }
    const applied = await Promise.all(targets.map(async node => {
      const result = await attempt(async () => await deps.step(node, 'git.apply', null, request.force))
      const none = { head_before: null, head_after: null, lost_commits: [], lost_files: [] }
      // A refusal for this requester carries only a reason; give it the shape of a git result.
      const entry: GitApplyResult = !result.ok ? { ...none, state: 'failed', reason: result.error } : { ...none, ...result.value }
      perNode[node.name]!.git = entry
      deps.progress(node.name, `git: ${entry.state}`, entry.reason !== '' ? entry.reason : undefined)
      return [node, entry] as const
    }))
    let reference: string | null = null
    if (request.verify && genesis != null) {
      const fromTargets = applied.find(([node]) => node.name === genesis.name)?.[1].head_after
      if (fromTargets != null) reference = fromTargets
      else {
        const state = await attempt(async () => await expectResult(deps.step(genesis, 'git.inspect', null, false)))
        if (state.ok) reference = state.value.head
        else issues.push(`${genesis.name}: git: cannot read the genesis HEAD: ${state.error}`)
      }
    }
    let all = true
    for (const [node, entry] of applied) {
      const done = ['up_to_date', 'fast_forwarded', 'reset'].includes(entry.state)
      const equal = !request.verify || (reference != null && entry.head_after === reference)
      if (!done) issues.push(`${node.name}: git: ${entry.state}: ${entry.reason}`)
      else if (!equal) issues.push(`${node.name}: git: HEAD ${entry.head_after ?? '?'} differs from the genesis HEAD ${reference ?? '(unknown)'}`)
      if (entry.state === 'reset') issues.push(`${node.name}: git: reset to upstream, dropped ${entry.lost_commit_count ?? entry.lost_commits.length} commit(s) and changes to ${entry.lost_file_count ?? entry.lost_files.length} file(s)`)
      perNode[node.name]!.git_synced = done && equal
      all &&= done && equal
    }
    return all
  }

  async function syncBlockchain (): Promise<boolean> {
    const threshold = deps.config.sync.lagThreshold
    const heights = (): Array<[NodeEntry, number | null]> => targets.map(t => [t, reports.get(t.name)?.block_height ?? null])
    const highest = Math.max(...heights().map(([, h]) => h ?? -Infinity))
    if (!Number.isFinite(highest)) {
      issues.push('blockchain: no target could report its block height')
      return false
    }
    const lagging = heights().filter(([, h]) => h != null && highest - h > threshold).map(([t]) => t)
    await Promise.all(lagging.map(async node => {
      const result = await attempt(async () => await deps.step(node, 'blockchain.catch_up', null, request.force))
      const entry = result.ok ? result.value : { state: 'failed' as const, reason: result.error }
      perNode[node.name]!.blockchain_catch_up = entry
      if (entry.state !== 'ok') issues.push(`${node.name}: blockchain: catch-up ${entry.state}: ${entry.reason}`)
      deps.progress(node.name, `blockchain: catch-up ${entry.state}`, entry.reason)
    }))
    const within = (): boolean => heights().every(([, h]) => h != null && highest - h <= threshold)
    if (request.verify && lagging.length > 0) {
      // Heights are re-read until every target is within the threshold, or time runs out.
      while (!within() && Date.now() + SYNC_VERIFY_POLL_MS < deadline) {
        await new Promise(resolve => setTimeout(resolve, SYNC_VERIFY_POLL_MS))
        reports = new Map((await Promise.all(targets.map(async t => [t.name, await deps.report(t)] as const))))
      }
    }
    let all = true
    for (const [node, h] of heights()) {
      const synced = h != null && highest - h <= threshold
      perNode[node.name]!.blockchain = { height: h, highest, lag: h == null ? null : highest - h, threshold, synced }
      if (h == null) issues.push(`${node.name}: blockchain: height unavailable`)
      else if (!synced) issues.push(`${node.name}: blockchain: ${highest - h} blocks behind (threshold ${threshold})`)
      all &&= synced
    }
    return all
  }

  function syncMempool (): boolean {
    const tolerance = deps.config.sync.mempoolTolerance
    const sizes = targets.map(t => [t, reports.get(t.name)?.mempool_size ?? null] as const)
    const known = sizes.map(([, s]) => s).filter((s): s is number => s != null)
    const spread = known.length > 0 ? Math.max(...known) - Math.min(...known) : null
    const synced = spread != null && known.length === sizes.length && spread <= tolerance
    for (const [node, size] of sizes) {
      perNode[node.name]!.mempool = { size, spread, tolerance }
      if (size == null) issues.push(`${node.name}: mempool: size unavailable`)
    }
    if (spread != null && spread > tolerance) issues.push(`mempool: sizes differ by ${spread} transactions (tolerance ${tolerance})`)
    return synced
  }

  async function syncConfiguration (): Promise<boolean> {
    if (genesis == null) {
      issues.push('configuration: no genesis node to compare with')
      return false
    }
    // Why a node's files could not be compared (its hashes could not be had), by node name.
    const unknown = new Map<string, string>()
    const inspect = async (node: NodeEntry): Promise<FileHash[] | null> => {
      const r = await attempt(async () => (await expectResult(deps.step(node, 'config.inspect', null, false))).files)
      if (!r.ok) {
        issues.push(`${node.name}: configuration: ${r.error}`)
        unknown.set(node.name, r.error)
        return null
      }
      unknown.delete(node.name)
      return r.value
    }
    const reference = await inspect(genesis)
    if (reference == null) return false
    // Files are matched by file name (each node lists its own paths; on real hosts they are the same).
    // A node whose hashes are unknown has no drift to repair: nothing is written to it.
    const driftOf = (files: FileHash[] | null): Array<{ name: string, path: string }> => files == null
      ? []
      : reference
        .filter(ref => files.find(f => basename(f.path) === basename(ref.path))?.sha256 !== ref.sha256)
        .map(ref => ({ name: basename(ref.path), path: files.find(f => basename(f.path) === basename(ref.path))?.path ?? ref.path }))
    const followers = targets.filter(t => t.name !== genesis.name)
    const drift = new Map(await Promise.all(followers.map(async t => [t.name, driftOf(await inspect(t))] as const)))
    if (request.force && [...drift.values()].some(d => d.length > 0)) {
      const read = await attempt(async () => (await expectResult(deps.step(genesis, 'config.read', null, false))).files)
      if (!read.ok) {
        issues.push(`${genesis.name}: configuration: cannot read the genesis copies: ${read.error}`)
        deps.progress(genesis.name, read.error.startsWith('refused: ') ? 'configuration: refused' : 'configuration: cannot read', read.error.replace(/^refused: /, ''))
      } else {
        const written = new Set<string>()
        await Promise.all(followers.map(async node => {
          const files = (drift.get(node.name) ?? []).flatMap(d => {
            const source = read.value.find(f => basename(f.path) === d.name)
            return source?.content_base64 != null ? [{ path: d.path, content_base64: source.content_base64 }] : []
          })
          if (files.length === 0) return
          written.add(node.name)
          const result = await attempt(async () => await deps.step(node, 'config.write', { files }, true))
          if (!result.ok) {
            perNode[node.name]!.configuration_written = { error: result.error }
            issues.push(`${node.name}: configuration: not written: ${result.error}`)
            deps.progress(node.name, 'configuration: not written', result.error)
          } else if (isRefusal(result.value)) {
            const { reason } = result.value
            perNode[node.name]!.configuration_written = { state: 'refused', reason }
            issues.push(`${node.name}: configuration: refused: ${reason}`)
            deps.progress(node.name, 'configuration: refused', reason)
          } else {
            const done = result.value.files
            perNode[node.name]!.configuration_written = done
            deps.progress(node.name, 'configuration: took the genesis copy', done.map(f => `${f.path} ${f.state}${f.backup != null ? ` (backup ${f.backup})` : ''}`).join('; '))
          }
        }))
        for (const node of followers.filter(f => written.has(f.name))) drift.set(node.name, driftOf(await inspect(node)))
      }
    }
    let all = true
    for (const node of targets) {
      const files = (drift.get(node.name) ?? []).map(d => d.path)
      const error = unknown.get(node.name)
      perNode[node.name]!.configuration = { drift: files, synced: files.length === 0 && error == null, ...(error != null ? { error } : {}) }
      for (const path of files) issues.push(`${node.name}: configuration: ${path} differs from ${genesis.name}${request.force ? '' : ' (--force takes the genesis copy, keeping a backup)'}`)
      all &&= files.length === 0 && error == null
    }
    return all
  }
}
