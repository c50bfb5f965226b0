import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { startTestMesh, tempDir, waitAllOnline, type TestMesh } from '../helpers.js'

const NODES = ['aitbc', 'aitbc1', 'aitbc2']
const GIT_ENV = { ...process.env, GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.org', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.org' }

function git (cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim()
}

function commitUpstream (seed: string, file: string, content: string): string {
  writeFileSync(join(seed, file), content)
  git(seed, 'add', file)
  git(seed, 'commit', '-q', '-m', `change ${file}`)
  git(seed, 'push', '-q', 'origin', 'HEAD:main')
  return git(seed, 'rev-parse', 'HEAD')
}

describe('sync: each target syncs itself and reports', () => {
  let t: TestMesh
  const base = tempDir('aitbc-mesh-sync-')
  const upstream = join(base, 'upstream.git')
  const seed = join(base, 'seed')
  const repoOf = (node: string): string => join(base, `repo-${node}`)
  const envOf = (node: string): string => join(base, `etc-${node}`, 'node.env')

  beforeAll(async () => {
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', upstream])
    execFileSync('git', ['clone', '-q', upstream, seed], { env: GIT_ENV })
    commitUpstream(seed, 'README', 'first\n')
    for (const node of NODES) {
      execFileSync('git', ['clone', '-q', upstream, repoOf(node)], { env: GIT_ENV })
      mkdirSync(join(base, `etc-${node}`))
      writeFileSync(envOf(node), node === 'aitbc' ? 'CHAIN_ID=ait-mainnet\n' : 'CHAIN_ID=ait-mainnet\n')
    }
    t = await startTestMesh(3, {
      heights: [1000, 1000, 1000],
      extra: (i, _host, rpcUrl) => ({
        probes: { repo: repoOf(NODES[i]!), configFiles: [envOf(NODES[i]!)] },
        // Today's RPC refuses an unsigned POST /rpc/force-sync (422); catch-up is the oneshot
        // aitbc-blockchain-sync.service, which the stand-in's /stand-in/catch-up plays here.
        sync: { lagThreshold: 100, catchUp: { action: 'chain-sync' } },
        actions: { 'chain-sync': { run: [process.execPath, '-e', 'fetch(process.argv[1], { method: "POST" }).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))', `${rpcUrl}/stand-in/catch-up`] } }
      })
    })
    await waitAllOnline(t.mesh)
  })

  it('git: followers behind are fast-forwarded and end on the genesis HEAD', async () => {
    const head = commitUpstream(seed, 'VERSION', '2\n')
    const res = await t.mesh.cli('aitbc', ['sync', '--type', 'git', '--target', 'all', '--json'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(out.sync_result).toBe('success')
    expect(out.sync_details).toEqual({ blockchain_synced: null, mempool_synced: null, configuration_synced: null, git_synced: true })
    for (const node of NODES) {
      expect(out.nodes_status[node].sync.git).toMatchObject({ state: 'fast_forwarded', head_after: head })
      expect(git(repoOf(node), 'rev-parse', 'HEAD')).toBe(head)
    }
    // The sync time shows in status afterwards.
    const status = JSON.parse((await t.mesh.cli('aitbc', ['status', '--json'])).stdout)
    expect(typeof status.nodes_status.aitbc1.last_sync).toBe('number')
  })

  it('git: a dirty follower is refused without --force, and a diverged one is reset with --force, reporting the loss', async () => {
    writeFileSync(join(repoOf('aitbc1'), 'README'), 'local edit\n')
    const head = commitUpstream(seed, 'VERSION', '3\n')
    const refused = await t.mesh.cli('aitbc', ['sync', '--type', 'git', '--json'])
    expect(refused.code).toBe(1)
    const out = JSON.parse(refused.stdout)
    expect(out.nodes_status.aitbc1.sync.git).toMatchObject({ state: 'refused', reason: expect.stringContaining('dirty work tree: 1 changed file(s) (README)') })
    expect(out.nodes_status.aitbc2.sync.git.state).toBe('fast_forwarded')
    expect(readFileSync(join(repoOf('aitbc1'), 'README'), 'utf8')).toBe('local edit\n') // nothing lost

    // Also diverge: a local commit the upstream does not have.
    writeFileSync(join(repoOf('aitbc1'), 'LOCAL'), 'x\n')
    git(repoOf('aitbc1'), 'add', 'LOCAL')
    git(repoOf('aitbc1'), 'commit', '-q', '-m', 'local only commit')
    const forced = await t.mesh.cli('aitbc', ['sync', '--type', 'git', '--force'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.stderr).toMatch(/aitbc1: git: --force will drop \(commit \w+ local only commit; changes to README\)/)
    expect(forced.stdout).toMatch(/git: dropped commits: \w+ local only commit/)
    expect(git(repoOf('aitbc1'), 'rev-parse', 'HEAD')).toBe(head)
    expect(readFileSync(join(repoOf('aitbc1'), 'README'), 'utf8')).toBe('first\n')
  })

  it('blockchain: a follower lagging past the threshold runs its catch-up and is verified', async () => {
    // aitbc2 falls 300 blocks behind; its catch-up (its chain-sync action) brings it back.
    t.rpcs.get('aitbc2')!.state.height = 700
    t.rpcs.get('aitbc2')!.catchUpTo = 1000
    const res = await t.mesh.cli('aitbc', ['sync', '--type', 'blockchain', '--json', '--timeout', '20'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc2.sync.blockchain_catch_up.state).toBe('ok')
    expect(out.nodes_status.aitbc2.sync.blockchain).toMatchObject({ height: 1000, synced: true })
    expect(out.sync_details.blockchain_synced).toBe(true)
    expect(t.rpcs.get('aitbc2')!.state.height).toBe(1000)

    const mempool = JSON.parse((await t.mesh.cli('aitbc', ['sync', '--type', 'mempool', '--json'])).stdout)
    expect(mempool.sync_details.mempool_synced).toBe(true) // 10, 11, 12 within 10
  })

  it('configuration: drift is reported per file and node (to any node); --force from the genesis node takes the genesis copy with a backup', async () => {
    writeFileSync(envOf('aitbc1'), 'CHAIN_ID=ait-devnet\n')
    const drift = await t.mesh.cli('aitbc2', ['sync', '--type', 'configuration', '--json'])
    expect(drift.code).toBe(1)
    const out = JSON.parse(drift.stdout)
    expect(out.nodes_status.aitbc1.sync.configuration).toEqual({ drift: [envOf('aitbc1')], synced: false })
    expect(out.nodes_status.aitbc2.sync.configuration).toEqual({ drift: [], synced: true })
    expect(out.issues).toContainEqual(`aitbc1: configuration: ${envOf('aitbc1')} differs from aitbc (--force takes the genesis copy, keeping a backup)`)
    expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe('CHAIN_ID=ait-devnet\n')

    // Configuration contents go to, and are written for, the genesis node only.
    const byFollower = await t.mesh.cli('aitbc2', ['sync', '--type', 'configuration', '--force', '--json'])
    expect(byFollower.code).toBe(1)
    expect(JSON.parse(byFollower.stdout).issues).toContain('aitbc: configuration: cannot read the genesis copies: refused: configuration contents are sent only to the genesis node; aitbc2 (follower) is not it')
    expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe('CHAIN_ID=ait-devnet\n')

    const forced = await t.mesh.cli('aitbc', ['sync', '--type', 'configuration', '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe('CHAIN_ID=ait-mainnet\n')
    const backups = readdirSync(join(base, 'etc-aitbc1')).filter(f => f.startsWith('node.env.bak.'))
    expect(backups).toHaveLength(1)
    expect(readFileSync(join(base, 'etc-aitbc1', backups[0]!), 'utf8')).toBe('CHAIN_ID=ait-devnet\n')
    expect(JSON.parse(forced.stdout).sync_details.configuration_synced).toBe(true)
    expect(existsSync(`${envOf('aitbc1')}.aitbc-mesh.tmp`)).toBe(false)
  })

  it('refuses a sync without a type, with exit 2', async () => {
    const res = await t.mesh.cli('aitbc', ['op', '{"operation":"sync","target_node":"all"}'])
    expect(res.code).toBe(2)
    expect(res.stderr).toMatch(/"sync_type" is required/)
    const bad = await t.mesh.cli('aitbc', ['sync', '--type', 'everything'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/"sync_type": expected one of blockchain, mempool, configuration, git, all/)
  })
})
