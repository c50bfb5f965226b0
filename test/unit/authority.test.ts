import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { parseConfig, type MeshConfig } from '../../src/config/config.js'
import { ConfigError } from '../../src/errors.js'
import { authorizeAction, authorizeSyncStep, selfRequester, type Requester } from '../../src/operations/authority.js'

const FILE = '/etc/aitbc/mesh.yaml'
let peers: string

beforeAll(async () => {
  const ids = await Promise.all([0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  peers = `peers:
  - { name: aitbc, role: genesis, addr: /ip4/10.0.0.1/tcp/7070/p2p/${ids[0]} }
  - { name: aitbc2, role: follower, addr: /ip4/10.0.0.3/tcp/7070/p2p/${ids[1]} }
`
})

/** A follower aitbc1 whose peers are the genesis node aitbc and the follower aitbc2. */
function follower (extra = ''): MeshConfig {
  return parseConfig(`node: { name: aitbc1, role: follower }\ndataDir: /var/lib/aitbc-mesh\n${peers}${extra}`, FILE, {})
}

function configError (extra: string): ConfigError {
  try {
    follower(extra)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error(`expected a ConfigError for:\n${extra}`)
}

const genesis: Requester = { node: 'aitbc', role: 'genesis', self: false }
const aitbc2: Requester = { node: 'aitbc2', role: 'follower', self: false }

describe('config: who may run actions and force syncs', () => {
  it('defaults: sync.forceFrom is genesis and self; actions have no allowFrom of their own', () => {
    const config = follower('actions:\n  restart: { run: [systemctl, restart, x], destructive: true }\n')
    expect(config.sync.forceFrom).toEqual(['genesis', 'self'])
    expect(config.actions.restart!.allowFrom).toBeUndefined()
  })

  it('accepts node names, roles and self', () => {
    const config = follower('actions:\n  restart: { run: [x], destructive: true, allowFrom: [self, aitbc2, follower, aitbc1] }\nsync: { forceFrom: [genesis, aitbc2] }\n')
    expect(config.actions.restart!.allowFrom).toEqual(['self', 'aitbc2', 'follower', 'aitbc1'])
    expect(config.sync.forceFrom).toEqual(['genesis', 'aitbc2'])
  })

  it('refuses a name that is no node of the config, naming the field', () => {
    const action = configError('actions:\n  restart: { run: [x], destructive: true, allowFrom: [genesis, aitbc9] }\n')
    expect(action.field).toBe('actions.restart.allowFrom[1]')
    expect(action.message).toContain('"aitbc9" is neither self, a role (genesis, follower) nor a node of this config (aitbc1, aitbc, aitbc2)')
    const force = configError('sync: { forceFrom: [Genesis] }\n')
    expect(force.field).toBe('sync.forceFrom[0]')
    const empty = configError('sync: { forceFrom: [""] }\n')
    expect(empty.field).toBe('sync.forceFrom[0]')
  })
})

describe('authorizeAction', () => {
  const config = (): MeshConfig => follower(`actions:
  restart: { run: [x], destructive: true }
  status: { run: [x] }
  rotate: { run: [x], allowFrom: [genesis] }
  drain: { run: [x], destructive: true, allowFrom: [follower] }
`)

  it('a destructive action by default: the genesis node and this node\'s operator, no follower', () => {
    expect(authorizeAction(config(), genesis, 'restart')).toBeNull()
    expect(authorizeAction(config(), selfRequester(config()), 'restart')).toBeNull()
    expect(authorizeAction(config(), aitbc2, 'restart')).toEqual({
      category: 'action_not_allowed',
      reason: '"restart" is not run here for aitbc2 (follower); allowed: genesis, self (the default for destructive actions)'
    })
  })

  it('a non-destructive action by default: every allowlisted node; allowFrom narrows or widens', () => {
    expect(authorizeAction(config(), aitbc2, 'status')).toBeNull()
    expect(authorizeAction(config(), aitbc2, 'rotate')?.reason).toContain('allowed: genesis (actions.rotate.allowFrom)')
    expect(authorizeAction(config(), selfRequester(config()), 'rotate')?.category).toBe('action_not_allowed')
    // A role matches every node the target's allowlist gives that role, and self has this node's role.
    expect(authorizeAction(config(), aitbc2, 'drain')).toBeNull()
    expect(authorizeAction(config(), selfRequester(config()), 'drain')).toBeNull()
    expect(authorizeAction(config(), genesis, 'drain')?.category).toBe('action_not_allowed')
  })

  it('a peer named "self" is not this node', () => {
    const claim: Requester = { node: 'self', role: 'follower', self: false }
    expect(authorizeAction(config(), claim, 'restart')?.category).toBe('action_not_allowed')
  })

  it('an unknown action is left to the runner, which names the configured ones', () => {
    expect(authorizeAction(config(), aitbc2, 'nope')).toBeNull()
  })
})

describe('authorizeSyncStep', () => {
  it('file contents are read and written for the genesis node or this node\'s operator only; hashes for anyone', () => {
    const config = follower()
    for (const step of ['config.read', 'config.write']) {
      expect(authorizeSyncStep(config, aitbc2, step, step === 'config.write')?.category).toBe('config_contents_genesis_only')
      expect(authorizeSyncStep(config, genesis, step, step === 'config.write')).toBeNull()
      expect(authorizeSyncStep(config, selfRequester(config), step, step === 'config.write')).toBeNull()
    }
    expect(authorizeSyncStep(config, aitbc2, 'config.inspect', false)).toBeNull()
    expect(authorizeSyncStep(config, aitbc2, 'git.inspect', false)).toBeNull()
  })

  it('--force needs sync.forceFrom; naming a follower there does not let it write configuration', () => {
    expect(authorizeSyncStep(follower(), aitbc2, 'git.apply', false)).toBeNull()
    expect(authorizeSyncStep(follower(), aitbc2, 'git.apply', true)).toEqual({
      category: 'force_not_allowed',
      reason: 'git.apply with --force is not accepted from aitbc2 (follower); allowed: genesis, self (sync.forceFrom)'
    })
    const trusting = follower('sync: { forceFrom: [aitbc2] }\n')
    expect(authorizeSyncStep(trusting, aitbc2, 'git.apply', true)).toBeNull()
    expect(authorizeSyncStep(trusting, aitbc2, 'config.write', true)?.category).toBe('config_contents_genesis_only')
    expect(authorizeSyncStep(trusting, genesis, 'git.apply', true)?.category).toBe('force_not_allowed')
    expect(authorizeSyncStep(trusting, selfRequester(trusting), 'blockchain.catch_up', true)?.category).toBe('force_not_allowed')
  })
})
