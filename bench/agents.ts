// Benchmark: time from `agents register` on one node until the agent is known on every other
// node (p50/p99 over many registrations, at 3 and 10 nodes on 127.x.y.z port 7070), and how
// many registrations per second one node sustains.
//   npm run bench:agents [-- --registrations 200 --sizes 3,10 --burst 2000 --store embedded|redis]
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ControlClient } from '../src/control/client.js'
import { freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { startRedis } from './redis.js'
import { watchAgents } from './agent-watch.js'
import { line } from './stats.js'

function arg (name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] ?? fallback : fallback
}

const REGISTRATIONS = Number(arg('registrations', '200'))
const SIZES = arg('sizes', '3,10').split(',').map(Number)
const BURST = Number(arg('burst', '2000'))
const STORE = arg('store', 'embedded')

/** User and system CPU seconds the daemons of the mesh have used so far (Linux /proc). */
function daemonCpuSeconds (mesh: LocalMesh, names: string[]): number {
  const ticksPerSecond = 100
  let ticks = 0
  for (const name of names) {
    const pid = mesh.node(name).process?.pid
    if (pid == null) continue
    // Fields after the command (in parentheses): utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    ticks += Number(fields[11]) + Number(fields[12])
  }
  return ticks / ticksPerSecond
}

async function run (size: number): Promise<void> {
  const hosts = await freeLoopbackBlock(size)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-agents-'))
  const redis: Array<{ url: string, proc: ChildProcess }> = []
  if (STORE === 'redis') for (let i = 0; i < size; i++) redis.push(await startRedis(mkdtempSync(join(baseDir, 'redis-'))))
  const names = hosts.map((_, i) => i === 0 ? 'aitbc' : `aitbc${i}`)
  const mesh = await LocalMesh.create(baseDir, names.map((name, i) => ({
    name, role: i === 0 ? 'genesis' as const : 'follower' as const, host: hosts[i]!, ...(STORE === 'redis' ? { config: { redis: redis[i]!.url } } : {})
  })))
  const clients: ControlClient[] = []
  try {
    for (const name of names) await mesh.start(name, 30000)
    const origin = await mesh.client('aitbc')
    clients.push(origin)
    await waitFor('every node online', async () => (await origin.call<Array<{ status: string }>>('peers')).every(p => p.status === 'online'), 60000, 100)

    // Watch every other node; record when each agent first shows up there.
    const { seen, clients: watchers } = await watchAgents(mesh, names.slice(1))
    clients.push(...watchers)
    // A watch sees only what happens after it reached its daemon, and the stream sends nothing
    // before: every watch is in place once one warm-up agent is seen on every node.
    const others = size - 1
    await waitFor('every watch in place', async () => {
      const id = `warmup-${size}-${seen.size}`
      await origin.call('agents.register', { agent_id: id, agent_type: 'worker' })
      return await waitFor(`${id} seen everywhere`, () => (seen.get(id)?.size ?? 0) === others, 2000, 5).then(() => true, () => false)
    }, 60000, 0)

    const latencies: number[] = []
    for (let i = 0; i < REGISTRATIONS; i++) {
      const id = `bench-${size}-${i}`
      const sent = performance.now()
      await origin.call('agents.register', { agent_id: id, agent_type: 'worker', capabilities: ['gpu'] })
      await waitFor(`${id} on every node`, () => (seen.get(id)?.size ?? 0) === others, 10000, 1)
      latencies.push(Math.max(...seen.get(id)!.values()) - sent)
    }

    // Sustained rate: many registrations in flight on one node; acknowledged, then replicated everywhere.
    const concurrency = 64
    const cpuBefore = daemonCpuSeconds(mesh, names)
    const started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < BURST) {
        const i = next++
        await origin.call('agents.register', { agent_id: `burst-${size}-${i}`, agent_type: 'worker' })
      }
    }))
    const acked = performance.now() - started
    await waitFor('burst replicated', () => {
      for (let i = 0; i < BURST; i++) if ((seen.get(`burst-${size}-${i}`)?.size ?? 0) < others) return false
      return true
    }, 120000, 20)
    const replicated = performance.now() - started
    const cpuMsPerRegistration = (daemonCpuSeconds(mesh, names) - cpuBefore) * 1000 / BURST

    process.stdout.write([
      line(`register -> listed on all ${size - 1} other nodes (${size} nodes)`, latencies),
      `${`sustained registrations on one node (${size} nodes)`.padEnd(44)} ${BURST} in ${(acked / 1000).toFixed(2)} s = ${Math.round(BURST / (acked / 1000))}/s acknowledged; replicated everywhere at ${Math.round(BURST / (replicated / 1000))}/s`,
      `${`daemon CPU per registration (${size} nodes)`.padEnd(44)} ${cpuMsPerRegistration.toFixed(2)} ms, all daemons together (user + system, during the burst)`,
      ''
    ].join('\n'))
  } finally {
    for (const c of clients) c.close()
    await mesh.stopAll()
    for (const r of redis) r.proc.kill()
    rmSync(baseDir, { recursive: true, force: true })
  }
}

process.stdout.write(`aitbc-mesh agent registry benchmark: store ${STORE}, node ${process.version}\nreference (DESIGN.md): Serf gossip rounds of 200 ms; targets p99 <= 100 ms at 3 nodes, <= 300 ms at 10\n\n`)
for (const size of SIZES) await run(size)
