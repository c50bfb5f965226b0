import { Writable } from 'node:stream'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { beforeAll, describe, expect, it } from 'vitest'
import { parseConfig, type MeshConfig } from '../../src/config/config.js'
import { TimeoutError } from '../../src/errors.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import type { ActionResult } from '../../src/operations/actions.js'
import { LocalExecutor, type OperationExecutor } from '../../src/operations/local-executor.js'
import type { OperationProtocol } from '../../src/operations/operation-protocol.js'
import { reachablePeer } from '../../src/operations/reachable.js'
import type { NodeReport } from '../../src/operations/report.js'
import { OperationRunner } from '../../src/operations/runner.js'

const log = pino({ level: 'silent' }, new Writable({ write (_chunk, _enc, done) { done() } }))
let peerLines: string

beforeAll(async () => {
  const ids = await Promise.all([0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  peerLines = `peers:
  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${ids[0]} }
  - { name: aitbc2, role: follower, addr: /ip4/10.0.0.3/tcp/7070/p2p/${ids[1]} }
`
})

/** The genesis node aitbc with followers aitbc1 and aitbc2, both connected. */
function mesh (): { config: MeshConfig, peers: PeerTable } {
  const config = parseConfig(`node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc-mesh\n${peerLines}`, '/etc/aitbc/mesh.yaml', {})
  const peers = new PeerTable(config.peers, 10_000)
  for (const peer of config.peers) peers.markConnected(peer.peerId, undefined)
  return { config, peers }
}

function report (node: string, role: 'genesis' | 'follower'): NodeReport {
  return { node, role, status: 'online', block_height: 7, mempool_size: 0, p2p_connections: 2, service_uptime: null, last_sync: null, issues: [], checks: [], daemon_uptime_ms: 1, probed_at_ms: Date.now(), chains: {}, store: null }
}

function ok (action: string): ActionResult {
  return { action, state: 'ok', exit_code: 0, duration_ms: 1, output_tail: '', reason: '', destructive: false, health_before: '', health_after: '' }
}

/** A protocol stand-in that answers every peer at once. */
function protocol (): Pick<OperationProtocol, 'request' | 'requestAction' | 'requestSync'> {
  return {
    request: async (_peerId, expected) => report(expected.name, expected.role),
    requestAction: async (_peerId, _expected, action) => ok(action),
    requestSync: async () => { throw new Error('not used') }
  }
}

function local (overrides: Partial<OperationExecutor> = {}): OperationExecutor {
  return {
    report: async () => report('aitbc', 'genesis'),
    action: async action => ok(action),
    sync: async () => { throw new Error('git: not a repository') },
    ...overrides
  }
}

describe('operation runner: a peer removed by a reload mid-operation', () => {
  it('reachablePeer: a removed peer is unreachable, a connected one reachable', () => {
    const { config, peers } = mesh()
    expect(reachablePeer(peers, 'aitbc1')).toMatchObject({ reachable: true, peer: { name: 'aitbc1' } })
    peers.apply(config.peers.filter(p => p.name !== 'aitbc1'))
    expect(reachablePeer(peers, 'aitbc1')).toEqual({ reachable: false, reason: 'not in the peer table' })
  })

  it('coordinate --sequential: the removed peer is answered unreachable, and the operation finishes', async () => {
    const { config, peers } = mesh()
    // The reload lands while this node runs its own part, after the targets were resolved.
    const reloadDuringAction = local({
      action: async action => {
        peers.apply(config.peers.filter(p => p.name !== 'aitbc2'))
        return ok(action)
      }
    })
    const runner = new OperationRunner({ config, peers, local: reloadDuringAction, protocol: protocol(), log })
    const result = await runner.run({ operation: 'coordinate', action: 'hello', target_node: 'all', sequential: true })
    expect(result.nodes_status.aitbc?.action).toMatchObject({ state: 'ok' })
    expect(result.nodes_status.aitbc1?.action).toMatchObject({ state: 'ok' })
    expect(result.nodes_status.aitbc2).toMatchObject({ status: 'offline', action: { state: 'unreachable', reason: 'offline: not in the peer table' } })
    expect(result.validation_status).toBe('partial')
    expect(result.issues).toEqual(['aitbc2: hello: unreachable: offline: not in the peer table'])
  })

  it('sync: the removed peer\'s steps fail with the reason instead of breaking the run', async () => {
    const { config, peers } = mesh()
    peers.apply(config.peers.filter(p => p.name !== 'aitbc2'))
    const runner = new OperationRunner({ config, peers, local: local(), protocol: protocol(), log })
    const result = await runner.run({ operation: 'sync', sync_type: 'git', target_node: 'all' })
    expect(result.nodes_status.aitbc2?.status).toBe('offline')
    expect(result.issues).toContain('aitbc2: offline: not in the peer table')
    expect(result.nodes_status.aitbc2?.sync?.git).toMatchObject({ state: 'failed', reason: 'aitbc2 is offline: not in the peer table' })
  })

  it('status and health: the removed peer is offline with the reason', async () => {
    const { config, peers } = mesh()
    peers.apply(config.peers.filter(p => p.name !== 'aitbc1'))
    const runner = new OperationRunner({ config, peers, local: local(), protocol: protocol(), log })
    const result = await runner.run({ operation: 'health', target_node: 'all' })
    expect(result.nodes_status.aitbc1?.status).toBe('offline')
    expect(result.issues).toContain('aitbc1: offline: not in the peer table')
    expect(result).toMatchObject({ validation_status: 'partial', confidence: 0.67 })
  })
})

describe('local executor', () => {
  it('a local report keeps its timeout: a probe that does not finish in time is a TimeoutError', async () => {
    const { config } = mesh()
    const stuck = new LocalExecutor({ config, log, probes: { reportFor: async () => await new Promise<NodeReport>(() => {}) } })
    await expect(stuck.report('health', 50)).rejects.toThrow(TimeoutError)
  })

  it('the runner reports its own node degraded when its probe times out, and the others as usual', async () => {
    const { config, peers } = mesh()
    const runner = new OperationRunner({ config, peers, local: local({ report: async () => { throw new TimeoutError('this node\'s status probe did not finish within 50 ms') } }), protocol: protocol(), log })
    const result = await runner.run({ operation: 'status', target_node: 'all' })
    expect(result.nodes_status.aitbc?.status).toBe('degraded')
    expect(result.issues).toEqual(['aitbc: status request failed: this node\'s status probe did not finish within 50 ms'])
    expect(result.nodes_status.aitbc1?.status).toBe('online')
    expect(result.validation_status).toBe('partial')
  })
})
