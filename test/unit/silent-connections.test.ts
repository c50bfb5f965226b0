import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { PeerTable } from '../../src/mesh/peer-table.js'
import { SilentConnectionCloser, type SilentConnectionsNetwork } from '../../src/mesh/silent-connections.js'

const OFFLINE_AFTER_MS = 3000

/** Connected peers: aitbc1 heartbeating, aitbc2 and aitbc3 silent past the window, aitbc4 connected just now and not heard from yet. */
async function setup (answers: Record<string, 'pong' | 'no answer'>): Promise<{ closer: SilentConnectionCloser, hungUp: string[], pinged: string[], ids: Map<string, PeerId> }> {
  const ids = new Map<string, PeerId>()
  for (const name of ['aitbc1', 'aitbc2', 'aitbc3', 'aitbc4']) ids.set(name, peerIdFromPrivateKey(await generateKeyPair('Ed25519')))
  const peers = new PeerTable([...ids].map(([name, peerId]) => ({ name, role: 'follower' as const, peerId, addr: `/ip4/10.0.0.1/tcp/7070/p2p/${peerId.toString()}` })), OFFLINE_AFTER_MS)
  const now = Date.now()
  for (const [name, id] of ids) {
    if (name === 'aitbc4') {
      peers.markConnected(id, undefined, now - OFFLINE_AFTER_MS + 500)
      continue
    }
    peers.markConnected(id, undefined, now - 60_000)
    const heardAt = name === 'aitbc1' ? now - 500 : now - OFFLINE_AFTER_MS - 2000
    peers.recordHeartbeat(id, { seq: 1n, startedAtMs: now - 60_000, sentAtMs: heardAt, healthy: true, p2pConnections: 3 }, heardAt)
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
          // A dead link: no answer until the closer's timeout aborts the ping.
          return await new Promise<number>((_resolve, reject) => { options?.signal?.addEventListener('abort', () => { reject(options.signal!.reason) }) })
        }
      }
    },
    hangUp: async peerId => { hungUp.push(nameOf(peerId)) }
  }
  const closer = new SilentConnectionCloser({ libp2p, peers, offlineAfterMs: OFFLINE_AFTER_MS, log: pino({ level: 'silent' }), pingTimeoutMs: 50 })
  closer.start()
  return { closer, hungUp, pinged, ids }
}

describe('silent connection closer', () => {
  it('closes only a connection whose peer is silent past the offline window and does not answer a ping', async () => {
    const { closer, hungUp, pinged } = await setup({ aitbc1: 'no answer', aitbc2: 'no answer', aitbc3: 'pong', aitbc4: 'no answer' })
    try {
      await closer.check()
      // aitbc1 heartbeats (however slow its pings would be), aitbc4 has only just connected: neither is pinged.
      expect(pinged.sort()).toEqual(['aitbc2', 'aitbc3'])
      expect(hungUp).toEqual(['aitbc2'])
    } finally {
      closer.stop()
    }
  })

  it('a stopped closer closes nothing, even for a ping that fails after the stop', async () => {
    const { closer, hungUp } = await setup({ aitbc1: 'pong', aitbc2: 'no answer', aitbc3: 'pong', aitbc4: 'pong' })
    const pass = closer.check()
    closer.stop()
    await pass
    expect(hungUp).toEqual([])
  })
})
