import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { pbStream } from '@libp2p/utils'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { Envelope, Receipt, ReceiptStatus } from '../../protocols/messages.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { AllowlistGater } from '../../src/mesh/gater.js'
import { loadIdentity } from '../../src/mesh/identity.js'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/mesh/libp2p.js'
import { MESSAGES_PROTOCOL } from '../../src/messaging/delivery/index.js'
import { onCleanup, startTestMesh, statusOfPeer, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'
import { TestRedis } from '../redis.js'

interface InboxMessage { id: string, from: string, body: string, kind: string }
interface MessageView { id: string, targets: Record<string, { state: string, reason?: string }>, message_delivery: { sent: number, delivered: number, processed: number, failed: number } }

async function inbox (mesh: LocalMesh, node: string): Promise<InboxMessage[]> {
  const res = await mesh.cli(node, ['inbox', '--json'])
  if (res.code !== 0) throw new Error(`inbox on ${node}: ${res.stderr}`)
  return JSON.parse(res.stdout) as InboxMessage[]
}

async function send (mesh: LocalMesh, node: string, args: string[]): Promise<MessageView> {
  const res = await mesh.cli(node, ['send', '--json', ...args])
  if (res.code !== 0) throw new Error(`send on ${node}: ${res.stderr}`)
  return JSON.parse(res.stdout) as MessageView
}

async function message (mesh: LocalMesh, node: string, id: string): Promise<MessageView> {
  return JSON.parse((await mesh.cli(node, ['message', id, '--json'])).stdout) as MessageView
}

/** A libp2p node holding one of the mesh's real identities, for playing a misbehaving peer. */
async function impostor (mesh: LocalMesh, as: string, allow: string[], listen: string[] = []): Promise<MeshLibp2p> {
  const identity = loadIdentity(join(mesh.node(as).dir, 'identity.key'))
  const node = await createMeshLibp2p({ privateKey: identity.privateKey, listen, gater: new AllowlistGater(allow.map(n => loadIdentity(join(mesh.node(n).dir, 'identity.key')).peerId)) })
  await node.start()
  onCleanup(async () => { await node.stop() })
  return node
}

describe('coordination messages with durable receipts, Redis on every node', () => {
  let t: TestMesh
  const redis = new Map<string, TestRedis>()

  beforeAll(async () => {
    for (const node of ['aitbc', 'aitbc1', 'aitbc2']) redis.set(node, await new TestRedis().start())
    t = await startTestMesh(3, { extra: i => ({ redis: redis.get(['aitbc', 'aitbc1', 'aitbc2'][i]!)!.url }) })
    await waitAllOnline(t.mesh)
  })

  // Each test starts from a whole mesh, whatever an earlier one stopped or left behind.
  beforeEach(async () => {
    for (const node of ['aitbc', 'aitbc1', 'aitbc2']) if (!t.mesh.isRunning(node)) await t.mesh.start(node)
    await waitAllOnline(t.mesh)
  })

  it('send --wait delivers to every target, returns at the last receipt, and each inbox holds it once', async () => {
    const started = Date.now()
    const res = await t.mesh.cli('aitbc', ['send', '--to', 'all', '--wait', '--timeout', '60', '--json', 'sync blocks at height 15234'])
    expect(res.code, res.stderr).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000) // far from the 60 s timeout
    const out = JSON.parse(res.stdout) as MessageView
    expect(out.message_delivery).toEqual({ sent: 3, delivered: 3, processed: 0, failed: 0 })
    expect(Object.values(out.targets).map(x => x.state)).toEqual(['delivered', 'delivered', 'delivered'])
    for (const node of ['aitbc', 'aitbc1', 'aitbc2']) {
      const got = (await inbox(t.mesh, node)).filter(m => m.id === out.id)
      expect(got).toEqual([expect.objectContaining({ from: 'aitbc', body: 'sync blocks at height 15234', kind: 'text' })])
    }
    // Readable output too: per-node lines and the counts.
    const plain = await t.mesh.cli('aitbc1', ['send', '--to', 'genesis', '--wait', 'ack'])
    expect(plain.code).toBe(0)
    expect(plain.stdout).toMatch(/aitbc: delivered/)
    expect(plain.stdout).toMatch(/delivered 1 of 1/)
  })

  it('keeps messages from one sender to one target in send order', async () => {
    const client = await t.mesh.client('aitbc')
    try {
      const ids: string[] = []
      const sends = Array.from({ length: 100 }, async (_, i) => (await client.call<{ id: string }>('messages.send', { to: 'aitbc1', body: `ordered ${i}` })).id)
      for (const id of await Promise.all(sends)) ids.push(id)
      await waitFor('all 100 delivered', async () => (await inbox(t.mesh, 'aitbc1')).filter(m => m.body.startsWith('ordered ')).length === 100, 15000, 100)
      const bodies = (await inbox(t.mesh, 'aitbc1')).filter(m => m.body.startsWith('ordered ')).map(m => m.body)
      expect(bodies).toEqual(Array.from({ length: 100 }, (_, i) => `ordered ${i}`))
    } finally {
      client.close()
    }
  })

  it('a target down at send time receives the message when it comes back within the TTL', async () => {
    await t.mesh.stop('aitbc2')
    await waitFor('aitbc2 offline', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc2') === 'offline', 5000)
    const sent = await send(t.mesh, 'aitbc', ['--to', 'aitbc2', '--ttl', '60', 'you were away'])
    expect((await message(t.mesh, 'aitbc', sent.id)).targets.aitbc2!.state).toBe('pending')
    await t.mesh.start('aitbc2')
    await waitFor('delivered after the restart', async () => (await message(t.mesh, 'aitbc', sent.id)).targets.aitbc2!.state === 'delivered', 15000, 100)
    expect((await inbox(t.mesh, 'aitbc2')).filter(m => m.id === sent.id)).toHaveLength(1)
  })

  it('after the TTL a target is failed: expired, and is never delivered later', async () => {
    await t.mesh.stop('aitbc2')
    await waitFor('aitbc2 offline', async () => await statusOfPeer(t.mesh, 'aitbc', 'aitbc2') === 'offline', 5000)
    const sent = await send(t.mesh, 'aitbc', ['--to', 'aitbc2', '--ttl', '1', 'too late'])
    await waitFor('expired', async () => (await message(t.mesh, 'aitbc', sent.id)).targets.aitbc2!.state === 'failed', 10000, 100)
    const view = await message(t.mesh, 'aitbc', sent.id)
    expect(view.targets.aitbc2).toMatchObject({ state: 'failed', reason: 'expired' })
    expect(view.message_delivery).toEqual({ sent: 1, delivered: 0, processed: 0, failed: 1 })
    expect((await t.mesh.cli('aitbc', ['message', sent.id])).code).toBe(1)
    await t.mesh.start('aitbc2')
    // A later message does get through, so the session has run since the restart.
    const later = await t.mesh.cli('aitbc', ['send', '--to', 'aitbc2', '--wait', '--json', 'after the expiry'])
    expect(later.code, later.stderr).toBe(0)
    const bodies = (await inbox(t.mesh, 'aitbc2')).map(m => m.body)
    expect(bodies).toContain('after the expiry')
    expect(bodies).not.toContain('too late')
  })

  it('a sender killed with SIGKILL after send returned still delivers after its restart', async () => {
    await t.mesh.stop('aitbc2')
    await waitFor('aitbc2 offline', async () => await statusOfPeer(t.mesh, 'aitbc1', 'aitbc2') === 'offline', 5000)
    const sent = await send(t.mesh, 'aitbc1', ['--to', 'aitbc2', '--ttl', '120', 'survives the crash'])
    await t.mesh.stop('aitbc1', 'SIGKILL')
    await t.mesh.start('aitbc2')
    await t.mesh.start('aitbc1')
    await waitFor('delivered after the sender restarted', async () => (await message(t.mesh, 'aitbc1', sent.id)).targets.aitbc2?.state === 'delivered', 15000, 100)
    expect((await inbox(t.mesh, 'aitbc2')).filter(m => m.id === sent.id)).toHaveLength(1)
  })

  it('a receiver that stored a message but died before receipting stores the retry once', async () => {
    await waitAllOnline(t.mesh)
    // Play aitbc as the sender over the real protocol, so the retry can be sent by hand.
    await t.mesh.stop('aitbc')
    const sender = await impostor(t.mesh, 'aitbc', ['aitbc1'])
    const target = t.mesh.node('aitbc1')
    const envelope: Envelope = { id: 'retry-test-1', from: 'aitbc', kind: 'text', body: new TextEncoder().encode('stored once'), sentAtMs: BigInt(Date.now()), expiresAtMs: BigInt(Date.now() + 60_000), seq: 1n }
    const deliverOnce = async (): Promise<Receipt> => {
      const stream = await sender.dialProtocol(multiaddr(target.addr), MESSAGES_PROTOCOL)
      const pb = pbStream(stream)
      await pb.write(envelope, Envelope)
      const receipt = await pb.read(Receipt)
      await stream.close()
      return receipt
    }
    expect((await deliverOnce()).status).toBe(ReceiptStatus.STORED)
    // The receiver dies right after storing (its receipt may be lost); the sender retries.
    await t.mesh.stop('aitbc1', 'SIGKILL')
    await t.mesh.start('aitbc1')
    const retry = await waitFor('aitbc1 to answer the retry', async () => await deliverOnce(), 10000, 200)
    expect(retry).toMatchObject({ id: 'retry-test-1', node: 'aitbc1', status: ReceiptStatus.DUPLICATE })
    expect((await inbox(t.mesh, 'aitbc1')).filter(m => m.id === 'retry-test-1')).toHaveLength(1)

    // A forged origin is refused and not stored.
    const stream = await sender.dialProtocol(multiaddr(target.addr), MESSAGES_PROTOCOL)
    const pb = pbStream(stream)
    await pb.write({ ...envelope, id: 'forged-origin', from: 'aitbc2' }, Envelope)
    expect(await pb.read(Receipt)).toMatchObject({ id: 'forged-origin', status: ReceiptStatus.REJECTED, reason: 'origin "aitbc2" is not the sending node aitbc' })
    await stream.close()
    // Malformed bytes: the stream is dropped and logged, nothing stored.
    const raw = await sender.dialProtocol(multiaddr(target.addr), MESSAGES_PROTOCOL)
    raw.send(new Uint8Array([0x05, 0xff, 0xff, 0xff, 0xff, 0xff]))
    await waitFor('the malformed stream logged', () => target.logLines.some(l => l.includes('"event":"message_stream_failed"')), 5000)
    const ids = (await inbox(t.mesh, 'aitbc1')).map(m => m.id)
    expect(ids).not.toContain('forged-origin')
    expect(target.logLines.some(l => l.includes('"event":"message_rejected"') && l.includes('forged-origin'))).toBe(true)
    await sender.stop()
    await t.mesh.start('aitbc')
    await waitAllOnline(t.mesh)
  })

  it('drops forged receipts: a message stays pending until the real target receipts it', async () => {
    await t.mesh.stop('aitbc2')
    // Someone holding aitbc2's key answers at aitbc2's address with receipts for other messages.
    const fake = await impostor(t.mesh, 'aitbc2', ['aitbc'], [`/ip4/${t.hosts[2]!}/tcp/7070`])
    await fake.handle(MESSAGES_PROTOCOL, async stream => {
      const pb = pbStream(stream)
      const env = await pb.read(Envelope)
      await pb.write({ id: `not-${env.id}`, node: 'aitbc2', status: ReceiptStatus.STORED, storedAtMs: 1n, reason: '' }, Receipt)
    })
    const sent = await send(t.mesh, 'aitbc', ['--to', 'aitbc2', '--ttl', '60', 'needs a real receipt'])
    await waitFor('the forged receipt rejected', () => t.mesh.node('aitbc').logLines.some(l => l.includes('"event":"receipt_rejected"')), 10000)
    expect((await message(t.mesh, 'aitbc', sent.id)).targets.aitbc2!.state).toBe('pending')
    await fake.stop()
    await t.mesh.start('aitbc2')
    await waitFor('delivered by the real aitbc2', async () => (await message(t.mesh, 'aitbc', sent.id)).targets.aitbc2!.state === 'delivered', 20000, 100)
    expect((await inbox(t.mesh, 'aitbc2')).filter(m => m.id === sent.id)).toHaveLength(1)
  })

  it('follows the inbox as messages arrive', async () => {
    const first = await t.mesh.cli('aitbc', ['send', '--to', 'aitbc2', '--wait', '--json', 'already there'])
    expect(first.code, first.stderr).toBe(0)
    const follower = await t.mesh.client('aitbc2')
    const seen: string[] = []
    try {
      void follower.call('inbox.follow', {}, { onEvent: m => { seen.push((m as InboxMessage).body) } }).catch(() => {})
      await waitFor('the existing inbox replayed', () => seen.includes('already there'), 5000)
      await send(t.mesh, 'aitbc', ['--to', 'aitbc2', 'live one'])
      await waitFor('the new message followed', () => seen.includes('live one'), 10000)
    } finally {
      follower.close()
    }
    const since = (await inbox(t.mesh, 'aitbc2')).find(m => m.body === 'already there')!.id
    const res = await t.mesh.cli('aitbc2', ['inbox', '--since', since, '--json'])
    const bodies = (JSON.parse(res.stdout) as InboxMessage[]).map(m => m.body)
    expect(bodies).not.toContain('already there')
    expect(bodies).toContain('live one')
  })

  it('refuses bad messages with exit 2 and sends nothing', async () => {
    const before = (await inbox(t.mesh, 'aitbc1')).length
    const cases: Array<[string[], RegExp]> = [
      [['send', '--to', 'aitbc1', ''], /the message is empty/],
      [['send', '--to', 'aitbc1', '   '], /the message is empty/],
      [['send', '--to', 'aitbc1', 'x'.repeat(70_000)], /70000 bytes, over the 65536 byte limit/],
      [['send', '--to', 'nowhere', 'hello'], /unknown target "nowhere"; valid targets: all, genesis, follower, aitbc, aitbc1, aitbc2/],
      [['send', '--to', 'aitbc1', '--ttl', '0', 'hello'], /"ttl": at least 1 second/],
      [['send', '--to', 'aitbc1', '--ttl', '700000', 'hello'], /"ttl": at most 604800 seconds/],
      [['send', '--to', 'aitbc1', '--ttl', 'soon', 'hello'], /--ttl "soon": expected whole seconds/],
      [['send', '--to', 'aitbc1', '--kind', 'bad kind', 'hello'], /"kind": expected letters/],
      [['op', '{"operation":"message","target_node":"aitbc1"}'], /"message" is required/],
      [['message', 'no-such-id'], /no message "no-such-id" was sent from this node/]
    ]
    for (const [args, pattern] of cases) {
      const res = await t.mesh.cli('aitbc', args)
      expect(res.code, `${args.slice(0, 4).join(' ')}: ${res.stderr}`).toBe(2)
      expect(res.stderr).toMatch(pattern)
    }
    // Nothing arrived (a valid message afterwards is the first new one).
    await send(t.mesh, 'aitbc', ['--to', 'aitbc1', 'the only new one'])
    await waitFor('the valid message delivered', async () => (await inbox(t.mesh, 'aitbc1')).length === before + 1, 10000)
    expect((await inbox(t.mesh, 'aitbc1')).at(-1)!.body).toBe('the only new one')
  })

  it('op message returns the operation JSON with message_delivery filled', async () => {
    const res = await t.mesh.cli('aitbc', ['op', '{"operation":"message","target_node":"follower","message":"via op","timeout":10}'])
    expect(res.code, res.stderr).toBe(0)
    const out = JSON.parse(res.stdout)
    expect(out.operation).toBe('message')
    expect(out.message_delivery).toEqual({ sent: 2, delivered: 2, processed: 0, failed: 0 })
    expect(Object.keys(out.nodes_status).sort()).toEqual(['aitbc1', 'aitbc2'])
    expect(out.nodes_status.aitbc1.delivery.state).toBe('delivered')
    expect(out.validation_status).toBe('success')
  })
})
