import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
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

/** A redis-server of the test's own, on a free port, with the append-only file in its own folder. */
export class TestRedis {
  private process?: ChildProcess
  readonly dir: string
  port = 0

  /** With a password, the server requires AUTH and `url` carries it. */
  constructor (readonly password?: string) {
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
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--loglevel', 'warning',
      ...(this.password != null ? ['--requirepass', this.password] : [])], { stdio: 'ignore' })
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

  client (): Redis {
    const client = new Redis(this.url, { lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null })
    client.on('error', () => {}) // failures surface as rejected commands
    return client
  }
}
