import { readFileSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { once } from 'node:events'
import { beforeAll, describe, expect, it } from 'vitest'
import { WaitAborted } from '../../src/devmesh/local-mesh.js'
import { startTestMesh, waitFor, type TestMesh } from '../helpers.js'

const MiB = 1024 * 1024
const IDLE_MS = 5000

type Line = Record<string, any>

/** A control-socket client speaking raw lines, keeping every line the daemon sends and whether it closed. */
class RawClient {
  readonly lines: Line[] = []
  closed = false
  private buffered = ''

  private constructor (readonly conn: Socket) {
    conn.setEncoding('utf8')
    conn.on('data', (chunk: string) => {
      this.buffered += chunk
      let nl: number
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl)
        this.buffered = this.buffered.slice(nl + 1)
        if (line.trim() !== '') this.lines.push(JSON.parse(line))
      }
    })
    conn.on('close', () => { this.closed = true })
    conn.on('error', () => {})
  }

  static async open (path: string): Promise<RawClient> {
    const conn = createConnection(path)
    await once(conn, 'connect')
    return new RawClient(conn)
  }

  write (text: string): void {
    this.conn.write(text)
  }

  request (id: number | string, method: string, params?: unknown): void {
    this.write(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params !== undefined ? { params } : {}) }) + '\n')
  }

  answer (id: number | string): Line | undefined {
    return this.lines.find(l => l.id === id && !('method' in l))
  }

  async waitAnswer (id: number | string, timeoutMs = 15000): Promise<Line> {
    return await waitFor(`an answer to request ${String(id)}`, () => this.answer(id), timeoutMs)
  }

  async waitClosed (timeoutMs = 15000): Promise<void> {
    await waitFor('the daemon to close the connection', () => this.closed, timeoutMs)
  }

  close (): void {
    this.conn.destroy()
  }
}

/** Resident memory of a process in MB, from /proc. */
function rssMb (pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match == null) throw new Error(`no VmRSS for process ${pid}`)
  return Number(match[1]) / 1024
}

/**
 * Waits until the daemon has taken nothing more from `conn` for two seconds while some is still
 * queued on it, and (with `pid`) its memory has not grown meanwhile: it has stopped reading, not
 * merely slowed down.
 */
async function waitStalled (conn: Socket, what: string, pid?: number, onSample: () => void = () => {}): Promise<void> {
  let last = { unsent: -1, at: Date.now(), rss: 0 }
  await waitFor(what, () => {
    onSample()
    const unsent = conn.writableLength
    const rss = pid != null ? rssMb(pid) : 0
    if (unsent !== last.unsent || rss > last.rss + 4) {
      last = { unsent, at: Date.now(), rss }
      return false
    }
    return unsent > 0 && Date.now() - last.at >= 2000
  }, 45000, 50)
}

