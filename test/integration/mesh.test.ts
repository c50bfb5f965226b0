import { existsSync } from 'node:fs'
import { describe, expect, it, beforeAll } from 'vitest'
import { startTestMesh, waitAllOnline, waitFor, statusOfPeer, type TestMesh } from '../helpers.js'

const TOP_LEVEL_FIELDS = ['summary', 'operation', 'target_node', 'nodes_status', 'sync_result', 'sync_details',
  'message_delivery', 'issues', 'recommendations', 'confidence', 'execution_time', 'validation_status',
  // Beyond the node-coordinator contract: the requesting node's membership view (quorum).
  'mesh_view']

describe('a three-node mesh of real daemons on 127.x.y.1-3, port 7070', () => {
  let t: TestMesh

  beforeAll(async () => {
    t = await startTestMesh(3, { heights: [15234, 15232, 15230] })
    await waitAllOnline(t.mesh)
  })

  it('answers status --target all with every node reported by itself, in the operation JSON shape', async () => {
    const res = await t.mesh.cli('aitbc1', ['status', '--target', 'all', '--json'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(Object.keys(out).sort()).toEqual([...TOP_LEVEL_FIELDS].sort())
    expect(out.mesh_view).toMatchObject({ reachable: ['aitbc', 'aitbc1', 'aitbc2'], unreachable: [], configured: 3, quorum: true })
    expect(out.operation).toBe('status')
    expect(out.target_node).toBe('all')
    expect(out.validation_status).toBe('success')
    expect(out.sync_result).toBeNull()
    expect(out.sync_details).toBeNull()
    expect(out.message_delivery).toEqual({ sent: 0, delivered: 0, processed: 0, failed: 0 })
    expect(Object.keys(out.nodes_status).sort()).toEqual(['aitbc', 'aitbc1', 'aitbc2'])
    // Each height comes from that node's own RPC stand-in, which only that node probes.
    expect(out.nodes_status.aitbc).toMatchObject({ role: 'genesis', status: 'online', block_height: 15234, mempool_size: 10, p2p_connections: 2 })
    expect(out.nodes_status.aitbc1).toMatchObject({ role: 'follower', status: 'online', block_height: 15232, mempool_size: 11, p2p_connections: 2 })
    expect(out.nodes_status.aitbc2).toMatchObject({ role: 'follower', status: 'online', block_height: 15230, mempool_size: 12, p2p_connections: 2 })
    // Per chain too: the stand-in serves ait-devnet, which each daemon found in its /health.
    expect(out.nodes_status.aitbc.chains).toEqual({ 'ait-devnet': { block_height: 15234, mempool_size: 10, mempool_at_least: false } })
    for (const node of Object.values(out.nodes_status) as Array<Record<string, unknown>>) {
      expect(Object.keys(node).sort()).toEqual(['block_height', 'chains', 'last_sync', 'mempool_size', 'p2p_connections', 'probe_age_ms', 'probed_at', 'role', 'service_uptime', 'status', 'store'])
      expect(node.service_uptime).toBeNull()
      // Each node reports its own store (the embedded one here) and what it keeps through a crash.
      expect(node.store).toMatchObject({ kind: 'embedded', durability: { level: 'always', durable: true } })
      // Status answers from the daemon's last probe and says when that was.
      expect(Date.parse(node.probed_at as string)).toBeLessThanOrEqual(Date.now())
      expect(node.probe_age_ms as number).toBeGreaterThanOrEqual(0)
      expect(node.probe_age_ms as number).toBeLessThan(15_000)
    }
    // A null value always comes with an issue naming the node and why.
    for (const name of ['aitbc', 'aitbc1', 'aitbc2']) {
      expect(out.issues).toContainEqual(expect.stringMatching(new RegExp(`^${name}: service_uptime: not probed`)))
    }
    expect(out.confidence).toBe(1)
  })

  it('prints a readable table without --json', async () => {
    const res = await t.mesh.cli('aitbc', ['status'])
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/^NODE\s+ROLE\s+STATUS\s+HEIGHT/m)
    expect(res.stdout).toMatch(/^aitbc1\s+follower\s+online\s+15232\s+11\s+2/m)
  })

  it('resolves genesis, follower and comma-separated targets from the config', async () => {
    const genesis = JSON.parse((await t.mesh.cli('aitbc2', ['status', '--target', 'genesis', '--json'])).stdout)
    expect(Object.keys(genesis.nodes_status)).toEqual(['aitbc'])
    const followers = JSON.parse((await t.mesh.cli('aitbc', ['status', '--target', 'follower', '--json'])).stdout)
    expect(Object.keys(followers.nodes_status).sort()).toEqual(['aitbc1', 'aitbc2'])
    const list = JSON.parse((await t.mesh.cli('aitbc', ['status', '--target', 'aitbc2,genesis', '--json'])).stdout)
    expect(Object.keys(list.nodes_status).sort()).toEqual(['aitbc', 'aitbc2'])
  })

  it('refuses an unknown target with exit 2 and lists the valid ones', async () => {
    const res = await t.mesh.cli('aitbc', ['status', '--target', 'aitbc9'])
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('unknown target "aitbc9"')
    expect(res.stderr).toContain('all, genesis, follower, aitbc, aitbc1, aitbc2')
  })

  it('runs health checks on each target and reports a failing probe as degraded with the reason', async () => {
    const healthy = JSON.parse((await t.mesh.cli('aitbc', ['health', '--target', 'all', '--json'])).stdout)
    expect(healthy.validation_status).toBe('success')
    const checks = healthy.nodes_status.aitbc2.checks as Array<{ name: string, ok: boolean }>
    expect(checks.find(c => c.name === 'block_height')).toMatchObject({ ok: true, state: 'ok', detail: 'ait-devnet: height 15230' })
    expect(checks.find(c => c.name === 'mempool')).toMatchObject({ ok: true, state: 'ok', detail: 'ait-devnet: 12 transactions' })

    const rpc = t.rpcs.get('aitbc2')!
    rpc.state.healthy = false
    rpc.state.headStatus = 500
    try {
      const res = await t.mesh.cli('aitbc', ['health', '--target', 'aitbc2', '--json'])
      expect(res.code).toBe(1)
      const out = JSON.parse(res.stdout)
      expect(out.nodes_status.aitbc2.status).toBe('degraded')
      expect(out.nodes_status.aitbc2.block_height).toBeNull()
      expect(out.validation_status).toBe('failed')
      expect(out.issues).toContainEqual(expect.stringMatching(/^aitbc2: block_height: GET http:\/\/.*\/rpc\/head\?chain_id=ait-devnet returned HTTP 500$/))
      expect(out.issues).toContainEqual(expect.stringMatching(/^aitbc2: rpc health: GET .*\/health returned HTTP 503/))
      // The degraded verdict travels in heartbeats too.
      await waitFor('aitbc to see aitbc2 degraded', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc2') === 'degraded', 5000)
    } finally {
      rpc.state.healthy = true
      rpc.state.headStatus = 200
    }
    // The next periodic probe (probes.intervalMs, 5 s by default) clears it.
    await waitFor('aitbc2 to recover', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc2') === 'online', 15_000)
  })

  it('answers the same through `op` JSON, in and out', async () => {
    const res = await t.mesh.cli('aitbc1', ['op', '{"operation":"status","target_node":"genesis","timeout":10}'])
    expect(res.code).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc.block_height).toBe(15234)
    const stdin = await t.mesh.cli('aitbc1', ['op', '-'], '{"operation":"health","target_node":"aitbc1"}')
    expect(stdin.code).toBe(0)
    expect(JSON.parse(stdin.stdout).operation).toBe('health')
  })

  it('shows every configured node in `peers` with connection, latency and last heartbeat', async () => {
    const res = await t.mesh.cli('aitbc', ['peers', '--json'])
    expect(res.code).toBe(0)
    const { mesh_view: view, nodes: peers } = JSON.parse(res.stdout) as { mesh_view: Record<string, unknown>, nodes: Array<Record<string, unknown>> }
    expect(view).toMatchObject({ reachable: ['aitbc', 'aitbc1', 'aitbc2'], unreachable: [], configured: 3, quorum: true })
    expect(peers.map(p => p.name)).toEqual(['aitbc', 'aitbc1', 'aitbc2'])
    for (const peer of peers.filter(p => p.self !== true)) {
      expect(peer).toMatchObject({ connected: true, status: 'online' })
      expect(typeof peer.latency_ms).toBe('number')
      expect(peer.last_heartbeat_age_ms as number).toBeLessThan(3000)
      expect((peer.addrs as string[])[0]).toMatch(/^\/ip4\/127\./)
    }
    const table = await t.mesh.cli('aitbc', ['peers'])
    expect(table.stdout).toMatch(/^aitbc1\s+follower\s+online\s+yes/m)
  })

  it('reports a SIGKILLed follower offline within 3 s, and online again within 3 s of its restart', async () => {
    await t.mesh.stop('aitbc2', 'SIGKILL')
    await waitFor('aitbc to see aitbc2 offline', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc2') === 'offline', 3000, 20)
    await waitFor('aitbc1 to see aitbc2 offline', async () => await statusOfPeer(t.mesh, 'aitbc1', 'aitbc2') === 'offline', 3000, 20)

    // The offline target is part of the answer (not a missing key), the exit code is 1, and
    // the answer does not wait for a timeout.
    const res = await t.mesh.cli('aitbc', ['status', '--target', 'all', '--json', '--timeout', '30'])
    expect(res.code).toBe(1)
    const out = JSON.parse(res.stdout)
    expect(out.nodes_status.aitbc2).toEqual({ role: 'follower', status: 'offline', block_height: null, mempool_size: null, p2p_connections: 0, service_uptime: null, last_sync: null, chains: {}, probed_at: null, probe_age_ms: null, store: null })
    expect(out.issues).toContainEqual(expect.stringMatching(/^aitbc2: offline: /))
    expect(out.validation_status).toBe('partial')
    expect(out.execution_time).toBeLessThan(5)
    expect(out.nodes_status.aitbc.status).toBe('online')

    // Restart: the stale socket of the killed daemon is replaced, and the others see it again.
    await t.mesh.start('aitbc2')
    await waitFor('aitbc to see aitbc2 online', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc2') === 'online', 3000, 20)
    await waitFor('aitbc1 to see aitbc2 online', async () => await statusOfPeer(t.mesh, 'aitbc1', 'aitbc2') === 'online', 3000, 20)
  })

  it('stops on SIGTERM with exit 0 and removes its control socket', async () => {
    const node = t.mesh.node('aitbc1')
    expect(existsSync(node.socket)).toBe(true)
    const started = Date.now()
    const code = await t.mesh.stop('aitbc1', 'SIGTERM')
    expect(code).toBe(0)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(existsSync(node.socket)).toBe(false)
    const res = await t.mesh.cli('aitbc1', ['status'])
    expect(res.code).toBe(3)
    expect(res.stderr).toMatch(/cannot reach the daemon/)
  })
})
