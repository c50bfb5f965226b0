import type { Logger } from 'pino'
import type { GossipsubMessage, Message, SubscriptionChangeData, TopicValidatorFn } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { Heartbeat, NodeRole } from '../../protocols/heartbeat.js'
import { nodeName, type Role } from '../config/schema.js'
import { HEARTBEAT_MAX_BYTES, HEARTBEAT_MAX_CONNECTED, HEARTBEAT_PROMPT_MIN_GAP, MAX_PLAUSIBLE_UPTIME_MS, MAX_WIRE_PEER_COUNT } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { PeerTable } from './peer-table.js'
import { RejectionLog } from './rejection-log.js'
import { aheadOfClock, behindClock, clipText, MAX_WIRE_INTEGER, storeEpochOutOfRange, wireTime } from './wire-bounds.js'

export const HEARTBEAT_TOPIC = '/aitbc-mesh/heartbeat/1.0.0'

export interface LocalHealth {
  healthy: boolean
  blockHeight?: number
}

/**
 * The gossipsub slice heartbeats use: the topic, its validator, its messages (with the peer that
 * passed each one on: the signer itself when it came over the direct connection), and who subscribes.
 */
export interface HeartbeatGossip {
  readonly topicValidators: Map<string, TopicValidatorFn>
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  addEventListener: {
    (type: 'gossipsub:message', listener: (evt: CustomEvent<GossipsubMessage>) => void): void
    (type: 'subscription-change', listener: (evt: CustomEvent<SubscriptionChangeData>) => void): void
  }
  removeEventListener: {
    (type: 'gossipsub:message', listener: (evt: CustomEvent<GossipsubMessage>) => void): void
    (type: 'subscription-change', listener: (evt: CustomEvent<SubscriptionChangeData>) => void): void
  }
}

/** The slice of libp2p heartbeats use (MeshLibp2p has it): the gossip, and the count of connected peers. */
export interface HeartbeatNetwork {
  readonly services: { readonly pubsub: HeartbeatGossip }
  getPeers: () => PeerId[]
}

export interface HeartbeatServiceInit {
  libp2p: HeartbeatNetwork
  /** Who signs for which node, and where heartbeats (accepted or refused) are recorded. */
  peers: Pick<PeerTable, 'getByPeerId' | 'all' | 'recordHeartbeat' | 'noteRefusedHeartbeat'>
  node: { name: string, role: Role }
  intervalMs: number
  /** trust.clockSkewMs: the window for the heartbeat's times. */
  clockSkewMs: number
  log: Logger
  /** The latest local probe verdict, carried in each heartbeat. */
  localHealth: () => LocalHealth
  onHeartbeat?: (name: string) => void
  /** This node's store epoch, carried in each heartbeat (an empty epoch is left out: not known yet). */
  storeEpoch?: () => { epoch: string, lostFromMs: number }
  /** A peer's newest heartbeat carried its store epoch. */
  onPeerStoreEpoch?: (name: string, epoch: string, lostFromMs: number) => void
}

export function roleToWire (role: Role): NodeRole {
  return role === 'genesis' ? NodeRole.GENESIS : NodeRole.FOLLOWER
}

/** Why a heartbeat's values are out of range: a stable reason, and the detail of this one. */
export interface HeartbeatOutOfRange {
  reason: string
  detail: string
  /** Refused for a time against our clock (our clock may be the wrong one; relays are not blamed). */
  clock: boolean
}

/**
 * Bounds on what a (decoded, authenticated) heartbeat says: its times against our clock, its
 * counts against what a mesh can hold. Undefined when every value is in range.
 */
export function heartbeatOutOfRange (beat: Heartbeat, now: number, clockSkewMs: number): HeartbeatOutOfRange | undefined {
  const clock = (reason: string, detail: string | undefined): HeartbeatOutOfRange | undefined => detail != null ? { reason, detail, clock: true } : undefined
  const outOfRange = clock('sent_at outside the clock window', aheadOfClock('sent_at', beat.sentAtMs, now, clockSkewMs) ?? behindClock('sent_at', beat.sentAtMs, now, clockSkewMs)) ??
    clock('started_at in the future', aheadOfClock('started_at', beat.startedAtMs, now, clockSkewMs))
  if (outOfRange != null) return outOfRange
  if (beat.startedAtMs < BigInt(now - MAX_PLAUSIBLE_UPTIME_MS)) {
    return { reason: 'started_at too old', detail: `started_at ${wireTime(beat.startedAtMs)} is more than ${MAX_PLAUSIBLE_UPTIME_MS / (365 * 24 * 3600 * 1000)} years ago`, clock: true }
  }
  const bad = (reason: string, detail: string): HeartbeatOutOfRange => ({ reason, detail, clock: false })
  if (beat.seq < 1n || beat.seq > MAX_WIRE_INTEGER) return bad('seq out of range', `seq ${String(beat.seq)} is not between 1 and ${String(MAX_WIRE_INTEGER)}`)
  if (beat.blockHeight != null && beat.blockHeight > MAX_WIRE_INTEGER) return bad('block_height out of range', `block_height ${String(beat.blockHeight)} is over ${String(MAX_WIRE_INTEGER)}`)
  if (beat.p2pConnections > MAX_WIRE_PEER_COUNT) return bad('p2p_connections out of range', `p2p_connections ${beat.p2pConnections} is over ${MAX_WIRE_PEER_COUNT}`)
  if (beat.connected.length > HEARTBEAT_MAX_CONNECTED) return bad('connected list too long', `connected lists ${beat.connected.length} names, over ${HEARTBEAT_MAX_CONNECTED}`)
  const epoch = storeEpochOutOfRange(beat.storeEpoch, beat.storeLostFromMs, now, clockSkewMs)
  if (epoch != null) return bad('store epoch out of range', epoch)
  const names = new Set<string>()
  for (const name of beat.connected) {
    if (!nodeName.safeParse(name).success) return bad('connected list malformed', `connected holds "${clipText(name, 64)}", not a node name`)
    if (names.has(name)) return bad('connected list malformed', `connected lists "${name}" twice`)
    names.add(name)
  }
  return undefined
}

