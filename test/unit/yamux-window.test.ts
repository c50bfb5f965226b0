import type { MultiaddrConnection, Stream } from '@libp2p/interface'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { yamux } from '@libp2p/yamux'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { waitFor } from '../../src/devmesh/local-mesh.js'

const YAMUX_HEADER_BYTES = 12

/**
 * The yamux receive window as patched (patches/@libp2p+yamux+*.patch): a window update goes out
 * once half of the window is consumed, not after every data frame, so a stream of small gossip
 * frames does not cost a frame back for each one.
 */
describe('yamux receive window', () => {
  /** A muxer pair; counts the bytes the receiving side writes back. */
  async function pair (): Promise<{ sender: Stream, received: () => number, bytesBack: () => number, close: () => Promise<void> }> {
    const [outbound, inbound] = multiaddrConnectionPair()
    let bytesBack = 0
    const send = inbound.send.bind(inbound) as MultiaddrConnection['send']
    inbound.send = (data: Uint8Array | Uint8ArrayList) => {
      bytesBack += data.byteLength
      return send(data)
    }
    const client = yamux()().createStreamMuxer(outbound)
    const server = yamux()().createStreamMuxer(inbound)
    let received = 0
    server.addEventListener('stream', evt => {
      evt.detail.addEventListener('message', msg => { received += msg.data.byteLength })
    })
    const sender = await client.createStream()
    return {
      sender,
      received: () => received,
      bytesBack: () => bytesBack,
      close: async () => { await Promise.all([client.close(), server.close()]) }
    }
  }

  it('sends no window update per small frame received', async () => {
    const { sender, received, bytesBack, close } = await pair()
    try {
      // one at a time, as gossip frames go out: each is its own data frame
      const frames = 300
      for (let i = 0; i < frames; i++) {
        sender.send(new Uint8Array(100).fill(i % 256))
        await waitFor(`frame ${i} received`, () => received() === (i + 1) * 100, 5000, 1)
      }
      // the stream's opening ACK and at most a few updates; before, one 12-byte update per frame
      expect(bytesBack()).toBeLessThan(5 * YAMUX_HEADER_BYTES)
    } finally {
      await close()
    }
  })

  it('still refills the window: 4 MiB written faster than the 256 KiB initial window passes through', async () => {
    const { sender, received, bytesBack, close } = await pair()
    try {
      const chunk = new Uint8Array(16 * 1024).fill(7)
      const total = 4 * 1024 * 1024
      for (let sent = 0; sent < total; sent += chunk.byteLength) {
        if (!sender.send(chunk)) await new Promise(resolve => { sender.addEventListener('drain', resolve, { once: true }) })
      }
      await waitFor('4 MiB received', () => received() === total, 15000)
      expect(bytesBack()).toBeGreaterThan(YAMUX_HEADER_BYTES)
    } finally {
      await close()
    }
  })
})
