// Benchmark: `status --target all` on a three-node local mesh (127.x.y.1-3, port 7070 each).
// Prints the daemon-side and control-socket latency over many calls, the whole CLI process
// time (with a bare `node -e 0` measured in the same run as the reference), each daemon's
// start-to-ready time and its idle resident memory.
//   npm run bench:status [-- --calls 300 --cli-runs 30]
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI_ENTRY, freeLoopbackBlock, LocalMesh, waitFor } from '../src/devmesh/local-mesh.js'
import { StandInRpc } from '../src/devmesh/stand-in-rpc.js'
import { line, numberArg, summarize } from './stats.js'

const CALLS = numberArg('calls', 300)
const CLI_RUNS = numberArg('cli-runs', 30)
const IDLE_MS = numberArg('idle-ms', 5000)
const WARMUP = numberArg('warmup', 100)

/** Resident memory in MiB: all of it, and the private (anonymous) part, which excludes the mapped Node binary. */
function rssMiB (pid: number): { total: number, anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN)
  return { total: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 }
}

/** Wall time of one process run. Async, so the stand-in RPC servers in this process keep answering. */
async function timeProcess (cmd: string, args: string[]): Promise<number> {
  const started = process.hrtime.bigint()
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    child.once('error', reject)
    child.once('close', code => {
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${stderr}`))
      else resolve(Number(process.hrtime.bigint() - started) / 1e6)
    })
  })
}

async function main (): Promise<void> {
  const hosts = await freeLoopbackBlock(3)
  const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-'))
  const rpcs = [new StandInRpc({ height: 15234, mempool: 15 }), new StandInRpc({ height: 15232 }), new StandInRpc({ height: 15234 })]
  const urls = await Promise.all(rpcs.map(async (rpc, i) => await rpc.start(hosts[i]!)))
  const mesh = await LocalMesh.create(baseDir, ['aitbc', 'aitbc1', 'aitbc2'].map((name, i) => ({
    name, role: i === 0 ? 'genesis' as const : 'follower' as const, host: hosts[i]!, config: { probes: { rpc: urls[i] } }
  })))
  try {
    process.stdout.write(`aitbc-mesh status benchmark: 3 daemons on ${hosts.join(', ')} port 7070, node ${process.version}\n\n`)
    // Start one at a time so each start-to-ready figure is not inflated by the others.
    const startWall: number[] = []
    const startSelf: number[] = []
    for (const name of mesh.nodes.keys()) {
      const t0 = performance.now()
      const node = await mesh.start(name)
      startWall.push(performance.now() - t0)
      const ready = node.logLines.find(l => l.includes('"event":"ready"'))
      startSelf.push(JSON.parse(ready ?? '{}').startMs as number)
    }
    const client = await mesh.client('aitbc')
    await waitFor('every node online', async () => (await client.call<Array<{ status: string }>>('peers')).every(p => p.status === 'online'), 20000, 50)

    const request = { operation: 'status', target_node: 'all' }
    for (let i = 0; i < WARMUP; i++) await client.call('op', request) // warm-up: measure the steady state, not the JIT
    const roundTrip: number[] = []
    const daemonSide: number[] = []
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now()
      const result = await client.call<{ execution_time: number, validation_status: string }>('op', request)
      roundTrip.push(performance.now() - t0)
      daemonSide.push(result.execution_time * 1000)
      if (result.validation_status !== 'success') throw new Error(`status call ${i} did not succeed: ${JSON.stringify(result)}`)
    }
    client.close()

    const cli: number[] = []
    const bareNode: number[] = []
    // As an operator runs it: the socket path comes from the config.
    const configFile = mesh.node('aitbc').configFile
    for (let i = 0; i < CLI_RUNS; i++) {
      bareNode.push(await timeProcess(process.execPath, ['-e', '0']))
      cli.push(await timeProcess(process.execPath, [CLI_ENTRY, 'status', '--target', 'all', '--json', '--config', configFile]))
    }

    await new Promise(resolve => setTimeout(resolve, IDLE_MS))
    const rss = [...mesh.nodes.values()].map(n => rssMiB(n.process!.pid!))
    const bare = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
    await new Promise(resolve => setTimeout(resolve, 1000))
    const bareRss = rssMiB(bare.pid!)
    bare.kill()

    process.stdout.write([
      line('status --target all, daemon side (execution_time)', daemonSide),
      line('status --target all, control-socket round trip', roundTrip),
      line('status --target all, whole CLI with --config', cli),
      line('reference: bare `node -e 0` (same run)', bareNode),
      line('daemon start to ready, spawn to ready line', startWall),
      line('daemon start to ready, as the daemon logs it', startSelf),
      `${'daemon idle RSS after ' + (IDLE_MS / 1000).toString() + ' s (3 daemons)'}`.padEnd(44) + ` ${rss.map(r => r.total.toFixed(1) + ' MiB').join(', ')}  (max ${Math.max(...rss.map(r => r.total)).toFixed(1)} MiB)`,
      `${'  of which private (RssAnon)'}`.padEnd(44) + ` ${rss.map(r => r.anon.toFixed(1) + ' MiB').join(', ')}`,
      `${'reference: idle RSS of bare `node -e` (same run)'}`.padEnd(44) + ` ${bareRss.total.toFixed(1)} MiB, private ${bareRss.anon.toFixed(1)} MiB`,
      '',
      'reference (DESIGN.md, measured earlier on this kind of machine): SSH into 3 hosts and read the RPC: 2.42 s sequential, 2.03 s parallel',
      `targets: daemon side p50 <= 5 ms (${summarize(daemonSide).p50.toFixed(2)}), p99 <= 20 ms (${summarize(daemonSide).p99.toFixed(2)}); CLI <= 2x bare node (p50 ${(summarize(cli).p50 / summarize(bareNode).p50).toFixed(2)}x, p99 ${(summarize(cli).p99 / summarize(bareNode).p99).toFixed(2)}x); idle RSS <= 80 MB; start to ready <= 1 s`
    ].join('\n') + '\n')
  } finally {
    await mesh.stopAll()
    await Promise.all(rpcs.map(async rpc => await rpc.stop()))
    rmSync(baseDir, { recursive: true, force: true })
  }
}

await main()
