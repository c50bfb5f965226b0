import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import pino from 'pino'
import { beforeAll, describe, expect, it } from 'vitest'
import { Heartbeat, NodeRole } from '../../protocols/heartbeat.js'
import type { Envelope } from '../../protocols/messages.js'
import type { MeshLibp2p } from '../../src/mesh/libp2p.js'
import type { NodeReport as WireReport, ActionResult as WireActionResult } from '../../protocols/operation.js'
import { HEARTBEAT_MAX_BYTES, HEARTBEAT_MAX_CONNECTED, MESSAGE_MAX_TTL_S } from '../../src/constants.js'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { HeartbeatService, heartbeatOutOfRange, HEARTBEAT_TOPIC } from '../../src/mesh/heartbeat.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import { RejectionLog } from '../../src/mesh/rejection-log.js'
import { wireTime } from '../../src/mesh/wire-bounds.js'
import { checkEnvelope } from '../../src/messaging/envelope.js'
import { actionFromWire, fromWire } from '../../src/operations/operation-wire.js'

const NOW = 1_800_000_000_000
const SKEW = 60_000
const MAX_U64 = 2n ** 64n - 1n

function envelope (extra: Partial<Envelope> = {}): Envelope {
  return {
    id: '0b7c4a2e-1f7d-4a57-9d0e-3f1f0c1a2b3c',
    from: 'aitbc',
    kind: 'text',
    body: new TextEncoder().encode('hello'),
    sentAtMs: BigInt(NOW),
    expiresAtMs: BigInt(NOW + 3600_000),
    seq: BigInt(NOW * 1000),
    ...extra
  }
}

function refusal (extra: Partial<Envelope>): { answer: string, reason: string, detail: string } {
  const checked = checkEnvelope(envelope(extra), 'aitbc', NOW, SKEW)
  if (checked.ok) throw new Error('expected a refusal')
  return { answer: checked.answer, reason: checked.reason, detail: checked.detail }
}

