import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'

/**
 * Ed25519 verification as patched (patches/@libp2p+crypto+*.patch): each public key's KeyObject is
 * built once and kept in a bounded cache. A cached key must never verify another key's signature.
 */
describe('ed25519 verification with cached public keys', () => {
  it('verifies each key\'s own signatures only, before and after the cache evicts it', async () => {
    const message = new TextEncoder().encode('heartbeat')
    const keys: PrivateKey[] = []
    for (let i = 0; i < 1100; i++) keys.push(await generateKeyPair('Ed25519'))
    const [first, second] = [keys[0]!, keys[1]!]
    const firstSignature = await first.sign(message)
    expect(await first.publicKey.verify(message, firstSignature)).toBe(true)
    expect(await second.publicKey.verify(message, firstSignature)).toBe(false)
    expect(await first.publicKey.verify(new TextEncoder().encode('heartbeaT'), firstSignature)).toBe(false)
    // More keys than the cache holds: the first key's entry is evicted, then built again.
    for (const key of keys.slice(2)) expect(await key.publicKey.verify(message, await key.sign(message))).toBe(true)
    expect(await first.publicKey.verify(message, firstSignature)).toBe(true)
    expect(await keys[1099]!.publicKey.verify(message, firstSignature)).toBe(false)
  })
})
