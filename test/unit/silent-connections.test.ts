import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { PeerTable } from '../../src/mesh/peer-table.js'
import { SilentConnectionCloser, type SilentConnectionsNetwork } from '../../src/mesh/silent-connections.js'

const OFFLINE_AFTER_MS = 3000

/**
 * Connected peers: aitbc1 heard over its connection just now; aitbc2 and aitbc3 silent for longer
 * than two windows; aitbc4 connected just now, not heard from yet; aitbc5 heard just now, but only
 * through another node's relay (its own connection silent: a cut link).
 */
async function setup (answers: Record<string, 'pong' | 'slow pong' | 'no answer'>, localStallMs?: (now: number) => number): Promise<{ closer: SilentConnectionCloser, hungUp: string[], pinged: string[], ids: Map<string, PeerId> }> {
  const ids = new Map<string, PeerId>()
  for (const name of ['aitbc1', 'aitbc2', 'aitbc3', 'aitbc4', 'aitbc5']) ids.set(name, peerIdFromPrivateKey(await generateKeyPair('Ed25519')))
  const peers = new PeerTable([...ids].map(([name, peerId]) => ({ name, role: 'follower' as const, peerId, addr: `/ip4/10.0.0.1/tcp/7070/p2p/${peerId.toString()}` })), OFFLINE_AFTER_MS)
  const now = Date.now()
  const beat = (id: PeerId, at: number, direct: boolean, seq: bigint): void => {
    peers.recordHeartbeat(id, { seq, startedAtMs: now - 60_000, sentAtMs: at, healthy: true, p2pConnections: 3 }, at, direct)
  }
  for (const [name, id] of ids) {
    if (name === 'aitbc4') {
      peers.markConnected(id, undefined, now - 1000)
      continue
    }
    peers.markConnected(id, undefined, now - 60_000)
    const silentSince = now - 2 * OFFLINE_AFTER_MS - 2000
    beat(id, name === 'aitbc1' ? now - 500 : silentSince, true, 1n)
    if (name === 'aitbc5') beat(id, now - 500, false, 2n)
  }
  const nameOf = (peerId: PeerId): string => [...ids].find(([, id]) => id.equals(peerId))![0]
  const hungUp: string[] = []
  const pinged: string[] = []
  const libp2p: SilentConnectionsNetwork = {
    getConnections: () => [{}],
    services: {
      ping: {
        ping: async (peerId, options) => {
          pinged.push(nameOf(peerId))
          if (answers[nameOf(peerId)] === 'pong') return 1
          if (answers[nameOf(peerId)] === 'slow pong') {
            // Answers after 300 ms: past the 50 ms timeout, unless a stall stretches it.
            return await new Promise<number>((resolve, reject) => {
              const timer = setTimeout(() => { resolve(300) }, 300)
              options?.signal?.addEventListener('abort', () => { clearTimeout(timer); reject(options.signal!.reason) })
            })
          }
          // A dead link: no answer until the closer's timeout aborts the ping.
          return await new Promise<number>((_resolve, reject) => { options?.signal?.addEventListener('abort', () => { reject(options.signal!.reason) }) })
        }
      }
    },
    hangUp: async peerId => { hungUp.push(nameOf(peerId)) }
  }
  const closer = new SilentConnectionCloser({ libp2p, peers, offlineAfterMs: OFFLINE_AFTER_MS, log: pino({ level: 'silent' }), pingTimeoutMs: 50, ...(localStallMs != null ? { localStallMs } : {}) })
  closer.start()
  return { closer, hungUp, pinged, ids }
}

describe('silent connection closer', () => {
  it('closes only a connection no heartbeat came over for two windows and that does not answer a ping, even if the node is heard through a relay', async () => {
    const { closer, hungUp, pinged } = await setup({ aitbc1: 'no answer', aitbc2: 'no answer', aitbc3: 'pong', aitbc4: 'no answer', aitbc5: 'no answer' })
    try {
      await closer.check()
      // aitbc1 heartbeats over its connection (however slow its pings would be), aitbc4 has only just connected: neither is pinged.
      expect(pinged.sort()).toEqual(['aitbc2', 'aitbc3', 'aitbc5'])
      // aitbc3 answers; aitbc5 is alive through a relay, but its own connection is dead.
      expect(hungUp.sort()).toEqual(['aitbc2', 'aitbc5'])
    } finally {
      closer.stop()
    }
  })

  it('allows this daemon\'s own stall on top: what a stalled loop has not read is not silence on the link', async () => {
    // Silent for 8 s; two windows stretched by a 2 s stall are 10 s.
    const stalled = await setup({ aitbc1: 'no answer', aitbc2: 'no answer', aitbc3: 'no answer', aitbc4: 'no answer', aitbc5: 'no answer' }, () => 2000)
    try {
      await stalled.closer.check()
      expect(stalled.pinged).toEqual([])
      expect(stalled.hungUp).toEqual([])
    } finally {
      stalled.closer.stop()
    }
    // A 500 ms stall: two windows are 7 s, so the silent ones are pinged, and the ping may take 50 + 500 ms.
    const slow = await setup({ aitbc1: 'no answer', aitbc2: 'slow pong', aitbc3: 'no answer', aitbc4: 'no answer', aitbc5: 'slow pong' }, () => 500)
    try {
      await slow.closer.check()
      expect(slow.pinged.sort()).toEqual(['aitbc2', 'aitbc3', 'aitbc5'])
      expect(slow.hungUp).toEqual(['aitbc3'])
    } finally {
      slow.closer.stop()
    }
  })

  it('a stopped closer closes nothing, even for a ping that fails after the stop', async () => {
    const { closer, hungUp } = await setup({ aitbc1: 'pong', aitbc2: 'no answer', aitbc3: 'pong', aitbc4: 'pong', aitbc5: 'pong' })
    const pass = closer.check()
    closer.stop()
    await pass
    expect(hungUp).toEqual([])
  })
})
