import { TopicValidatorResult, type GossipsubMessage, type Message, type SubscriptionChangeData, type TopicValidatorFn } from '@libp2p/gossipsub'
import { TypedEventEmitter, type MultiaddrConnection, type PeerId, type Stream } from '@libp2p/interface'
import { mockMuxer, multiaddrConnectionPair } from '@libp2p/utils'

/**
 * An in-memory stand-in for the slice of libp2p a protocol service uses: protocol handlers,
 * dials that hand the other end of a stream pair to the remote's handler, connect events, the
 * peers linked, and a gossip that runs the receiver's topic validator before its message listeners.
 */

type Handler = (stream: Stream, connection: { remotePeer: PeerId }) => void | Promise<void>

/** One dial: both ends of its stream, and the connections under them (pause one to stop reading). */
export interface Dial {
  from: PeerId
  to: PeerId
  protocol: string
  outbound: Stream
  inbound: Stream
  outboundConnection: MultiaddrConnection
  inboundConnection: MultiaddrConnection
  /** When the stream opened (performance.now()). */
  openedAt: number
}

export class MemoryGossip extends TypedEventEmitter<{ message: CustomEvent<Message>, 'gossipsub:message': CustomEvent<GossipsubMessage>, 'subscription-change': CustomEvent<SubscriptionChangeData> }> {
  readonly topicValidators = new Map<string, TopicValidatorFn>()
  readonly topics = new Set<string>()
  private sequence = 0n
  /** Messages given to listeners, for their ids (gossipsub's own are not needed here). */
  private delivered = 0

  constructor (private readonly node: MemoryNode) {
    super()
  }

  subscribe (topic: string): void {
    this.topics.add(topic)
  }

  unsubscribe (topic: string): void {
    this.topics.delete(topic)
  }

  /** Delivers to every linked node subscribed to the topic, signed as this node. */
  async publish (topic: string, data: Uint8Array): Promise<{ recipients: PeerId[] }> {
    const recipients: PeerId[] = []
    for (const remote of this.node.linked()) {
      if (!remote.services.pubsub.topics.has(topic)) continue
      recipients.push(remote.peerId)
      await remote.services.pubsub.receive(this.node.peerId, signedMessage(this.node.peerId, topic, data, this.sequence++))
    }
    return { recipients }
  }

  /**
   * A message as it arrives from `from`: vetted by the topic's validator, then given to listeners
   * if accepted (with `from` as the peer that passed it on, as gossipsub's own event has it).
   */
  async receive (from: PeerId, msg: Message): Promise<TopicValidatorResult> {
    if (!this.topics.has(msg.topic)) return TopicValidatorResult.Ignore
    const validator = this.topicValidators.get(msg.topic)
    const result = validator == null ? TopicValidatorResult.Accept : await validator(from, msg)
    if (result === TopicValidatorResult.Accept) {
      this.safeDispatchEvent('gossipsub:message', { detail: { propagationSource: from, msgId: String(this.delivered++), msg } })
      this.safeDispatchEvent('message', { detail: msg })
    }
    return result
  }
}

/** A gossip message signed by `from` (the signature itself is not checked: gossipsub does that). */
export function signedMessage (from: PeerId, topic: string, data: Uint8Array, sequenceNumber = 0n): Message {
  if (from.publicKey == null) throw new Error('a signed message needs a peer id with a public key')
  return { type: 'signed', from, topic, data, sequenceNumber, signature: new Uint8Array(64), key: from.publicKey }
}

export class MemoryNode extends TypedEventEmitter<{ 'peer:connect': CustomEvent<PeerId> }> {
  readonly handlers = new Map<string, Handler>()
  readonly services: { pubsub: MemoryGossip }
  /** While set, dials from this node hang until their signal aborts (a peer that cannot be reached). */
  stallDials = false

  constructor (readonly peerId: PeerId, private readonly network: MemoryNetwork) {
    super()
    this.services = { pubsub: new MemoryGossip(this) }
  }

  async handle (protocol: string, handler: Handler): Promise<void> {
    if (this.handlers.has(protocol)) throw new Error(`${protocol} already handled`)
    this.handlers.set(protocol, handler)
  }

  async unhandle (protocol: string): Promise<void> {
    this.handlers.delete(protocol)
  }

  async dialProtocol (peer: PeerId, protocol: string, options: { signal?: AbortSignal } = {}): Promise<Stream> {
    options.signal?.throwIfAborted()
    if (this.stallDials) {
      return await new Promise<never>((_resolve, reject) => {
        options.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }, { once: true })
      })
    }
    return await this.network.dial(this, peer, protocol)
  }

  linked (): MemoryNode[] {
    return this.network.linkedTo(this)
  }

  /** The peers this node has a link to (libp2p's open connections). */
  getPeers (): PeerId[] {
    return this.linked().map(node => node.peerId)
  }
}

export class MemoryNetwork {
  private readonly nodes = new Map<string, MemoryNode>()
  private readonly links = new Set<string>()
  readonly dials: Dial[] = []

  node (peerId: PeerId): MemoryNode {
    let node = this.nodes.get(peerId.toString())
    if (node == null) {
      node = new MemoryNode(peerId, this)
      this.nodes.set(peerId.toString(), node)
    }
    return node
  }

  /** Links two nodes; with `announce`, each sees peer:connect for the other, as libp2p would say. */
  connect (a: PeerId, b: PeerId, opts: { announce?: boolean } = {}): void {
    this.links.add(linkKey(a, b))
    if (opts.announce === true) {
      this.node(a).safeDispatchEvent('peer:connect', { detail: b })
      this.node(b).safeDispatchEvent('peer:connect', { detail: a })
    }
  }

  disconnect (a: PeerId, b: PeerId): void {
    this.links.delete(linkKey(a, b))
  }

  linkedTo (node: MemoryNode): MemoryNode[] {
    return [...this.nodes.values()].filter(other => other !== node && this.links.has(linkKey(node.peerId, other.peerId)))
  }

  /** Dials of `protocol` to `to`, newest last. */
  dialsTo (to: PeerId, protocol?: string): Dial[] {
    return this.dials.filter(d => d.to.equals(to) && (protocol == null || d.protocol === protocol))
  }

  async dial (from: MemoryNode, to: PeerId, protocol: string): Promise<Stream> {
    if (!this.links.has(linkKey(from.peerId, to))) throw new Error(`${from.peerId.toString()} is not connected to ${to.toString()}`)
    const handler = this.node(to).handlers.get(protocol)
    if (handler == null) throw new Error(`${to.toString()} does not handle ${protocol}`)
    // A connection of its own per dial, so that pausing one dial's connection stops only its stream.
    const [outboundConnection, inboundConnection] = multiaddrConnectionPair()
    const outboundMuxer = mockMuxer().createStreamMuxer(outboundConnection)
    const inboundMuxer = mockMuxer().createStreamMuxer(inboundConnection)
    const arrived = new Promise<Stream>(resolve => { inboundMuxer.addEventListener('stream', evt => { resolve(evt.detail) }, { once: true }) })
    const outbound = await outboundMuxer.createStream()
    const inbound = await arrived
    this.dials.push({ from: from.peerId, to, protocol, outbound, inbound, outboundConnection, inboundConnection, openedAt: performance.now() })
    void Promise.resolve(handler(inbound, { remotePeer: from.peerId })).catch(err => { inbound.abort(err instanceof Error ? err : new Error(String(err))) })
    return outbound
  }
}

function linkKey (a: PeerId, b: PeerId): string {
  return [a.toString(), b.toString()].sort().join('|')
}
