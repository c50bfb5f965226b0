import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { allNodes, defaultAgentChainId, loadConfig, parseConfig } from '../../src/config/config.js'
import { ConfigError } from '../../src/errors.js'
import { DEFAULT_KEEP_LOCAL_KEYS } from '../../src/constants.js'

const FILE = '/etc/aitbc/mesh.yaml'

async function newPeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

let id1: string
let id2: string
beforeAll(async () => {
  id1 = await newPeerId()
  id2 = await newPeerId()
})

/** Parses `text` and returns the ConfigError it throws (fails the test if it does not throw one). */
function configError (text: string, file = FILE): ConfigError {
  try {
    parseConfig(text, file, {})
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error(`expected parseConfig to throw a ConfigError for:\n${text}`)
}

const base = 'node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc-mesh\n'

describe('parseConfig refuses bad configs with a ConfigError naming file, field and expectation', () => {
  it('missing node.name', () => {
    const err = configError('node: { role: genesis }\ndataDir: /var/lib/aitbc-mesh\n')
    expect(err.file).toBe(FILE)
    expect(err.field).toBe('node.name')
    expect(err.message).toBe(`${FILE}: node.name: missing (required)`)
  })

  it('missing dataDir', () => {
    const err = configError('node: { name: aitbc, role: genesis }\n')
    expect(err.message).toBe(`${FILE}: dataDir: missing (required)`)
  })

  it('role "leader"', () => {
    const err = configError('node: { name: aitbc, role: leader }\ndataDir: /d\n')
    expect(err.field).toBe('node.role')
    expect(err.message).toBe(`${FILE}: node.role: expected "genesis" or "follower"`)
  })

  it('a peer role other than genesis/follower', () => {
    const err = configError(`${base}peers:\n  - { name: aitbc1, role: leader, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`)
    expect(err.message).toBe(`${FILE}: peers[0].role: expected "genesis" or "follower"`)
  })

  it('listen entry that is not a multiaddr', () => {
    const err = configError(`${base}listen: [port-7070]\n`)
    expect(err.field).toBe('listen[0]')
    expect(err.message).toBe(`${FILE}: listen[0]: expected a multiaddr such as /ip4/0.0.0.0/tcp/7070, got "port-7070"`)
  })

  it('listen multiaddr that is not TCP', () => {
    const err = configError(`${base}listen: [/ip4/0.0.0.0/tcp/7070, /ip4/0.0.0.0/udp/7070]\n`)
    expect(err.field).toBe('listen[1]')
    expect(err.message).toContain('expected a TCP listen multiaddr such as /ip4/0.0.0.0/tcp/7070')
  })

  it('empty listen list', () => {
    const err = configError(`${base}listen: []\n`)
    expect(err.message).toBe(`${FILE}: listen: expected at least one listen address`)
  })

  it('peer addr without /p2p/<peer id>', () => {
    const err = configError(`${base}peers:\n  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070 }\n`)
    expect(err.field).toBe('peers[0].addr')
    expect(err.message).toBe(`${FILE}: peers[0].addr: expected /ip4/<address>/tcp/<port>/p2p/<peer id>, got "/ip4/10.0.0.2/tcp/7070"`)
  })

  it('peer addr with an invalid peer id', () => {
    const err = configError(`${base}peers:\n  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/12D3KooWnotreal }\n`)
    expect(err.field).toBe('peers[0].addr')
    expect(err.message).toBe(`${FILE}: peers[0].addr: "12D3KooWnotreal" is not a valid peer id`)
  })

  it('a peer with the same name as this node', () => {
    const err = configError(`${base}peers:\n  - { name: aitbc, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`)
    expect(err.field).toBe('peers[0].name')
    expect(err.message).toBe(`${FILE}: peers[0].name: "aitbc" is used twice; node names must be unique`)
  })

  it('two peers with the same name', () => {
    const err = configError(`${base}peers:\n` +
      `  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n` +
      `  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.3/tcp/7070/p2p/${id2} }\n`)
    expect(err.field).toBe('peers[1].name')
    expect(err.message).toContain('"aitbc1" is used twice')
  })

  it('the same peer id listed twice', () => {
    const err = configError(`${base}peers:\n` +
      `  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n` +
      `  - { name: aitbc2, role: follower, addr: /ip4/10.0.0.3/tcp/7070/p2p/${id1} }\n`)
    expect(err.field).toBe('peers[1].addr')
    expect(err.message).toBe(`${FILE}: peers[1].addr: peer id ${id1} is listed twice`)
  })

  it('two genesis nodes', () => {
    const err = configError(`${base}peers:\n  - { name: aitbc1, role: genesis, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`)
    expect(err.field).toBe('peers')
    expect(err.message).toBe(`${FILE}: peers: 2 nodes have role genesis; a mesh has exactly one genesis node`)
  })

  it('an unknown top-level key (typo "peer:")', () => {
    const err = configError(`${base}peer:\n  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`)
    expect(err.field).toBe('(top level)')
    expect(err.message).toBe(`${FILE}: (top level): unknown field(s) peer`)
  })

  it('an unknown key inside a peer entry', () => {
    const err = configError(`${base}peers:\n  - { name: aitbc1, role: follower, adr: /ip4/10.0.0.2/tcp/7070/p2p/${id1}, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`)
    expect(err.field).toBe('peers[0]')
    expect(err.message).toContain('unknown field(s) adr')
  })

  it.each(['all', 'genesis', 'follower', 'ALL', 'Genesis'])('node name %s (a target keyword)', name => {
    const err = configError(`node: { name: ${name}, role: genesis }\ndataDir: /d\n`)
    expect(err.field).toBe('node.name')
    expect(err.message).toBe(`${FILE}: node.name: must not be one of the target keywords all, genesis, follower`)
  })

  it('a peer named "all"', () => {
    const err = configError(`${base}peers:\n  - { name: all, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`)
    expect(err.field).toBe('peers[0].name')
    expect(err.message).toContain('must not be one of the target keywords')
  })

  it('a node name with a space or a leading dash', () => {
    expect(configError('node: { name: "bad name", role: genesis }\ndataDir: /d\n').message).toContain('node.name: expected a node name of letters, digits')
    expect(configError('node: { name: "-x", role: genesis }\ndataDir: /d\n').message).toContain('node.name: expected a node name')
  })

  it.each([
    [50, 'heartbeat.intervalMs: Too small: expected number to be >=100'],
    [60001, 'heartbeat.intervalMs: Too big: expected number to be <=60000']
  ])('heartbeat.intervalMs %d out of range', (value, expected) => {
    const err = configError(`${base}heartbeat: { intervalMs: ${value} }\n`)
    expect(err.field).toBe('heartbeat.intervalMs')
    expect(err.message).toBe(`${FILE}: ${expected}`)
  })

  it('heartbeat.intervalMs that is not an integer', () => {
    const err = configError(`${base}heartbeat: { intervalMs: 250.5 }\n`)
    expect(err.field).toBe('heartbeat.intervalMs')
    expect(err.message).toMatch(/expected int\b/)
  })

  it('a redis URL that is not redis://', () => {
    const err = configError(`${base}redis: http://127.0.0.1:6379\n`)
    expect(err.message).toBe(`${FILE}: redis: expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379/1`)
  })

  it('a redis URL that would fail at every connect: bad port, unclosed IPv6 bracket, database out of range; never echoing the password', () => {
    const expected = '; expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379/1'
    const cases: Array<[string, string]> = [
      ['redis://:pw-secret@127.0.0.1:notaport/2', 'port "notaport" is not a number from 1 to 65535'],
      ['redis://user:pw-secret@[bad', 'IPv6 address "[bad" has no closing "]"'],
      ['redis://[::1:6379/2', 'IPv6 address "[::1:6379" has no closing "]"'],
      ['redis://127.0.0.1:70000/2', 'port 70000 is out of range 1-65535'],
      ['redis://127.0.0.1:0/2', 'port 0 is out of range 1-65535'],
      ['redis://bad host:6379/2', 'host "bad host" is not a valid host name or address'],
      ['redis://127.0.0.1:6379/16', 'database "16" is not a number from 0 to 15 (Redis\'s default databases 16)'],
      ['redis://127.0.0.1:6379/-1', 'database "-1" is not a number from 0 to 15 (Redis\'s default databases 16)'],
      ['redis://127.0.0.1:6379/two', 'database "two" is not a number from 0 to 15 (Redis\'s default databases 16)'],
      ['redis://127.0.0.1:6379/2/3', 'database "2/3" is not a number from 0 to 15 (Redis\'s default databases 16)'],
      ['redis://127.0.0.1:6379?db=99', 'database "99" is not a number from 0 to 15 (Redis\'s default databases 16)']
    ]
    for (const [url, reason] of cases) {
      const err = configError(`${base}redis: ${JSON.stringify(url)}\n`)
      expect(err.field, url).toBe('redis')
      expect(err.message, url).toBe(`${FILE}: redis: ${reason}${expected}`)
      expect(err.message).not.toContain('pw-secret')
    }
    for (const url of ['redis://127.0.0.1:6379/2', 'rediss://default:p%40ss@cache.example:6380/15', 'redis://[::1]:6379/0', 'redis://localhost', 'redis://127.0.0.1:6379/?db=3']) {
      expect(parseConfig(`${base}redis: ${JSON.stringify(url)}\n`, FILE, {}).redisUrl, url).toBe(url)
    }
  })

  it('an invalid REDIS_URL from the environment, naming it as the field', () => {
    let err: unknown
    try {
      parseConfig(`${base}redis: redis://10.0.0.1:6379/2\n`, FILE, { REDIS_URL: 'redis://:pw-secret@10.0.0.1:port/2' })
    } catch (caught) {
      err = caught
    }
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).field).toBe('REDIS_URL (environment)')
    expect((err as ConfigError).message).toBe(`${FILE}: REDIS_URL (environment): port "port" is not a number from 1 to 65535; expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379/1; ` +
      'fix: correct REDIS_URL where it is set (under systemd: /etc/aitbc/mesh.env), or unset it to use redis: from this file')
    expect((err as ConfigError).message).not.toContain('pw-secret')
  })

  it('probes.chainId that is not a chain id, an empty or too long list, or a repeat', () => {
    expect(configError(`${base}probes: { chainId: "ait devnet" }\n`).message).toBe(`${FILE}: probes.chainId: expected a chain id such as ait-devnet (letters, digits, ".", "_" or "-", at most 64)`)
    expect(configError(`${base}probes: { chainId: [ait-devnet, "../x"] }\n`).field).toBe('probes.chainId[1]')
    expect(configError(`${base}probes: { chainId: [] }\n`).message).toContain('probes.chainId: expected at least one chain id')
    expect(configError(`${base}probes: { chainId: [a, b, c, d, e, f, g, h, i], intervalMs: 60000 }\n`).message).toContain('probes.chainId: expected at most 8 chain ids')
    expect(configError(`${base}probes: { chainId: [ait-devnet, ait-devnet] }\n`).message).toBe(`${FILE}: probes.chainId: "ait-devnet" is listed twice`)
    expect(configError(`${base}probes: { chainId: 7 }\n`).field).toBe('probes.chainId')
  })

  it('probes.intervalMs out of range, or so short that the probes would use more than their share of the RPC rate limit', () => {
    expect(configError(`${base}probes: { intervalMs: 500 }\n`).field).toBe('probes.intervalMs')
    expect(configError(`${base}probes: { intervalMs: 5000.5 }\n`).field).toBe('probes.intervalMs')
    expect(configError(`${base}probes: { intervalMs: 3600000 }\n`).field).toBe('probes.intervalMs')
    // 2 chains every second: 120 calls a minute to /rpc/head.
    expect(configError(`${base}probes: { chainId: [ait-devnet, ait-testnet], intervalMs: 1000 }\n`).message).toBe(
      `${FILE}: probes.intervalMs: 1000 with 2 chain(s) makes 120 calls a minute to each RPC handler, more than the 60 aitbc-mesh may use of the RPC's 200 per client address; use at least 2000`)
    expect(parseConfig(`${base}probes: { chainId: [ait-devnet, ait-testnet], intervalMs: 2000 }\n`, FILE, {}).probes).toMatchObject({ chainIds: ['ait-devnet', 'ait-testnet'], intervalMs: 2000 })
    expect(parseConfig(`${base}probes: { intervalMs: 1000 }\n`, FILE, {}).probes.intervalMs).toBe(1000)
  })

  it('probes.chainId as one id or a list; probes.service and probes.services merged without repeats', () => {
    expect(parseConfig(`${base}probes: { chainId: ait-mainnet }\n`, FILE, {}).probes.chainIds).toEqual(['ait-mainnet'])
    expect(parseConfig(`${base}probes: { chainId: [ait-mainnet, ait-devnet] }\n`, FILE, {}).probes.chainIds).toEqual(['ait-mainnet', 'ait-devnet'])
    const config = parseConfig(`${base}probes: { service: aitbc-blockchain-node.service, services: [aitbc-blockchain-rpc.service, aitbc-blockchain-node.service] }\n`, FILE, {})
    expect(config.probes.services).toEqual(['aitbc-blockchain-node.service', 'aitbc-blockchain-rpc.service'])
    expect(parseConfig(`${base}probes: { services: [aitbc-blockchain-rpc.service] }\n`, FILE, {}).probes.services).toEqual(['aitbc-blockchain-rpc.service'])
    expect(configError(`${base}probes: { services: ["rm -rf /"] }\n`).field).toBe('probes.services[0]')
  })

  it('agents default to agents.chainId, else the first chain the node probes, else the coordinator\'s ait-hub', () => {
    expect(defaultAgentChainId(parseConfig(base, FILE, {}))).toBe('ait-hub')
    expect(defaultAgentChainId(parseConfig(`${base}probes: { chainId: [ait-mainnet, ait-devnet] }\n`, FILE, {}))).toBe('ait-mainnet')
    expect(defaultAgentChainId(parseConfig(`${base}probes: { chainId: ait-mainnet }\nagents: { chainId: ait-devnet }\n`, FILE, {}))).toBe('ait-devnet')
  })

  it('a probes.rpc that is not an http URL', () => {
    expect(configError(`${base}probes: { rpc: ftp://host/x }\n`).message).toBe(`${FILE}: probes.rpc: expected an http:// or https:// URL`)
    expect(configError(`${base}probes: { rpc: not a url }\n`).message).toContain('probes.rpc: expected an http(s) URL')
  })

  it('an action with a timeout above 120 s or a command that is not a list', () => {
    expect(configError(`${base}actions: { restart: { run: [systemctl, restart, x], timeout: 121 } }\n`).field).toBe('actions.restart.timeout')
    expect(configError(`${base}actions: { restart: { run: [] } }\n`).message).toBe(`${FILE}: actions.restart.run: expected the command as a list: [program, arg, ...]`)
  })

  it('invalid YAML, naming the line and column', () => {
    const err = configError('node:\n  name: aitbc\n role: genesis\ndataDir: /d\n')
    expect(err.field).toBe('line 3, column 1')
    expect(err.message).toMatch(new RegExp(`^${FILE}: line 3, column 1: invalid YAML: \\S`))
    // The position is given once, in the field, not repeated at the end of the message.
    expect(err.message).not.toMatch(/at line \d+, column \d+:?$/)
  })

  it('invalid YAML in a flow sequence', () => {
    const err = configError(`${base}listen: [a\n  b: c\n`)
    expect(err.message).toMatch(/: line \d+, column \d+: invalid YAML: /)
  })

  it('a document that is not a mapping (a list, a scalar, or empty)', () => {
    for (const text of ['- a\n- b\n', 'just text\n', '']) {
      const err = configError(text)
      expect(err.message, JSON.stringify(text)).toBe(`${FILE}: expected a YAML mapping with at least node, dataDir`)
    }
  })
})