describe('checkEnvelope: a received message is bounded as send bounds it', () => {
  it('accepts an honest envelope, including one sent long ago that is still within its TTL', () => {
    expect(checkEnvelope(envelope(), 'aitbc', NOW, SKEW)).toEqual({
      ok: true, message: { id: envelope().id, from: 'aitbc', kind: 'text', body: 'hello', sentAt: NOW, expiresAt: NOW + 3600_000 }
    })
    // Queued while the target was away for six days, seven-day TTL: still deliverable.
    const old = checkEnvelope(envelope({ sentAtMs: BigInt(NOW - 6 * 86400_000), expiresAtMs: BigInt(NOW + 86400_000) }), 'aitbc', NOW, SKEW)
    expect(old.ok).toBe(true)
    // The longest TTL exactly, and sent_at at the edge of the skew window.
    expect(checkEnvelope(envelope({ sentAtMs: BigInt(NOW + SKEW), expiresAtMs: BigInt(NOW + SKEW + MESSAGE_MAX_TTL_S * 1000) }), 'aitbc', NOW, SKEW).ok).toBe(true)
  })

  it('refuses expires_at = 2^64-1 (never expire) with a receipt that says why', () => {
    expect(refusal({ expiresAtMs: MAX_U64 })).toEqual({
      answer: 'receipt',
      reason: 'ttl over the maximum',
      detail: `expires_at ${MAX_U64} ms since the epoch is ${(MAX_U64 - BigInt(NOW)) / 1000n} s after sent_at, over the 604800 s (7 days) maximum`
    })
  })

  it('refuses sent_at ahead of our clock beyond the skew window', () => {
    expect(refusal({ sentAtMs: BigInt(NOW + 3600_000), expiresAtMs: BigInt(NOW + 7200_000) })).toEqual({
      answer: 'receipt',
      reason: 'sent_at ahead of our clock',
      detail: `sent_at ${new Date(NOW + 3600_000).toISOString()} is 3600000 ms ahead of this node's clock (trust.clockSkewMs allows 60000)`
    })
    expect(refusal({ sentAtMs: MAX_U64 }).reason).toBe('sent_at ahead of our clock')
    expect(refusal({ sentAtMs: BigInt(NOW + SKEW + 1), expiresAtMs: BigInt(NOW + 7200_000) }).reason).toBe('sent_at ahead of our clock')
  })

  it('refuses expires_at at or before sent_at, and a TTL one millisecond over seven days', () => {
    expect(refusal({ expiresAtMs: BigInt(NOW - 1) })).toMatchObject({ answer: 'receipt', reason: 'expires_at not after sent_at' })
    expect(refusal({ expiresAtMs: BigInt(NOW) }).reason).toBe('expires_at not after sent_at')
    expect(refusal({ expiresAtMs: BigInt(NOW + MESSAGE_MAX_TTL_S * 1000 + 1) }).reason).toBe('ttl over the maximum')
  })

  it('validates body and kind as send does, and caps seq', () => {
    expect(refusal({ body: new Uint8Array(64 * 1024 + 1).fill(0x61) })).toMatchObject({ reason: 'body too large', detail: 'body of 65537 bytes is over the 65536 byte limit' })
    expect(refusal({ body: new Uint8Array([0xff, 0xfe]) }).reason).toBe('body not UTF-8')
    expect(refusal({ body: new TextEncoder().encode('  \n') })).toMatchObject({ reason: 'empty body', detail: 'the message is empty' })
    expect(refusal({ kind: 'bad kind' }).reason).toBe('invalid kind')
    expect(refusal({ kind: 'k'.repeat(65) }).reason).toBe('invalid kind')
    expect(refusal({ seq: MAX_U64 }).reason).toBe('seq out of range')
  })

  it('keeps refusing a forged origin with the same receipt reason as before', () => {
    expect(refusal({ from: 'aitbc2' })).toEqual({ answer: 'receipt', reason: 'origin mismatch', detail: 'origin "aitbc2" is not the sending node aitbc' })
  })

  it('resets the stream for an envelope whose id no receipt can answer; long values are clipped in the detail', () => {
    const long = refusal({ id: 'x'.repeat(10_000) })
    expect(long).toMatchObject({ answer: 'reset', reason: 'invalid message id' })
    expect(long.detail.length).toBeLessThan(200)
    expect(refusal({ id: '' }).answer).toBe('reset')
    expect(refusal({ id: '../etc' }).answer).toBe('reset')
    expect(refusal({ from: 'y'.repeat(10_000) }).detail.length).toBeLessThan(200)
  })
})

function beat (extra: Partial<Heartbeat> = {}): Heartbeat {
  return {
    node: 'aitbc1',
    role: NodeRole.FOLLOWER,
    seq: 42n,
    startedAtMs: BigInt(NOW - 3600_000),
    sentAtMs: BigInt(NOW),
    healthy: true,
    blockHeight: 1000n,
    p2pConnections: 2,
    connected: ['aitbc', 'aitbc2'],
    ...extra
  }
}

