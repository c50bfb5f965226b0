import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { startTestMesh, tempDir, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'

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
  const envOf = (node: string): string => join(base, `etc-${node}`, 'chain.env')
  const markers = join(base, 'markers')
  const markerOf = (what: string, node: string): string => join(markers, `${what}-${node}`)

  beforeAll(async () => {
    mkdirSync(markers)
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
      extra: i => {
        const node = NODES[i]!
        return {
          probes: { repo: repoOf(node), configFiles: [envOf(node)] },
          actions: {
            // Stands in for `systemctl start aitbc-blockchain-sync.service`: records that it ran (the
            // test then lets the stand-in RPC's height catch up), or fails while a flag file exists.
            'blockchain-sync': { run: ['sh', '-c', `test ! -e ${markerOf('fail-catch-up', node)} || { echo 'sync unit failed' >&2; exit 4; }; date >> ${markerOf('catch-up', node)}`] },
            // Stands in for the repository's update script: records the HEAD it ran at, or fails.
            'after-git': { run: ['sh', '-c', `git -C ${repoOf(node)} rev-parse HEAD >> ${markerOf('after-git', node)}; test ! -e ${markerOf('fail-after-git', node)} || { echo 'migration failed' >&2; exit 3; }`] }
          },
          // aitbc1 has no catch-up configured.
          sync: { lagThreshold: 100, afterGit: { action: 'after-git' }, ...(node !== 'aitbc1' ? { catchUp: { action: 'blockchain-sync' } } : {}) }
        }
      }
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
      expect(out.nodes_status[node].sync.git).toMatchObject({ state: 'fast_forwarded', head_after: head, after_git: { action: 'after-git', state: 'ok', exit_code: 0 } })
      expect(git(repoOf(node), 'rev-parse', 'HEAD')).toBe(head)
      // The update ran after the checkout moved, at the new HEAD.
      expect(readFileSync(markerOf('after-git', node), 'utf8')).toBe(`${head}\n`)
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

  it('git: an after-git action that fails makes that node\'s git sync fail with the reason; it runs only when HEAD moved', async () => {
    writeFileSync(markerOf('fail-after-git', 'aitbc2'), '')
    const runsBefore = (node: string): number => readFileSync(markerOf('after-git', node), 'utf8').trim().split('\n').length
    const before = runsBefore('aitbc2')
    const head = commitUpstream(seed, 'VERSION', '4\n')
    const res = await t.mesh.cli('aitbc', ['sync', '--type', 'git', '--json'])
    expect(res.code).toBe(1)
    const out = JSON.parse(res.stdout)
    expect(out.sync_result).toBe('failed')
    expect(out.sync_details.git_synced).toBe(false)
    expect(out.nodes_status.aitbc2.sync.git).toMatchObject({
      state: 'fast_forwarded',
      head_after: head,
      after_git: { action: 'after-git', state: 'failed', exit_code: 3, reason: 'exited with 3', output_tail: 'migration failed\n' }
    })
    expect(out.nodes_status.aitbc2.sync.git_synced).toBe(false)
    expect(out.nodes_status.aitbc1.sync).toMatchObject({ git: { state: 'fast_forwarded', after_git: { state: 'ok' } }, git_synced: true })
    expect(out.issues).toContain(`aitbc2: git: checked out ${head.slice(0, 12)}, but the after-git action after-git failed: exited with 3`)
    expect(out.recommendations).toContain('Once the cause is fixed, finish the update on aitbc2: aitbc-mesh coordinate after-git --target aitbc2 (a new git sync runs it only when HEAD moves).')
    expect(runsBefore('aitbc2')).toBe(before + 1)

    // Text output says the same; a sync that moves nothing runs no update.
    const text = await t.mesh.cli('aitbc', ['sync', '--type', 'git', '--target', 'aitbc2'])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/aitbc2:\n {2}git: up_to_date at \w{12}\n/)
    expect(runsBefore('aitbc2')).toBe(before + 1)
    rmSync(markerOf('fail-after-git', 'aitbc2'))
    const finished = await t.mesh.cli('aitbc', ['coordinate', 'after-git', '--target', 'aitbc2'])
    expect(finished.code, finished.stderr).toBe(0)
  })

  it('blockchain: a follower lagging past the threshold runs its catch-up action and is verified', async () => {
    // aitbc2 falls 300 blocks behind; its catch-up action (in place of starting
    // aitbc-blockchain-sync.service) runs, and the node then catches up while heights are re-read.
    t.rpcs.get('aitbc2')!.state.height = 700
    const running = t.mesh.cli('aitbc', ['sync', '--type', 'blockchain', '--json', '--timeout', '20'])
    await waitFor('the catch-up action on aitbc2', () => existsSync(markerOf('catch-up', 'aitbc2')), 15_000, 20)
    t.rpcs.get('aitbc2')!.state.height = 1000
    const res = await running
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc2.sync.blockchain_catch_up).toMatchObject({ state: 'ok', action: { action: 'blockchain-sync', state: 'ok', exit_code: 0 } })
    expect(out.nodes_status.aitbc1.sync.blockchain_catch_up).toBeUndefined() // not lagging: nothing run
    expect(existsSync(markerOf('catch-up', 'aitbc1'))).toBe(false)
    expect(out.nodes_status.aitbc2.sync.blockchain).toMatchObject({ height: 1000, synced: true })
    expect(out.sync_details.blockchain_synced).toBe(true)
    expect(t.rpcs.get('aitbc2')!.state.height).toBe(1000)

    const mempool = JSON.parse((await t.mesh.cli('aitbc', ['sync', '--type', 'mempool', '--json'])).stdout)
    expect(mempool.sync_details.mempool_synced).toBe(true) // 10, 11, 12 within 10
  })

  it('blockchain: a failed catch-up, and a node without one, are reported per node and the lag stays an issue', async () => {
    writeFileSync(markerOf('fail-catch-up', 'aitbc2'), '')
    t.rpcs.get('aitbc1')!.state.height = 600
    t.rpcs.get('aitbc2')!.state.height = 700
    try {
      const res = await t.mesh.cli('aitbc', ['sync', '--type', 'blockchain', '--json', '--no-verify'])
      expect(res.code).toBe(1)
      const out = JSON.parse(res.stdout)
      expect(out.nodes_status.aitbc2.sync.blockchain_catch_up).toMatchObject({ state: 'failed', reason: 'exited with 4', action: { exit_code: 4, output_tail: 'sync unit failed\n' } })
      expect(out.nodes_status.aitbc1.sync.blockchain_catch_up).toEqual({
        state: 'refused',
        reason: 'no sync.catchUp is configured on this node; for AITBC add the action blockchain-sync: { run: [systemctl, start, aitbc-blockchain-sync.service] } and sync.catchUp: { action: blockchain-sync }'
      })
      expect(out.sync_details.blockchain_synced).toBe(false)
      expect(out.issues).toEqual(expect.arrayContaining(['aitbc1: blockchain: 400 blocks behind (threshold 100)', 'aitbc2: blockchain: 300 blocks behind (threshold 100)']))
    } finally {
      rmSync(markerOf('fail-catch-up', 'aitbc2'))
      t.rpcs.get('aitbc1')!.state.height = 1000
      t.rpcs.get('aitbc2')!.state.height = 1000
    }
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
    const backups = readdirSync(join(base, 'etc-aitbc1')).filter(f => f.startsWith('chain.env.bak.'))
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

describe('configuration sync by key: shared keys follow the genesis node, identity and secrets stay on each node', () => {
  let t: TestMesh
  const base = tempDir('aitbc-mesh-sync-keys-')
  const etcOf = (node: string): string => join(base, `etc-${node}`)
  const envOf = (node: string): string => join(etcOf(node), 'blockchain.env')
  const jsonOf = (node: string): string => join(etcOf(node), 'chain.json')
  const GENESIS_SECRET = 'genesis-only-9d41c7e2'
  const GENESIS_P2P_ID = 'node-4b1f0e77genesis'
  const followerEnv = [
    '# AITBC blockchain settings',
    'NODE_ID=aitbc1',
    'CHAIN_ID=ait-devnet',
    'p2p_node_id=node-aitbc1-own',
    '',
    '# gossip',
    'gossip_backend=memory',
    'API_KEY_HASH_SECRET=follower-own-secret',
    'FOLLOWER_ONLY=kept',
    ''
  ].join('\n')

  beforeAll(async () => {
    for (const node of ['aitbc', 'aitbc1']) mkdirSync(etcOf(node))
    writeFileSync(envOf('aitbc'), [
      'NODE_ID=aitbc',
      'CHAIN_ID=ait-mainnet',
      `p2p_node_id=${GENESIS_P2P_ID}`,
      'gossip_backend=broadcast',
      'gossip_broadcast_url=redis://10.1.223.93:6379',
      `API_KEY_HASH_SECRET=${GENESIS_SECRET}`,
      ''
    ].join('\n'))
    writeFileSync(envOf('aitbc1'), followerEnv)
    writeFileSync(jsonOf('aitbc'), '{"chain":"ait-mainnet"}\n')
    writeFileSync(jsonOf('aitbc1'), '{"chain":"ait-devnet"}\n')
    t = await startTestMesh(2, {
      extra: i => {
        const node = i === 0 ? 'aitbc' : 'aitbc1'
        return { logLevel: 'trace', probes: { configFiles: [{ path: envOf(node), keys: 'env' }, jsonOf(node)] } }
      }
    })
    await waitAllOnline(t.mesh)
  })

  const logsOf = (node: string): string => readFileSync(join(t.mesh.node(node).dir, 'daemon.log'), 'utf8') + t.mesh.node(node).logLines.join('\n')

  it('drift lists the shared keys that differ, names the kept-local ones, and shows no value', async () => {
    const res = await t.mesh.cli('aitbc1', ['sync', '--type', 'configuration', '--json'])
    expect(res.code).toBe(1)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc1.sync.configuration).toEqual({
      drift: [envOf('aitbc1'), jsonOf('aitbc1')],
      synced: false,
      drift_keys: { [envOf('aitbc1')]: { differ: ['CHAIN_ID', 'gossip_backend'], missing: ['gossip_broadcast_url'] } },
      kept_local: { [envOf('aitbc1')]: ['NODE_ID', 'p2p_node_id', 'API_KEY_HASH_SECRET'] }
    })
    expect(out.issues).toContain(`aitbc1: configuration: ${envOf('aitbc1')}: keys CHAIN_ID, gossip_backend differ from aitbc; missing gossip_broadcast_url (--force merges the genesis values of these keys, keeping the local ones and a backup)`)
    expect(out.issues).toContain(`aitbc1: configuration: ${jsonOf('aitbc1')} differs from aitbc (--force takes the genesis copy, keeping a backup)`)
    const text = await t.mesh.cli('aitbc1', ['sync', '--type', 'configuration'])
    expect(text.stdout).toContain(`configuration: differs: ${envOf('aitbc1')} (keys CHAIN_ID, gossip_backend; missing gossip_broadcast_url), ${jsonOf('aitbc1')}`)
    expect(text.stdout).toContain(`configuration: ${envOf('aitbc1')}: kept local, not compared: NODE_ID, p2p_node_id, API_KEY_HASH_SECRET`)
    for (const output of [res.stdout, res.stderr, text.stdout, text.stderr]) {
      for (const value of [GENESIS_SECRET, GENESIS_P2P_ID, 'ait-mainnet', 'follower-own-secret']) expect(output).not.toContain(value)
    }
    expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe(followerEnv)
  })

  it('--force from the genesis node merges the shared keys, keeps identity, secrets and follower-only keys, and writes a backup', async () => {
    const forced = await t.mesh.cli('aitbc', ['sync', '--type', 'configuration', '--force'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.stderr).toMatch(new RegExp(`aitbc1: configuration: took the genesis copy \\(${envOf('aitbc1').replace(/[.]/g, '\\.')} written 3 key\\(s\\): CHAIN_ID, gossip_backend, gossip_broadcast_url \\(backup [^)]+\\); ${jsonOf('aitbc1').replace(/[.]/g, '\\.')} written \\(backup [^)]+\\)\\)`))
    expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe([
      '# AITBC blockchain settings',
      'NODE_ID=aitbc1',
      'CHAIN_ID=ait-mainnet',
      'p2p_node_id=node-aitbc1-own',
      '',
      '# gossip',
      'gossip_backend=broadcast',
      'API_KEY_HASH_SECRET=follower-own-secret',
      'FOLLOWER_ONLY=kept',
      'gossip_broadcast_url=redis://10.1.223.93:6379',
      ''
    ].join('\n'))
    expect(readFileSync(jsonOf('aitbc1'), 'utf8')).toBe('{"chain":"ait-mainnet"}\n') // a whole-file entry is copied whole
    const backups = readdirSync(etcOf('aitbc1')).filter(f => f.startsWith('blockchain.env.bak.'))
    expect(backups).toHaveLength(1)
    expect(readFileSync(join(etcOf('aitbc1'), backups[0]!), 'utf8')).toBe(followerEnv)
    expect(readdirSync(etcOf('aitbc1')).filter(f => f.endsWith('.aitbc-mesh.tmp'))).toEqual([])
    // The genesis node's own file is untouched.
    expect(readFileSync(envOf('aitbc'), 'utf8')).toContain(`API_KEY_HASH_SECRET=${GENESIS_SECRET}`)

    const after = await t.mesh.cli('aitbc', ['sync', '--type', 'configuration', '--json'])
    expect(after.code, after.stdout).toBe(0)
    expect(JSON.parse(after.stdout).nodes_status.aitbc1.sync.configuration).toMatchObject({ drift: [], synced: true })

    // The genesis node's secret and identity reached no output, no follower file and no log.
    const followerFiles = readdirSync(etcOf('aitbc1')).map(f => readFileSync(join(etcOf('aitbc1'), f), 'utf8')).join('\n')
    for (const text of [forced.stdout, forced.stderr, after.stdout, followerFiles, logsOf('aitbc1'), logsOf('aitbc')]) {
      expect(text).not.toContain(GENESIS_SECRET)
      expect(text).not.toContain(GENESIS_P2P_ID)
    }
    expect(logsOf('aitbc1')).toContain('"step":"config.write"') // the follower did log the step, at trace level, without values
  })
})
