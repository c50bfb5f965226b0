import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/errors.js'
import { ed25519PublicKeyOf, ensureIdentity, loadIdentity } from '../../src/mesh/identity.js'
import { tempDir } from '../helpers.js'

/** libp2p's Ed25519 key file: 4 bytes of protobuf framing, the 32-byte seed, then the 32-byte public key. */
const SEED_AT = 4
const PUBLIC_AT = 36

function loadError (file: string): ConfigError {
  try {
    loadIdentity(file)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error(`expected loadIdentity to refuse ${file}`)
}

describe('identity key: the public half must match the private key', () => {
  it('derives the public key libp2p derives from the seed', async () => {
    const key = await generateKeyPair('Ed25519')
    expect(Buffer.from(ed25519PublicKeyOf(key.raw.subarray(0, 32))).equals(Buffer.from(key.publicKey.raw))).toBe(true)
  })

  it('loads an intact key with the peer id of its private key', async () => {
    const file = join(tempDir(), 'identity.key')
    const { identity } = await ensureIdentity(file)
    expect(readFileSync(file)).toHaveLength(68)
    expect(loadIdentity(file).peerId.toString()).toBe(identity.peerId.toString())
  })

  it('refuses a flipped bit anywhere in the public half, naming the file, both peer ids and the fix', async () => {
    const file = join(tempDir(), 'identity.key')
    const { identity } = await ensureIdentity(file)
    const original = readFileSync(file)
    for (let offset = PUBLIC_AT; offset < PUBLIC_AT + 32; offset++) {
      const damaged = Buffer.from(original)
      damaged[offset]! ^= 1 << (offset % 8)
      writeFileSync(file, damaged, { mode: 0o600 })
      const err = loadError(file)
      expect(err.file).toBe(file)
      expect(err.field).toBe('identity')
      // The peer id the damaged file would have run under is not this node's.
      const claimed = /its public half \(peer id (\w+)\)/.exec(err.detail)?.[1]
      expect(claimed, `offset ${offset}`).toBeDefined()
      expect(claimed).not.toBe(identity.peerId.toString())
      expect(err.detail).toContain(`does not match its private key (peer id ${identity.peerId.toString()})`)
      expect(err.fix).toBe(`restore ${file} from a backup of this node; a new key (move this one aside, then \`aitbc-mesh init\`) gives a new peer id, and every other node's config must then be updated (\`aitbc-mesh config add-peer\` there)`)
      expect(err.message).toBe(`${file}: identity: ${err.detail}; fix: ${err.fix}`)
    }
  })

  it('refuses a flipped bit in the private half', async () => {
    const file = join(tempDir(), 'identity.key')
    const { identity } = await ensureIdentity(file)
    const damaged = Buffer.from(readFileSync(file))
    damaged[SEED_AT + 17]! ^= 0x10
    writeFileSync(file, damaged, { mode: 0o600 })
    expect(loadError(file).detail).toContain(`its public half (peer id ${identity.peerId.toString()}) does not match its private key`)
  })

  it('refuses a key file whose halves come from two different keys', async () => {
    const file = join(tempDir(), 'identity.key')
    const [a, b] = [await generateKeyPair('Ed25519'), await generateKeyPair('Ed25519')]
    const spliced = Buffer.from(privateKeyToProtobuf(a))
    Buffer.from(b.publicKey.raw).copy(spliced, PUBLIC_AT)
    writeFileSync(file, spliced, { mode: 0o600 })
    const err = loadError(file)
    expect(err.detail).toContain(`its public half (peer id ${peerIdFromPrivateKey(b).toString()}) does not match its private key (peer id ${peerIdFromPrivateKey(a).toString()})`)
  })

  it('ensureIdentity never replaces a damaged key: it refuses it', async () => {
    const file = join(tempDir(), 'identity.key')
    await ensureIdentity(file)
    const damaged = Buffer.from(readFileSync(file))
    damaged[PUBLIC_AT]! ^= 0xff
    writeFileSync(file, damaged, { mode: 0o600 })
    await expect(ensureIdentity(file)).rejects.toThrow(/the key file is damaged/)
    expect(readFileSync(file).equals(damaged)).toBe(true)
  })
})