describe('control socket under abuse (default limits)', () => {
  let t: TestMesh
  let socket: string
  let pid: number

  beforeAll(async () => {
    t = await startTestMesh(1)
    const node = t.mesh.node('aitbc')
    socket = node.socket
    pid = node.process!.pid!
  })

  it('answers a last request sent without a newline before EOF, then closes', async () => {
    const single = await RawClient.open(socket)
    single.write('{"jsonrpc":"2.0","id":1,"method":"id"}')
    single.conn.end()
    expect((await single.waitAnswer(1)).result).toMatchObject({ name: 'aitbc', role: 'genesis' })
    await single.waitClosed()

    // Answers still being worked on (an operation) arrive after the client's EOF too.
    const pipelined = await RawClient.open(socket)
    pipelined.write('{"jsonrpc":"2.0","id":1,"method":"id"}\n{"jsonrpc":"2.0","id":2,"method":"status","params":{"timeout":5}}\n{"jsonrpc":"2.0","id":3,"method":"ops.list","params":{"limit":1}}')
    pipelined.conn.end()
    await pipelined.waitClosed()
    expect(pipelined.answer(1)?.result).toMatchObject({ name: 'aitbc' })
    expect(pipelined.answer(2)?.result).toMatchObject({ operation: 'status', validation_status: 'success' })
    expect(Array.isArray(pipelined.answer(3)?.result)).toBe(true)

    // A stream ends with its answer when the client half-closes.
    const watcher = await RawClient.open(socket)
    watcher.write('{"jsonrpc":"2.0","id":"w","method":"agents.watch"}\n')
    watcher.conn.end()
    expect((await watcher.waitAnswer('w')).result).toEqual({ watching: false })
    await watcher.waitClosed()
  })

  it('sends nothing back for notifications, and still runs them', async () => {
    const c = await RawClient.open(socket)
    c.write([
      '{"jsonrpc":"2.0","method":"id"}',
      '{"jsonrpc":"2.0","method":"no.such.method"}',
      '{"jsonrpc":"2.0","method":"ops.list","params":{"limit":"ten"}}',
      '{"jsonrpc":"2.0","method":"status","params":{"timeout":5}}',
      '{"jsonrpc":"2.0","method":"agents.register","params":{"agent_id":"notified-1","agent_type":"worker"}}',
      ''
    ].join('\n'))
    c.request('first', 'id')
    await c.waitAnswer('first')
    // The registration sent as a notification took effect.
    let asked = 0
    await waitFor('the notified registration to be listed', async () => {
      const id = `list-${++asked}`
      c.request(id, 'agents.list', {})
      const answer = await c.waitAnswer(id)
      return (answer.result as Line[]).some(a => a.agent_id === 'notified-1')
    })
    c.request('last', 'id')
    await c.waitAnswer('last')
    const sent = new Set(['first', 'last', ...Array.from({ length: asked }, (_, i) => `list-${i + 1}`)])
    expect(c.lines.filter(l => !sent.has(l.id))).toEqual([])
    expect(c.lines.every(l => l.error == null)).toBe(true)
    c.close()

    // An "id" of null is not a notification, and an object without a method is not a request: both are answered.
    const d = await RawClient.open(socket)
    d.write('{"jsonrpc":"2.0","id":null,"method":"id"}\n{"jsonrpc":"2.0"}\n')
    await waitFor('two answers', () => d.lines.length >= 2)
    expect(d.lines).toMatchObject([{ id: null, error: { code: -32600 } }, { id: null, error: { code: -32600 } }])
    d.close()
  })

  it('answers a wrong-typed parameter of every method with invalid params naming it, and keeps serving', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['id', { verbose: true }, /^id: unknown field\(s\) verbose; expected no params$/],
      ['reload', 'now', /^reload: params must be a JSON object$/],
      ['peers', [1, 2], /^peers: params must be a JSON object$/],
      ['mesh', { node: 'aitbc1' }, /^mesh: unknown field\(s\) node; expected no params$/],
      ['op', { operation: 'status', force: 'yes' }, /^operation: "force": expected true or false$/],
      ['ops.list', { limit: '10' }, /^ops\.list: "limit": expected a whole number from 1 to 1000$/],
      ['ops.list', { limit: 2.5 }, /^ops\.list: "limit": expected a whole number from 1 to 1000$/],
      ['ops.get', { id: ['a'] }, /^ops\.get: "id": expected an operation id \(a string\)$/],
      ['agents.register', { agent_id: 5, agent_type: 'worker' }, /^agents register: "agent_id": .*expected string/],
      ['agents.heartbeat', { agent_id: 'a', load_metrics: 'high' }, /^agents heartbeat: "load_metrics": .*expected record/],
      ['agents.remove', {}, /^agents remove: "agent_id" is required$/],
      ['agents.list', { limit: 'all' }, /^agents list: "limit": .*expected number/],
      ['agents.watch', { since: 1 }, /^agents\.watch: unknown field\(s\) since; expected no params$/],
      ['messages.send', { to: ['aitbc'], body: 'x' }, /^send: "to": expected a target/],
      ['messages.route', { to_capability: 5, body: 'x' }, /^send: "to_capability": expected a capability name$/],
      ['messages.get', { id: 42 }, /^messages\.get: "id": expected a message id \(a string\)$/],
      ['messages.wait', { id: { nested: true } }, /^messages\.wait: "id": expected a message id \(a string\)$/],
      ['messages.wait', { id: 'x', timeout: '5' }, /^messages\.wait: "timeout": expected seconds, more than 0 and at most 120$/],
      ['messages.watch', 5, /^messages\.watch: params must be a JSON object$/],
      ['inbox.list', { since: 5 }, /^inbox\.list: "since": expected a message id or an ISO time \(a string\)$/],
      ['inbox.list', { limit: 0 }, /^inbox\.list: "limit": expected a whole number from 1 to 100000$/],
      ['inbox.follow', { since: {} }, /^inbox\.follow: "since": expected a message id or an ISO time \(a string\)$/],
      ['status', { timeout: 'soon' }, /^status: "timeout": expected a number of seconds$/],
      ['health', { target_node: 7 }, /^health: "target_node": expected a string/]
    ]
    const c = await RawClient.open(socket)
    // Every method the daemon offers has a case here.
    c.request('methods', 'no.such.method')
    const available = /available: (.*)$/.exec((await c.waitAnswer('methods')).error.message as string)![1]!.split(', ')
    expect(available.filter(m => !cases.some(([method]) => method === m))).toEqual([])

    cases.forEach(([method, params], i) => { c.request(i, method, params) })
    for (const [i, [method, params, message]] of cases.entries()) {
      const answer = await c.waitAnswer(i)
      expect(answer.error, `${method} ${JSON.stringify(params)}`).toMatchObject({ code: -32602 })
      expect(answer.error.message, `${method} ${JSON.stringify(params)}`).toMatch(message)
    }
    c.request('after', 'id')
    expect((await c.waitAnswer('after')).result).toMatchObject({ name: 'aitbc' })
    c.close()
    expect(t.mesh.node('aitbc').logLines.filter(l => l.includes('control_method_failed'))).toEqual([])
    expect((await t.mesh.cli('aitbc', ['id'])).code).toBe(0)
  })

  it('stops reading a client that floods requests and never reads, so the daemon stays small and serves others', async () => {
    // A daemon that has answered before, so the baseline includes what answering costs anyway.
    const warm = await RawClient.open(socket)
    for (let i = 0; i < 2000; i++) warm.request(i, 'id')
    await warm.waitAnswer(1999)
    warm.close()
    const baseline = rssMb(pid)

    const line = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'id' }) + '\n'
    // Small writes, so the bytes the daemon takes show in the client's unsent count.
    const chunk = Buffer.from(line.repeat(Math.floor(64 * 1024 / line.length)))
    const flooder = createConnection(socket)
    flooder.on('error', () => {})
    await once(flooder, 'connect')
    // 300 MiB of requests queued (the same buffer each time, so the test itself stays small); no data listener: never read.
    const rounds = Math.ceil(300 * MiB / chunk.length)
    for (let i = 0; i < rounds; i++) flooder.write(chunk)
    const queued = rounds * chunk.length

    let peak = baseline
    const sample = (): void => {
      const rss = rssMb(pid)
      peak = Math.max(peak, rss)
      if (rss - baseline > 150) throw new WaitAborted(`the daemon grew from ${baseline.toFixed(0)} MB to ${rss.toFixed(0)} MB`)
    }
    await waitStalled(flooder, 'the daemon to stop reading the flooding client', pid, sample)
    const accepted = queued - flooder.writableLength
    expect(accepted).toBeLessThan(16 * MiB)

    // Others are served while the flooder is held.
    const res = await t.mesh.cli('aitbc', ['id', '--json'])
    expect(res.code).toBe(0)
    expect(JSON.parse(res.stdout).name).toBe('aitbc')
    sample()
    expect(peak - baseline).toBeLessThan(100)

    flooder.destroy()
    const after = await RawClient.open(socket)
    after.request(1, 'id')
    await after.waitAnswer(1)
    after.close()
    expect(rssMb(pid) - baseline).toBeLessThan(100)
  })

  it('resumes reading a held client once it reads its answers, and answers every request in order', async () => {
    const c = await RawClient.open(socket)
    c.conn.pause()
    const count = 50000
    c.write(Array.from({ length: count }, (_, i) => JSON.stringify({ jsonrpc: '2.0', id: i, method: 'id' }) + '\n').join(''))
    await waitStalled(c.conn, 'the daemon to stop reading while its answers are unread', pid)
    c.conn.resume()
    await waitFor('every answer', () => c.lines.length >= count, 30000)
    expect(c.lines.length).toBe(count)
    expect(c.lines.every((l, i) => l.id === i && l.result?.name === 'aitbc')).toBe(true)
    c.close()
  })

  it('closes a connection that sends half a line and stalls, with an error line, at the real timeout', async () => {
    const c = await RawClient.open(socket)
    const started = Date.now()
    c.write('{"jsonrpc":"2.0","id":1,"meth')
    await c.waitClosed(20000)
    expect(Date.now() - started).toBeGreaterThanOrEqual(9500)
    expect(c.lines).toMatchObject([{ id: null, error: { code: -32003, message: 'incomplete request: no end of line within 10000 ms; requests are one JSON object per line' } }])
    expect((await t.mesh.cli('aitbc', ['id'])).code).toBe(0)
  })

  it('refuses a client over the connection limit with an error line, which the CLI prints (exit 3)', async () => {
    // 64 clients each following a stream: busy, not idle.
    const holders: RawClient[] = []
    for (let i = 0; i < 64; i++) {
      const c = await RawClient.open(socket)
      c.request('hello', 'id')
      await c.waitAnswer('hello')
      c.request('watch', 'agents.watch')
      holders.push(c)
    }
    const refused = await RawClient.open(socket)
    await refused.waitClosed()
    expect(refused.lines).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32002, message: 'too many control connections (64 open); try again later' } }])

    const res = await t.mesh.cli('aitbc', ['id'])
    expect(res.code).toBe(3)
    expect(res.stderr).toMatch(/^aitbc-mesh: the daemon on .*mesh\.sock refused the connection: too many control connections \(64 open\); try again later\n$/)
    expect(res.stderr).not.toMatch(/EPIPE/)

    for (const c of holders) c.close()
    await waitFor('a free connection', async () => {
      const c = await RawClient.open(socket)
      c.request(1, 'id')
      await waitFor('an answer or a refusal', () => c.lines.length > 0)
      c.close()
      return c.answer(1)?.result != null
    })
    expect((await t.mesh.cli('aitbc', ['id'])).code).toBe(0)
  })
})

