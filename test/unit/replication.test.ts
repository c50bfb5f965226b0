import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentUpdate, SyncPush, SyncRequest, SyncResponse } from '../../protocols/agents.js'
import { ANTI_ENTROPY_MAX_DIGEST_ENTRIES } from '../../src/constants.js'
import { TimeoutError } from '../../src/errors.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import type { AgentRecord } from '../../src/registry/agent.js'
import { ChangeAuthority } from '../../src/registry/authorship.js'
import { toWire } from '../../src/registry/entry.js'
import { AgentRegistry } from '../../src/registry/registry.js'
import {
  AGENTS_SYNC_PROTOCOL, AGENTS_TOPIC, AgentReplication, SyncMessageRefusedError, SyncTimeoutError, type ReplicationLimits, type SyncSummary
} from '../../src/registry/replication.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir, waitFor } from '../helpers.js'
import { MemoryNetwork, signedMessage, type Dial } from '../memory-network.js'

/** aitbc and aitbc1 run the real service; aitbc2 is allowlisted by both and played by hand; mallory is no one's. */
const NAMES = ['aitbc', 'aitbc1', 'aitbc2', 'mallory'] as const
type Name = typeof NAMES[number]
const roles: Record<string, 'genesis' | 'follower'> = { aitbc: 'genesis', aitbc1: 'follower', aitbc2: 'follower' }
const keys = new Map<string, PrivateKey>()
const ids = new Map<string, PeerId>()
for (const name of NAMES) {
  const key = await generateKeyPair('Ed25519')
  keys.set(name, key)
  ids.set(name, peerIdFromPrivateKey(key))
}
const idOf = (name: Name): PeerId => ids.get(name)!
/** A short round deadline for the tests that wait for one to run out. */
const TIMEOUT_MS = 300

/** Signs as `author` with `key` (the author's own unless given): a forgery when the key is someone else's. */
function authority (author: string, key = keys.get(author)!): ChangeAuthority {
  return new ChangeAuthority({
    node: author,
    privateKey: key,
    peerKey: name => name in roles ? keys.get(name)!.publicKey : undefined,
    roleOf: name => roles[name],
    removalsFrom: () => ['genesis']
  })
}

function record (id: string, owner: string, over: Partial<AgentRecord> = {}): AgentRecord {
  const now = new Date().toISOString()
  return {
    agent_id: id, agent_type: 'worker', status: 'active', capabilities: [], services: [], endpoints: {}, metadata: {}, last_heartbeat: now,
    registration_time: now, load_metrics: {}, health_score: 1, version: '1.0.0', tags: [], chain_id: 'ait-hub', island_id: 'default', owner_node: owner, ...over
  }
}

/** A change to `agentId`'s record authored by `author`, signed with `key`, as one node sends it to another. */
function update (author: string, agentId: string, opts: { key?: PrivateKey, sender?: string, ms?: number } = {}): AgentUpdate {
  const rec = record(agentId, author)
  const entry = authority(author, opts.key).sign({ agentId, clock: { ms: opts.ms ?? Date.now(), counter: 0, node: author }, owner: author, recordJson: JSON.stringify(rec), record: rec })
  return toWire(entry, opts.sender ?? author)
}

interface LogLine { event?: string, reason?: string, peer?: string, err?: string, [key: string]: unknown }

interface TestNode {
  name: Name
  registry: AgentRegistry
  replication: AgentReplication
  peers: PeerTable
  logs: LogLine[]
}

