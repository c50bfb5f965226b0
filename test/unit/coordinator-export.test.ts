import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { waitFor } from '../helpers.js'
import { retryAfterMs } from '../../src/coordinator/client.js'
import { CoordinatorExport, DEFAULT_EXPORT_OPTIONS, keepLiveCapacity, type ExportedView } from '../../src/coordinator/export.js'
import { bucketFor } from '../../src/coordinator/token-bucket.js'
import { COORDINATOR_RATE_LIMITS_PER_MIN, EXPORT_MAX_LIVE_AGENTS, EXPORT_MAX_LIVE_NON_ACTIVE_AGENTS, EXPORT_RETRY_AFTER_DEFAULT_MS, EXPORT_RETRY_AFTER_MAX_MS } from '../../src/constants.js'

describe('coordinator export: limits', () => {
  it('keeps 120 active and 30 other remote agents live with the coordinator\'s limits, and says so in the constants', () => {
    expect(keepLiveCapacity(DEFAULT_EXPORT_OPTIONS)).toEqual({ active: 120, nonActive: 30 })
    expect(EXPORT_MAX_LIVE_AGENTS).toBe(120)
    expect(EXPORT_MAX_LIVE_NON_ACTIVE_AGENTS).toBe(30)
    // A keepalive every 90 s for 120 agents is 80 heartbeats a minute: under the limit of 100.
    expect(EXPORT_MAX_LIVE_AGENTS * 60_000 / DEFAULT_EXPORT_OPTIONS.keepaliveIntervalMs).toBeLessThan(COORDINATOR_RATE_LIMITS_PER_MIN.heartbeat)
    expect(DEFAULT_EXPORT_OPTIONS.keepaliveIntervalMs).toBeLessThan(120_000 - 20_000)
  })

  it.each(Object.entries(COORDINATOR_RATE_LIMITS_PER_MIN))('paces %s so that no 60 s window exceeds its limit of %i, even when hammered', (_route, limit) => {
    const t0 = 1_000_000
    const bucket = bucketFor(limit, DEFAULT_EXPORT_OPTIONS.rateShare, t0)
    const sent: number[] = []
    // Ask every 10 ms for 5 minutes: send whenever the bucket allows.
    for (let now = t0; now < t0 + 300_000; now += 10) {
      if (bucket.waitMs(now) === 0) {
        bucket.take(now)
        sent.push(now)
      }
    }
    let worst = 0
    for (let i = 0, j = 0; i < sent.length; i++) {
      while (sent[i]! - sent[j]! >= 60_000) j++
      worst = Math.max(worst, i - j + 1)
    }
    expect(worst).toBeLessThanOrEqual(limit)
    // Steady state: the export's share of the limit, not much less.
    expect(sent.length).toBeGreaterThan(limit * DEFAULT_EXPORT_OPTIONS.rateShare * 5 * 0.95)
  })

  it('a 429 pauses the route until Retry-After and sends nothing saved up right after it', () => {
    const t0 = 5_000_000
    const bucket = bucketFor(100, 0.8, t0)
    bucket.pause(t0 + 7000)
    expect(bucket.waitMs(t0 + 6999)).toBe(1)
    expect(bucket.waitMs(t0 + 7000)).toBeGreaterThan(0)
    expect(bucket.waitMs(t0 + 7000 + 750)).toBe(0)
  })

  it('reads Retry-After as seconds or a date, bounded, with a default for nonsense', () => {
    const now = Date.parse('2026-12-01T00:00:00Z')
    expect(retryAfterMs('7', now)).toBe(7000)
    expect(retryAfterMs('Tue, 01 Dec 2026 00:00:30 GMT', now)).toBe(30_000)
    expect(retryAfterMs('Tue, 01 Dec 2025 00:00:30 GMT', now)).toBe(0)
    expect(retryAfterMs('999999', now)).toBe(EXPORT_RETRY_AFTER_MAX_MS)
    expect(retryAfterMs(null, now)).toBe(EXPORT_RETRY_AFTER_DEFAULT_MS)
    expect(retryAfterMs('soon', now)).toBe(EXPORT_RETRY_AFTER_DEFAULT_MS)
    expect(retryAfterMs('-5', now)).toBe(EXPORT_RETRY_AFTER_DEFAULT_MS)
  })
})

