import { spawn } from 'node:child_process'
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLI_ENTRY, freeLoopbackBlock, WaitAborted } from '../../src/devmesh/local-mesh.js'
import { onCleanup, runCli, tempDir, waitFor } from '../helpers.js'
import { holdPort, type HeldPort } from '../port-holder.js'
import { freePort, TestRedis } from '../redis.js'

/**
 * A hang check, not a performance figure: loading the daemon takes a second or two (two more
 * waiting for an unreachable Redis), then a failed listen must end the process.
 */
const PROMPT_EXIT_MS = 10_000
/** The exit code of a listen address held by another process (systemd retries it, unlike 2). */
const EXIT_LISTEN_ADDRESS_IN_USE = 75

interface Node { host: string, dir: string, config: string, socket: string }

/** A node made by the real CLI (`init`) on a loopback address of its own, port 7070. */
async function newNode (extraConfig = ''): Promise<Node> {
  const [host] = await freeLoopbackBlock(1)
  const dir = tempDir('aitbc-mesh-port-')
  const res = await runCli(['init', '--name', 'hub', '--role', 'genesis', '--dir', dir, '--listen', `/ip4/${host!}/tcp/7070`, '--json'])
  expect(res.code, res.stderr).toBe(0)
  const config = (JSON.parse(res.stdout) as { config: string }).config
  if (extraConfig !== '') writeFileSync(config, readFileSync(config, 'utf8') + extraConfig)
  return { host: host!, dir, config, socket: join(dir, 'mesh.sock') }
}

interface Run { code: number | null, stderr: string, log: Array<Record<string, unknown>>, elapsedMs: number }

/** Runs `aitbc-mesh daemon` to its end; a hang is killed at twice the bound, and fails it. */
async function runDaemon (node: Node, as?: { uid: number, gid: number }): Promise<Run> {
  const started = Date.now()
  const child = spawn(process.execPath, [CLI_ENTRY, 'daemon', '--config', node.config], { stdio: ['ignore', 'pipe', 'pipe'], ...(as ?? {}) })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  const hung = setTimeout(() => { child.kill('SIGKILL') }, 2 * PROMPT_EXIT_MS)
  const code = await new Promise<number | null>(resolve => child.once('close', c => { resolve(c) }))
  clearTimeout(hung)
  const log = stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
  return { code, stderr, log, elapsedMs: Date.now() - started }
}

/** What the operator sees: exit 75 at once, one line on stderr naming the address, the holder and the fix, the same in the journal. */
function expectPortRefusal (run: Run, node: Node, holder: string, fix: string): void {
  const listen = `/ip4/${node.host}/tcp/7070`
  const expected = `cannot listen on ${listen} (${node.host}:7070): address already in use, held by ${holder}; fix: ${fix}`
  expect(run.code, run.stderr).toBe(EXIT_LISTEN_ADDRESS_IN_USE)
  expect(run.elapsedMs).toBeLessThan(PROMPT_EXIT_MS)
  expect(run.stderr).toBe(`aitbc-mesh: ${expected}\n`)
  const failed = run.log.find(l => l.event === 'start_failed')
  expect(failed).toMatchObject({ level: 'fatal', err: expected, reason: 'listen_address_in_use', fix })
  expect((failed!.addresses as Array<Record<string, unknown>>).map(a => [a.listen, a.address])).toEqual([[listen, `${node.host}:7070`]])
  expect(run.log.some(l => l.event === 'ready')).toBe(false)
  // It ended because everything it opened was closed, not because the last-resort exit fired.
  expect(run.log.some(l => l.event === 'start_failed_exit_forced')).toBe(false)
  expect(existsSync(node.socket)).toBe(false)
}

/** The holder's process name as `ps` shows it (Node 24 names its main thread MainThread). */
function nameOf (held: HeldPort): string {
  return readFileSync(`/proc/${held.pid}/comm`, 'utf8').trim()
}

function relayHolder (held: HeldPort): string {
  return `pid ${held.pid} (${nameOf(held)}: ${held.cmdline})`
}

function relayFix (held: HeldPort, node: Node): string {
  return `stop or move pid ${held.pid} (${nameOf(held)}), or give the mesh another listen address in listen: of ${node.config} (every other node's peers[].addr for this node changes with it)`
}

describe('daemon: its listen port held by another process', () => {
  const stores: Array<[string, () => Promise<string>]> = [
    ['the embedded store', async () => ''],
    ['Redis configured and running', async () => `redis: ${(await new TestRedis().start()).url}\n`],
    ['Redis configured but not running', async () => `redis: redis://127.0.0.1:${await freePort()}/0\n`],
    ['http: configured', async () => `http: 127.0.0.1:${await freePort()}\n`]
  ]
  for (const [what, config] of stores) {
    it(`with ${what}: exits 75 within seconds, naming the address, the holder's pid and command line, and the fix`, async () => {
      const node = await newNode(await config())
      const held = await holdPort(node.host, 7070)
      const run = await runDaemon(node)
      expectPortRefusal(run, node, relayHolder(held), relayFix(held, node))
      const failed = run.log.find(l => l.event === 'start_failed')!
      expect((failed.addresses as Array<{ holders: unknown[] }>)[0]!.holders).toEqual([{ pid: held.pid, name: nameOf(held), cmdline: held.cmdline }])
    })
  }

  it('starts once the holder has gone: the failure clears, which is why systemd retries it', async () => {
    const node = await newNode()
    const held = await holdPort(node.host, 7070)
    expect((await runDaemon(node)).code).toBe(EXIT_LISTEN_ADDRESS_IN_USE)
    await held.stop()
    const child = spawn(process.execPath, [CLI_ENTRY, 'daemon', '--config', node.config], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
    child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c })
    const exit = new Promise<number | null>(resolve => child.once('exit', c => { resolve(c) }))
    let exited = false
    void exit.then(() => { exited = true })
    onCleanup(() => { if (!exited) child.kill('SIGKILL') })
    await waitFor('the daemon to be ready', () => {
      if (exited) throw new WaitAborted(`the daemon exited: ${out}`)
      return out.includes('"event":"ready"')
    })
    child.kill('SIGTERM')
    expect(await exit).toBe(0)
  })

  it('run as a user who may not read the holder\'s open files (the daemon under systemd is user aitbc): says whose process it is and how to name it', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test runs the daemon as user nobody while root holds its port: run it as root (.ci/run does)')
    const node = await newNode()
    // The node's folder, config, identity and store become nobody's.
    for (const file of [node.dir, ...readdirSync(node.dir).map(f => join(node.dir, f))]) chownSync(file, 65534, 65534)
    await holdPort(node.host, 7070)
    const run = await runDaemon(node, { uid: 65534, gid: 65534 })
    expectPortRefusal(run, node,
      'a process of user root (uid 0) that this user (uid 65534) may not inspect (run as root to name it)',
      `find it with \`sudo ss -ltnp 'sport = :7070'\` and stop or move it, or give the mesh another listen address in listen: of ${node.config} (every other node's peers[].addr for this node changes with it)`)
  })
})
