import type { Logger } from 'pino'
import { ROUTE_CHECK_INTERVAL_MS, ROUTE_MAX_ATTEMPTS } from '../../constants.js'
import type { PeerTable } from '../../mesh/peer-table.js'
import { averageLoad, type AgentRecord } from '../../registry/agent.js'
import type { MessageRoute, OutgoingMessage } from '../message.js'
import type { DeliveryEvent, Outbox } from '../outbox.js'

/** The registry's discovery, as routing uses it. */
export interface AgentDirectory {
  list: (query: unknown) => AgentRecord[]
}

export interface RouteRequest {
  capability: string
  agent_type?: string
  min_health?: number
  kind: string
  body: string
  ttl: number
}

/** What was searched when no agent could take a routed message. */
export interface NoCandidate {
  outcome: 'no_candidate'
  searched: { capability: string, agent_type?: string, min_health?: number, status: 'active' }
  /** Agents that matched but whose node could not take the message, and why. */
  skipped: MessageRoute['skipped']
  reason: string
}

/**
 * Capability routing: a message goes to the agent with the capability that discovery ranks first
 * (health score, then least load), on that agent's owner node, with the agent_id in it. When that
 * node is offline, refuses the message, has no handler for its kind or its handler fails, the next candidate (the best agent
 * of another node) gets it, up to ROUTE_MAX_ATTEMPTS nodes; the targets of the message, in turn,
 * are the path taken.
 */
export class CapabilityRouter {
  private timer?: NodeJS.Timeout
  private unwatch?: () => void

  constructor (private readonly init: { node: string, agents: AgentDirectory, peers: PeerTable, outbox: Outbox, log: Logger }) {}

  start (): void {
    this.unwatch = this.init.outbox.watch(event => { this.onEvent(event) })
    this.timer = setInterval(() => { this.checkOffline() }, ROUTE_CHECK_INTERVAL_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.unwatch?.()
  }

  private online (node: string): boolean {
    if (node === this.init.node) return true
    const peer = this.init.peers.get(node)
    return peer != null && this.init.peers.liveness(peer).liveness !== 'offline'
  }

  private why (node: string): string {
    const peer = this.init.peers.get(node)
    if (peer == null) return 'not a node of this mesh\'s config'
    return `node offline: ${this.init.peers.liveness(peer).reason ?? 'no heartbeat'}`
  }

  /** Picks the candidates and stores the message for the first; or says what was searched. */
  async send (request: RouteRequest): Promise<OutgoingMessage | NoCandidate> {
    const query = { capabilities: [request.capability], status: 'active', ...(request.agent_type != null ? { agent_type: request.agent_type } : {}), ...(request.min_health != null ? { min_health_score: request.min_health } : {}) }
    const ranked = this.init.agents.list(query)
    const candidates: MessageRoute['candidates'] = []
    const skipped: MessageRoute['skipped'] = []
    const nodes = new Set<string>()
    for (const agent of ranked) {
      if (nodes.has(agent.owner_node)) continue
      nodes.add(agent.owner_node)
      if (!this.online(agent.owner_node)) skipped.push({ agent_id: agent.agent_id, node: agent.owner_node, reason: this.why(agent.owner_node) })
      else if (candidates.length < ROUTE_MAX_ATTEMPTS) candidates.push({ agent_id: agent.agent_id, node: agent.owner_node, health_score: agent.health_score, load: averageLoad(agent) })
    }
    const searched = { capability: request.capability, status: 'active' as const, ...(request.agent_type != null ? { agent_type: request.agent_type } : {}), ...(request.min_health != null ? { min_health: request.min_health } : {}) }
    const first = candidates[0]
    if (first == null) {
      const what = `capability "${request.capability}"${request.agent_type != null ? `, agent_type ${request.agent_type}` : ''}${request.min_health != null ? `, health score at least ${request.min_health}` : ''}`
      const reason = ranked.length === 0
        ? `no active agent in the mesh has ${what}`
        : `${ranked.length} active agent(s) have ${what}, but no node of theirs can take the message (${skipped.map(s => `${s.agent_id} on ${s.node}: ${s.reason}`).join('; ')})`
      return { outcome: 'no_candidate', searched, skipped, reason }
    }
    const route: MessageRoute = { ...searched, candidates, skipped, tried: [first.node], state: 'routing' }
    delete (route as { status?: string }).status
    const message = await this.init.outbox.create({ to: first.node, kind: request.kind, body: request.body, ttl: request.ttl }, [first.node], { route, agentIds: { [first.node]: first.agent_id } })
    this.init.log.debug({ event: 'message_routed', messageId: message.id, capability: request.capability, agent: first.agent_id, node: first.node }, 'routed a message by capability')
    return message
  }

  /** The target holding a routed message failed it (refused, expired, no handler, handler failed), or processed it. */
  private onEvent (event: DeliveryEvent): void {
    const message = this.init.outbox.get(event.id)
    const route = message?.route
    if (message == null || route == null || route.state !== 'routing' || route.tried[route.tried.length - 1] !== event.node) return
    if (event.state === 'processed') {
      route.state = 'done'
      this.init.outbox.routeChanged(message.id)
    } else if (event.state === 'failed' || event.state === 'handler_failed' || (event.state === 'delivered' && event.handler === false)) {
      this.next(message, route)
    }
  }

  private next (message: OutgoingMessage, route: MessageRoute): void {
    for (;;) {
      const candidate = route.candidates[route.tried.length]
      if (candidate == null || Date.now() > message.expires_at) {
        route.state = 'exhausted'
        this.init.outbox.routeChanged(message.id)
        this.init.log.warn({ event: 'route_exhausted', messageId: message.id, capability: route.capability, tried: route.tried }, 'no candidate left for a routed message')
        return
      }
      route.tried.push(candidate.node)
      if (this.init.outbox.addTarget(message.id, candidate.node, candidate.agent_id)) {
        this.init.log.info({ event: 'route_failover', messageId: message.id, agent: candidate.agent_id, node: candidate.node }, 'routed message given to the next candidate')
        return
      }
    }
  }

  /** A routed message waiting on a node that went offline moves on to the next candidate. */
  private checkOffline (): void {
    for (const message of this.init.outbox.routing()) {
      const node = message.route!.tried[message.route!.tried.length - 1]!
      if (message.targets[node]?.state === 'pending' && !this.online(node)) {
        this.init.outbox.settle(message.id, node, 'failed', { reason: `${this.why(node)}; given to the next candidate` })
      }
    }
  }
}
