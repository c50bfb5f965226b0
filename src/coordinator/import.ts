import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { COORDINATOR_EVENTS_CHANNEL, COORDINATOR_IMPORT_MAX_QUEUE, REDIS_CONNECT_TIMEOUT_MS, REDIS_MAX_RETRY_DELAY_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import type { AgentRegistry } from '../registry/registry.js'
import { parseCoordinatorRecord, type RecordFields } from './record.js'

export interface CoordinatorImportInit {
  /** This node's Redis, the one the local coordinator uses. */
  redisUrl: string
  registry: Pick<AgentRegistry, 'fromCoordinator' | 'removedByCoordinator' | 'onCoordinatorRecords'>
  recordFields: RecordFields
  log: Logger
}

type CoordinatorEvent = 'agent_registered' | 'agent_status_updated' | 'agent_unregistered'

/**
 * Agents registered, changed or removed through the local AITBC coordinator enter the mesh as
 * this node's: from its `agent_events` channel as they happen, and from the `agent:*` records
 * the mesh does not know, found at each store sync (start, and every Redis reconnect, which
 * covers events published while the mesh was not subscribed). Events are applied one at a time,
 * in order; the registry decides what an event means (its own echo, a remote agent, news).
 */
export class CoordinatorImport {
  private subscriber?: Redis
  private queue: Array<() => Promise<void>> = []
  private draining = false
  private dropped = 0
  private readonly refusedKeys = new Set<string>()

  constructor (private readonly init: CoordinatorImportInit) {
    this.onMessage = this.onMessage.bind(this)
    init.registry.onCoordinatorRecords = records => {
      for (const [id, json] of records) this.enqueue(async () => { await this.found(id, json) })
    }
  }

  async start (): Promise<void> {
    // Loaded here, not at the top: a daemon on the embedded store never needs ioredis (about 1 MiB resident).
    const { Redis: RedisClient } = await import('ioredis')
    const subscriber = new RedisClient(this.init.redisUrl, {
      lazyConnect: true,
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: null,
      retryStrategy: times => Math.min(REDIS_MAX_RETRY_DELAY_MS, 100 * 2 ** Math.min(times, 10))
    })
    // Store outages are reported by the store itself; this connection only follows events.
    subscriber.on('error', () => {})
    subscriber.on('message', this.onMessage)
    // Subscribed on the first connection, whenever it comes (Redis may be down at start);
    // ioredis subscribes again by itself after every reconnect.
    let subscribed = false
    subscriber.on('ready', () => {
      if (subscribed) return
      subscribed = true
      subscriber.subscribe(COORDINATOR_EVENTS_CHANNEL).catch((err: unknown) => {
        subscribed = false
        this.init.log.warn({ event: 'coordinator_events_unavailable', err: errorMessage(err) }, 'could not subscribe to the coordinator\'s agent events')
      })
    })
    this.subscriber = subscriber
    subscriber.connect().catch((err: unknown) => {
      this.init.log.warn({ event: 'coordinator_events_unavailable', err: errorMessage(err) }, 'not yet subscribed to the coordinator\'s agent events; retrying')
    })
  }

  async stop (): Promise<void> {
    const subscriber = this.subscriber
    delete this.subscriber
    this.queue = []
    subscriber?.disconnect(false)
  }

  private onMessage (channel: string, text: string): void {
    if (channel !== COORDINATOR_EVENTS_CHANNEL) return
    let message: { event_type?: unknown, agent_info?: unknown }
    try {
      message = JSON.parse(text) as typeof message
    } catch {
      this.init.log.warn({ event: 'coordinator_event_refused', reason: 'not JSON' }, 'an agent event of the coordinator is not JSON')
      return
    }
    const type = message.event_type as CoordinatorEvent
    const info = message.agent_info as { agent_id?: unknown } | undefined
    if (type === 'agent_unregistered') {
      if (typeof info?.agent_id !== 'string') return
      const agentId = info.agent_id
      this.enqueue(async () => {
        const result = await this.init.registry.removedByCoordinator(agentId)
        this.logResult(agentId, type, result)
      })
      return
    }
    if (type !== 'agent_registered' && type !== 'agent_status_updated') return
    const parsed = parseCoordinatorRecord(info, this.init.recordFields)
    if (!parsed.ok) {
      this.init.log.warn({ event: 'coordinator_event_refused', eventType: type, agentId: typeof info?.agent_id === 'string' ? info.agent_id : undefined, reason: parsed.reason }, 'an agent event of the coordinator is not a record it could load; not imported')
      return
    }
    this.enqueue(async () => {
      const result = await this.init.registry.fromCoordinator(parsed.record, type === 'agent_registered' ? 'registered' : 'updated')
      this.logResult(parsed.record.agent_id, type, result)
    })
  }

  private async found (agentId: string, json: unknown): Promise<void> {
    const parsed = parseCoordinatorRecord(json, this.init.recordFields)
    if (!parsed.ok) {
      // The coordinator could not load this record either (its load stops at it): say so once.
      if (!this.refusedKeys.has(agentId)) {
        this.refusedKeys.add(agentId)
        this.init.log.warn({ event: 'coordinator_record_refused', agentId, reason: parsed.reason }, 'a record in agent:* is not one the coordinator can load; not imported (the coordinator\'s own load stops at it too)')
      }
      return
    }
    const result = await this.init.registry.fromCoordinator(parsed.record, 'found')
    this.logResult(agentId, 'found', result)
  }

  private logResult (agentId: string, what: string, result: string): void {
    const level = result === 'imported' || result === 'removed' ? 'info' : 'debug'
    this.init.log[level]({ event: 'coordinator_import', agentId, from: what, result }, 'agent from the local coordinator')
  }

  /** Runs imports one at a time; a backlog beyond the bound is dropped (the next store sync finds the records). */
  private enqueue (work: () => Promise<void>): void {
    if (this.queue.length >= COORDINATOR_IMPORT_MAX_QUEUE) {
      if (this.dropped++ === 0) this.init.log.warn({ event: 'coordinator_import_backlog', limit: COORDINATOR_IMPORT_MAX_QUEUE }, 'too many coordinator events at once; dropping until the backlog clears')
      return
    }
    this.queue.push(work)
    if (this.draining) return
    this.draining = true
    void (async () => {
      while (this.queue.length > 0) {
        const next = this.queue.shift()!
        try {
          await next()
        } catch (err) {
          this.init.log.warn({ event: 'coordinator_import_failed', err: errorMessage(err) }, 'could not import an agent from the coordinator')
        }
      }
      this.draining = false
      this.dropped = 0
    })()
  }
}