describe(`control socket idle timeout (shortened to ${IDLE_MS} ms for the test)`, () => {
  let t: TestMesh
  let socket: string

  beforeAll(async () => {
    t = await startTestMesh(1, { env: { AITBC_MESH_TEST_CONTROL_IDLE_MS: String(IDLE_MS) } })
    socket = t.mesh.node('aitbc').socket
  })

  it('closes idle connections so a new client gets in after the limit was filled, and keeps a quiet stream', async () => {
    const watcher = await RawClient.open(socket)
    watcher.request('watch', 'agents.watch')
    // Opened together, so all are in before the first one has been idle for long.
    const idle = await Promise.all(Array.from({ length: 63 }, async () => {
      const c = await RawClient.open(socket)
      c.request(1, 'id')
      await c.waitAnswer(1)
      return c
    }))
    const refused = await RawClient.open(socket)
    await refused.waitClosed()
    expect(refused.lines).toMatchObject([{ id: null, error: { code: -32002 } }])

    await waitFor('the idle connections to be closed', () => idle.every(c => c.closed), 20000)
    for (const c of idle) {
      expect(c.lines.at(-1)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32003, message: `closing the connection: nothing sent or read for ${IDLE_MS} ms` } })
    }
    const res = await t.mesh.cli('aitbc', ['id', '--json'])
    expect(res.code).toBe(0)
    expect(JSON.parse(res.stdout).name).toBe('aitbc')

    // The stream was quiet all along and is still open: it gets the next change.
    expect(watcher.closed).toBe(false)
    expect((await t.mesh.cli('aitbc', ['agents', 'register', '--id', 'after-idle', '--type', 'worker'])).code).toBe(0)
    await waitFor('the watcher to see the registration', () => watcher.lines.some(l => l.method === 'event' && l.params?.event?.agent_id === 'after-idle'))
    watcher.close()
  })
})
