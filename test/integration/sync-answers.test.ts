import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pbStream } from '@libp2p/utils'
import { beforeAll, describe, expect, it } from 'vitest'
import { OperationKind, OperationRequest, OperationResponse } from '../../protocols/operation.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { OPERATION_PROTOCOL } from '../../src/operations/operation-protocol.js'
import { startTestMesh, statusOfPeer, tempDir, waitFor } from '../helpers.js'
import { startHostilePeer } from '../hostile-peer.js'

const GIT_ENV = { ...process.env, GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.org', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.org' }
const HONEST = ['aitbc', 'aitbc1']
const HOSTILE = 'aitbc2'
const TEN_MB = 10 * 1024 * 1024

function git (cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim()
}

interface LogLine { level: string, event?: string, peer?: string, reason?: string, step?: string, detail?: string }

function logOf (mesh: LocalMesh, name: string, from = 0): LogLine[] {
  return mesh.node(name).logLines.slice(from).flatMap(line => {
    try {
      return [JSON.parse(line) as LogLine]
    } catch {
      return []
    }
  })
}

/** What the hostile peer answers to a sync step: the payload JSON, given the request's payload. */
type Answer = (payload: unknown) => string

describe('sync step answers from a hostile allowlisted peer are checked before use', () => {
  let mesh: LocalMesh
  const base = tempDir('aitbc-mesh-sync-answers-')
  const upstream = join(base, 'upstream.git')
  const seed = join(base, 'seed')
  const repoOf = (node: string): string => join(base, `repo-${node}`)
  // A file synced whole, and one synced by key.
  const envOf = (node: string): string => join(base, `etc-${node}`, 'chain.env')
  const keyedOf = (node: string): string => join(base, `etc-${node}`, 'blockchain.env')
  // A key long enough that matching it against `*A*A…*B` as a regular expression would hang the requester.
  const LONG_KEY = 'A'.repeat(200)
  const KEYED = `CHAIN_ID=ait-mainnet\ngossip_backend=broadcast\n${LONG_KEY}=1\n`
  const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')
  /** The hashes an honest node with the genesis copies answers, with `extra` over its by-key entry. */
  const honestInspect = (node: string, whole: string, extra: Record<string, unknown> = {}): string => JSON.stringify({
    files: [
      { path: envOf(node), sha256: sha256(whole) },
      {
        path: keyedOf(node),
        keys: 'env',
        key_hashes: [{ key: 'CHAIN_ID', sha256: sha256('ait-mainnet') }, { key: 'gossip_backend', sha256: sha256('broadcast') }, { key: LONG_KEY, sha256: sha256('1') }],
        kept_local: [],
        keep_local: ['NODE_ID'],
        ...extra
      }
    ]
  })
  let logStart = 0
  /** The hostile peer's answers, by step; a step without one is answered with an error. */
  let answers: Record<string, Answer> = {}
  let hostileHeight = 1000n
  const asked: Array<{ step: string, payload: unknown }> = []

  const validState = (extra: Record<string, unknown> = {}): string => JSON.stringify({
    head: 'a'.repeat(40), upstream: 'a'.repeat(40), upstream_ref: 'origin/main', ahead: 0, behind: 0, dirty_files: [], dirty_file_count: 0, local_commits: [], ...extra
  })
  const validApply = (extra: Record<string, unknown> = {}): string => JSON.stringify({
    state: 'up_to_date', reason: '', head_before: 'a'.repeat(40), head_after: 'a'.repeat(40), lost_commits: [], lost_files: [], ...extra
  })

  async function sync (args: string[]): Promise<{ code: number | null, out: Record<string, any>, stderr: string }> {
    const res = await mesh.cli('aitbc', ['sync', ...args, '--json'])
    return { code: res.code, out: JSON.parse(res.stdout), stderr: res.stderr }
  }

  beforeAll(async () => {
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', upstream])
    execFileSync('git', ['clone', '-q', upstream, seed], { env: GIT_ENV })
    writeFileSync(join(seed, 'README'), 'first\n')
    git(seed, 'add', 'README')
    git(seed, 'commit', '-q', '-m', 'first')
    git(seed, 'push', '-q', 'origin', 'HEAD:main')
    for (const node of [...HONEST, HOSTILE]) {
      execFileSync('git', ['clone', '-q', upstream, repoOf(node)], { env: GIT_ENV })
      mkdirSync(join(base, `etc-${node}`))
      writeFileSync(envOf(node), 'CHAIN_ID=ait-mainnet\n')
      writeFileSync(keyedOf(node), KEYED)
    }
    ;({ mesh } = await startTestMesh(3, {
      start: false,
      heights: [1000, 1000, 1000],
      extra: i => ({
        probes: { repo: repoOf(['aitbc', 'aitbc1', 'aitbc2'][i]!), configFiles: [envOf(['aitbc', 'aitbc1', 'aitbc2'][i]!), { path: keyedOf(['aitbc', 'aitbc1', 'aitbc2'][i]!), keys: 'env' }] },
        sync: { lagThreshold: 100, catchUp: { post: '/rpc/force-sync' } }
      })
    }))
    for (const name of HONEST) await mesh.start(name)
    await waitFor('aitbc and aitbc1 online to each other', async () =>
      await statusOfPeer(mesh, 'aitbc', 'aitbc1') === 'online' && await statusOfPeer(mesh, 'aitbc1', 'aitbc') === 'online', 15000)
    const hostile = await startHostilePeer(mesh, HOSTILE, HONEST)
    // Reports pass the requester's checks; sync steps get whatever the test sets.
    await hostile.libp2p.handle(OPERATION_PROTOCOL, async stream => {
      try {
        const pb = pbStream(stream, { maxDataLength: 64 * 1024 * 1024 })
        const request = await pb.read(OperationRequest)
        if (request.kind === OperationKind.SYNC) {
          const payload = request.payloadJson === '' ? null : JSON.parse(request.payloadJson)
          asked.push({ step: request.syncStep, payload })
          const answer = answers[request.syncStep]
          await pb.write({ requestId: request.requestId, error: answer == null ? `no answer set for ${request.syncStep}` : '', payloadJson: answer?.(payload) ?? '' }, OperationResponse)
        } else {
          await pb.write({
            requestId: request.requestId,
            error: '',
            report: { node: HOSTILE, role: 'follower', status: 'online', blockHeight: hostileHeight, mempoolSize: 12n, p2pConnections: 2, issues: [], checks: [], daemonUptimeMs: 60_000n, probedAtMs: BigInt(Date.now()), chains: [] }
          }, OperationResponse)
        }
        await stream.close()
      } catch (err) {
        // The requester resets a stream whose answer is over its limit.
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    })
    logStart = mesh.node('aitbc').logLines.length
  })

  /** The honest targets synced as if the hostile one were not there. */
  function honestGitSynced (out: Record<string, any>, head: string): void {
    for (const node of HONEST) {
      expect(['fast_forwarded', 'up_to_date']).toContain(out.nodes_status[node].sync.git.state)
      expect(out.nodes_status[node].sync.git.head_after).toBe(head)
      expect(out.nodes_status[node].sync.git_synced).toBe(true)
      expect(git(repoOf(node), 'rev-parse', 'HEAD')).toBe(head)
    }
  }

  it('git: an answer with a wrong type, a hash that is not hex, an oversized reason or a 10 MB frame fails that node with the reason; the others sync', async () => {
    writeFileSync(join(seed, 'VERSION'), '2\n')
    git(seed, 'add', 'VERSION')
    git(seed, 'commit', '-q', '-m', 'version 2')
    git(seed, 'push', '-q', 'origin', 'HEAD:main')
    const head = git(seed, 'rev-parse', 'HEAD')
    const cases: Array<[Answer, RegExp]> = [
      [() => validApply({ lost_commits: 'abc' }), /^invalid answer from aitbc2 to git\.apply: lost_commits: expected array, got "abc"$/],
      [() => validApply({ head_after: 'not-a-commit-hash' }), /^invalid answer from aitbc2 to git\.apply: head_after: not a commit hash \(40 or 64 lowercase hex digits\), got "not-a-commit-hash"$/],
      // Within the frame limit, over the reason's.
      [() => validApply({ state: 'refused', reason: 'r'.repeat(100_000) }), /^invalid answer from aitbc2 to git\.apply: reason: longer than 4096 characters, got a string of 100000 characters$/],
      // Over the frame limit: never read, let alone parsed.
      [() => validApply({ reason: 'r'.repeat(TEN_MB) }), /^bad answer from aitbc2 to git\.apply: .+/],
      // The same wrong hash again: refused again, but not logged again.
      [() => validApply({ head_after: 'Z'.repeat(40) }), /head_after: not a commit hash/],
      // The after-git action's result, with an exit code that is not a number.
      [() => validApply({ state: 'fast_forwarded', after_git: { action: 'after-git', state: 'ok', exit_code: 'three', duration_ms: 5, output_tail: '', reason: '', destructive: false, health_before: '', health_after: '' } }), /^invalid answer from aitbc2 to git\.apply: after_git\.exit_code: expected number, got "three"$/]
    ]
    for (const [answer, reason] of cases) {
      answers = { 'git.apply': answer }
      const { code, out } = await sync(['--type', 'git'])
      expect(code).toBe(1)
      expect(out.sync_result).toBe('failed')
      const entry = out.nodes_status[HOSTILE].sync.git
      expect(entry).toMatchObject({ state: 'failed', head_after: null, lost_commits: [], lost_files: [] })
      expect(entry.reason).toMatch(reason)
      expect(entry.reason.length).toBeLessThan(500)
      expect(out.nodes_status[HOSTILE].sync.git_synced).toBe(false)
      expect(out.issues).toContain(`${HOSTILE}: git: failed: ${entry.reason as string}`)
      honestGitSynced(out, head)
    }

    // --force: the plan (git.inspect) carries a count of 2^60, the result a list of numbers. The table output prints.
    answers = { 'git.inspect': () => validState({ ahead: 2 ** 60 }), 'git.apply': () => validApply({ state: 'reset', lost_files: [5] }) }
    const forced = await mesh.cli('aitbc', ['sync', '--type', 'git', '--force'])
    expect(forced.code).toBe(1)
    expect(forced.stderr).toContain(`  ${HOSTILE}: git: cannot list what --force will drop (invalid answer from aitbc2 to git.inspect: ahead: over ${Number.MAX_SAFE_INTEGER}, got number ${2 ** 60})`)
    expect(forced.stdout).toContain(`${HOSTILE}:\n  git: failed (invalid answer from aitbc2 to git.apply: lost_files[0]: expected string, got number 5)`)
    expect(forced.stdout).toMatch(/aitbc1:\n {2}git: up_to_date at [0-9a-f]{12}\n/)
    expect(forced.stdout).not.toMatch(/RangeError|TypeError|undefined/)
    honestGitSynced(JSON.parse((await mesh.cli('aitbc', ['sync', '--type', 'git', '--json', '--target', 'aitbc,aitbc1'])).stdout), head)
  })

  it('configuration: junk hashes fail that node with the reason and write nothing to it; a write answer for a path or key not sent is refused', async () => {
    const hostilePath = envOf(HOSTILE)
    const cases: Array<[Answer, RegExp]> = [
      [() => JSON.stringify({ files: [{ path: hostilePath, sha256: 'g'.repeat(64) }] }), /^invalid answer from aitbc2 to config\.inspect: files\[0\]\.sha256: not a SHA-256 digest \(64 lowercase hex digits\), got "g{64}"$/],
      [() => JSON.stringify({ files: { path: hostilePath } }), /^invalid answer from aitbc2 to config\.inspect: files: expected array, got an object$/],
      [() => JSON.stringify({ files: [{ path: 'p'.repeat(TEN_MB), sha256: null }] }), /^bad answer from aitbc2 to config\.inspect: .+/],
      [() => '{"files": [', /^aitbc2 answered config\.inspect with something that is not JSON$/],
      // By key: a value where its hash belongs, a regular expression where a keep-local pattern belongs.
      [() => honestInspect(HOSTILE, 'CHAIN_ID=ait-mainnet\n', { key_hashes: [{ key: 'CHAIN_ID', sha256: 'ait-mainnet' }] }), /^invalid answer from aitbc2 to config\.inspect: files\[1\]\.key_hashes\[0\]\.sha256: not a SHA-256 digest \(64 lowercase hex digits\), got "ait-mainnet"$/],
      [() => honestInspect(HOSTILE, 'CHAIN_ID=ait-mainnet\n', { keep_local: ['^(A+)+$'] }), /^invalid answer from aitbc2 to config\.inspect: files\[1\]\.keep_local\[0\]: not a key name or \* pattern, got "\^\(A\+\)\+\$"$/]
    ]
    for (const [answer, reason] of cases) {
      answers = { 'config.inspect': answer }
      asked.length = 0
      // --force: a node whose hashes cannot be had is not written to.
      const { code, out } = await sync(['--type', 'configuration', '--force'])
      expect(code).toBe(1)
      const entry = out.nodes_status[HOSTILE].sync.configuration
      expect(entry).toMatchObject({ drift: [], synced: false })
      expect(entry.error).toMatch(reason)
      expect(out.issues).toContain(`${HOSTILE}: configuration: ${entry.error as string}`)
      expect(asked.map(a => a.step)).toEqual(['config.inspect'])
      expect(out.nodes_status.aitbc1.sync.configuration).toEqual({ drift: [], synced: true })
      expect(out.nodes_status.aitbc.sync.configuration).toEqual({ drift: [], synced: true })
    }

    // A glob that is a pattern, and would take forever as a backtracking regular expression
    // against the genesis node's long key: matched at once, and the node is in sync.
    answers = { 'config.inspect': () => honestInspect(HOSTILE, 'CHAIN_ID=ait-mainnet\n', { keep_local: [`${'*A'.repeat(60)}*B`] }) }
    const glob = await sync(['--type', 'configuration'])
    expect(glob.code, JSON.stringify(glob.out.issues)).toBe(0)
    expect(glob.out.nodes_status[HOSTILE].sync.configuration).toEqual({ drift: [], synced: true })

    // Drift on both followers; the hostile one answers its write for a file it was not sent, then for a key it was not sent.
    writeFileSync(envOf('aitbc1'), 'CHAIN_ID=ait-devnet\n')
    writeFileSync(keyedOf('aitbc1'), KEYED.replace('broadcast', 'memory'))
    const hostileKeyed = keyedOf(HOSTILE)
    const writes: Array<[Answer, string]> = [
      [
        () => JSON.stringify({ files: [{ path: hostilePath, state: 'written' }, { path: '/etc/shadow', state: 'written' }, { path: hostileKeyed, state: 'written', keys: ['gossip_backend'] }] }),
        'invalid answer from aitbc2 to config.write: files[1].path: not a path that was asked for: "/etc/shadow"'
      ],
      [
        () => JSON.stringify({ files: [{ path: hostilePath, state: 'written' }, { path: hostileKeyed, state: 'written', keys: ['gossip_backend', 'NODE_ID'] }] }),
        'invalid answer from aitbc2 to config.write: files[1].keys[1]: not a key that was sent for this file: "NODE_ID"'
      ]
    ]
    for (const [write, notAsked] of writes) {
      answers = {
        'config.inspect': () => honestInspect(HOSTILE, 'CHAIN_ID=ait-devnet\n', { key_hashes: [{ key: 'CHAIN_ID', sha256: sha256('ait-mainnet') }, { key: 'gossip_backend', sha256: sha256('memory') }, { key: LONG_KEY, sha256: sha256('1') }] }),
        'config.write': write
      }
      asked.length = 0
      const { code, out } = await sync(['--type', 'configuration', '--force'])
      expect(code).toBe(1)
      // It was sent the genesis copy of its own whole file, and the one shared key that differs.
      expect(asked.find(a => a.step === 'config.write')?.payload).toEqual({
        files: [
          { path: hostilePath, content_base64: Buffer.from('CHAIN_ID=ait-mainnet\n').toString('base64') },
          { path: hostileKeyed, keys: 'env', set: [{ key: 'gossip_backend', value: 'broadcast' }] }
        ]
      })
      expect(out.nodes_status[HOSTILE].sync.configuration_written).toEqual({ error: notAsked })
      expect(out.issues).toContain(`${HOSTILE}: configuration: not written: ${notAsked}`)
      expect(out.nodes_status[HOSTILE].sync.configuration).toEqual({
        drift: [hostilePath, hostileKeyed],
        synced: false,
        drift_keys: { [hostileKeyed]: { differ: ['gossip_backend'], missing: [] } }
      })
      // The honest follower took the genesis copy, and the genesis value of the shared key.
      expect(out.nodes_status.aitbc1.sync.configuration).toEqual({ drift: [], synced: true })
      expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe('CHAIN_ID=ait-mainnet\n')
      expect(readFileSync(keyedOf('aitbc1'), 'utf8')).toBe(KEYED)
      writeFileSync(envOf('aitbc1'), 'CHAIN_ID=ait-devnet\n')
      writeFileSync(keyedOf('aitbc1'), KEYED.replace('broadcast', 'memory'))
    }
    writeFileSync(envOf('aitbc1'), 'CHAIN_ID=ait-mainnet\n')
    writeFileSync(keyedOf('aitbc1'), KEYED)
  })

  it('blockchain: a catch-up answer of the wrong type fails that node with the reason', async () => {
    hostileHeight = 700n
    answers = { 'blockchain.catch_up': () => JSON.stringify({ state: 'ok', reason: 12 }) }
    const { code, out } = await sync(['--type', 'blockchain', '--no-verify'])
    hostileHeight = 1000n
    expect(code).toBe(1)
    const reason = 'invalid answer from aitbc2 to blockchain.catch_up: reason: expected string, got number 12'
    expect(out.nodes_status[HOSTILE].sync.blockchain_catch_up).toEqual({ state: 'failed', reason })
    expect(out.issues).toContain(`${HOSTILE}: blockchain: catch-up failed: ${reason}`)
    expect(out.nodes_status.aitbc1.sync.blockchain).toMatchObject({ height: 1000, synced: true })
  })

  it('the requester keeps serving, and logged one warn line per reason', async () => {
    const status = await mesh.cli('aitbc', ['status', '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect(Object.keys(JSON.parse(status.stdout).nodes_status).sort()).toEqual(['aitbc', 'aitbc1', 'aitbc2'])
    expect(await statusOfPeer(mesh, 'aitbc', 'aitbc1')).toBe('online')

    const rejected = logOf(mesh, 'aitbc', logStart).filter(l => l.event === 'sync_answer_rejected')
    expect(rejected.every(l => l.level === 'warn' && l.peer === HOSTILE)).toBe(true)
    expect(rejected.map(l => l.reason).sort()).toEqual([
      'blockchain.catch_up reason: expected string',
      'config.inspect (answer): unreadable',
      'config.inspect files: expected array',
      'config.inspect files[].keep_local[]: not a key name or * pattern',
      'config.inspect files[].key_hashes[].sha256: not a SHA-256 digest (64 lowercase hex digits)',
      'config.inspect files[].sha256: not a SHA-256 digest (64 lowercase hex digits)',
      'config.write files[].keys[]: not a key that was sent',
      'config.write files[].path: not a path that was asked for',
      'git.apply (answer): unreadable',
      'git.apply after_git.exit_code: expected number',
      'git.apply head_after: not a commit hash (40 or 64 lowercase hex digits)',
      'git.apply lost_commits: expected array',
      'git.apply lost_files[]: expected string',
      'git.apply reason: longer than 4096 characters',
      'git.inspect ahead: over 9007199254740991'
    ])
    expect(rejected.find(l => l.reason === 'git.apply lost_commits: expected array')).toMatchObject({ step: 'git.apply', detail: 'lost_commits: expected array, got "abc"' })
    // Nothing of a peer's junk swells a line.
    for (const line of mesh.node('aitbc').logLines.slice(logStart)) expect(line.length).toBeLessThan(4096)
    // This node's own answers passed the same checks.
    expect(logOf(mesh, 'aitbc', logStart).filter(l => l.event === 'sync_answer_invalid')).toEqual([])
  })
})
