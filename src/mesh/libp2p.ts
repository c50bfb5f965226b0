import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@libp2p/yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { preSharedKey } from '@libp2p/pnet'
import type { PrivateKey } from '@libp2p/interface'
import { CONNECTION_MONITOR_INTERVAL_MS, DIAL_TIMEOUT_MS } from '../constants.js'
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
  /** Gossipsub mesh degree and publishing (config `gossip`); gossipsub's defaults when absent. */
  gossip?: GossipTuning
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
      reconnectRetries: 0
    },
    connectionMonitor: { pingInterval: CONNECTION_MONITOR_INTERVAL_MS },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub(gossipOptions(init.gossip ?? DEFAULT_GOSSIP_TUNING))
    }
  }) as MeshLibp2p
}
