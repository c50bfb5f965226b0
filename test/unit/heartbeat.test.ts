import { TopicValidatorResult } from '@libp2p/gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { Heartbeat, NodeRole } from '../../protocols/heartbeat.js'
import { HEARTBEAT_TOPIC, HeartbeatService } from '../../src/mesh/heartbeat.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import { waitFor } from '../helpers.js'
import { MemoryNetwork, signedMessage } from '../memory-network.js'

/** aitbc runs the service under test; aitbc1 and aitbc2 are allowlisted; mallory is no one's. */
const NAMES = ['aitbc', 'aitbc1', 'aitbc2', 'mallory'] as const
type Name = typeof NAMES[number]
const roles = { aitbc: 'genesis', aitbc1: 'follower', aitbc2: 'follower' } as const
const ids = new Map<string, PeerId>()
for (const name of NAMES) ids.set(name, peerIdFromPrivateKey(await generateKeyPair('Ed25519')))
const idOf = (name: Name): PeerId => ids.get(name)!
const HOUR_MS = 3600_000

interface LogLine { event?: string, reason?: string, peer?: string, detail?: string, [key: string]: unknown }

interface TestNode {
  name: 'aitbc' | 'aitbc1' | 'aitbc2'
  service: HeartbeatService
  peers: PeerTable
  logs: LogLine[]
  /** Store epochs the service passed on, per peer, in order. */
  epochs: Array<{ name: string, epoch: string, lostFromMs: number }>
}

function beat (node: string, over: Partial<Heartbeat> = {}): Heartbeat {
  const now = Date.now()
  return { node, role: NodeRole.FOLLOWER, seq: 1n, startedAtMs: BigInt(now - 1000), sentAtMs: BigInt(now), healthy: true, p2pConnections: 2, connected: [], ...over }
}

