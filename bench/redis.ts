import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import { waitFor } from '../src/devmesh/local-mesh.js'

export async function freePort (): Promise<number> {
  return await new Promise(resolve => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => { resolve(p) }) })
  })
}

/** A redis-server of the benchmark's own on a free port, data in `dir`. */
export async function startRedis (dir: string, appendOnly = true): Promise<{ url: string, port: number, proc: ChildProcess }> {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', appendOnly ? 'yes' : 'no', '--save', ''], { stdio: 'ignore' })
  await waitFor('redis-server', async () => {
    const client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => null, lazyConnect: true })
    client.on('error', () => {})
    try {
      await client.connect()
      return (await client.ping()) === 'PONG'
    } finally {
      client.disconnect()
    }
  }, 10000, 50)
  return { url: `redis://127.0.0.1:${port}/0`, port, proc }
}
