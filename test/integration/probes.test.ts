import { beforeAll, describe, expect, it } from 'vitest'
import { MEMPOOL_PROBE_LIMIT, PROBE_BUDGET_WINDOW_MS, PROBE_RPC_BUDGET_PER_MINUTE } from '../../src/constants.js'
import type { StandInRequest, StandInRpc } from '../../src/devmesh/stand-in-rpc.js'
import { startTestMesh, statusOfPeer, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'

interface NodeEntry {
  status: string
  block_height: number | null
  mempool_size: number | null
  chains: Record<string, { block_height: number | null, mempool_size: number | null, mempool_at_least: boolean }>
  probed_at: string | null
  probe_age_ms: number | null
  checks?: Array<{ name: string, ok: boolean, detail: string, state?: string }>
}

interface OperationOut {
  // Keyed by node name; the tests name nodes they started.
  nodes_status: Record<string, NodeEntry> & { aitbc: NodeEntry }
  issues: string[]
  recommendations: string[]
  validation_status: string
}

async function op (t: TestMesh, at: string, args: string[]): Promise<{ code: number | null, out: OperationOut }> {
  const res = await t.mesh.cli(at, [...args, '--json'])
  if (res.stdout === '') throw new Error(`aitbc-mesh ${args.join(' ')} printed nothing: ${res.stderr}`)
  return { code: res.code, out: JSON.parse(res.stdout) as OperationOut }
}

/** Most calls in any window of `windowMs` among these requests. */
function busiestWindow (requests: StandInRequest[], windowMs: number): number {
  let most = 0
  let start = 0
  for (let end = 0; end < requests.length; end++) {
    while (requests[end]!.at - requests[start]!.at >= windowMs) start++
    most = Math.max(most, end - start + 1)
  }
  return most
}

function logEvents (t: TestMesh, node: string, event: string): string[] {
  return t.mesh.node(node).logLines.filter(l => l.includes(`"event":"${event}"`))
}

describe('probes send chain_id: the mempool of the named chain, per chain', () => {
  let t: TestMesh
  let rpc0: StandInRpc
  let rpc1: StandInRpc

  beforeAll(async () => {
    t = await startTestMesh(2, {
      // aitbc serves ait-devnet (3 pending) and ait-mainnet (7 pending) and probes both, mainnet
      // first; aitbc1 serves ait-devnet only (7 pending) and finds it in /health. (Lag compares
      // the first chains: their heights are close.)
      rpc: i => i === 0
        ? { state: { chainId: 'ait-devnet', height: 700, mempool: 3, otherChains: { 'ait-mainnet': { height: 1000, mempool: 7, headStatus: 200 } } } }
        : { state: { chainId: 'ait-devnet', height: 1001, mempool: 7 } },
      extra: i => i === 0 ? { probes: { chainId: ['ait-mainnet', 'ait-devnet'] } } : {}
    })
    rpc0 = t.rpcs.get('aitbc')!
    rpc1 = t.rpcs.get('aitbc1')!
    await waitAllOnline(t.mesh)
  })

  it('counts the pending transactions of the chain: configured, and discovered from /health', async () => {
    const { code, out } = await op(t, 'aitbc1', ['status', '--target', 'all'])
    expect(code).toBe(0)
    // The first configured chain gives the top-level values; each chain has its own.
    expect(out.nodes_status.aitbc).toMatchObject({
      status: 'online',
      block_height: 1000,
      mempool_size: 7,
      chains: {
        'ait-mainnet': { block_height: 1000, mempool_size: 7, mempool_at_least: false },
        'ait-devnet': { block_height: 700, mempool_size: 3, mempool_at_least: false }
      }
    })
    expect(Object.keys(out.nodes_status.aitbc.chains)).toEqual(['ait-mainnet', 'ait-devnet'])
    expect(out.nodes_status.aitbc1).toMatchObject({ status: 'online', block_height: 1001, mempool_size: 7, chains: { 'ait-devnet': { block_height: 1001, mempool_size: 7, mempool_at_least: false } } })
    expect(t.mesh.node('aitbc1').logLines.filter(l => l.includes('"event":"rpc_chain_discovered"') && l.includes('"chain":"ait-devnet"'))).toHaveLength(1)

    // Every mempool read names its chain and asks for at most MEMPOOL_PROBE_LIMIT transactions.
    for (const [stand, chains] of [[rpc0, ['ait-mainnet', 'ait-devnet']], [rpc1, ['ait-devnet']]] as const) {
      const reads = stand.requestsTo('/rpc/mempool')
      expect(reads.length).toBeGreaterThan(0)
      expect(new Set(reads.map(r => r.chainId))).toEqual(new Set(chains))
      expect(reads.every(r => r.limit === MEMPOOL_PROBE_LIMIT)).toBe(true)
      expect(new Set(stand.requestsTo('/rpc/head').map(r => r.chainId))).toEqual(new Set(chains))
    }
  })

  it('prints each chain of a node that probes several, and each chain\'s checks in health', async () => {
    const table = await t.mesh.cli('aitbc', ['status', '--target', 'all'])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/^NODE\s+ROLE\s+STATUS\s+HEIGHT\s+MEMPOOL\s+P2P\s+SERVICE UPTIME\s+LAST SYNC\s+PROBED$/m)
    expect(table.stdout).toMatch(/^aitbc\s+genesis\s+online\s+1000\s+7\s+1\s+-\s+-\s+[\d.]+ (ms|s) ago$/m)
    expect(table.stdout).toMatch(/^NODE\s+CHAIN\s+HEIGHT\s+MEMPOOL$/m)
    expect(table.stdout).toMatch(/^aitbc\s+ait-mainnet\s+1000\s+7$/m)
    expect(table.stdout).toMatch(/^aitbc\s+ait-devnet\s+700\s+3$/m)
    expect(table.stdout).toMatch(/^aitbc1\s+ait-devnet\s+1001\s+7$/m)

    const { out } = await op(t, 'aitbc1', ['health', '--target', 'aitbc'])
    const checks = out.nodes_status.aitbc.checks!
    expect(checks.filter(c => c.name === 'block_height').map(c => c.detail)).toEqual(['ait-mainnet: height 1000', 'ait-devnet: height 700'])
    expect(checks.filter(c => c.name === 'mempool').map(c => c.detail)).toEqual(['ait-mainnet: 7 transactions', 'ait-devnet: 3 transactions'])
    expect(checks.find(c => c.name === 'rpc')).toMatchObject({ ok: true, state: 'ok', detail: 'GET /health: ok, chains ait-devnet, ait-mainnet' })
  })

  it('a count that reaches the probe\'s limit is "at least" that many, and says so', async () => {
    rpc1.state.mempool = 100_000
    try {
      const { out } = await op(t, 'aitbc', ['health', '--target', 'aitbc1'])
      expect(out.nodes_status.aitbc1).toMatchObject({ status: 'online', mempool_size: MEMPOOL_PROBE_LIMIT, chains: { 'ait-devnet': { mempool_size: MEMPOOL_PROBE_LIMIT, mempool_at_least: true } } })
      expect(out.issues).toContain(`aitbc1: mempool_size: at least ${MEMPOOL_PROBE_LIMIT} pending on ait-devnet (counted up to ${MEMPOOL_PROBE_LIMIT}, the probe's limit)`)
      expect(out.validation_status).toBe('success')
      const table = await t.mesh.cli('aitbc', ['status', '--target', 'aitbc1'])
      expect(table.stdout).toMatch(new RegExp(`^aitbc1\\s+follower\\s+online\\s+1001\\s+>=${MEMPOOL_PROBE_LIMIT}\\s`, 'm'))
    } finally {
      rpc1.state.mempool = 7
    }
  })
  it('an agent registered without --chain is filed under the node\'s first probes.chainId; without one, under ait-hub', async () => {
    for (const [node, id] of [['aitbc', 'on-mainnet'], ['aitbc1', 'on-hub']] as const) {
      const res = await t.mesh.cli(node, ['agents', 'register', '--id', id, '--type', 'worker'])
      expect(res.code, res.stderr).toBe(0)
    }
    // Each node's own default, seen from the other node after replication.
    await waitFor('both agents on aitbc1', async () => {
      const list = JSON.parse((await t.mesh.cli('aitbc1', ['agents', 'list', '--json'])).stdout) as Array<{ agent_id: string }>
      return list.length === 2
    }, 10_000, 50)
    const agents = JSON.parse((await t.mesh.cli('aitbc1', ['agents', 'list', '--json'])).stdout) as Array<{ agent_id: string, chain_id: string, owner_node: string }>
    expect(agents.find(a => a.agent_id === 'on-mainnet')).toMatchObject({ chain_id: 'ait-mainnet', owner_node: 'aitbc' })
    expect(agents.find(a => a.agent_id === 'on-hub')).toMatchObject({ chain_id: 'ait-hub', owner_node: 'aitbc1' })
    // --chain still wins.
    expect((await t.mesh.cli('aitbc', ['agents', 'register', '--id', 'on-devnet', '--type', 'worker', '--chain', 'ait-devnet'])).code).toBe(0)
    const own = JSON.parse((await t.mesh.cli('aitbc', ['agents', 'list', '--json'])).stdout) as Array<{ agent_id: string, chain_id: string }>
    expect(own.find(a => a.agent_id === 'on-devnet')).toMatchObject({ chain_id: 'ait-devnet' })
  })
})

