import { generateKeyPair } from '@libp2p/crypto/keys'
import { RPC } from '@libp2p/gossipsub/message'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/config.js'
import { ConfigError } from '../../src/errors.js'
import { AllowlistGater } from '../../src/mesh/gater.js'
import { gossipOptions, signatureMessageId } from '../../src/mesh/gossip.js'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/mesh/libp2p.js'

const TOPIC = '/aitbc-mesh/test/1.0.0'
const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')

/** A gossipsub message as the wire carries it, signed the way gossipsub signs (StrictSign). */
async function signedRpc (key: PrivateKey, data: string, seqno: bigint): Promise<RPC.Message> {
  const from = peerIdFromPrivateKey(key).toMultihash().bytes
  const seqnoBytes = new Uint8Array(8)
  new DataView(seqnoBytes.buffer).setBigUint64(0, seqno)
  const unsigned: RPC.Message = { from, data: new TextEncoder().encode(data), seqno: seqnoBytes, topic: TOPIC }
  const bytes = RPC.Message.encode(unsigned)
  const toSign = new Uint8Array(SIGN_PREFIX.length + bytes.length)
  toSign.set(SIGN_PREFIX)
  toSign.set(bytes, SIGN_PREFIX.length)
  return { ...unsigned, signature: await key.sign(toSign) }
}

/** Gossipsub's own check of one received message (signature, then the seen caches). */
type Validate = (from: PeerId, msg: RPC.Message) => Promise<{ code: string }>

describe('gossip message ids', () => {
  let key: PrivateKey
  let node: MeshLibp2p
  let validate: Validate
  let relay: PeerId

  beforeAll(async () => {
    key = await generateKeyPair('Ed25519')
    const own = await generateKeyPair('Ed25519')
    relay = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    node = await createMeshLibp2p({ privateKey: own, listen: [], gater: new AllowlistGater([relay]) })
    await node.start()
    node.services.pubsub.subscribe(TOPIC)
    const pubsub = node.services.pubsub as unknown as { validateReceivedMessage: Validate }
    validate = pubsub.validateReceivedMessage.bind(pubsub)
  })

  afterAll(async () => { await node.stop() })

  it('copies of a signed message share an id; another message, or no signature, does not', async () => {
    const a = await signedRpc(key, 'heartbeat 1', 1n)
    const b = await signedRpc(key, 'heartbeat 2', 2n)
    expect(signatureMessageId({ ...a, data: a.data?.slice() })).toBe(signatureMessageId(a))
    expect(signatureMessageId(a)).not.toBe(signatureMessageId(b))
    expect(signatureMessageId({ ...a, signature: undefined })).toBe('')
  })

  it('a forged copy that carries a real signature is refused before the real message, and cannot shadow it', async () => {
    const real = await signedRpc(key, 'real agent change', 10n)
    const forged = { ...real, data: new TextEncoder().encode('forged agent change') }
    expect((await validate(relay, forged)).code).toBe('invalid')
    expect((await validate(relay, real)).code).toBe('valid')
    // Later copies, and the forgery again, are dropped as copies of the verified message.
    expect((await validate(relay, { ...real })).code).toBe('duplicate')
    expect((await validate(relay, forged)).code).toBe('duplicate')
  })

  it('an unsigned message is refused each time, never taken as a copy', async () => {
    const real = await signedRpc(key, 'unsigned', 20n)
    const unsigned = { ...real, signature: undefined }
    expect((await validate(relay, unsigned)).code).toBe('invalid')
    expect((await validate(relay, unsigned)).code).toBe('invalid')
  })

  it('the mesh degree scales gossipsub\'s bounds as gossipsub requires; 6 gives its defaults', () => {
    expect(gossipOptions({ meshDegree: 6, floodPublish: true })).toMatchObject({ D: 6, Dlo: 4, Dhi: 12, Dlazy: 6, Dout: 2, Dscore: 4 })
    for (let D = 2; D <= 16; D++) {
      const o = gossipOptions({ meshDegree: D, floodPublish: false })
      expect(o.Dlo! <= D && D <= o.Dhi! && o.Dout! < o.Dlo! && o.Dout! <= D / 2 && o.Dscore! <= D, `D=${D}: ${JSON.stringify(o)}`).toBe(true)
    }
  })

  it('gossip settings out of range are refused with the field and the range', () => {
    const base = 'node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc-mesh\n'
    expect(parseConfig(base, '/etc/aitbc/mesh.yaml', {}).gossip).toEqual({ meshDegree: 6, floodPublish: true, antiEntropyIntervalMs: 15000 })
    expect(() => parseConfig(base + 'gossip: { meshDegree: 1 }\n', '/etc/aitbc/mesh.yaml', {})).toThrow(ConfigError)
    expect(() => parseConfig(base + 'gossip: { meshDegree: 1 }\n', '/etc/aitbc/mesh.yaml', {})).toThrow(/gossip\.meshDegree.*from 2 to 16/)
    expect(() => parseConfig(base + 'gossip: { antiEntropyIntervalMs: 10 }\n', '/etc/aitbc/mesh.yaml', {})).toThrow(/gossip\.antiEntropyIntervalMs/)
    expect(() => parseConfig(base + 'gossip: { fanout: 3 }\n', '/etc/aitbc/mesh.yaml', {})).toThrow(/fanout/)
  })
})
