import type { GossipsubOpts } from '@libp2p/gossipsub'
import type { RPC } from '@libp2p/gossipsub/message'
import { DEFAULT_GOSSIP_MESH_DEGREE, GOSSIP_IDONTWANT_MIN_BYTES, GOSSIP_MAX_INBOUND_BYTES } from '../constants.js'

export interface GossipTuning {
  /** Gossipsub mesh degree D: each message is forwarded to about this many peers, so each node receives about D copies. */
  meshDegree: number
  /** A node's own messages go to every connected subscriber, not only its mesh peers. */
  floodPublish: boolean
}

export const DEFAULT_GOSSIP_TUNING: GossipTuning = { meshDegree: DEFAULT_GOSSIP_MESH_DEGREE, floodPublish: true }

/**
 * A local id for the seen cache, taken before the signature check. Gossipsub verifies a message's
 * signature before it looks the message up among those seen, so each of the (about D) copies a
 * node receives would cost an Ed25519 verification; a signature names its message, so the copies
 * after the first are dropped unverified. Only a message that passed verification puts its id in
 * the cache: a forged copy carrying a real signature cannot shadow the real message.
 */
export function signatureMessageId (msg: RPC.Message): string {
  const signature = msg.signature
  // No signature: never valid under StrictSign, and never cached; '' is never found.
  if (signature == null || signature.byteLength === 0) return ''
  return Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('base64')
}

/** Gossipsub options of the mesh: signed messages only, the mesh degree from the config. */
export function gossipOptions (tuning: GossipTuning): Partial<GossipsubOpts> {
  const D = tuning.meshDegree
  return {
    globalSignaturePolicy: 'StrictSign',
    allowPublishToZeroTopicPeers: true,
    floodPublish: tuning.floodPublish,
    emitSelf: false,
    doPX: false,
    fastMsgIdFn: signatureMessageId,
    // Gossipsub's own proportions around D (defaults 6, 4, 12, 6), scaled with it.
    D,
    Dlo: Math.max(1, Math.round(D * 2 / 3)),
    Dhi: D * 2,
    Dlazy: D,
    // IHAVE gossip goes to Dlazy peers, not to a quarter of all non-mesh peers (gossipsub's
    // gossipFactor): every node gets each message from its origin (flood publish) and its mesh,
    // and a quarter of N peers, each told the ids of the last three seconds, grows as N².
    gossipFactor: 0,
    Dscore: Math.max(1, Math.min(D, Math.round(D * 2 / 3))),
    // Below Dlo and at most D / 2, as gossipsub requires.
    Dout: Math.max(0, Math.min(2, Math.round(D * 2 / 3) - 1, Math.floor(D / 2))),
    // Heartbeats are small; cap what one peer can push at us.
    maxInboundDataLength: GOSSIP_MAX_INBOUND_BYTES,
    idontwantMinDataSize: GOSSIP_IDONTWANT_MIN_BYTES,
    // Every peer is allowlisted by its key (the gater refuses the rest), and each message is checked
    // by its topic's validator. The penalties meant for open networks only hurt here: IP colocation
    // punishes peers behind one address, and broken IHAVE promises punish a peer that was merely
    // slow under load. Either drove honest peers below the graylist threshold, where all their
    // RPCs, heartbeats included, are ignored: a live node then looked offline.
    scoreParams: { IPColocationFactorWeight: 0, behaviourPenaltyWeight: 0 }
  }
}
