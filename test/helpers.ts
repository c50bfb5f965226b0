import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { freeLoopbackBlock, LocalMesh, type LocalNodeSpec } from '../src/devmesh/local-mesh.js'
import { StandInRpc, type StandInRateLimit, type StandInRpcState } from '../src/devmesh/stand-in-rpc.js'

export { waitFor, runCli } from '../src/devmesh/local-mesh.js'

const cleanups: Array<() => Promise<void> | void> = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup()
    } catch {
      // best effort
    }
  }
})

export function onCleanup (fn: () => Promise<void> | void): void {
  cleanups.push(fn)
}

export function tempDir (prefix = 'aitbc-mesh-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  onCleanup(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

export interface TestMesh {
  mesh: LocalMesh
  rpcs: Map<string, StandInRpc>
  hosts: string[]
}

/**
 * A mesh of real daemon processes on a free block of loopback addresses, port 7070 on each,
 * with a stand-in blockchain RPC per node. Node 0 is the genesis node `aitbc`, the others
 * followers `aitbc1`, `aitbc2`, ...
 */
export async function startTestMesh (count: number, opts: {
  swarmKey?: boolean
  heights?: number[]
  start?: boolean
  /** Config fields of node i over the generated ones; `rpcUrl` is its stand-in RPC. */
  extra?: (i: number, host: string, rpcUrl: string) => Record<string, unknown>
  /** The stand-in RPC of node i: its state and rate limit (AITBC's 200 a minute by default). */
  rpc?: (i: number) => { state?: Partial<StandInRpcState>, rateLimit?: StandInRateLimit | null }
  env?: NodeJS.ProcessEnv
} = {}): Promise<TestMesh> {
  const hosts = await freeLoopbackBlock(count)
  const rpcs = new Map<string, StandInRpc>()
  const specs: LocalNodeSpec[] = []
  for (let i = 0; i < count; i++) {
    const name = i === 0 ? 'aitbc' : `aitbc${i}`
    const custom = opts.rpc?.(i) ?? {}
    const rpc = new StandInRpc({ height: opts.heights?.[i] ?? 1000 + i, mempool: 10 + i, ...custom.state }, custom.rateLimit !== undefined ? { rateLimit: custom.rateLimit } : {})
    const url = await rpc.start(hosts[i]!)
    onCleanup(async () => { await rpc.stop() })
    rpcs.set(name, rpc)
    const extra = opts.extra?.(i, hosts[i]!, url) ?? {}
    specs.push({ name, role: i === 0 ? 'genesis' : 'follower', host: hosts[i]!, config: { ...extra, probes: { rpc: url, ...(extra.probes as object | undefined) } } })
  }
  const mesh = await LocalMesh.create(tempDir(), specs, { ...(opts.swarmKey != null ? { swarmKey: opts.swarmKey } : {}), ...(opts.env != null ? { env: opts.env } : {}) })
  onCleanup(async () => {
    for (const node of mesh.nodes.values()) {
      if (node.process != null && node.process.exitCode == null && node.process.signalCode == null) node.process.kill('SIGKILL')
    }
  })
  if (opts.start !== false) await mesh.startAll()
  return { mesh, rpcs, hosts }
}

export interface PeerRow { name: string, status: string, connected: boolean, self: boolean, reason: string | null, since: string | null }

export async function peersOf (mesh: LocalMesh, name: string): Promise<PeerRow[]> {
  const client = await mesh.client(name)
  try {
    return await client.call<PeerRow[]>('peers')
  } finally {
    client.close()
  }
}

export async function statusOfPeer (mesh: LocalMesh, at: string, peer: string): Promise<string | undefined> {
  return (await peersOf(mesh, at)).find(p => p.name === peer)?.status
}

/** Waits until every node sees every other node online. */
export async function waitAllOnline (mesh: LocalMesh, timeoutMs = 15000): Promise<void> {
  const { waitFor } = await import('../src/devmesh/local-mesh.js')
  await waitFor('all nodes online everywhere', async () => {
    for (const name of mesh.nodes.keys()) {
      const peers = await peersOf(mesh, name)
      if (!peers.every(p => p.status === 'online')) return false
    }
    return true
  }, timeoutMs, 50)
}