describe('parseConfig of a good config', () => {
  const dir = '/srv/aitbc/mesh'
  const file = join(dir, 'mesh.yaml')

  it('resolves relative paths against the config file\'s folder and keeps absolute ones', () => {
    const config = parseConfig([
      'node: { name: aitbc1, role: follower }',
      'dataDir: data',
      'identity: keys/identity.key',
      'controlSocket: run/mesh.sock',
      'swarmKey: ../swarm.key',
      'probes:',
      '  repo: /opt/aitbc',
      '  configFiles: [conf/chain.env, /etc/aitbc/chain.json]',
      ''
    ].join('\n'), file, {})
    expect(config.file).toBe(file)
    expect(config.dataDir).toBe('/srv/aitbc/mesh/data')
    expect(config.identityFile).toBe('/srv/aitbc/mesh/keys/identity.key')
    expect(config.controlSocket).toBe('/srv/aitbc/mesh/run/mesh.sock')
    expect(config.swarmKeyFile).toBe('/srv/aitbc/swarm.key')
    expect(config.probes.repo).toBe('/opt/aitbc')
    expect(config.probes.configFiles).toEqual([{ path: '/srv/aitbc/mesh/conf/chain.env' }, { path: '/etc/aitbc/chain.json' }])
  })

  it('resolves a relative probes.repo too', () => {
    const config = parseConfig(`${base}probes: { repo: checkout }\n`, file, {})
    expect(config.probes.repo).toBe('/srv/aitbc/mesh/checkout')
  })

  it('defaults controlSocket to <dataDir>/mesh.sock and identity to <dataDir>/identity.key', () => {
    const config = parseConfig('node: { name: aitbc, role: genesis }\ndataDir: state\n', file, {})
    expect(config.dataDir).toBe('/srv/aitbc/mesh/state')
    expect(config.controlSocket).toBe('/srv/aitbc/mesh/state/mesh.sock')
    expect(config.identityFile).toBe('/srv/aitbc/mesh/state/identity.key')
  })

  it('fills the other defaults: listen, no swarm key, no peers, empty probes and actions, heartbeat 1000/3000', () => {
    const config = parseConfig(base, file, {})
    expect(config.node).toEqual({ name: 'aitbc', role: 'genesis' })
    expect(config.listen).toEqual(['/ip4/0.0.0.0/tcp/7070'])
    expect(config.swarmKeyFile).toBeUndefined()
    expect(config.redisUrl).toBeUndefined()
    expect(config.peers).toEqual([])
    expect(config.probes).toEqual({ chainIds: [], intervalMs: 5000, services: [], configFiles: [] })
    expect(config.actions).toEqual({})
    expect(config.heartbeat).toEqual({ intervalMs: 1000, offlineAfterMs: 3000 })
  })

  it('sets heartbeat.offlineAfterMs to 3 × intervalMs unless given', () => {
    expect(parseConfig(`${base}heartbeat: { intervalMs: 500 }\n`, file, {}).heartbeat).toEqual({ intervalMs: 500, offlineAfterMs: 1500 })
    expect(parseConfig(`${base}heartbeat: { intervalMs: 500, offlineAfterMs: 4000 }\n`, file, {}).heartbeat).toEqual({ intervalMs: 500, offlineAfterMs: 4000 })
  })

  it('refuses an offline window shorter than two heartbeat intervals', () => {
    expect(() => parseConfig(`${base}heartbeat: { intervalMs: 1000, offlineAfterMs: 1500 }\n`, file, {}))
      .toThrow(/heartbeat\.offlineAfterMs: 1500 is shorter than two heartbeat intervals \(2000\)/)
  })

  it('takes redis from the config, and REDIS_URL from the environment over it', () => {
    const text = `${base}redis: redis://10.0.0.1:6379/2\n`
    expect(parseConfig(text, file, {}).redisUrl).toBe('redis://10.0.0.1:6379/2')
    expect(parseConfig(text, file, { REDIS_URL: 'redis://127.0.0.1:6380/5' }).redisUrl).toBe('redis://127.0.0.1:6380/5')
    expect(parseConfig(base, file, { REDIS_URL: 'rediss://cache:6379' }).redisUrl).toBe('rediss://cache:6379')
    // An empty REDIS_URL does not blank out the configured one.
    expect(parseConfig(text, file, { REDIS_URL: '' }).redisUrl).toBe('redis://10.0.0.1:6379/2')
  })

  it('parses peers with their peer ids, and lists this node first in allNodes', () => {
    const config = parseConfig(`${base}peers:\n` +
      `  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n` +
      `  - { name: aitbc2, role: follower, addr: /dns4/node2.example/tcp/7071/p2p/${id2} }\n`, file, {})
    expect(config.peers.map(p => [p.name, p.role, p.peerId.toString(), p.addr])).toEqual([
      ['aitbc1', 'follower', id1, `/ip4/10.0.0.2/tcp/7070/p2p/${id1}`],
      ['aitbc2', 'follower', id2, `/dns4/node2.example/tcp/7071/p2p/${id2}`]
    ])
    expect(allNodes(config).map(n => `${n.name}:${n.role}`)).toEqual(['aitbc:genesis', 'aitbc1:follower', 'aitbc2:follower'])
  })

  it('allows a mesh of followers only (no genesis node)', () => {
    const config = parseConfig(`node: { name: f1, role: follower }\ndataDir: /d\npeers:\n  - { name: f2, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`, file, {})
    expect(config.peers).toHaveLength(1)
  })

  it('strips trailing slashes from probes.rpc and keeps service, actions and logLevel', () => {
    const config = parseConfig(`${base}probes: { rpc: "http://127.0.0.1:8202//", service: aitbc-blockchain-node.service }\n` +
      'actions: { restart: { run: [systemctl, restart, aitbc-blockchain-node.service], destructive: true } }\nlogLevel: debug\n', file, {})
    expect(config.probes.rpc).toBe('http://127.0.0.1:8202')
    expect(config.probes.services).toEqual(['aitbc-blockchain-node.service'])
    expect(config.actions).toEqual({ restart: { run: ['systemctl', 'restart', 'aitbc-blockchain-node.service'], destructive: true } })
    expect(config.logLevel).toBe('debug')
  })
})

