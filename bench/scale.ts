// Benchmark: meshes of 10, 30 and 50 daemons on this machine (each on its own loopback address,
// port 7070, embedded store, a stand-in AITBC RPC each). For each size it prints: time from
// spawning the daemons until every node sees every other one; `status --target all` latency;
// time from `agents register` until the agent is listed on every node; idle CPU and mesh bytes
// per daemon over an idle soak, with any false `offline` seen meanwhile (from every node's
// `peer_offline` log lines); and false offline while one node is saturated by registrations and
// messages.
//   npm run bench:scale [-- --sizes 10,30,50 --soak-s 300 --status-calls 50 --registrations 50 --saturate-s 20 --heartbeat-ms 1000 --mesh-degree 6]
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ControlClient } from '../src/control/client.js'
import { freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { StandInRpc } from '../src/devmesh/stand-in-rpc.js'
import { watchAgents } from './agent-watch.js'
import { DaemonPhase, phaseLines } from './daemon-metrics.js'
import { line, numberArg, summarize } from './stats.js'

function listArg (name: string, fallback: string): string[] {
  const i = process.argv.indexOf(`--${name}`)
  return (i >= 0 ? process.argv[i + 1] ?? fallback : fallback).split(',')
}

const SIZES = listArg('sizes', '10,30,50').map(Number)
const SOAK_S = numberArg('soak-s', 300)
const STATUS_CALLS = numberArg('status-calls', 50)
const REGISTRATIONS = numberArg('registrations', 50)
const SATURATE_S = numberArg('saturate-s', 20)
const HEARTBEAT_MS = numberArg('heartbeat-ms', 1000)
/** gossip.meshDegree of every daemon (the default is gossipsub's 6). */
const MESH_DEGREE = numberArg('mesh-degree', 6)
/** Generous: spawning 50 Node processes at once on 2 cores takes a while. */
const START_TIMEOUT_MS = 180_000

const CLOCK_TICKS_PER_S = 100
const METRICS_PORT = 9464

/** User + system CPU seconds of one process so far (/proc/PID/stat fields 14 and 15). */
function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S
}

