import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { ConfigFileSpec, MeshConfig, NodeEntry } from '../../src/config/config.js'
import { DEFAULT_KEEP_LOCAL_KEYS } from '../../src/constants.js'
import { hashFiles, keptLocal, mergeEnv, parseEnv, readFiles, writeFiles } from '../../src/operations/sync/config-files.js'
import { runSync } from '../../src/operations/sync/sync-operation.js'
import { runSyncStep } from '../../src/operations/sync/steps.js'
import type { NodeReport } from '../../src/operations/report.js'
import type { OperationRequest } from '../../src/operations/request.js'

const dirs: string[] = []
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })
function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-config-sync-'))
  dirs.push(dir)
  return dir
}

const KEEP = [...DEFAULT_KEEP_LOCAL_KEYS]
const GENESIS_SECRET = 'genesis-secret-7f3a9c'

describe('env files: parse, keep-local patterns, merge', () => {
  it('reads KEY=VALUE lines, leaves comments and other lines alone, and a repeated key counts with its last value', () => {
    const { assignments } = parseEnv('# comment\nexport A = 1 \n\nB=two words\nnot an assignment\nA=3\nC="quoted # not a comment"\nD=first \\\nsecond\n')
    expect(assignments.map(a => [a.key, a.value, a.multiline])).toEqual([
      ['A', '1', false], ['B', 'two words', false], ['A', '3', false], ['C', '"quoted # not a comment"', false], ['D', 'first \\\nsecond', true]
    ])
  })

  it('matches keep-local names and globs ignoring case', () => {
    for (const key of ['NODE_ID', 'node_id', 'p2p_node_id', 'P2P_NODE_ID', 'proposer_id', 'BLOCKCHAIN_MODE', 'default_peer_rpc_url', 'API_KEY_HASH_SECRET', 'db_password', 'keystore_path', 'ADMIN_TOKEN', 'HARDWARE_PROFILE']) {
      expect(keptLocal(key, KEEP), key).toBe(true)
    }
    for (const key of ['CHAIN_ID', 'gossip_backend', 'gossip_broadcast_url', 'p2p_peers', 'NODE_IDS', 'MY_NODE_ID']) {
      expect(keptLocal(key, KEEP), key).toBe(false)
    }
    // Pattern characters other than * are literal.
    expect(keptLocal('AxB', ['A.B'])).toBe(false)
  })

  it('merges the given keys in place, keeping comments, order, spacing, CRLF and the keys not named; new keys go at the end', () => {
    const before = '# AITBC blockchain\r\nexport CHAIN_ID = ait-devnet\r\nNODE_ID=follower\r\n\r\n# gossip\r\ngossip_backend=memory\r\n'
    const after = mergeEnv(before, new Map([['CHAIN_ID', 'ait-mainnet'], ['gossip_backend', 'broadcast'], ['NEW_KEY', 'x']]))
    expect(after).toBe('# AITBC blockchain\r\nexport CHAIN_ID = ait-mainnet\r\nNODE_ID=follower\r\n\r\n# gossip\r\ngossip_backend=broadcast\r\nNEW_KEY=x\n')
    expect(mergeEnv('A=1', new Map([['B', '2']]))).toBe('A=1\nB=2\n')
    expect(mergeEnv('', new Map([['B', '2']]))).toBe('B=2\n')
    expect(mergeEnv('A=1\nX=multi \\\nline\nZ=9\n', new Map([['X', 'one']]))).toBe('A=1\nX=one\nZ=9\n')
    expect(mergeEnv('A=1\nA=2\n', new Map([['A', '3']]))).toBe('A=3\nA=3\n')
  })
})

