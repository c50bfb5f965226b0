import { pbStream } from '@libp2p/utils'
import { beforeAll, describe, expect, it } from 'vitest'
import { Heartbeat, NodeRole } from '../../protocols/heartbeat.js'
import { Envelope, Receipt, ReceiptStatus } from '../../protocols/messages.js'
import { OperationRequest, OperationResponse } from '../../protocols/operation.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { DELIVERY_STREAM_MAX_MESSAGE_BYTES, HEARTBEAT_MAX_CONNECTED } from '../../src/constants.js'
import { HEARTBEAT_TOPIC } from '../../src/mesh/heartbeat.js'
import { MESSAGES_PROTOCOL } from '../../src/messaging/delivery/index.js'
import { OPERATION_PROTOCOL } from '../../src/operations/operation-protocol.js'
import { peersOf, startTestMesh, statusOfPeer, waitFor } from '../helpers.js'
import { startHostilePeer, type HostilePeer } from '../hostile-peer.js'

const MAX_U64 = 2n ** 64n - 1n
const HOUR_MS = 3600_000

interface LogLine { level: string, event?: string, peer?: string, reason?: string, detail?: string, messageId?: string }

function logOf (mesh: LocalMesh, name: string, from = 0): LogLine[] {
  return mesh.node(name).logLines.slice(from).flatMap(line => {
    try {
      return [JSON.parse(line) as LogLine]
    } catch {
      return []
    }
  })
}

interface InboxMessage { id: string, from: string, body: string }

async function inbox (mesh: LocalMesh, node: string): Promise<InboxMessage[]> {
  const res = await mesh.cli(node, ['inbox', '--json', '--limit', '100000'])
  if (res.code !== 0) throw new Error(`inbox on ${node}: ${res.stderr}`)
  return JSON.parse(res.stdout) as InboxMessage[]
}

let counter = 0
function envelope (extra: Partial<Envelope> = {}): Envelope {
  const now = Date.now()
  return {
    id: `hostile-${process.pid}-${++counter}`,
    from: 'aitbc2',
    kind: 'text',
    body: new TextEncoder().encode('from the hostile peer'),
    sentAtMs: BigInt(now),
    expiresAtMs: BigInt(now + 60_000),
    seq: BigInt(counter),
    ...extra
  }
}

