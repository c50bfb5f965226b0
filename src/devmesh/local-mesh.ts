import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { ensureIdentity, ensureSwarmKey } from '../mesh/identity.js'
import { ControlClient } from '../control/client.js'
import { DAEMON_ENV, DAEMON_NODE_FLAGS, SWARM_KEY_FILE_NAME } from '../constants.js'

/**
 * Runs a mesh of real daemon processes on this machine, each on its own loopback address and
 * the same port, as on separate hosts. Used by `npm run demo`, the benchmarks and the tests.
 */

/** The built CLI, whether this module runs from dist/ or (under the test runner) from src/. */
function findCliEntry (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('cannot find the project root above ' + fileURLToPath(import.meta.url))
    dir = parent
  }
  return join(dir, 'dist', 'src', 'cli', 'main.js')
}

export const CLI_ENTRY = findCliEntry()

/** Thrown from a waitFor check to stop waiting at once. */
export class WaitAborted extends Error {}

export interface LocalNodeSpec {
  name: string
  role: 'genesis' | 'follower'
  host: string
  port?: number
  /** Extra config fields merged over the generated ones (probes, heartbeat, ...). */
  config?: Record<string, unknown>
}

export interface LocalNode {
  spec: LocalNodeSpec
  dir: string
  configFile: string
  socket: string
  peerId: string
  addr: string
  process?: ChildProcess
  /** Every line the daemon wrote to stdout, across restarts. */
  logLines: string[]
  exit?: Promise<number | null>
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export async function waitFor<T> (what: string, check: () => T | undefined | false | null | Promise<T | undefined | false | null>, timeoutMs = 15000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false && value !== null) return value
    } catch (err) {
      if (err instanceof WaitAborted) throw err
      lastError = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError != null ? ` (last error: ${(lastError as Error).message})` : ''}`)
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

/** True if `host:port` can be bound now. */
export async function canListen (host: string, port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(port, host, () => { server.close(() => { resolve(true) }) })
  })
}

/** A block of loopback addresses 127.a.b.1..count that are all free on `port`. */
export async function freeLoopbackBlock (count: number, port = 7070): Promise<string[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const a = 100 + Math.floor(Math.random() * 150)
    const b = Math.floor(Math.random() * 256)
    const hosts = Array.from({ length: count }, (_, i) => `127.${a}.${b}.${i + 1}`)
    const free = await Promise.all(hosts.map(async h => await canListen(h, port)))
    if (free.every(Boolean)) return hosts
  }
  throw new Error(`no free block of ${count} loopback addresses on port ${port}`)
}

export class LocalMesh {
  readonly nodes = new Map<string, LocalNode>()
  private constructor (readonly baseDir: string, readonly env: NodeJS.ProcessEnv, private readonly launchPrefix?: (name: string) => string[]) {}

  /**
   * Creates identities and configs; every node allowlists all the others. `launchPrefix`: a
   * command each daemon is started under (e.g. `ip netns exec NS`, to run it in a network namespace).
   */
  static async create (baseDir: string, specs: LocalNodeSpec[], opts: { swarmKey?: boolean, heartbeatMs?: number, env?: NodeJS.ProcessEnv, launchPrefix?: (name: string) => string[] } = {}): Promise<LocalMesh> {
    const mesh = new LocalMesh(baseDir, opts.env ?? {}, opts.launchPrefix)
    mkdirSync(baseDir, { recursive: true })
    const swarmKeyFile = join(baseDir, SWARM_KEY_FILE_NAME)
    if (opts.swarmKey === true) ensureSwarmKey(swarmKeyFile)
    for (const spec of specs) {
      const dir = join(baseDir, spec.name)
      const { identity } = await ensureIdentity(join(dir, 'identity.key'))
      const peerId = identity.peerId.toString()
      mesh.nodes.set(spec.name, {
        spec,
        dir,
        configFile: join(dir, 'mesh.yaml'),
        socket: join(dir, 'mesh.sock'),
        peerId,
        addr: `/ip4/${spec.host}/tcp/${spec.port ?? 7070}/p2p/${peerId}`,
        logLines: []
      })
    }
    for (const node of mesh.nodes.values()) {
      mesh.writeConfig(node, opts.swarmKey === true ? swarmKeyFile : undefined, opts.heartbeatMs)
    }
    return mesh
  }

  writeConfig (node: LocalNode, swarmKeyFile?: string, heartbeatMs?: number, overrides: Record<string, unknown> = {}): void {
    const config: Record<string, unknown> = {
      node: { name: node.spec.name, role: node.spec.role },
      listen: [`/ip4/${node.spec.host}/tcp/${node.spec.port ?? 7070}`],
      identity: 'identity.key',
      dataDir: '.',
      controlSocket: 'mesh.sock',
      ...(swarmKeyFile != null ? { swarmKey: swarmKeyFile } : {}),
      peers: [...this.nodes.values()].filter(n => n !== node).map(n => ({ name: n.spec.name, role: n.spec.role, addr: n.addr })),
      heartbeat: { intervalMs: heartbeatMs ?? 1000 },
      ...node.spec.config,
      ...overrides
    }
    writeFileSync(node.configFile, stringify(config))
  }

  node (name: string): LocalNode {
    const node = this.nodes.get(name)
    if (node == null) throw new Error(`no node ${name} in this mesh`)
    return node
  }

  /** Whether the node's daemon process is running. */
  isRunning (name: string): boolean {
    const child = this.node(name).process
    return child != null && child.exitCode == null && child.signalCode == null
  }

  /** Starts the daemon process and resolves when it logs that it is ready. */
  async start (name: string, timeoutMs = 15000): Promise<LocalNode> {
    const node = this.node(name)
    if (node.process != null && node.process.exitCode == null && node.process.signalCode == null) throw new Error(`${name} is already running`)
    const logFile = createWriteStream(join(node.dir, 'daemon.log'), { flags: 'a' })
    const [command, ...args] = [...this.launchPrefix?.(name) ?? [], process.execPath, ...DAEMON_NODE_FLAGS, CLI_ENTRY, 'daemon', '--config', node.configFile]
    const child = spawn(command!, args, {
      env: { ...process.env, ...DAEMON_ENV, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    node.process = child
    const firstLine = node.logLines.length
    let partial = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      logFile.write(chunk)
      partial += chunk
      const lines = partial.split('\n')
      partial = lines.pop() ?? ''
      node.logLines.push(...lines.filter(l => l !== ''))
    })
    let stderr = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => { stderr += chunk; logFile.write(chunk) })
    node.exit = new Promise(resolve => child.once('exit', code => { logFile.end(); resolve(code) }))
    let exited = false
    void node.exit.then(() => { exited = true })
    await waitFor(`${name} to be ready`, () => {
      if (exited) throw new WaitAborted(`${name} exited before it was ready: ${stderr.trim()}`)
      return node.logLines.slice(firstLine).some(l => l.includes('"event":"ready"'))
    }, timeoutMs)
    return node
  }

  async startAll (): Promise<void> {
    await Promise.all([...this.nodes.keys()].map(async name => await this.start(name)))
  }

  /** Sends `signal` and waits for the process to exit; resolves with its exit code. */
  async stop (name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const node = this.node(name)
    const child = node.process
    if (child == null || child.exitCode != null || child.signalCode != null) return child?.exitCode ?? null
    child.kill(signal)
    return await node.exit!
  }

  async stopAll (): Promise<void> {
    await Promise.all([...this.nodes.keys()].map(async name => await this.stop(name)))
  }

  async client (name: string): Promise<ControlClient> {
    return await ControlClient.connect(this.node(name).socket)
  }

  /** Runs the real CLI as a separate process against `name`'s daemon. */
  async cli (name: string | undefined, args: string[], input?: string): Promise<CliResult> {
    const socketArgs = name != null ? ['--socket', this.node(name).socket] : []
    return await runCli([...args, ...socketArgs], input, this.env)
  }
}

export async function runCli (args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_ENTRY, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    child.once('error', reject)
    child.once('close', code => { resolve({ code, stdout, stderr }) })
    // A command that exits before reading its stdin closes the pipe: its exit code tells, not EPIPE.
    child.stdin.on('error', () => {})
    child.stdin.end(input ?? '')
  })
}
