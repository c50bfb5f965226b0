import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startTestMesh, tempDir, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'

interface Target { state: string, exit_code?: number | null, output_tail?: string, agent_id?: string, reason?: string, handler?: boolean }
interface MessageView {
  id: string
  targets: Record<string, Target>
  message_delivery: { sent: number, delivered: number, processed: number, failed: number }
  route?: { tried: string[], state: string, candidates: Array<{ agent_id: string, node: string }> }
}

const STATUS_PORT = 7071
const dir = tempDir('aitbc-mesh-handlers-')
const logOf = (name: string): string => join(dir, `${name}.log`)
const lines = (name: string): string[] => existsSync(logOf(name)) ? readFileSync(logOf(name), 'utf8').split('\n').filter(l => l !== '') : []

/** A handler script: `sh -c` body with $1 the log file it appends to. */
function script (name: string, body: string): string {
  const path = join(dir, `${name}.sh`)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
  return path
}

describe('message handlers with processed receipts', () => {
  let t: TestMesh
  let statusPage = ''
  const jobs = () => lines('jobs')

  beforeAll(async () => {
    // Each run appends "<node> <start|end> <ms> <message json>" so tests can see order and overlap.
    const append = script('append', 'input=$(cat); echo "$AITBC_MESH_NODE_TAG start $(date +%s%3N) $input" >> "$1"; sleep "$2"; echo "$AITBC_MESH_NODE_TAG end $(date +%s%3N) $input" >> "$1"')
    const fail = script('fail', 'cat > /dev/null; echo "deploy failed: disk full" >&2; exit 3')
    const slow = script('slow', 'echo started >&2; sleep 30')
    const env = script('env', 'env > "$1"')
    const flaky = script('flaky', 'cat > /dev/null; if [ "$1" = aitbc1 ]; then echo "model not loaded" >&2; exit 7; fi')
    const handlersOf = (node: string): Array<Record<string, unknown>> => [
      { kind: 'job.ok', run: [append, logOf('jobs'), '0'] },
      { kind: 'job.fail', run: [fail] },
      { kind: 'job.slow', run: [slow], timeout: 1 },
      { kind: 'job.env', run: [env, logOf(`env-${node}`)] },
      { kind: 'job.crash', run: [append, logOf('crash'), '3'] },
      { kind: 'seq.*', run: [append, logOf('seq'), '0.3'] },
      { kind: 'inference.run', run: [append, logOf('inference'), '0'] },
      { kind: 'inference.flaky', run: [flaky, node] },
      // Only aitbc2 takes this kind: routed to aitbc1, it moves on for want of a handler.
      ...(node === 'aitbc2' ? [{ kind: 'inference.only2', run: [append, logOf('inference'), '0'] }] : [])
    ]
    t = await startTestMesh(3, {
      extra: (i, host) => i === 0 ? {} : { handlers: handlersOf(`aitbc${i}`), handlerConcurrency: 1, ...(i === 1 ? { http: `${host}:${STATUS_PORT}` } : {}) },
      env: { AITBC_MESH_NODE_TAG: 'node', MY_API_TOKEN: 'hunter2', AITBC_SIGNING_KEY: 'k', AITBC_DB_PASSWORD: 'pw' }
    })
    await waitAllOnline(t.mesh)
    statusPage = `http://${t.hosts[1]!}:${STATUS_PORT}`
  })

  beforeEach(async () => {
    for (const node of ['aitbc', 'aitbc1', 'aitbc2']) if (!t.mesh.isRunning(node)) await t.mesh.start(node)
    await waitAllOnline(t.mesh)
  })

  async function sendWait (from: string, args: string[]): Promise<{ code: number | null, out: MessageView, stderr: string }> {
    const res = await t.mesh.cli(from, ['send', '--json', '--wait', '--processed', '--timeout', '30', ...args])
    return { code: res.code, out: JSON.parse(res.stdout === '' ? '{}' : res.stdout) as MessageView, stderr: res.stderr }
  }

  it('a handler that exits 0 makes the target processed at the sender, with the message on its stdin', async () => {
    const { code, out, stderr } = await sendWait('aitbc', ['--to', 'aitbc1,aitbc2', '--kind', 'job.ok', 'build 42'])
    expect(code, stderr).toBe(0)
    expect(out.targets.aitbc1).toMatchObject({ state: 'processed', exit_code: 0 })
    expect(out.targets.aitbc2).toMatchObject({ state: 'processed', exit_code: 0 })
    expect(out.message_delivery).toEqual({ sent: 2, delivered: 2, processed: 2, failed: 0 })
    const runs = jobs().filter(l => l.includes(out.id) && l.includes(' start '))
    expect(runs).toHaveLength(2)
    const input = JSON.parse(runs[0]!.split(' ').slice(3).join(' ')) as Record<string, unknown>
    expect(input).toEqual({ id: out.id, from: 'aitbc', kind: 'job.ok', body: 'build 42', sent_at: expect.any(Number) })
    // `message ID` shows it afterwards, and the outcome message is nowhere in the sender's inbox.
    const shown = await t.mesh.cli('aitbc', ['message', out.id])
    expect(shown.code).toBe(0)
    expect(shown.stdout).toMatch(/aitbc1\s+-\s+processed\s.*\s0\s/)
    const inbox = JSON.parse((await t.mesh.cli('aitbc', ['inbox', '--json'])).stdout) as Array<{ kind: string }>
    expect(inbox.filter(m => m.kind.startsWith('aitbc-mesh.'))).toEqual([])
    // aitbc1 sent the outcome back, but its operator sent nothing: its status page lists no sent message.
    const state = await (await fetch(`${statusPage}/api/state`)).json() as { messages: Array<{ id: string, kind: string }> }
    expect(state.messages).toEqual([])
  })

  it('a failing handler makes the target handler_failed with its exit code and stderr tail; send --wait --processed exits 1', async () => {
    const { code, out } = await sendWait('aitbc', ['--to', 'aitbc1', '--kind', 'job.fail', 'deploy v2'])
    expect(code).toBe(1)
    expect(out.targets.aitbc1).toMatchObject({ state: 'handler_failed', exit_code: 3 })
    expect(out.targets.aitbc1!.output_tail).toContain('deploy failed: disk full')
    expect(out.message_delivery).toEqual({ sent: 1, delivered: 1, processed: 0, failed: 1 })
    const plain = await t.mesh.cli('aitbc', ['message', out.id])
    expect(plain.stdout).toMatch(/aitbc1\s+-\s+handler_failed\s.*\s3\s/)
    expect(plain.stdout).toContain('deploy failed: disk full')
  })

  it('a handler over its timeout is stopped and reported handler_failed', async () => {
    const started = Date.now()
    const { code, out } = await sendWait('aitbc', ['--to', 'aitbc2', '--kind', 'job.slow', 'wait forever'])
    expect(code).toBe(1)
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(out.targets.aitbc2!.state).toBe('handler_failed')
    expect(out.targets.aitbc2!.output_tail).toMatch(/timed out after 1 s/)
    expect(out.targets.aitbc2!.output_tail).toContain('started')
  })

  it('the handler sees the daemon\'s environment without its secrets', async () => {
    const { code } = await sendWait('aitbc', ['--to', 'aitbc1', '--kind', 'job.env', 'env please'])
    expect(code).toBe(0)
    const env = readFileSync(logOf('env-aitbc1'), 'utf8')
    expect(env).toContain('AITBC_MESH_NODE_TAG=node')
    expect(env).toContain('AITBC_MESH_MESSAGE_KIND=job.env')
    expect(env).not.toMatch(/hunter2|MY_API_TOKEN|AITBC_SIGNING_KEY|AITBC_DB_PASSWORD/)
  })

  it('kinds without a handler stay delivered; the target says so, and send --wait --processed exits 1 at once naming it', async () => {
    const res = await t.mesh.cli('aitbc', ['send', '--json', '--wait', '--to', 'aitbc1', '--kind', 'chat', 'hello'])
    expect(res.code).toBe(0)
    const out = JSON.parse(res.stdout) as MessageView
    expect(out.targets.aitbc1).toMatchObject({ state: 'delivered', handler: false })
    expect(out.message_delivery).toEqual({ sent: 1, delivered: 1, processed: 0, failed: 0 })

    // One target has a handler for job.ok, the other (the genesis node) has none: no wait for the timeout.
    const started = Date.now()
    const processed = await t.mesh.cli('aitbc', ['send', '--wait', '--processed', '--timeout', '60', '--to', 'aitbc,aitbc1', '--kind', 'job.ok', 'anyone?'])
    expect(processed.code, processed.stderr).toBe(1)
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(processed.stdout).toMatch(/aitbc: delivered \(no handler for kind job\.ok\)/)
    expect(processed.stdout).toMatch(/no handler for kind job\.ok on aitbc: nothing will process it there/)
    const id = /^message (\S+) to/.exec(processed.stdout)![1]!
    const shown = await t.mesh.cli('aitbc', ['message', id])
    expect(shown.stdout).toMatch(/aitbc\s+-\s+delivered \(no handler for kind job\.ok\)\s/)
    const view = JSON.parse((await t.mesh.cli('aitbc', ['message', id, '--json'])).stdout) as MessageView
    await waitFor('aitbc1 processed it meanwhile', async () => {
      const now = JSON.parse((await t.mesh.cli('aitbc', ['message', id, '--json'])).stdout) as MessageView
      return now.targets.aitbc1!.state === 'processed' ? now : undefined
    }, 15_000, 200)
    expect(view.targets.aitbc).toMatchObject({ state: 'delivered', handler: false })
    const after = JSON.parse((await t.mesh.cli('aitbc', ['message', id, '--json'])).stdout) as MessageView
    expect(after.message_delivery).toEqual({ sent: 2, delivered: 2, processed: 1, failed: 0 })
  })

  it('a daemon SIGKILLed during a handler run runs it again after restart, and the sender ends with processed', async () => {
    const sent = JSON.parse((await t.mesh.cli('aitbc', ['send', '--json', '--to', 'aitbc2', '--kind', 'job.crash', 'migrate db'])).stdout) as MessageView
    await waitFor('the handler started on aitbc2', () => lines('crash').some(l => l.includes(sent.id) && l.includes(' start ')), 15_000)
    await t.mesh.stop('aitbc2', 'SIGKILL')
    await t.mesh.start('aitbc2')
    const res = await t.mesh.cli('aitbc', ['send', '--json', '--to', 'aitbc1', '--kind', 'chat', 'unrelated'])
    expect(res.code).toBe(0)
    const waited = await t.mesh.cli('aitbc', ['message', sent.id, '--json'])
    let view = JSON.parse(waited.stdout) as MessageView
    await waitFor('aitbc2 processed the message', async () => {
      view = JSON.parse((await t.mesh.cli('aitbc', ['message', sent.id, '--json'])).stdout) as MessageView
      return view.targets.aitbc2!.state === 'processed'
    }, 30_000, 200)
    // Started twice: once before the kill, once after the restart.
    expect(lines('crash').filter(l => l.includes(sent.id) && l.includes(' start ')).length).toBeGreaterThanOrEqual(2)
  })

  it('at most handlerConcurrency run at once, and each sender\'s messages run in arrival order', async () => {
    const senders = ['aitbc', 'aitbc1']
    const ids: Record<string, string[]> = { aitbc: [], aitbc1: [] }
    await Promise.all(senders.map(async from => {
      for (let i = 0; i < 3; i++) {
        const res = await t.mesh.cli(from, ['send', '--json', '--to', 'aitbc2', '--kind', `seq.${from}`, `${from} #${i}`])
        ids[from]!.push((JSON.parse(res.stdout) as MessageView).id)
      }
    }))
    await waitFor('six runs ended', () => lines('seq').filter(l => l.includes(' end ')).length >= 6, 30_000)
    const events = lines('seq').map(l => { const [, what, ms, ...rest] = l.split(' '); return { what, ms: Number(ms), input: JSON.parse(rest.join(' ')) as { id: string, from: string } } })
    // Never two running together (concurrency 1), though two senders sent at once.
    let running = 0
    let most = 0
    for (const e of [...events].sort((a, b) => a.ms - b.ms || (a.what === 'end' ? -1 : 1))) {
      running += e.what === 'start' ? 1 : -1
      most = Math.max(most, running)
    }
    expect(most).toBe(1)
    for (const from of senders) expect(events.filter(e => e.what === 'start' && e.input.from === from).map(e => e.input.id)).toEqual(ids[from])
  })

  it('routes to the best agent by health, then least load, fails over when its node is killed, and reports no candidate', async () => {
    const register = async (node: string, id: string, load: string): Promise<void> => {
      expect((await t.mesh.cli(node, ['agents', 'register', '--id', id, '--type', 'worker', '--capability', 'inference'])).code).toBe(0)
      expect((await t.mesh.cli(node, ['agents', 'heartbeat', id, '--load', `cpu=${load}`])).code).toBe(0)
    }
    await register('aitbc1', 'inf-a', '0.5')
    await register('aitbc2', 'inf-b', '0.2')
    await waitFor('both agents known at the genesis node', async () => {
      const list = JSON.parse((await t.mesh.cli('aitbc', ['agents', 'list', '--json'])).stdout) as Array<{ agent_id: string, load_metrics: Record<string, number> }>
      return list.find(a => a.agent_id === 'inf-a')?.load_metrics.cpu === 0.5 && list.find(a => a.agent_id === 'inf-b')?.load_metrics.cpu === 0.2
    }, 15_000)

    // Equal health (1.0): the less loaded inf-b on aitbc2 gets it.
    let res = await sendWait('aitbc', ['--to-capability', 'inference', '--kind', 'inference.run', 'prompt 1'])
    expect(res.code, res.stderr).toBe(0)
    expect(Object.keys(res.out.targets)).toEqual(['aitbc2'])
    expect(res.out.targets.aitbc2).toMatchObject({ state: 'processed', agent_id: 'inf-b' })
    const run = lines('inference').find(l => l.includes(res.out.id))!
    expect(JSON.parse(run.split(' ').slice(3).join(' '))).toMatchObject({ agent: 'inf-b', body: 'prompt 1' })
    const plain = await t.mesh.cli('aitbc', ['send', '--to-capability', 'inference', '--kind', 'inference.run', 'prompt 2'])
    expect(plain.stdout).toMatch(/agent inf-b on aitbc2/)

    // inf-b now loaded over 0.8: health 0.7, so inf-a (0.9 with load 0.7) ranks first.
    expect((await t.mesh.cli('aitbc2', ['agents', 'heartbeat', 'inf-b', '--load', 'cpu=0.9'])).code).toBe(0)
    expect((await t.mesh.cli('aitbc1', ['agents', 'heartbeat', 'inf-a', '--load', 'cpu=0.7'])).code).toBe(0)
    await waitFor('new loads known at the genesis node', async () => {
      const list = JSON.parse((await t.mesh.cli('aitbc', ['agents', 'list', '--json'])).stdout) as Array<{ agent_id: string, load_metrics: Record<string, number> }>
      return list.find(a => a.agent_id === 'inf-a')?.load_metrics.cpu === 0.7 && list.find(a => a.agent_id === 'inf-b')?.load_metrics.cpu === 0.9
    }, 15_000)
    res = await sendWait('aitbc', ['--to-capability', 'inference', '--kind', 'inference.run', 'prompt 3'])
    expect(res.code).toBe(0)
    expect(res.out.targets.aitbc1).toMatchObject({ state: 'processed', agent_id: 'inf-a' })

    // The best one's handler fails: the next candidate gets the message, and `message ID` shows the path.
    res = await sendWait('aitbc', ['--to-capability', 'inference', '--kind', 'inference.flaky', 'prompt 4'])
    expect(res.code, res.stderr).toBe(0)
    expect(res.out.route!.tried).toEqual(['aitbc1', 'aitbc2'])
    expect(res.out.targets.aitbc1).toMatchObject({ state: 'handler_failed', exit_code: 7, agent_id: 'inf-a' })
    expect(res.out.targets.aitbc2).toMatchObject({ state: 'processed', agent_id: 'inf-b' })
    const path = await t.mesh.cli('aitbc', ['message', res.out.id])
    expect(path.code).toBe(0)
    expect(path.stdout).toMatch(/route:.*inf-a@aitbc1 -> inf-b@aitbc2 {2}\[done\]/)

    // The best one's node has no handler for the kind: the next candidate gets it.
    res = await sendWait('aitbc', ['--to-capability', 'inference', '--kind', 'inference.only2', 'prompt 4b'])
    expect(res.code, res.stderr).toBe(0)
    expect(res.out.route!.tried).toEqual(['aitbc1', 'aitbc2'])
    expect(res.out.targets.aitbc1).toMatchObject({ state: 'delivered', handler: false, agent_id: 'inf-a' })
    expect(res.out.targets.aitbc2).toMatchObject({ state: 'processed', agent_id: 'inf-b' })
    expect(JSON.parse(lines('inference').find(l => l.includes(res.out.id))!.split(' ').slice(3).join(' '))).toMatchObject({ agent: 'inf-b', kind: 'inference.only2' })

    // The best one's node is killed: skipped once seen offline, or failed over from if not yet; inf-b gets it.
    await t.mesh.stop('aitbc1', 'SIGKILL')
    res = await sendWait('aitbc', ['--to-capability', 'inference', '--kind', 'inference.run', 'prompt 5'])
    expect(res.code, res.stderr).toBe(0)
    const route = res.out.route as unknown as { tried: string[], skipped: Array<{ node: string, reason: string }> }
    expect([...route.skipped.map(s => s.node), ...route.tried]).toEqual(['aitbc1', 'aitbc2'])
    expect(route.skipped[0]?.reason ?? res.out.targets.aitbc1!.reason).toMatch(/offline/)
    expect(res.out.targets.aitbc2).toMatchObject({ state: 'processed', agent_id: 'inf-b' })

    // Nothing has the capability: exit 1, saying what was searched.
    const none = await t.mesh.cli('aitbc', ['send', '--to-capability', 'quantum', 'anyone?'])
    expect(none.code).toBe(1)
    expect(none.stdout).toMatch(/no candidate: no active agent in the mesh has capability "quantum"/)
    const op = await t.mesh.cli('aitbc', ['op', JSON.stringify({ operation: 'message', target_capability: 'quantum', message: 'x' })])
    expect(op.code).toBe(1)
    expect(JSON.parse(op.stdout).issues[0]).toMatch(/no candidate/)
  })
})
