import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { parseConfig } from '../../src/config/config.js'
import { StandInRpc } from '../../src/devmesh/stand-in-rpc.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import { LocalProbes } from '../../src/operations/local-probes.js'

const dir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-local-probes-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

function probesFor (probesYaml: string): LocalProbes {
  const config = parseConfig(`node: { name: aitbc, role: genesis }\ndataDir: ${dir}\nprobes: ${probesYaml}\n`, join(dir, 'mesh.yaml'), {})
  return new LocalProbes({ config, peers: new PeerTable([], 3000), connectedPeers: () => 0, startedAt: Date.now() })
}

afterEach(() => { vi.useRealTimers() })

describe('LocalProbes: status answers from the last probe and says when it is stale', () => {
  it('a snapshot older than three intervals is reported stale (degraded) while the timer runs', async () => {
    const probes = probesFor('{ intervalMs: 2000 }')
    await probes.probeNow()
    probes.start()
    try {
      const fresh = await probes.reportFor('status')
      expect(fresh.status).toBe('online')
      expect(fresh.issues.some(i => i.includes('stale'))).toBe(false)
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 7000 })
      const stale = await probes.reportFor('status')
      expect(stale.status).toBe('degraded')
      expect(stale.issues).toContain('aitbc: probes: last probe 7 s ago, more than 3 intervals of 2000 ms (probes.intervalMs); the values are stale')
      expect(stale.checks.find(c => c.name === 'probes')).toMatchObject({ ok: false, state: 'stale' })
      expect(probes.latest().healthy).toBe(false)
    } finally {
      probes.stop()
    }
  })

  it('a one-off probe (aitbc-mesh probe, the SSH fallback) is never stale', async () => {
    const probes = probesFor('{}')
    const report = await probes.reportFor('health')
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 3600_000 })
    expect((await probes.reportFor('status')).issues.some(i => i.includes('stale'))).toBe(false)
    expect(report.probed_at_ms).not.toBeNull()
  })
})

describe('LocalProbes against the stand-in RPC', () => {
  const stand = new StandInRpc({ height: 42, mempool: 5 }, { rateLimit: null })
  let url: string

  beforeAll(async () => { url = await stand.start('127.0.0.1', 0) })
  afterAll(async () => { await stand.stop() })

  it('without Retry-After, waits twice the interval, then doubles, and does not call the RPC meanwhile', async () => {
    const probes = probesFor(`{ rpc: "${url}", intervalMs: 5000 }`)
    const first = await probes.reportFor('health')
    expect(first).toMatchObject({ status: 'online', block_height: 42, mempool_size: 5 })
    stand.forceRateLimit = { retryAfterS: null }
    try {
      const now = Date.now()
      vi.useFakeTimers({ toFake: ['Date'], now: now + 60_000 }) // past the health budget's window
      const limited = await probes.reportFor('health')
      expect(limited.status).toBe('online')
      // The values read before are kept, with their age.
      expect(limited).toMatchObject({ block_height: 42, mempool_size: 5, chains: { 'ait-devnet': { block_height: 42, mempool_size: 5, mempool_at_least: false } } })
      expect(limited.issues).toContain(`aitbc: rpc: rate-limited: GET ${url}/health returned HTTP 429 (rate limit); not called again for 10 s; values from 60 s ago`)
      expect(limited.checks.find(c => c.name === 'rpc')).toMatchObject({ ok: true, state: 'rate-limited' })

      const calls = stand.requests
      vi.setSystemTime(now + 60_000 + 9000)
      await probes.reportFor('health')
      expect(stand.requests).toBe(calls)

      vi.setSystemTime(now + 60_000 + 10_500)
      const again = await probes.reportFor('health')
      expect(stand.requests).toBe(calls + 1)
      expect(again.issues.find(i => i.includes('rate-limited'))).toMatch(/not called again for 20 s/)
    } finally {
      stand.forceRateLimit = null
    }
  })

  it('without probes.chainId and without supported_chains, reads the default chain without chain_id; the chains map stays empty', async () => {
    stand.state.omitSupportedChains = true
    try {
      const report = await probesFor(`{ rpc: "${url}" }`).reportFor('health')
      expect(report).toMatchObject({ status: 'online', block_height: 42, mempool_size: 0, chains: {} })
      expect(stand.log.at(-1)).toMatchObject({ path: expect.stringMatching(/^\/rpc\/(head|mempool)$/), chainId: null })
    } finally {
      stand.state.omitSupportedChains = false
    }
  })

  it('with /health failing and no probes.chainId, the mempool is not counted (without chain_id it would read 0)', async () => {
    stand.state.healthy = false
    const mark = stand.log.length
    try {
      const report = await probesFor(`{ rpc: "${url}" }`).reportFor('health')
      expect(report).toMatchObject({ status: 'degraded', block_height: 42, mempool_size: null })
      expect(report.issues).toContain('aitbc: mempool_size: not probed: the chain is unknown (probes.chainId is not set and GET /health did not list supported_chains); without chain_id the RPC counts no chain')
      expect(stand.log.slice(mark).map(r => r.path).sort()).toEqual(['/health', '/rpc/head'])
    } finally {
      stand.state.healthy = true
    }
  })

  it('a configured chain the RPC does not serve: no block on it, mempool 0, and the node stays online', async () => {
    const report = await probesFor(`{ rpc: "${url}", chainId: ait-nowhere }`).reportFor('health')
    expect(report).toMatchObject({ status: 'online', block_height: null, mempool_size: 0, chains: { 'ait-nowhere': { block_height: null, mempool_size: 0 } } })
    expect(report.issues).toContainEqual(expect.stringMatching(/^aitbc: block_height: no block yet on ait-nowhere/))
  })
})

describe('LocalProbes.setProbes (reload)', () => {
  const before = new StandInRpc({ height: 100, mempool: 1 }, { rateLimit: null })
  const after = new StandInRpc({ height: 200, mempool: 2 }, { rateLimit: null })
  let beforeUrl: string
  let afterUrl: string

  beforeAll(async () => { [beforeUrl, afterUrl] = await Promise.all([before.start('127.0.0.1', 0), after.start('127.0.0.1', 0)]) })
  afterAll(async () => { await Promise.all([before.stop(), after.stop()]) })

  it('a moved RPC is probed at once, its values replace the old ones, and the old RPC is not called again', async () => {
    const probes = probesFor(`{ rpc: "${beforeUrl}", intervalMs: 60000 }`)
    await probes.probeNow()
    probes.start()
    try {
      expect(await probes.reportFor('status')).toMatchObject({ block_height: 100, mempool_size: 1 })
      const config = parseConfig(`node: { name: aitbc, role: genesis }\ndataDir: ${dir}\nprobes: { rpc: "${afterUrl}", intervalMs: 60000 }\n`, join(dir, 'mesh.yaml'), {})
      const calledBefore = before.requests
      probes.setProbes(config.probes)
      await vi.waitFor(async () => { expect(await probes.reportFor('status')).toMatchObject({ block_height: 200, mempool_size: 2 }) }, { timeout: 5000, interval: 20 })
      expect(before.requests).toBe(calledBefore)
      expect((await probes.reportFor('health')).checks.find(c => c.name === 'rpc')).toMatchObject({ ok: true, state: 'ok' })
    } finally {
      probes.stop()
    }
  })
})