describe('heartbeats over an in-memory gossip', () => {
  let net = new MemoryNetwork()
  const running: Array<() => void> = []

  afterEach(() => {
    for (const stop of running.splice(0).reverse()) stop()
    net = new MemoryNetwork()
  })

  function startNode (name: TestNode['name'], opts: { intervalMs?: number, offlineAfterMs?: number } = {}): TestNode {
    const logs: LogLine[] = []
    const log = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as LogLine) } })
    const others = (['aitbc', 'aitbc1', 'aitbc2'] as const).filter(n => n !== name)
    const peers = new PeerTable(others.map(n => ({ name: n, role: roles[n], peerId: idOf(n), addr: `/memory/${n}` })), opts.offlineAfterMs ?? 3000)
    const epochs: TestNode['epochs'] = []
    const service = new HeartbeatService({
      libp2p: net.node(idOf(name)),
      peers,
      node: { name, role: roles[name] },
      intervalMs: opts.intervalMs ?? 60_000,
      clockSkewMs: 60_000,
      log,
      localHealth: () => ({ healthy: true, blockHeight: 42 }),
      storeEpoch: () => ({ epoch: `${name}-epoch`, lostFromMs: 0 }),
      onPeerStoreEpoch: (peer, epoch, lostFromMs) => { epochs.push({ name: peer, epoch, lostFromMs }) }
    })
    service.start()
    running.push(() => { service.stop() })
    return { name, service, peers, logs, epochs }
  }

  /** A heartbeat arriving at `at` from `relayedBy`, signed by `signer`. */
  async function arrive (at: TestNode, signer: Name, heartbeat: Heartbeat, relayedBy: Name = signer): Promise<TopicValidatorResult> {
    return await net.node(idOf(at.name)).services.pubsub.receive(idOf(relayedBy), signedMessage(idOf(signer), HEARTBEAT_TOPIC, Heartbeat.encode(heartbeat)))
  }

  function refusals (node: TestNode): LogLine[] {
    return node.logs.filter(l => l.event === 'heartbeat_rejected')
  }

  function liveness (node: TestNode, peer: Name): string {
    return node.peers.liveness(node.peers.get(peer)!).liveness
  }

  it('peers subscribing one after another get one extra heartbeat, a quarter interval after the last, not one each', async () => {
    const a = startNode('aitbc', { intervalMs: 800 })
    const b = startNode('aitbc1')
    net.connect(idOf('aitbc'), idOf('aitbc1'))
    await a.service.publish()
    const firstAt = Date.now()
    const firstSeq = b.peers.get('aitbc')!.lastHeartbeat!.seq
    for (const peer of ['aitbc1', 'aitbc2', 'aitbc1', 'aitbc2', 'aitbc1'] as const) {
      net.node(idOf('aitbc')).services.pubsub.dispatchEvent(new CustomEvent('subscription-change', { detail: { peerId: idOf(peer), subscriptions: [{ topic: HEARTBEAT_TOPIC, subscribe: true }] } }))
    }
    await waitFor('the extra heartbeat', () => b.peers.get('aitbc')!.lastHeartbeat!.seq > firstSeq, 2000, 5)
    expect(b.peers.get('aitbc')!.lastHeartbeat!.seq).toBe(firstSeq + 1n)
    expect(b.peers.get('aitbc')!.lastHeartbeatAt! - firstAt).toBeGreaterThanOrEqual(190)
  })

  it('a loop held by a flood of gossip still sends its heartbeats on time, from the message path, and the timer adds none after it', async () => {
    const a = startNode('aitbc', { intervalMs: 200 })
    const pubsub = net.node(idOf('aitbc')).services.pubsub
    const sentAt: number[] = []
    const publish = pubsub.publish.bind(pubsub)
    pubsub.publish = async (topic, data) => {
      if (topic === HEARTBEAT_TOPIC) sentAt.push(Date.now())
      return await publish(topic, data)
    }
    await a.service.publish()
    sentAt.length = 0
    // One second without returning to the loop (no timer can fire), taking in a gossip message
    // of another topic every 5 ms, as a node verifying and forwarding a flood does.
    const startedAt = Date.now()
    const msg = signedMessage(idOf('aitbc1'), '/aitbc-mesh/registry/test', new Uint8Array(8))
    while (Date.now() - startedAt < 1000) {
      pubsub.dispatchEvent(new CustomEvent('gossipsub:message', { detail: { propagationSource: idOf('aitbc1'), msgId: 'x', msg } }))
      const until = Date.now() + 5
      while (Date.now() < until) { /* busy */ }
    }
    // Due at 200, 400, 600, 800 and 1000 ms: each sent within a message or two of its time.
    expect(sentAt.length).toBeGreaterThanOrEqual(4)
    for (const [i, at] of sentAt.entries()) expect(at - startedAt).toBeLessThan((i + 1) * 200 + 50)
    // The timer is due an interval after the last heartbeat sent, whoever sent it: once the loop
    // is free, heartbeats stay an interval apart (no second one right behind the last).
    await waitFor('two more from the timer', () => sentAt.length >= 7, 3000, 5)
    for (let i = 1; i < sentAt.length; i++) expect(sentAt[i]! - sentAt[i - 1]!).toBeGreaterThanOrEqual(190)
  })

  it('a published heartbeat is recorded by the peer: liveness, the counts from the network slice, the store epoch', async () => {
    const a = startNode('aitbc')
    const b = startNode('aitbc1')
    net.connect(idOf('aitbc'), idOf('aitbc1'))
    a.peers.markConnected(idOf('aitbc1'), undefined)
    b.peers.markConnected(idOf('aitbc'), undefined)
    await b.service.publish()
    const state = a.peers.get('aitbc1')!
    expect(state.lastHeartbeat).toMatchObject({ healthy: true, blockHeight: 42, p2pConnections: 1, connected: ['aitbc'] })
    expect(liveness(a, 'aitbc1')).toBe('online')
    expect(a.epochs).toEqual([{ name: 'aitbc1', epoch: 'aitbc1-epoch', lostFromMs: 0 }])
    expect(refusals(a)).toEqual([])
  })

  it('a heartbeat signed by another allowlisted peer is refused and keeps neither node alive', async () => {
    const a = startNode('aitbc')
    // aitbc2 signs a heartbeat that claims to be aitbc1's.
    expect(await arrive(a, 'aitbc2', beat('aitbc1'))).toBe(TopicValidatorResult.Reject)
    expect(liveness(a, 'aitbc1')).toBe('offline')
    expect(liveness(a, 'aitbc2')).toBe('offline')
    expect(refusals(a)).toMatchObject([{ peer: 'aitbc2', reason: 'names another node', claimed: 'aitbc1', signer: idOf('aitbc2').toString() }])
  })

  it('a heartbeat signed by a peer id outside the allowlist is refused, blamed on the peer that relayed it', async () => {
    const a = startNode('aitbc')
    expect(await arrive(a, 'mallory', beat('aitbc1'), 'aitbc2')).toBe(TopicValidatorResult.Reject)
    expect(liveness(a, 'aitbc1')).toBe('offline')
    expect(refusals(a)).toMatchObject([{ peer: 'aitbc2', reason: 'signer not in the allowlist', signer: idOf('mallory').toString() }])
  })

  it('out-of-range values do not count: a bad count is rejected, a time off our clock ignored, and the node stays offline saying why', async () => {
    const a = startNode('aitbc')
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { seq: 0n }))).toBe(TopicValidatorResult.Reject)
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { p2pConnections: 1_000_000 }))).toBe(TopicValidatorResult.Reject)
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { role: NodeRole.GENESIS }))).toBe(TopicValidatorResult.Reject)
    // Our clock may be the wrong one: ignored, so the relaying peer's score is not lowered.
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { sentAtMs: BigInt(Date.now() + HOUR_MS) }))).toBe(TopicValidatorResult.Ignore)
    expect(refusals(a).map(l => l.reason)).toEqual(['seq out of range', 'p2p_connections out of range', 'role mismatch', 'sent_at outside the clock window'])
    const verdict = a.peers.liveness(a.peers.get('aitbc1')!)
    expect(verdict.liveness).toBe('offline')
    expect(verdict.reason).toMatch(/^heartbeats refused: sent_at \S+ is \d+ ms ahead of this node's clock/)
    expect(a.peers.get('aitbc1')!.lastHeartbeat).toBeUndefined()
  })

  it('liveness goes offline once no heartbeat came for the offline window', async () => {
    const offlineAfterMs = 200
    const a = startNode('aitbc', { offlineAfterMs })
    const b = startNode('aitbc1', { intervalMs: 20 })
    net.connect(idOf('aitbc'), idOf('aitbc1'))
    a.peers.markConnected(idOf('aitbc1'), undefined)
    await waitFor('aitbc1 online', () => liveness(a, 'aitbc1') === 'online', 5000, 5)
    b.service.stop()
    const lastAt = a.peers.get('aitbc1')!.lastHeartbeatAt!
    await waitFor('aitbc1 offline', () => liveness(a, 'aitbc1') === 'offline', 5000, 5)
    expect(Date.now() - lastAt).toBeGreaterThan(offlineAfterMs)
    expect(a.peers.liveness(a.peers.get('aitbc1')!).reason).toMatch(/^no heartbeat for \d+\.\d s$/)
  })

  it('after the direct connection closed, a relayed heartbeat counts only if sent after the close, read with the sender\'s clock as its direct heartbeats showed it', async () => {
    const a = startNode('aitbc')
    // aitbc1's clock is 7 s ahead of ours, within trust.clockSkewMs.
    const skewMs = 7000
    const startedAtMs = BigInt(Date.now() - 60_000)
    a.peers.markConnected(idOf('aitbc1'), undefined)
    // Passed on by aitbc1 itself: over the direct connection.
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { seq: 1n, startedAtMs, sentAtMs: BigInt(Date.now() + skewMs) }))).toBe(TopicValidatorResult.Accept)
    // The connection closed 400 ms ago; a heartbeat aitbc1 sent 10 ms before that comes only now, through aitbc2.
    const closedAt = Date.now() - 400
    a.peers.markDisconnected(idOf('aitbc1'), closedAt)
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { seq: 2n, startedAtMs, sentAtMs: BigInt(closedAt - 10 + skewMs) }), 'aitbc2')).toBe(TopicValidatorResult.Accept)
    expect(a.peers.get('aitbc1')!.lastHeartbeat!.seq).toBe(2n)
    expect(a.peers.liveness(a.peers.get('aitbc1')!).reason).toMatch(/^connection lost 0\.\d s ago$/)
    // One sent now, through aitbc2: aitbc1 is alive, only the direct connection is gone.
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { seq: 3n, startedAtMs, sentAtMs: BigInt(Date.now() + skewMs) }), 'aitbc2')).toBe(TopicValidatorResult.Accept)
    expect(liveness(a, 'aitbc1')).toBe('online')
  })

  it('the newest heartbeat wins: an older one relayed late counts for nothing and cannot bring back an older store epoch', async () => {
    const a = startNode('aitbc')
    const startedAtMs = BigInt(Date.now() - 1000)
    const older = beat('aitbc1', { seq: 5n, startedAtMs, storeEpoch: 'before-the-loss', storeLostFromMs: 0n })
    const newer = beat('aitbc1', { seq: 6n, startedAtMs, storeEpoch: 'after-the-loss', storeLostFromMs: BigInt(Date.now() - 500) })
    expect(await arrive(a, 'aitbc1', newer)).toBe(TopicValidatorResult.Accept)
    // The older one is signed by aitbc1 and valid, only late: accepted by gossip, ignored by the table.
    expect(await arrive(a, 'aitbc1', older, 'aitbc2')).toBe(TopicValidatorResult.Accept)
    expect(a.peers.get('aitbc1')!.lastHeartbeat!.seq).toBe(6n)
    expect(a.epochs.map(e => e.epoch)).toEqual(['after-the-loss'])
    // A heartbeat of an earlier run of the daemon loses too, whatever its seq.
    expect(await arrive(a, 'aitbc1', beat('aitbc1', { seq: 99n, startedAtMs: startedAtMs - 60_000n, storeEpoch: 'earlier-run', storeLostFromMs: 0n }))).toBe(TopicValidatorResult.Accept)
    expect(a.peers.get('aitbc1')!.lastHeartbeat!.seq).toBe(6n)
    expect(a.epochs.map(e => e.epoch)).toEqual(['after-the-loss'])
  })
})
