import type { Logger } from 'pino'
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { pbStream } from '@libp2p/utils'
import { AgentUpdate, SyncPush, SyncRequest, SyncResponse, type DigestEntry } from '../../protocols/agents.js'
import {
  ANTI_ENTROPY_INTERVAL_MS, ANTI_ENTROPY_MAX_DIGEST_ENTRIES, ANTI_ENTROPY_MAX_MESSAGE_BYTES, ANTI_ENTROPY_MAX_UPDATE_BYTES,
  ANTI_ENTROPY_MAX_STREAMS, ANTI_ENTROPY_MAX_UPDATES, ANTI_ENTROPY_TIMEOUT_MS, MAX_AGENT_RECORD_BYTES
} from '../constants.js'
import { errorMessage, ProtocolError } from '../errors.js'
import type { MeshLibp2p } from '../mesh/libp2p.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { ChangeRejected } from './authorship.js'
import { compareClocks, type Clock } from './clock.js'
import { clockFrom, entryFromWire, toWire, type AgentEntry } from './entry.js'
import type { AgentRegistry } from './registry.js'

export const AGENTS_TOPIC = '/aitbc-mesh/agents/2.0.0'
export const AGENTS_SYNC_PROTOCOL = '/aitbc-mesh/agents-sync/2.0.0'
const MAX_UPDATE_BYTES = MAX_AGENT_RECORD_BYTES + 1024
/** Back-to-back rounds with one peer while it says it has more. */
const MAX_FOLLOW_UP_ROUNDS = 50

/** Decoders that refuse oversized repeated fields before allocating for them. */
const syncRequestCodec = { decode: (buf: Uint8Array | import('uint8arraylist').Uint8ArrayList) => SyncRequest.decode(buf, { limits: { digest: ANTI_ENTROPY_MAX_DIGEST_ENTRIES } }) }
const syncResponseCodec = { decode: (buf: Uint8Array | import('uint8arraylist').Uint8ArrayList) => SyncResponse.decode(buf, { limits: { updates: ANTI_ENTROPY_MAX_UPDATES, want: ANTI_ENTROPY_MAX_UPDATES } }) }
const syncPushCodec = { decode: (buf: Uint8Array | import('uint8arraylist').Uint8ArrayList) => SyncPush.decode(buf, { limits: { updates: ANTI_ENTROPY_MAX_UPDATES } }) }

/** A refused change's reason; anything that is not a ChangeRejected failed to decode. */
function rejectionOf (err: unknown): ChangeRejected {
  return err instanceof ChangeRejected ? err : new ChangeRejected('undecodable', errorMessage(err))
}

/** Updates to send, within the per-message count and byte caps; `more` if some did not fit. */
function capped (entries: AgentEntry[], origin: string): { updates: AgentUpdate[], more: boolean } {
  const updates: AgentUpdate[] = []
  let bytes = 0
  for (const entry of entries) {
    bytes += entry.recordJson.length + 256
    if (updates.length >= ANTI_ENTROPY_MAX_UPDATES || (bytes > ANTI_ENTROPY_MAX_UPDATE_BYTES && updates.length > 0)) return { updates, more: true }
    updates.push(toWire(entry, origin))
  }
  return { updates, more: false }
}

export interface ReplicationInit {
  /** The slice of libp2p replication uses. */
  libp2p: Pick<MeshLibp2p, 'services' | 'handle' | 'unhandle' | 'dialProtocol' | 'addEventListener' | 'removeEventListener'>
  peers: PeerTable
  registry: AgentRegistry
  node: string
  log: Logger
}

/**
 * Replicates the agent registry: each change is gossiped at once (fast, best effort), and
 * anti-entropy compares digests with each peer on every (re)connection and periodically,
 * repairing whatever gossip missed (a node that was offline, partitioned or wiped).
 */
export class AgentReplication {
  private timer?: NodeJS.Timeout
  private readonly syncing = new Set<string>()
  private started = false
  private readonly rejections: RejectionLog
  /** Gossip already vetted by the topic validator, so its signature is not checked twice. */
  private readonly vetted = new WeakMap<Message, AgentEntry>()

  constructor (private readonly init: ReplicationInit) {
    this.rejections = new RejectionLog(init.log)
    this.validate = this.validate.bind(this)
    this.onMessage = this.onMessage.bind(this)
    this.handleSync = this.handleSync.bind(this)
    this.onPeerConnect = this.onPeerConnect.bind(this)
  }