describe('HTTP 429 from the RPC: rate-limited, not degraded; the wait is honoured; it recovers', () => {
  let t: TestMesh
  let rpc: StandInRpc

  beforeAll(async () => {
    t = await startTestMesh(2, {
      heights: [2000, 2000],
      // The RPC's limit as AITBC applies it, with a window short enough for a test.
      rpc: i => i === 0 ? { rateLimit: { limit: 20, windowMs: 6000 } } : {},
      extra: () => ({ probes: { intervalMs: 1000 } })
    })
    rpc = t.rpcs.get('aitbc')!
    await waitAllOnline(t.mesh)
  })

  it('another local client\'s burst uses up the RPC\'s limit: the node is rate-limited, stays online, and recovers', async () => {
    // The same client address as the daemon (loopback), on the handler the probes use.
    const base = (t.mesh.node('aitbc').spec.config!.probes as { rpc: string }).rpc
    const burst = await Promise.all(Array.from({ length: 25 }, async () => (await fetch(`${base}/rpc/head?chain_id=ait-devnet`)).status))
    expect(burst).toContain(429)
    expect(new Set(rpc.log.map(r => r.client)).size).toBe(1)
    const { out } = await waitFor('aitbc rate-limited', async () => {
      const res = await op(t, 'aitbc1', ['status', '--target', 'aitbc'])
      return res.out.issues.some(i => i.startsWith('aitbc: rpc: rate-limited: ')) ? res : false
    }, 10_000, 100)
    expect(out.nodes_status.aitbc.status).toBe('online')
    expect(out.issues).toContainEqual(expect.stringMatching(/^aitbc: rpc: rate-limited: GET http:\/\/.*\/rpc\/head\?chain_id=ait-devnet returned HTTP 429 \(rate limit\), Retry-After \d s; not called again for \d s; values from \d+ s ago$/))
    expect(out.issues.some(i => i.includes('rpc health') || i.includes('block_height:'))).toBe(false)
    // The last height read is still shown, with its age in the issue above.
    expect(out.nodes_status.aitbc.block_height).toBe(2000)
    expect(out.recommendations).toContainEqual(expect.stringMatching(/^The blockchain RPC on aitbc answers HTTP 429/))
    // Heartbeats carry a healthy verdict: the peer sees it online, not degraded.
    expect(await statusOfPeer(t.mesh, 'aitbc1', 'aitbc')).toBe('online')
    const health = await op(t, 'aitbc1', ['health', '--target', 'aitbc'])
    expect(health.out.nodes_status.aitbc.status).toBe('online')
    expect(health.out.nodes_status.aitbc.checks!.filter(c => c.name === 'rpc').map(c => c.state)).toEqual(['rate-limited'])

    await waitFor('aitbc to recover', async () => {
      const res = await op(t, 'aitbc1', ['status', '--target', 'aitbc'])
      return !res.out.issues.some(i => i.includes('rate-limited')) && res.out.nodes_status.aitbc.status === 'online' && (res.out.nodes_status.aitbc.probe_age_ms ?? Infinity) < 3000
    }, 15_000, 200)
    expect(logEvents(t, 'aitbc', 'rpc_rate_limited')).toHaveLength(1)
    expect(logEvents(t, 'aitbc', 'rpc_rate_limit_over')).toHaveLength(1)
  })

  it('health while rate-limited reports the rpc check as rate-limited, does not call the RPC, and waits out Retry-After', async () => {
    const forcedAt = Date.now()
    rpc.forceRateLimit = { retryAfterS: 3 }
    try {
      const first = await waitFor('a 429 answered to aitbc', () => rpc.log.find(r => r.status === 429 && r.at >= forcedAt), 10_000, 50)
      const { code, out } = await waitFor('health to show rate-limited', async () => {
        const res = await op(t, 'aitbc', ['health', '--target', 'aitbc'])
        return res.out.nodes_status.aitbc.checks!.some(c => c.name === 'rpc' && c.state === 'rate-limited') ? res : false
      }, 10_000, 100)
      expect(code).toBe(0)
      expect(out.validation_status).toBe('success')
      expect(out.nodes_status.aitbc.status).toBe('online')
      const check = out.nodes_status.aitbc.checks!.find(c => c.name === 'rpc')!
      expect(check).toMatchObject({ ok: true, state: 'rate-limited' })
      expect(check.detail).toMatch(/returned HTTP 429 \(rate limit\), Retry-After 3 s; not called again for [0-3] s/)
      const text = await t.mesh.cli('aitbc', ['health', '--target', 'aitbc'])
      expect(text.stdout).toMatch(/^ {2}rate-limited {2}rpc\s+GET http/m)

      // Several rounds of 429: the daemon never calls again before Retry-After has passed.
      await waitFor('three rounds of 429', () => rpc.log.filter(r => r.at >= first.at && r.status === 429).length >= 3 && rpc.log.at(-1)!.at - first.at > 6000, 20_000, 100)
      const rounds = rpc.log.filter(r => r.at >= first.at)
      const starts = rounds.filter((r, i) => i === 0 || r.at - rounds[i - 1]!.at > 500).map(r => r.at)
      for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!, `gap before round ${i}`).toBeGreaterThanOrEqual(2900)
      // One round is one call (the /health that answered 429), not a call per handler.
      expect(rounds.length).toBe(starts.length)
    } finally {
      rpc.forceRateLimit = null
    }
    await waitFor('aitbc to recover', async () => {
      const res = await op(t, 'aitbc', ['health', '--target', 'aitbc'])
      return res.out.nodes_status.aitbc.checks!.find(c => c.name === 'rpc')?.state === 'ok'
    }, 15_000, 200)
  })
})

