import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pbStream, type ProtobufMessageStream } from '@libp2p/utils'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { Envelope, Receipt, ReceiptStatus } from '../../protocols/messages.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import { MESSAGES_PROTOCOL, MessageDelivery, type DeliveryLimits } from '../../src/messaging/delivery/index.js'
import type { IncomingEnvelope, ReceiveResult } from '../../src/messaging/inbox.js'
import { Outbox, type DeliveryEvent } from '../../src/messaging/outbox.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir, waitFor } from '../helpers.js'
import { MemoryNetwork, type Dial } from '../memory-network.js'

/** aitbc and aitbc1 run the real service or are played by hand; aitbc2 is allowlisted but never runs. */
const NAMES = ['aitbc', 'aitbc1', 'aitbc2'] as const
type Name = typeof NAMES[number]
const roles = { aitbc: 'genesis', aitbc1: 'follower', aitbc2: 'follower' } as const
const ids = new Map<string, PeerId>()
for (const name of NAMES) ids.set(name, peerIdFromPrivateKey(await generateKeyPair('Ed25519')))
const idOf = (name: Name): PeerId => ids.get(name)!

/** Short bounds and a small window, so that a test waiting for one to run out or fill up takes a moment. */
const LIMITS: Partial<DeliveryLimits> = {
  window: 8, dialMs: 300, writeMs: 300, receiptMs: 300, idleMs: 300, lingerMs: 100, closeMs: 300, retryInitialMs: 100, retryMaxMs: 400, disconnectedPollMs: 50
}
/** Timers fire no earlier than asked, give or take the clock's rounding. */
const TIMER_SLACK_MS = 5

/** An inbox that keeps what it stores in memory; its store can be made to fail or to hang. */
class FakeInbox {
  readonly stored: IncomingEnvelope[] = []
  calls = 0
  fault: 'fail' | 'hang' | undefined
  /** Kinds this node has a handler for, as the handler service tells the real inbox. */
  handled = new Set<string>()
  private readonly held: Array<() => void> = []

  async receive (envelope: IncomingEnvelope): Promise<ReceiveResult> {
    this.calls++
    if (this.fault === 'fail') throw new Error('store unavailable: connection refused')
    if (this.fault === 'hang') await new Promise<void>(resolve => { this.held.push(resolve) })
    const handler = this.handled.has(envelope.kind)
    if (this.stored.some(m => m.id === envelope.id)) return { status: 'duplicate', storedAt: 1, handler }
    if (Date.now() > envelope.expiresAt) return { status: 'rejected', reason: 'expired' }
    this.stored.push(envelope)
    return { status: 'stored', storedAt: Date.now(), handler }
  }
}

interface LogLine { event?: string, level: number, reason?: string, peer?: string, err?: string, [key: string]: unknown }
const WARN = 40

interface TestNode {
  name: Name
  outbox: Outbox
  inbox: FakeInbox
  delivery: MessageDelivery
  peers: PeerTable
  logs: LogLine[]
}

/** A peer played by hand on one message stream. */
interface HandStream {
  stream: Stream
  envelopes: ProtobufMessageStream<Envelope>
  receipts: ProtobufMessageStream<Receipt>
}

function envelope (over: Partial<Envelope> = {}): Envelope {
  const now = Date.now()
  return { id: randomUUID(), from: 'aitbc', kind: 'text', body: new TextEncoder().encode('hello'), sentAtMs: BigInt(now), expiresAtMs: BigInt(now + 60_000), seq: 1n, ...over }
}

function receiptFor (env: Envelope, node = 'aitbc1'): Receipt {
  return { id: env.id, node, status: ReceiptStatus.STORED, storedAtMs: BigInt(Date.now()), reason: '' }
}

/** A length prefix promising 100 bytes, followed by 10 of them. */
function halfFrame (): Uint8Array {
  return Uint8Array.from([100, ...new Array<number>(10).fill(1)])
}