  async start (): Promise<void> {
    const { libp2p, registry } = this.init
    const pubsub = libp2p.services.pubsub
    pubsub.topicValidators.set(AGENTS_TOPIC, this.validate)
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(AGENTS_TOPIC)
    await libp2p.handle(AGENTS_SYNC_PROTOCOL, this.handleSync, { maxInboundStreams: ANTI_ENTROPY_MAX_STREAMS, maxOutboundStreams: ANTI_ENTROPY_MAX_STREAMS })
    libp2p.addEventListener('peer:connect', this.onPeerConnect)
    registry.onLocalChange = entry => { void this.publish(entry) }
    this.timer = setInterval(() => { this.syncAll() }, ANTI_ENTROPY_INTERVAL_MS)
    this.timer.unref()
    this.started = true
    this.syncAll()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    const { libp2p, registry } = this.init
    delete registry.onLocalChange
    libp2p.removeEventListener('peer:connect', this.onPeerConnect)
    const pubsub = libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.topicValidators.delete(AGENTS_TOPIC)
    try {
      pubsub.unsubscribe(AGENTS_TOPIC)
    } catch {}
    await libp2p.unhandle(AGENTS_SYNC_PROTOCOL)
  }

  private async publish (entry: AgentEntry): Promise<void> {
    try {
      await this.init.libp2p.services.pubsub.publish(AGENTS_TOPIC, AgentUpdate.encode(toWire(entry, this.init.node)))
    } catch (err) {
      // Anti-entropy delivers what gossip could not.
      this.init.log.debug({ event: 'agent_publish_failed', agentId: entry.agentId, err: errorMessage(err) }, 'agent update not published')
    }
  }

  /**
   * Gossip carries each change from its author only: the gossip signer, the claimed origin and
   * the change's author are one node, and the change itself is signed by it and allowed.
   */
  private validate (_source: PeerId, msg: Message): TopicValidatorResult {
    if (msg.type !== 'signed') {
      this.rejections.reject('agent_update_rejected', 'unknown', 'unsigned', {}, 'agent update rejected')
      return TopicValidatorResult.Reject
    }
    const signer = this.init.peers.getByPeerId(msg.from)
    const reject = (reason: string, fields: Record<string, unknown>): TopicValidatorResult => {
      this.rejections.reject('agent_update_rejected', signer?.name ?? msg.from.toString(), reason, fields, 'agent update rejected')
      return TopicValidatorResult.Reject
    }
    if (signer == null) return reject('signer-not-allowlisted', { signer: msg.from.toString() })
    if (msg.data.byteLength > MAX_UPDATE_BYTES) return reject('oversized', { bytes: msg.data.byteLength, limit: MAX_UPDATE_BYTES })
    let entry: AgentEntry
    try {
      const update = AgentUpdate.decode(msg.data)
      if (update.origin !== signer.name) return reject('origin-not-signer', { detail: `signed by ${signer.name} but claims origin "${update.origin}"` })
      entry = entryFromWire(update)
      if (entry.clock.node !== signer.name) return reject('author-not-signer', { detail: `change authored by "${entry.clock.node}", gossiped by ${signer.name}` })
      if (this.init.registry.vet(entry) === 'stale') return TopicValidatorResult.Ignore
    } catch (err) {
      const rejected = rejectionOf(err)
      return reject(rejected.reason, { detail: rejected.message })
    }
    this.vetted.set(msg, entry)
    return TopicValidatorResult.Accept
  }

  private onMessage (evt: CustomEvent<Message>): void {
    const msg = evt.detail
    if (msg.topic !== AGENTS_TOPIC) return
    const entry = this.vetted.get(msg)
    if (entry == null) return
    void this.init.registry.applyRemote(entry, { vetted: true }).catch(err => {
      const rejected = rejectionOf(err)
      this.rejections.reject('agent_change_rejected', entry.clock.node, rejected.reason, { agentId: entry.agentId, detail: rejected.message }, 'agent change not applied')
    })
  }

  private onPeerConnect (evt: CustomEvent<PeerId>): void {
    if (this.init.peers.getByPeerId(evt.detail) != null) void this.syncWith(evt.detail)
  }

  private syncAll (): void {
    for (const peer of this.init.peers.all()) {
      if (peer.connected) void this.syncWith(peer.peerId)
    }
  }

  private digestOf (): DigestEntry[] {
    // A registry larger than one digest holds sends its first part; peers then offer what seems
    // missing, within their caps (see ANTI_ENTROPY_MAX_DIGEST_ENTRIES).
    return this.init.registry.digest().slice(0, ANTI_ENTROPY_MAX_DIGEST_ENTRIES)
      .map(e => ({ agentId: e.agentId, clock: { ms: BigInt(e.clock.ms), counter: e.clock.counter, node: e.clock.node } }))
  }

