import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { onCleanup, tempDir, waitFor } from './helpers.js'

/** Fails with a clear message when the machine has no redis-server. */
export function requireRedisServer (): string {
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (found.error != null || found.status !== 0) {
    throw new Error('redis-server is not installed: the store tests start their own Redis instances. Install it (Debian: apt-get install redis-server; .ci/run does this).')
  }
  return found.stdout.trim()
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => { resolve(port) })
    })
  })
}

export interface TestRedisOptions {
  /**
   * Persistence: `always` (append-only, fsync per write; the default), `everysec`, or `none`
   * (Redis's stock settings without a config file: nothing on disk but snapshots, which are off here).
   */
  persistence?: 'always' | 'everysec' | 'none'
  /** More redis-server arguments, e.g. ['--rename-command', 'CONFIG', '']. */
  extraArgs?: string[]
}

/** A redis-server of the test's own, on a free port, with the append-only file in its own folder. */
export class TestRedis {
  private process?: ChildProcess
  readonly dir: string
  port = 0

  /** With a password, the server requires AUTH and `url` carries it. */
  constructor (readonly password?: string, private readonly options: TestRedisOptions = {}) {
    requireRedisServer()
    this.dir = join(tempDir('aitbc-mesh-redis-'), 'data')
    mkdirSync(this.dir, { recursive: true })
    onCleanup(async () => { await this.stop('SIGKILL') })
  }

  get url (): string {
    return `redis://${this.password != null ? `:${encodeURIComponent(this.password)}@` : ''}127.0.0.1:${this.port}/0`
  }

  async start (): Promise<this> {
    if (this.port === 0) this.port = await freePort()
    const persistence = this.options.persistence ?? 'always'
    const aof = persistence === 'none' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', persistence]
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      ...aof, '--save', '', '--daemonize', 'no', '--loglevel', 'warning',
      ...(this.password != null ? ['--requirepass', this.password] : []), ...(this.options.extraArgs ?? [])], { stdio: 'ignore' })
    this.process = child
    await waitFor(`redis-server on port ${this.port}`, async () => {
      if (child.exitCode != null) throw new Error(`redis-server exited with ${child.exitCode}`)
      const client = this.client()
      try {
        return (await client.ping()) === 'PONG'
      } finally {
        client.disconnect()
      }
    }, 10000, 50)
    return this
  }

  async stop (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.process
    if (child == null || child.exitCode != null || child.signalCode != null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill(signal)
    await exited
  }

  /** Stalls the server (SIGSTOP): connections stay open, nothing is answered until `resume`. */
  pause (): void {
    this.process?.kill('SIGSTOP')
  }

  resume (): void {
    this.process?.kill('SIGCONT')
  }

  /** Kills the server, deletes its files and starts it again on the same port with nothing in it. */
  async restartEmpty (): Promise<void> {
    this.resume()
    await this.stop('SIGKILL')
    rmSync(this.dir, { recursive: true, force: true })
    mkdirSync(this.dir, { recursive: true })
    await this.start()
  }

  client (): Redis {
    const client = new Redis(this.url, { lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null })
    client.on('error', () => {}) // failures surface as rejected commands
    return client
  }
}
