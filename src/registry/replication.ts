import type { Logger } from 'pino'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId, Stream } from '@libp2p/interface'
import {
  InvalidDataLengthError, InvalidDataLengthLengthError, InvalidMessageLengthError, lpStream, type LengthPrefixedStream
} from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { AgentUpdate, SyncPush, SyncRequest, SyncResponse, type DigestEntry } from '../../protocols/agents.js'
import {
  ANTI_ENTROPY_INTERVAL_MS, ANTI_ENTROPY_MAX_DIGEST_ENTRIES, ANTI_ENTROPY_MAX_MESSAGE_BYTES, ANTI_ENTROPY_MAX_UPDATE_BYTES,
  ANTI_ENTROPY_MAX_STREAMS, ANTI_ENTROPY_MAX_UPDATES, ANTI_ENTROPY_TIMEOUT_MS, MAX_AGENT_RECORD_BYTES
} from '../constants.js'
import { errorMessage, ProtocolError, TimeoutError } from '../errors.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { ChangeRejected } from './authorship.js'
import { compareClocks, type Clock } from './clock.js'
import { clockFrom, entryFromWire, toWire, type AgentEntry } from './entry.js'
import type { AgentRegistry } from './registry.js'

export const AGENTS_TOPIC = '/aitbc-mesh/agents/2.0.0'
export const AGENTS_SYNC_PROTOCOL = '/aitbc-mesh/agents-sync/2.0.0'
const MAX_UPDATE_BYTES = MAX_AGENT_RECORD_BYTES + 1024
/** An update's bytes besides its record: ids, owner, origin, clock and signature, with field tags. */
const UPDATE_FRAMING_BYTES = 256
/** A varint length prefix takes at most this many bytes. */
const LENGTH_PREFIX_MAX_BYTES = 10
/** Back-to-back rounds with one peer while it says it has more. */
const MAX_FOLLOW_UP_ROUNDS = 50

/** The gossipsub slice replication uses: its topic, its validator, and the messages that pass it. */
export interface ReplicationGossip {
  readonly topicValidators: Map<string, TopicValidatorFn>
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  addEventListener: (type: 'message', listener: (evt: CustomEvent<Message>) => void) => void
  removeEventListener: (type: 'message', listener: (evt: CustomEvent<Message>) => void) => void
}

/** What the anti-entropy listener learns of the stream's connection: who is at the other end. */
export interface SyncConnection { readonly remotePeer: PeerId }

/** The slice of libp2p replication uses (MeshLibp2p has it): one protocol, dials, connects and gossip. */
export interface ReplicationNetwork {
  handle: (protocol: string, handler: (stream: Stream, connection: SyncConnection) => Promise<void>, options: { maxInboundStreams: number, maxOutboundStreams: number }) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  dialProtocol: (peer: PeerId, protocol: string, options: { signal: AbortSignal }) => Promise<Stream>
  addEventListener: (type: 'peer:connect', listener: (evt: CustomEvent<PeerId>) => void) => void
  removeEventListener: (type: 'peer:connect', listener: (evt: CustomEvent<PeerId>) => void) => void
  readonly services: { readonly pubsub: ReplicationGossip }
}

/** Limits of anti-entropy; each defaults to its constant (src/constants.ts says why). */
export interface ReplicationLimits {
  /** One round, from the dial to the close; each step is cut off when it runs out. */
  timeoutMs: number
  intervalMs: number
  maxDigestEntries: number
  maxUpdates: number
  maxUpdateBytes: number
  maxMessageBytes: number
}

const DEFAULT_LIMITS: ReplicationLimits = {
  timeoutMs: ANTI_ENTROPY_TIMEOUT_MS,
  intervalMs: ANTI_ENTROPY_INTERVAL_MS,
  maxDigestEntries: ANTI_ENTROPY_MAX_DIGEST_ENTRIES,
  maxUpdates: ANTI_ENTROPY_MAX_UPDATES,
  maxUpdateBytes: ANTI_ENTROPY_MAX_UPDATE_BYTES,
  maxMessageBytes: ANTI_ENTROPY_MAX_MESSAGE_BYTES
}

/** The steps of a round, in order; the dialer dials and writes the request, the listener reads it. */
export type SyncStep = 'dial' | 'request' | 'response' | 'push' | 'close'

/** A round ran out of time; `step` is the one it was waiting on. */
export class SyncTimeoutError extends TimeoutError {
  override name = 'SyncTimeoutError'
  constructor (readonly peer: string, readonly step: SyncStep, readonly timeoutMs: number) {
    super(`anti-entropy with ${peer}: ${step} not done within ${timeoutMs} ms of the round's start`)
  }
}

