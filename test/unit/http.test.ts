import { request, type IncomingMessage } from 'node:http'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/config.js'
import { ConfigError } from '../../src/errors.js'
import { HttpService, type HttpSource } from '../../src/http/index.js'
import { connectionEdges } from '../../src/http/status.js'
import { Membership } from '../../src/mesh/membership.js'
import { PeerTable, type PeerState } from '../../src/mesh/peer-table.js'
import type { StoreBackend } from '../../src/store/backend.js'
import { durabilityView, type DurabilityView } from '../../src/store/durability.js'
import { observedStore } from '../../src/store/observed.js'

const FILE = '/etc/aitbc/mesh.yaml'
const base = 'node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc-mesh\n'

function configError (text: string): ConfigError {
  try {
    parseConfig(text, FILE, {})
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error(`expected a ConfigError for:\n${text}`)
}

describe('config: http', () => {
  it('is off when absent', () => {
    expect(parseConfig(base, FILE, {}).http).toBeUndefined()
  })

  it('accepts loopback addresses: 127.0.0.0/8, localhost, [::1]', () => {
    expect(parseConfig(`${base}http: 127.0.0.1:7071\n`, FILE, {}).http).toEqual({ host: '127.0.0.1', port: 7071 })
    expect(parseConfig(`${base}http: 127.44.5.6:9100\n`, FILE, {}).http).toEqual({ host: '127.44.5.6', port: 9100 })
    expect(parseConfig(`${base}http: localhost:7071\n`, FILE, {}).http).toEqual({ host: 'localhost', port: 7071 })
    expect(parseConfig(`${base}http: "[::1]:7071"\n`, FILE, {}).http).toEqual({ host: '::1', port: 7071 })
  })

  it('refuses a non-loopback host, naming the field and what is expected', () => {
    for (const value of ['0.0.0.0:7071', '10.1.223.40:7071', '"[::]:7071"', 'example.com:7071', '128.0.0.1:7071']) {
      const err = configError(`${base}http: ${value}\n`)
      expect(err.field).toBe('http')
      expect(err.message).toContain(`${FILE}: http: expected a loopback address and port such as 127.0.0.1:7071 (127.0.0.0/8, [::1] or localhost)`)
      expect(err.message).toContain('is not a loopback address')
    }
  })

  it('refuses values that are not host:port', () => {
    expect(configError(`${base}http: 7071\n`).message).toMatch(/^\/etc\/aitbc\/mesh.yaml: http: expected "host:port"|expected a loopback address/)
    expect(configError(`${base}http: "127.0.0.1"\n`).message).toContain('got "127.0.0.1"')
    expect(configError(`${base}http: "127.0.0.1:99999"\n`).message).toBe(`${FILE}: http: port 99999 is out of range 1-65535`)
    expect(configError(`${base}http: "127.0.0.1:0"\n`).message).toBe(`${FILE}: http: port 0 is out of range 1-65535`)
    expect(configError(`${base}http: "127.0.0.300:7071"\n`).message).toContain('is not a loopback address')
    expect(configError(`${base}http: { host: 127.0.0.1, port: 7071 }\n`).field).toBe('http')
  })
})

let ids: Awaited<ReturnType<typeof peerIdFromPrivateKey>>[]
beforeAll(async () => {
  ids = await Promise.all([0, 1, 2].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
})

function heartbeat (connected: string[]): PeerState['lastHeartbeat'] {
  return { seq: 1n, startedAtMs: 1, sentAtMs: 1, healthy: true, p2pConnections: connected.length, connected }
}

describe('connection graph', () => {
  it('joins this node\'s connections with those live peers report, each pair once, unknown names left out', () => {
    const peers = [
      { name: 'aitbc1', connected: true, lastHeartbeat: heartbeat(['aitbc', 'aitbc2', 'stranger']) },
      { name: 'aitbc2', connected: false, lastHeartbeat: heartbeat(['aitbc1']) },
      { name: 'aitbc3', connected: false, lastHeartbeat: heartbeat(['aitbc2']) }
    ] as unknown as PeerState[]
    // aitbc3 is offline: what it last said no longer counts.
    const edges = connectionEdges('aitbc', peers, p => p.name !== 'aitbc3')
    expect(edges).toEqual([['aitbc', 'aitbc1'], ['aitbc1', 'aitbc2']])
  })

  it('an edge to this node comes only from this node\'s own connection state', () => {
    const peers = [{ name: 'aitbc1', connected: false, lastHeartbeat: heartbeat(['aitbc']) }] as unknown as PeerState[]
    expect(connectionEdges('aitbc', peers, () => true)).toEqual([])
  })
})

interface Fake { source: HttpSource, table: PeerTable, store: { ok: boolean, reason?: string }, durability: { view: DurabilityView, issue?: string } }

function fakeSource (): Fake {
  const table = new PeerTable([{ name: 'aitbc1', role: 'follower', peerId: ids[1]!, addr: `/ip4/127.0.0.2/tcp/7070/p2p/${ids[1]!.toString()}` }], 3000)
  const store: { ok: boolean, reason?: string } = { ok: true }
  const durability: { view: DurabilityView, issue?: string } = { view: durabilityView({ level: 'always', detail: 'SQLite: WAL, synchronous=FULL' }) }
  const membership = new Membership({ node: 'aitbc', peers: table, log: pino({ level: 'silent' }), startedAt: Date.now() })
  const source: HttpSource = {
    node: { name: 'aitbc', role: 'genesis' },
    heartbeatIntervalMs: 200,
    startedAt: Date.now(),
    peerViews: async () => [],
    peers: () => table.all(),
    meshView: () => membership.view(),
    liveness: (state, now) => table.liveness(state, now).liveness,
    localHealth: () => ({ healthy: true, blockHeight: 5 }),
    storeHealth: () => store,
    storeKind: 'embedded',
    storeDurability: () => durability,
    agents: () => [],
    recentMessages: () => [],
    recentOperations: async () => []
  }
  return { source, table, store, durability }
}

async function get (url: string, method = 'GET'): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    request(url, { method }, res => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    }).on('error', reject).end()
  })
}

