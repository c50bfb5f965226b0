import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino, type Logger } from 'pino'
import { beforeAll, describe, expect, it } from 'vitest'
import { parseConfig, type MeshConfig } from '../../src/config/config.js'
import { NoQuorumError } from '../../src/errors.js'
import { hasQuorum, Membership } from '../../src/mesh/membership.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import type { ActionResult } from '../../src/operations/actions.js'
import { LocalExecutor, type OperationExecutor } from '../../src/operations/local-executor.js'
import type { OperationProtocol } from '../../src/operations/operation-protocol.js'
import { reachablePeer } from '../../src/operations/reachable.js'
import type { NodeReport } from '../../src/operations/report.js'
import { OperationRunner } from '../../src/operations/runner.js'

const OFFLINE_MS = 3000
let peerLines: string

beforeAll(async () => {
  const ids = await Promise.all([0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  peerLines = `peers:
  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${ids[0]} }
  - { name: aitbc2, role: follower, addr: /ip4/10.0.0.3/tcp/7070/p2p/${ids[1]} }
`
})

function captured (): { log: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  return { lines, log: pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } }) }
}

const ACTIONS = `actions:
  restart-chain: { run: ["true"], destructive: true, allowFrom: [self, genesis, follower] }
  hello: { run: ["true"] }
sync: { forceFrom: [self, genesis, follower] }
`

/** aitbc (genesis) with followers aitbc1 and aitbc2, both connected and heard from at `now`. */
function mesh (now = Date.now()): { config: MeshConfig, peers: PeerTable } {
  const config = parseConfig(`node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc-mesh\n${peerLines}${ACTIONS}`, '/etc/aitbc/mesh.yaml', {})
  const peers = new PeerTable(config.peers, OFFLINE_MS)
  for (const peer of config.peers) {
    peers.markConnected(peer.peerId, undefined, now - 10_000)
    peers.recordHeartbeat(peer.peerId, { seq: 1n, startedAtMs: 1, sentAtMs: now, healthy: true, p2pConnections: 2 }, now)
  }
  return { config, peers }
}

/** The peer stops heartbeating: its last heartbeat is `ageMs` old, its connection still open (a partition). */
function silence (config: MeshConfig, peers: PeerTable, name: string, ageMs: number): void {
  peers.get(name)!.lastHeartbeatAt = Date.now() - ageMs
}

function report (node: string, role: 'genesis' | 'follower'): NodeReport {
  return { node, role, status: 'online', block_height: 7, mempool_size: 0, p2p_connections: 2, service_uptime: null, last_sync: null, issues: [], checks: [], daemon_uptime_ms: 1, probed_at_ms: Date.now(), chains: {}, store: null }
}

function ok (action: string): ActionResult {
  return { action, state: 'ok', exit_code: 0, duration_ms: 1, output_tail: '', reason: '', destructive: true, health_before: '', health_after: '' }
}

/** A protocol whose every request hangs: any peer it is asked of would wait for the timeout. */
function hangingProtocol (): Pick<OperationProtocol, 'request' | 'requestAction' | 'requestSync'> {
  const never = async (): Promise<never> => await new Promise<never>(() => {})
  return { request: never, requestAction: never, requestSync: never }
}

function local (): OperationExecutor {
  return { report: async () => report('aitbc', 'genesis'), action: async action => ok(action), sync: async () => ({ state: 'ok' }) }
}