describe('before the first block: height null with a note, online, and /rpc/head asked less and less', () => {
  let t: TestMesh
  let rpc: StandInRpc

  beforeAll(async () => {
    t = await startTestMesh(1, {
      rpc: () => ({ state: { headStatus: 404, height: 0, mempool: 2 } }),
      // 40 periodic calls a minute: health may still probe afresh 20 times.
      extra: () => ({ probes: { intervalMs: 1500 } })
    })
    rpc = t.rpcs.get('aitbc')!
  })

  it('is quiet: online, null height with "no block yet", one log line, and far fewer head calls than probes', async () => {
    const { code, out } = await op(t, 'aitbc', ['status', '--target', 'aitbc'])
    expect(code).toBe(0)
    expect(out.nodes_status.aitbc).toMatchObject({ status: 'online', block_height: null, mempool_size: 2, chains: { 'ait-devnet': { block_height: null, mempool_size: 2 } } })
    expect(out.issues).toContainEqual(expect.stringMatching(/^aitbc: block_height: no block yet on ait-devnet \(GET \/rpc\/head answers 404 before the first block\); asked again within \d+ s$/))
    const health = await op(t, 'aitbc', ['health', '--target', 'aitbc'])
    expect(health.code).toBe(0)
    expect(health.out.nodes_status.aitbc.checks!.find(c => c.name === 'block_height')).toMatchObject({ ok: true, state: 'no-block' })

    // Measured from here: the periodic probe reads the mempool every 1.5 s, the head less and less.
    const since = Date.now()
    await waitFor('seven periodic probes', () => rpc.requestsTo('/rpc/mempool', since).length >= 7, 20_000, 100)
    const heads = rpc.requestsTo('/rpc/head', since).length
    const probes = rpc.requestsTo('/rpc/mempool', since).length
    expect(heads).toBeLessThanOrEqual(3)
    expect(heads * 2).toBeLessThan(probes)
    expect(logEvents(t, 'aitbc', 'rpc_no_block_yet')).toHaveLength(1)
    expect(t.mesh.node('aitbc').logLines.some(l => /"level":(40|50)/.test(l) && l.includes('rpc'))).toBe(false)
  })

  it('health asks for the head each time, so the first block shows at once', async () => {
    rpc.state.headStatus = 200
    rpc.state.height = 1
    const { out } = await op(t, 'aitbc', ['health', '--target', 'aitbc'])
    expect(out.nodes_status.aitbc).toMatchObject({ status: 'online', block_height: 1 })
    expect(out.issues.some(i => i.includes('no block yet'))).toBe(false)
    const status = await op(t, 'aitbc', ['status', '--target', 'aitbc'])
    expect(status.out.nodes_status.aitbc.block_height).toBe(1)
    expect(logEvents(t, 'aitbc', 'rpc_first_block')).toHaveLength(1)
  })
})

