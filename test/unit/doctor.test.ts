import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/config.js'
import { DOCTOR_MAX_CLOCK_SKEW_MS } from '../../src/constants.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkClockSkew, checkCoordinatorRedis, checkRpc, type PeerViewLike } from '../../src/doctor/checks.js'
import { StandInRpc } from '../../src/devmesh/stand-in-rpc.js'
import { tempDir } from '../helpers.js'
import { formatCheck } from '../../src/doctor/doctor.js'

const ID1 = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
const ID2 = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'

const config = parseConfig(`
node: { name: aitbc, role: genesis }
dataDir: /var/lib/aitbc/mesh
peers:
  - { name: aitbc1, role: follower, addr: /ip4/10.0.0.2/tcp/7070/p2p/${ID1} }
  - { name: aitbc2, role: follower, addr: /ip4/10.0.0.3/tcp/7070/p2p/${ID2} }
`, '/etc/aitbc/mesh.yaml', {})

function view (name: string, skew: number | null): PeerViewLike {
  return { name, self: false, connected: true, status: 'online', reason: null, addrs: [], latency_ms: 1, clock_skew_ms: skew }
}

describe('doctor: clock skew against peers', () => {
  it(`passes within ${DOCTOR_MAX_CLOCK_SKEW_MS} ms either way and lists each peer`, () => {
    const check = checkClockSkew(config, [view('aitbc1', 12), view('aitbc2', -DOCTOR_MAX_CLOCK_SKEW_MS)])
    expect(formatCheck(check)).toBe(`PASS clock skew against peers (within ${DOCTOR_MAX_CLOCK_SKEW_MS} ms: aitbc1 +12 ms, aitbc2 -1000 ms)`)
  })

  it('fails a peer whose clock is off by more than the limit, with the fix', () => {
    const check = checkClockSkew(config, [view('aitbc1', 2500), view('aitbc2', -1200)])
    expect(formatCheck(check)).toBe(`FAIL clock skew against peers: aitbc1 is 2500 ms ahead, aitbc2 is 1200 ms behind (more than ${DOCTOR_MAX_CLOCK_SKEW_MS} ms) — fix: synchronise the clocks: enable NTP on every host (timedatectl set-ntp true, or chrony)`)
  })

  it('does not fail a peer without a heartbeat (its reachability check does) unless no clock could be compared', () => {
    expect(checkClockSkew(config, [view('aitbc1', 3), view('aitbc2', null)])).toMatchObject({ ok: true, detail: `within ${DOCTOR_MAX_CLOCK_SKEW_MS} ms: aitbc1 +3 ms, aitbc2 unknown (no heartbeat)` })
    expect(formatCheck(checkClockSkew(config, [view('aitbc1', null)]))).toBe('FAIL clock skew against peers: no heartbeat from any peer yet, so no clock could be compared: aitbc1 unknown (no heartbeat), aitbc2 unknown (no heartbeat) — fix: make the peers reachable over the mesh (see the lines above)')
  })

  it('says to start the daemon when it is not running', () => {
    expect(checkClockSkew(config, undefined)).toMatchObject({ ok: false, detail: 'not checked: the local daemon is not running', fix: expect.stringMatching(/^start the daemon: systemctl start aitbc-mesh/) })
  })
})