/** A peer's anti-entropy message that cannot be read: not a frame within the limit, or over a cap. */
export class SyncMessageRefusedError extends ProtocolError {
  override name = 'SyncMessageRefusedError'
  constructor (readonly peer: string, readonly step: SyncStep, detail: string) {
    super(`anti-entropy with ${peer}: ${step} refused: ${detail}`)
  }
}

/** What syncWith did: rounds run, changes applied here and sent there, and why it stopped early. */
export interface SyncSummary {
  rounds: number
  received: number
  sent: number
  error?: Error
}

/** Resolves once both ends of `stream` are closed (or it was reset); rejects when `signal` aborts first. */
async function closedByRemote (stream: Stream, signal: AbortSignal): Promise<void> {
  if (stream.status !== 'open' && stream.status !== 'closing') return
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      stream.removeEventListener('close', done)
      signal.removeEventListener('abort', aborted)
      resolve()
    }
    const aborted = (): void => {
      stream.removeEventListener('close', done)
      reject(signal.reason)
    }
    stream.addEventListener('close', done)
    signal.addEventListener('abort', aborted, { once: true })
  })
}

type Decoder<T> = { decode: (buf: Uint8Array | Uint8ArrayList) => T }

/** A refused change's reason; anything that is not a ChangeRejected failed to decode. */
function rejectionOf (err: unknown): ChangeRejected {
  return err instanceof ChangeRejected ? err : new ChangeRejected('undecodable', errorMessage(err))
}

export interface ReplicationInit {
  libp2p: ReplicationNetwork
  peers: Pick<PeerTable, 'getByPeerId' | 'all'>
  registry: AgentRegistry
  node: string
  log: Logger
  limits?: Partial<ReplicationLimits>
  /** Aborted when the daemon begins to stop: rounds in flight end then. */
  shutdown?: AbortSignal
}

/** One anti-entropy exchange in progress: its deadline, and the step it is at so a timeout can name it. */
interface Round {
  readonly peer: string
  readonly signal: AbortSignal
  step: SyncStep
}

/** How a refused message of each step is logged: its stable reason and the cap it went over. */
const REFUSAL_REASONS: Partial<Record<SyncStep, string>> = { request: 'bad-digest', response: 'bad-response', push: 'bad-push' }

/**
 * Replicates the agent registry: each change is gossiped at once (fast, best effort), and
 * anti-entropy compares digests with each peer on every (re)connection, and with one peer each
 * interval (the next connected one in turn), repairing whatever gossip missed (a node that was
 * offline, partitioned or wiped). One peer per interval keeps a node's digest traffic flat as the
 * mesh grows; since every node does it, a change one node missed is repaired within an interval.
 */
export class AgentReplication {
  private timer?: NodeJS.Timeout
  /** Turn of the periodic round among the peers; each node starts at a random one, so they spread. */
  private turn = Math.floor(Math.random() * 1_000_000)
  private readonly syncing = new Set<string>()
  private started = false
  /** Aborted by stop: every round and answer in flight carries its signal. */
  private stopping = new AbortController()
  private readonly rejections: RejectionLog
  /** Gossip already vetted by the topic validator, so its signature is not checked twice. */
  private readonly vetted = new WeakMap<Message, AgentEntry>()
  private readonly limits: ReplicationLimits
  /** Decoders that refuse oversized repeated fields before allocating for them. */
  private readonly codecs: { request: Decoder<SyncRequest>, response: Decoder<SyncResponse>, push: Decoder<SyncPush> }

  constructor (private readonly init: ReplicationInit) {
    this.rejections = new RejectionLog(init.log)
    this.limits = { ...DEFAULT_LIMITS, ...init.limits }
    const { maxDigestEntries, maxUpdates } = this.limits
    this.codecs = {
      request: { decode: buf => SyncRequest.decode(buf, { limits: { digest: maxDigestEntries } }) },
      response: { decode: buf => SyncResponse.decode(buf, { limits: { updates: maxUpdates, want: maxUpdates } }) },
      push: { decode: buf => SyncPush.decode(buf, { limits: { updates: maxUpdates } }) }
    }
    this.validate = this.validate.bind(this)
    this.onMessage = this.onMessage.bind(this)
    this.handleSync = this.handleSync.bind(this)
    this.onPeerConnect = this.onPeerConnect.bind(this)
  }

