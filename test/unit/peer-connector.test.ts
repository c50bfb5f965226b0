import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { REDIAL_INITIAL_DELAY_MS } from '../../src/constants.js'
import type { MeshLibp2p } from '../../src/mesh/libp2p.js'
import { PeerConnector } from '../../src/mesh/peer-connector.js'
import { PeerTable } from '../../src/mesh/peer-table.js'

let idB: PeerId

beforeAll(async () => {
  idB = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
})

afterEach(() => {
  vi.useRealTimers()
})

/** A connector for aitbc1 over a libp2p whose dials wait until the test fails them. */
function connector (): { connector: PeerConnector, dials: Array<(err: Error) => void>, connect: () => void } {
  const dials: Array<(err: Error) => void> = []
  let connections: unknown[] = []
  const libp2p = {
    dial: async () => await new Promise((_resolve, reject) => { dials.push(reject) }),
    getConnections: () => connections
  } as unknown as MeshLibp2p
  const peers = new PeerTable([{ name: 'aitbc1', role: 'follower', peerId: idB, addr: `/ip4/10.0.0.2/tcp/7070/p2p/${idB.toString()}` }], 3000)
  return { connector: new PeerConnector(libp2p, peers, pino({ level: 'silent' })), dials, connect: () => { connections = [{}] } }
}

describe('PeerConnector', () => {
  it('a peer heard from (relayed) while its redial waits out the backoff is dialled at once; a dial in flight or a connection is left alone', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const { connector: c, dials, connect } = connector()
    c.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(dials).toHaveLength(1)
    // Heard from while that dial is in flight: no second one.
    c.heardFrom(idB)
    await vi.advanceTimersByTimeAsync(0)
    expect(dials).toHaveLength(1)

    dials[0]!(new Error('connection refused'))
    await vi.advanceTimersByTimeAsync(REDIAL_INITIAL_DELAY_MS)
    // Still waiting out the backoff (longer than the initial delay after a failed dial)...
    expect(dials).toHaveLength(1)
    // ...until the peer is heard from: it is up.
    c.heardFrom(idB)
    await vi.advanceTimersByTimeAsync(0)
    expect(dials).toHaveLength(2)

    // Connected meanwhile (by the peer's own dial): nothing to do.
    dials[1]!(new Error('connection refused'))
    await vi.advanceTimersByTimeAsync(0)
    connect()
    c.heardFrom(idB)
    await vi.advanceTimersByTimeAsync(0)
    expect(dials).toHaveLength(2)
    c.stop()
  })
})