/**
 * Publishes this node's heartbeat on a gossipsub topic and records the heartbeats of others.
 * Messages are signed; a heartbeat counts only if its signer is the allowlisted peer id of the
 * node it names, so no node can keep another one "alive".
 */
export class HeartbeatService {
  private timer?: NodeJS.Timeout
  private running = false
  private seq = 0n
  private readonly startedAtMs = Date.now()
  private lastSentAt = 0
  private promptScheduled = false
  private promptTimer?: NodeJS.Timeout
  private readonly init: HeartbeatServiceInit
  private readonly rejections: RejectionLog
  /** Heartbeats the validator accepted, decoded once: gossipsub hands the same message object on. */
  private readonly accepted = new WeakMap<Message, Heartbeat>()

  constructor (init: HeartbeatServiceInit) {
    this.init = init
    this.rejections = new RejectionLog(init.log)
    this.onMessage = this.onMessage.bind(this)
    this.onSubscriptionChange = this.onSubscriptionChange.bind(this)
    this.validate = this.validate.bind(this)
  }

  start (): void {
    const pubsub = this.init.libp2p.services.pubsub
    pubsub.topicValidators.set(HEARTBEAT_TOPIC, this.validate)
    pubsub.addEventListener('gossipsub:message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.subscribe(HEARTBEAT_TOPIC)
    this.running = true
    void this.publish()
  }

  /**
   * Sends the heartbeat now if it is overdue. Called for every gossip message this node takes in:
   * one poll of the sockets can hand a flooded node hundreds of messages to verify and forward,
   * holding the loop for seconds on a busy machine, and no timer runs meanwhile; the heartbeat
   * then goes out from the message path, on time, instead of after the flood and the peers'
   * offline window.
   */
  publishIfOverdue (now = Date.now()): void {
    if (this.running && now - this.lastSentAt >= this.init.intervalMs) void this.publish()
  }

  /** The next heartbeat is due one interval after the last one sent, whoever sent it. */
  private scheduleNext (): void {
    clearTimeout(this.timer)
    if (!this.running) return
    this.timer = setTimeout(() => { void this.publish() }, this.init.intervalMs)
  }

  stop (): void {
    this.running = false
    clearTimeout(this.timer)
    clearTimeout(this.promptTimer)
    this.promptScheduled = false
    const pubsub = this.init.libp2p.services.pubsub
    pubsub.removeEventListener('gossipsub:message', this.onMessage)
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
    const store = this.init.storeEpoch?.()
    this.seq++
    this.lastSentAt = Date.now()
    this.scheduleNext()
    const beat: Heartbeat = {
      node: this.init.node.name,
      role: roleToWire(this.init.node.role),
      seq: this.seq,
      startedAtMs: BigInt(this.startedAtMs),
      sentAtMs: BigInt(this.lastSentAt),
      healthy: health.healthy,
      ...(health.blockHeight != null ? { blockHeight: BigInt(health.blockHeight) } : {}),
      p2pConnections: this.init.libp2p.getPeers().length,
      connected: this.init.peers.all().filter(p => p.connected).map(p => p.name).slice(0, HEARTBEAT_MAX_CONNECTED),
      ...(store != null && store.epoch !== '' ? { storeEpoch: store.epoch, storeLostFromMs: BigInt(Math.max(0, Math.floor(store.lostFromMs))) } : {})
    }
    let data = Heartbeat.encode(beat)
    // Receivers refuse heartbeats over the limit: names that do not fit are left out.
    while (data.byteLength > HEARTBEAT_MAX_BYTES && beat.connected.length > 0) {
      beat.connected.pop()
      data = Heartbeat.encode(beat)
    }
    try {
      await this.init.libp2p.services.pubsub.publish(HEARTBEAT_TOPIC, data)
    } catch (err) {
      this.init.log.debug({ event: 'heartbeat_publish_failed', err: errorMessage(err) }, 'heartbeat not published')
    }
  }

  /**
   * Decode, authenticate and bound. Reject also lowers the relaying peer's gossipsub score;
   * a time out of our window is only ignored, since our own clock may be the wrong one.
   */
  private validate (propagationSource: PeerId, msg: Message): TopicValidatorResult {
    // Without an allowlisted signer, the (allowlisted) peer that passed it on answers for it: a
    // peer signing with fresh keys cannot open a new log key, and a new warn line, per heartbeat.
    const relayedBy = { relayedBy: propagationSource.toString() }
    const relayer = this.init.peers.getByPeerId(propagationSource)?.name ?? propagationSource.toString()
    if (msg.type !== 'signed') return this.reject(relayer, 'unsigned', relayedBy)
    const signer = this.init.peers.getByPeerId(msg.from)
    if (signer == null) return this.reject(relayer, 'signer not in the allowlist', { ...relayedBy, signer: msg.from.toString() })
    const from = { signer: msg.from.toString() }
    if (msg.data.byteLength > HEARTBEAT_MAX_BYTES) return this.reject(signer.name, 'too large', { ...from, detail: `${msg.data.byteLength} bytes, over the ${HEARTBEAT_MAX_BYTES} byte limit` })
    let beat: Heartbeat
    try {
      beat = Heartbeat.decode(msg.data)
    } catch (err) {
      return this.reject(signer.name, 'malformed', { ...from, detail: `malformed: ${errorMessage(err)}` })
    }
    if (beat.node !== signer.name) {
      return this.reject(signer.name, 'names another node', { ...from, claimed: clipText(beat.node, 64), detail: `signed by ${signer.name} (${msg.from.toString()}) but claims to be from "${clipText(beat.node, 64)}"` })
    }
    if (beat.role !== roleToWire(signer.role)) return this.reject(signer.name, 'role mismatch', { ...from, detail: `role ${beat.role} does not match the configured role ${signer.role}` })
    const now = Date.now()
    const outOfRange = heartbeatOutOfRange(beat, now, this.init.clockSkewMs)
    if (outOfRange != null) {
      const sentAtMs = Number(beat.sentAtMs)
      this.init.peers.noteRefusedHeartbeat(msg.from, { at: now, detail: outOfRange.detail, ...(beat.sentAtMs <= BigInt(Number.MAX_SAFE_INTEGER) ? { sentAtMs } : {}) })
      this.reject(signer.name, outOfRange.reason, { ...from, detail: outOfRange.detail })
      return outOfRange.clock ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
    }
    this.accepted.set(msg, beat)
    return TopicValidatorResult.Accept
  }

  /** Logged once per (node, reason), then summarised: a peer cannot flood the journal. */
  private reject (peer: string, reason: string, fields: Record<string, unknown>): TopicValidatorResult {
    this.rejections.reject('heartbeat_rejected', peer, reason, fields, 'heartbeat rejected')
    return TopicValidatorResult.Reject
  }

  private onMessage (evt: CustomEvent<GossipsubMessage>): void {
    this.publishIfOverdue()
    const { msg, propagationSource } = evt.detail
    if (msg.topic !== HEARTBEAT_TOPIC || msg.type !== 'signed') return
    const beat = this.accepted.get(msg)
    if (beat == null) return // not accepted by the validator
    this.accepted.delete(msg)
    const info = {
      seq: beat.seq,
      startedAtMs: Number(beat.startedAtMs),
      sentAtMs: Number(beat.sentAtMs),
      healthy: beat.healthy,
      ...(beat.blockHeight != null ? { blockHeight: Number(beat.blockHeight) } : {}),
      p2pConnections: beat.p2pConnections,
      connected: beat.connected
    }
    // Passed on by its signer: it came over the direct connection, whose transit the table uses to read send times.
    const state = this.init.peers.recordHeartbeat(msg.from, info, Date.now(), propagationSource.equals(msg.from))
    if (state == null) return
    this.init.onHeartbeat?.(state.name)
    // Only the newest heartbeat speaks for the store: an older one relayed late may carry an older epoch.
    if (state.lastHeartbeat === info && beat.storeEpoch != null) this.init.onPeerStoreEpoch?.(state.name, beat.storeEpoch, Number(beat.storeLostFromMs ?? 0n))
  }

  /**
   * A peer that just subscribed hears from us at once instead of up to one interval later. Peers
   * that subscribe together share one extra heartbeat, and extra ones are at least a quarter
   * interval apart: a whole mesh starting at once would otherwise send one per new peer, to every
   * peer (N² heartbeats when N nodes connect).
   */
  private onSubscriptionChange (evt: CustomEvent<SubscriptionChangeData>): void {
    const joined = evt.detail.subscriptions.some(s => s.topic === HEARTBEAT_TOPIC && s.subscribe)
    if (!joined || this.promptScheduled) return
    this.promptScheduled = true
    const wait = Math.max(0, this.lastSentAt + this.init.intervalMs * HEARTBEAT_PROMPT_MIN_GAP - Date.now())
    this.promptTimer = setTimeout(() => {
      this.promptScheduled = false
      void this.publish()
    }, wait)
  }
}