/** TCP bytes sent and received so far per process, over its established connections (ss -tinp). */
function tcpBytesByPid (): Map<number, { sent: number, received: number }> {
  const out = execFileSync('ss', ['-tinpH', 'state', 'established'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  const totals = new Map<number, { sent: number, received: number }>()
  let pid: number | undefined
  for (const text of out.split('\n')) {
    const owner = /pid=(\d+)/.exec(text)
    if (owner != null) pid = Number(owner[1])
    else if (!/^\s/.test(text)) pid = undefined
    if (pid == null) continue
    const sent = /bytes_sent:(\d+)/.exec(text)
    const received = /bytes_received:(\d+)/.exec(text)
    if (sent == null && received == null) continue
    const total = totals.get(pid) ?? { sent: 0, received: 0 }
    total.sent += Number(sent?.[1] ?? 0)
    total.received += Number(received?.[1] ?? 0)
    totals.set(pid, total)
  }
  return totals
}

interface MeshView { reachable: string[], unreachable: string[] }

/** `peer_offline` lines every node logged from the given line index on: each is a live node called offline. */
function offlineLines (mesh: LocalMesh, from: Map<string, number>): Array<{ at: string, peer: string, reason: string }> {
  const found: Array<{ at: string, peer: string, reason: string }> = []
  for (const [name, node] of mesh.nodes) {
    for (const text of node.logLines.slice(from.get(name) ?? 0)) {
      if (!text.includes('"event":"peer_offline"')) continue
      const entry = JSON.parse(text) as { peer: string, reason: string }
      found.push({ at: name, peer: entry.peer, reason: entry.reason })
    }
  }
  return found
}

function logMarks (mesh: LocalMesh): Map<string, number> {
  return new Map([...mesh.nodes].map(([name, node]) => [name, node.logLines.length]))
}

function row (label: string, text: string): string {
  return `${label.padEnd(44)} ${text}`
}

/** How many false offline each node reported, and how often each node was reported. */
function offlineTally (found: Array<{ at: string, peer: string }>): string {
  const count = (key: 'at' | 'peer'): string => [...found.reduce((m, f) => m.set(f[key], (m.get(f[key]) ?? 0) + 1), new Map<string, number>())].map(([k, v]) => `${k} ${v}`).join(', ')
  return found.length === 0 ? '-' : `reported by: ${count('at')}; reported: ${count('peer')}`
}

function describeOffline (found: Array<{ at: string, peer: string, reason: string }>): string {
  if (found.length === 0) return '0'
  return `${found.length}: ` + found.slice(0, 5).map(f => `${f.at} saw ${f.peer} offline (${f.reason})`).join('; ') + (found.length > 5 ? '; ...' : '')
}

async function run (size: number): Promise<void> {
  const hosts = await freeLoopbackBlock(size)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-scale-'))
  const names = hosts.map((_, i) => i === 0 ? 'aitbc' : `aitbc${i}`)
  const rpcs = hosts.map(() => new StandInRpc({ height: 15234, mempool: 3 }))
  const urls = await Promise.all(rpcs.map(async (rpc, i) => await rpc.start(hosts[i]!)))
  // The saturated node and one other serve /metrics: their worst event-loop delay per phase.
  const watched = new Map(names.slice(0, 2).map((name, i) => [name, `${hosts[i]!}:${METRICS_PORT}`]))
  const mesh = await LocalMesh.create(baseDir, names.map((name, i) => ({
    name, role: i === 0 ? 'genesis' as const : 'follower' as const, host: hosts[i]!, config: { probes: { rpc: urls[i] }, gossip: { meshDegree: MESH_DEGREE }, ...(watched.has(name) ? { http: watched.get(name) } : {}) }
  })), { heartbeatMs: HEARTBEAT_MS })
  const clients = new Map<string, ControlClient>()
  const out: string[] = []
  try {
    // 1. Start: every daemon at once, as a fleet restart would.
    const spawnedAt = performance.now()
    await Promise.all(names.map(async name => await mesh.start(name, START_TIMEOUT_MS)))
    const allReady = performance.now() - spawnedAt
    for (const name of names) clients.set(name, await mesh.client(name))
    const onlineAt = new Map<string, number>()
    await waitFor('every node sees every other', async () => {
      await Promise.all(names.filter(n => !onlineAt.has(n)).map(async name => {
        const view = await clients.get(name)!.call<MeshView>('mesh')
        if (view.unreachable.length === 0) onlineAt.set(name, performance.now() - spawnedAt)
      }))
      return onlineAt.size === size
    }, START_TIMEOUT_MS, 500)
    const allOnline = Math.max(...onlineAt.values())
    out.push(
      row(`spawn -> every daemon ready (${size} nodes)`, `${(allReady / 1000).toFixed(2)} s`),
      row(`spawn -> every node sees all ${size - 1} others`, `${(allOnline / 1000).toFixed(2)} s (after the last ready: ${((allOnline - allReady) / 1000).toFixed(2)} s)`)
    )

    // 2. status --target all from the genesis node, and from the last follower.
    const status: number[] = []
    const statusDaemonSide: number[] = []
    const askers = [await mesh.client('aitbc'), await mesh.client(names.at(-1)!)]
    for (const [i, asker] of askers.entries()) clients.set(`status-${i}`, asker)
    for (let i = 0; i < STATUS_CALLS + 5; i++) {
      const client = askers[i % 2]!
      const t0 = performance.now()
      const result = await client.call<{ execution_time: number, validation_status: string, nodes_status: Record<string, { status: string }> }>('status', { target_node: 'all' })
      if (i < 5) continue // warm-up
      status.push(performance.now() - t0)
      statusDaemonSide.push(result.execution_time * 1000)
      const answered = Object.values(result.nodes_status).filter(n => n.status !== 'offline').length
      if (answered !== size) throw new Error(`status call ${i}: ${answered} of ${size} nodes answered: ${JSON.stringify(result).slice(0, 500)}`)
    }
    out.push(line(`status --target all, socket round trip (${size})`, status), line('  daemon side (execution_time)', statusDaemonSide))

    // 3. Registration visible on every node: one watch per node, registrations from rotating nodes.
    const { seen, clients: watchers } = await watchAgents(mesh, names)
    watchers.forEach((watcher, i) => { clients.set(`${names[i]!}:watch`, watcher) })
    // A watch sees only what happens after it reached its daemon: in place once a warm-up agent shows everywhere.
    let warmups = 0
    await waitFor('every watch in place', async () => {
      const id = `warmup-${size}-${warmups++}`
      await askers[0]!.call('agents.register', { agent_id: id, agent_type: 'worker' })
      return await waitFor(`${id} seen everywhere`, () => (seen.get(id)?.size ?? 0) === size, 5000, 5).then(() => true, () => false)
    }, 60_000, 0)
    const registration: number[] = []
    for (let i = 0; i < REGISTRATIONS; i++) {
      const id = `scale-${size}-${i}`
      const origin = names[i % size]!
      const sent = performance.now()
      // A connection of its own: one left idle for a minute is closed by the daemon.
      const client = await mesh.client(origin)
      try {
        await client.call('agents.register', { agent_id: id, agent_type: 'worker', capabilities: ['gpu'] })
      } finally {
        client.close()
      }
      await waitFor(`${id} on every node`, () => (seen.get(id)?.size ?? 0) === size, 30_000, 2)
      registration.push(Math.max(...seen.get(id)!.values()) - sent)
    }
    out.push(line(`register -> listed on all ${size} nodes`, registration))

    // 4. Idle soak: CPU and mesh bytes per daemon, false offline anywhere.
    const pids = names.map(n => mesh.node(n).process!.pid!)
    const soakMarks = logMarks(mesh)
    const cpuBefore = pids.map(cpuSeconds)
    const bytesBefore = tcpBytesByPid()
    const soakStarted = performance.now()
    const soakPhase = await DaemonPhase.start(watched)
    await new Promise(resolve => setTimeout(resolve, SOAK_S * 1000))
    const soakDaemons = await soakPhase.stop()
    const soakSeconds = (performance.now() - soakStarted) / 1000
    const bytesAfter = tcpBytesByPid()
    const cpuShare = pids.map((pid, i) => (cpuSeconds(pid) - cpuBefore[i]!) / soakSeconds * 100)
    const perSecond = (pick: (t: { sent: number, received: number }) => number): number[] =>
      pids.map(pid => (pick(bytesAfter.get(pid) ?? { sent: 0, received: 0 }) - pick(bytesBefore.get(pid) ?? { sent: 0, received: 0 })) / soakSeconds)
    const sent = summarize(perSecond(t => t.sent))
    const received = summarize(perSecond(t => t.received))
    const cpu = summarize(cpuShare)
    const total = cpuShare.reduce((a, b) => a + b, 0)
    out.push(
      row(`idle CPU per daemon over ${Math.round(soakSeconds)} s`, `p50 ${cpu.p50.toFixed(2)}%  max ${cpu.max.toFixed(2)}% of a core; all ${size}: ${total.toFixed(1)}% of the ${availableParallelism()} cores' ${availableParallelism() * 100}%`),
      row('idle mesh bytes per daemon (TCP, all traffic)', `sent p50 ${(sent.p50 / 1024).toFixed(1)} KiB/s max ${(sent.max / 1024).toFixed(1)}; received p50 ${(received.p50 / 1024).toFixed(1)} KiB/s max ${(received.max / 1024).toFixed(1)}`),
      row('  per node and per peer heartbeat', `${(sent.p50 / (size - 1) / (1000 / HEARTBEAT_MS)).toFixed(0)} bytes sent per peer per heartbeat interval`),
      row('false offline during the idle soak', describeOffline(offlineLines(mesh, soakMarks))),
      ...phaseLines('idle', soakDaemons)
    )

    // 5. Saturation: the genesis node flooded with registrations and messages; does anyone call a live node offline?
    if (SATURATE_S <= 0) {
      out.push(row('saturation', 'skipped (--saturate-s 0)'), '')
      return
    }
    const satMarks = logMarks(mesh)
    const loader = await mesh.client('aitbc')
    clients.set('loader', loader)
    let registrations = 0
    let messages = 0
    let failures = 0
    const satEnd = performance.now() + SATURATE_S * 1000
    const cpuSatBefore = pids.map(cpuSeconds)
    const satPhase = await DaemonPhase.start(watched)
    await Promise.all(Array.from({ length: 64 }, async (_, worker) => {
      while (performance.now() < satEnd) {
        try {
          if (worker % 2 === 0) {
            await loader.call('agents.register', { agent_id: `flood-${size}-${registrations++}`, agent_type: 'worker' })
          } else {
            await loader.call('messages.send', { to: names[1 + (messages++ % (size - 1))], body: 'x'.repeat(1024) })
          }
        } catch {
          failures++
        }
      }
    }))
    const satSeconds = SATURATE_S
    const satDaemons = await satPhase.stop()
    const satCpu = pids.map((pid, i) => (cpuSeconds(pid) - cpuSatBefore[i]!) / satSeconds * 100)
    const followersCpu = summarize(satCpu.slice(1))
    // Offline verdicts may come up to one window after the flood ends.
    await new Promise(resolve => setTimeout(resolve, 3 * HEARTBEAT_MS + 500))
    out.push(
      row(`saturating aitbc for ${satSeconds} s`, `${registrations} registrations + ${messages} messages (${Math.round((registrations + messages) / satSeconds)}/s, ${failures} failed)`),
      row('  CPU meanwhile', `aitbc ${satCpu[0]!.toFixed(0)}% of a core, others p50 ${followersCpu.p50.toFixed(0)}% max ${followersCpu.max.toFixed(0)}%, all ${satCpu.reduce((a, b) => a + b, 0).toFixed(0)}% of ${availableParallelism() * 100}%`),
      row('false offline while saturated', describeOffline(offlineLines(mesh, satMarks))),
      row('  seen by / of', offlineTally(offlineLines(mesh, satMarks))),
      ...phaseLines('saturated', satDaemons),
      ''
    )
  } finally {
    for (const c of clients.values()) c.close()
    await mesh.stopAll()
    await Promise.all(rpcs.map(async rpc => await rpc.stop()))
    rmSync(baseDir, { recursive: true, force: true })
    process.stdout.write(out.join('\n') + '\n')
  }
}

process.stdout.write([
  `aitbc-mesh scale benchmark: ${SIZES.join(', ')} daemons on one machine (${availableParallelism()} cores), heartbeat every ${HEARTBEAT_MS} ms, gossip mesh degree ${MESH_DEGREE}, idle soak ${SOAK_S} s, node ${process.version}`,
  'goal at 50 nodes: all online within 10 s, status p99 <= 200 ms, registration visible p99 <= 1 s, 0 false offline',
  'reference: Serf (memberlist) gossips at 200 ms with a 5 s suspicion timeout in small clusters',
  ''
].join('\n') + '\n')
for (const size of SIZES) await run(size)
