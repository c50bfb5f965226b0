import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/config.js'
import { DOCTOR_MAX_CLOCK_SKEW_MS } from '../../src/constants.js'
import { checkClockSkew, type PeerViewLike } from '../../src/doctor/checks.js'
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