describe('doctor: blockchain RPC', () => {
  const stand = new StandInRpc({ otherChains: { 'ait-mainnet': { height: 5, mempool: 0, headStatus: 200 } } }, { rateLimit: null })
  let url: string
  beforeAll(async () => { url = await stand.start('127.0.0.1', 0) })
  afterAll(async () => { await stand.stop() })

  const withProbes = (probes: string): ReturnType<typeof parseConfig> => parseConfig(`node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc/mesh\nprobes: ${probes}\n`, '/etc/aitbc/mesh.yaml', {})

  it('passes naming the chains the RPC serves and the one probed', async () => {
    expect(formatCheck(await checkRpc(withProbes(`{ rpc: "${url}" }`), 2000))).toBe(`PASS blockchain RPC reachable (GET ${url}/health answered 200; chains ait-devnet, ait-mainnet; probing ait-devnet (the first; probes.chainId chooses))`)
    expect(formatCheck(await checkRpc(withProbes(`{ rpc: "${url}", chainId: [ait-mainnet, ait-devnet] }`), 2000))).toBe(`PASS blockchain RPC reachable (GET ${url}/health answered 200; chains ait-devnet, ait-mainnet; probing ait-mainnet, ait-devnet)`)
  })

  it('fails a probes.chainId the RPC does not serve, listing those it does', async () => {
    expect(formatCheck(await checkRpc(withProbes(`{ rpc: "${url}", chainId: [ait-devnet, ait-testnet] }`), 2000))).toBe(
      `FAIL blockchain RPC reachable: GET ${url}/health answered 200, but probes.chainId ait-testnet is not among the chains it serves (ait-devnet, ait-mainnet) — fix: set probes.chainId in /etc/aitbc/mesh.yaml to chains this node serves: ait-devnet, ait-mainnet`)
  })

  it('fails HTTP 429 as rate-limited, with its wait and what to look for', async () => {
    stand.forceRateLimit = { retryAfterS: 20 }
    try {
      expect(formatCheck(await checkRpc(withProbes(`{ rpc: "${url}" }`), 2000))).toBe(
        `FAIL blockchain RPC reachable: GET ${url}/health answered 429: rate-limited for 20 s (the RPC allows about 200 calls a minute per client address and handler) — fix: find the local client calling the RPC most (journalctl -u aitbc-blockchain-rpc.service); aitbc-mesh itself makes at most 60 a minute`)
    } finally {
      stand.forceRateLimit = null
    }
  })

  it('an RPC that lists no chains passes, saying so', async () => {
    stand.state.omitSupportedChains = true
    try {
      expect((await checkRpc(withProbes(`{ rpc: "${url}" }`), 2000)).detail).toBe(`GET ${url}/health answered 200; it lists no supported_chains`)
    } finally {
      stand.state.omitSupportedChains = false
    }
  })

  it('names both units in the fix, and points an old :8006 URL at today\'s RPC', async () => {
    const down = await checkRpc(withProbes('{ rpc: "http://127.254.254.254:8006", service: aitbc-blockchain-node.service, services: [aitbc-blockchain-rpc.service] }'), 2000)
    expect(down.ok).toBe(false)
    expect(down.fix).toBe('start the blockchain node (systemctl start aitbc-blockchain-node.service aitbc-blockchain-rpc.service) or correct probes.rpc in /etc/aitbc/mesh.yaml; today\'s AITBC serves the RPC on http://127.0.0.1:8202 (aitbc-blockchain-rpc.service)')
  })
})

describe('doctor: the AITBC coordinator\'s Redis', () => {
  const base = `
node: { name: aitbc, role: genesis }
dataDir: /var/lib/aitbc/mesh
`
  function withCoordinator (extra: string, envText?: string): ReturnType<typeof checkCoordinatorRedis> {
    let envLine = ''
    if (envText != null) {
      const dir = tempDir('aitbc-mesh-doctor-')
      writeFileSync(join(dir, 'coordinator.env'), envText)
      envLine = `\n  envFile: ${join(dir, 'coordinator.env')}`
    }
    return checkCoordinatorRedis(parseConfig(`${base}${extra}\ncoordinator:\n  url: http://127.0.0.1:8107${envLine}\n`, '/etc/aitbc/mesh.yaml', {}))
  }

  it('passes when the mesh writes to the coordinator\'s Redis and database (its default: db 1 on localhost)', () => {
    expect(withCoordinator('redis: redis://127.0.0.1:6379/1')).toMatchObject({ ok: true, detail: expect.stringMatching(/127\.0\.0\.1:6379 database 1 \(its default/) })
    expect(withCoordinator('redis: redis://127.0.0.1:6379/1', '# coordinator\nexport REDIS_URL="redis://localhost:6379/1"\n')).toMatchObject({ ok: true, detail: expect.stringMatching(/REDIS_URL in/) })
  })

  it.each([
    ['another database', 'redis: redis://127.0.0.1:6379/2', undefined, /writes to redis:\/\/127\.0\.0\.1:6379\/2, the coordinator reads redis:\/\/localhost:6379\/1/],
    ['the coordinator\'s REDIS_URL elsewhere', 'redis: redis://127.0.0.1:6379/1', 'REDIS_URL=redis://:secret@127.0.0.1:6380/1\n', /the coordinator reads redis:\/\/\*\*\*@127\.0\.0\.1:6380\/1/],
    ['no Redis at all', '', undefined, /this node has no Redis/],
    ['a key prefix', 'redis: redis://127.0.0.1:6379/1\nkeyPrefix: "mesh:"', undefined, /keyPrefix "mesh:" puts the agents where the coordinator does not read them/]
  ])('fails with %s, naming both and the fix', (_what, extra, envText, detail) => {
    const result = withCoordinator(extra, envText)
    expect(result).toMatchObject({ ok: false, detail: expect.stringMatching(detail) })
    expect(result?.fix).toBeTruthy()
    expect(JSON.stringify(result)).not.toContain('secret')
  })

  it('is not run without a coordinator in the config', () => {
    expect(checkCoordinatorRedis(parseConfig(base, '/etc/aitbc/mesh.yaml', {}))).toBeUndefined()
  })
})
