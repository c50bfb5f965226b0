import { createServer, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StandInRpc } from '../../src/devmesh/stand-in-rpc.js'
import { BlockchainRpc, parseRetryAfter, parseSupportedChains } from '../../src/operations/probes/rpc.js'
import { MEMPOOL_PROBE_LIMIT, PROBE_HTTP_MAX_RESPONSE_BYTES, RATE_LIMIT_MAX_RETRY_AFTER_MS } from '../../src/constants.js'
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
  const stand = new StandInRpc({ height: 4321, mempool: 37, otherChains: { 'ait-testnet': { height: 12, mempool: 3, headStatus: 200 } } }, { rateLimit: null })
  let url: string
  let rpc: BlockchainRpc

  beforeAll(async () => {
    url = await stand.start('127.0.0.1', 0)
    rpc = new BlockchainRpc(url)
  })
  afterAll(async () => { await stand.stop() })

  it('reads the head height of the default chain and of a named chain', async () => {
    stand.state.headStatus = 200
    stand.state.height = 4321
    expect(await rpc.head()).toEqual({ ok: true, value: 4321 })
    expect(await rpc.head('ait-devnet')).toEqual({ ok: true, value: 4321 })
    expect(await rpc.head('ait-testnet')).toEqual({ ok: true, value: 12 })
    expect(stand.log.at(-1)).toMatchObject({ path: '/rpc/head', chainId: 'ait-testnet' })
    stand.state.height = 0
    expect(await rpc.head()).toEqual({ ok: true, value: 0 })
  })

  it('reports "no block yet" (state no-block) when /rpc/head answers 404', async () => {
    stand.state.headStatus = 404
    try {
      expect(await rpc.head('ait-devnet')).toEqual({ ok: false, state: 'no-block', reason: `no block yet on ait-devnet (GET ${url}/rpc/head?chain_id=ait-devnet returned 404)` })
      expect(await rpc.head()).toEqual({ ok: false, state: 'no-block', reason: `no block yet (GET ${url}/rpc/head returned 404)` })
    } finally {
      stand.state.headStatus = 200
    }
  })

  it('reports another HTTP error status of /rpc/head as a plain failure', async () => {
    stand.state.headStatus = 500
    try {
      expect(await rpc.head()).toEqual({ ok: false, reason: `GET ${url}/rpc/head returned HTTP 500` })
    } finally {
      stand.state.headStatus = 200
    }
  })

  it('counts the mempool of the named chain only: without chain_id the RPC counts chain "" (0)', async () => {
    stand.state.mempool = 37
    expect(await rpc.mempoolSize('ait-devnet', 100)).toEqual({ ok: true, value: { count: 37, atLeast: false } })
    expect(await rpc.mempoolSize('ait-testnet', 100)).toEqual({ ok: true, value: { count: 3, atLeast: false } })
    expect(await rpc.mempoolSize(undefined, 100)).toEqual({ ok: true, value: { count: 0, atLeast: false } })
    expect(stand.log.at(-1)).toMatchObject({ path: '/rpc/mempool', chainId: null, limit: 100 })
  })

  it('a count that reaches the limit is "at least" that many', async () => {
    stand.state.mempool = 37
    expect(await rpc.mempoolSize('ait-devnet', 10)).toEqual({ ok: true, value: { count: 10, atLeast: true } })
    expect(await rpc.mempoolSize('ait-devnet', 37)).toEqual({ ok: true, value: { count: 37, atLeast: true } })
    stand.state.mempool = 0
    expect(await rpc.mempoolSize('ait-devnet', 100)).toEqual({ ok: true, value: { count: 0, atLeast: false } })
  })

  it('encodes the chain id in the query', async () => {
    expect((await rpc.mempoolSize('a&limit=1', 5)).ok).toBe(true)
    expect(stand.log.at(-1)).toMatchObject({ chainId: 'a&limit=1', limit: 5 })
  })

  it('reads health "ok" with the supported chains', async () => {
    stand.state.healthy = true
    expect(await rpc.health()).toEqual({ ok: true, value: { status: 'ok', supportedChains: ['ait-devnet', 'ait-testnet'] } })
    stand.state.omitSupportedChains = true
    try {
      expect(await rpc.health()).toEqual({ ok: true, value: { status: 'ok', supportedChains: null } })
    } finally {
      stand.state.omitSupportedChains = false
    }
  })

  it('gives the reason when unhealthy', async () => {
    stand.state.healthy = false
    try {
      expect(await rpc.health()).toEqual({ ok: false, reason: `GET ${url}/health returned HTTP 503 (status "error")` })
    } finally {
      stand.state.healthy = true
    }
  })

  it('HTTP 429 is rate-limited (not a failure reason alone), with the Retry-After in ms', async () => {
    stand.forceRateLimit = { retryAfterS: 20 }
    try {
      expect(await rpc.head('ait-devnet')).toEqual({ ok: false, state: 'rate-limited', retryAfterMs: 20_000, reason: `GET ${url}/rpc/head?chain_id=ait-devnet returned HTTP 429 (rate limit), Retry-After 20 s` })
      expect(await rpc.mempoolSize('ait-devnet', 5)).toMatchObject({ ok: false, state: 'rate-limited', retryAfterMs: 20_000 })
      expect(await rpc.health()).toMatchObject({ ok: false, state: 'rate-limited', retryAfterMs: 20_000 })
      stand.forceRateLimit = { retryAfterS: null }
      expect(await rpc.health()).toEqual({ ok: false, state: 'rate-limited', reason: `GET ${url}/health returned HTTP 429 (rate limit)` })
    } finally {
      stand.forceRateLimit = null
    }
  })
})