describe('HttpService', () => {
  let service: HttpService | undefined
  afterEach(async () => { await service?.stop() })

  async function started (fake: Fake): Promise<HttpService> {
    service = new HttpService({ address: { host: '127.0.0.1', port: 0 }, node: { name: 'aitbc', role: 'genesis' }, log: pino({ level: 'silent' }) })
    await service.start(fake.source)
    return service
  }

  it('/health is 200 while the store is usable and 503 with the reason when not', async () => {
    const fake = fakeSource()
    const http = await started(fake)
    const ok = await get(`${http.url}/health`)
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toMatchObject({ status: 'ok', node: 'aitbc', store: { ok: true }, peers: { connected: 0, configured: 1 }, reasons: [] })
    fake.store.ok = false
    fake.store.reason = 'redis: connection refused'
    const down = await get(`${http.url}/health`)
    expect(down.status).toBe(503)
    expect(JSON.parse(down.body)).toMatchObject({ status: 'unavailable', reasons: ['store: redis: connection refused'] })
    expect((await get(`${http.url}/health`, 'DELETE')).status).toBe(405)
  })

  it('/health stays 200 but says degraded, with the reason, for a store that can lose acknowledged writes; /metrics has the level', async () => {
    const fake = fakeSource()
    const http = await started(fake)
    expect((await get(`${http.url}/metrics`)).body).toContain('aitbc_mesh_store_durable{level="always"} 1')
    fake.durability.view = durabilityView({ level: 'none', detail: 'appendonly no, appendfsync everysec, save ""' })
    fake.durability.issue = 'store not durable (none: appendonly no, appendfsync everysec, save ""): no persistence: a restart of Redis loses everything'
    const degraded = await get(`${http.url}/health`)
    expect(degraded.status).toBe(200)
    expect(JSON.parse(degraded.body)).toMatchObject({
      status: 'degraded',
      store: { ok: true, durability: { level: 'none', durable: false, guarantee: 'no persistence: a restart of Redis loses everything' } },
      reasons: [fake.durability.issue]
    })
    const metrics = (await get(`${http.url}/metrics`)).body
    expect(metrics).toContain('aitbc_mesh_store_durable{level="none"} 0')
    expect(metrics).not.toContain('level="always"')
  })

  it('heartbeat ages are collected at scrape time, so peers added later (a reload) show up', async () => {
    const fake = fakeSource()
    const http = await started(fake)
    // aitbc alone, aitbc1 never heard: 1 of 2 is no majority.
    let text = await (await fetch(`${http.url}/metrics`)).text()
    expect(text).toMatch(/^aitbc_mesh_quorum 0$/m)
    expect(text).toMatch(/^aitbc_mesh_reachable_nodes 1$/m)
    expect(text).toMatch(/^aitbc_mesh_configured_nodes 2$/m)
    fake.table.recordHeartbeat(ids[1]!, heartbeat([])!, Date.now() - 1500)
    text = await (await fetch(`${http.url}/metrics`)).text()
    expect(text).toMatch(/^aitbc_mesh_quorum 1$/m)
    expect(text).toMatch(/^aitbc_mesh_reachable_nodes 2$/m)
    expect(text).toMatch(/^aitbc_mesh_heartbeat_age_seconds\{node="aitbc1"\} 1\.\d+$/m)
    expect(text).toMatch(/^aitbc_mesh_peers_configured 1$/m)
    fake.table.apply([
      { name: 'aitbc1', role: 'follower', peerId: ids[1]!, addr: `/ip4/127.0.0.2/tcp/7070/p2p/${ids[1]!.toString()}` },
      { name: 'aitbc2', role: 'follower', peerId: ids[2]!, addr: `/ip4/127.0.0.3/tcp/7070/p2p/${ids[2]!.toString()}` }
    ])
    fake.table.markConnected(ids[2]!, undefined)
    fake.table.recordHeartbeat(ids[2]!, heartbeat([])!)
    text = await (await fetch(`${http.url}/metrics`)).text()
    expect(text).toMatch(/^aitbc_mesh_heartbeat_age_seconds\{node="aitbc2"\} 0(\.\d+)?(e-\d+)?$/m)
    expect(text).toMatch(/^aitbc_mesh_peers_configured 2$/m)
    expect(text).toMatch(/^aitbc_mesh_peers_connected 1$/m)
    expect(text).toMatch(/^aitbc_mesh_peer_status\{node="aitbc2",status="online"\} 1$/m)
    expect(text).toMatch(/^aitbc_mesh_reachable_nodes 3$/m)
    expect(text).toMatch(/^aitbc_mesh_configured_nodes 3$/m)
  })

  it('each daemon has its own registry: counters do not leak between instances', async () => {
    const a = new HttpService({ address: { host: '127.0.0.1', port: 0 }, node: { name: 'a', role: 'genesis' }, log: pino({ level: 'silent' }) })
    const b = new HttpService({ address: { host: '127.0.0.1', port: 0 }, node: { name: 'b', role: 'follower' }, log: pino({ level: 'silent' }) })
    a.metrics.messageSent(3)
    a.metrics.messageSettled('delivered', 4, undefined)
    a.metrics.operationFinished('status', 'success')
    a.metrics.storeError('write')
    const textA = await a.metrics.text()
    const textB = await b.metrics.text()
    expect(textA).toMatch(/^aitbc_mesh_messages_sent_total 3$/m)
    expect(textA).toMatch(/^aitbc_mesh_receipt_latency_seconds_bucket\{le="0.005"\} 1$/m)
    expect(textA).toMatch(/^aitbc_mesh_operations_total\{operation="status",result="success"\} 1$/m)
    expect(textA).toMatch(/^aitbc_mesh_store_errors_total\{operation="write"\} 1$/m)
    expect(textB).toMatch(/^aitbc_mesh_messages_sent_total 0$/m)
    expect(textB).toMatch(/^aitbc_mesh_info\{node="b",role="follower"\} 1$/m)
  })

  it('pushes snapshots on /events and stop() ends open streams at once', async () => {
    const http = await started(fakeSource())
    const res = await new Promise<IncomingMessage>((resolve, reject) => { request(`${http.url}/events`, resolve).on('error', reject).end() })
    let data = ''
    res.setEncoding('utf8').on('data', (c: string) => { data += c })
    const closed = new Promise<void>(resolve => { res.on('close', () => { resolve() }) })
    await new Promise<void>(resolve => { const t = setInterval(() => { if ((data.match(/event: state/g) ?? []).length >= 2) { clearInterval(t); resolve() } }, 20) })
    const frame = /data: (.*)\n/.exec(data.split('event: state')[1] ?? '')![1]!
    expect(JSON.parse(frame)).toMatchObject({ node: 'aitbc', nodes: [], edges: [], store: { ok: true } })
    const t0 = Date.now()
    await http.stop()
    await closed
    expect(Date.now() - t0).toBeLessThan(1000)
    service = undefined
  })
})