/** Writes envelopes on one stream the way a sender does and reads one receipt per envelope. */
async function deliver (hostile: HostilePeer, target: string, envelopes: Envelope[]): Promise<Receipt[]> {
  const stream = await hostile.stream(target, MESSAGES_PROTOCOL)
  try {
    const pb = pbStream(stream, { maxDataLength: DELIVERY_STREAM_MAX_MESSAGE_BYTES })
    const receipts = pb.pb(Receipt)
    const reading = (async () => {
      const out: Receipt[] = []
      while (out.length < envelopes.length) out.push(await receipts.read({ signal: AbortSignal.timeout(20_000) }))
      return out
    })()
    await pb.pb(Envelope).writeV(envelopes)
    const out = await reading
    await stream.close()
    return out
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

describe('wire values from a hostile allowlisted peer are bounded', () => {
  let mesh: LocalMesh
  let hostile: HostilePeer

  beforeAll(async () => {
    ;({ mesh } = await startTestMesh(3, { start: false }))
    await mesh.start('aitbc')
    await mesh.start('aitbc1')
    await waitFor('aitbc and aitbc1 online to each other', async () =>
      await statusOfPeer(mesh, 'aitbc', 'aitbc1') === 'online' && await statusOfPeer(mesh, 'aitbc1', 'aitbc') === 'online', 15000)
    hostile = await startHostilePeer(mesh, 'aitbc2', ['aitbc', 'aitbc1'])
  })

  async function honestNodesOnline (): Promise<void> {
    expect(await statusOfPeer(mesh, 'aitbc', 'aitbc1')).toBe('online')
    expect(await statusOfPeer(mesh, 'aitbc1', 'aitbc')).toBe('online')
  }

  it('refuses out-of-range messages with a receipt saying why, stores none, and logs a flood of them in a few lines while honest messages flow', async () => {
    const logStart = mesh.node('aitbc1').logLines.length
    const now = Date.now()
    const neverExpires = envelope({ expiresAtMs: MAX_U64 })
    const fromTheFuture = envelope({ sentAtMs: BigInt(now + HOUR_MS), expiresAtMs: BigInt(now + 2 * HOUR_MS) })
    const backwards = envelope({ sentAtMs: BigInt(now), expiresAtMs: BigInt(now - 1000) })
    const valid = envelope()
    const receipts = await deliver(hostile, 'aitbc1', [neverExpires, fromTheFuture, backwards, valid])
    expect(receipts.map(r => [r.id, r.node, r.status])).toEqual([
      [neverExpires.id, 'aitbc1', ReceiptStatus.REJECTED],
      [fromTheFuture.id, 'aitbc1', ReceiptStatus.REJECTED],
      [backwards.id, 'aitbc1', ReceiptStatus.REJECTED],
      // The same peer's well-formed message on the same stream is stored: the path itself works.
      [valid.id, 'aitbc1', ReceiptStatus.STORED]
    ])
    expect(receipts[0]!.reason).toMatch(/^expires_at 18446744073709551615 ms since the epoch is \d+ s after sent_at, over the 604800 s \(7 days\) maximum$/)
    expect(receipts[1]!.reason).toMatch(/^sent_at \S+ is 3\d{6} ms ahead of this node's clock \(trust\.clockSkewMs allows 60000\)$/)
    expect(receipts[2]!.reason).toMatch(/^expires_at \S+ is not after sent_at \S+$/)
    const ids = (await inbox(mesh, 'aitbc1')).map(m => m.id)
    expect(ids).toContain(valid.id)
    expect(ids).not.toContain(neverExpires.id)
    expect(ids).not.toContain(fromTheFuture.id)
    expect(ids).not.toContain(backwards.id)

    // The flood: 1,000 bad messages on one stream, while aitbc sends honest ones to the same target.
    const bad = Array.from({ length: 1000 }, (_, i) => {
      const t = Date.now()
      if (i % 3 === 0) return envelope({ expiresAtMs: MAX_U64 })
      if (i % 3 === 1) return envelope({ sentAtMs: BigInt(t + HOUR_MS), expiresAtMs: BigInt(t + 2 * HOUR_MS) })
      return envelope({ expiresAtMs: BigInt(t - 1) })
    })
    // In batches on one stream, kept up until the honest sends have all returned.
    let honestDone = false
    const flood = (async () => {
      const out: Receipt[] = []
      const stream = await hostile.stream('aitbc1', MESSAGES_PROTOCOL)
      const pb = pbStream(stream, { maxDataLength: DELIVERY_STREAM_MAX_MESSAGE_BYTES })
      for (let batch = 0; out.length < bad.length || !honestDone; batch++) {
        const envelopes = out.length < bad.length ? bad.slice(out.length, out.length + 50) : [envelope({ expiresAtMs: MAX_U64 })]
        if (out.length >= bad.length) bad.push(envelopes[0]!)
        await pb.pb(Envelope).writeV(envelopes)
        for (let i = 0; i < envelopes.length; i++) out.push(await pb.pb(Receipt).read({ signal: AbortSignal.timeout(20_000) }))
      }
      await stream.close()
      return out
    })()
    const honest = await Promise.all([0, 1, 2].map(async i => await mesh.cli('aitbc', ['send', '--to', 'aitbc1', '--wait', '--timeout', '30', '--json', `honest during the flood ${i}`])))
    honestDone = true
    const floodReceipts = await flood
    for (const res of honest) {
      expect(res.code, res.stderr).toBe(0)
      expect(JSON.parse(res.stdout).message_delivery).toEqual({ sent: 1, delivered: 1, processed: 0, failed: 0 })
    }
    expect(floodReceipts.length).toBeGreaterThanOrEqual(1000)
    expect(floodReceipts).toHaveLength(bad.length)
    expect(floodReceipts.every((r, i) => r.id === bad[i]!.id && r.status === ReceiptStatus.REJECTED)).toBe(true)
    const stored = new Set((await inbox(mesh, 'aitbc1')).map(m => m.id))
    expect(bad.filter(e => stored.has(e.id))).toEqual([])
    for (const i of [0, 1, 2]) expect((await inbox(mesh, 'aitbc1')).filter(m => m.body === `honest during the flood ${i}`)).toHaveLength(1)

    // Over 1,003 refusals, one warn line per reason.
    const rejected = logOf(mesh, 'aitbc1', logStart).filter(l => l.event === 'message_rejected')
    expect(rejected.map(l => [l.peer, l.reason]).sort()).toEqual([
      ['aitbc2', 'expires_at not after sent_at'],
      ['aitbc2', 'sent_at ahead of our clock'],
      ['aitbc2', 'ttl over the maximum']
    ])
    expect(rejected.find(l => l.reason === 'ttl over the maximum')).toMatchObject({ level: 'warn', messageId: neverExpires.id })
    const warnings = logOf(mesh, 'aitbc1', logStart).filter(l => ['warn', 'error', 'fatal'].includes(l.level))
    expect(warnings.length, JSON.stringify(warnings)).toBeLessThanOrEqual(5)
    await honestNodesOnline()
  })

  it('resets the stream for framing-level garbage, logged once however many streams carry it', async () => {
    const logStart = mesh.node('aitbc1').logLines.length
    for (let i = 0; i < 50; i++) {
      const raw = await hostile.stream('aitbc1', MESSAGES_PROTOCOL)
      raw.send(new Uint8Array([0x05, 0xff, 0xff, 0xff, 0xff, 0xff]))
      await waitFor('the garbage stream reset', () => raw.status !== 'open' || raw.readStatus !== 'readable', 5000, 10)
    }
    // An envelope whose id a receipt cannot answer also resets its stream.
    await expect(deliver(hostile, 'aitbc1', [envelope({ id: 'x'.repeat(1000) })])).rejects.toThrow()
    await waitFor('both stream refusals logged', () => logOf(mesh, 'aitbc1', logStart).filter(l => l.event === 'message_stream_failed').length >= 2, 5000)
    const failed = logOf(mesh, 'aitbc1', logStart).filter(l => l.event === 'message_stream_failed')
    expect(failed.map(l => l.reason).sort()).toEqual(['invalid message id', 'malformed frame'])
    // The target still takes honest messages.
    const res = await mesh.cli('aitbc', ['send', '--to', 'aitbc1', '--wait', '--json', 'after the garbage'])
    expect(res.code, res.stderr).toBe(0)
    await honestNodesOnline()
  })

  it('an out-of-range heartbeat does not make the node online, is logged once per reason, and a skewed but honest clock is reported', async () => {
    const logStart = { aitbc: mesh.node('aitbc').logLines.length, aitbc1: mesh.node('aitbc1').logLines.length }
    const startedAt = Date.now() - 1000
    let seq = 0n
    const publish = async (extra: Partial<Heartbeat>): Promise<void> => {
      const now = Date.now()
      const beat: Heartbeat = { node: 'aitbc2', role: NodeRole.FOLLOWER, seq: ++seq, startedAtMs: BigInt(startedAt), sentAtMs: BigInt(now), healthy: true, p2pConnections: 2, connected: ['aitbc', 'aitbc1'], ...extra }
      await hostile.libp2p.services.pubsub.publish(HEARTBEAT_TOPIC, Heartbeat.encode(beat))
    }
    const refusedFor = (node: 'aitbc' | 'aitbc1', reason: string): LogLine[] =>
      logOf(mesh, node, logStart[node]).filter(l => l.event === 'heartbeat_rejected' && l.peer === 'aitbc2' && l.reason === reason)
    const hostileStatus = async (at: string): Promise<string | undefined> => await statusOfPeer(mesh, at, 'aitbc2')

    // sent_at an hour ahead.
    const future = async (): Promise<void> => { await publish({ sentAtMs: BigInt(Date.now() + HOUR_MS) }) }
    await waitFor('both daemons to refuse the heartbeat from the future', async () => {
      await future()
      return refusedFor('aitbc', 'sent_at outside the clock window').length > 0 && refusedFor('aitbc1', 'sent_at outside the clock window').length > 0
    }, 15000, 200)
    for (let i = 0; i < 20; i++) {
      await future()
      expect(await hostileStatus('aitbc')).toBe('offline')
      expect(await hostileStatus('aitbc1')).toBe('offline')
    }
    expect(refusedFor('aitbc', 'sent_at outside the clock window')).toHaveLength(1)
    expect(refusedFor('aitbc1', 'sent_at outside the clock window')).toHaveLength(1)
    expect(refusedFor('aitbc', 'sent_at outside the clock window')[0]!.detail).toMatch(/^sent_at \S+ is 3\d{6} ms ahead of this node's clock/)
    // The operator sees why, and the node's clock as it is.
    const seen = (await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc2') as unknown as { status: string, reason: string, clock_skew_ms: number }
    expect(seen.status).toBe('offline')
    expect(seen.reason).toMatch(/^heartbeats refused: sent_at \S+ is 3\d{6} ms ahead of this node's clock \(trust\.clockSkewMs allows 60000\)$/)
    expect(Math.abs(seen.clock_skew_ms - HOUR_MS)).toBeLessThan(2000)

    // An oversized connected list (within the 512-byte limit: many short names).
    const crowd = Array.from({ length: HEARTBEAT_MAX_CONNECTED + 1 }, (_, i) => `n${i}`)
    await waitFor('both daemons to refuse the oversized connected list', async () => {
      await publish({ connected: crowd })
      return refusedFor('aitbc', 'connected list too long').length > 0 && refusedFor('aitbc1', 'connected list too long').length > 0
    }, 15000, 200)
    for (let i = 0; i < 20; i++) {
      await publish({ connected: crowd })
      expect(await hostileStatus('aitbc')).toBe('offline')
    }
    expect(refusedFor('aitbc', 'connected list too long')).toHaveLength(1)
    expect(refusedFor('aitbc1', 'connected list too long')).toHaveLength(1)
    await honestNodesOnline()

    // A clock five seconds ahead is within the window: the node comes online and its skew is reported as it is.
    await waitFor('aitbc2 online at aitbc with a skewed clock', async () => {
      await publish({ sentAtMs: BigInt(Date.now() + 5000) })
      return await hostileStatus('aitbc') === 'online'
    }, 15000, 200)
    const skewed = (await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc2') as unknown as { clock_skew_ms: number }
    expect(Math.abs(skewed.clock_skew_ms - 5000)).toBeLessThan(1000)
    await honestNodesOnline()
  })

  it('a status report with a last_sync past the end of time is refused with the reason, and the CLI still prints', async () => {
    await hostile.libp2p.handle(OPERATION_PROTOCOL, async stream => {
      const pb = pbStream(stream)
      const request = await pb.read(OperationRequest)
      await pb.write({
        requestId: request.requestId,
        error: '',
        report: { node: 'aitbc2', role: 'follower', status: 'online', blockHeight: 1000n, p2pConnections: 2, lastSync: MAX_U64, issues: [], checks: [], daemonUptimeMs: 1000n, chains: [] }
      }, OperationResponse)
      await stream.close()
    })
    const json = await mesh.cli('aitbc', ['status', '--target', 'aitbc2', '--json'])
    const out = JSON.parse(json.stdout)
    expect(out.nodes_status.aitbc2.last_sync).toBeNull()
    expect(JSON.stringify(out)).toMatch(/last_sync 18446744073709551615000 ms since the epoch is \d+ ms ahead of this node's clock/)
    const plain = await mesh.cli('aitbc', ['status', '--target', 'aitbc2'])
    expect(plain.stderr).not.toMatch(/RangeError|Invalid time value/)
    expect(plain.stdout).toMatch(/aitbc2/)
    await honestNodesOnline()
  })
})