describe('the probe rate at the default interval stays far inside the RPC\'s limit, even under a burst of health requests', () => {
  let t: TestMesh
  let rpc: StandInRpc

  beforeAll(async () => {
    t = await startTestMesh(1)
    rpc = t.rpcs.get('aitbc')!
  })

  it('about 12 calls a minute per handler while idle; status answers from the last probe without calling the RPC', async () => {
    const since = Date.now()
    await waitFor('three periodic probes', () => rpc.requestsTo('/health', since).length >= 3, 20_000, 100)
    const elapsedMs = Date.now() - since
    for (const path of ['/health', '/rpc/head', '/rpc/mempool']) {
      const calls = rpc.requestsTo(path, since).length
      // One call per 5 s interval (and one for a probe that had started as the period began).
      expect(calls, path).toBeLessThanOrEqual(Math.floor(elapsedMs / 5000) + 1)
      expect(calls * 60_000 / elapsedMs, `${path} calls a minute`).toBeLessThanOrEqual(18)
    }
    // 20 status requests in a row: answered from the snapshot; the RPC sees only the periodic
    // probes meanwhile (three calls each).
    const loopStart = Date.now()
    const before = rpc.requests
    for (let i = 0; i < 20; i++) {
      const { out } = await op(t, 'aitbc', ['status', '--target', 'aitbc'])
      expect(out.nodes_status.aitbc.probe_age_ms!).toBeLessThan(5000 + 1000)
    }
    expect(rpc.requests - before).toBeLessThanOrEqual(3 * (Math.floor((Date.now() - loopStart) / 5000) + 1))
  })

  it('a burst of health requests probes afresh only within the budget: never more than PROBE_RPC_BUDGET_PER_MINUTE calls a minute to a handler, no 429', async () => {
    const since = Date.now()
    const client = await t.mesh.client('aitbc')
    try {
      const request = { operation: 'health', target_node: 'aitbc' }
      // 100 at once share the probe in flight; then 100 one after the other.
      const together = await Promise.all(Array.from({ length: 100 }, async () => await client.call<OperationOut>('op', request)))
      expect(together.every(r => r.nodes_status.aitbc.status === 'online')).toBe(true)
      const ages: number[] = []
      for (let i = 0; i < 100; i++) {
        const r = await client.call<OperationOut>('op', request)
        expect(r.validation_status).toBe('success')
        ages.push(r.nodes_status.aitbc.probe_age_ms!)
      }
      // Beyond the budget health answers from the last probe, at most one interval (5 s) old.
      expect(Math.max(...ages)).toBeLessThan(5000 + 1000)
    } finally {
      client.close()
    }
    for (const path of ['/health', '/rpc/head', '/rpc/mempool']) {
      const calls = rpc.requestsTo(path, since)
      // Health did probe afresh (more than the periodic probes would) but within the budget.
      expect(calls.length, path).toBeGreaterThan(5)
      expect(busiestWindow(rpc.requestsTo(path), PROBE_BUDGET_WINDOW_MS), path).toBeLessThanOrEqual(PROBE_RPC_BUDGET_PER_MINUTE)
    }
    expect(rpc.log.filter(r => r.status === 429)).toEqual([])
  })
})
