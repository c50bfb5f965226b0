import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import type { PrivateKey, PublicKey } from '@libp2p/interface'
import { SignedAgentChange } from '../../protocols/agents.js'
import type { Role } from '../config/schema.js'
import type { AgentEntry, UnsignedEntry } from './entry.js'

/** Domain tag inside every signed change, so a signature made for anything else never verifies here. */
export const AGENT_CHANGE_DOMAIN = 'aitbc-mesh/agent-change/2'

/** Why a change from a peer (or from the store) is not applied; stable, for the rejection log. */
export type RejectReason =
  | 'unknown-author'
  | 'bad-signature'
  | 'owner-mismatch'
  | 'not-owner'
  | 'removal-not-allowed'
  | 'clock-out-of-range'
  | 'time-out-of-range'
  | 'malformed'
  | 'undecodable'

export class ChangeRejected extends Error {
  override name = 'ChangeRejected'
  constructor (readonly reason: RejectReason, detail: string) {
    super(detail)
  }
}

/** The bytes an author signs for a change. */
export function signedBytes (entry: UnsignedEntry): Uint8Array {
  return SignedAgentChange.encode({
    domain: AGENT_CHANGE_DOMAIN,
    agentId: entry.agentId,
    clock: { ms: BigInt(entry.clock.ms), counter: entry.clock.counter, node: entry.clock.node },
    removed: entry.record == null,
    recordJson: entry.recordJson,
    owner: entry.owner
  })
}

function b64url (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url')
}

/** Node's own key object for a libp2p Ed25519 key: made once, not on every signature. */
function privateKeyObject (key: PrivateKey): KeyObject {
  if (key.type !== 'Ed25519') throw new Error(`agent changes are signed with Ed25519 keys, not ${key.type}`)
  return createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d: b64url(key.raw.subarray(0, 32)), x: b64url(key.publicKey.raw) } })
}

function publicKeyObject (key: PublicKey): KeyObject {
  return createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: b64url(key.raw) } })
}

export interface AuthorityInit {
  node: string
  privateKey: PrivateKey
  /** The allowlisted key of a peer node by name (read live: a reload changes the allowlist). */
  peerKey: (name: string) => PublicKey | undefined
  /** The configured role of a node by name, this one included. */
  roleOf: (name: string) => Role | undefined
  /** trust.removalsFrom: node names or roles whose removals of other nodes' agents apply. */
  removalsFrom: () => string[]
}

/**
 * Who wrote a change and whether they were allowed to. Changes are signed by their author with
 * its node key and verified against the author's allowlisted key; a change is the author's own
 * only if it owns the agent, except removals from the nodes `trust.removalsFrom` names.
 */
export class ChangeAuthority {
  private readonly signingKey: KeyObject
  private readonly ownKey: KeyObject
  private readonly keyCache = new Map<string, { raw: Uint8Array, key: KeyObject }>()

  constructor (private readonly init: AuthorityInit) {
    this.signingKey = privateKeyObject(init.privateKey)
    this.ownKey = publicKeyObject(init.privateKey.publicKey)
  }

  get node (): string {
    return this.init.node
  }

  sign (entry: UnsignedEntry): AgentEntry {
    if (entry.clock.node !== this.init.node) throw new Error(`cannot sign a change authored by ${entry.clock.node}`)
    return { ...entry, signature: new Uint8Array(sign(null, signedBytes(entry), this.signingKey)) }
  }

  /** Throws ChangeRejected unless the author's allowlisted key signed exactly this change. */
  verify (entry: AgentEntry): void {
    const author = entry.clock.node
    const key = this.keyOf(author)
    if (key == null) throw new ChangeRejected('unknown-author', `change of ${entry.agentId} is authored by "${author}", which is not a node of this mesh`)
    if (entry.signature.byteLength !== 64 || !verify(null, signedBytes(entry), key, entry.signature)) {
      throw new ChangeRejected('bad-signature', `change of ${entry.agentId} does not carry a valid signature of its author ${author}`)
    }
  }

  /**
   * Throws ChangeRejected unless the author may make this change, given the entry it replaces
   * (`current`, if live). Records: only the owner writes them, and it cannot take over another
   * node's live agent. Removals: the owner, or a node trust.removalsFrom allows.
   */
  authorise (entry: AgentEntry, current: AgentEntry | undefined): void {
    const author = entry.clock.node
    if (entry.record != null) {
      if (entry.record.owner_node !== entry.owner) throw new ChangeRejected('owner-mismatch', `record of ${entry.agentId} names owner ${entry.record.owner_node} but the change names ${entry.owner}`)
      if (entry.owner !== author) throw new ChangeRejected('not-owner', `${author} wrote a record of ${entry.agentId} owned by ${entry.owner}`)
      if (current?.record != null && current.owner !== author) throw new ChangeRejected('not-owner', `${author} tried to take over ${entry.agentId}, a live agent owned by ${current.owner}`)
      return
    }
    if (this.mayRemoveOthers(author)) return
    if (entry.owner !== author) throw new ChangeRejected('removal-not-allowed', `${author} removed ${entry.agentId} owned by ${entry.owner}, and trust.removalsFrom does not allow it`)
    if (current?.record != null && current.owner !== author) throw new ChangeRejected('removal-not-allowed', `${author} removed ${entry.agentId}, a live agent owned by ${current.owner}`)
  }

  /** Whether `node` may remove agents other nodes own. */
  mayRemoveOthers (node: string): boolean {
    const role = this.init.roleOf(node)
    return this.init.removalsFrom().some(who => who === node || (role != null && who === role))
  }

  private keyOf (node: string): KeyObject | undefined {
    if (node === this.init.node) return this.ownKey
    const key = this.init.peerKey(node)
    if (key == null) return undefined
    const cached = this.keyCache.get(node)
    if (cached != null && Buffer.compare(cached.raw, key.raw) === 0) return cached.key
    const object = publicKeyObject(key)
    this.keyCache.set(node, { raw: key.raw, key: object })
    return object
  }
}