describe('message delivery over an in-memory network', () => {
  let net = new MemoryNetwork()
  const running: Array<() => Promise<void>> = []

  afterEach(async () => {
    for (const stop of running.splice(0).reverse()) await stop()
    net = new MemoryNetwork()
  })

  async function startNode (name: Name, limits: Partial<DeliveryLimits> = {}): Promise<TestNode> {
    const logs: LogLine[] = []
    const log = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as LogLine) } })
    const store = new SqliteBackend(join(tempDir('aitbc-mesh-delivery-'), 'store.db'), '')
    const outbox = new Outbox(name, store, log)
    await outbox.start()
    await waitFor('the outbox to load', () => outbox.ready, 5000, 5)
    const peers = new PeerTable(NAMES.filter(n => n !== name).map(n => ({ name: n, role: roles[n], peerId: idOf(n), addr: `/memory/${n}` })), 3000)
    const inbox = new FakeInbox()
    const delivery = new MessageDelivery({ network: net.node(idOf(name)), peers, inbox, outbox, node: name, clockSkewMs: 60_000, log, limits: { ...LIMITS, ...limits } })
    await delivery.start()
    running.push(async () => {
      await delivery.stop()
      await outbox.stop()
      await store.close()
    })
    return { name, outbox, inbox, delivery, peers, logs }
  }

  /** Links `a` to `b` and tells `a` (and `b`, when it runs) that they are connected, as libp2p would. */
  function connect (a: TestNode, b: TestNode | Name): void {
    const bName = typeof b === 'string' ? b : b.name
    a.peers.markConnected(idOf(bName), undefined)
    if (typeof b !== 'string') b.peers.markConnected(idOf(a.name), undefined)
    net.connect(idOf(a.name), idOf(bName), { announce: true })
  }

  /** `name` answers message streams by hand; `serve` gets each stream in turn with its number (0 first). */
  async function playReceiver (name: Name, serve: (hand: HandStream, n: number) => Promise<void>): Promise<void> {
    let streams = 0
    await net.node(idOf(name)).handle(MESSAGES_PROTOCOL, async stream => {
      const pb = pbStream(stream)
      try {
        await serve({ stream, envelopes: pb.pb(Envelope), receipts: pb.pb(Receipt) }, streams++)
      } catch {
        // the stream was reset or closed under the hand-played peer
      }
    })
  }

  /** `from`, played by hand, opens a message stream to `to`. */
  async function handDial (from: Name, to: Name): Promise<HandStream & { dial: Dial }> {
    net.connect(idOf(from), idOf(to))
    const stream = await net.node(idOf(from)).dialProtocol(idOf(to), MESSAGES_PROTOCOL)
    const pb = pbStream(stream)
    return { stream, envelopes: pb.pb(Envelope), receipts: pb.pb(Receipt), dial: net.dialsTo(idOf(to), MESSAGES_PROTOCOL).at(-1)! }
  }

  async function send (node: TestNode, to: Name, body: string): Promise<string> {
    return (await node.outbox.create({ to, body, kind: 'text', ttl: 60 }, [to])).id
  }

  function target (node: TestNode, id: string, to: Name = 'aitbc1'): { state: string, attempts: number, reason?: string } {
    return node.outbox.get(id)!.targets[to]!
  }

  function lines (node: TestNode, event: string): LogLine[] {
    return node.logs.filter(l => l.event === event)
  }

  function streamsTo (name: Name): Dial[] {
    return net.dialsTo(idOf(name), MESSAGES_PROTOCOL)
  }

  describe('sender', () => {
    it('settles each message on its receipt; the target stores them once, in send order', async () => {
      const a = await startNode('aitbc')
      const b = await startNode('aitbc1')
      const sent: string[] = []
      // Queued before the connection, so the first stream fills the window at once.
      for (let i = 0; i < 30; i++) sent.push(await send(a, 'aitbc1', `message ${i}`))
      connect(a, b)
      await waitFor('every message receipted', () => sent.every(id => target(a, id).state === 'delivered'), 5000)
      expect(b.inbox.stored.map(m => m.id)).toEqual(sent)
      expect(sent.map(id => target(a, id).attempts)).toEqual(sent.map(() => 1))
      expect([...a.logs, ...b.logs].filter(l => l.level >= WARN)).toEqual([])
    })

    it('a trickle of messages goes over one stream, kept open between them and closed cleanly once nothing came for the linger', async () => {
      const a = await startNode('aitbc', { lingerMs: 250 })
      const b = await startNode('aitbc1')
      connect(a, b)
      const sent: string[] = []
      let lastReceipt = 0
      for (let i = 0; i < 8; i++) {
        const id = await send(a, 'aitbc1', `message ${i}`)
        sent.push(id)
        // Each is receipted before the next: the stream drains between them.
        await waitFor(`message ${i} receipted`, () => target(a, id).state === 'delivered', 5000, 1)
        lastReceipt = performance.now()
        await new Promise(resolve => setTimeout(resolve, 40))
      }
      expect(streamsTo('aitbc1')).toHaveLength(1)
      const stream = streamsTo('aitbc1')[0]!
      await waitFor('the drained stream closed', () => stream.outbound.status === 'closed', 5000)
      expect(performance.now() - lastReceipt).toBeGreaterThanOrEqual(250 - TIMER_SLACK_MS)
      expect(stream.inbound.status).toBe('closed')
      // A message after the close opens a new stream.
      sent.push(await send(a, 'aitbc1', 'after the close'))
      await waitFor('the last one receipted', () => target(a, sent.at(-1)!).state === 'delivered', 5000)
      expect(streamsTo('aitbc1')).toHaveLength(2)
      expect(b.inbox.stored.map(m => m.id)).toEqual(sent)
      expect([...a.logs, ...b.logs].filter(l => l.level >= WARN || l.event === 'delivery_retry')).toEqual([])
    })

    it('a lingering stream the target resets is dropped without a retry; the next message opens a new one', async () => {
      const a = await startNode('aitbc', { lingerMs: 60_000 })
      const b = await startNode('aitbc1')
      connect(a, b)
      const first = await send(a, 'aitbc1', 'first')
      await waitFor('first receipted', () => target(a, first).state === 'delivered', 5000)
      const stream = streamsTo('aitbc1')[0]!
      stream.inbound.abort(new Error('target restarting'))
      await waitFor('the sender dropped its stream', () => stream.outbound.status === 'reset', 5000)
      const second = await send(a, 'aitbc1', 'second')
      await waitFor('second receipted', () => target(a, second).state === 'delivered', 5000)
      expect(streamsTo('aitbc1')).toHaveLength(2)
      expect(target(a, second).attempts).toBe(1)
      expect(lines(a, 'delivery_retry')).toEqual([])
    })

    it.each([
      ['receipt for another message', (env: Envelope): Receipt => ({ ...receiptFor(env), id: `not-${env.id}` })],
      ['receipt names another node', (env: Envelope): Receipt => receiptFor(env, 'aitbc2')],
      ['receipt without a status', (env: Envelope): Receipt => ({ ...receiptFor(env), status: ReceiptStatus.RECEIPT_STATUS_UNSPECIFIED })]
    ])('a %s resets the stream, is logged, and everything in flight goes out again', async (reason, forge) => {
      const a = await startNode('aitbc')
      const seen: string[][] = []
      await playReceiver('aitbc1', async ({ envelopes, receipts }, n) => {
        const mine: string[] = []
        seen.push(mine)
        for (;;) {
          const env = await envelopes.read()
          mine.push(env.id)
          // The first stream answers its first envelope, then forges the second's receipt.
          await receipts.write(n === 0 && mine.length === 2 ? forge(env) : receiptFor(env))
        }
      })
      const sent = [await send(a, 'aitbc1', 'one'), await send(a, 'aitbc1', 'two'), await send(a, 'aitbc1', 'three')]
      connect(a, 'aitbc1')
      await waitFor('every message receipted', () => sent.every(id => target(a, id).state === 'delivered'), 5000)
      expect(streamsTo('aitbc1')[0]!.inbound.status).toBe('reset')
      // The first was receipted; the other two were in flight and went out again, in order.
      expect(seen.slice(0, 2)).toEqual([sent, sent.slice(1)])
      expect(sent.map(id => target(a, id).attempts)).toEqual([1, 2, 2])
      expect(lines(a, 'receipt_rejected')).toMatchObject([{ level: WARN, peer: 'aitbc1', reason, expected: sent[1] }])
    })

    it('never has more than the window of envelopes in flight', async () => {
      const a = await startNode('aitbc', { receiptMs: 60_000 })
      const read: Envelope[] = []
      let answered = 0
      let answer: (count: number) => Promise<void> = async () => {}
      await playReceiver('aitbc1', async ({ envelopes, receipts }) => {
        answer = async count => {
          const batch = read.slice(answered, answered + count)
          answered += batch.length
          await receipts.writeV(batch.map(env => receiptFor(env)))
        }
        for (;;) read.push(await envelopes.read())
      })
      const sent: string[] = []
      for (let i = 0; i < 20; i++) sent.push(await send(a, 'aitbc1', `message ${i}`))
      connect(a, 'aitbc1')
      // A message is counted as attempted before its envelope is written.
      const attempted = (): number => sent.filter(id => target(a, id).attempts > 0).length
      await waitFor('a window of envelopes', () => read.length === 8, 5000, 5)
      expect(attempted()).toBe(8)
      await answer(5)
      await waitFor('five more after five receipts', () => read.length === 13, 5000, 5)
      expect(attempted()).toBe(13)
      await waitFor('every message receipted', async () => {
        if (read.length > answered) await answer(read.length - answered)
        return sent.every(id => target(a, id).state === 'delivered')
      }, 5000, 5)
      expect(read.map(env => env.id)).toEqual(sent)
    })

    it('a receiver that never answers: the receipt timeout resets the stream and the session retries with a growing backoff', async () => {
      const a = await startNode('aitbc', { receiptMs: 200, retryInitialMs: 100, retryMaxMs: 1000 })
      const seen: string[][] = []
      await playReceiver('aitbc1', async ({ envelopes }) => {
        const mine: string[] = []
        seen.push(mine)
        for (;;) mine.push((await envelopes.read()).id)
      })
      const id = await send(a, 'aitbc1', 'anyone there?')
      connect(a, 'aitbc1')
      await waitFor('the envelope on a third stream', () => seen[2]?.length === 1, 5000, 5)
      const [first, second, third] = streamsTo('aitbc1')
      expect(first!.inbound.status).toBe('reset')
      // Each stream waits the receipt timeout, then the backoff: 100 ms, then 200 ms.
      expect(second!.openedAt - first!.openedAt).toBeGreaterThanOrEqual(200 + 100 - TIMER_SLACK_MS)
      expect(third!.openedAt - second!.openedAt).toBeGreaterThanOrEqual(200 + 200 - TIMER_SLACK_MS)
      expect(seen.slice(0, 3)).toEqual([[id], [id], [id]])
      expect(target(a, id).state).toBe('pending')
      expect(lines(a, 'delivery_retry')[0]).toMatchObject({ peer: 'aitbc1', failures: 1, retryInMs: 100, err: 'no receipt from aitbc1 within 200 ms', errName: 'DeliveryTimeoutError' })
    })

    it('a target whose stream cannot be opened in time is retried, the dial named', async () => {
      const a = await startNode('aitbc', { dialMs: 100 })
      net.node(idOf('aitbc')).stallDials = true
      const b = await startNode('aitbc1')
      const id = await send(a, 'aitbc1', 'through a stalled dial')
      connect(a, b)
      await waitFor('the dial timeout logged', () => lines(a, 'delivery_retry')[0], 5000, 5)
      expect(lines(a, 'delivery_retry')[0]).toMatchObject({ err: 'no stream to aitbc1 within 100 ms', errName: 'DeliveryTimeoutError' })
      net.node(idOf('aitbc')).stallDials = false
      await waitFor('delivered once dials go through', () => target(a, id).state === 'delivered', 5000, 5)
      expect(b.inbox.stored.map(m => m.id)).toEqual([id])
    })

    it('a REJECTED receipt fails that target with the reason and is not retried', async () => {
      const a = await startNode('aitbc')
      await playReceiver('aitbc1', async ({ envelopes, receipts }) => {
        for (;;) {
          const env = await envelopes.read()
          await receipts.write({ ...receiptFor(env), status: ReceiptStatus.REJECTED, storedAtMs: 0n, reason: 'kind "text" is not wanted here' })
        }
      })
      const id = await send(a, 'aitbc1', 'refused')
      connect(a, 'aitbc1')
      await waitFor('the target settled', () => target(a, id).state !== 'pending', 5000, 5)
      expect(target(a, id)).toMatchObject({ state: 'failed', reason: 'rejected: kind "text" is not wanted here', attempts: 1 })
      expect(streamsTo('aitbc1')).toHaveLength(1)
    })

    it('a routed message names its agent in the envelope; the target\'s receipt says whether it has a handler', async () => {
      const a = await startNode('aitbc')
      const b = await startNode('aitbc1')
      b.inbox.handled.add('job')
      const events: DeliveryEvent[] = []
      a.outbox.watch(event => { events.push(event) })
      const routed = (await a.outbox.create({ to: 'aitbc1', body: 'run it', kind: 'job', ttl: 60 }, ['aitbc1'], { agentIds: { aitbc1: 'inf-a@1' } })).id
      const unhandled = (await a.outbox.create({ to: 'aitbc1', body: 'chat', kind: 'chat', ttl: 60 }, ['aitbc1'])).id
      connect(a, b)
      await waitFor('both receipted', () => target(a, routed).state === 'delivered' && target(a, unhandled).state === 'delivered', 5000, 5)
      expect(b.inbox.stored).toMatchObject([{ id: routed, kind: 'job', body: 'run it', agent: 'inf-a@1' }, { id: unhandled, kind: 'chat', body: 'chat' }])
      expect(b.inbox.stored[1]!.agent).toBeUndefined()
      expect(a.outbox.get(routed)!.targets.aitbc1!.handler).toBe(true)
      expect(a.outbox.get(unhandled)!.targets.aitbc1!.handler).toBe(false)
      expect(events.map(e => [e.id, e.handler])).toEqual([[routed, true], [unhandled, false]])
    })

    it('a receipt without the handler field (an older target) says nothing either way', async () => {
      const a = await startNode('aitbc')
      await playReceiver('aitbc1', async ({ envelopes, receipts }) => {
        for (;;) await receipts.write(receiptFor(await envelopes.read()))
      })
      const id = await send(a, 'aitbc1', 'hi')
      connect(a, 'aitbc1')
      await waitFor('receipted by the older target', () => target(a, id).state === 'delivered', 5000, 5)
      expect(a.outbox.get(id)!.targets.aitbc1!.handler).toBeUndefined()
    })

    it('stop() aborts the stream in flight at once, long before its receipt timeout', async () => {
      const a = await startNode('aitbc', { receiptMs: 60_000 })
      let read = 0
      await playReceiver('aitbc1', async ({ envelopes }) => {
        for (;;) {
          await envelopes.read()
          read++
        }
      })
      const id = await send(a, 'aitbc1', 'cut off')
      connect(a, 'aitbc1')
      await waitFor('the envelope on the wire', () => read === 1, 5000, 5)
      const started = performance.now()
      await a.delivery.stop()
      await waitFor('the stream reset', () => streamsTo('aitbc1')[0]!.inbound.status === 'reset', 5000, 5)
      expect(performance.now() - started).toBeLessThan(1000)
      expect(target(a, id).state).toBe('pending')
      expect(lines(a, 'delivery_retry')).toEqual([])
    })
  })

  describe('receiver', () => {
    it('answers a refused envelope with a REJECTED receipt and its reason, in order with the others', async () => {
      const b = await startNode('aitbc1')
      const { envelopes, receipts, stream } = await handDial('aitbc', 'aitbc1')
      const forged = envelope({ from: 'aitbc2' })
      const valid = envelope()
      await envelopes.writeV([forged, valid])
      const answers = [await receipts.read(), await receipts.read()]
      expect(answers).toMatchObject([
        { id: forged.id, node: 'aitbc1', status: ReceiptStatus.REJECTED, reason: 'origin "aitbc2" is not the sending node aitbc' },
        { id: valid.id, node: 'aitbc1', status: ReceiptStatus.STORED, reason: '' }
      ])
      await stream.close()
      expect(b.inbox.stored.map(m => m.id)).toEqual([valid.id])
      expect(lines(b, 'message_rejected')).toMatchObject([{ peer: 'aitbc', reason: 'origin mismatch', messageId: forged.id }])
      expect(lines(b, 'message_stream_failed')).toEqual([])
    })

    it('takes a routed message\'s agent within the agent id bounds, refuses one outside them, and receipts whether it has a handler', async () => {
      const b = await startNode('aitbc1')
      b.inbox.handled.add('job')
      const { envelopes, receipts, stream } = await handDial('aitbc', 'aitbc1')
      const routed = envelope({ kind: 'job', agent: 'inf-a@aitbc1' })
      const badAgent = envelope({ kind: 'job', agent: 'inf a\nrm -rf' })
      const longAgent = envelope({ kind: 'job', agent: 'a'.repeat(129) })
      const plain = envelope({ kind: 'chat' })
      await envelopes.writeV([routed, badAgent, longAgent, plain, routed])
      const answers = [await receipts.read(), await receipts.read(), await receipts.read(), await receipts.read(), await receipts.read()]
      expect(answers).toMatchObject([
        { id: routed.id, status: ReceiptStatus.STORED, handler: true },
        { id: badAgent.id, status: ReceiptStatus.REJECTED, reason: 'agent "inf a\nrm -rf" is not 1 to 128 letters, digits, ".", ":", "@", "_" or "-"' },
        { id: longAgent.id, status: ReceiptStatus.REJECTED },
        { id: plain.id, status: ReceiptStatus.STORED, handler: false },
        { id: routed.id, status: ReceiptStatus.DUPLICATE, handler: true }
      ])
      expect(answers[1]!.handler).toBeUndefined()
      await stream.close()
      expect(b.inbox.stored.map(m => [m.id, m.agent])).toEqual([[routed.id, 'inf-a@aitbc1'], [plain.id, undefined]])
      // Logged once per (peer, reason).
      expect(lines(b, 'message_rejected')).toMatchObject([{ reason: 'invalid agent' }])
    })

    it.each([
      ['malformed frame', Uint8Array.from([0x05, 0xff, 0xff, 0xff, 0xff, 0xff])],
      ['invalid message id', Uint8Array.from([...lengthPrefixed(Envelope.encode(envelope({ id: 'x'.repeat(1000) })))])],
      ['frame too large', Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f])]
    ])('resets the stream for garbage (%s), logs it, stores nothing', async (reason, bytes) => {
      const b = await startNode('aitbc1')
      const { dial } = await handDial('aitbc', 'aitbc1')
      dial.outbound.send(bytes)
      await waitFor('the stream reset', () => dial.outbound.status === 'reset', 5000, 5)
      expect(lines(b, 'message_stream_failed')).toMatchObject([{ level: WARN, peer: 'aitbc', reason }])
      expect(b.inbox.calls).toBe(0)
    })

    it('a half frame and then silence: the stream is reset after the idle timeout', async () => {
      const b = await startNode('aitbc1', { idleMs: 200 })
      const { dial } = await handDial('aitbc', 'aitbc1')
      const started = performance.now()
      dial.outbound.send(halfFrame())
      await waitFor('the stream reset', () => dial.outbound.status === 'reset', 5000, 5)
      expect(performance.now() - started).toBeGreaterThanOrEqual(200 - TIMER_SLACK_MS)
      expect(lines(b, 'message_stream_failed')).toMatchObject([{ peer: 'aitbc', reason: 'idle timeout', err: 'no envelope nor close within 200 ms of the last receipt' }])
      expect(b.inbox.calls).toBe(0)
    })

    it('a half frame and then the close: the stream is refused as truncated; a clean close after a receipt is not', async () => {
      const b = await startNode('aitbc1')
      const clean = await handDial('aitbc', 'aitbc1')
      await clean.envelopes.write(envelope())
      expect(await clean.receipts.read()).toMatchObject({ status: ReceiptStatus.STORED })
      await clean.stream.close()
      await waitFor('both ends closed', () => clean.dial.inbound.status === 'closed', 5000, 5)
      expect(lines(b, 'message_stream_failed')).toEqual([])

      const { dial } = await handDial('aitbc', 'aitbc1')
      dial.outbound.send(halfFrame())
      await dial.outbound.close().catch(() => {})
      await waitFor('the truncated stream logged', () => lines(b, 'message_stream_failed')[0], 5000, 5)
      expect(lines(b, 'message_stream_failed')).toMatchObject([{ peer: 'aitbc', reason: 'truncated frame' }])
      expect(b.inbox.calls).toBe(1)
    })

    it('reads at most the window ahead of the receipts it wrote: a sender that never reads its receipts cannot pile up work', async () => {
      const b = await startNode('aitbc1', { writeMs: 200 })
      const { dial, envelopes } = await handDial('aitbc', 'aitbc1')
      // The sender's flow-control window stays shut: no receipt aitbc1 writes gets anywhere.
      dial.inbound.send = () => false
      await envelopes.writeV(Array.from({ length: 24 }, (_, i) => envelope({ seq: BigInt(i + 1) })))
      await waitFor('the stream reset for its unread receipts', () => dial.outbound.status === 'reset', 5000, 5)
      // Every envelope was there to read for the whole write timeout; only a window was.
      expect(b.inbox.calls).toBe(8)
      expect(lines(b, 'message_stream_failed')).toMatchObject([{ peer: 'aitbc', reason: 'receipts not read' }])
    })

    it('a store that fails: no receipt, the stream is reset, and the sender delivers once the store is back', async () => {
      const a = await startNode('aitbc')
      const b = await startNode('aitbc1')
      b.inbox.fault = 'fail'
      const id = await send(a, 'aitbc1', 'store me')
      connect(a, b)
      await waitFor('two attempts', () => b.inbox.calls >= 2, 5000, 5)
      expect(target(a, id).state).toBe('pending')
      expect(streamsTo('aitbc1')[0]!.outbound.status).not.toBe('open')
      expect(lines(b, 'message_stream_failed')).toMatchObject([{ peer: 'aitbc', reason: 'store unavailable', err: 'message not stored: store unavailable: connection refused' }])
      b.inbox.fault = undefined
      await waitFor('delivered once the store is back', () => target(a, id).state === 'delivered', 5000, 5)
      expect(b.inbox.stored.map(m => m.id)).toEqual([id])
    })

    it('a sender outside the allowlist is refused before anything is read', async () => {
      const b = await startNode('aitbc1')
      const mallory = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
      net.connect(mallory, idOf('aitbc1'))
      const stream = await net.node(mallory).dialProtocol(idOf('aitbc1'), MESSAGES_PROTOCOL)
      await waitFor('the stream reset', () => stream.status === 'reset', 5000, 5)
      expect(lines(b, 'message_stream_failed')).toMatchObject([{ peer: mallory.toString(), reason: 'not in the allowlist' }])
    })

    it('stop() resets the streams it is serving, without blaming the peer', async () => {
      const b = await startNode('aitbc1', { idleMs: 60_000 })
      const { dial } = await handDial('aitbc', 'aitbc1')
      await b.delivery.stop()
      await waitFor('the stream reset', () => dial.outbound.status === 'reset', 5000, 5)
      expect(lines(b, 'message_stream_failed')).toEqual([])
    })
  })
})

function lengthPrefixed (data: Uint8Array): Uint8Array {
  const prefix: number[] = []
  let n = data.byteLength
  while (n >= 0x80) {
    prefix.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  prefix.push(n)
  return Uint8Array.from([...prefix, ...data])
}
