import type { Logger } from 'pino'
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { pbStream } from '@libp2p/utils'
import { AgentUpdate, SyncPush, SyncRequest, SyncResponse, type DigestEntry } from '../../protocols/agents.js'
import { ANTI_ENTROPY_INTERVAL_MS, ANTI_ENTROPY_MAX_MESSAGE_BYTES, ANTI_ENTROPY_TIMEOUT_MS, MAX_AGENT_RECORD_BYTES } from '../constants.js'
import { errorMessage, ProtocolError } from '../errors.js'
import type { MeshLibp2p } from '../mesh/libp2p.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { agentRecordSchema } from './agent.js'
import { compareClocks, type Clock } from './clock.js'
import type { AgentEntry, AgentRegistry } from './registry.js'

export const AGENTS_TOPIC = '/aitbc-mesh/agents/1.0.0'
export const AGENTS_SYNC_PROTOCOL = '/aitbc-mesh/agents-sync/1.0.0'
const MAX_UPDATE_BYTES = MAX_AGENT_RECORD_BYTES + 1024

function toWire (entry: AgentEntry, origin: string): AgentUpdate {
  return {
    origin,
    agentId: entry.agentId,
    clock: { ms: BigInt(entry.clock.ms), counter: entry.clock.counter, node: entry.clock.node },
    removed: entry.record == null,
    recordJson: entry.record != null ? JSON.stringify(entry.record) : ''
  }
}

function clockFromWire (clock: { ms: bigint, counter: number, node: string } | undefined): Clock {
  if (clock == null || clock.node === '') throw new ProtocolError('update has no clock')
  return { ms: Number(clock.ms), counter: clock.counter, node: clock.node }
}

/** Decodes and validates a peer's update; throws ProtocolError on anything malformed. */
export function entryFromWire (update: AgentUpdate): AgentEntry {
  const clock = clockFromWire(update.clock)
  if (update.agentId === '' || update.agentId.length > 128) throw new ProtocolError('update has no valid agent_id')
  if (update.removed) {
    if (update.recordJson !== '') throw new ProtocolError('a removal carries no record')
    return { agentId: update.agentId, clock, removedAt: clock.ms }
  }
  if (update.recordJson.length > MAX_AGENT_RECORD_BYTES) throw new ProtocolError(`record of ${update.recordJson.length} bytes is over the limit`)
  let json: unknown
  try {
    json = JSON.parse(update.recordJson)
  } catch {
    throw new ProtocolError('record is not JSON')
  }
  const parsed = agentRecordSchema.safeParse(json)
  if (!parsed.success) throw new ProtocolError(`invalid record: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`)
  if (parsed.data.agent_id !== update.agentId) throw new ProtocolError('record agent_id does not match the update')
  return { agentId: update.agentId, clock, record: parsed.data }
}

export interface ReplicationInit {
  libp2p: MeshLibp2p
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

