import { createServer, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StandInRpc } from '../../src/devmesh/stand-in-rpc.js'
import { BlockchainRpc } from '../../src/operations/probes/rpc.js'
import { formatUptime } from '../../src/operations/probes/systemd.js'

describe('formatUptime', () => {
  it.each([
    [0, '0s'],
    [42, '42s'],
    [59.9, '59s'],
    [60, '1m'],
    [59 * 60 + 59, '59m'],
    [3600, '1h 0m'],
    [2 * 3600 + 5 * 60 + 30, '2h 5m'],
    [86400, '1d 0h 0m'],
    [5 * 86400 + 12 * 3600 + 34 * 60 + 56, '5d 12h 34m'],
    [400 * 86400 + 3 * 3600, '400d 3h 0m']
  ])('%d s -> %s', (seconds, expected) => {
    expect(formatUptime(seconds)).toBe(expected)
  })

  it('never prints a negative uptime', () => {
    expect(formatUptime(-5)).toBe('0s')
  })
})

/** A one-off HTTP server on 127.0.0.1 for the cases the stand-in cannot produce. */
async function tinyServer (handler: RequestListener): Promise<{ url: string, server: Server }> {
  const server = createServer(handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => { resolve() }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

async function close (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>(resolve => server.close(() => { resolve() }))
}

describe('BlockchainRpc against the stand-in RPC', () => {
  const stand = new StandInRpc({ height: 4321, mempool: 37 })
  let url: string
  let rpc: BlockchainRpc

  beforeAll(async () => {
    url = await stand.start('127.0.0.1', 0)
    rpc = new BlockchainRpc(url)
  })
  afterAll(async () => { await stand.stop() })

  it('reads the head height', async () => {
    stand.state.headStatus = 200
    stand.state.height = 4321
    expect(await rpc.head()).toEqual({ ok: true, value: 4321 })
    stand.state.height = 0
    expect(await rpc.head()).toEqual({ ok: true, value: 0 })
  })

  it('reports "no block yet" when /rpc/head answers 404', async () => {
    stand.state.headStatus = 404
    try {
      expect(await rpc.head()).toEqual({ ok: false, reason: `no block yet (GET ${url}/rpc/head returned 404)` })
    } finally {
      stand.state.headStatus = 200
    }
  })

  it('reports another HTTP error status of /rpc/head', async () => {
    stand.state.headStatus = 500
    try {
      expect(await rpc.head()).toEqual({ ok: false, reason: `GET ${url}/rpc/head returned HTTP 500` })
    } finally {
      stand.state.headStatus = 200
    }
  })

  it('reads the mempool count, capped by the limit', async () => {
    stand.state.mempool = 37
    expect(await rpc.mempoolSize(100)).toEqual({ ok: true, value: 37 })
    expect(await rpc.mempoolSize(10)).toEqual({ ok: true, value: 10 })
    stand.state.mempool = 0
    expect(await rpc.mempoolSize(100)).toEqual({ ok: true, value: 0 })
  })

  it('reads health "ok" when healthy', async () => {
    stand.state.healthy = true
    expect(await rpc.health()).toEqual({ ok: true, value: 'ok' })
  })

  it('gives the reason when unhealthy', async () => {
    stand.state.healthy = false
    try {
      expect(await rpc.health()).toEqual({ ok: false, reason: `GET ${url}/health returned HTTP 503 (status "error")` })
    } finally {
      stand.state.healthy = true
    }
  })
})

describe('BlockchainRpc failures', () => {
  it('an unreachable URL gives a reason naming the URL', async () => {
    // A port that was free a moment ago: nothing listens there now.
    const { url, server } = await tinyServer((_req, res) => { res.end() })
    await close(server)
    const rpc = new BlockchainRpc(url)
    const head = await rpc.head()
    expect(head.ok).toBe(false)
    expect(!head.ok && head.reason).toMatch(new RegExp(`^GET ${url}/rpc/head failed: .*ECONNREFUSED`))
    const mempool = await rpc.mempoolSize(100)
    expect(!mempool.ok && mempool.reason).toContain(`GET ${url}/rpc/mempool?limit=100 failed`)
    const health = await rpc.health()
    expect(!health.ok && health.reason).toContain(`GET ${url}/health failed`)
  })

  describe('against a misbehaving server', () => {
    let url: string
    let server: Server
    const replies = new Map<string, { status: number, body: string }>()

    beforeAll(async () => {
      ({ url, server } = await tinyServer((req, res) => {
        const path = new URL(req.url ?? '/', 'http://x').pathname
        if (path.startsWith('/hang/')) return // never answers
        const reply = replies.get(path) ?? { status: 404, body: '{}' }
        res.writeHead(reply.status, { 'content-type': 'application/json' })
        res.end(reply.body)
      }))
    })
    afterAll(async () => { await close(server) })

    it('a head body without a height gives a reason', async () => {
      replies.set('/rpc/head', { status: 200, body: JSON.stringify({ hash: '0xabc' }) })
      expect(await new BlockchainRpc(url).head()).toEqual({ ok: false, reason: `GET ${url}/rpc/head returned no integer "height"` })
    })

    it.each([['-1', -1], ['a string', '"12"'], ['a fraction', 1.5]])('a head height that is %s gives a reason', async (_label, height) => {
      replies.set('/rpc/head', { status: 200, body: `{"height":${String(height)}}` })
      expect(await new BlockchainRpc(url).head()).toEqual({ ok: false, reason: `GET ${url}/rpc/head returned no integer "height"` })
    })

    it('a body that is not JSON gives a reason', async () => {
      replies.set('/rpc/head', { status: 200, body: '<html>hello</html>' })
      expect(await new BlockchainRpc(url).head()).toEqual({ ok: false, reason: `GET ${url}/rpc/head returned 200 with a body that is not JSON` })
    })

    it('a mempool body without a count gives a reason', async () => {
      replies.set('/rpc/mempool', { status: 200, body: JSON.stringify({ transactions: [] }) })
      expect(await new BlockchainRpc(url).mempoolSize(5)).toEqual({ ok: false, reason: `GET ${url}/rpc/mempool?limit=5 returned no integer "count"` })
    })

    it('a health status other than ok/healthy/up gives a reason; "healthy" and "UP" are fine', async () => {
      replies.set('/health', { status: 200, body: JSON.stringify({ status: 'degraded' }) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: false, reason: `GET ${url}/health reports status "degraded"` })
      replies.set('/health', { status: 200, body: JSON.stringify({ status: 'healthy' }) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: true, value: 'healthy' })
      replies.set('/health', { status: 200, body: JSON.stringify({ status: 'UP' }) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: true, value: 'UP' })
      replies.set('/health', { status: 200, body: JSON.stringify({}) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: false, reason: `GET ${url}/health returned no "status"` })
    })

    it('a server that does not answer gives a timeout reason', async () => {
      const rpc = new BlockchainRpc(`${url}/hang`, 200)
      expect(await rpc.head()).toEqual({ ok: false, reason: `GET ${url}/hang/rpc/head timed out after 200 ms` })
    })
  })
})