describe('membership view', () => {
  it('the majority rule counts this node: 2 of 3 and 3 of 5 are quorum, 1 of 2 and 2 of 4 are not', () => {
    expect([hasQuorum(2, 3), hasQuorum(3, 5), hasQuorum(1, 1)]).toEqual([true, true, true])
    expect([hasQuorum(1, 2), hasQuorum(2, 4), hasQuorum(2, 5), hasQuorum(1, 3)]).toEqual([false, false, false, false])
  })

  it('one peer silent: still quorum; two silent: no quorum, logged once with the unreachable nodes, since when', () => {
    const { config, peers } = mesh()
    const { log, lines } = captured()
    const membership = new Membership({ node: 'aitbc', peers, log, startedAt: Date.now() - 60_000 })
    expect(membership.view()).toMatchObject({ reachable: ['aitbc', 'aitbc1', 'aitbc2'], unreachable: [], configured: 3, quorum: true })
    silence(config, peers, 'aitbc2', OFFLINE_MS + 1)
    expect(membership.view()).toMatchObject({ reachable: ['aitbc', 'aitbc1'], unreachable: ['aitbc2'], quorum: true })
    const before = Date.now()
    silence(config, peers, 'aitbc1', OFFLINE_MS + 1)
    const cut = membership.view()
    expect(cut).toMatchObject({ reachable: ['aitbc'], unreachable: ['aitbc1', 'aitbc2'], quorum: false })
    expect(Date.parse(cut.since)).toBeGreaterThanOrEqual(before)
    expect(membership.view().since).toBe(cut.since)
    expect(lines.filter(l => l.event === 'quorum_changed')).toMatchObject([{ quorum: false, unreachable: ['aitbc1', 'aitbc2'] }])
  })

  it('a peer going offline and coming back is logged once each way, with the reason; one never heard from is not logged offline', () => {
    const { config, peers } = mesh()
    const { log, lines } = captured()
    const membership = new Membership({ node: 'aitbc', peers, log, startedAt: Date.now() })
    membership.view()
    expect(lines.filter(l => l.event === 'peer_online').map(l => l.peer).sort()).toEqual(['aitbc1', 'aitbc2'])
    silence(config, peers, 'aitbc2', OFFLINE_MS + 1500)
    membership.view()
    membership.view()
    expect(lines.filter(l => l.event === 'peer_offline')).toMatchObject([{ peer: 'aitbc2', reason: expect.stringMatching(/^no heartbeat for 4\.5 s/) as unknown }])
    peers.recordHeartbeat(config.peers.find(p => p.name === 'aitbc2')!.peerId, { seq: 2n, startedAtMs: 1, sentAtMs: Date.now(), healthy: true, p2pConnections: 2 })
    membership.view()
    expect(lines.filter(l => l.event === 'peer_online').map(l => l.peer)).toEqual(['aitbc1', 'aitbc2', 'aitbc2'])
    expect(lines.filter(l => l.event === 'peer_offline')).toHaveLength(1)

    const fresh = new PeerTable(config.peers, OFFLINE_MS)
    const quiet = captured()
    new Membership({ node: 'aitbc', peers: fresh, log: quiet.log, startedAt: Date.now() }).view()
    expect(quiet.lines.filter(l => l.event === 'peer_offline' || l.event === 'peer_online')).toEqual([])
  })

  it('a peer heard only through a relay (its direct connection closed) is reachable', () => {
    const { config, peers } = mesh()
    const membership = new Membership({ node: 'aitbc', peers, log: pino({ level: 'silent' }), startedAt: Date.now() })
    const aitbc1 = config.peers.find(p => p.name === 'aitbc1')!
    peers.markDisconnected(aitbc1.peerId, Date.now() - 2000)
    // Signed by aitbc1, relayed by aitbc2's gossip after the close.
    peers.recordHeartbeat(aitbc1.peerId, { seq: 2n, startedAtMs: 1, sentAtMs: Date.now(), healthy: true, p2pConnections: 1 })
    expect(membership.view()).toMatchObject({ reachable: ['aitbc', 'aitbc1', 'aitbc2'], quorum: true })
  })

  it('a two-node mesh whose peer is gone has no quorum: 1 of 2', () => {
    const config = parseConfig(`node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc-mesh\n${peerLines.split('\n').slice(0, 2).join('\n')}\n`, '/etc/aitbc/mesh.yaml', {})
    const membership = new Membership({ node: 'aitbc', peers: new PeerTable(config.peers, OFFLINE_MS), log: pino({ level: 'silent' }), startedAt: Date.now() })
    expect(membership.view()).toMatchObject({ reachable: ['aitbc'], unreachable: ['aitbc1'], configured: 2, quorum: false })
  })
})

describe('fast answers for unreachable peers', () => {
  it('a peer whose connection is open but silent past the offline window is not asked', () => {
    const { config, peers } = mesh()
    silence(config, peers, 'aitbc1', OFFLINE_MS + 500)
    const verdict = reachablePeer(peers, 'aitbc1')
    expect(verdict).toMatchObject({ reachable: false })
    expect((verdict as { reason: string }).reason).toMatch(/^unreachable: no heartbeat for 3\.5 s \(its connection is open but silent\)$/)
  })

  it('status --target all on a cut-off node answers for the silent peers at once, offline with the reason', async () => {
    const { config, peers } = mesh()
    silence(config, peers, 'aitbc1', OFFLINE_MS + 1)
    silence(config, peers, 'aitbc2', OFFLINE_MS + 1)
    // Every peer request would hang: only answering without asking lets this finish.
    const runner = new OperationRunner({ config, peers, local: local(), protocol: hangingProtocol(), log: pino({ level: 'silent' }) })
    const result = await runner.run({ operation: 'status', target_node: 'all', timeout: 120 })
    expect(result.nodes_status.aitbc?.status).toBe('online')
    expect(result.nodes_status.aitbc1?.status).toBe('offline')
    expect(result.nodes_status.aitbc2?.status).toBe('offline')
    expect(result.issues).toEqual(expect.arrayContaining([expect.stringMatching(/^aitbc1: offline: unreachable: no heartbeat for/)]))
  })
})