describe('loadConfig', () => {
  let dir: string
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-unit-config-')) })
  afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

  it('reads a file and resolves paths against its folder', () => {
    const sub = join(dir, 'node1')
    mkdirSync(sub)
    const file = join(sub, 'mesh.yaml')
    writeFileSync(file, `node: { name: aitbc, role: genesis }\ndataDir: data\npeers:\n  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${id1} }\n`)
    const config = loadConfig(file, {})
    expect(config.file).toBe(file)
    expect(config.dataDir).toBe(join(sub, 'data'))
    expect(config.controlSocket).toBe(join(sub, 'data', 'mesh.sock'))
    expect(config.peers.map(p => p.peerId.toString())).toEqual([id1])
  })

  it('uses the environment it is given for REDIS_URL', () => {
    const file = join(dir, 'redis.yaml')
    writeFileSync(file, `${base}redis: redis://10.0.0.1:6379/2\n`)
    expect(loadConfig(file, { REDIS_URL: 'redis://override:6379/0' }).redisUrl).toBe('redis://override:6379/0')
  })

  it('reports a missing file with its path and how to create one', () => {
    const file = join(dir, 'nope', 'mesh.yaml')
    let caught: unknown
    try { loadConfig(file, {}) } catch (err) { caught = err }
    expect(caught).toBeInstanceOf(ConfigError)
    expect((caught as ConfigError).message).toBe(`${file}: file not found (create one with \`aitbc-mesh init\`)`)
  })

  it('reports a path that cannot be read (a directory)', () => {
    expect(() => loadConfig(dir, {})).toThrow(ConfigError)
    expect(() => loadConfig(dir, {})).toThrow(new RegExp(`^${dir}: cannot read: .*EISDIR`))
  })

  it('names the file in errors about its content', () => {
    const file = join(dir, 'bad.yaml')
    writeFileSync(file, 'node: { name: aitbc, role: leader }\ndataDir: /d\n')
    expect(() => loadConfig(file, {})).toThrow(`${file}: node.role: expected "genesis" or "follower"`)
  })
})