describe('heartbeatOutOfRange', () => {
  it('accepts an honest heartbeat, including one whose clock is off by less than the window', () => {
    expect(heartbeatOutOfRange(beat(), NOW, SKEW)).toBeUndefined()
    expect(heartbeatOutOfRange(beat({ sentAtMs: BigInt(NOW + SKEW), startedAtMs: BigInt(NOW + SKEW) }), NOW, SKEW)).toBeUndefined()
    expect(heartbeatOutOfRange(beat({ sentAtMs: BigInt(NOW - SKEW) }), NOW, SKEW)).toBeUndefined()
    // A daemon that has run for years.
    expect(heartbeatOutOfRange(beat({ startedAtMs: BigInt(NOW - 3 * 365 * 86400_000) }), NOW, SKEW)).toBeUndefined()
    // A full connected list as the sender caps it, within the byte limit.
    const full = beat({ connected: Array.from({ length: HEARTBEAT_MAX_CONNECTED }, (_, i) => `n${i}`) })
    expect(heartbeatOutOfRange(full, NOW, SKEW)).toBeUndefined()
    expect(Heartbeat.encode(full).byteLength).toBeLessThanOrEqual(HEARTBEAT_MAX_BYTES)
  })

  it('refuses times outside the window, as clock reasons', () => {
    expect(heartbeatOutOfRange(beat({ sentAtMs: BigInt(NOW + SKEW + 1) }), NOW, SKEW)).toEqual({
      reason: 'sent_at outside the clock window',
      detail: `sent_at ${new Date(NOW + SKEW + 1).toISOString()} is 60001 ms ahead of this node's clock (trust.clockSkewMs allows 60000)`,
      clock: true
    })
    expect(heartbeatOutOfRange(beat({ sentAtMs: BigInt(NOW - SKEW - 1) }), NOW, SKEW)?.detail).toMatch(/is 60001 ms behind this node's clock/)
    expect(heartbeatOutOfRange(beat({ sentAtMs: MAX_U64 }), NOW, SKEW)?.detail).toBe(`sent_at ${MAX_U64} ms since the epoch is ${MAX_U64 - BigInt(NOW)} ms ahead of this node's clock (trust.clockSkewMs allows 60000)`)
    expect(heartbeatOutOfRange(beat({ startedAtMs: MAX_U64 }), NOW, SKEW)).toMatchObject({ reason: 'started_at in the future', clock: true })
    expect(heartbeatOutOfRange(beat({ startedAtMs: 1n }), NOW, SKEW)).toMatchObject({ reason: 'started_at too old', clock: true })
  })

  it('carries the store epoch and its loss time, bounded', () => {
    const withEpoch = beat({ storeEpoch: 'e'.repeat(64), storeLostFromMs: BigInt(NOW - 1000) })
    expect(Heartbeat.decode(Heartbeat.encode(withEpoch))).toMatchObject({ storeEpoch: 'e'.repeat(64), storeLostFromMs: BigInt(NOW - 1000) })
    expect(Heartbeat.decode(Heartbeat.encode(beat())).storeEpoch).toBeUndefined()
    expect(heartbeatOutOfRange(withEpoch, NOW, SKEW)).toBeUndefined()
    expect(heartbeatOutOfRange(beat({ storeEpoch: 'e'.repeat(65) }), NOW, SKEW)).toMatchObject({ reason: 'store epoch out of range', clock: false })
    expect(heartbeatOutOfRange(beat({ storeEpoch: 'e', storeLostFromMs: MAX_U64 }), NOW, SKEW)?.detail).toMatch(/store_lost_from_ms .* ahead of this node's clock/)
    expect(heartbeatOutOfRange(beat({ storeLostFromMs: 5n }), NOW, SKEW)?.detail).toBe('store_lost_from_ms without a store_epoch')
  })

  it('refuses counts and lists out of range', () => {
    expect(heartbeatOutOfRange(beat({ seq: 0n }), NOW, SKEW)).toMatchObject({ reason: 'seq out of range', clock: false })
    expect(heartbeatOutOfRange(beat({ seq: MAX_U64 }), NOW, SKEW)?.reason).toBe('seq out of range')
    expect(heartbeatOutOfRange(beat({ blockHeight: MAX_U64 }), NOW, SKEW)?.reason).toBe('block_height out of range')
    expect(heartbeatOutOfRange(beat({ p2pConnections: 2 ** 32 - 1 }), NOW, SKEW)?.reason).toBe('p2p_connections out of range')
    const tooMany = beat({ connected: Array.from({ length: HEARTBEAT_MAX_CONNECTED + 1 }, (_, i) => `n${i}`) })
    expect(heartbeatOutOfRange(tooMany, NOW, SKEW)).toEqual({ reason: 'connected list too long', detail: `connected lists ${HEARTBEAT_MAX_CONNECTED + 1} names, over ${HEARTBEAT_MAX_CONNECTED}`, clock: false })
    expect(heartbeatOutOfRange(beat({ connected: ['aitbc', 'aitbc'] }), NOW, SKEW)?.detail).toBe('connected lists "aitbc" twice')
    expect(heartbeatOutOfRange(beat({ connected: ['bad name'] }), NOW, SKEW)?.reason).toBe('connected list malformed')
    expect(heartbeatOutOfRange(beat({ connected: [''] }), NOW, SKEW)?.reason).toBe('connected list malformed')
  })
})

describe('PeerTable: refused heartbeats', () => {
  let idB: PeerId
  beforeAll(async () => { idB = peerIdFromPrivateKey(await generateKeyPair('Ed25519')) })

  it('a refused heartbeat does not make the node online, says why, and still reports its clock', () => {
    const t = new PeerTable([{ name: 'aitbc1', role: 'follower', peerId: idB, addr: `/ip4/10.0.0.2/tcp/7070/p2p/${idB.toString()}` }], 3000)
    const state = t.markConnected(idB, undefined, NOW)!
    t.noteRefusedHeartbeat(idB, { at: NOW + 10, detail: 'sent_at ... is 3600000 ms ahead', sentAtMs: NOW + 3600_010 })
    expect(t.liveness(state, NOW + 20)).toEqual({ liveness: 'offline', reason: 'heartbeats refused: sent_at ... is 3600000 ms ahead' })
    expect(t.senderClock(state)).toEqual({ sentAtMs: NOW + 3600_010, receivedAt: NOW + 10 })
    // An accepted heartbeat afterwards counts and is the clock reading.
    t.recordHeartbeat(idB, { seq: 1n, startedAtMs: NOW, sentAtMs: NOW + 5, healthy: true, p2pConnections: 1 }, NOW + 100)
    expect(t.liveness(state, NOW + 200)).toEqual({ liveness: 'online' })
    expect(t.senderClock(state)).toEqual({ sentAtMs: NOW + 5, receivedAt: NOW + 100 })
    // A refusal long ago no longer explains being offline.
    expect(t.liveness(state, NOW + 10_000).reason).toBe('no heartbeat for 9.9 s')
  })
})

function report (extra: Partial<WireReport> = {}): WireReport {
  return { node: 'aitbc1', role: 'follower', status: 'online', blockHeight: 1000n, mempoolSize: 3n, p2pConnections: 2, lastSync: BigInt(Math.floor(NOW / 1000) - 60), issues: [], checks: [], daemonUptimeMs: 3600_000n, probedAtMs: BigInt(NOW - 500), chains: [], ...extra }
}

describe('operation answers are bounded', () => {
  const expected = { name: 'aitbc1', role: 'follower' as const }

  it('accepts an honest report and refuses impossible counts and future times', () => {
    expect(fromWire(report(), expected, NOW, SKEW)).toMatchObject({ block_height: 1000, last_sync: Math.floor(NOW / 1000) - 60, probed_at_ms: NOW - 500 })
    expect(() => fromWire(report({ lastSync: MAX_U64 }), expected, NOW, SKEW)).toThrow(/last_sync .* ahead of this node's clock/)
    expect(() => fromWire(report({ probedAtMs: BigInt(NOW + 3600_000) }), expected, NOW, SKEW)).toThrow(/probed_at .* is 3600000 ms ahead/)
    expect(() => fromWire(report({ blockHeight: MAX_U64 }), expected, NOW, SKEW)).toThrow(`report has block_height ${MAX_U64}, over ${Number.MAX_SAFE_INTEGER}`)
    expect(() => fromWire(report({ mempoolSize: MAX_U64 }), expected, NOW, SKEW)).toThrow(/mempool_size/)
    expect(() => fromWire(report({ p2pConnections: 100_000 }), expected, NOW, SKEW)).toThrow('report has p2p_connections 100000, over 1024')
    expect(() => fromWire(report({ daemonUptimeMs: MAX_U64 }), expected, NOW, SKEW)).toThrow(/daemon_uptime_ms/)
    expect(fromWire(report({ serviceUptime: 'u'.repeat(5000) }), expected, NOW, SKEW).service_uptime).toHaveLength(65)
    // Every issue is kept whole up to the limit, however many there are; a long one is cut.
    const issues = fromWire(report({ issues: ['first issue', 'second issue', 'third issue', 'x'.repeat(10_000)] }), expected, NOW, SKEW).issues
    expect(issues.slice(0, 3)).toEqual(['first issue', 'second issue', 'third issue'])
    expect(issues[3]!.length).toBeLessThan(5000)
  })

  it('reads the store section in its own words for the level; refuses unknown kinds and levels; an older daemon sends none', () => {
    const store = { kind: 'redis', durabilityLevel: 'everysec', durabilityDetail: 'appendonly yes, appendfsync everysec, save ""' }
    expect(fromWire(report({ store }), expected, NOW, SKEW).store).toEqual({
      kind: 'redis',
      durability: { level: 'everysec', detail: store.durabilityDetail, guarantee: 'append-only, fsync every second: nothing acknowledged is lost on a crash of Redis; a crash of the host can lose about the last second', durable: true }
    })
    expect(fromWire(report({ store: { ...store, durabilityDetail: 'd'.repeat(5000) } }), expected, NOW, SKEW).store?.durability.detail).toHaveLength(2049)
    expect(() => fromWire(report({ store: { ...store, kind: 'mongodb' } }), expected, NOW, SKEW)).toThrow('report has store kind "mongodb", expected redis or embedded')
    expect(() => fromWire(report({ store: { ...store, durabilityLevel: 'forever' } }), expected, NOW, SKEW)).toThrow('report has store durability "forever", expected one of always, everysec, os, snapshot, none, unknown')
    expect(fromWire(report(), expected, NOW, SKEW).store).toBeNull()
  })

  it('keeps issue texts whole up to 2048 characters, and cuts longer ones', () => {
    const issues = ['aitbc1: service_uptime: not probed (probes.service is not configured)', 'aitbc1: rpc: rate-limited: x', 'i'.repeat(3000)]
    const out = fromWire(report({ issues }), expected, NOW, SKEW).issues
    expect(out.slice(0, 2)).toEqual(issues.slice(0, 2))
    expect(out[2]).toBe(`${'i'.repeat(2048)}…`)
  })

  it('reads per chain values and check states; refuses too many chains, bad chain ids, repeats and impossible counts', () => {
    const chains = [
      { chainId: 'ait-mainnet', blockHeight: 1000n, mempoolSize: 500n, mempoolAtLeast: true },
      { chainId: 'ait-devnet', mempoolAtLeast: false }
    ]
    const checks = [{ name: 'rpc', ok: true, detail: 'x', state: 'rate-limited' }, { name: 'mesh', ok: true, detail: 'y', state: '' }, { name: 'z', ok: false, detail: 'z', state: 'from-the-future' }]
    const out = fromWire(report({ chains, checks }), expected, NOW, SKEW)
    expect(out.chains).toEqual({
      'ait-mainnet': { block_height: 1000, mempool_size: 500, mempool_at_least: true },
      'ait-devnet': { block_height: null, mempool_size: null, mempool_at_least: false }
    })
    expect(Object.keys(out.chains)).toEqual(['ait-mainnet', 'ait-devnet'])
    expect(out.checks).toEqual([{ name: 'rpc', ok: true, detail: 'x', state: 'rate-limited' }, { name: 'mesh', ok: true, detail: 'y' }, { name: 'z', ok: false, detail: 'z' }])
    const many = Array.from({ length: 9 }, (_, i) => ({ chainId: `c${i}`, mempoolAtLeast: false }))
    expect(() => fromWire(report({ chains: many }), expected, NOW, SKEW)).toThrow('report has 9 chains, over 8')
    expect(() => fromWire(report({ chains: [{ chainId: '../x', mempoolAtLeast: false }] }), expected, NOW, SKEW)).toThrow(/report has chain id "\.\.\/x"/)
    expect(() => fromWire(report({ chains: [{ chainId: 'a', mempoolAtLeast: false }, { chainId: 'a', mempoolAtLeast: false }] }), expected, NOW, SKEW)).toThrow('report lists chain a twice')
    expect(() => fromWire(report({ chains: [{ chainId: 'a', blockHeight: MAX_U64, mempoolAtLeast: false }] }), expected, NOW, SKEW)).toThrow(/block_height 18446744073709551615 for chain a/)
    // An older daemon sends no chains.
    expect(fromWire(report(), expected, NOW, SKEW).chains).toEqual({})
  })

  it('refuses an action duration longer than the exchange lasted', () => {
    const wire: WireActionResult = { action: 'restart', state: 'ok', exitCode: 0, durationMs: 1500n, outputTail: '', reason: '', destructive: false, healthBefore: '', healthAfter: '' }
    expect(actionFromWire(wire, 'restart', 1600).duration_ms).toBe(1500)
    expect(() => actionFromWire({ ...wire, durationMs: MAX_U64 }, 'restart', 1600)).toThrow(/action took 18446744073709551615 ms by its report, longer than the 1600 ms the request lasted/)
  })
})

describe('wireTime', () => {
  it('prints a real date as ISO and anything else as a number, never throwing', () => {
    expect(wireTime(0n)).toBe('1970-01-01T00:00:00.000Z')
    expect(wireTime(MAX_U64)).toBe(`${MAX_U64} ms since the epoch`)
  })
})

describe('RejectionLog', () => {
  it('writes one line per (peer, reason) however many rejections arrive', () => {
    const lines: string[] = []
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
    const rejections = new RejectionLog(log)
    for (let i = 0; i < 1000; i++) rejections.reject('message_rejected', 'aitbc2', i % 2 === 0 ? 'ttl over the maximum' : 'sent_at ahead of our clock', { messageId: `m${i}` })
    expect(rejections.total).toBe(1000)
    expect(lines.map(l => JSON.parse(l) as { reason: string, messageId: string }).map(l => [l.reason, l.messageId])).toEqual([['ttl over the maximum', 'm0'], ['sent_at ahead of our clock', 'm1']])
  })
})

describe('HeartbeatService validation', () => {
  let ids: PeerId[]
  beforeAll(async () => { ids = await Promise.all(Array.from({ length: 102 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')))) })

  it('accepts an honest heartbeat, ignores a clock out of the window, rejects bad counts, and logs each (peer, reason) once', () => {
    const [idA, idB, ...strangers] = ids as [PeerId, PeerId, ...PeerId[]]
    const peers = new PeerTable([
      { name: 'aitbc', role: 'genesis', peerId: idA, addr: `/ip4/10.0.0.1/tcp/7070/p2p/${idA.toString()}` },
      { name: 'aitbc1', role: 'follower', peerId: idB, addr: `/ip4/10.0.0.2/tcp/7070/p2p/${idB.toString()}` }
    ], 3000)
    const lines: Array<{ event: string, peer: string, reason: string }> = []
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
    const service = new HeartbeatService({ libp2p: {} as unknown as MeshLibp2p, peers, node: { name: 'aitbc', role: 'genesis' }, intervalMs: 1000, clockSkewMs: SKEW, log, localHealth: () => ({ healthy: true }) })
    const validate = (from: PeerId, extra: Partial<Heartbeat>, relayedBy: PeerId = from): TopicValidatorResult => {
      const msg = { type: 'signed', from, topic: HEARTBEAT_TOPIC, data: Heartbeat.encode(beat({ sentAtMs: BigInt(Date.now()), startedAtMs: BigInt(Date.now() - 1000), ...extra })), sequenceNumber: 1n, signature: new Uint8Array(), key: undefined } as unknown as Message
      return (service as unknown as { validate: (source: PeerId, msg: Message) => TopicValidatorResult }).validate(relayedBy, msg)
    }
    expect(validate(idB, {})).toBe(TopicValidatorResult.Accept)
    for (let i = 0; i < 100; i++) expect(validate(idB, { sentAtMs: BigInt(Date.now() + 3600_000) })).toBe(TopicValidatorResult.Ignore)
    for (let i = 0; i < 100; i++) expect(validate(idB, { connected: Array.from({ length: 65 }, (_, j) => `n${j}`) })).toBe(TopicValidatorResult.Reject)
    // Heartbeats signed by 100 fresh keys, relayed by aitbc1: one line, in aitbc1's name.
    for (const stranger of strangers.slice(0, 100)) expect(validate(stranger, {}, idB)).toBe(TopicValidatorResult.Reject)
    expect(lines.map(l => [l.event, l.peer, l.reason])).toEqual([
      ['heartbeat_rejected', 'aitbc1', 'sent_at outside the clock window'],
      ['heartbeat_rejected', 'aitbc1', 'connected list too long'],
      ['heartbeat_rejected', 'aitbc1', 'signer not in the allowlist']
    ])
    expect(peers.get('aitbc1')!.refusedHeartbeat?.detail).toBe('connected lists 65 names, over 64')
  })
})
