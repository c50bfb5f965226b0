import { beforeAll, describe, expect, it } from 'vitest'
import { startTestMesh, waitAllOnline, type TestMesh } from '../helpers.js'

const NODES = ['aitbc', 'aitbc1', 'aitbc2']

/** Each node's own actions: the same names, different commands, so the output shows where it ran. */
function actionsFor (i: number): Record<string, unknown> {
  const name = NODES[i]!
  return {
    actions: {
      hello: { run: ['sh', '-c', `echo hello from ${name}`] },
      restart: { run: ['sh', '-c', `echo restarting on ${name}`], destructive: true },
      'fail-on-aitbc1': { run: ['sh', '-c', name === 'aitbc1' ? 'echo broken >&2; exit 3' : 'echo fine'] },
      slow: { run: ['sleep', '1'] },
      hang: { run: name === 'aitbc2' ? ['sleep', '30'] : ['true'] }
    }
  }
}

interface Action { state: string, exit_code: number | null, output_tail: string, reason: string, health_before?: string, health_after?: string, duration_ms?: number }

describe('coordinate: named actions run by each target from its own config', () => {
  let t: TestMesh

  beforeAll(async () => {
    t = await startTestMesh(3, { extra: actionsFor })
    await waitAllOnline(t.mesh)
  })

  it('runs the action on every target and reports exit code, duration and output tail, with progress per node', async () => {
    const res = await t.mesh.cli('aitbc1', ['coordinate', 'hello', '--target', 'all', '--json'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(out.operation).toBe('coordinate')
    expect(out.validation_status).toBe('success')
    for (const name of NODES) {
      const action = out.nodes_status[name].action as Action
      expect(action).toMatchObject({ state: 'ok', exit_code: 0 })
      expect(action.output_tail).toBe(`hello from ${name}\n`)
      expect(typeof action.duration_ms).toBe('number')
    }
    const plain = await t.mesh.cli('aitbc', ['coordinate', 'hello', '--target', 'follower'])
    expect(plain.code).toBe(0)
    expect(plain.stderr).toMatch(/ {2}aitbc1: ok/)
    expect(plain.stderr).toMatch(/ {2}aitbc2: ok/)
    expect(plain.stdout).toMatch(/\| hello from aitbc2/)
  })

  it('refuses a destructive action without --force, and with it reports health before and after', async () => {
    const refused = await t.mesh.cli('aitbc', ['coordinate', 'restart', '--target', 'aitbc2', '--json'])
    expect(refused.code).toBe(1)
    const out = JSON.parse(refused.stdout)
    expect(out.nodes_status.aitbc2.action).toMatchObject({ state: 'refused', reason: '"restart" is destructive; run it with --force', exit_code: null })
    expect(out.recommendations.join(' ')).toMatch(/--force/)

    const forced = await t.mesh.cli('aitbc', ['coordinate', 'restart', '--target', 'aitbc2', '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(JSON.parse(forced.stdout).nodes_status.aitbc2.action).toMatchObject({ state: 'ok', output_tail: 'restarting on aitbc2\n', health_before: 'online', health_after: 'online' })
  })

  it('an unknown action is a clear error from each target', async () => {
    const res = await t.mesh.cli('aitbc', ['coordinate', 'nope', '--target', 'all', '--json'])
    expect(res.code).toBe(1)
    const out = JSON.parse(res.stdout)
    for (const name of NODES) {
      expect(out.nodes_status[name].action).toMatchObject({ state: 'refused', reason: 'unknown action "nope"; configured here: hello, restart, fail-on-aitbc1, slow, hang' })
    }
    expect(out.validation_status).toBe('failed')
  })

  it('--sequential goes node by node and stops at the first failure', async () => {
    const res = await t.mesh.cli('aitbc', ['coordinate', 'fail-on-aitbc1', '--target', 'all', '--sequential', '--json'])
    expect(res.code).toBe(1)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc.action.state).toBe('ok')
    expect(out.nodes_status.aitbc1.action).toMatchObject({ state: 'failed', exit_code: 3, output_tail: 'broken\n', reason: 'exited with 3' })
    expect(out.nodes_status.aitbc2.action.state).toBe('skipped')
    expect(out.validation_status).toBe('partial')
  })

  it('a target that times out ends as timed out while the others succeed', async () => {
    const started = Date.now()
    const res = await t.mesh.cli('aitbc', ['coordinate', 'hang', '--target', 'all', '--timeout', '2', '--json'])
    expect(res.code).toBe(1)
    expect(Date.now() - started).toBeLessThan(15_000)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc.action.state).toBe('ok')
    expect(out.nodes_status.aitbc1.action.state).toBe('ok')
    expect(out.nodes_status.aitbc2.action).toMatchObject({ state: 'timed_out' })
    expect(out.validation_status).toBe('partial')
  })

  it('runs at most five operations at once; a sixth waits in line and says so', async () => {
    const client = await t.mesh.client('aitbc')
    try {
      const events: Array<Array<{ type: string }>> = Array.from({ length: 6 }, () => [])
      const runs = Array.from({ length: 6 }, async (_, i) => await client.call<{ validation_status: string }>('op',
        { operation: 'coordinate', target_node: 'aitbc', action: 'slow', timeout: 30 },
        { onEvent: e => { events[i]!.push(e as { type: string }) } }))
      const results = await Promise.all(runs)
      expect(results.map(r => r.validation_status)).toEqual(Array(6).fill('success'))
      const queued = events.filter(list => list.some(e => e.type === 'queued'))
      expect(queued).toHaveLength(1)
      expect(queued[0]!.find(e => e.type === 'queued')).toMatchObject({ running: 5, ahead: 0 })
    } finally {
      client.close()
    }
  })

  it('keeps a record of every operation, shown by `ops` after the daemon restarted', async () => {
    const before = JSON.parse((await t.mesh.cli('aitbc', ['ops', '--json', '--limit', '50'])).stdout) as Array<{ id: string, request: { operation: string, action?: string }, result: { validation_status: string } | null }>
    const hang = before.find(r => r.request.action === 'hang')!
    expect(hang.result!.validation_status).toBe('partial')
    await t.mesh.stop('aitbc')
    await t.mesh.start('aitbc')
    const after = await t.mesh.cli('aitbc', ['ops', '--json', '--limit', '50'])
    expect((JSON.parse(after.stdout) as Array<{ id: string }>).map(r => r.id)).toEqual(before.map(r => r.id))
    const one = await t.mesh.cli('aitbc', ['ops', hang.id])
    expect(one.code).toBe(0)
    expect(one.stdout).toMatch(/"action":"hang"/)
    expect(one.stdout).toMatch(/aitbc2: timed_out/)
    const list = await t.mesh.cli('aitbc', ['ops'])
    expect(list.stdout).toMatch(/coordinate hang\s+all\s+partial/)
  })

  it('refuses a coordinate op without an action, with exit 2', async () => {
    const res = await t.mesh.cli('aitbc', ['op', '{"operation":"coordinate","target_node":"all"}'])
    expect(res.code).toBe(2)
    expect(res.stderr).toMatch(/"action" is required for coordinate/)
  })
})
