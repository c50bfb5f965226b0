import { execFileSync } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pbStream } from '@libp2p/utils'
import { beforeAll, describe, expect, it } from 'vitest'
import { OperationKind, OperationRequest, OperationResponse } from '../../protocols/operation.js'
import { OPERATION_PROTOCOL } from '../../src/operations/operation-protocol.js'
import { OPERATION_STREAM_MAX_MESSAGE_BYTES } from '../../src/constants.js'
import { peersOf, startTestMesh, tempDir, waitFor, type TestMesh } from '../helpers.js'
import { startHostilePeer, type HostilePeer } from '../hostile-peer.js'

// aitbc is the genesis node, aitbc1 and aitbc2 followers; aitbc3 is a follower whose allowlisted
// identity is held by the hostile peer, which sends raw operation requests.
const DAEMONS = ['aitbc', 'aitbc1', 'aitbc2']
const HOSTILE = 'aitbc3'
const ALL = [...DAEMONS, HOSTILE]
const GIT_ENV = { ...process.env, GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.org', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.org' }

function git (cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim()
}

describe('authority: the target decides from its own config who may write its configuration, read its files and force', () => {
  let t: TestMesh
  let hostile: HostilePeer
  const base = tempDir('aitbc-mesh-authority-')
  const markers = join(base, 'markers')
  const envOf = (node: string): string => join(base, `etc-${node}`, 'chain.env')
  const markerOf = (action: string, node: string): string => join(markers, `${action}-${node}`)
  const repo = join(base, 'repo-aitbc1')

  /** Sends one raw operation request as the hostile peer and returns the target's answer. */
  async function ask (target: string, request: Partial<OperationRequest>): Promise<OperationResponse> {
    const stream = await hostile.stream(target, OPERATION_PROTOCOL)
    try {
      const pb = pbStream(stream, { maxDataLength: OPERATION_STREAM_MAX_MESSAGE_BYTES })
      const requestId = request.requestId ?? randomUUID()
      await pb.write({ kind: OperationKind.SYNC, timeoutMs: 10_000, action: '', force: false, syncStep: '', payloadJson: '', ...request, requestId }, OperationRequest, { signal: AbortSignal.timeout(10_000) })
      const response = await pb.read(OperationResponse, { signal: AbortSignal.timeout(15_000) })
      expect(response.requestId).toBe(requestId)
      return response
    } finally {
      await stream.close().catch(() => {})
    }
  }

  async function askSync (target: string, step: string, payload: unknown, force: boolean): Promise<Record<string, unknown>> {
    const response = await ask(target, { kind: OperationKind.SYNC, syncStep: step, force, payloadJson: payload == null ? '' : JSON.stringify(payload) })
    expect(response.error).toBe('')
    return JSON.parse(response.payloadJson) as Record<string, unknown>
  }

  /** The target's operation_refused log lines (after a later line proves earlier ones were written). */
  async function refusalLines (node: string): Promise<Array<Record<string, unknown>>> {
    const flushed = randomUUID()
    await ask(node, { kind: OperationKind.COORDINATE, action: 'hello', requestId: flushed })
    const lines = await waitFor(`${node} to log the request ${flushed}`, () => {
      const parsed = t.mesh.node(node).logLines.map(l => JSON.parse(l) as Record<string, unknown>)
      return parsed.some(l => l.operationId === flushed) ? parsed : false
    })
    return lines.filter(l => l.event === 'operation_refused')
  }

  beforeAll(async () => {
    mkdirSync(markers)
    const upstream = join(base, 'upstream.git')
    const seed = join(base, 'seed')
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', upstream])
    execFileSync('git', ['clone', '-q', upstream, seed], { env: GIT_ENV })
    writeFileSync(join(seed, 'README'), 'first\n')
    git(seed, 'add', 'README')
    git(seed, 'commit', '-q', '-m', 'first')
    git(seed, 'push', '-q', 'origin', 'HEAD:main')
    execFileSync('git', ['clone', '-q', upstream, repo], { env: GIT_ENV })
    // A local commit the upstream does not have: a forced git.apply would reset it away.
    writeFileSync(join(repo, 'LOCAL'), 'keep me\n')
    git(repo, 'add', 'LOCAL')
    git(repo, 'commit', '-q', '-m', 'local work')
    for (const node of ALL) {
      mkdirSync(join(base, `etc-${node}`))
      writeFileSync(envOf(node), 'CHAIN_ID=ait-mainnet\nSECRET_TOKEN=genesis-only\n')
    }
    t = await startTestMesh(4, {
      start: false,
      extra: i => {
        const node = ALL[i]!
        return {
          probes: { configFiles: [envOf(node)], ...(node === 'aitbc1' ? { repo } : {}) },
          actions: {
            hello: { run: ['sh', '-c', `echo hello from ${node}`] },
            // aitbc2 names the follower aitbc3 among those who may run it (and leaves out self).
            wipe: { run: ['touch', markerOf('wipe', node)], destructive: true, ...(node === 'aitbc2' ? { allowFrom: ['genesis', HOSTILE] } : {}) }
          },
          // aitbc2 also accepts forced sync steps from aitbc3: still not a config write.
          ...(node === 'aitbc2' ? { sync: { forceFrom: ['genesis', 'self', HOSTILE] } } : {})
        }
      }
    })
    await Promise.all(DAEMONS.map(async name => await t.mesh.start(name)))
    await waitFor('the three daemons online with each other', async () => {
      for (const name of DAEMONS) {
        const online = (await peersOf(t.mesh, name)).filter(p => p.status === 'online').map(p => p.name)
        if (!DAEMONS.filter(n => n !== name).every(n => online.includes(n))) return false
      }
      return true
    }, 20_000, 100)
    hostile = await startHostilePeer(t.mesh, HOSTILE, DAEMONS)
  })

  it('a follower cannot write configuration on another follower, even one that accepts its --force; the file is unchanged', async () => {
    const evil = { files: [{ path: envOf('aitbc1'), content_base64: Buffer.from('CHAIN_ID=evil\n').toString('base64') }] }
    for (const force of [true, false]) {
      const answer = await askSync('aitbc1', 'config.write', evil, force)
      expect(answer).toEqual({ state: 'refused', reason: 'configuration files are written only at the request of the genesis node; aitbc3 (follower) is not it' })
    }
    const onAitbc2 = await askSync('aitbc2', 'config.write', { files: [{ path: envOf('aitbc2'), content_base64: Buffer.from('CHAIN_ID=evil\n').toString('base64') }] }, true)
    expect(onAitbc2).toMatchObject({ state: 'refused', reason: expect.stringContaining('only at the request of the genesis node') })
    for (const node of ['aitbc1', 'aitbc2']) {
      expect(readFileSync(envOf(node), 'utf8')).toBe('CHAIN_ID=ait-mainnet\nSECRET_TOKEN=genesis-only\n')
      expect(readdirSync(join(base, `etc-${node}`))).toEqual(['chain.env']) // no backup, no temporary file
    }
  })

  it('file contents go to no follower; hashes for drift detection go to any allowlisted node', async () => {
    const content = readFileSync(envOf('aitbc'))
    for (const target of ['aitbc', 'aitbc1']) {
      const response = await ask(target, { kind: OperationKind.SYNC, syncStep: 'config.read' })
      expect(JSON.parse(response.payloadJson)).toEqual({ state: 'refused', reason: 'configuration contents are sent only to the genesis node; aitbc3 (follower) is not it' })
      expect(response.payloadJson).not.toContain('content_base64')
      expect(response.payloadJson).not.toContain(content.toString('base64'))
      expect(response.payloadJson).not.toContain('SECRET_TOKEN')
    }
    const hashes = await askSync('aitbc', 'config.inspect', null, false)
    expect(hashes).toEqual({ files: [{ path: envOf('aitbc'), sha256: createHash('sha256').update(content).digest('hex') }] })
  })

  it('a destructive action with --force from a follower is refused and does not run; the target logs one refusal line however often it is asked', async () => {
    for (let i = 0; i < 3; i++) {
      const response = await ask('aitbc1', { kind: OperationKind.COORDINATE, action: 'wipe', force: true })
      expect(response.actionResult).toMatchObject({
        action: 'wipe',
        state: 'refused',
        destructive: true,
        reason: '"wipe" is not run here for aitbc3 (follower); allowed: genesis, self (the default for destructive actions)'
      })
    }
    expect(existsSync(markerOf('wipe', 'aitbc1'))).toBe(false)
    const refusals = (await refusalLines('aitbc1')).filter(l => l.reason === 'action_not_allowed')
    expect(refusals).toHaveLength(1)
    expect(refusals[0]).toMatchObject({ level: 'warn', peer: HOSTILE, action: 'wipe', force: true, detail: expect.stringContaining('allowed: genesis, self') })

    // A non-destructive action is open to every allowlisted node.
    const hello = await ask('aitbc1', { kind: OperationKind.COORDINATE, action: 'hello' })
    expect(hello.actionResult).toMatchObject({ state: 'ok', outputTail: 'hello from aitbc1\n' })
  })

  it('a forced git sync from a follower is refused and nothing is reset', async () => {
    const head = git(repo, 'rev-parse', 'HEAD')
    const answer = await askSync('aitbc1', 'git.apply', null, true)
    expect(answer).toEqual({ state: 'refused', reason: 'git.apply with --force is not accepted from aitbc3 (follower); allowed: genesis, self (sync.forceFrom)' })
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head)
    expect(readFileSync(join(repo, 'LOCAL'), 'utf8')).toBe('keep me\n')
    const refusals = (await refusalLines('aitbc1')).filter(l => l.reason === 'force_not_allowed')
    expect(refusals).toHaveLength(1)
    expect(refusals[0]).toMatchObject({ peer: HOSTILE, step: 'git.apply', force: true })
  })

  it('a follower asking through the CLI sees each refusal per node with its reason and exit 1; the genesis node is obeyed', async () => {
    const byFollower = await t.mesh.cli('aitbc2', ['coordinate', 'wipe', '--target', 'aitbc1', '--force'])
    expect(byFollower.code).toBe(1)
    expect(byFollower.stderr).toContain('  aitbc1: refused ("wipe" is not run here for aitbc2 (follower); allowed: genesis, self (the default for destructive actions))')
    expect(byFollower.stdout).toMatch(/^aitbc1: refused, 0 ms \("wipe" is not run here for aitbc2 \(follower\)/m)
    expect(byFollower.stdout).toContain('Some targets do not run wipe for aitbc2; run it from a node they allow, or add aitbc2 to actions.wipe.allowFrom in their config.')
    expect(byFollower.stdout).not.toMatch(/run it again with --force/)
    expect(existsSync(markerOf('wipe', 'aitbc1'))).toBe(false)

    const byGenesis = await t.mesh.cli('aitbc', ['coordinate', 'wipe', '--target', 'aitbc1', '--force', '--json'])
    expect(byGenesis.code, byGenesis.stderr).toBe(0)
    expect(JSON.parse(byGenesis.stdout).nodes_status.aitbc1.action).toMatchObject({ state: 'ok', exit_code: 0 })
    expect(existsSync(markerOf('wipe', 'aitbc1'))).toBe(true)

    writeFileSync(envOf('aitbc1'), 'CHAIN_ID=ait-devnet\n')
    const syncByFollower = await t.mesh.cli('aitbc2', ['sync', '--type', 'configuration', '--target', 'aitbc1,aitbc2', '--force'])
    expect(syncByFollower.code).toBe(1)
    expect(syncByFollower.stderr).toContain('  aitbc: configuration: refused (configuration contents are sent only to the genesis node; aitbc2 (follower) is not it)')
    expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe('CHAIN_ID=ait-devnet\n')

    const syncByGenesis = await t.mesh.cli('aitbc', ['sync', '--type', 'configuration', '--target', 'aitbc1,aitbc2', '--force', '--json'])
    expect(syncByGenesis.code, syncByGenesis.stderr).toBe(0)
    expect(readFileSync(envOf('aitbc1'), 'utf8')).toBe('CHAIN_ID=ait-mainnet\nSECRET_TOKEN=genesis-only\n')
  })

  it('a follower named in an action\'s allowFrom may run it; the list is the whole truth, so self not in it is refused', async () => {
    const response = await ask('aitbc2', { kind: OperationKind.COORDINATE, action: 'wipe', force: true })
    expect(response.actionResult).toMatchObject({ state: 'ok', exitCode: 0 })
    expect(existsSync(markerOf('wipe', 'aitbc2'))).toBe(true)

    const local = await t.mesh.cli('aitbc2', ['coordinate', 'wipe', '--target', 'aitbc2', '--force'])
    expect(local.code).toBe(1)
    expect(local.stdout).toContain('aitbc2: refused, 0 ms ("wipe" is not run here for this node\'s own operator (aitbc2); allowed: genesis, aitbc3 (actions.wipe.allowFrom))')
    await waitFor('aitbc2 to log its own operator\'s refusal', () => t.mesh.node('aitbc2').logLines.some(l => /"event":"operation_refused".*"reason":"action_not_allowed"/.test(l) && l.includes('own operator')))
  })
})