describe('example configs in config/', () => {
  it('genesis.yaml and follower.yaml are valid and admit each other', async () => {
    const { readFileSync } = await import('node:fs')
    const { fileURLToPath } = await import('node:url')
    const dir = fileURLToPath(new URL('../../config/', import.meta.url))
    const genesis = parseConfig(readFileSync(dir + 'genesis.yaml', 'utf8'), '/etc/aitbc/mesh.yaml', {})
    const follower = parseConfig(readFileSync(dir + 'follower.yaml', 'utf8'), '/etc/aitbc/mesh.yaml', {})
    expect(genesis.node).toEqual({ name: 'aitbc', role: 'genesis' })
    expect(follower.node).toEqual({ name: 'aitbc1', role: 'follower' })
    expect(genesis.peers.map(p => [p.name, p.role])).toEqual([['aitbc1', 'follower']])
    expect(follower.peers.map(p => [p.name, p.role])).toEqual([['aitbc', 'genesis']])
    expect(genesis.controlSocket).toBe('/run/aitbc/mesh.sock')
  })

  it('catch up by starting aitbc-blockchain-sync.service, update after git, and sync only blockchain.env, by key', async () => {
    const { readFileSync } = await import('node:fs')
    const { fileURLToPath } = await import('node:url')
    const dir = fileURLToPath(new URL('../../config/', import.meta.url))
    for (const name of ['genesis.yaml', 'follower.yaml']) {
      const config = parseConfig(readFileSync(dir + name, 'utf8'), '/etc/aitbc/mesh.yaml', {})
      expect(config.sync.catchUp).toEqual({ action: 'blockchain-sync' })
      expect(config.actions['blockchain-sync']?.run).toEqual(['systemctl', 'start', 'aitbc-blockchain-sync.service'])
      expect(config.sync.afterGit).toEqual({ action: 'aitbc-update' })
      expect(config.actions['aitbc-update']?.run).toEqual(['systemctl', 'start', 'aitbc-update.service'])
      expect(config.probes.configFiles.map(f => [f.path, f.keys])).toEqual([['/etc/aitbc/blockchain.env', 'env']])
      expect(config.probes.configFiles[0]!.keepLocal).toEqual(expect.arrayContaining(['NODE_ID', 'p2p_node_id', 'proposer_id', '*SECRET*']))
    }
  })
})