describe('destructive work needs quorum', () => {
  function cutOff (): { config: MeshConfig, peers: PeerTable, membership: Membership, lines: Array<Record<string, unknown>>, runner: OperationRunner } {
    const { config, peers } = mesh()
    silence(config, peers, 'aitbc1', OFFLINE_MS + 1)
    silence(config, peers, 'aitbc2', OFFLINE_MS + 1)
    const { log, lines } = captured()
    const membership = new Membership({ node: 'aitbc', peers, log, startedAt: Date.now() })
    const executor = new LocalExecutor({ config, log, probes: { reportFor: async () => report('aitbc', 'genesis') }, meshView: () => membership.view() })
    const runner = new OperationRunner({ config, peers, local: executor, protocol: hangingProtocol(), log, membership })
    return { config, peers, membership, lines, runner }
  }

  it('the requester refuses a destructive coordinate and a forced sync, naming the unreachable nodes', async () => {
    const { runner, lines } = cutOff()
    const refused = await runner.run({ operation: 'coordinate', action: 'restart-chain', target_node: 'all', force: true }).catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(NoQuorumError)
    expect((refused as NoQuorumError).message).toMatch(/^coordinate refused: no quorum: aitbc reaches 1 of 3 configured nodes \(unreachable: aitbc1, aitbc2\)/)
    expect((refused as NoQuorumError).unreachable).toEqual(['aitbc1', 'aitbc2'])
    // A destructive action is destructive work even without --force (the targets would refuse it anyway).
    await expect(runner.run({ operation: 'coordinate', action: 'restart-chain', target_node: 'aitbc' })).rejects.toThrow(NoQuorumError)
    await expect(runner.run({ operation: 'sync', sync_type: 'git', target_node: 'all', force: true })).rejects.toThrow(/^sync refused: no quorum/)
    expect(lines.filter(l => l.event === 'operation_refused_no_quorum')).toHaveLength(3)
  })

  it('work that is not destructive still runs without quorum', async () => {
    const { runner } = cutOff()
    const result = await runner.run({ operation: 'coordinate', action: 'hello', target_node: 'aitbc' })
    expect(result.nodes_status.aitbc?.action).toMatchObject({ state: 'ok' })
    expect(result.mesh_view).toMatchObject({ quorum: false, unreachable: ['aitbc1', 'aitbc2'] })
  })

  it('--override-quorum runs it, logged with who asked on the requester and the target', async () => {
    const { runner, lines } = cutOff()
    const result = await runner.run({ operation: 'coordinate', action: 'restart-chain', target_node: 'aitbc', force: true, override_quorum: true })
    expect(result.nodes_status.aitbc?.action).toMatchObject({ state: 'ok', exit_code: 0 })
    expect(lines.filter(l => l.event === 'quorum_overridden')).toMatchObject([
      { requestedBy: 'local operator', node: 'aitbc', operation: 'coordinate', action: 'restart-chain', unreachable: ['aitbc1', 'aitbc2'] },
      { requestedBy: 'local operator', from: 'aitbc', action: 'restart-chain' }
    ])
  })

  it('a target without quorum refuses a peer\'s destructive action and forced sync step, unless the peer\'s operator overrode it', async () => {
    const { config, membership } = cutOff()
    const { log, lines } = captured()
    const executor = new LocalExecutor({ config, log, probes: { reportFor: async () => report('aitbc', 'genesis') }, meshView: () => membership.view() })
    const peer = { node: 'aitbc1', role: 'follower' as const, self: false, operationId: 'op-1' }
    const action = await executor.action('restart-chain', true, 5000, peer)
    expect(action).toMatchObject({ state: 'refused', exit_code: null })
    expect(action.reason).toMatch(/^no quorum: aitbc reaches 1 of 3 configured nodes \(unreachable: aitbc1, aitbc2\)/)
    expect(await executor.sync('git.apply', null, true, 5000, peer)).toMatchObject({ state: 'refused', reason: expect.stringMatching(/^no quorum/) })
    // Not destructive: runs.
    expect(await executor.action('hello', false, 5000, peer)).toMatchObject({ state: 'ok' })
    const overridden = await executor.action('restart-chain', true, 5000, { ...peer, overrideQuorum: true })
    expect(overridden).toMatchObject({ state: 'ok', exit_code: 0 })
    // Through the rejection log: once per (peer, reason), then summarised.
    expect(lines.filter(l => l.event === 'operation_refused')).toMatchObject([{ peer: 'aitbc1', reason: 'no_quorum', action: 'restart-chain' }])
    expect(lines.filter(l => l.event === 'quorum_overridden')).toMatchObject([{ requestedBy: 'the operator of aitbc1', from: 'aitbc1', node: 'aitbc', action: 'restart-chain', operationId: 'op-1' }])
  })

  it('with quorum nothing changes: the destructive coordinate runs', async () => {
    const { config, peers } = mesh()
    const membership = new Membership({ node: 'aitbc', peers, log: pino({ level: 'silent' }), startedAt: Date.now() })
    const executor = new LocalExecutor({ config, log: pino({ level: 'silent' }), probes: { reportFor: async () => report('aitbc', 'genesis') }, meshView: () => membership.view() })
    const runner = new OperationRunner({ config, peers, local: executor, protocol: hangingProtocol(), log: pino({ level: 'silent' }), membership })
    const result = await runner.run({ operation: 'coordinate', action: 'restart-chain', target_node: 'aitbc', force: true })
    expect(result.nodes_status.aitbc?.action).toMatchObject({ state: 'ok' })
    expect(result.mesh_view).toMatchObject({ quorum: true, unreachable: [] })
  })
})
