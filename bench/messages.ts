// Benchmark: receipted coordination messages between two daemons, each with its own Redis.
// Prints the sustained rate (send to delivered receipt back at the sender), p50/p99
// send-to-receipt latency at 1,000 messages/s offered, and, in the same run, the same count of
// fire-and-forget Redis pub/sub messages on loopback (what AITBC used before) and, when nats-server
// is installed, NATS JetStream with file storage (publish → consumer ack) as the references; and
// per phase the daemons' worst event-loop delay and GC pauses, to attribute the p99.
//   npm run bench:messages [-- --count 20000 --size 1024 --rate 1000 --seconds 5 --window 2000]
import { mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { ControlClient } from '../src/control/client.js'
import { freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { DaemonPhase, phaseLines } from './daemon-metrics.js'
import { jetStreamReference, startNats, type JetStreamResult } from './nats.js'
import { freePort, startRedis } from './redis.js'
import { line, numberArg, summarize } from './stats.js'

const COUNT = numberArg('count', 20000)
const SIZE = numberArg('size', 1024)
const RATE = numberArg('rate', 1000)
const SECONDS = numberArg('seconds', 5)
const WINDOW = numberArg('window', 2000)
/** Redis durability for the daemons' stores: the append-only file (everysec), or none. */
const APPEND_ONLY = !process.argv.includes('--no-aof')

/** Redis pub/sub, fire-and-forget, as the old coordinator did: publish everything, count what arrives. */
async function redisPubSubReference (port: number, count: number, body: string): Promise<{ ms: number, received: number }> {
  const sub = new Redis({ port, host: '127.0.0.1' })
  const pub = new Redis({ port, host: '127.0.0.1' })
  let received = 0
  await sub.subscribe('aitbc:coordination')
  await pub.ping()
  const started = performance.now()
  let last = started
  sub.on('message', () => { received++; last = performance.now() })
  for (let i = 0; i < count; i++) void pub.publish('aitbc:coordination', body)
  // The quiet second counts from when the publishes are queued, not from before the connections.
  last = Math.max(last, performance.now())
  // Wait until everything arrived or nothing has arrived for a second (pub/sub has no receipts).
  await waitFor('pub/sub drained', () => received >= count || performance.now() - last > 1000, 60000, 5)
  const ms = last - started
  sub.disconnect()
  pub.disconnect()
  return { ms, received }
}

function jetStreamLines (result: JetStreamResult | null, version: string | undefined): string[] {
  if (result == null) return [`${'reference: NATS JetStream'.padEnd(44)} skipped: nats-server is not installed (Debian package nats-server)`]
  const rate = result.acked / (result.sustainedMs / 1000)
  return [
    `${`reference: JetStream ${version ?? ''}, file store`.padEnd(44)} ${result.acked} of ${COUNT} acked in ${(result.sustainedMs / 1000).toFixed(2)} s = ${Math.round(rate)} msg/s (publish → consumer ack confirmed)`,
    line(`JetStream publish to ack at ${RATE} msg/s`, result.latencies)
  ]
}

function jetStreamRatios (rate: number, latencies: number[], result: JetStreamResult | null): string[] {
  if (result == null) return []
  const mesh = summarize(latencies)
  const ref = summarize(result.latencies)
  return [
    `${'ratio receipted / JetStream (rate)'.padEnd(44)} ${(rate / (result.acked / (result.sustainedMs / 1000))).toFixed(3)}`,
    `${'ratio latency mesh / JetStream'.padEnd(44)} p50 ${(mesh.p50 / ref.p50).toFixed(1)}x  p99 ${(mesh.p99 / ref.p99).toFixed(1)}x`
  ]
}

async function main (): Promise<void> {
  const hosts = await freeLoopbackBlock(2)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-messages-'))
  const redis = [await startRedis(mkdtempSync(join(baseDir, 'r0-')), APPEND_ONLY), await startRedis(mkdtempSync(join(baseDir, 'r1-')), APPEND_ONLY)]
  const http = new Map([['aitbc', `127.0.0.1:${await freePort()}`], ['aitbc1', `127.0.0.1:${await freePort()}`]])
  // Without the append-only file the store can lose acknowledged writes: the daemons are told to
  // accept that, or they would report themselves degraded and never be seen online.
  const store = APPEND_ONLY ? {} : { store: { durability: 'accept' } }
  const mesh = await LocalMesh.create(baseDir, [
    { name: 'aitbc', role: 'genesis', host: hosts[0]!, config: { redis: redis[0]!.url, http: http.get('aitbc'), ...store } },
    { name: 'aitbc1', role: 'follower', host: hosts[1]!, config: { redis: redis[1]!.url, http: http.get('aitbc1'), ...store } }
  ], { env: process.env.BENCH_DAEMON_NODE_OPTIONS != null ? { NODE_OPTIONS: process.env.BENCH_DAEMON_NODE_OPTIONS } : {} })
  const clients: ControlClient[] = []
  const body = 'x'.repeat(SIZE)
  let nats: Awaited<ReturnType<typeof startNats>> = null
  try {
    await mesh.startAll()
    const client = await mesh.client('aitbc')
    const watcher = await mesh.client('aitbc')
    clients.push(client, watcher)
    await waitFor('aitbc1 online', async () => (await client.call<Array<{ status: string }>>('peers')).every(p => p.status === 'online'), 20000, 50)

    const delivered = new Map<string, number>()
    const failed = new Set<string>()
    void watcher.call('messages.watch', {}, {
      onEvent: e => {
        const event = e as { id: string, state: string }
        if (event.state === 'delivered') delivered.set(event.id, performance.now())
        else failed.add(event.id)
      }
    }).catch(() => {})
    // Warm-up (also makes sure the watch is in place).
    const warm = await client.call<{ id: string }>('messages.send', { to: 'aitbc1', body, kind: 'bench' })
    await waitFor('warm-up delivered', () => delivered.has(warm.id), 10000, 5)

    // 1. Sustained: COUNT messages with up to WINDOW sends outstanding.
    const ids: string[] = []
    const sustainedPhase = await DaemonPhase.start(http)
    const started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: WINDOW }, async () => {
      while (next < COUNT) {
        next++
        ids.push((await client.call<{ id: string }>('messages.send', { to: 'aitbc1', body, kind: 'bench' })).id)
      }
    }))
    const accepted = performance.now() - started
    await waitFor('every message receipted', () => ids.every(id => delivered.has(id) || failed.has(id)), 300000, 20)
    const finished = Math.max(...ids.map(id => delivered.get(id) ?? 0))
    const sustainedDaemons = await sustainedPhase.stop()
    const sustainedMs = finished - started
    const lost = ids.filter(id => !delivered.has(id)).length
    const inboxCount = (await (await mesh.client('aitbc1')).call<unknown[]>('inbox.list', { limit: 100000 })).length

    // 2. Latency at RATE messages/s offered, for SECONDS.
    const latencies: number[] = []
    const sentAt = new Map<string, number>()
    const total = RATE * SECONDS
    const pacedPhase = await DaemonPhase.start(http)
    // The benchmark's own loop times every send and receipt: a stall here shows as latency too.
    const benchLoop = monitorEventLoopDelay({ resolution: 1 })
    benchLoop.enable()
    const t0 = performance.now()
    const pending: Array<Promise<void>> = []
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / RATE
      const wait = due - performance.now()
      if (wait > 1) await new Promise(resolve => setTimeout(resolve, wait))
      const sendStart = performance.now()
      pending.push(client.call<{ id: string }>('messages.send', { to: 'aitbc1', body, kind: 'bench' }).then(r => { sentAt.set(r.id, sendStart) }))
    }
    await Promise.all(pending)
    await waitFor('paced messages receipted', () => [...sentAt.keys()].every(id => delivered.has(id) || failed.has(id)), 60000, 20)
    const pacedDaemons = await pacedPhase.stop()
    benchLoop.disable()
    for (const [id, at] of sentAt) { const d = delivered.get(id); if (d != null) latencies.push(d - at) }

    // 3. Reference: Redis pub/sub on loopback, same count and size, in this run.
    const reference = await redisPubSubReference(redis[0]!.port, COUNT, body)

    // 4. Reference: NATS JetStream, file storage, same count, size, window and pacing, in this run.
    nats = await startNats(mkdtempSync(join(baseDir, 'nats-')))
    const jetStream = nats != null ? await jetStreamReference(nats.port, { count: COUNT, body, window: WINDOW, rate: RATE, seconds: SECONDS }) : null

    const rate = COUNT / (sustainedMs / 1000)
    const refRate = reference.received / (reference.ms / 1000)
    process.stdout.write([
      `aitbc-mesh message benchmark: 2 daemons on ${hosts.join(', ')} port 7070, Redis on both, ${SIZE}-byte messages, node ${process.version}`,
      '',
      `${'sustained, send to delivered receipt'.padEnd(44)} ${COUNT} in ${(sustainedMs / 1000).toFixed(2)} s = ${Math.round(rate)} msg/s (accepted at ${Math.round(COUNT / (accepted / 1000))} msg/s); lost ${lost}; receiver inbox ${inboxCount} (incl. warm-up)`,
      line(`send to receipt at ${RATE} msg/s offered`, latencies),
      `${'reference: Redis pub/sub fire-and-forget'.padEnd(44)} ${reference.received} of ${COUNT} received in ${(reference.ms / 1000).toFixed(2)} s = ${Math.round(refRate)} msg/s, lost ${COUNT - reference.received}, no receipts`,
      ...jetStreamLines(jetStream, nats?.version),
      '',
      `${'ratio receipted / pub/sub (rate)'.padEnd(44)} ${(rate / refRate).toFixed(3)}`,
      ...jetStreamRatios(rate, latencies, jetStream),
      '',
      'daemons during the benchmark (from /metrics; event-loop delay is the worst of the phase; store writes are batches):',
      ...phaseLines('sustained', sustainedDaemons),
      ...phaseLines(`at ${RATE} msg/s`, pacedDaemons),
      `${`  at ${RATE} msg/s, this benchmark process`.padEnd(44)} event-loop delay p99=${(benchLoop.percentile(99) / 1e6).toFixed(1)} ms max=${(benchLoop.max / 1e6).toFixed(1)} ms; machine load average ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores`,
      '',
      'targets: >= JetStream msg/s with 0 loss; p99 send-to-receipt <= 10 ms at 1,000 msg/s'
    ].join('\n') + '\n')
  } finally {
    for (const c of clients) c.close()
    await mesh.stopAll()
    for (const r of redis) r.proc.kill()
    nats?.proc.kill()
    rmSync(baseDir, { recursive: true, force: true })
  }
}

await main()
