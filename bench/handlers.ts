// Benchmark: messages that get work done. Two daemons (embedded stores); the target runs a trivial
// handler (/bin/true) for each message. Prints the sustained rate of `processed` receipts back at
// the sender, and p50/p99 send-to-delivered and send-to-processed at --rate messages/s offered,
// from one sender (whose handler runs go one at a time, in arrival order) and from the whole
// window at once.
//   npm run bench:handlers [-- --count 2000 --rate 100 --seconds 5 --window 200 --concurrency 4]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ControlClient } from '../src/control/client.js'
import { freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { line, numberArg } from './stats.js'

const COUNT = numberArg('count', 2000)
const RATE = numberArg('rate', 100)
const SECONDS = numberArg('seconds', 5)
const WINDOW = numberArg('window', 200)
const CONCURRENCY = numberArg('concurrency', 4)

async function main (): Promise<void> {
  const hosts = await freeLoopbackBlock(2)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-handlers-'))
  const mesh = await LocalMesh.create(baseDir, [
    { name: 'aitbc', role: 'genesis', host: hosts[0]! },
    { name: 'aitbc1', role: 'follower', host: hosts[1]!, config: { handlers: [{ kind: 'bench.job', run: ['/bin/true'], timeout: 10 }], handlerConcurrency: CONCURRENCY } }
  ])
  const clients: ControlClient[] = []
  try {
    await mesh.startAll()
    const client = await mesh.client('aitbc')
    const watcher = await mesh.client('aitbc')
    clients.push(client, watcher)
    await waitFor('aitbc1 online', async () => (await client.call<Array<{ status: string }>>('peers')).every(p => p.status === 'online'), 20000, 50)

    const delivered = new Map<string, number>()
    const processed = new Map<string, number>()
    const failed = new Set<string>()
    void watcher.call('messages.watch', {}, {
      onEvent: e => {
        const event = e as { id: string, state: string }
        const now = performance.now()
        if (event.state === 'delivered') delivered.set(event.id, now)
        else if (event.state === 'processed') processed.set(event.id, now)
        else failed.add(event.id)
      }
    }).catch(() => {})
    const send = async (): Promise<string> => (await client.call<{ id: string }>('messages.send', { to: 'aitbc1', body: 'job', kind: 'bench.job' })).id
    const warm = await send()
    await waitFor('warm-up processed', () => processed.has(warm), 10000, 5)

    // 1. Sustained: COUNT messages with up to WINDOW sends outstanding, until every one is processed.
    const ids: string[] = []
    const started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: WINDOW }, async () => {
      while (next < COUNT) {
        next++
        ids.push(await send())
      }
    }))
    await waitFor('every message processed', () => ids.every(id => processed.has(id) || failed.has(id)), 600000, 20)
    const sustainedMs = Math.max(...ids.map(id => processed.get(id) ?? 0)) - started
    const notProcessed = ids.filter(id => !processed.has(id)).length

    // 2. Latency at RATE messages/s offered, for SECONDS.
    const sentAt = new Map<string, number>()
    const t0 = performance.now()
    const pending: Array<Promise<void>> = []
    for (let i = 0; i < RATE * SECONDS; i++) {
      const wait = t0 + (i * 1000) / RATE - performance.now()
      if (wait > 1) await new Promise(resolve => setTimeout(resolve, wait))
      const at = performance.now()
      pending.push(send().then(id => { sentAt.set(id, at) }))
    }
    await Promise.all(pending)
    await waitFor('paced messages processed', () => [...sentAt.keys()].every(id => processed.has(id) || failed.has(id)), 120000, 20)
    const toDelivered: number[] = []
    const toProcessed: number[] = []
    for (const [id, at] of sentAt) {
      const d = delivered.get(id)
      const p = processed.get(id)
      // An outcome can overtake the receipt (it settles the target delivered first): then both times are the outcome's.
      if (d != null || p != null) toDelivered.push((d ?? p!) - at)
      if (p != null) toProcessed.push(p - at)
    }
    process.stdout.write([
      `aitbc-mesh handler benchmark: 2 daemons on ${hosts.join(', ')} port 7070, embedded stores, handler /bin/true, handlerConcurrency ${CONCURRENCY}, node ${process.version}`,
      '',
      `${'sustained, send to processed (one sender)'.padEnd(44)} ${COUNT} in ${(sustainedMs / 1000).toFixed(2)} s = ${Math.round(COUNT / (sustainedMs / 1000))} msg/s; not processed ${notProcessed}`,
      line(`send to delivered at ${RATE} msg/s offered`, toDelivered),
      line(`send to processed at ${RATE} msg/s offered`, toProcessed),
      '',
      'one sender\'s runs go one at a time (arrival order), so the sustained rate is one process start after another'
    ].join('\n') + '\n')
  } finally {
    for (const c of clients) c.close()
    await mesh.stopAll()
    rmSync(baseDir, { recursive: true, force: true })
  }
}

await main()