describe('AgentReplication over an in-memory network', () => {
  let net: MemoryNetwork
  const running: Array<() => Promise<void>> = []

  afterEach(async () => {
    for (const stop of running.splice(0).reverse()) await stop()
  })

  function fresh (): void {
    net = new MemoryNetwork()
  }

  async function startNode (name: Name, limits: Partial<ReplicationLimits> = {}): Promise<TestNode> {
    const logs: LogLine[] = []
    const log = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as LogLine) } })
    const store = new SqliteBackend(join(tempDir('aitbc-mesh-replication-'), 'store.db'), '')
    const registry = new AgentRegistry({ node: name, store, log, authority: authority(name), clockSkewMs: 60_000, recordFields: 15, agentDefaults: { chainId: 'ait-hub', islandId: 'default' } })
    await registry.start()
    const others = (['aitbc', 'aitbc1', 'aitbc2'] as const).filter(n => n !== name)
    const peers = new PeerTable(others.map(n => ({ name: n, role: roles[n]!, peerId: idOf(n), addr: `/memory/${n}` })), 3000)
    const replication = new AgentReplication({ libp2p: net.node(idOf(name)), peers, registry, node: name, log, limits })
    await replication.start()
    running.push(async () => {
      await replication.stop()
      await registry.stop()
      await store.close()
    })
    return { name, registry, replication, peers, logs }
  }

  /** Links two nodes and tells each it is connected (what libp2p's connect event and the peer table say). */
  function connect (a: TestNode, b: TestNode | Name, announce = false): void {
    const bName = typeof b === 'string' ? b : b.name
    a.peers.markConnected(idOf(bName), undefined)
    if (typeof b !== 'string') b.peers.markConnected(idOf(a.name), undefined)
    net.connect(idOf(a.name), idOf(bName), { announce })
  }

  function agentIds (node: TestNode): string[] {
    return node.registry.list({}).map(r => r.agent_id).sort()
  }

  function lines (node: TestNode, event: string, reason?: string): LogLine[] {
    return node.logs.filter(l => l.event === event && (reason == null || l.reason === reason))
  }

  async function register (node: TestNode, agentId: string, metadata: Record<string, string> = {}): Promise<void> {
    await node.registry.register({ agent_id: agentId, agent_type: 'worker', metadata })
  }

  /** aitbc2 answers anti-entropy with `answer`, given both ends of the exchange. */
  async function handAnswers (answer: (stream: Stream, lp: ReturnType<typeof lpStream>) => Promise<void>): Promise<void> {
    await net.node(idOf('aitbc2')).handle(AGENTS_SYNC_PROTOCOL, async stream => {
      await answer(stream, lpStream(stream, { maxDataLength: 32 * 1024 * 1024 }))
    })
  }

  /** aitbc2 dials `target` for anti-entropy by hand. */
  async function handDial (target: TestNode): Promise<{ dial: Dial, lp: ReturnType<typeof lpStream> }> {
    const stream = await net.node(idOf('aitbc2')).dialProtocol(idOf(target.name), AGENTS_SYNC_PROTOCOL)
    const dial = net.dialsTo(idOf(target.name), AGENTS_SYNC_PROTOCOL).find(d => d.outbound === stream)!
    return { dial, lp: lpStream(stream, { maxDataLength: 32 * 1024 * 1024 }) }
  }

  /** Runs `sync` and how long it took. */
  async function timed (sync: () => Promise<SyncSummary>): Promise<{ summary: SyncSummary, ms: number }> {
    const started = performance.now()
    const summary = await sync()
    return { summary, ms: performance.now() - started }
  }

  describe('repair', () => {
    it('two registries converge by anti-entropy on connection after each changed agents while they were apart', async () => {
      fresh()
      const a = await startNode('aitbc')
      const b = await startNode('aitbc1')
      await register(a, 'a-old')
      await register(b, 'b-old')
      connect(a, b)
      await a.replication.syncWith(idOf('aitbc1'))
      expect(agentIds(b)).toEqual(['a-old', 'b-old'])

      // Apart: gossip reaches no one, so only anti-entropy can tell the other.
      net.disconnect(idOf('aitbc'), idOf('aitbc1'))
      await a.registry.remove({ agent_id: 'a-old' })
      await register(a, 'a-new')
      await register(b, 'b-new')
      expect(agentIds(a)).toEqual(['a-new', 'b-old'])
      expect(agentIds(b)).toEqual(['a-old', 'b-new', 'b-old'])

      connect(a, b, true)
      await waitFor('both registries to hold the same agents', () => JSON.stringify(agentIds(a)) === JSON.stringify(agentIds(b)) && agentIds(a).length === 3, 5000)
      expect(agentIds(a)).toEqual(['a-new', 'b-new', 'b-old'])
      // The removal travelled as a tombstone: b does not bring a-old back, now or on the next round.
      const again = await b.replication.syncWith(idOf('aitbc'))
      expect(again).toEqual({ rounds: 1, received: 0, sent: 0 })
      expect(agentIds(a)).toEqual(['a-new', 'b-new', 'b-old'])
      expect(lines(a, 'anti_entropy').length + lines(b, 'anti_entropy').length).toBeGreaterThan(0)
    })

    it('the periodic round compares with one connected peer per interval, each in turn', async () => {
      fresh()
      const a = await startNode('aitbc', { intervalMs: 100 })
      connect(a, 'aitbc1')
      connect(a, 'aitbc2')
      // Both peers answer by hand; the first rounds (on start and on connect) are over before counting.
      for (const peer of ['aitbc1', 'aitbc2'] as const) {
        await net.node(idOf(peer)).handle(AGENTS_SYNC_PROTOCOL, async stream => { await stream.close() })
      }
      const dialsTo = (peer: Name): number => net.dialsTo(idOf(peer), AGENTS_SYNC_PROTOCOL).filter(d => d.from.equals(idOf('aitbc'))).length
      const before = { aitbc1: dialsTo('aitbc1'), aitbc2: dialsTo('aitbc2') }
      await waitFor('six periodic rounds', () => dialsTo('aitbc1') + dialsTo('aitbc2') - before.aitbc1 - before.aitbc2 >= 6, 5000, 10)
      const periodic = net.dials.filter(d => d.protocol === AGENTS_SYNC_PROTOCOL && d.from.equals(idOf('aitbc'))).slice(before.aitbc1 + before.aitbc2)
      // One peer per interval (not every peer at once), and in turn: never the same one twice in a row.
      for (let i = 1; i < periodic.length; i++) {
        expect(periodic[i]!.openedAt - periodic[i - 1]!.openedAt).toBeGreaterThanOrEqual(50)
        expect(periodic[i]!.to.equals(periodic[i - 1]!.to)).toBe(false)
      }
    })

    it('a change is gossiped to a linked peer at once, and gossip from a signer that is not the author is refused', async () => {
      fresh()
      const a = await startNode('aitbc')
      const b = await startNode('aitbc1')
      connect(a, b)
      await register(a, 'gossiped')
      await waitFor('aitbc1 to take the gossiped agent', () => b.registry.get('gossiped') != null, 5000)
      expect(net.dials).toEqual([])

      // aitbc2 gossips a change authored (and correctly signed) by aitbc1: only authors gossip.
      const relayed = AgentUpdate.encode(update('aitbc1', 'relayed', { sender: 'aitbc2' }))
      const verdict = await net.node(idOf('aitbc')).services.pubsub.receive(idOf('aitbc2'), signedMessage(idOf('aitbc2'), AGENTS_TOPIC, relayed))
      expect(verdict).toBe('reject')
      expect(lines(a, 'agent_update_rejected', 'author-not-signer')).toHaveLength(1)
      expect(a.registry.get('relayed')).toBeUndefined()
    })
  })

  describe('forged changes', () => {
    const forged = (): AgentUpdate => update('aitbc1', 'forged', { key: keys.get('mallory')!, sender: 'aitbc2' })
    const honest = (): AgentUpdate => update('aitbc2', 'honest')

    it('in a response: the change signed by a key that is not its author\'s is refused and not applied; the honest one is', async () => {
      fresh()
      const a = await startNode('aitbc')
      await handAnswers(async (_stream, lp) => {
        await lp.read()
        await lp.write(SyncResponse.encode({ updates: [forged(), honest()], want: [], more: false }))
      })
      connect(a, 'aitbc2')
      const summary = await a.replication.syncWith(idOf('aitbc2'))
      expect(summary).toEqual({ rounds: 1, received: 1, sent: 0 })
      expect(a.registry.get('forged')).toBeUndefined()
      expect(a.registry.entry('forged')).toBeUndefined()
      expect(a.registry.get('honest')?.owner_node).toBe('aitbc2')
      expect(lines(a, 'agent_change_rejected', 'bad-signature')).toMatchObject([{ peer: 'aitbc2', agentId: 'forged', author: 'aitbc1' }])
    })

    it('in a push: a digest claiming a newer copy gets it asked for, and the forged push is refused', async () => {
      fresh()
      const a = await startNode('aitbc')
      connect(a, 'aitbc2')
      const { dial, lp } = await handDial(a)
      const change = forged()
      await lp.write(SyncRequest.encode({ digest: [{ agentId: change.agentId, clock: change.clock }] }))
      const response = SyncResponse.decode(await lp.read())
      expect(response.want).toEqual(['forged'])
      await lp.write(SyncPush.encode({ updates: [change] }))
      await waitFor('aitbc to refuse the forged push', () => lines(a, 'agent_change_rejected', 'bad-signature').length === 1, 5000)
      expect(a.registry.entry('forged')).toBeUndefined()
      await dial.outbound.close()
    })

    it('over gossip: a change its signer authored but signed with another key is refused', async () => {
      fresh()
      const a = await startNode('aitbc')
      const change = AgentUpdate.encode(update('aitbc1', 'forged', { key: keys.get('mallory')! }))
      const verdict = await net.node(idOf('aitbc')).services.pubsub.receive(idOf('aitbc1'), signedMessage(idOf('aitbc1'), AGENTS_TOPIC, change))
      expect(verdict).toBe('reject')
      expect(lines(a, 'agent_update_rejected', 'bad-signature')).toMatchObject([{ peer: 'aitbc1' }])
      expect(a.registry.entry('forged')).toBeUndefined()
    })
  })

  describe('caps', () => {
    const digestOf = (n: number): SyncRequest => ({ digest: Array.from({ length: n }, (_, i) => ({ agentId: `flood-${i}`, clock: { ms: BigInt(Date.now()), counter: 0, node: 'aitbc2' } })) })

    it(`a digest at the cap (${ANTI_ENTROPY_MAX_DIGEST_ENTRIES} entries) is answered; one entry over is refused before it is decoded, and the stream reset`, async () => {
      fresh()
      const a = await startNode('aitbc')
      connect(a, 'aitbc2')
      const atCap = await handDial(a)
      await atCap.lp.write(SyncRequest.encode(digestOf(ANTI_ENTROPY_MAX_DIGEST_ENTRIES)))
      const answer = SyncResponse.decode(await atCap.lp.read())
      // It wants them all, a capped number at a time.
      expect(answer.want).toHaveLength(1000)
      expect(answer.more).toBe(true)
      atCap.dial.outbound.abort(new Error('done'))

      const over = await handDial(a)
      // The write itself may be cut short by the reset; no answer comes either way.
      const answered = over.lp.write(SyncRequest.encode(digestOf(ANTI_ENTROPY_MAX_DIGEST_ENTRIES + 1))).then(async () => await over.lp.read())
      await expect(answered).rejects.toBeTruthy()
      expect(over.dial.outbound.status).toBe('reset')
      expect(over.dial.inbound.status).toBe('aborted')
      expect(lines(a, 'anti_entropy_rejected', 'bad-digest')).toMatchObject([{ peer: 'aitbc2', limit: ANTI_ENTROPY_MAX_DIGEST_ENTRIES }])
      expect(agentIds(a)).toEqual([])
    })

    it('a response with more updates than the cap is refused whole, with the typed error, and nothing in it applied', async () => {
      fresh()
      const a = await startNode('aitbc', { maxUpdates: 5 })
      await handAnswers(async (_stream, lp) => {
        await lp.read()
        await lp.write(SyncResponse.encode({ updates: Array.from({ length: 6 }, (_, i) => update('aitbc2', `h-${i}`)), want: [], more: false }))
      })
      connect(a, 'aitbc2')
      const summary = await a.replication.syncWith(idOf('aitbc2'))
      expect(summary.error).toBeInstanceOf(SyncMessageRefusedError)
      expect(summary.error).toMatchObject({ step: 'response', peer: 'aitbc2' })
      expect(summary.received).toBe(0)
      expect(agentIds(a)).toEqual([])
      expect(lines(a, 'anti_entropy_rejected', 'bad-response')).toMatchObject([{ peer: 'aitbc2', limit: 5 }])
      await waitFor('the stream to be reset at aitbc2', () => net.dialsTo(idOf('aitbc2'))[0]?.inbound.status === 'reset', 5000)
    })

    it('a push with more updates than the cap is refused whole and logged', async () => {
      fresh()
      const a = await startNode('aitbc', { maxUpdates: 5 })
      connect(a, 'aitbc2')
      const { dial, lp } = await handDial(a)
      const changes = Array.from({ length: 6 }, (_, i) => update('aitbc2', `h-${i}`))
      await lp.write(SyncRequest.encode({ digest: changes.map(c => ({ agentId: c.agentId, clock: c.clock })) }))
      expect(SyncResponse.decode(await lp.read())).toMatchObject({ want: changes.slice(0, 5).map(c => c.agentId), more: true })
      await lp.write(SyncPush.encode({ updates: changes }))
      await waitFor('aitbc to refuse the push', () => lines(a, 'anti_entropy_rejected', 'bad-push').length === 1, 5000)
      await waitFor('the stream to be reset at aitbc2', () => dial.outbound.status === 'reset', 5000)
      expect(agentIds(a)).toEqual([])
    })

    it('`more` asks for another round until both sides have everything, each message within the cap', async () => {
      fresh()
      const a = await startNode('aitbc', { maxUpdates: 3 })
      const b = await startNode('aitbc1', { maxUpdates: 3 })
      for (let i = 0; i < 5; i++) await register(a, `a-${i}`)
      for (let i = 0; i < 7; i++) await register(b, `b-${i}`)
      // Linked without gossip subscribers: only anti-entropy carries them.
      connect(a, b)
      for (const node of [a, b]) net.node(idOf(node.name)).services.pubsub.unsubscribe(AGENTS_TOPIC)
      const summary = await a.replication.syncWith(idOf('aitbc1'))
      // Round 1: 3 of b's and 3 of a's; round 2: 3 and 2; round 3: the last of b's.
      expect(summary).toEqual({ rounds: 3, received: 7, sent: 5 })
      expect(agentIds(a)).toEqual(agentIds(b))
      expect(agentIds(a)).toHaveLength(12)
    })
    it('a response of more than 4 MiB of records, within the message cap, is read whole', async () => {
      fresh()
      const a = await startNode('aitbc')
      const b = await startNode('aitbc1')
      // 80 records of 60 KB: about 4.8 MB in one response, under the 6 MiB of records one carries.
      for (let i = 0; i < 80; i++) await register(b, `big-${i}`, { blob: 'x'.repeat(60_000) })
      connect(a, b)
      net.node(idOf('aitbc')).services.pubsub.unsubscribe(AGENTS_TOPIC)
      const summary = await a.replication.syncWith(idOf('aitbc1'))
      expect(summary).toEqual({ rounds: 1, received: 80, sent: 0 })
    })

    it('records of multi-byte characters are counted in bytes, so a response stays within the message cap', async () => {
      fresh()
      const limits = { maxMessageBytes: 200_000, maxUpdateBytes: 150_000 }
      const a = await startNode('aitbc', limits)
      const b = await startNode('aitbc1', limits)
      // 20 records of 7,000 three-byte characters: 21 KB each, 7 KB by character count.
      for (let i = 0; i < 20; i++) await register(b, `wide-${i}`, { blob: '€'.repeat(7000) })
      connect(a, b)
      net.node(idOf('aitbc')).services.pubsub.unsubscribe(AGENTS_TOPIC)
      const summary = await a.replication.syncWith(idOf('aitbc1'))
      expect(summary.error).toBeUndefined()
      expect(summary.received).toBe(20)
      expect(summary.rounds).toBeGreaterThan(1)
    })
  })

  describe('a peer that does not play along', () => {
    it('a dial that never completes ends at the round\'s timeout, at the dial step', async () => {
      fresh()
      const a = await startNode('aitbc', { timeoutMs: TIMEOUT_MS })
      connect(a, 'aitbc2')
      net.node(idOf('aitbc')).stallDials = true
      const { summary, ms } = await timed(async () => await a.replication.syncWith(idOf('aitbc2')))
      expect(summary.error).toBeInstanceOf(SyncTimeoutError)
      expect(summary.error).toBeInstanceOf(TimeoutError)
      expect(summary.error).toMatchObject({ step: 'dial', peer: 'aitbc2', timeoutMs: TIMEOUT_MS })
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5)
    })

    it('a peer that reads the digest and never answers times out at the response step, and the stream is reset', async () => {
      fresh()
      const a = await startNode('aitbc', { timeoutMs: TIMEOUT_MS })
      let digestRead = false
      await handAnswers(async (_stream, lp) => {
        await lp.read()
        digestRead = true
      })
      connect(a, 'aitbc2')
      const { summary, ms } = await timed(async () => await a.replication.syncWith(idOf('aitbc2')))
      expect(digestRead).toBe(true)
      expect(summary.error).toBeInstanceOf(SyncTimeoutError)
      expect(summary.error).toMatchObject({ step: 'response', peer: 'aitbc2' })
      expect(summary.error?.message).toBe(`anti-entropy with aitbc2: response not done within ${TIMEOUT_MS} ms of the round's start`)
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5)
      const dial = net.dialsTo(idOf('aitbc2'))[0]!
      expect(dial.outbound.status).toBe('aborted')
      await waitFor('the reset to reach aitbc2', () => dial.inbound.status === 'reset', 5000)
      expect(lines(a, 'anti_entropy_failed')).toMatchObject([{ peer: 'aitbc2', err: summary.error?.message }])
    })

    it('a response cut off after half a frame times out at the response step', async () => {
      fresh()
      const a = await startNode('aitbc', { timeoutMs: TIMEOUT_MS })
      await handAnswers(async (stream, lp) => {
        await lp.read()
        stream.send(halfFrame())
      })
      connect(a, 'aitbc2')
      const summary = await a.replication.syncWith(idOf('aitbc2'))
      expect(summary.error).toBeInstanceOf(SyncTimeoutError)
      expect(summary.error).toMatchObject({ step: 'response' })
      expect(agentIds(a)).toEqual([])
    })

    it('a dialer that sends half a digest and stops is cut off at the timeout', async () => {
      fresh()
      const a = await startNode('aitbc', { timeoutMs: TIMEOUT_MS })
      connect(a, 'aitbc2')
      const started = performance.now()
      const { dial } = await handDial(a)
      dial.outbound.send(halfFrame())
      await waitFor('aitbc to reset the stream', () => dial.outbound.status === 'reset', 5000, 5)
      expect(performance.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 5)
      expect(dial.inbound.status).toBe('aborted')
      expect(lines(a, 'anti_entropy_failed')).toMatchObject([{ peer: 'aitbc2', err: `anti-entropy with aitbc2: request not done within ${TIMEOUT_MS} ms of the round's start` }])
      // Running out of time is not a refusal of the peer's input.
      expect(lines(a, 'anti_entropy_rejected')).toEqual([])
    })

    it('a dialer that never reads the response: the blocked write is cut off at the timeout', async () => {
      fresh()
      const a = await startNode('aitbc', { timeoutMs: TIMEOUT_MS })
      // Enough bytes of records that the response cannot all be buffered on the way.
      for (let i = 0; i < 10; i++) await register(a, `big-${i}`, { blob: 'x'.repeat(50_000) })
      connect(a, 'aitbc2')
      const { dial, lp } = await handDial(a)
      // aitbc2 stops reading its connection (a full TCP window): aitbc's writes get no further.
      dial.outboundConnection.pause()
      await lp.write(SyncRequest.encode({ digest: [] }))
      await waitFor('aitbc to give up on the stream', () => dial.inbound.status === 'aborted', 5000, 5)
      expect(lines(a, 'anti_entropy_failed')).toMatchObject([{ peer: 'aitbc2', err: `anti-entropy with aitbc2: response not done within ${TIMEOUT_MS} ms of the round's start` }])
    })

    it('stop ends a round in flight at once, long before its timeout', async () => {
      fresh()
      const a = await startNode('aitbc', { timeoutMs: 60_000 })
      await handAnswers(async (_stream, lp) => { await lp.read() })
      connect(a, 'aitbc2')
      const sync = timed(async () => await a.replication.syncWith(idOf('aitbc2')))
      await waitFor('the round to be waiting for its response', () => net.dialsTo(idOf('aitbc2')).length === 1, 5000, 5)
      await a.replication.stop()
      const { summary, ms } = await sync
      expect(summary.error?.message).toBe('anti-entropy with aitbc2: replication stopped during response')
      expect(ms).toBeLessThan(5000)
      await waitFor('the reset to reach aitbc2', () => net.dialsTo(idOf('aitbc2'))[0]!.inbound.status === 'reset', 5000)
    })
  })
})

/** A length prefix promising 100 bytes, followed by 10 of them. */
function halfFrame (): Uint8Array {
  return Uint8Array.from([100, ...new Array<number>(10).fill(1)])
}
