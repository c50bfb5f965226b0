import { allNodes, type MeshConfig, type NodeEntry } from '../../config/config.js'
import { SYNC_VERIFY_POLL_MS } from '../../constants.js'
import { errorMessage } from '../../errors.js'
import type { NodeReport } from '../report.js'
import type { OperationRequest } from '../request.js'
import { basename } from 'node:path'
import type { GitApplyAnswer, StepAnswers, StepRefusal } from './answers.js'
import { isEnvHashes, keptLocal, type FileHash, type InspectedFile, type WriteFile, type WriteResult } from './config-files.js'
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
  recommendations: string[]
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
  const recommendations: string[] = []
  const details: Record<SyncKind, boolean | null> = { blockchain: null, mempool: null, configuration: null, git: null }
  const deadline = Date.now() + request.timeout * 1000
  let reports = new Map((await Promise.all(targets.map(async t => [t.name, await deps.report(t)] as const))))

  for (const kind of kinds) {
    if (kind === 'git') details.git = await syncGit()
    else if (kind === 'blockchain') details.blockchain = await syncBlockchain()
    else if (kind === 'mempool') details.mempool = syncMempool()
    else details.configuration = await syncConfiguration()
  }
  return { perNode, reports, details, issues, recommendations }

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
      const entry: GitApplyAnswer = !result.ok ? { ...none, state: 'failed', reason: result.error } : { ...none, ...result.value }
      perNode[node.name]!.git = entry
      deps.progress(node.name, `git: ${entry.state}`, entry.reason !== '' ? entry.reason : undefined)
      if (entry.after_git != null) deps.progress(node.name, `git: after-git ${entry.after_git.action} ${entry.after_git.state}`, entry.after_git.reason !== '' ? entry.after_git.reason : undefined)
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
      const after = entry.after_git
      const updated = after == null || after.state === 'ok'
      const done = ['up_to_date', 'fast_forwarded', 'reset'].includes(entry.state) && updated
      const equal = !request.verify || (reference != null && entry.head_after === reference)
      if (after != null && !updated) {
        issues.push(`${node.name}: git: checked out ${entry.head_after?.slice(0, 12) ?? '?'}, but the after-git action ${after.action} ${after.state}: ${after.reason}`)
        recommendations.push(`Once the cause is fixed, finish the update on ${node.name}: aitbc-mesh coordinate ${after.action} --target ${node.name} (a new git sync runs it only when HEAD moves).`)
      } else if (!done) issues.push(`${node.name}: git: ${entry.state}: ${entry.reason}`)
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
    const inspected = new Map<string, InspectedFile[]>()
    // Why a node's files could not be compared (its hashes could not be had), by node name.
    const unknown = new Map<string, string>()
    const inspect = async (node: NodeEntry): Promise<InspectedFile[] | null> => {
      const r = await attempt(async () => (await expectResult(deps.step(node, 'config.inspect', null, false))).files)
      if (!r.ok) {
        issues.push(`${node.name}: configuration: ${r.error}`)
        unknown.set(node.name, r.error)
        inspected.delete(node.name)
        return null
      }
      unknown.delete(node.name)
      inspected.set(node.name, r.value)
      return r.value
    }
    const reference = await inspect(genesis)
    if (reference == null) return false
    // Files are matched by file name (each node lists its own paths; on real hosts they are the same).
    // A node whose hashes are unknown has no drift to repair: nothing is written to it.
    const driftOf = (files: InspectedFile[] | null): FileDrift[] => files == null ? [] : reference.flatMap(ref => {
      const name = basename(ref.path)
      const mine = files.find(f => basename(f.path) === name)
      const path = mine?.path ?? ref.path
      if (mine == null && isEnvHashes(ref)) return [{ name, path, problem: 'not in this node\'s probes.configFiles' }]
      if (mine == null || (!isEnvHashes(ref) && !isEnvHashes(mine))) return mine?.sha256 === (ref as FileHash).sha256 ? [] : [{ name, path }]
      if (!isEnvHashes(ref) || !isEnvHashes(mine)) {
        const how = (f: InspectedFile): string => isEnvHashes(f) ? 'by key (keys: env)' : 'whole'
        return [{ name, path, problem: `listed ${how(ref)} on ${genesis.name} but ${how(mine)} here; list it the same way on every node` }]
      }
      if (ref.error != null || mine.error != null) {
        if (ref.error === 'missing' && mine.error === 'missing') return []
        if (ref.error != null) return [{ name, path, problem: `the genesis copy cannot be read: ${ref.error}` }]
        if (mine.error !== 'missing') return [{ name, path, problem: `cannot be read here: ${mine.error ?? ''}` }]
      }
      const here = new Map(mine.key_hashes.map(k => [k.key, k.sha256]))
      const shared = ref.key_hashes.filter(k => !keptLocal(k.key, mine.keep_local))
      const keys = {
        differ: shared.filter(k => here.has(k.key) && here.get(k.key) !== k.sha256).map(k => k.key),
        missing: shared.filter(k => !here.has(k.key)).map(k => k.key)
      }
      return keys.differ.length + keys.missing.length === 0 ? [] : [{ name, path, keys }]
    })
    const followers = targets.filter(t => t.name !== genesis.name)
    const drift = new Map(await Promise.all(followers.map(async t => [t.name, driftOf(await inspect(t))] as const)))
    if (request.force && [...drift.values()].some(d => d.some(f => f.problem == null))) {
      const read = await attempt(async () => (await expectResult(deps.step(genesis, 'config.read', null, false))).files)
      if (!read.ok) {
        issues.push(`${genesis.name}: configuration: cannot read the genesis copies: ${read.error}`)
        deps.progress(genesis.name, read.error.startsWith('refused: ') ? 'configuration: refused' : 'configuration: cannot read', read.error.replace(/^refused: /, ''))
      } else {
        const written = new Set<string>()
        const notCopied = new Set<string>()
        await Promise.all(followers.map(async node => {
          // Only what differs crosses the wire: whole files that differ, and the shared keys that differ.
          const files = (drift.get(node.name) ?? []).flatMap((d): WriteFile[] => {
            const source = read.value.find(f => basename(f.path) === d.name)
            if (d.problem != null || source == null) return []
            if (d.keys == null) return 'content_base64' in source && source.content_base64 != null ? [{ path: d.path, content_base64: source.content_base64 }] : []
            if (!('values' in source)) return []
            for (const { key, reason } of source.skipped) {
              if ([...d.keys.differ, ...d.keys.missing].includes(key)) notCopied.add(`${genesis.name}: configuration: ${source.path}: ${key} not copied: ${reason}`)
            }
            const wanted = new Set([...d.keys.differ, ...d.keys.missing])
            const set = source.values.filter(v => wanted.has(v.key))
            return set.length > 0 ? [{ path: d.path, keys: 'env', set }] : []
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
            deps.progress(node.name, 'configuration: took the genesis copy', done.map(describeWrite).join('; '))
            for (const f of done) {
              if (f.state === 'refused' || f.state === 'failed') issues.push(`${node.name}: configuration: ${f.path}: not written: ${f.reason ?? f.state}`)
            }
          }
        }))
        issues.push(...notCopied)
        for (const node of followers.filter(f => written.has(f.name))) drift.set(node.name, driftOf(await inspect(node)))
      }
    }
    let all = true
    for (const node of targets) {
      const files = drift.get(node.name) ?? []
      const driftKeys = Object.fromEntries(files.filter(d => d.keys != null).map(d => [d.path, d.keys!]))
      const keptHere = Object.fromEntries((inspected.get(node.name) ?? []).filter(isEnvHashes).filter(f => f.kept_local.length > 0).map(f => [f.path, f.kept_local]))
      const error = unknown.get(node.name)
      perNode[node.name]!.configuration = {
        drift: files.map(d => d.path),
        synced: files.length === 0 && error == null,
        ...(Object.keys(driftKeys).length > 0 ? { drift_keys: driftKeys } : {}),
        ...(Object.keys(keptHere).length > 0 ? { kept_local: keptHere } : {}),
        ...(error != null ? { error } : {})
      }
      const fix = request.force ? '' : ' (--force takes the genesis copy, keeping a backup)'
      for (const d of files) {
        if (d.problem != null) issues.push(`${node.name}: configuration: ${d.path}: ${d.problem}`)
        else if (d.keys == null) issues.push(`${node.name}: configuration: ${d.path} differs from ${genesis.name}${fix}`)
        else {
          const parts = [...(d.keys.differ.length > 0 ? [`keys ${d.keys.differ.join(', ')} differ from ${genesis.name}`] : []), ...(d.keys.missing.length > 0 ? [`missing ${d.keys.missing.join(', ')}`] : [])]
          issues.push(`${node.name}: configuration: ${d.path}: ${parts.join('; ')}${request.force ? '' : ' (--force merges the genesis values of these keys, keeping the local ones and a backup)'}`)
        }
      }
      all &&= files.length === 0 && error == null
    }
    return all
  }
}

/** A configured file that differs from the genesis copy on a node. */
interface FileDrift {
  /** The file name, which matches files across nodes. */
  name: string
  /** The node's own path of it. */
  path: string
  /** For a file synced by key: the shared keys that differ, or that the node lacks. */
  keys?: { differ: string[], missing: string[] }
  /** Why it cannot be compared or synced as configured. */
  problem?: string
}

function describeWrite (f: WriteResult): string {
  const keys = f.keys != null ? ` ${f.keys.length} key(s): ${f.keys.join(', ')}` : ''
  const refused = f.refused_keys != null ? `, kept local: ${f.refused_keys.join(', ')}` : ''
  return `${f.path} ${f.state}${keys}${refused}${f.backup != null ? ` (backup ${f.backup})` : ''}${f.reason != null ? ` (${f.reason})` : ''}`
}
