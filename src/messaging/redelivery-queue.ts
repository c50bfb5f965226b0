import type { OutgoingMessage } from './message.js'

/**
 * Per target node: delivered messages to deliver again (its store lost them), in send order, and
 * who waits for the node's queue to empty.
 */
export class RedeliveryQueue {
  private readonly byNode = new Map<string, Map<string, OutgoingMessage>>()
  private readonly waiters = new Map<string, Array<() => void>>()

  /** Adds `messages` to what `node` gets again, keeping send order. */
  add (node: string, messages: OutgoingMessage[]): void {
    const queued = [...(this.byNode.get(node)?.values() ?? []), ...messages].sort((a, b) => a.seq - b.seq)
    this.byNode.set(node, new Map(queued.map(m => [m.id, m])))
  }

  size (node: string): number {
    return this.byNode.get(node)?.size ?? 0
  }

  /** In send order. */
  queued (node: string): Iterable<OutgoingMessage> {
    return this.byNode.get(node)?.values() ?? []
  }

  get (node: string, id: string): OutgoingMessage | undefined {
    return this.byNode.get(node)?.get(id)
  }

  /** The message with `id` queued for any node. */
  find (id: string): OutgoingMessage | undefined {
    for (const queue of this.byNode.values()) {
      const message = queue.get(id)
      if (message != null) return message
    }
    return undefined
  }

  ids (): Set<string> {
    const ids = new Set<string>()
    for (const queue of this.byNode.values()) for (const id of queue.keys()) ids.add(id)
    return ids
  }

  /** Takes `id` off `node`'s queue; the message, or undefined when it was not queued. */
  take (node: string, id: string): OutgoingMessage | undefined {
    const queue = this.byNode.get(node)
    const message = queue?.get(id)
    if (queue == null || message == null) return undefined
    queue.delete(id)
    if (queue.size === 0) this.end(node)
    return message
  }

  /** Drops queued messages that expired (and are not on the wire). */
  expire (now: number, inFlight: (id: string, node: string) => boolean): void {
    for (const [node, queue] of this.byNode) {
      for (const [id, message] of queue) if (now > message.expires_at && !inFlight(id, node)) queue.delete(id)
      if (queue.size === 0) this.end(node)
    }
  }

  /** Empties `node`'s queue (it left the mesh); its waiters resolve. */
  drop (node: string): void {
    if (this.byNode.has(node)) this.end(node)
  }

  /** Resolves once nothing is queued for `node`. */
  async done (node: string): Promise<void> {
    if (this.size(node) === 0) return
    await new Promise<void>(resolve => {
      const waiting = this.waiters.get(node) ?? []
      waiting.push(resolve)
      this.waiters.set(node, waiting)
    })
  }

  private end (node: string): void {
    this.byNode.delete(node)
    const waiting = this.waiters.get(node) ?? []
    this.waiters.delete(node)
    for (const resolve of waiting) resolve()
  }
}