  constructor (private readonly init: ReplicationInit) {
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
    await libp2p.handle(AGENTS_SYNC_PROTOCOL, this.handleSync, { maxInboundStreams: 8, maxOutboundStreams: 8 })
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

  private validate (_source: PeerId, msg: Message): TopicValidatorResult {
    const reject = (reason: string): TopicValidatorResult => {
      this.init.log.warn({ event: 'agent_update_rejected', signer: msg.type === 'signed' ? msg.from.toString() : undefined, reason }, 'agent update rejected')
      return TopicValidatorResult.Reject
    }
    if (msg.type !== 'signed') return reject('unsigned')
    const signer = this.init.peers.getByPeerId(msg.from)
    if (signer == null) return reject('signer is not in the allowlist')
    if (msg.data.byteLength > MAX_UPDATE_BYTES) return reject(`${msg.data.byteLength} bytes, over the limit`)
    try {
      const update = AgentUpdate.decode(msg.data)
      if (update.origin !== signer.name) return reject(`signed by ${signer.name} but claims origin "${update.origin}"`)
      const entry = entryFromWire(update)
      if (entry.clock.node !== signer.name) return reject(`clock names node "${entry.clock.node}", not the signer ${signer.name}`)
    } catch (err) {
      return reject(`malformed: ${errorMessage(err)}`)
    }
    return TopicValidatorResult.Accept
  }

  private onMessage (evt: CustomEvent<Message>): void {
    const msg = evt.detail
    if (msg.topic !== AGENTS_TOPIC) return
    let entry: AgentEntry
    try {
      entry = entryFromWire(AgentUpdate.decode(msg.data))
    } catch {
      return
    }
    void this.init.registry.applyRemote(entry).catch(err => {
      this.init.log.warn({ event: 'agent_update_failed', agentId: entry.agentId, err: errorMessage(err) }, 'could not apply an agent update')
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
    return this.init.registry.digest().map(e => ({ agentId: e.agentId, clock: { ms: BigInt(e.clock.ms), counter: e.clock.counter, node: e.clock.node } }))
  }

  /** Applies a batch of peer updates, skipping (and logging) malformed ones. */
  private async applyAll (updates: AgentUpdate[], from: string): Promise<number> {
    let applied = 0
    for (const update of updates) {
      try {
        if (await this.init.registry.applyRemote(entryFromWire(update))) applied++
      } catch (err) {
        this.init.log.warn({ event: 'agent_update_rejected', peer: from, agentId: update.agentId, err: errorMessage(err) }, 'dropped a malformed agent update from anti-entropy')
      }
    }
    return applied
  }

  /** Dialer side: send our digest, take what the peer has newer, push what it wants. */
  async syncWith (peerId: PeerId): Promise<void> {
    const key = peerId.toString()
    const peer = this.init.peers.getByPeerId(peerId)
    if (peer == null || this.syncing.has(key)) return
    this.syncing.add(key)
    const signal = AbortSignal.timeout(ANTI_ENTROPY_TIMEOUT_MS)
    let stream: Stream | undefined
    try {
      stream = await this.init.libp2p.dialProtocol(peerId, AGENTS_SYNC_PROTOCOL, { signal })
      const pb = pbStream(stream, { maxDataLength: ANTI_ENTROPY_MAX_MESSAGE_BYTES })
      await pb.write({ digest: this.digestOf() }, SyncRequest, { signal })
      const response = await pb.read(SyncResponse, { signal })
      const applied = await this.applyAll(response.updates, peer.name)
      const wanted = response.want.map(id => this.init.registry.entry(id)).filter((e): e is AgentEntry => e != null)
      // The listener reads a push only when it asked for something.
      if (response.want.length > 0) await pb.write({ updates: wanted.map(e => toWire(e, this.init.node)) }, SyncPush, { signal })
      if (applied > 0 || wanted.length > 0) {
        this.init.log.info({ event: 'anti_entropy', peer: peer.name, received: applied, sent: wanted.length }, 'agent registry repaired with a peer')
      }
      await stream.close({ signal })
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      this.init.log.debug({ event: 'anti_entropy_failed', peer: peer.name, err: errorMessage(err) }, 'anti-entropy round failed')
    } finally {
      this.syncing.delete(key)
    }
  }

  /** Listener side. */
  private async handleSync (stream: Stream, connection: Connection): Promise<void> {
    const peer = this.init.peers.getByPeerId(connection.remotePeer)
    const signal = AbortSignal.timeout(ANTI_ENTROPY_TIMEOUT_MS)
    try {
      if (peer == null) throw new ProtocolError('not in the allowlist')
      const pb = pbStream(stream, { maxDataLength: ANTI_ENTROPY_MAX_MESSAGE_BYTES })
      const request = await pb.read(SyncRequest, { signal })
      const theirs = new Map<string, Clock>()
      for (const d of request.digest) theirs.set(d.agentId, clockFromWire(d.clock))
      const updates: AgentUpdate[] = []
      const want: string[] = []
      for (const entry of this.init.registry.digest()) {
        const their = theirs.get(entry.agentId)
        if (their == null || compareClocks(entry.clock, their) > 0) updates.push(toWire(entry, this.init.node))
      }
      for (const [agentId, clock] of theirs) {
        const mine = this.init.registry.entry(agentId)
        if (mine == null || compareClocks(clock, mine.clock) > 0) want.push(agentId)
      }
      await pb.write({ updates, want }, SyncResponse, { signal })
      const push = want.length > 0 ? await pb.read(SyncPush, { signal }) : { updates: [] }
      const applied = await this.applyAll(push.updates, peer.name)
      if (applied > 0 || updates.length > 0) {
        this.init.log.info({ event: 'anti_entropy', peer: peer.name, received: applied, sent: updates.length }, 'agent registry repaired with a peer')
      }
      await stream.close({ signal })
    } catch (err) {
      this.init.log.warn({ event: 'anti_entropy_failed', peer: peer?.name, peerId: connection.remotePeer.toString(), err: errorMessage(err) }, 'anti-entropy request failed')
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
}