describe('probes.configFiles and sync actions', () => {
  const base = 'node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc/mesh\n'
  const file = '/etc/aitbc/mesh.yaml'

  it('takes a path (whole file) or { path, keys: env, keepLocal }, whose keepLocal adds to the default list', () => {
    const config = parseConfig(`${base}probes:\n  configFiles:\n    - chain.json\n    - { path: /etc/aitbc/blockchain.env, keys: env, keepLocal: [CHAIN_ID, 'island_*'] }\n`, file, {})
    expect(config.probes.configFiles[0]).toEqual({ path: '/etc/aitbc/chain.json' })
    expect(config.probes.configFiles[1]).toMatchObject({ path: '/etc/aitbc/blockchain.env', keys: 'env' })
    expect(config.probes.configFiles[1]!.keepLocal).toEqual([...DEFAULT_KEEP_LOCAL_KEYS, 'CHAIN_ID', 'island_*'])
  })

  it('refuses files that hold per-node identity or secrets, naming the entry and the reason', () => {
    const entry = (value: string): string => `${base}probes:\n  configFiles:\n    - /etc/aitbc/blockchain.env\n    - ${value}\n`
    expect(() => parseConfig(entry('/etc/aitbc/node.env'), file, {})).toThrow(`${file}: probes.configFiles[1]: /etc/aitbc/node.env is unique to each node (NODE_ID, p2p_node_id, p2p_peers); configuration sync must not share it, so leave it out`)
    expect(() => parseConfig(entry('{ path: /etc/aitbc/node.env, keys: env }'), file, {})).toThrow(/probes\.configFiles\[1\]: \/etc\/aitbc\/node\.env is unique to each node/)
    expect(() => parseConfig(entry('/etc/aitbc/blockchain-secrets.env'), file, {})).toThrow(/probes\.configFiles\[1\]: \/etc\/aitbc\/blockchain-secrets\.env holds secrets; configuration sync never copies secrets/)
    expect(() => parseConfig(entry('{ path: /etc/aitbc/blockchain-secrets.env, keys: env }'), file, {})).toThrow(/holds secrets/)
    expect(() => parseConfig(entry('/etc/aitbc/.env'), file, {})).toThrow(/probes\.configFiles\[1\]: \/etc\/aitbc\/\.env holds per-node values .* sync its shared keys with \{ path: \/etc\/aitbc\/\.env, keys: env \}/)
    expect(parseConfig(entry('{ path: /etc/aitbc/.env, keys: env }'), file, {}).probes.configFiles[1]).toMatchObject({ path: '/etc/aitbc/.env', keys: 'env' })
  })

  it('refuses a malformed entry with what is expected', () => {
    const entry = (value: string): string => `${base}probes:\n  configFiles:\n    - ${value}\n`
    expect(() => parseConfig(entry('{ path: /etc/aitbc/chain.json, keys: json }'), file, {})).toThrow(`${file}: probes.configFiles[0]: expected a path, or { path, keys: env, keepLocal: [...] }`)
    expect(() => parseConfig(entry('{ path: /etc/aitbc/a.env, keys: env, keepLocal: ["NODE ID"] }'), file, {})).toThrow(`${file}: probes.configFiles[0].keepLocal[0]: expected a key name, or a pattern with * such as *SECRET*`)
    expect(() => parseConfig(entry('{ path: /etc/aitbc/a.env, keys: env, keep: [X] }'), file, {})).toThrow(`${file}: probes.configFiles[0]: unknown field(s) keep`)
  })

  it('bounds what a node answers about its files: at most 64 files, 256 keep-local patterns of at most 256 characters', () => {
    const files = (n: number): string => `${base}probes:\n  configFiles: [${Array.from({ length: n }, (_, i) => `/etc/aitbc/f${i}.json`).join(', ')}]\n`
    expect(parseConfig(files(64), file, {}).probes.configFiles).toHaveLength(64)
    expect(() => parseConfig(files(65), file, {})).toThrow(`${file}: probes.configFiles: expected at most 64 files`)
    const keep = (patterns: string[]): string => `${base}probes:\n  configFiles:\n    - { path: /etc/aitbc/a.env, keys: env, keepLocal: [${patterns.join(', ')}] }\n`
    const many = Array.from({ length: 256 }, (_, i) => `K${i}`)
    expect(parseConfig(keep(many), file, {}).probes.configFiles[0]!.keepLocal).toHaveLength(256 + DEFAULT_KEEP_LOCAL_KEYS.length)
    expect(() => parseConfig(keep([...many, 'K256']), file, {})).toThrow(`${file}: probes.configFiles[0].keepLocal: expected at most 256 patterns, got 257`)
    expect(() => parseConfig(keep(['K'.repeat(257)]), file, {})).toThrow(`${file}: probes.configFiles[0].keepLocal[0]: expected at most 256 characters`)
  })

  it('refuses sync.catchUp or sync.afterGit naming an action the config does not have', () => {
    const actions = 'actions:\n  blockchain-sync: { run: [systemctl, start, aitbc-blockchain-sync.service] }\n'
    expect(parseConfig(`${base}${actions}sync: { catchUp: { action: blockchain-sync } }\n`, file, {}).sync.catchUp).toEqual({ action: 'blockchain-sync' })
    expect(() => parseConfig(`${base}${actions}sync: { catchUp: { action: blockchain-synk } }\n`, file, {})).toThrow(`${file}: sync.catchUp.action: "blockchain-synk" is not an action of this config (actions: blockchain-sync); add it under actions:`)
    expect(() => parseConfig(`${base}sync: { afterGit: { action: aitbc-update } }\n`, file, {})).toThrow(`${file}: sync.afterGit.action: "aitbc-update" is not an action of this config (actions: none); add it under actions:`)
  })
})
