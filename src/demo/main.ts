// `npm run demo`: a three-node mesh on 127.0.0.1-3, port 7070 on each, with a stand-in
// blockchain RPC per node; prints `status --target all` and runs until Ctrl-C.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalMesh, waitFor } from '../devmesh/local-mesh.js'
import { StandInRpc } from '../devmesh/stand-in-rpc.js'

const NODES = [
  { name: 'aitbc', role: 'genesis' as const, host: '127.0.0.1', height: 15234, mempool: 15 },
  { name: 'aitbc1', role: 'follower' as const, host: '127.0.0.2', height: 15232, mempool: 14 },
  { name: 'aitbc2', role: 'follower' as const, host: '127.0.0.3', height: 15234, mempool: 15 }
]

/** Where today's AITBC serves its RPC (127.0.0.1:8202), on each node's own loopback address. */
const STAND_IN_RPC_PORT = 8202

const baseDir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-demo-'))
const rpcs = NODES.map(n => new StandInRpc({ height: n.height, mempool: n.mempool }))

async function main (): Promise<void> {
  const rpcUrls = await Promise.all(rpcs.map(async (rpc, i) => await rpc.start(NODES[i]!.host, STAND_IN_RPC_PORT)))
  const mesh = await LocalMesh.create(baseDir, NODES.map((n, i) => ({
    name: n.name, role: n.role, host: n.host, config: { probes: { rpc: rpcUrls[i] } }
  })))
  let stopping = false
  const shutdown = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    process.stdout.write('\nstopping the demo mesh...\n')
    await mesh.stopAll()
    await Promise.all(rpcs.map(async rpc => await rpc.stop()))
    rmSync(baseDir, { recursive: true, force: true })
    process.stdout.write('stopped.\n')
    process.exit(0)
  }
  process.on('SIGINT', () => { void shutdown() })
  process.on('SIGTERM', () => { void shutdown() })

  process.stdout.write(`starting aitbc (genesis), aitbc1 and aitbc2 on 127.0.0.1-3:7070 (data in ${baseDir})\n`)
  await mesh.startAll()
  const client = await mesh.client('aitbc')
  try {
    await waitFor('every node to be online', async () => {
      const peers = await client.call<Array<{ status: string }>>('peers')
      return peers.every(p => p.status === 'online')
    }, 15000, 100)
  } finally {
    client.close()
  }
  process.stdout.write(`\n$ aitbc-mesh status --target all --socket ${mesh.node('aitbc').socket}\n`)
  const result = await mesh.cli('aitbc', ['status', '--target', 'all'])
  process.stdout.write(result.stdout + result.stderr)
  process.stdout.write('\nThe mesh keeps running; try:\n' +
    `  npx aitbc-mesh peers --socket ${mesh.node('aitbc1').socket}\n` +
    `  npx aitbc-mesh health --target follower --socket ${mesh.node('aitbc').socket}\n` +
    'Ctrl-C stops every node.\n')
}

main().catch(async err => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`)
  process.kill(process.pid, 'SIGTERM')
})