  async start (): Promise<void> {
    const { libp2p, registry } = this.init
    const stopping = this.stopping = new AbortController()
    // The daemon's shutdown ends every round at once, before the parts stop one by one.
    this.init.shutdown?.addEventListener('abort', () => { stopping.abort() }, { once: true })
    const pubsub = libp2p.services.pubsub
    pubsub.topicValidators.set(AGENTS_TOPIC, this.validate)
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(AGENTS_TOPIC)
    await libp2p.handle(AGENTS_SYNC_PROTOCOL, this.handleSync, { maxInboundStreams: ANTI_ENTROPY_MAX_STREAMS, maxOutboundStreams: ANTI_ENTROPY_MAX_STREAMS })
    libp2p.addEventListener('peer:connect', this.onPeerConnect)
    registry.onLocalChange = entry => { void this.publish(entry) }
    this.timer = setInterval(() => { this.syncNext() }, this.limits.intervalMs)
    this.timer.unref()
    this.started = true
    this.syncAll()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    this.stopping.abort()
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

  private syncNext (): void {
    const connected = this.init.peers.all().filter(p => p.connected)
    if (connected.length === 0) return
    void this.syncWith(connected[this.turn++ % connected.length]!.peerId)
  }

  private digestOf (): DigestEntry[] {
    // A registry larger than one digest holds sends its first part; peers then offer what seems
    // missing, within their caps (see ANTI_ENTROPY_MAX_DIGEST_ENTRIES).
    return this.init.registry.digest().slice(0, this.limits.maxDigestEntries)
      .map(e => ({ agentId: e.agentId, clock: { ms: BigInt(e.clock.ms), counter: e.clock.counter, node: e.clock.node } }))
  }

  /** Updates to send, within the per-message count and byte caps; `more` if some did not fit. */
  private capped (entries: AgentEntry[]): { updates: AgentUpdate[], more: boolean } {
    const updates: AgentUpdate[] = []
    let bytes = 0
    for (const entry of entries) {
      bytes += Buffer.byteLength(entry.recordJson) + UPDATE_FRAMING_BYTES
      if (updates.length >= this.limits.maxUpdates || (bytes > this.limits.maxUpdateBytes && updates.length > 0)) return { updates, more: true }
      updates.push(toWire(entry, this.init.node))
    }
    return { updates, more: false }
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

  /**
   * Length-prefixed messages on `stream`. The read buffer holds one whole message: left at its
   * default (4 MiB) it would refuse responses the caps allow (up to 6 MiB of records).
   */
  private framed (stream: Stream): LengthPrefixedStream {
    return lpStream(stream, { maxDataLength: this.limits.maxMessageBytes, maxBufferSize: this.limits.maxMessageBytes + LENGTH_PREFIX_MAX_BYTES })
  }

  private round (peer: string, step: SyncStep): Round {
    return { peer, step, signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.limits.timeoutMs)]) }
  }

  /** Reads one message of the round's step; a frame or message over its limits is refused and logged. */
  private async read<T> (lp: LengthPrefixedStream, decoder: Decoder<T>, round: Round): Promise<T> {
    let frame: Uint8ArrayList
    try {
      frame = await lp.read({ signal: round.signal })
    } catch (err) {
      if (!(err instanceof InvalidDataLengthError || err instanceof InvalidDataLengthLengthError || err instanceof InvalidMessageLengthError)) throw err
      throw this.refuse(round, err)
    }
    try {
      return decoder.decode(frame)
    } catch (err) {
      throw this.refuse(round, err)
    }
  }

  private refuse (round: Round, err: unknown): SyncMessageRefusedError {
    const detail = errorMessage(err)
    const limit = round.step === 'request' ? this.limits.maxDigestEntries : this.limits.maxUpdates
    this.rejections.reject('anti_entropy_rejected', round.peer, REFUSAL_REASONS[round.step] ?? 'bad-message', { step: round.step, detail, limit, maxBytes: this.limits.maxMessageBytes }, 'anti-entropy message refused')
    return new SyncMessageRefusedError(round.peer, round.step, detail)
  }

  /** Why a round ended early, typed: refused input, out of time at its step, stopped, or the failure itself. */
  private failure (round: Round, err: unknown): Error {
    if (err instanceof ProtocolError) return err
    if (this.stopping.signal.aborted) return new Error(`anti-entropy with ${round.peer}: replication stopped during ${round.step}`)
    if (round.signal.aborted) return new SyncTimeoutError(round.peer, round.step, this.limits.timeoutMs)
    if (err instanceof Error) return err
    // A write cut short by the stream's end rejects with the stream's close event.
    const cause = (err as { error?: unknown } | undefined)?.error
    return cause instanceof Error ? cause : new Error(`anti-entropy with ${round.peer}: stream ended during ${round.step}`)
  }

  /**
   * Dialer side: runs rounds with `peerId` while it says it has more. Never throws: the summary
   * carries the error a round ended with (also logged at debug; refusals at warn).
   */
  async syncWith (peerId: PeerId): Promise<SyncSummary> {
    const summary: SyncSummary = { rounds: 0, received: 0, sent: 0 }
    const key = peerId.toString()
    const peer = this.init.peers.getByPeerId(peerId)
    if (peer == null || this.syncing.has(key)) return summary
    this.syncing.add(key)
    try {
      while (summary.rounds < MAX_FOLLOW_UP_ROUNDS && this.started) {
        summary.rounds++
        const round = await this.syncRound(peerId, peer.name)
        summary.received += round.received
        summary.sent += round.sent
        if (!round.more) break
      }
    } catch (err) {
      summary.error = err as Error
      this.init.log.debug({ event: 'anti_entropy_failed', peer: peer.name, err: errorMessage(err) }, 'anti-entropy round failed')
    } finally {
      this.syncing.delete(key)
    }
    return summary
  }

  /** One round: send our digest, take what the peer has newer, push what it wants. */
  private async syncRound (peerId: PeerId, name: string): Promise<{ received: number, sent: number, more: boolean }> {
    const round = this.round(name, 'dial')
    const { signal } = round
    let stream: Stream | undefined
    try {
      stream = await this.init.libp2p.dialProtocol(peerId, AGENTS_SYNC_PROTOCOL, { signal })
      const lp = this.framed(stream)
      round.step = 'request'
      await lp.write(SyncRequest.encode({ digest: this.digestOf() }), { signal })
      round.step = 'response'
      const response = await this.read(lp, this.codecs.response, round)
      const received = await this.applyAll(response.updates, name)
      const wanted = response.want.map(id => this.init.registry.entry(id)).filter((e): e is AgentEntry => e != null)
      const push = this.capped(wanted)
      round.step = 'push'
      // The listener reads a push only when it asked for something.
      if (response.want.length > 0) await lp.write(SyncPush.encode({ updates: push.updates }), { signal })
      if (received > 0 || push.updates.length > 0) {
        this.init.log.info({ event: 'anti_entropy', peer: name, received, sent: push.updates.length }, 'agent registry repaired with a peer')
      }
      round.step = 'close'
      await stream.close({ signal })
      // The listener closes its end once it has applied the push: wait for that, so that the
      // next round's digest is compared with what it holds now and nothing is sent twice.
      if (response.want.length > 0) await closedByRemote(stream, signal)
      return { received, sent: push.updates.length, more: response.more || push.more }
    } catch (err) {
      const error = this.failure(round, err)
      stream?.abort(error)
      throw error
    }
  }

  /** Listener side: read the digest, answer with what is newer here and what we want, take the push. */
  private async handleSync (stream: Stream, connection: SyncConnection): Promise<void> {
    const peer = this.init.peers.getByPeerId(connection.remotePeer)
    const round = this.round(peer?.name ?? connection.remotePeer.toString(), 'request')
    const { signal } = round
    try {
      if (peer == null) throw new ProtocolError('not in the allowlist')
      const lp = this.framed(stream)
      const request = await this.read(lp, this.codecs.request, round)
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
      const { updates, more } = this.capped(newer)
      const wantCapped = want.slice(0, this.limits.maxUpdates)
      round.step = 'response'
      await lp.write(SyncResponse.encode({ updates, want: wantCapped, more: more || want.length > wantCapped.length }), { signal })
      let received = 0
      if (wantCapped.length > 0) {
        round.step = 'push'
        const push = await this.read(lp, this.codecs.push, round)
        received = await this.applyAll(push.updates, peer.name)
      }
      if (received > 0 || updates.length > 0) {
        this.init.log.info({ event: 'anti_entropy', peer: peer.name, received, sent: updates.length }, 'agent registry repaired with a peer')
      }
      round.step = 'close'
      await stream.close({ signal })
    } catch (err) {
      const error = this.failure(round, err)
      this.init.log.debug({ event: 'anti_entropy_failed', peer: peer?.name, peerId: connection.remotePeer.toString(), err: errorMessage(error) }, 'anti-entropy request failed')
      stream.abort(error)
    }
  }
}
