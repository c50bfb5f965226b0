import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
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