describe('config files on one node', () => {
  const dir = tempDir()
  const env = join(dir, 'blockchain.env')
  const whole = join(dir, 'chain.json')
  const specs: ConfigFileSpec[] = [{ path: env, keys: 'env', keepLocal: [...KEEP, 'LOCAL_ONLY'] }, { path: whole }]

  it('hashes only shared keys, names the kept-local ones, and reads only shared values', () => {
    writeFileSync(env, `CHAIN_ID=ait-mainnet\nNODE_ID=aitbc\nAPI_KEY_HASH_SECRET=${GENESIS_SECRET}\nlocal_only=1\nX=a \\\nb\n`)
    writeFileSync(whole, '{}\n')
    const [hashes, wholeHash] = hashFiles(specs)
    expect(hashes).toMatchObject({ path: env, keys: 'env', kept_local: ['NODE_ID', 'API_KEY_HASH_SECRET', 'local_only'] })
    expect((hashes as { key_hashes: Array<{ key: string }> }).key_hashes.map(k => k.key)).toEqual(['CHAIN_ID', 'X'])
    expect(wholeHash).toMatchObject({ path: whole, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) })
    const read = JSON.stringify(readFiles(specs))
    expect(read).not.toContain(GENESIS_SECRET)
    expect(read).not.toContain('NODE_ID')
    expect(readFiles(specs)[0]).toEqual({ path: env, keys: 'env', values: [{ key: 'CHAIN_ID', value: 'ait-mainnet' }], skipped: [{ key: 'X', reason: 'a value continued over several lines is not synced' }] })
    expect(hashFiles([{ path: join(dir, 'absent.env'), keys: 'env', keepLocal: KEEP }])[0]).toMatchObject({ key_hashes: [], error: 'missing' })
  })

  it('writes keys into an env file only as listed here, never a kept-local key, with a backup, keeping the mode', () => {
    writeFileSync(env, '# shared\nCHAIN_ID=ait-devnet\nNODE_ID=aitbc1\n')
    chmodSync(env, 0o600)
    const now = new Date('2026-01-02T03:04:05.678Z')
    const results = writeFiles([{ path: env, keys: 'env', set: [{ key: 'CHAIN_ID', value: 'ait-mainnet' }, { key: 'node_id', value: 'aitbc' }] }], specs, now)
    expect(results).toEqual([{ path: env, state: 'written', keys: ['CHAIN_ID'], refused_keys: ['node_id'], backup: `${env}.bak.20260102T030405Z` }])
    expect(readFileSync(env, 'utf8')).toBe('# shared\nCHAIN_ID=ait-mainnet\nNODE_ID=aitbc1\n')
    expect(readFileSync(`${env}.bak.20260102T030405Z`, 'utf8')).toBe('# shared\nCHAIN_ID=ait-devnet\nNODE_ID=aitbc1\n')
    expect(statSync(env).mode & 0o777).toBe(0o600)
    // The same keys again change nothing and leave no further backup.
    expect(writeFiles([{ path: env, keys: 'env', set: [{ key: 'CHAIN_ID', value: 'ait-mainnet' }] }], specs, new Date())).toEqual([{ path: env, state: 'unchanged', keys: ['CHAIN_ID'] }])
    expect(writeFiles([{ path: env, keys: 'env', set: [{ key: 'NODE_ID', value: 'aitbc' }] }], specs)).toEqual([{ path: env, state: 'refused', refused_keys: ['NODE_ID'], reason: 'every key named is kept local here' }])
    expect(readdirSync(dir).filter(f => f.startsWith('blockchain.env.bak.'))).toHaveLength(1)
  })

  it('refuses a whole copy of a file synced by key, keys for a file synced whole, and files not configured here', () => {
    const content = Buffer.from('NODE_ID=aitbc\n').toString('base64')
    expect(writeFiles([{ path: env, content_base64: content }], specs)[0]).toMatchObject({ state: 'refused', reason: expect.stringContaining('synced by key here') })
    expect(writeFiles([{ path: whole, keys: 'env', set: [{ key: 'A', value: '1' }] }], specs)[0]).toMatchObject({ state: 'refused', reason: expect.stringContaining('synced whole here') })
    expect(writeFiles([{ path: join(dir, 'other.env'), keys: 'env', set: [{ key: 'A', value: '1' }] }], specs)[0]).toMatchObject({ state: 'refused', reason: 'not one of this node\'s probes.configFiles' })
    expect(readFileSync(env, 'utf8')).toBe('# shared\nCHAIN_ID=ait-mainnet\nNODE_ID=aitbc1\n')
  })

  it('config.write refuses a value that would add lines, or a key that is not a key name', async () => {
    const config = { probes: { configFiles: specs }, sync: {} } as unknown as MeshConfig
    const ctx = { config, force: true, timeoutMs: 1000, runAction: async () => { throw new Error('no action') }, markSynced: () => {} }
    await expect(runSyncStep('config.write', { files: [{ path: env, keys: 'env', set: [{ key: 'CHAIN_ID', value: 'x\nNODE_ID=evil' }] }] }, ctx)).rejects.toThrow(/expected a value on one line/)
    await expect(runSyncStep('config.write', { files: [{ path: env, keys: 'env', set: [{ key: 'NODE_ID=evil\nA', value: 'x' }] }] }, ctx)).rejects.toThrow(/expected a key name/)
    expect(readFileSync(env, 'utf8')).toBe('# shared\nCHAIN_ID=ait-mainnet\nNODE_ID=aitbc1\n')
  })
})