describe('the stand-in RPC behaves as today\'s AITBC RPC', () => {
  it('limits calls per client address and handler, answering 429 with Retry-After', async () => {
    const stand = new StandInRpc({}, { rateLimit: { limit: 3, windowMs: 60_000 } })
    const url = await stand.start('127.0.0.1', 0)
    try {
      const rpc = new BlockchainRpc(url)
      for (let i = 0; i < 3; i++) expect((await rpc.head()).ok).toBe(true)
      const fourth = await rpc.head()
      expect(fourth).toMatchObject({ ok: false, state: 'rate-limited' })
      expect(!fourth.ok && fourth.retryAfterMs).toBeGreaterThan(55_000)
      // Another handler has its own budget.
      expect((await rpc.mempoolSize('ait-devnet', 5)).ok).toBe(true)
      expect(stand.requestsTo('/rpc/head').map(r => r.status)).toEqual([200, 200, 200, 429])
    } finally {
      await stand.stop()
    }
  })

  it('refuses POST /rpc/force-sync without an admin-signed body with 422', async () => {
    const stand = new StandInRpc({ height: 10 })
    stand.catchUpTo = 50
    const url = await stand.start('127.0.0.1', 0)
    try {
      for (const body of [undefined, '{}', '{"signature":""}', 'not json']) {
        const res = await fetch(`${url}/rpc/force-sync`, { method: 'POST', ...(body != null ? { body, headers: { 'content-type': 'application/json' } } : {}) })
        expect(res.status).toBe(422)
        expect(JSON.stringify(await res.json())).toContain('signature')
      }
      expect(stand.state.height).toBe(10)
    } finally {
      await stand.stop()
    }
  })
})

describe('parseRetryAfter', () => {
  const NOW = Date.parse('2026-04-10T12:00:00Z')
  it.each([
    ['20', 20_000],
    ['0', 0],
    [' 7 ', 7_000],
    ['Fri, 10 Apr 2026 12:00:30 GMT', 30_000],
    ['Fri, 10 Apr 2026 11:00:00 GMT', 0],
    ['99999999', RATE_LIMIT_MAX_RETRY_AFTER_MS]
  ])('%s -> %d ms', (value, ms) => {
    expect(parseRetryAfter(value, NOW)).toBe(ms)
  })

  it.each([[null], [''], ['-5'], ['1.5'], ['soon'], ['12345678901']])('%s is unreadable (null)', value => {
    expect(parseRetryAfter(value, NOW)).toBeNull()
  })
})

