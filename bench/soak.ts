// Soak benchmark: many receipted messages between two daemons, each with its own Redis, with
// retention configured, to show that memory, Redis and start time stay flat once retention is
// reached. Prints, every --every messages: sender and receiver RSS, each Redis's used_memory and
// key count, and each daemon's worst event-loop delay over that stretch (from /metrics, which
// resets it at each scrape). At the end: the receiver's start-to-ready time and the latency of
// `inbox --limit 10` (as the control call).
//   npm run bench:soak [-- --count 1000000 --size 1024 --retain 100000 --every 100000 --window 1000 --ttl 300]
// (or SOAK_COUNT=... and so on in the environment)
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { ControlClient } from '../src/control/client.js'
import { freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { freePort, startRedis } from './redis.js'
import { line, numberArg } from './stats.js'
import { RETENTION_PRUNE_BATCH, RETENTION_PRUNE_INTERVAL_MS } from '../src/constants.js'

const COUNT = numberArg('count', 1_000_000, 'SOAK_')
const SIZE = numberArg('size', 1024, 'SOAK_')
/** Inbox and sent-message retention by count (age: one day, never reached in a run). */
const RETAIN = numberArg('retain', 100_000, 'SOAK_')
const EVERY = numberArg('every', 100_000, 'SOAK_')
const WINDOW = numberArg('window', 1000, 'SOAK_')
/** Message TTL: the receiver keeps each dedupe id this long, so its key count settles at about rate × TTL. */
const TTL_S = numberArg('ttl', 300, 'SOAK_')
const INBOX_CALLS = 50

const MB = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`

function rssOf (pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024
}

async function redisFigures (client: Redis): Promise<{ used: number, keys: number }> {
  const info = await client.info('memory')
  return { used: Number(/^used_memory:(\d+)/m.exec(info)?.[1]), keys: await client.dbsize() }
}

/** The worst event-loop delay since the last scrape (prom-client resets its histogram when scraped). */
async function worstLoopDelayMs (httpAddress: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text()
  return Number(/^nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text)?.[1] ?? NaN) * 1000
}

async function main (): Promise<void> {
  const hosts = await freeLoopbackBlock(2)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-soak-'))
  const redis = [await startRedis(mkdtempSync(join(baseDir, 'r0-'))), await startRedis(mkdtempSync(join(baseDir, 'r1-')))]
  const http = [`${hosts[0]!}:${await freePort()}`, `${hosts[1]!}:${await freePort()}`]
  const retention = { inbox: { maxAgeS: 86400, maxCount: RETAIN }, sent: { maxAgeS: 86400, maxCount: RETAIN } }
  const mesh = await LocalMesh.create(baseDir, [
    { name: 'aitbc', role: 'genesis', host: hosts[0]!, config: { redis: redis[0]!.url, http: http[0], retention } },
    { name: 'aitbc1', role: 'follower', host: hosts[1]!, config: { redis: redis[1]!.url, http: http[1], retention } }
  ])
  const redisClients = redis.map(r => new Redis({ port: r.port, host: '127.0.0.1' }))
  const clients: ControlClient[] = []
  const body = 'x'.repeat(SIZE)
  let cleaned: Promise<void> | undefined
  const cleanup = async (): Promise<void> => {
    cleaned ??= (async () => {
      for (const c of clients) c.close()
      for (const c of redisClients) c.disconnect()
      await mesh.stopAll()
      for (const r of redis) r.proc.kill()
      rmSync(baseDir, { recursive: true, force: true })
    })()
    await cleaned
  }
  // A long run stopped with Ctrl-C leaves no daemon or redis-server behind.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void cleanup().finally(() => process.exit(130)) })
  try {
    await mesh.startAll()
    const client = await mesh.client('aitbc')
    const watcher = await mesh.client('aitbc')
    clients.push(client, watcher)
    await waitFor('aitbc1 online', async () => (await client.call<Array<{ status: string }>>('peers')).every(p => p.status === 'online'), 20000, 50)
    let delivered = 0
    let failed = 0
    void watcher.call('messages.watch', {}, {
      onEvent: e => { if ((e as { state: string }).state === 'delivered') delivered++; else failed++ }
    }).catch(() => {})
    await worstLoopDelayMs(http[0]!)
    await worstLoopDelayMs(http[1]!)

    process.stdout.write([
      `aitbc-mesh soak benchmark: 2 daemons on ${hosts.join(', ')}, Redis (append-only, everysec) on both, ${COUNT} messages of ${SIZE} bytes, node ${process.version}`,
      `retention: inbox and sent maxCount ${RETAIN}, maxAgeS 86400; pruning every ${RETENTION_PRUNE_INTERVAL_MS / 1000} s in batches of ${RETENTION_PRUNE_BATCH}; dedupe ids until each message expires (TTL ${TTL_S} s)`,
      'loop max: worst event-loop delay of sender/receiver over the stretch; bench: this process\'s own (it mostly waits), the machine\'s scheduling noise',
      '',
      `${'sent'.padStart(9)} ${'msg/s'.padStart(7)} ${'sender RSS'.padStart(11)} ${'recv RSS'.padStart(10)} ${'sender Redis'.padStart(13)} ${'keys'.padStart(8)} ${'recv Redis'.padStart(11)} ${'keys'.padStart(8)} ${'loop max s/r'.padStart(14)} ${'bench'.padStart(8)} ${'kept sent/inbox'.padStart(15)}`
    ].join('\n') + '\n')

    // The benchmark's own loop delay: what scheduling on this machine costs a process that mostly waits.
    const benchLoop = monitorEventLoopDelay({ resolution: 10 })
    benchLoop.enable()
    let sent = 0
    let stretchStart = performance.now()
    let stretchBase = 0
    const started = performance.now()
    while (sent < COUNT) {
      const target = Math.min(COUNT, sent + EVERY)
      await Promise.all(Array.from({ length: WINDOW }, async () => {
        while (sent < target) {
          sent++
          await client.call('messages.send', { to: 'aitbc1', body, kind: 'soak', ttl: TTL_S })
        }
      }))
      await waitFor('receipts of this stretch', () => delivered + failed >= sent, 600_000, 20)
      const rate = (target - stretchBase) / ((performance.now() - stretchStart) / 1000)
      stretchBase = target
      const [r0, r1] = [await redisFigures(redisClients[0]!), await redisFigures(redisClients[1]!)]
      const loop = [await worstLoopDelayMs(http[0]!), await worstLoopDelayMs(http[1]!)]
      const kept = `${await redisClients[0]!.zcard('mesh:out-index')}/${await redisClients[1]!.zcard('mesh:inbox-index')}`
      process.stdout.write(`${String(sent).padStart(9)} ${String(Math.round(rate)).padStart(7)} ${MB(rssOf(mesh.node('aitbc').process?.pid)).padStart(11)} ${MB(rssOf(mesh.node('aitbc1').process?.pid)).padStart(10)} ` +
        `${MB(r0.used).padStart(13)} ${String(r0.keys).padStart(8)} ${MB(r1.used).padStart(11)} ${String(r1.keys).padStart(8)} ${`${loop[0]!.toFixed(0)}/${loop[1]!.toFixed(0)} ms`.padStart(14)} ${`${(benchLoop.max / 1e6).toFixed(0)} ms`.padStart(8)} ${kept.padStart(15)}\n`)
      benchLoop.reset()
      stretchStart = performance.now()
    }
    const totalS = (performance.now() - started) / 1000

    // The receiver's start with all that history behind it.
    await mesh.stop('aitbc1')
    const restart = performance.now()
    const node = await mesh.start('aitbc1', 120_000)
    const startToReady = performance.now() - restart
    const readyLine = node.logLines.filter(l => l.includes('"event":"ready"')).at(-1)
    const startMs = readyLine != null ? (JSON.parse(readyLine) as { startMs?: number }).startMs : undefined
    const receiver = await mesh.client('aitbc1')
    clients.push(receiver)
    const latencies: number[] = []
    let answered = 0
    for (let i = 0; i < INBOX_CALLS; i++) {
      const t0 = performance.now()
      answered = (await receiver.call<unknown[]>('inbox.list', { limit: 10 })).length
      latencies.push(performance.now() - t0)
    }
    const inboxIndex = await redisClients[1]!.zcard('mesh:inbox-index')
    process.stdout.write([
      '',
      `${'total'.padEnd(44)} ${sent} sent in ${totalS.toFixed(0)} s = ${Math.round(sent / totalS)} msg/s; delivered ${delivered}, failed ${failed}; receiver inbox index ${inboxIndex}`,
      `${'receiver start to ready (process spawn)'.padEnd(44)} ${startToReady.toFixed(0)} ms (daemon's own startMs ${startMs ?? '?'} ms)`,
      line(`inbox --limit 10 (control call, ${answered} answered)`, latencies),
      '',
      'goals: RSS, Redis memory and start time flat once retention is reached; worst event-loop delay < 50 ms'
    ].join('\n') + '\n')
  } finally {
    await cleanup()
  }
}

await main()
