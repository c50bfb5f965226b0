import { createPrivateKey, createPublicKey } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id'
import { generateKey } from '@libp2p/pnet'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { ConfigError } from '../errors.js'

const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'
const SWARM_KEY_PATTERN = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n?$/

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerId
}

/** Refuse secret files others can read, as ssh does for private keys. */
function assertPrivateFile (file: string, field: string): void {
  const mode = statSync(file).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(file, field, `file mode ${mode.toString(8).padStart(4, '0')} lets other users read a secret; expected 0600 (run: chmod 600 ${file})`)
  }
}

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/** The public key an Ed25519 seed (the private half of a libp2p key) derives. */
export function ed25519PublicKeyOf (seed: Uint8Array): Uint8Array {
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  return new Uint8Array(Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x as string, 'base64url'))
}

/**
 * A libp2p Ed25519 key file stores the private seed and the public key side by side, and the peer
 * id is taken from the stored public half. A damaged byte in either half would start the daemon
 * under a peer id no other node knows (or one it cannot prove), cut off from the mesh: refuse it.
 */
function assertKeyHalvesMatch (file: string, privateKey: PrivateKey): void {
  const seed = privateKey.raw.subarray(0, 32)
  const derived = ed25519PublicKeyOf(seed)
  const stored = privateKey.publicKey.raw
  if (Buffer.from(derived).equals(Buffer.from(stored))) return
  const storedId = peerIdFromPrivateKey(privateKey).toString()
  const derivedId = peerIdFromPublicKey(publicKeyFromRaw(derived)).toString()
  throw new ConfigError(file, 'identity',
    `the key file is damaged: its public half (peer id ${storedId}) does not match its private key (peer id ${derivedId}); starting would run under a peer id the other nodes do not know`,
    `restore ${file} from a backup of this node; a new key (move this one aside, then \`aitbc-mesh init\`) gives a new peer id, and every other node's config must then be updated (\`aitbc-mesh config add-peer\` there)`)
}

export function loadIdentity (file: string): Identity {
  let bytes: Uint8Array
  try {
    bytes = readFileSync(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(file, 'identity', code === 'ENOENT' ? 'identity key not found (create it with `aitbc-mesh init`)' : `cannot read identity key: ${(err as Error).message}`)
  }
  assertPrivateFile(file, 'identity')
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new ConfigError(file, 'identity', `not a libp2p private key: ${(err as Error).message}`)
  }
  if (privateKey.type !== 'Ed25519') throw new ConfigError(file, 'identity', `expected an Ed25519 key, found ${privateKey.type}`)
  assertKeyHalvesMatch(file, privateKey)
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey) }
}

/** Creates the identity only if the file does not exist yet; an existing key is never replaced. */
export async function ensureIdentity (file: string): Promise<{ identity: Identity, created: boolean }> {
  if (existsSync(file)) return { identity: loadIdentity(file), created: false }
  mkdirSync(dirname(file), { recursive: true, mode: 0o750 })
  const privateKey = await generateKeyPair('Ed25519')
  // 'wx' fails if another process created the file meanwhile, so a key is never overwritten.
  writeFileSync(file, privateKeyToProtobuf(privateKey), { mode: 0o600, flag: 'wx' })
  chmodSync(file, 0o600)
  return { identity: { privateKey, peerId: peerIdFromPrivateKey(privateKey) }, created: true }
}

export function loadSwarmKey (file: string): Uint8Array {
  let bytes: Buffer
  try {
    bytes = readFileSync(file)
  } catch (err) {
    throw new ConfigError(file, 'swarmKey', `cannot read swarm key: ${(err as Error).message}`)
  }
  assertPrivateFile(file, 'swarmKey')
  if (!SWARM_KEY_PATTERN.test(bytes.toString('latin1'))) {
    throw new ConfigError(file, 'swarmKey', `not a swarm key: expected "${SWARM_KEY_HEADER.replace(/\n/g, '\\n')}" followed by 64 hex digits`)
  }
  return new Uint8Array(bytes)
}

export function ensureSwarmKey (file: string): boolean {
  if (existsSync(file)) return false
  mkdirSync(dirname(file), { recursive: true, mode: 0o750 })
  const key = new Uint8Array(SWARM_KEY_HEADER.length + 64)
  generateKey(key)
  writeFileSync(file, key, { mode: 0o600, flag: 'wx' })
  chmodSync(file, 0o600)
  return true
}