describe('configuration sync across nodes: what crosses the wire', () => {
  /** Two nodes' files in two folders; each node's steps run on its own config, every payload recorded. */
  function setup (genesisText: string, followerText: string, followerSpec: Partial<ConfigFileSpec> = { keys: 'env' }): { wire: Array<{ node: string, step: string, payload: unknown, answer: unknown }>, run: (force: boolean) => ReturnType<typeof runSync>, followerFile: string } {
    const dirs = { aitbc: tempDir(), aitbc1: tempDir() }
    writeFileSync(join(dirs.aitbc, 'blockchain.env'), genesisText)
    writeFileSync(join(dirs.aitbc1, 'blockchain.env'), followerText)
    const configOf = (node: 'aitbc' | 'aitbc1', spec: Partial<ConfigFileSpec>): MeshConfig => ({
      node: { name: node, role: node === 'aitbc' ? 'genesis' : 'follower' },
      peers: [],
      probes: { configFiles: [{ path: join(dirs[node], 'blockchain.env'), ...(spec.keys === 'env' ? { keys: 'env', keepLocal: KEEP } : {}) }] },
      sync: { lagThreshold: 100, mempoolTolerance: 10, forceFrom: ['genesis', 'self'] }
    }) as unknown as MeshConfig
    const configs = { aitbc: configOf('aitbc', { keys: 'env' }), aitbc1: configOf('aitbc1', followerSpec) }
    const wire: Array<{ node: string, step: string, payload: unknown, answer: unknown }> = []
    const nodes: NodeEntry[] = [{ name: 'aitbc', role: 'genesis' }, { name: 'aitbc1', role: 'follower' }]
    const meshConfig = { ...configs.aitbc, peers: [nodes[1]] } as unknown as MeshConfig
    const run = async (force: boolean): ReturnType<typeof runSync> => await runSync({
      config: meshConfig,
      step: async (node, step, payload, f) => {
        const answer = JSON.parse(JSON.stringify(await runSyncStep(step, payload, { config: configs[node.name as 'aitbc' | 'aitbc1'], force: f, timeoutMs: 5000, runAction: async () => { throw new Error('no action') }, markSynced: () => {} })))
        wire.push({ node: node.name, step, payload, answer })
        return answer
      },
      report: async node => ({ node: node.name, status: 'online' }) as unknown as NodeReport,
      progress: () => {}
    }, { operation: 'sync', target_node: 'all', sync_type: 'configuration', force, verify: true, timeout: 10 } as unknown as OperationRequest, nodes)
    return { wire, run, followerFile: join(dirs.aitbc1, 'blockchain.env') }
  }

  it('drift names shared keys only; a forced sync sends only the differing shared keys and keeps the follower\'s own', async () => {
    const { wire, run, followerFile } = setup(
      `# genesis\nCHAIN_ID=ait-mainnet\nNODE_ID=aitbc\np2p_node_id=node-genesis\nAPI_KEY_HASH_SECRET=${GENESIS_SECRET}\ngossip_backend=broadcast\nSAME=1\n`,
      '# follower\nNODE_ID=aitbc1\nCHAIN_ID=ait-devnet\np2p_node_id=node-follower\nAPI_KEY_HASH_SECRET=follower-secret\nSAME=1\nFOLLOWER_ONLY=yes\n'
    )
    const drift = await run(false)
    expect(drift.perNode.aitbc1!.configuration).toEqual({
      drift: [followerFile],
      synced: false,
      drift_keys: { [followerFile]: { differ: ['CHAIN_ID'], missing: ['gossip_backend'] } },
      kept_local: { [followerFile]: ['NODE_ID', 'p2p_node_id', 'API_KEY_HASH_SECRET'] }
    })
    expect(drift.issues).toContain(`aitbc1: configuration: ${followerFile}: keys CHAIN_ID differ from aitbc; missing gossip_backend (--force merges the genesis values of these keys, keeping the local ones and a backup)`)
    // Hashes only: no value, and nothing of a kept-local key beyond its name.
    expect(wire.map(w => w.step)).toEqual(['config.inspect', 'config.inspect'])
    for (const text of [JSON.stringify(wire), JSON.stringify(drift)]) {
      for (const value of [GENESIS_SECRET, 'follower-secret', 'node-genesis', 'node-follower', 'ait-mainnet', 'ait-devnet', 'broadcast']) expect(text).not.toContain(value)
    }

    wire.length = 0
    const forced = await run(true)
    expect(forced.details.configuration).toBe(true)
    const write = wire.find(w => w.step === 'config.write')!
    expect(write.node).toBe('aitbc1')
    expect(write.payload).toEqual({ files: [{ path: followerFile, keys: 'env', set: [{ key: 'CHAIN_ID', value: 'ait-mainnet' }, { key: 'gossip_backend', value: 'broadcast' }] }] })
    // The genesis node's read (to itself) and what went to the follower: never a kept-local value.
    for (const w of wire) {
      expect(JSON.stringify(w)).not.toContain(GENESIS_SECRET)
      expect(JSON.stringify(w)).not.toContain('node-genesis')
    }
    expect(readFileSync(followerFile, 'utf8')).toBe('# follower\nNODE_ID=aitbc1\nCHAIN_ID=ait-mainnet\np2p_node_id=node-follower\nAPI_KEY_HASH_SECRET=follower-secret\nSAME=1\nFOLLOWER_ONLY=yes\ngossip_backend=broadcast\n')
    expect(forced.perNode.aitbc1!.configuration).toMatchObject({ drift: [], synced: true })
  })

  it('a file listed whole on the follower but by key on the genesis node is reported, and nothing is sent or written', async () => {
    const { wire, run, followerFile } = setup(`CHAIN_ID=ait-mainnet\nAPI_KEY_HASH_SECRET=${GENESIS_SECRET}\n`, 'CHAIN_ID=ait-devnet\n', {})
    const forced = await run(true)
    expect(forced.perNode.aitbc1!.configuration).toMatchObject({ drift: [followerFile], synced: false })
    expect(forced.issues).toContain(`aitbc1: configuration: ${followerFile}: listed by key (keys: env) on aitbc but whole here; list it the same way on every node`)
    expect(wire.map(w => w.step)).toEqual(['config.inspect', 'config.inspect'])
    expect(readFileSync(followerFile, 'utf8')).toBe('CHAIN_ID=ait-devnet\n')
  })
})