  /** Applies a batch of updates `from` sent (authored by anyone), skipping refused ones. */
  private async applyAll (updates: AgentUpdate[], from: string): Promise<number> {
    let applied = 0
    for (const update of updates) {
      try {
        if (await this.init.registry.applyRemote(entryFromWire(update)) === 'applied') applied++
      } catch (err) {
        const rejected = rejectionOf(err)
        this.rejections.reject('agent_change_rejected', from, rejected.reason, { agentId: update.agentId, author: update.clock?.node, detail: rejected.message }, 'agent change from anti-entropy not applied')
      }
    }
    return applied
  }

  /** Dialer side: send our digest, take what the peer has newer, push what it wants; again while it has more. */
  async syncWith (peerId: PeerId): Promise<void> {
    const key = peerId.toString()
    const peer = this.init.peers.getByPeerId(peerId)
    if (peer == null || this.syncing.has(key)) return
    this.syncing.add(key)
    try {
      for (let round = 0; round < MAX_FOLLOW_UP_ROUNDS && this.started; round++) {
        if (!await this.syncRound(peerId, peer.name)) break
      }
    } finally {
      this.syncing.delete(key)
    }
  }

  /** One anti-entropy round; true if the peer has more to send. */
  private async syncRound (peerId: PeerId, name: string): Promise<boolean> {
    const signal = AbortSignal.timeout(ANTI_ENTROPY_TIMEOUT_MS)
    let stream: Stream | undefined
    try {
      stream = await this.init.libp2p.dialProtocol(peerId, AGENTS_SYNC_PROTOCOL, { signal })
      const pb = pbStream(stream, { maxDataLength: ANTI_ENTROPY_MAX_MESSAGE_BYTES })
      await pb.write({ digest: this.digestOf() }, SyncRequest, { signal })
      const response = await pb.read(syncResponseCodec, { signal })
      const applied = await this.applyAll(response.updates, name)
      const wanted = response.want.map(id => this.init.registry.entry(id)).filter((e): e is AgentEntry => e != null)
      const push = capped(wanted, this.init.node)
      // The listener reads a push only when it asked for something.
      if (response.want.length > 0) await pb.write({ updates: push.updates }, SyncPush, { signal })
      if (applied > 0 || push.updates.length > 0) {
        this.init.log.info({ event: 'anti_entropy', peer: name, received: applied, sent: push.updates.length }, 'agent registry repaired with a peer')
      }
      await stream.close({ signal })
      return response.more || push.more
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      this.init.log.debug({ event: 'anti_entropy_failed', peer: name, err: errorMessage(err) }, 'anti-entropy round failed')
      return false
    }
  }

  /** Listener side. */
  private async handleSync (stream: Stream, connection: Connection): Promise<void> {
    const peer = this.init.peers.getByPeerId(connection.remotePeer)
    const signal = AbortSignal.timeout(ANTI_ENTROPY_TIMEOUT_MS)
    try {
      if (peer == null) throw new ProtocolError('not in the allowlist')
      const pb = pbStream(stream, { maxDataLength: ANTI_ENTROPY_MAX_MESSAGE_BYTES })
      let request: SyncRequest
      try {
        request = await pb.read(syncRequestCodec, { signal })
      } catch (err) {
        this.rejections.reject('anti_entropy_rejected', peer.name, 'bad-digest', { detail: errorMessage(err), limit: ANTI_ENTROPY_MAX_DIGEST_ENTRIES }, 'anti-entropy digest refused')
        throw err
      }
      const theirs = new Map<string, Clock>()
      for (const d of request.digest) {
        try {
          theirs.set(d.agentId, clockFrom(d.clock))
        } catch {}
      }
      const newer: AgentEntry[] = []
      const want: string[] = []
      for (const entry of this.init.registry.digest()) {
        const their = theirs.get(entry.agentId)
        if (their == null || compareClocks(entry.clock, their) > 0) newer.push(entry)
      }
      for (const [agentId, clock] of theirs) {
        const mine = this.init.registry.entry(agentId)
        if (mine == null || compareClocks(clock, mine.clock) > 0) want.push(agentId)
      }
      const { updates, more } = capped(newer, this.init.node)
      const wantCapped = want.slice(0, ANTI_ENTROPY_MAX_UPDATES)
      await pb.write({ updates, want: wantCapped, more: more || want.length > wantCapped.length }, SyncResponse, { signal })
      const push = wantCapped.length > 0 ? await pb.read(syncPushCodec, { signal }) : { updates: [] }
      const applied = await this.applyAll(push.updates, peer.name)
      if (applied > 0 || updates.length > 0) {
        this.init.log.info({ event: 'anti_entropy', peer: peer.name, received: applied, sent: updates.length }, 'agent registry repaired with a peer')
      }
      await stream.close({ signal })
    } catch (err) {
      this.init.log.debug({ event: 'anti_entropy_failed', peer: peer?.name, peerId: connection.remotePeer.toString(), err: errorMessage(err) }, 'anti-entropy request failed')
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
}
