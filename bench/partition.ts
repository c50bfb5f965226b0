// Benchmark: `status --target all` on a node cut off from the rest of a three-node local mesh.
// The two peers are frozen with SIGSTOP: their connections stay open but nothing answers and no
// heartbeat comes, which is what the cut-off node sees in a real partition (packets dropped, no
// reset). Prints how long the cut-off node takes to see the loss of quorum, and the daemon-side
// and control-socket time of status --target all there (answered for the silent peers at once).
//   npm run bench:partition [-- --calls 200]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { line, numberArg } from './stats.js'

const CALLS = numberArg('calls', 200)
const WARMUP = numberArg('warmup', 20)

interface MeshView { quorum: boolean, unreachable: string[] }

async function main (): Promise<void> {
  const hosts = await freeLoopbackBlock(3)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-partition-'))
  const mesh = await LocalMesh.create(baseDir, ['aitbc', 'aitbc1', 'aitbc2'].map((name, i) => ({
    name, role: i === 0 ? 'genesis' as const : 'follower' as const, host: hosts[i]!
  })))
  const frozen: number[] = []
  try {
    process.stdout.write(`aitbc-mesh partition benchmark: 3 daemons on ${hosts.join(', ')} port 7070, node ${process.version}\n\n`)
    await mesh.startAll()
    const client = await mesh.client('aitbc2')
    await waitFor('quorum with all three', async () => (await client.call<MeshView>('mesh')).unreachable.length === 0, 20000, 50)

    const cutAt = performance.now()
    for (const name of ['aitbc', 'aitbc1']) {
      const pid = mesh.node(name).process!.pid!
      process.kill(pid, 'SIGSTOP')
      frozen.push(pid)
    }
    await waitFor('aitbc2 to lose quorum', async () => !(await client.call<MeshView>('mesh')).quorum, 20000, 10)
    const lossSeenMs = performance.now() - cutAt

    const request = { operation: 'status', target_node: 'all', timeout: 60 }
    for (let i = 0; i < WARMUP; i++) await client.call('op', request)
    const roundTrip: number[] = []
    const daemonSide: number[] = []
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now()
      const result = await client.call<{ execution_time: number, nodes_status: Record<string, { status: string }> }>('op', request)
      roundTrip.push(performance.now() - t0)
      daemonSide.push(result.execution_time * 1000)
      if (result.nodes_status.aitbc?.status !== 'offline' || result.nodes_status.aitbc1?.status !== 'offline') throw new Error(`call ${i}: the silent peers are not reported offline: ${JSON.stringify(result.nodes_status)}`)
    }
    client.close()
    process.stdout.write(`cut -> aitbc2 sees no quorum: ${lossSeenMs.toFixed(0)} ms (offline window: 3 heartbeats of 1000 ms)\n`)
    process.stdout.write(line('status --target all, daemon side (cut off)', daemonSide) + '\n')
    process.stdout.write(line('status --target all, control socket (cut off)', roundTrip) + '\n')
  } finally {
    for (const pid of frozen) process.kill(pid, 'SIGCONT')
    await mesh.stopAll()
    rmSync(baseDir, { recursive: true, force: true })
  }
}

await main()
