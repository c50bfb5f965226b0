import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { CLOCK_OFFSET_SAMPLES, RELAYED_HEARTBEAT_GRACE_MS, SENT_AFTER_CLOSE_MARGIN_MS } from '../../src/constants.js'
import { PeerTable, type HeartbeatInfo } from '../../src/mesh/peer-table.js'

const OFFLINE_AFTER_MS = 3000
const T0 = 1_700_000_000_000

let idA: PeerId
let idB: PeerId
let idC: PeerId
let stranger: PeerId

beforeAll(async () => {
  const ids = await Promise.all([0, 1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
  ;[idA, idB, idC, stranger] = ids as [PeerId, PeerId, PeerId, PeerId]
})

function table (): PeerTable {
  return new PeerTable([
    { name: 'aitbc', role: 'genesis', peerId: idA, addr: `/ip4/10.0.0.1/tcp/7070/p2p/${idA.toString()}` },
    { name: 'aitbc1', role: 'follower', peerId: idB, addr: `/ip4/10.0.0.2/tcp/7070/p2p/${idB.toString()}` },
    { name: 'aitbc2', role: 'follower', peerId: idC, addr: `/ip4/10.0.0.3/tcp/7070/p2p/${idC.toString()}` }
  ], OFFLINE_AFTER_MS)
}

function hb (seq: number, extra: Partial<HeartbeatInfo> = {}): HeartbeatInfo {
  return { seq: BigInt(seq), startedAtMs: T0 - 60_000, sentAtMs: T0, healthy: true, p2pConnections: 2, ...extra }
}

describe('PeerTable', () => {
  it('lists configured peers, looks them up by name and peer id, and starts them disconnected', () => {
    const t = table()
    expect(t.all().map(p => p.name)).toEqual(['aitbc', 'aitbc1', 'aitbc2'])
    expect(t.get('aitbc1')?.peerId.equals(idB)).toBe(true)
    expect(t.getByPeerId(idC)?.name).toBe('aitbc2')
    expect(t.getByPeerId(idC.toString())?.name).toBe('aitbc2')
    expect(t.get('aitbc1')).toMatchObject({ role: 'follower', configuredAddr: `/ip4/10.0.0.2/tcp/7070/p2p/${idB.toString()}`, connected: false })
  })

  it('ignores events from peers that are not configured', () => {
    const t = table()
    expect(t.markConnected(stranger, '/ip4/10.9.9.9/tcp/1', T0)).toBeUndefined()
    expect(t.recordHeartbeat(stranger, hb(1), T0)).toBeUndefined()
    expect(t.markDisconnected(stranger, T0)).toBeUndefined()
  })

  it('a peer never seen is offline', () => {
    const t = table()
    expect(t.liveness(t.get('aitbc1')!, T0)).toEqual({ liveness: 'offline', reason: 'never seen since this daemon started' })
  })

  it('a peer connected but without a heartbeat yet is offline', () => {
    const t = table()
    const state = t.markConnected(idB, '/ip4/10.0.0.2/tcp/7070', T0)!
    expect(state).toMatchObject({ connected: true, connectedSince: T0, remoteAddr: '/ip4/10.0.0.2/tcp/7070' })
    expect(t.liveness(state, T0 + 10)).toEqual({ liveness: 'offline', reason: 'connected, no heartbeat received yet' })
  })

  it('a recent heartbeat makes the peer online', () => {
    const t = table()
    t.markConnected(idB, undefined, T0)
    const state = t.recordHeartbeat(idB, hb(1), T0 + 100)!
    expect(state.lastHeartbeatAt).toBe(T0 + 100)
    expect(t.liveness(state, T0 + 100)).toEqual({ liveness: 'online' })
    expect(t.liveness(state, T0 + 100 + OFFLINE_AFTER_MS)).toEqual({ liveness: 'online' })
  })

  it('a heartbeat with healthy:false makes the peer degraded', () => {
    const t = table()
    t.markConnected(idB, undefined, T0)
    const state = t.recordHeartbeat(idB, hb(1, { healthy: false }), T0)!
    expect(t.liveness(state, T0 + 500)).toEqual({ liveness: 'degraded', reason: 'the node reports a failing probe' })
  })

  it('a heartbeat older than offlineAfterMs makes the peer offline, even while connected', () => {
    const t = table()
    t.markConnected(idB, undefined, T0)
    const state = t.recordHeartbeat(idB, hb(1), T0)!
    expect(t.liveness(state, T0 + OFFLINE_AFTER_MS + 1)).toEqual({ liveness: 'offline', reason: 'no heartbeat for 3.0 s' })
    expect(t.liveness(state, T0 + 12_345).reason).toBe('no heartbeat for 12.3 s')
  })

  it('a disconnected peer whose last heartbeat came before the disconnect is offline even if that heartbeat is recent', () => {
    const t = table()
    t.markConnected(idB, undefined, T0)
    t.recordHeartbeat(idB, hb(1), T0 + 900)
    const state = t.markDisconnected(idB, T0 + 1000)!
    expect(state.connected).toBe(false)
    expect(state.connectedSince).toBeUndefined()
    expect(state.disconnectedAt).toBe(T0 + 1000)
    expect(t.liveness(state, T0 + 1500)).toEqual({ liveness: 'offline', reason: 'connection lost 0.5 s ago' })
  })

  it('without a heartbeat over the direct connection to read send times by: one arriving within the grace period after the disconnect (in flight) does not keep the peer online', () => {
    const t = table()
    t.markConnected(idB, undefined, T0)
    t.recordHeartbeat(idB, hb(1), T0 + 900)
    t.markDisconnected(idB, T0 + 1000)
    const state = t.recordHeartbeat(idB, hb(2), T0 + 1000 + RELAYED_HEARTBEAT_GRACE_MS - 1)!
    expect(state.lastHeartbeat?.seq).toBe(2n)
    expect(t.liveness(state, T0 + 1300).liveness).toBe('offline')
  })

  it('without a heartbeat over the direct connection to read send times by: one arriving well after the disconnect (relayed by another node) makes the peer online', () => {
    const t = table()
    t.markConnected(idB, undefined, T0)
    t.recordHeartbeat(idB, hb(1), T0 + 900)
    t.markDisconnected(idB, T0 + 1000)
    const state = t.recordHeartbeat(idB, hb(2), T0 + 2000)!
    expect(t.liveness(state, T0 + 2100)).toEqual({ liveness: 'online' })
  })

  describe('after the direct connection closed, a heartbeat counts if it was sent after the close, not if it arrived after it', () => {
    /** Transit over the direct connection in these tests. */
    const TRANSIT_MS = 3
    const CLOSE_AT = T0 + 10_000

    /**
     * aitbc1, whose clock reads `skewMs` ahead of ours, heartbeats over the direct connection every
     * second up to the last one before the close, which then comes at CLOSE_AT (our clock).
     */
    function closedAfterDirectHeartbeats (skewMs: number): PeerTable {
      const t = table()
      t.markConnected(idB, undefined, T0)
      for (let seq = 1; seq <= 10; seq++) {
        const sentAt = T0 + (seq - 1) * 1000 - 50 // ours
        t.recordHeartbeat(idB, hb(seq, { sentAtMs: sentAt + skewMs }), sentAt + TRANSIT_MS, true)
      }
      t.markDisconnected(idB, CLOSE_AT)
      return t
    }

    // Within trust.clockSkewMs (60 s by default) either way, and none.
    for (const skewMs of [0, 7_000, -7_000]) {
      const clocks = skewMs === 0 ? 'same clocks' : `aitbc1's clock ${Math.abs(skewMs) / 1000} s ${skewMs > 0 ? 'ahead' : 'behind'}`
      it(`${clocks}: one sent before the close and relayed late (queued at a busy node) leaves the peer offline`, () => {
        const t = closedAfterDirectHeartbeats(skewMs)
        // Sent 10 ms before the close, arriving through aitbc2 400 ms after it.
        const state = t.recordHeartbeat(idB, hb(11, { sentAtMs: CLOSE_AT - 10 + skewMs }), CLOSE_AT + 400)!
        expect(state.lastHeartbeat?.seq).toBe(11n)
        expect(t.liveness(state, CLOSE_AT + 450)).toEqual({ liveness: 'offline', reason: 'connection lost 0.5 s ago' })
        // And it stays offline: nothing newer comes.
        expect(t.liveness(state, CLOSE_AT + 2500).liveness).toBe('offline')
      })

      it(`${clocks}: one sent after the close (relayed by another node) keeps the peer online, however soon it arrives`, () => {
        const t = closedAfterDirectHeartbeats(skewMs)
        // Arriving before the old arrival grace would have let it count.
        const sentAt = CLOSE_AT + SENT_AFTER_CLOSE_MARGIN_MS + 50
        expect(sentAt + TRANSIT_MS).toBeLessThan(CLOSE_AT + RELAYED_HEARTBEAT_GRACE_MS)
        const state = t.recordHeartbeat(idB, hb(11, { sentAtMs: sentAt + skewMs }), sentAt + TRANSIT_MS)!
        expect(t.liveness(state, sentAt + 100)).toEqual({ liveness: 'online' })
      })
    }

    it('one sent within the margin after the close does not count yet; the next one does', () => {
      const t = closedAfterDirectHeartbeats(0)
      t.recordHeartbeat(idB, hb(11, { sentAtMs: CLOSE_AT + SENT_AFTER_CLOSE_MARGIN_MS - TRANSIT_MS - 1 }), CLOSE_AT + 400)
      expect(t.liveness(t.get('aitbc1')!, CLOSE_AT + 450).liveness).toBe('offline')
      t.recordHeartbeat(idB, hb(12, { sentAtMs: CLOSE_AT + 1000 }), CLOSE_AT + 1010)
      expect(t.liveness(t.get('aitbc1')!, CLOSE_AT + 1050).liveness).toBe('online')
    })

    it('a heartbeat handled late that came over the direct connection itself was sent before the close too', () => {
      const t = closedAfterDirectHeartbeats(0)
      const state = t.recordHeartbeat(idB, hb(11, { sentAtMs: CLOSE_AT - 5 }), CLOSE_AT + 600, true)!
      expect(t.liveness(state, CLOSE_AT + 650).liveness).toBe('offline')
    })

    it('the offset is the least transit of recent direct heartbeats: one slow heartbeat does not move it', () => {
      const t = closedAfterDirectHeartbeats(0)
      t.markConnected(idB, undefined, CLOSE_AT + 100)
      // One held up 700 ms on its way, then the close: a relayed heartbeat sent just before it still does not count.
      t.recordHeartbeat(idB, hb(11, { sentAtMs: CLOSE_AT + 200 }), CLOSE_AT + 900, true)
      t.markDisconnected(idB, CLOSE_AT + 1200)
      const state = t.recordHeartbeat(idB, hb(12, { sentAtMs: CLOSE_AT + 1190 }), CLOSE_AT + 1600)!
      expect(t.liveness(state, CLOSE_AT + 1650).liveness).toBe('offline')
    })

    it('a step of the sender\'s clock forward is followed at once: a heartbeat from before the close does not look sent after it', () => {
      const t = closedAfterDirectHeartbeats(0)
      t.markConnected(idB, undefined, CLOSE_AT + 100)
      // aitbc1's clock jumps 5 s ahead; one direct heartbeat shows it, then the close.
      t.recordHeartbeat(idB, hb(11, { sentAtMs: CLOSE_AT + 200 + 5000 }), CLOSE_AT + 200 + TRANSIT_MS, true)
      t.markDisconnected(idB, CLOSE_AT + 1200)
      const state = t.recordHeartbeat(idB, hb(12, { sentAtMs: CLOSE_AT + 1190 + 5000 }), CLOSE_AT + 1600)!
      expect(t.liveness(state, CLOSE_AT + 1650).liveness).toBe('offline')
    })

    it('a step of the sender\'s clock back is followed once its last CLOCK_OFFSET_SAMPLES direct heartbeats all show it', () => {
      const t = closedAfterDirectHeartbeats(0)
      t.markConnected(idB, undefined, CLOSE_AT + 100)
      // aitbc1's clock steps 5 s back: until the older offsets are gone, its heartbeats look sent 5 s earlier.
      let closeAt = CLOSE_AT
      for (let i = 1; i <= CLOCK_OFFSET_SAMPLES; i++) {
        closeAt = CLOSE_AT + i * 1000
        t.recordHeartbeat(idB, hb(10 + i, { sentAtMs: closeAt - 50 - 5000 }), closeAt - 50 + TRANSIT_MS, true)
      }
      t.markDisconnected(idB, closeAt)
      const state = t.recordHeartbeat(idB, hb(10 + CLOCK_OFFSET_SAMPLES + 1, { sentAtMs: closeAt + 500 - 5000 }), closeAt + 500 + TRANSIT_MS)!
      expect(t.liveness(state, closeAt + 550).liveness).toBe('online')
    })
  })

  it('a peer that reconnects is judged by its heartbeats again', () => {
    const t = table()
    t.markConnected(idB, undefined, T0)
    t.recordHeartbeat(idB, hb(1), T0 + 900)
    t.markDisconnected(idB, T0 + 1000)
    t.markConnected(idB, undefined, T0 + 1100)
    const state = t.get('aitbc1')!
    expect(state.connectedSince).toBe(T0 + 1100)
    expect(t.liveness(state, T0 + 1200)).toEqual({ liveness: 'online' })
  })

  it('markConnected on an already connected peer keeps connectedSince', () => {
    const t = table()
    t.markConnected(idB, '/ip4/10.0.0.2/tcp/7070', T0)
    const state = t.markConnected(idB, '/ip4/10.0.0.2/tcp/50000', T0 + 5000)!
    expect(state.connectedSince).toBe(T0)
    expect(state.remoteAddr).toBe('/ip4/10.0.0.2/tcp/50000')
  })

  it('recordHeartbeat ignores an older or repeated seq from the same run', () => {
    const t = table()
    t.recordHeartbeat(idB, hb(5, { blockHeight: 500 }), T0)
    t.recordHeartbeat(idB, hb(4, { blockHeight: 400 }), T0 + 100)
    t.recordHeartbeat(idB, hb(5, { blockHeight: 450 }), T0 + 200)
    const state = t.get('aitbc1')!
    expect(state.lastHeartbeat).toMatchObject({ seq: 5n, blockHeight: 500 })
    expect(state.lastHeartbeatAt).toBe(T0)
    // So a stale heartbeat does not refresh liveness either.
    expect(t.liveness(state, T0 + OFFLINE_AFTER_MS + 150).liveness).toBe('offline')
  })

  it('recordHeartbeat ignores a heartbeat from an earlier run (older startedAtMs) even with a higher seq', () => {
    const t = table()
    t.recordHeartbeat(idB, hb(2, { startedAtMs: T0 - 1000, blockHeight: 700 }), T0)
    t.recordHeartbeat(idB, hb(99, { startedAtMs: T0 - 50_000, blockHeight: 600 }), T0 + 100)
    const state = t.get('aitbc1')!
    expect(state.lastHeartbeat).toMatchObject({ seq: 2n, startedAtMs: T0 - 1000, blockHeight: 700 })
    expect(state.lastHeartbeatAt).toBe(T0)
  })

  it('recordHeartbeat accepts a restarted sender (newer startedAtMs) even though its seq starts over', () => {
    const t = table()
    t.recordHeartbeat(idB, hb(50, { startedAtMs: T0 - 50_000 }), T0)
    const state = t.recordHeartbeat(idB, hb(1, { startedAtMs: T0 - 10 }), T0 + 100)!
    expect(state.lastHeartbeat).toMatchObject({ seq: 1n, startedAtMs: T0 - 10 })
    expect(state.lastHeartbeatAt).toBe(T0 + 100)
  })

  it('highestPeerHeight picks the highest height among peers that are not offline', () => {
    const t = table()
    t.markConnected(idA, undefined, T0)
    t.markConnected(idB, undefined, T0)
    t.markConnected(idC, undefined, T0)
    t.recordHeartbeat(idA, hb(1, { blockHeight: 900 }), T0 + 2000)
    t.recordHeartbeat(idB, hb(1, { blockHeight: 950, healthy: false }), T0 + 2000)
    t.recordHeartbeat(idC, hb(1, { blockHeight: 5000 }), T0) // stale by T0 + 4000
    expect(t.highestPeerHeight(T0 + 4000)).toEqual({ name: 'aitbc1', height: 950 })
    // While aitbc2's heartbeat is still fresh it counts.
    expect(t.highestPeerHeight(T0 + 2500)).toEqual({ name: 'aitbc2', height: 5000 })
  })

  it('highestPeerHeight ignores a disconnected peer and peers without a height', () => {
    const t = table()
    t.markConnected(idA, undefined, T0)
    t.markConnected(idB, undefined, T0)
    t.recordHeartbeat(idA, hb(1, { blockHeight: 1200 }), T0)
    t.recordHeartbeat(idB, hb(1), T0) // no blockHeight
    t.markDisconnected(idA, T0 + 100)
    expect(t.highestPeerHeight(T0 + 200)).toBeUndefined()
  })

  it('highestPeerHeight is undefined when no peer was ever heard from', () => {
    expect(table().highestPeerHeight(T0)).toBeUndefined()
  })
})
