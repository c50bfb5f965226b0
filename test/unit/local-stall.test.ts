import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { LOCAL_STALL_MAX_ALLOWANCE_MS, LOCAL_STALL_SAMPLE_MS } from '../../src/constants.js'
import { LocalStallMonitor } from '../../src/mesh/local-stall.js'
import { PeerTable } from '../../src/mesh/peer-table.js'

const OFFLINE_AFTER_MS = 3000
const started: LocalStallMonitor[] = []

function monitor (): { stalls: LocalStallMonitor, t0: number } {
  const stalls = new LocalStallMonitor(2 * OFFLINE_AFTER_MS)
  stalls.start()
  started.push(stalls)
  // The sampler's own ticks are driven by the test from here on, with a clock of its own.
  return { stalls, t0: Date.now() }
}

afterEach(() => { for (const m of started.splice(0)) m.stop() })

describe('local stall monitor', () => {
  it('reports the worst stall within its window, then forgets it; regular ticks are no stall', () => {
    const { stalls, t0 } = monitor()
    let now = t0
    for (let i = 0; i < 10; i++) stalls.tick(now += LOCAL_STALL_SAMPLE_MS)
    expect(stalls.recentStallMs(now)).toBe(0)
    stalls.tick(now += LOCAL_STALL_SAMPLE_MS + 1800)
    stalls.tick(now += LOCAL_STALL_SAMPLE_MS + 400)
    expect(stalls.recentStallMs(now)).toBe(1800)
    for (let i = 0; i < 2 * OFFLINE_AFTER_MS / LOCAL_STALL_SAMPLE_MS + 1; i++) stalls.tick(now += LOCAL_STALL_SAMPLE_MS)
    expect(stalls.recentStallMs(now)).toBe(0)
  })

  it('counts a stall still going on at the time of the read, and caps what it reports', () => {
    const { stalls, t0 } = monitor()
    stalls.tick(t0 + LOCAL_STALL_SAMPLE_MS)
    expect(stalls.recentStallMs(t0 + LOCAL_STALL_SAMPLE_MS * 2 + 2500)).toBe(2500)
    stalls.tick(t0 + 60_000)
    expect(stalls.recentStallMs(t0 + 60_000)).toBe(LOCAL_STALL_MAX_ALLOWANCE_MS)
  })

  it('a stopped monitor reports nothing', () => {
    const { stalls, t0 } = monitor()
    stalls.tick(t0 + 5000)
    stalls.stop()
    expect(stalls.recentStallMs(t0 + 5000)).toBe(0)
  })
})

describe('the offline window with our own stalls', () => {
  it('a peer heard from 4 s ago is online while we were stalled 2 s, offline once the stall is forgotten; a closed connection is offline at once', async () => {
    const idB = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const idC = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    let stalled = 2000
    const peers = new PeerTable([
      { name: 'aitbc1', role: 'follower', peerId: idB, addr: `/ip4/10.0.0.2/tcp/7070/p2p/${idB.toString()}` },
      { name: 'aitbc2', role: 'follower', peerId: idC, addr: `/ip4/10.0.0.3/tcp/7070/p2p/${idC.toString()}` }
    ], OFFLINE_AFTER_MS, () => stalled)
    const now = Date.now()
    for (const id of [idB, idC]) {
      peers.markConnected(id, undefined, now - 10_000)
      peers.recordHeartbeat(id, { seq: 1n, startedAtMs: now - 60_000, sentAtMs: now - 4000, healthy: true, p2pConnections: 1 }, now - 4000)
    }
    peers.markDisconnected(idC, now - 100)
    expect(peers.liveness(peers.get('aitbc1')!, now).liveness).toBe('online')
    expect(peers.liveness(peers.get('aitbc2')!, now)).toMatchObject({ liveness: 'offline', reason: expect.stringMatching(/^connection lost/) as unknown })
    stalled = 0
    expect(peers.liveness(peers.get('aitbc1')!, now)).toMatchObject({ liveness: 'offline', reason: 'no heartbeat for 4.0 s' })
  })
})
