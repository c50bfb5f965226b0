// Benchmark: how fast the others see a crashed (SIGKILLed) daemon as offline, and a restarted one
// online again, on a three-node local mesh; with agent heartbeats at a steady rate on the genesis
// node meanwhile (each one gossiped to every node), counting any moment a live node was
// reported offline (a false offline). A crash seen later than the target is broken down by whether
// the peer had seen the connection close by then (the close verdict was lost) or not; a killed
// node shown online again after its offline verdict is counted too. Each kill waits for both
// peers' direct connections to the restarted node: online through relayed heartbeats alone, a
// peer has no close to see and falls back to the 3 s window (counted, not measured).
//   npm run bench:liveness [-- --rounds 20 --load 500 --crashing-heartbeat-ms 1000]
// Harder: --rounds 100 --load 1000, and --crashing-heartbeat-ms 100 (a late verdict needs a
// heartbeat in flight at the kill, rare with one a second).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ControlClient } from '../src/control/client.js'
import { freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { line, numberArg } from './stats.js'

const ROUNDS = numberArg('rounds', 20)
/** Agent heartbeats per second on the genesis node during the run (100 agents, round robin). */
const LOAD = numberArg('load', 500)
/**
 * The killed node's heartbeat interval (the others keep 1000 ms, so their offline window stays
 * 3 s): shorter puts more kills just after one of its heartbeats, while it is still in flight.
 */
const CRASHING_HEARTBEAT_MS = numberArg('crashing-heartbeat-ms', 1000)
/**
 * After its offline verdict the killed node is watched this long: a heartbeat it sent before it
 * died, relayed late by a busy node, must not bring it back online.
 */
const WATCH_DEAD_MS = numberArg('watch-dead-ms', 2000)
/** The issue's goal for crash to offline; slower samples are broken down. */
const TARGET_MS = 1500

type Peers = Array<{ name: string, status: string, connected: boolean, reason: string | null }>

async function viewOf (client: ControlClient, name: string): Promise<Peers[number] | undefined> {
  return (await client.call<Peers>('peers')).find(p => p.name === name)
}

async function statusOf (client: ControlClient, name: string): Promise<string | undefined> {
  return (await viewOf(client, name))?.status
}

async function main (): Promise<void> {
  const hosts = await freeLoopbackBlock(3)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-liveness-'))
  const mesh = await LocalMesh.create(baseDir, ['aitbc', 'aitbc1', 'aitbc2'].map((name, i) => ({
    name,
    role: i === 0 ? 'genesis' as const : 'follower' as const,
    host: hosts[i]!,
    ...(name === 'aitbc2' ? { config: { heartbeat: { intervalMs: CRASHING_HEARTBEAT_MS } } } : {})
  })))
  const clients: ControlClient[] = []
  let loadRunning = true
  let watching = true
  try {
    await mesh.startAll()
    const genesis = await mesh.client('aitbc')
    const follower = await mesh.client('aitbc1')
    const loader = await mesh.client('aitbc')
    clients.push(genesis, follower, loader)
    await waitFor('all online', async () => (await genesis.call<Peers>('peers')).every(p => p.status === 'online'), 20000, 50)

    // Load: LOAD agent heartbeats per second over 100 agents, paced in 10 ms slices.
    for (let i = 0; i < 100; i++) await loader.call('agents.register', { agent_id: `load-${i}`, agent_type: 'worker' })
    let registered = 0
    const load = (async () => {
      const started = performance.now()
      while (loadRunning) {
        const due = Math.floor(((performance.now() - started) / 1000) * LOAD)
        const batch: Array<Promise<unknown>> = []
        for (; registered < due; registered++) batch.push(loader.call('agents.heartbeat', { agent_id: `load-${registered % 100}`, load_metrics: { cpu: (registered % 10) / 10 } }).catch(() => {}))
        await Promise.all(batch)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    })()
    // Watch for false offline: aitbc1 is never killed, so aitbc must never call it offline.
    let falseOffline = 0
    const watch = (async () => {
      while (watching) {
        // A failed call (the bench ending on an error closes the clients) must not hide that error.
        if (await statusOf(genesis, 'aitbc1').catch(() => undefined) === 'offline') falseOffline++
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    })()

    const toOffline: number[] = []
    const toClosed: number[] = []
    const late: string[] = []
    const backOnline: string[] = []
    const toOnline: number[] = []
    const toConnected: number[] = []
    let onlineBeforeConnected = 0
    let unconnectedKills = 0
    for (let round = 0; round < ROUNDS; round++) {
      const killedAt = performance.now()
      const killedAtWall = Date.now()
      const stopped = mesh.stop('aitbc2', 'SIGKILL')
      const seen = await Promise.all([genesis, follower].map(async (client, i) => {
        const observer = i === 0 ? 'aitbc' : 'aitbc1'
        // When the peer first showed the connection closed: a late verdict after an early close is a lost close verdict.
        let closedAfter: number | undefined
        let slowestAnswer = 0
        // The verdict's reason says when the daemon reached it ("connection lost 0.1 s ago"), however late the answer is read.
        const verdict = await waitFor('offline', async () => {
          const asked = performance.now()
          const view = await viewOf(client, 'aitbc2')
          slowestAnswer = Math.max(slowestAnswer, performance.now() - asked)
          if (view?.connected === false) closedAfter ??= performance.now() - killedAt
          return view?.status === 'offline' && view
        }, 10000, 5)
        const offlineAfter = performance.now() - killedAt
        toClosed.push(closedAfter ?? offlineAfter)
        if (offlineAfter > TARGET_MS) {
          // The daemon's own peer_disconnected line says when it handled the close, whatever the polling saw.
          const logged = mesh.node(observer).logLines.filter(l => l.includes('"peer_disconnected"')).map(l => JSON.parse(l) as { event?: string, peer?: string, time?: string })
            .find(l => l.event === 'peer_disconnected' && l.peer === 'aitbc2' && Date.parse(l.time ?? '') >= killedAtWall)
          const closeLogged = logged != null ? `${Date.parse(logged.time!) - killedAtWall} ms` : 'not logged'
          late.push(`round ${round + 1} at ${observer}: offline after ${offlineAfter.toFixed(0)} ms; connection seen closed ${closedAfter != null ? `after ${closedAfter.toFixed(0)} ms` : 'never'}, close logged ${closeLogged}, slowest peers answer ${slowestAnswer.toFixed(0)} ms, reason "${verdict.reason ?? ''}"`)
        }
        // The dead node stays offline: a heartbeat it sent before dying, relayed late, must not bring it back.
        while (performance.now() - killedAt < WATCH_DEAD_MS) {
          const view = await viewOf(client, 'aitbc2')
          if (view != null && view.status !== 'offline') {
            backOnline.push(`round ${round + 1} at ${observer}: ${view.status} ${(performance.now() - killedAt).toFixed(0)} ms after the kill (offline at ${offlineAfter.toFixed(0)} ms), connected ${String(view.connected)}`)
            break
          }
          await new Promise(resolve => setTimeout(resolve, 5))
        }
        return offlineAfter
      }))
      toOffline.push(...seen)
      await stopped
      await mesh.start('aitbc2')
      const readyAt = performance.now()
      const back = await Promise.all([genesis, follower].map(async client => {
        let connectedAfter: number | undefined
        const connected = async (): Promise<boolean> => {
          const view = await viewOf(client, 'aitbc2')
          if (view?.connected === true) connectedAfter ??= performance.now() - readyAt
          return view?.status === 'online'
        }
        await waitFor('online', connected, 30000, 5)
        const onlineAfter = performance.now() - readyAt
        // Online through heartbeats relayed by the other peer, before the direct connection: a kill
        // now would have no close to see. The next kill waits for it, so that its close is seen.
        if (connectedAfter == null) onlineBeforeConnected++
        // An overloaded machine can keep dials failing for long: the kill then goes ahead, counted.
        await waitFor('connected', async () => { await connected(); return connectedAfter != null }, 30000, 5).catch(() => { unconnectedKills++ })
        if (connectedAfter != null) toConnected.push(connectedAfter)
        return onlineAfter
      }))
      toOnline.push(...back)
    }
    watching = false
    loadRunning = false
    await Promise.all([watch, load])
    process.stdout.write([
      `aitbc-mesh liveness benchmark: 3 daemons on ${hosts.join(', ')} port 7070, ${ROUNDS} SIGKILLs of aitbc2, seen from aitbc and aitbc1, node ${process.version}`,
      `load meanwhile: ${registered} agent heartbeats on aitbc (${LOAD}/s offered), each gossiped to every node; aitbc2 heartbeats every ${CRASHING_HEARTBEAT_MS} ms, the others every 1000 ms`,
      '',
      line('SIGKILL -> offline at a peer', toOffline),
      line('SIGKILL -> connection seen closed at a peer', toClosed),
      `${`offline later than ${TARGET_MS} ms`.padEnd(44)} ${late.length} of ${toOffline.length}`,
      ...late.map(l => `  ${l}`),
      `${'killed aitbc2 back online after offline'.padEnd(44)} ${backOnline.length} of ${toOffline.length} (watched until ${WATCH_DEAD_MS} ms after the kill)`,
      ...backOnline.map(l => `  ${l}`),
      line('restart ready -> online at a peer', toOnline),
      line('restart ready -> connected at a peer', toConnected),
      `${'online before connected (no close to see)'.padEnd(44)} ${onlineBeforeConnected} of ${toOnline.length}; not connected 30 s after the restart (killed anyway): ${unconnectedKills}`,
      `${'false offline of the live aitbc1 at aitbc'.padEnd(44)} ${falseOffline} of the samples taken every 50 ms`,
      '',
      'reference (DESIGN.md): memberlist defaults ~5 s in small clusters; target p99 <= 1.5 s, no false offline under load'
    ].join('\n') + '\n')
  } finally {
    loadRunning = false
    watching = false
    for (const c of clients) c.close()
    await mesh.stopAll()
    rmSync(baseDir, { recursive: true, force: true })
  }
}

await main()
