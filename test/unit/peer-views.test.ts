import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import type { MeshLibp2p } from '../../src/mesh/libp2p.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import { PeerViews } from '../../src/mesh/peer-views.js'

describe('peer views', () => {
  it('show each peer as it was at one moment: a connection closing during the latency ping does not pair "disconnected" with the verdict from before', async () => {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const peers = new PeerTable([{ name: 'aitbc2', role: 'follower', peerId, addr: `/ip4/10.0.0.3/tcp/7070/p2p/${peerId.toString()}` }], 3000)
    const now = Date.now()
    peers.markConnected(peerId, '/ip4/10.0.0.3/tcp/7070', now - 60_000)
    peers.recordHeartbeat(peerId, { seq: 1n, startedAtMs: now - 60_000, sentAtMs: now - 500, healthy: true, p2pConnections: 2 }, now - 500, true)
    // The ping over the connection answers only after the connection closed (a dead link closed meanwhile).
    const libp2p = {
      peerId: self,
      getMultiaddrs: () => [],
      getConnections: () => [],
      services: {
        ping: {
          ping: async () => {
            await new Promise(resolve => setTimeout(resolve, 20))
            peers.markDisconnected(peerId)
            return 5
          }
        }
      }
    } as unknown as MeshLibp2p
    const views = new PeerViews({ node: { name: 'aitbc', role: 'genesis' }, libp2p, peers, startedAt: now - 60_000 })
    const view = (await views.all()).find(v => v.name === 'aitbc2')!
    // The verdict was taken while connected: the view says connected, online, with the connection's address.
    expect(view).toMatchObject({ connected: true, status: 'online', addrs: ['/ip4/10.0.0.3/tcp/7070'] })
    // The next view sees the close: disconnected, and offline until a heartbeat sent after it arrives.
    const after = (await views.all()).find(v => v.name === 'aitbc2')!
    expect(after).toMatchObject({ connected: false, status: 'offline' })
    expect(after.reason).toMatch(/connection lost/)
  })
})
