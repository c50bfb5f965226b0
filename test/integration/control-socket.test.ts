import { existsSync, statSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { runCli, startTestMesh, tempDir, type TestMesh } from '../helpers.js'

/** Sends raw bytes to the control socket and collects the response lines until it closes or `lines` arrive. */
async function raw (socket: string, payloads: string[], lines: number): Promise<{ responses: Array<Record<string, any>>, closed: boolean }> {
  return await new Promise((resolve, reject) => {
    const conn = createConnection(socket)
    const responses: Array<Record<string, any>> = []
    let buffered = ''
    let closed = false
    const done = (): void => { conn.destroy(); resolve({ responses, closed }) }
    conn.setEncoding('utf8')
    conn.on('data', (chunk: string) => {
      buffered += chunk
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        responses.push(JSON.parse(buffered.slice(0, nl)))
        buffered = buffered.slice(nl + 1)
      }
      if (responses.length >= lines) done()
    })
    conn.on('close', () => { closed = true; resolve({ responses, closed }) })
    conn.on('error', err => { if (responses.length >= lines) done(); else reject(err) })
    conn.on('connect', () => { for (const p of payloads) conn.write(p) })
  })
}

describe('control socket and CLI input handling', () => {
  let t: TestMesh
  let socket: string

  beforeAll(async () => {
    t = await startTestMesh(2)
    socket = t.mesh.node('aitbc').socket
  })

  it('creates the control socket with mode 0660', () => {
    expect(statSync(socket).mode & 0o777).toBe(0o660)
  })

  it('answers malformed JSON, bad requests and unknown methods with errors and keeps the connection', async () => {
    const { responses, closed } = await raw(socket, [
      'this is not json\n',
      '{"jsonrpc":"2.0","id":1}\n',
      '[1,2,3]\n',
      '{"jsonrpc":"2.0","id":2,"method":"reboot"}\n',
      '{"jsonrpc":"2.0","id":3,"method":"op","params":{"operation":"status","timeout":500}}\n',
      '{"jsonrpc":"2.0","id":4,"method":"id"}\n'
    ], 6)
    expect(closed).toBe(false)
    expect(responses[0]).toMatchObject({ id: null, error: { code: -32700, message: expect.stringContaining('not valid JSON') } })
    expect(responses[1]).toMatchObject({ id: 1, error: { code: -32600, message: expect.stringContaining('"method"') } })
    expect(responses[2]).toMatchObject({ id: null, error: { code: -32600 } })
    const byId = new Map(responses.slice(3).map(r => [r.id, r]))
    expect(byId.get(2)).toMatchObject({ error: { code: -32601, message: expect.stringMatching(/unknown method "reboot"; available: .*status/) } })
    expect(byId.get(3)).toMatchObject({ error: { code: -32602, message: 'operation: "timeout": at most 120 seconds' } })
    expect(byId.get(4)?.result).toMatchObject({ name: 'aitbc', role: 'genesis' })
  })

  it('closes a connection whose request exceeds the size limit, and keeps serving others', async () => {
    const huge = '{"jsonrpc":"2.0","id":1,"method":"op","params":{"message":"' + 'x'.repeat(1_200_000) + '"}}\n'
    const { responses, closed } = await raw(socket, [huge], 1)
    expect(responses[0]).toMatchObject({ error: { code: -32001, message: expect.stringContaining('exceeds 1048576 bytes') } })
    expect(closed || responses.length === 1).toBe(true)
    const res = await t.mesh.cli('aitbc', ['status', '--json'])
    expect(res.code).toBe(0)
  })

  it('gives exit 2 with a clear message for bad op JSON and bad options, and the daemon keeps serving', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['op', '{"operation":'], /op: invalid JSON: .*expected e\.g\./],
      [['op', '[1]'], /expected a JSON object/],
      [['op', '{"operation":"reboot"}'], /"operation": expected one of sync, status, message, coordinate, health/],
      [['op', '{"operation":"status","timeout":121}'], /"timeout": at most 120 seconds/],
      [['op', '{"operation":"status","target_node":"nowhere"}'], /unknown target "nowhere"; valid targets: all, genesis, follower, aitbc, aitbc1/],
      [['op', '{"operation":"status","bogus":1}'], /unknown field\(s\) bogus/],
      [['status', '--timeout', '500'], /--timeout "500": expected seconds, more than 0 and at most 120/],
      [['status', '--target', ''], /target "" is empty/],
      [['status', '--no-such-flag'], /unknown option/]
    ]
    for (const [args, message] of cases) {
      const res = await t.mesh.cli('aitbc', args)
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(2)
      expect(res.stderr, args.join(' ')).toMatch(message)
    }
    const ok = await t.mesh.cli('aitbc', ['status', '--target', 'all', '--json'])
    expect(ok.code).toBe(0)
    expect(JSON.parse(ok.stdout).validation_status).toBe('success')
  })

  it('exits 3 when no daemon answers', async () => {
    const res = await runCli(['status', '--socket', join(tempDir(), 'missing.sock')])
    expect(res.code).toBe(3)
    expect(res.stderr).toMatch(/cannot reach the daemon on .*missing\.sock: no such socket/)
  })

  it('finds the socket from --config without parsing the whole file, and names a broken config when no daemon answers', async () => {
    const node = t.mesh.node('aitbc')
    const file = join(tempDir(), 'mesh.yaml')
    writeFileSync(file, `controlSocket: ${node.socket}\n`)
    const ok = await runCli(['id', '--json', '--config', file])
    expect(ok.code, ok.stderr).toBe(0)
    expect(JSON.parse(ok.stdout).name).toBe('aitbc')
    writeFileSync(file, `controlSocket: ${join(tempDir(), 'missing.sock')}\nnode: [unclosed\n`)
    const broken = await runCli(['status', '--config', file])
    expect(broken.code).toBe(2)
    expect(broken.stderr).toMatch(/mesh\.yaml: invalid YAML: /)
  })

  it('refuses a second daemon on the same control socket and leaves the first one serving', async () => {
    const node = t.mesh.node('aitbc')
    const res = await runCli(['daemon', '--config', node.configFile])
    expect(res.code).not.toBe(0)
    expect(res.stdout + res.stderr).toMatch(/control socket .* is in use|EADDRINUSE|address already in use/)
    expect(existsSync(node.socket)).toBe(true)
    expect((await t.mesh.cli('aitbc', ['id'])).code).toBe(0)
  })

  it('refuses a bad config at start, naming the file and the field, and starts nothing', async () => {
    const dir = tempDir()
    const file = join(dir, 'mesh.yaml')
    const cases: Array<[string, RegExp]> = [
      ['node: { name: n1, role: leader }\ndataDir: .\n', /mesh\.yaml: node\.role: expected "genesis" or "follower"/],
      ['node: { name: n1, role: genesis }\ndataDir: .\nlisten: [tcp-7070]\n', /mesh\.yaml: listen\[0\]: expected a multiaddr/],
      ['node: { name: n1, role: genesis }\ndataDir: .\npeer: []\n', /mesh\.yaml: \(top level\): unknown field\(s\) peer/],
      ['node: { name: n1, role: genesis }\ndataDir: .\npeers:\n  - { name: n2, role: follower, addr: /ip4/127.0.0.1/tcp/7070 }\n', /mesh\.yaml: peers\[0\]\.addr: expected \/ip4\/<address>\/tcp\/<port>\/p2p\/<peer id>/],
      ['node: [unclosed\n', /mesh\.yaml: line \d+, column \d+: invalid YAML/]
    ]
    for (const [text, message] of cases) {
      writeFileSync(file, text)
      const res = await runCli(['daemon', '--config', file])
      expect(res.code, text).toBe(2)
      expect(res.stderr, text).toMatch(message)
      expect(existsSync(join(dir, 'mesh.sock'))).toBe(false)
    }
  })
})
