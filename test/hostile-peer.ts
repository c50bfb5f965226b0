import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId, Stream } from '@libp2p/interface'
import { readFileSync } from 'node:fs'
import type { LocalMesh } from '../src/devmesh/local-mesh.js'
import { SHUTDOWN_STEP_TIMEOUT_MS } from '../src/constants.js'
import { withTimeout } from '../src/errors.js'
import { AllowlistGater } from '../src/mesh/gater.js'
import { loadIdentity } from '../src/mesh/identity.js'
import { createMeshLibp2p, type MeshLibp2p } from '../src/mesh/libp2p.js'
import { onCleanup, waitFor } from './helpers.js'

/**
 * A test-only libp2p peer that holds the real, allowlisted identity of one node of `mesh` (whose
 * daemon the test does not start) and speaks every protocol as the test drives it: the honest
 * daemons see a peer they must admit, and it misbehaves on purpose.
 */
export interface HostilePeer {
  name: string
  libp2p: MeshLibp2p
  peerIdOf: (name: string) => PeerId
  /** Opens a raw stream on `protocol` to the daemon `name`. */
  stream: (name: string, protocol: string) => Promise<Stream>
}

export async function startHostilePeer (mesh: LocalMesh, as: string, connectTo: string[]): Promise<HostilePeer> {
  const self = mesh.node(as)
  const identity = loadIdentity(join(self.dir, 'identity.key'))
  const others = connectTo.map(name => mesh.node(name))
  const peerIds = new Map(others.map(n => [n.spec.name, loadIdentity(join(n.dir, 'identity.key')).peerId]))
  const swarmKeyFile = join(mesh.baseDir, 'swarm.key')
  let swarmKey: Uint8Array | undefined
  try {
    swarmKey = readFileSync(swarmKeyFile)
  } catch {}
  const libp2p = await createMeshLibp2p({
    privateKey: identity.privateKey,
    listen: [],
    gater: new AllowlistGater([...peerIds.values()]),
    ...(swarmKey != null ? { swarmKey } : {})
  })
  await libp2p.start()
  // libp2p's stop() can hang; the cleanup gives up after a bound (and cleanups swallow errors).
  onCleanup(async () => { await withTimeout('hostile peer stop', Promise.resolve(libp2p.stop()), SHUTDOWN_STEP_TIMEOUT_MS) })
  for (const node of others) {
    await waitFor(`hostile peer ${as} connected to ${node.spec.name}`, async () => {
      try {
        await libp2p.dial(multiaddr(node.addr))
        return true
      } catch {
        return false
      }
    }, 10000, 100)
  }
  const peerIdOf = (name: string): PeerId => {
    const id = peerIds.get(name)
    if (id == null) throw new Error(`hostile peer is not connected to ${name}`)
    return id
  }
  return {
    name: as,
    libp2p,
    peerIdOf,
    stream: async (name, protocol) => await libp2p.dialProtocol(peerIdOf(name), protocol)
  }
}
