import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, expect, it } from 'vitest'
import { ControlClient } from '../../src/control/client.js'
import { CLI_ENTRY, freeLoopbackBlock, WaitAborted } from '../../src/devmesh/local-mesh.js'
import { onCleanup, runCli, tempDir, waitFor } from '../helpers.js'

/** A refusal must come at once, not after a start-up timeout. */
const PROMPT_EXIT_MS = 10_000
/** Enough agents that the store spans many pages, so one in the middle holds data. */
const AGENT_COUNT = 300

interface Node {
  dir: string
  config: string
  identity: string
  store: string
  marker: string
  socket: string
  peerId: string
}

/** A new node made by the real CLI (`init`), on a loopback address of its own. */
async function newNode (extraConfig = ''): Promise<Node> {
  const [host] = await freeLoopbackBlock(1)
  const dir = tempDir('aitbc-mesh-startup-')
  const res = await runCli(['init', '--name', 'solo', '--role', 'genesis', '--dir', dir, '--listen', `/ip4/${host!}/tcp/7070`, '--json'])
  expect(res.code, res.stderr).toBe(0)
  const out = JSON.parse(res.stdout) as { config: string, identity: string, peerId: string }
  if (extraConfig !== '') writeFileSync(out.config, readFileSync(out.config, 'utf8') + extraConfig)
  return { dir, config: out.config, identity: out.identity, store: join(dir, 'store.sqlite'), marker: join(dir, 'store.id'), socket: join(dir, 'mesh.sock'), peerId: out.peerId }
}

interface Running {
  child: ChildProcess
  lines: string[]
  stop: () => Promise<number | null>
}