describe('store errors', () => {
  it('every failed store call is counted by operation and still fails for the caller', async () => {
    const http = new HttpService({ address: { host: '127.0.0.1', port: 0 }, node: { name: 'a', role: 'genesis' }, log: pino({ level: 'silent' }) })
    const down = async (): Promise<never> => { throw new Error('store unavailable') }
    const backend = { kind: 'redis', location: 'redis://127.0.0.1:6379/2', get: down, scan: down, smembers: down, lrange: down, mget: down, zrange: down, zscore: down, zcard: down, durability: down, write: down, health: () => ({ ok: false, reason: 'down' }), whenReady: async () => false, onReady: () => {}, close: async () => {} } satisfies StoreBackend
    const store = observedStore(backend, http.metrics)
    await expect(store.write([{ op: 'set', key: 'k', value: 'v' }])).rejects.toThrow('store unavailable')
    await expect(store.write([])).rejects.toThrow('store unavailable')
    await expect(store.get('k')).rejects.toThrow('store unavailable')
    const text = await http.metrics.text()
    expect(text).toMatch(/^aitbc_mesh_store_errors_total\{operation="write"\} 2$/m)
    expect(text).toMatch(/^aitbc_mesh_store_errors_total\{operation="get"\} 1$/m)
    expect(text).toMatch(/^aitbc_mesh_store_write_seconds_count 2$/m)
    expect(store.kind).toBe('redis')
    expect(store.health()).toEqual({ ok: false, reason: 'down' })
  })

  it('every store write is timed, with how many operations its transaction held', async () => {
    const http = new HttpService({ address: { host: '127.0.0.1', port: 0 }, node: { name: 'a', role: 'genesis' }, log: pino({ level: 'silent' }) })
    const unused = async (): Promise<never> => { throw new Error('not used') }
    // A store whose writes take 30 ms: the histogram must put them above the 25 ms bound.
    const slowWrite = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 30)) }
    const backend = { kind: 'redis', location: 'redis://127.0.0.1:6379/2', get: unused, scan: unused, smembers: unused, lrange: unused, mget: unused, zrange: unused, zscore: unused, zcard: unused, durability: unused, write: slowWrite, health: () => ({ ok: true }), whenReady: async () => true, onReady: () => {}, close: async () => {} } satisfies StoreBackend
    const store = observedStore(backend, http.metrics)
    await store.write([{ op: 'set', key: 'a', value: '1' }, { op: 'set', key: 'b', value: '2' }, { op: 'del', key: 'c' }])
    const text = await http.metrics.text()
    expect(text).toMatch(/^aitbc_mesh_store_write_seconds_count 1$/m)
    expect(text).toMatch(/^aitbc_mesh_store_write_seconds_bucket\{le="0.025"\} 0$/m)
    expect(text).toMatch(/^aitbc_mesh_store_write_operations_bucket\{le="2"\} 0$/m)
    expect(text).toMatch(/^aitbc_mesh_store_write_operations_bucket\{le="5"\} 1$/m)
    expect(text).toMatch(/^aitbc_mesh_store_errors_total\{operation="write"\} 0$/m)
  })
})
