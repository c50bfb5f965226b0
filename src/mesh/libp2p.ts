import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@libp2p/yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { preSharedKey } from '@libp2p/pnet'
import type { PrivateKey } from '@libp2p/interface'
import { CONNECTIONS_PER_MESH_NODE, DIAL_TIMEOUT_MS, LIBP2P_MIN_INBOUND_PER_HOST_PER_S, LIBP2P_MIN_MAX_CONNECTIONS, LIBP2P_MIN_PENDING_INBOUND } from '../constants.js'
import type { AllowlistGater } from './gater.js'
import { DEFAULT_GOSSIP_TUNING, gossipOptions, type GossipTuning } from './gossip.js'

export interface MeshServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
}

export type MeshLibp2p = Libp2p<MeshServices>

export interface MeshLibp2pInit {
  privateKey: PrivateKey
  listen: string[]
  gater: AllowlistGater
  swarmKey?: Uint8Array
  /** libp2p's own metrics (only when the daemon serves /metrics). */
  metrics?: Libp2pOptions['metrics']
  /** Nodes of the mesh, this one included: sizes the limits on inbound connections. */
  meshSize?: number
  /** Gossipsub mesh degree and publishing (config `gossip`); gossipsub's defaults when absent. */
  gossip?: GossipTuning
}

/**
 * A mesh restarting dials every node at once, and several dials share one source address when
 * nodes share a host or a NAT. libp2p's defaults (10 connections in their handshake, 5 a second
 * from one address) turned most of a 30-node mesh away into redial backoff; the limits grow with
 * the mesh, so they still bound the handshakes strangers can cost us (the gater refuses them only
 * once the handshake names them).
 */
function inboundLimits (meshSize: number): { maxConnections: number, maxIncomingPendingConnections: number, inboundConnectionThreshold: number } {
  return {
    maxConnections: Math.max(LIBP2P_MIN_MAX_CONNECTIONS, CONNECTIONS_PER_MESH_NODE * meshSize),
    maxIncomingPendingConnections: Math.max(LIBP2P_MIN_PENDING_INBOUND, meshSize),
    inboundConnectionThreshold: Math.max(LIBP2P_MIN_INBOUND_PER_HOST_PER_S, meshSize)
  }
}

/** The libp2p node of a daemon: TCP + Noise + Yamux, allowlist gater, optional private network. */
export async function createMeshLibp2p (init: MeshLibp2pInit): Promise<MeshLibp2p> {
  return await createLibp2p({
    start: false,
    privateKey: init.privateKey,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: init.gater,
    ...(init.swarmKey != null ? { connectionProtector: preSharedKey({ psk: init.swarmKey }) } : {}),
    ...(init.metrics != null ? { metrics: init.metrics } : {}),
    connectionManager: {
      dialTimeout: DIAL_TIMEOUT_MS,
      // Redialling is done by PeerConnector, which never gives up; libp2p's own gives up.
      reconnectRetries: 0,
      ...inboundLimits(init.meshSize ?? 1)
    },
    // Dead connections are found by SilentConnectionCloser, which asks the heartbeats first.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub(gossipOptions(init.gossip ?? DEFAULT_GOSSIP_TUNING))
    }
  }) as MeshLibp2p
}
