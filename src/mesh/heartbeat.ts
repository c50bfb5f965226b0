import type { Logger } from 'pino'
import type { Message, SubscriptionChangeData } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { Heartbeat, NodeRole } from '../../protocols/heartbeat.js'
import type { Role } from '../config/schema.js'
import { errorMessage } from '../errors.js'
import type { MeshLibp2p } from './libp2p.js'
import type { PeerTable } from './peer-table.js'

export const HEARTBEAT_TOPIC = '/aitbc-mesh/heartbeat/1.0.0'
const MAX_HEARTBEAT_BYTES = 512

export interface LocalHealth {
  healthy: boolean
  blockHeight?: number
}

export interface HeartbeatServiceInit {
  libp2p: MeshLibp2p
  peers: PeerTable
  node: { name: string, role: Role }
  intervalMs: number
  log: Logger
  /** The latest local probe verdict, carried in each heartbeat. */
  localHealth: () => LocalHealth
  onHeartbeat?: (name: string) => void
}

export function roleToWire (role: Role): NodeRole {
  return role === 'genesis' ? NodeRole.GENESIS : NodeRole.FOLLOWER
}

/**
 * Publishes this node's heartbeat on a gossipsub topic and records the heartbeats of others.
 * Messages are signed; a heartbeat counts only if its signer is the allowlisted peer id of the
 * node it names, so no node can keep another one "alive".
 */
export class HeartbeatService {
  private timer?: NodeJS.Timeout
  private seq = 0n
  private readonly startedAtMs = Date.now()
  private lastSentAt = 0
  private promptScheduled = false
  private readonly init: HeartbeatServiceInit

  constructor (init: HeartbeatServiceInit) {
    this.init = init
    this.onMessage = this.onMessage.bind(this)
    this.onSubscriptionChange = this.onSubscriptionChange.bind(this)
    this.validate = this.validate.bind(this)
  }

  start (): void {
    const pubsub = this.init.libp2p.services.pubsub
    pubsub.topicValidators.set(HEARTBEAT_TOPIC, this.validate)
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.subscribe(HEARTBEAT_TOPIC)
    this.timer = setInterval(() => { void this.publish() }, this.init.intervalMs)
    void this.publish()
  }

  stop (): void {
    clearInterval(this.timer)
    const pubsub = this.init.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.topicValidators.delete(HEARTBEAT_TOPIC)
    try {
      pubsub.unsubscribe(HEARTBEAT_TOPIC)
    } catch {
      // already stopped
    }
  }

  async publish (): Promise<void> {
    const health = this.init.localHealth()
    this.seq++
    this.lastSentAt = Date.now()
    const beat: Heartbeat = {
      node: this.init.node.name,
      role: roleToWire(this.init.node.role),
      seq: this.seq,
      startedAtMs: BigInt(this.startedAtMs),
      sentAtMs: BigInt(this.lastSentAt),
      healthy: health.healthy,
      ...(health.blockHeight != null ? { blockHeight: BigInt(health.blockHeight) } : {}),
      p2pConnections: this.init.libp2p.getPeers().length,
      connected: this.init.peers.all().filter(p => p.connected).map(p => p.name)
    }
    let data = Heartbeat.encode(beat)
    // Receivers refuse heartbeats over the limit: names that do not fit are left out.
    while (data.byteLength > MAX_HEARTBEAT_BYTES && beat.connected.length > 0) {
      beat.connected.pop()
      data = Heartbeat.encode(beat)
    }
    try {
      await this.init.libp2p.services.pubsub.publish(HEARTBEAT_TOPIC, data)
    } catch (err) {
      this.init.log.debug({ event: 'heartbeat_publish_failed', err: errorMessage(err) }, 'heartbeat not published')
    }
  }

  /** Decode and authenticate; Reject also lowers the relaying peer's gossipsub score. */
  private validate (_propagationSource: PeerId, msg: Message): TopicValidatorResult {
    if (msg.type !== 'signed') return this.reject('unsigned heartbeat', undefined)
    const signer = this.init.peers.getByPeerId(msg.from)
    if (signer == null) return this.reject('signed by a peer that is not in the allowlist', msg.from)
    if (msg.data.byteLength > MAX_HEARTBEAT_BYTES) return this.reject(`${msg.data.byteLength} bytes, over the ${MAX_HEARTBEAT_BYTES} byte limit`, msg.from)
    let beat: Heartbeat
    try {
      beat = Heartbeat.decode(msg.data)
    } catch (err) {
      return this.reject(`malformed: ${errorMessage(err)}`, msg.from)
    }
    if (beat.node !== signer.name) {
      return this.reject(`signed by ${signer.name} (${msg.from.toString()}) but claims to be from "${beat.node}"`, msg.from)
    }
    if (beat.role !== roleToWire(signer.role)) return this.reject(`role does not match the configured role ${signer.role}`, msg.from)
    return TopicValidatorResult.Accept
  }

  private reject (reason: string, signer: PeerId | undefined): TopicValidatorResult {
    this.init.log.warn({ event: 'heartbeat_rejected', signer: signer?.toString(), reason }, 'heartbeat rejected')
    return TopicValidatorResult.Reject
  }

  private onMessage (evt: CustomEvent<Message>): void {
    const msg = evt.detail
    if (msg.topic !== HEARTBEAT_TOPIC || msg.type !== 'signed') return
    let beat: Heartbeat
    try {
      beat = Heartbeat.decode(msg.data)
    } catch {
      return // the validator already rejected it
    }
    const state = this.init.peers.recordHeartbeat(msg.from, {
      seq: beat.seq,
      startedAtMs: Number(beat.startedAtMs),
      sentAtMs: Number(beat.sentAtMs),
      healthy: beat.healthy,
      ...(beat.blockHeight != null ? { blockHeight: Number(beat.blockHeight) } : {}),
      p2pConnections: beat.p2pConnections,
      connected: beat.connected
    })
    if (state != null) this.init.onHeartbeat?.(state.name)
  }

  /** A peer that just subscribed hears from us at once instead of up to one interval later. */
  private onSubscriptionChange (evt: CustomEvent<SubscriptionChangeData>): void {
    const joined = evt.detail.subscriptions.some(s => s.topic === HEARTBEAT_TOPIC && s.subscribe)
    if (!joined || this.promptScheduled) return
    // Coalesce peers that subscribe together into one extra heartbeat.
    this.promptScheduled = true
    setImmediate(() => {
      this.promptScheduled = false
      void this.publish()
    })
  }
}