/** Starts `aitbc-mesh daemon` and resolves once it logs ready; fails with its stderr if it exits first. */
async function startDaemon (node: Node, args: string[] = []): Promise<Running> {
  const child = spawn(process.execPath, [CLI_ENTRY, 'daemon', '--config', node.config, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { lines.push(...chunk.split('\n').filter(l => l !== '')) })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exit = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  let exited = false
  void exit.then(() => { exited = true })
  onCleanup(() => { if (!exited) child.kill('SIGKILL') })
  await waitFor('the daemon to be ready', () => {
    if (exited) throw new WaitAborted(`the daemon exited before it was ready: ${stderr.trim()}`)
    return lines.some(l => l.includes('"event":"ready"'))
  })
  return {
    child,
    lines,
    stop: async () => {
      if (!exited) child.kill('SIGTERM')
      return await exit
    }
  }
}

interface Refusal {
  code: number | null
  stderr: string
  /** The daemon's log lines (stdout), parsed. */
  log: Array<Record<string, unknown>>
  elapsedMs: number
}

/** Runs `aitbc-mesh daemon`, expecting it to refuse to start. */
async function refusedStart (node: Node, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Refusal> {
  const started = Date.now()
  const res = await runCli(['daemon', '--config', node.config, ...args], undefined, env)
  const log = res.stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
  return { code: res.code, stderr: res.stderr, log, elapsedMs: Date.now() - started }
}

/** The refusal as the operator sees it: exit 2 at once, one line on stderr, the reason in the journal, nothing listening. */
function expectRefused (refusal: Refusal, node: Node): void {
  expect(refusal.code, refusal.stderr).toBe(2)
  expect(refusal.elapsedMs).toBeLessThan(PROMPT_EXIT_MS)
  expect(refusal.stderr.trimEnd().split('\n')).toHaveLength(1)
  expect(refusal.stderr).toMatch(/^aitbc-mesh: /)
  expect(refusal.log.some(l => l.event === 'ready')).toBe(false)
  expect(refusal.log.find(l => l.event === 'start_failed')).toMatchObject({ level: 'fatal' })
  expect(existsSync(node.socket)).toBe(false)
}

async function registerAgents (node: Node, count: number): Promise<void> {
  const client = await ControlClient.connect(node.socket)
  try {
    for (let i = 0; i < count; i++) {
      await client.call('agents.register', { agent_id: `agent-${String(i).padStart(4, '0')}`, agent_type: 'worker', capabilities: ['gpu', 'inference'], metadata: { note: 'x'.repeat(200) } })
    }
  } finally {
    client.close()
  }
}

async function agentIds (node: Node): Promise<string[]> {
  const res = await runCli(['agents', 'list', '--json', '--socket', node.socket])
  expect(res.code, res.stderr).toBe(0)
  return (JSON.parse(res.stdout) as Array<{ agent_id: string }>).map(a => a.agent_id).sort()
}

/** Compacts the stopped node's store so every page holds data, then writes garbage over one in the middle. */
function damageMiddlePage (store: string): number {
  const db = new DatabaseSync(store)
  const pageSize = (db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size
  db.exec('VACUUM')
  const pages = (db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count
  const free = (db.prepare('PRAGMA freelist_count').get() as { freelist_count: number }).freelist_count
  db.close()
  expect(free).toBe(0)
  expect(pages).toBeGreaterThan(20)
  const page = Math.floor(pages / 2)
  const fd = openSync(store, 'r+')
  try {
    writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, page * pageSize)
  } finally {
    closeSync(fd)
  }
  return page
}

describe('daemon start-up checks its files', () => {
  it('a brand-new dataDir starts with no flag and marks the store it creates', async () => {
    const node = await newNode()
    expect(existsSync(node.store)).toBe(false)
    const daemon = await startDaemon(node, ['--create'])
    expect(existsSync(node.store)).toBe(true)
    expect(readFileSync(node.marker, 'utf8')).toMatch(/^aitbc-mesh embedded store: kept here since \d{4}-\d\d-\d\dT/)
    expect(await daemon.stop()).toBe(0)
    // And it starts again on the store it made.
    const again = await startDaemon(node)
    expect(await again.stop()).toBe(0)
  })

  it('refuses an identity key whose public half has a flipped byte, naming file and reason; doctor says to restore it', async () => {
    const node = await newNode()
    const key = readFileSync(node.identity)
    // libp2p's Ed25519 key file: 4 bytes of protobuf framing, the 32-byte seed, the 32-byte public key.
    expect(key.length).toBe(68)
    const damaged = Buffer.from(key)
    damaged[4 + 32 + 7]! ^= 0x01
    writeFileSync(node.identity, damaged)
    const refusal = await refusedStart(node)
    expectRefused(refusal, node)
    expect(refusal.stderr).toContain(`aitbc-mesh: ${node.identity}: identity: the key file is damaged: its public half (peer id `)
    expect(refusal.stderr).toContain(`does not match its private key (peer id ${node.peerId})`)
    expect(refusal.stderr).toMatch(/fix: restore .*identity\.key from a backup of this node; a new key .* every other node's config must then be updated/)

    const doctor = await runCli(['doctor', '--config', node.config])
    expect(doctor.code).toBe(1)
    expect(doctor.stdout).toMatch(new RegExp(`^FAIL identity key: ${node.identity}: the key file is damaged: .* — fix: restore ${node.identity} from a backup`, 'm'))

    // The private half damaged instead: refused too.
    const seedDamaged = Buffer.from(key)
    seedDamaged[4 + 3]! ^= 0x80
    writeFileSync(node.identity, seedDamaged)
    const second = await refusedStart(node)
    expectRefused(second, node)
    expect(second.stderr).toContain(`its public half (peer id ${node.peerId}) does not match its private key`)

    writeFileSync(node.identity, key)
    await (await startDaemon(node)).stop()
  })

  it('refuses an empty store.sqlite where data was expected; --fresh-store starts afresh and keeps the empty file aside', async () => {
    const node = await newNode()
    const daemon = await startDaemon(node)
    await registerAgents(node, 3)
    expect(await daemon.stop()).toBe(0)

    writeFileSync(node.store, '')
    rmSync(node.store + '-wal', { force: true })
    const refusal = await refusedStart(node)
    expectRefused(refusal, node)
    expect(refusal.stderr).toContain(`aitbc-mesh: ${node.store}: empty (0 bytes), but store.id shows this node's store was kept here (since `)
    expect(refusal.stderr).toContain(`; fix: restore store.sqlite from a backup, with the daemon stopped; or start with an empty store once: aitbc-mesh daemon --config ${node.config} --fresh-store`)
    expect(refusal.log.find(l => l.event === 'store_refused')).toMatchObject({ level: 'error', file: node.store, state: 'empty' })
    // Refusing changed nothing.
    expect(statSync(node.store).size).toBe(0)

    const doctor = await runCli(['doctor', '--config', node.config])
    expect(doctor.stdout).toMatch(new RegExp(`^FAIL embedded store: ${node.store}: empty \\(0 bytes\\), .* — fix: restore store\\.sqlite from a backup`, 'm'))

    const fresh = await startDaemon(node, ['--fresh-store'])
    const moved = fresh.lines.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.event === 'store_moved_aside')
    expect(moved).toMatchObject({ level: 'warn', file: node.store, state: 'empty' })
    expect(moved!.movedTo).toMatch(new RegExp(`^${node.store}\\.damaged\\.\\d{8}T\\d{6}Z$`))
    expect(statSync(moved!.movedTo as string).size).toBe(0)
    expect(await agentIds(node)).toEqual([])
    expect(await fresh.stop()).toBe(0)
  })

  it('refuses a store.sqlite that is missing where data was expected', async () => {
    const node = await newNode()
    await (await startDaemon(node)).stop()
    rmSync(node.store)
    const refusal = await refusedStart(node)
    expectRefused(refusal, node)
    expect(refusal.stderr).toContain(`aitbc-mesh: ${node.store}: missing, but store.id shows this node's store was kept here`)
    expect(existsSync(node.store)).toBe(false)
  })

  it('refuses a store with a damaged page; --fresh-store keeps the damaged copy aside; a later --fresh-store keeps an intact store', async () => {
    const node = await newNode()
    const daemon = await startDaemon(node)
    await registerAgents(node, AGENT_COUNT)
    expect((await agentIds(node)).length).toBe(AGENT_COUNT)
    expect(await daemon.stop()).toBe(0)

    damageMiddlePage(node.store)
    const damagedBytes = readFileSync(node.store)
    const refusal = await refusedStart(node)
    expectRefused(refusal, node)
    expect(refusal.stderr).toMatch(new RegExp(`^aitbc-mesh: ${node.store}: damaged: .*; fix: restore store\\.sqlite from a backup`))
    expect(refusal.log.find(l => l.event === 'store_refused')).toMatchObject({ file: node.store, state: 'damaged' })
    expect(readFileSync(node.store).equals(damagedBytes)).toBe(true)

    const doctor = await runCli(['doctor', '--config', node.config])
    expect(doctor.stdout).toMatch(new RegExp(`^FAIL embedded store: ${node.store}: damaged: .* — fix: restore store\\.sqlite from a backup`, 'm'))

    const fresh = await startDaemon(node, ['--fresh-store'])
    expect(await agentIds(node)).toEqual([])
    const asides = readdirSync(node.dir).filter(f => /^store\.sqlite\.damaged\.\d{8}T\d{6}Z$/.test(f))
    expect(asides).toHaveLength(1)
    expect(readFileSync(join(node.dir, asides[0]!)).equals(damagedBytes)).toBe(true)
    await registerAgents(node, 2)
    expect(await fresh.stop()).toBe(0)

    // Left on the command line, --fresh-store does not throw away an intact store.
    const kept = await startDaemon(node, ['--fresh-store'])
    expect(kept.lines.some(l => l.includes('"event":"fresh_store_not_needed"'))).toBe(true)
    expect(await agentIds(node)).toEqual(['agent-0000', 'agent-0001'])
    expect(await kept.stop()).toBe(0)
  })

  it('a store made before store.id existed is checked, kept and marked; a damaged one is refused', async () => {
    const node = await newNode()
    const daemon = await startDaemon(node)
    await registerAgents(node, AGENT_COUNT)
    expect(await daemon.stop()).toBe(0)

    rmSync(node.marker)
    const upgraded = await startDaemon(node)
    expect((await agentIds(node)).length).toBe(AGENT_COUNT)
    expect(existsSync(node.marker)).toBe(true)
    expect(await upgraded.stop()).toBe(0)

    rmSync(node.marker)
    damageMiddlePage(node.store)
    const refusal = await refusedStart(node)
    expectRefused(refusal, node)
    expect(refusal.stderr).toContain(`aitbc-mesh: ${node.store}: damaged: `)
  })

  it('refuses an invalid redis: URL in the config as a config error naming file and field, without the password', async () => {
    const cases: Array<[string, string]> = [
      ['redis://:s3cret@127.0.0.1:notaport/2', 'port "notaport" is not a number from 1 to 65535'],
      ['redis://[bad', 'IPv6 address "[bad" has no closing "]"'],
      ['redis://127.0.0.1:6379/16', 'database "16" is not a number from 0 to 15 (Redis\'s default databases 16)']
    ]
    for (const [url, reason] of cases) {
      const node = await newNode(`redis: ${JSON.stringify(url)}\n`)
      const refusal = await refusedStart(node)
      expect(refusal.code, url).toBe(2)
      expect(refusal.elapsedMs).toBeLessThan(PROMPT_EXIT_MS)
      expect(refusal.stderr).toBe(`aitbc-mesh: ${node.config}: redis: ${reason}; expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379/1\n`)
      expect(refusal.stderr).not.toContain('s3cret')
    }
  })

  it('refuses an invalid REDIS_URL from the environment, naming it as the field', async () => {
    const node = await newNode()
    const refusal = await refusedStart(node, [], { REDIS_URL: 'redis://:s3cret@127.0.0.1:notaport/2' })
    expect(refusal.code).toBe(2)
    expect(refusal.stderr).toMatch(new RegExp(`^aitbc-mesh: ${node.config}: REDIS_URL \\(environment\\): port "notaport" is not a number from 1 to 65535; .*; fix: correct REDIS_URL where it is set`))
    expect(refusal.stderr).not.toContain('s3cret')
    // doctor reports it the same way.
    const doctor = await runCli(['doctor', '--config', node.config], undefined, { REDIS_URL: 'redis://127.0.0.1:6379/abc' })
    expect(doctor.stdout).toMatch(/^FAIL config valid: .*REDIS_URL \(environment\): database "abc" is not a number from 0 to 15/m)
  })
})