describe('coordinator export: register body', () => {
  const source = { node: 'aitbc', watch: () => () => {}, get: () => undefined, current: () => [] }
  const record: ExportedView = {
    agent_id: 'a1', agent_type: 'worker', status: 'busy', capabilities: ['gpu'], services: ['infer'], endpoints: { http: 'http://x' },
    metadata: { k: 'v' }, load_metrics: { cpu: 0.5 }, last_heartbeat: new Date().toISOString()
  }
  const exporter = (recordFields: 15 | 13): CoordinatorExport => new CoordinatorExport({ url: 'http://127.0.0.1:1', source, log: pino({ level: 'silent' }), recordFields, chainId: 'ait-hub', islandId: 'default' })

  it('carries the record\'s chain and island, else the configured ones; the older release gets neither', () => {
    expect(exporter(15).registerBody(record)).toEqual({ agent_id: 'a1', agent_type: 'worker', capabilities: ['gpu'], services: ['infer'], endpoints: { http: 'http://x' }, metadata: { k: 'v' }, chain_id: 'ait-hub', island_id: 'default' })
    expect(exporter(15).registerBody({ ...record, chain_id: 'ait-devnet', island_id: 'isl-2' })).toMatchObject({ chain_id: 'ait-devnet', island_id: 'isl-2' })
    expect(exporter(15).registerBody({ ...record, chain_id: '', island_id: null })).toMatchObject({ chain_id: 'ait-hub', island_id: 'default' })
    const older = exporter(13).registerBody({ ...record, chain_id: 'ait-devnet' })
    expect('chain_id' in older || 'island_id' in older).toBe(false)
  })
})

describe('coordinator export: faults of its own', () => {
  it('a registry that throws is logged and never thrown into the registry or a timer; stop still stops', async () => {
    const lines: Array<Record<string, unknown>> = []
    const sink = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
    let notify: ((change: { agentId: string, owner: string }) => void) | undefined
    const source = {
      node: 'aitbc',
      watch: (listener: (change: { agentId: string, owner: string }) => void) => { notify = listener; return () => { notify = undefined } },
      get: () => { throw new Error('registry broken') },
      current: () => { throw new Error('registry broken') }
    }
    const exporter = new CoordinatorExport({ url: 'http://127.0.0.1:9', source, log: pino({ level: 'info' }, sink), recordFields: 15, chainId: 'ait-hub', islandId: 'default', options: { reconcileIntervalMs: 20 } })
    exporter.start()
    expect(() => { notify!({ agentId: 'a1', owner: 'aitbc1' }) }).not.toThrow()
    await waitFor('errors logged from reconcile and pump', () => new Set(lines.filter(l => l.event === 'coordinator_export_error').map(l => l.where)).size >= 2, 5000)
    expect(lines.find(l => l.event === 'coordinator_export_error')).toMatchObject({ level: 50, err: 'registry broken' })
    await exporter.stop()
    expect(notify).toBeUndefined()
  })

  it('is built from the config only when coordinator.url is set, with the configured chain (else the node\'s probed chain) and island', () => {
    const registry = { watch: () => () => {}, get: () => undefined, list: () => [], entry: () => undefined }
    const log = pino({ level: 'silent' })
    const base = { node: { name: 'aitbc', role: 'genesis' as const }, agents: { islandId: 'isl-1' }, probes: { chainIds: [] as string[] }, coordinator: { recordFields: 15 as const, inactiveAfterS: 3600 } }
    expect(CoordinatorExport.fromConfig(base, registry, log)).toBeUndefined()
    const exporter = CoordinatorExport.fromConfig({ ...base, coordinator: { recordFields: 15, inactiveAfterS: 3600, url: 'http://127.0.0.1:8107' } }, registry, log)!
    const record: ExportedView = { agent_id: 'a', agent_type: 'worker', status: 'active', capabilities: [], services: [], endpoints: {}, metadata: {}, load_metrics: {}, last_heartbeat: new Date().toISOString() }
    expect(exporter.registerBody(record)).toMatchObject({ chain_id: 'ait-hub', island_id: 'isl-1' })
    const devnet = CoordinatorExport.fromConfig({ ...base, agents: { chainId: 'ait-devnet', islandId: 'isl-1' }, coordinator: { recordFields: 15, inactiveAfterS: 3600, url: 'http://127.0.0.1:8107' } }, registry, log)!
    expect(devnet.registerBody(record)).toMatchObject({ chain_id: 'ait-devnet' })
    // Without agents.chainId, the first chain the node probes; agents.chainId still wins.
    const probed = CoordinatorExport.fromConfig({ ...base, probes: { chainIds: ['ait-mainnet', 'ait-devnet'] }, coordinator: { recordFields: 15, inactiveAfterS: 3600, url: 'http://127.0.0.1:8107' } }, registry, log)!
    expect(probed.registerBody(record)).toMatchObject({ chain_id: 'ait-mainnet' })
    const both = CoordinatorExport.fromConfig({ ...base, agents: { chainId: 'ait-devnet', islandId: 'isl-1' }, probes: { chainIds: ['ait-mainnet'] }, coordinator: { recordFields: 15, inactiveAfterS: 3600, url: 'http://127.0.0.1:8107' } }, registry, log)!
    expect(both.registerBody(record)).toMatchObject({ chain_id: 'ait-devnet' })
  })
})
