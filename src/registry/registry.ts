import type { Logger } from 'pino'
import { AGENT_SWEEP_INTERVAL_MS, AGENT_TOMBSTONE_RETENTION_MS } from '../constants.js'
import { errorMessage, UsageError } from '../errors.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import { DirtyWriter } from '../store/writer.js'
import { parseInput } from '../validation.js'
import {
  agentRecordSchema, assertRecordSize, discover, effectiveStatus, heartbeatInput, isExpired, listInput,
  registerInput, removeInput, viewOf, type AgentRecord
} from './agent.js'
import { compareClocks, nextClock, type Clock } from './clock.js'

export const AGENT_KEY_PREFIX = 'agent:'
export const ACTIVE_SET = 'agents:active'
export const TOMBSTONE_KEY_PREFIX = 'mesh:agent-removed:'

/** One agent as replicated: its latest record, or a tombstone if it was removed. */
export interface AgentEntry {
  agentId: string
  clock: Clock
  record?: AgentRecord
  removedAt?: number
}

/** Stored form of an agent: the AITBC record plus the replication clock. */
type StoredAgent = AgentRecord & { mesh_clock: Clock }
interface StoredTombstone { agent_id: string, removed_at: string, mesh_clock: Clock }

export interface RegistryHealth {
  ok: boolean
  reason?: string
  pendingWrites: number
}

/**
 * The agent registry of this node. Memory holds the authoritative copy and answers every read;
 * the store keeps it across restarts. Writes go to the store at once; when the store is down,
 * changed ids are remembered and written when it is back, so nothing acknowledged is lost.
 * Conflicting updates of one agent are ordered by their clocks (last writer wins), the same way
 * on every node.
 */
export class AgentRegistry {
  private readonly entries = new Map<string, AgentEntry>()
  /** Ids whose `agents:active` membership is currently written as active. */
  private readonly activeWritten = new Set<string>()
  private sweepTimer?: NodeJS.Timeout
  private flushing?: Promise<void>
  private readonly writer: DirtyWriter
  /** Called for every change made here, so it can be gossiped. */
  onLocalChange?: (entry: AgentEntry) => void
  private readonly watchers = new Set<(entry: AgentEntry) => void>()

  constructor (private readonly node: string, private readonly store: StoreBackend, private readonly log: Logger) {
    this.writer = new DirtyWriter(store, (id, now) => this.opsFor(id, now), log, 'agents')
  }

  async start (): Promise<void> {
    // Each (re)connection of the store: merge what it holds, then write back the merged state.
    this.store.onReady(() => { void this.resyncWithStore() })
    this.sweepTimer = setInterval(() => { this.sweep() }, AGENT_SWEEP_INTERVAL_MS)
    this.sweepTimer.unref()
    if (this.store.kind === 'embedded') await this.resyncWithStore()
  }

  async stop (): Promise<void> {
    clearInterval(this.sweepTimer)
    await this.flushing
    await this.writer.flush()
  }

  health (): RegistryHealth {
    const store = this.store.health()
    const pending = this.writer.pending
    if (!store.ok) return { ok: false, reason: `${store.reason ?? 'store unavailable'}; serving from memory, ${pending} change(s) to write when it is back`, pendingWrites: pending }
    if (this.writer.error != null && pending > 0) return { ok: false, reason: `store writes failing: ${this.writer.error}; ${pending} change(s) pending`, pendingWrites: pending }
    return { ok: true, pendingWrites: pending }
  }

  // ---- commands from local callers ----

  async register (input: unknown): Promise<AgentRecord> {
    const data = parseInput(registerInput, input, 'agents register')
    const now = Date.now()
    const existing = this.entries.get(data.agent_id)
    const nowIso = new Date(now).toISOString()
    const record: AgentRecord = {
      agent_id: data.agent_id,
      agent_type: data.agent_type,
      status: data.status,
      capabilities: data.capabilities,
      services: data.services,
      endpoints: data.endpoints,
      metadata: data.metadata,
      last_heartbeat: nowIso,
      registration_time: existing?.record != null && !isExpired(existing.record, now) ? existing.record.registration_time : nowIso,
      load_metrics: data.load_metrics,
      health_score: 1,
      version: data.version,
      tags: data.tags,
      owner_node: this.node
    }
    record.health_score = viewOf(record, now).health_score
    assertRecordSize(record)
    const entry: AgentEntry = { agentId: record.agent_id, clock: nextClock(this.node, existing?.clock, now), record }
    await this.commit(entry, true)
    return viewOf(record, now)
  }