describe('parseSupportedChains', () => {
  it('reads a list, or a comma-separated string; drops what is not a chain id, and repeats', () => {
    expect(parseSupportedChains(['ait-devnet', 'ait-mainnet'])).toEqual(['ait-devnet', 'ait-mainnet'])
    expect(parseSupportedChains('ait-devnet, ait-testnet')).toEqual(['ait-devnet', 'ait-testnet'])
    expect(parseSupportedChains(['ait-devnet', 7, '', 'bad id', '../x', 'ait-devnet', { id: 'x' }])).toEqual(['ait-devnet'])
    expect(parseSupportedChains([])).toEqual([])
  })

  it('is null when absent or not a list', () => {
    expect(parseSupportedChains(undefined)).toBeNull()
    expect(parseSupportedChains(null)).toBeNull()
    expect(parseSupportedChains({ 'ait-devnet': true })).toBeNull()
  })

  it('keeps at most MAX_PROBE_CHAINS', () => {
    expect(parseSupportedChains(Array.from({ length: 100 }, (_, i) => `chain-${i}`))).toHaveLength(8)
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
    const mempool = await rpc.mempoolSize('ait-devnet', MEMPOOL_PROBE_LIMIT)
    expect(!mempool.ok && mempool.reason).toContain(`GET ${url}/rpc/mempool?chain_id=ait-devnet&limit=${MEMPOOL_PROBE_LIMIT} failed`)
    const health = await rpc.health()
    expect(!health.ok && health.reason).toContain(`GET ${url}/health failed`)
  })

  describe('against a misbehaving server', () => {
    let url: string
    let server: Server
    const replies = new Map<string, { status: number, body: string, location?: string }>()

    beforeAll(async () => {
      ({ url, server } = await tinyServer((req, res) => {
        const path = new URL(req.url ?? '/', 'http://x').pathname
        if (path.startsWith('/hang/')) return // never answers
        const reply = replies.get(path) ?? { status: 404, body: '{}' }
        res.writeHead(reply.status, { 'content-type': 'application/json', ...(reply.location != null ? { location: reply.location } : {}) })
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

    it('a 429 whose body is not JSON is still rate-limited', async () => {
      replies.set('/rpc/head', { status: 429, body: 'Too Many Requests' })
      expect(await new BlockchainRpc(url).head()).toEqual({ ok: false, state: 'rate-limited', reason: `GET ${url}/rpc/head returned HTTP 429 (rate limit)` })
    })

    it('a mempool body without a count gives a reason', async () => {
      replies.set('/rpc/mempool', { status: 200, body: JSON.stringify({ transactions: [] }) })
      expect(await new BlockchainRpc(url).mempoolSize('ait-devnet', 5)).toEqual({ ok: false, reason: `GET ${url}/rpc/mempool?chain_id=ait-devnet&limit=5 returned no integer "count"` })
    })

    it('a mempool count over the limit is taken as it is, not as "at least"', async () => {
      replies.set('/rpc/mempool', { status: 200, body: JSON.stringify({ success: true, transactions: [], count: 9 }) })
      expect(await new BlockchainRpc(url).mempoolSize('ait-devnet', 5)).toEqual({ ok: true, value: { count: 9, atLeast: true } })
    })

    it('a health status other than ok/healthy/up gives a reason; "healthy" and "UP" are fine', async () => {
      replies.set('/health', { status: 200, body: JSON.stringify({ status: 'degraded' }) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: false, reason: `GET ${url}/health reports status "degraded"` })
      replies.set('/health', { status: 200, body: JSON.stringify({ status: 'healthy', supported_chains: ['ait-mainnet'] }) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: true, value: { status: 'healthy', supportedChains: ['ait-mainnet'] } })
      replies.set('/health', { status: 200, body: JSON.stringify({ status: 'UP', supported_chains: 'nonsense!' }) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: true, value: { status: 'UP', supportedChains: [] } })
      replies.set('/health', { status: 200, body: JSON.stringify({}) })
      expect(await new BlockchainRpc(url).health()).toEqual({ ok: false, reason: `GET ${url}/health returned no "status"` })
    })

    it('a redirect is followed to the height', async () => {
      replies.set('/moved/rpc/head', { status: 307, body: '', location: '/rpc/head' })
      replies.set('/rpc/head', { status: 200, body: '{"height":42}' })
      expect(await new BlockchainRpc(`${url}/moved`).head()).toEqual({ ok: true, value: 42 })
    })

    it('an answer over PROBE_HTTP_MAX_RESPONSE_BYTES is refused with a reason, not buffered', async () => {
      replies.set('/rpc/head', { status: 200, body: `{"height":1,"pad":"${'x'.repeat(PROBE_HTTP_MAX_RESPONSE_BYTES)}"}` })
      expect(await new BlockchainRpc(url).head()).toEqual({ ok: false, reason: `GET ${url}/rpc/head failed: answer over ${PROBE_HTTP_MAX_RESPONSE_BYTES} bytes` })
    })

    it('a server that does not answer gives a timeout reason', async () => {
      const rpc = new BlockchainRpc(`${url}/hang`, 200)
      expect(await rpc.head()).toEqual({ ok: false, reason: `GET ${url}/hang/rpc/head timed out after 200 ms` })
    })
  })
})