  async heartbeat (input: unknown): Promise<AgentRecord> {
    const data = parseInput(heartbeatInput, input, 'agents heartbeat')
    const now = Date.now()
    const existing = this.live(data.agent_id, now)
    const record: AgentRecord = {
      ...existing.record,
      last_heartbeat: new Date(now).toISOString(),
      // A heartbeat without a status revives an agent that had gone inactive.
      status: data.status ?? (existing.record.status === 'inactive' ? 'active' : existing.record.status),
      ...(data.load_metrics != null ? { load_metrics: data.load_metrics } : {})
    }
    record.health_score = viewOf(record, now).health_score
    assertRecordSize(record)
    await this.commit({ agentId: record.agent_id, clock: nextClock(this.node, existing.clock, now), record }, true)
    return viewOf(record, now)
  }

  async remove (input: unknown): Promise<{ agent_id: string, removed: true }> {
    const data = parseInput(removeInput, input, 'agents remove')
    const now = Date.now()
    const existing = this.live(data.agent_id, now)
    await this.commit({ agentId: data.agent_id, clock: nextClock(this.node, existing.clock, now), removedAt: now }, true)
    return { agent_id: data.agent_id, removed: true }
  }

  list (input: unknown): AgentRecord[] {
    const query = parseInput(listInput, input ?? {}, 'agents list')
    const now = Date.now()
    return discover(this.liveRecords(now), query, now)
  }

  get (agentId: string): AgentRecord | undefined {
    const now = Date.now()
    const record = this.entries.get(agentId)?.record
    return record != null && !isExpired(record, now) ? viewOf(record, now) : undefined
  }

  /** Calls `listener` with every change, local or from a peer, until the returned function is called. */
  watch (listener: (entry: AgentEntry) => void): () => void {
    this.watchers.add(listener)
    return () => { this.watchers.delete(listener) }
  }

  // ---- replication ----

  /** Every entry peers should know of (live records and tombstones), for anti-entropy. */
  digest (now = Date.now()): AgentEntry[] {
    return [...this.entries.values()].filter(e => e.record == null || !isExpired(e.record, now))
  }

  entry (agentId: string): AgentEntry | undefined {
    return this.entries.get(agentId)
  }

  /**
   * Applies an entry from a peer if it is newer than ours. Returns true if it changed anything.
   * The record is validated again here: a peer's data is never trusted to be well formed.
   */
  async applyRemote (entry: AgentEntry): Promise<boolean> {
    if (entry.record != null) {
      const parsed = agentRecordSchema.safeParse(entry.record)
      if (!parsed.success || parsed.data.agent_id !== entry.agentId) throw new Error(`invalid agent record for ${entry.agentId}: ${parsed.success ? 'agent_id mismatch' : parsed.error.issues[0]?.message ?? 'invalid'}`)
      if (isExpired(parsed.data, Date.now())) return false
    }
    const current = this.entries.get(entry.agentId)
    if (current != null && compareClocks(entry.clock, current.clock) <= 0) return false
    await this.commit(entry, false)
    return true
  }

  // ---- internals ----

  private live (agentId: string, now: number): AgentEntry & { record: AgentRecord } {
    const entry = this.entries.get(agentId)
    if (entry?.record == null || isExpired(entry.record, now)) throw new UsageError(`unknown agent "${agentId}" (not registered, removed, or expired)`)
    return entry as AgentEntry & { record: AgentRecord }
  }

  private liveRecords (now: number): AgentRecord[] {
    const out: AgentRecord[] = []
    for (const entry of this.entries.values()) if (entry.record != null && !isExpired(entry.record, now)) out.push(entry.record)
    return out
  }

  private async commit (entry: AgentEntry, local: boolean): Promise<void> {
    this.entries.set(entry.agentId, entry)
    if (local) this.onLocalChange?.(entry)
    for (const watcher of this.watchers) watcher(entry)
    // The change is acknowledged even if the store is down: memory serves, the writer retries.
    await this.writer.commit(entry.agentId)
  }

  private opsFor (agentId: string, now: number): WriteOp[] {
    const entry = this.entries.get(agentId)
    const agentKey = AGENT_KEY_PREFIX + agentId
    const tombKey = TOMBSTONE_KEY_PREFIX + agentId
    if (entry?.record == null) this.activeWritten.delete(agentId)
    if (entry == null) {
      return [{ op: 'del', key: agentKey }, { op: 'del', key: tombKey }, { op: 'srem', set: ACTIVE_SET, member: agentId }]
    }
    if (entry.record == null) {
      const tomb: StoredTombstone = { agent_id: agentId, removed_at: new Date(entry.removedAt ?? now).toISOString(), mesh_clock: entry.clock }
      return [{ op: 'del', key: agentKey }, { op: 'set', key: tombKey, value: JSON.stringify(tomb) }, { op: 'srem', set: ACTIVE_SET, member: agentId }]
    }
    const view = viewOf(entry.record, now)
    const stored: StoredAgent = { ...view, mesh_clock: entry.clock }
    if (view.status === 'active') this.activeWritten.add(agentId)
    else this.activeWritten.delete(agentId)
    return [
      { op: 'set', key: agentKey, value: JSON.stringify(stored) },
      { op: 'del', key: tombKey },
      view.status === 'active' ? { op: 'sadd', set: ACTIVE_SET, member: agentId } : { op: 'srem', set: ACTIVE_SET, member: agentId }
    ]
  }

  private async resyncWithStore (): Promise<void> {
    this.flushing ??= (async () => {
      try {
        const loaded = await this.loadFromStore()
        let merged = 0
        for (const entry of loaded) {
          const current = this.entries.get(entry.agentId)
          if (current == null || compareClocks(entry.clock, current.clock) > 0) {
            this.entries.set(entry.agentId, entry)
            merged++
          }
        }
        // Write everything back: covers changes made while the store was away, and a store
        // that came back empty.
        for (const id of this.entries.keys()) this.writer.mark(id)
        await this.writer.flush()
        this.log.info({ event: 'store_synced', store: this.store.location, kind: this.store.kind, agents: this.liveRecords(Date.now()).length, loaded: loaded.length, merged }, 'agent registry synced with the store')
      } catch (err) {
        this.log.warn({ event: 'store_sync_failed', err: errorMessage(err) }, 'could not sync the agent registry with the store')
      } finally {
        delete this.flushing
      }
    })()
    await this.flushing
  }

  private async loadFromStore (): Promise<AgentEntry[]> {
    const out: AgentEntry[] = []
    for (const [key, value] of await this.store.scan(AGENT_KEY_PREFIX)) {
      try {
        const { mesh_clock: clock, ...rest } = JSON.parse(value) as StoredAgent
        const record = agentRecordSchema.parse(rest)
        if (clock == null || typeof clock.ms !== 'number') throw new Error('no mesh_clock')
        out.push({ agentId: record.agent_id, clock, record })
      } catch (err) {
        this.log.warn({ event: 'store_record_skipped', key, err: errorMessage(err) }, 'skipped an unreadable agent record in the store')
      }
    }
    for (const [key, value] of await this.store.scan(TOMBSTONE_KEY_PREFIX)) {
      try {
        const tomb = JSON.parse(value) as StoredTombstone
        out.push({ agentId: tomb.agent_id, clock: tomb.mesh_clock, removedAt: Date.parse(tomb.removed_at) })
      } catch (err) {
        this.log.warn({ event: 'store_record_skipped', key, err: errorMessage(err) }, 'skipped an unreadable tombstone in the store')
      }
    }
    return out
  }

  /** Applies expiry the same way on every node: inactive after 120 s, gone after an hour more. */
  private sweep (): void {
    const now = Date.now()
    for (const [id, entry] of this.entries) {
      if (entry.record != null) {
        if (isExpired(entry.record, now)) {
          this.entries.delete(id)
          this.writer.mark(id)
        } else if ((effectiveStatus(entry.record, now) === 'active') !== this.activeWritten.has(id)) {
          this.writer.mark(id)
        }
      } else if (entry.removedAt != null && now - entry.removedAt > AGENT_TOMBSTONE_RETENTION_MS) {
        this.entries.delete(id)
        this.writer.mark(id)
      }
    }
    void this.writer.soon()
  }
}
