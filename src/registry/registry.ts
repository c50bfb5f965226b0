import type { Logger } from 'pino'
import { AGENT_INACTIVE_AFTER_S, AGENT_REMOVE_AFTER_INACTIVE_S, AGENT_SWEEP_INTERVAL_MS, AGENT_TOMBSTONE_RETENTION_MS, COORDINATOR_RECORD_TTL_S, SUPERSEDED_LOG_MEMORY } from '../constants.js'
import { toCoordinatorRecord, type CoordinatorRecord, type RecordFields } from '../coordinator/record.js'
import { errorMessage, UsageError } from '../errors.js'
import type { StoreBackend, WriteOp } from '../store/backend.js'
import { DirtyWriter } from '../store/writer.js'
import { parseInput } from '../validation.js'
import {
  agentRecordSchema, assertRecordSize, discover, effectiveStatus, heartbeatAge, heartbeatInput, isExpired, listInput,
  registerInput, removeInput, viewOf, type AgentRecord
} from './agent.js'
import { ChangeRejected, type ChangeAuthority } from './authorship.js'
import { compareClocks, nextClock, type Clock } from './clock.js'
import { checkBounds, clockFrom, entryFromStored, toStored, type AgentEntry, type StoredChange, type UnsignedEntry } from './entry.js'

export type { AgentEntry } from './entry.js'

/** The agent as the AITBC coordinator reads it: exactly its fields, derived status and health score. */
export const AGENT_KEY_PREFIX = 'agent:'
export const ACTIVE_SET = 'agents:active'
/** The signed change behind each agent (record or removal): what the registry loads at start. */
export const CHANGE_KEY_PREFIX = 'mesh:agent-change:'
/** Unsigned tombstones of earlier versions; migrated (own) or dropped (others') at start. */
export const LEGACY_TOMBSTONE_KEY_PREFIX = 'mesh:agent-removed:'

export interface RegistryHealth {
  ok: boolean
  reason?: string
  pendingWrites: number
  /** Changes the store refused for good since the start (each logged with its reason). */
  droppedWrites: number
}

export interface RegistryInit {
  node: string
  store: StoreBackend
  log: Logger
  authority: ChangeAuthority
  /** trust.clockSkewMs: how far a peer's stamps may be from our clock. */
  clockSkewMs: number
  /** The record layout the local AITBC coordinator loads (coordinator.recordFields). */
  recordFields: RecordFields
  /** chain_id and island_id of agents registered here without them. */
  agentDefaults: { chainId: string, islandId: string }
}

/** What became of an agent the local coordinator registered, changed or holds. */
export type CoordinatorImportResult = 'imported' | 'unchanged' | 'reasserted' | 'ignored'

/** What applying a peer's change did; a change that may not be applied throws ChangeRejected. */
export type ApplyResult = 'applied' | 'stale'

/** Agents of earlier versions: the clock inside the record, no signature. */
type LegacyStoredAgent = AgentRecord & { mesh_clock?: Clock }
interface LegacyTombstone { agent_id: string, removed_at: string, mesh_clock: Clock }

/**
 * The agent registry of this node. Memory holds the authoritative copy and answers every read;
 * the store keeps it across restarts. Every change is signed by the node that made it and
 * verified wherever it is applied, so a node can only change what it owns. Writes go to the
 * store at once; when the store is down, changed ids are remembered and written when it is
 * back, so nothing acknowledged is lost. Conflicting updates of one agent are ordered by their
 * clocks (last writer wins), the same way on every node.
 */
export class AgentRegistry {
  private readonly entries = new Map<string, AgentEntry>()
  /** Losing changes already logged (agent_change_superseded), oldest first, at most SUPERSEDED_LOG_MEMORY. */
  private readonly superseded = new Set<string>()
  /** Ids whose `agents:active` membership is currently written as active. */
  private readonly activeWritten = new Set<string>()
  /**
   * Records of other nodes left by an earlier version, unsigned so never loaded: kept in the
   * store (the coordinator reads them) until their owner's signed copy replaces them or they
   * expire. Value: last heartbeat (ms).
   */
  private readonly legacyForeign = new Map<string, number>()
  private sweepTimer?: NodeJS.Timeout
  private flushing?: Promise<void>
  private readonly writer: DirtyWriter
  private readonly node: string
  private readonly store: StoreBackend
  private readonly log: Logger
  private readonly authority: ChangeAuthority
  /** Called for every change made here, so it can be gossiped. */
  onLocalChange?: (entry: AgentEntry) => void
  /**
   * Called after each store sync with the `agent:*` records the mesh does not know (the local
   * coordinator's own), by id, for the coordinator import to take in.
   */
  onCoordinatorRecords?: (records: Map<string, unknown>) => void
  private readonly watchers = new Set<(entry: AgentEntry) => void>()

  constructor (private readonly init: RegistryInit) {
    this.node = init.node
    this.store = init.store
    this.log = init.log
    this.authority = init.authority
    this.writer = new DirtyWriter(init.store, (id, now) => this.opsFor(id, now), init.log, 'agents')
  }

  /** Resolves once a store sync under way (at start or after a reconnect) has finished. */
  async whenSynced (): Promise<void> {
    await this.flushing
  }

  async start (): Promise<void> {
    // Each (re)connection of the store: merge what it holds, then write back the merged state.
    this.store.onReady(() => { void this.resyncWithStore() })
    this.sweepTimer = setInterval(() => { this.sweep() }, AGENT_SWEEP_INTERVAL_MS)
    this.sweepTimer.unref()
    if (this.store.kind === 'embedded') await this.resyncWithStore()
  }

  /** After the store lost data: merge what it still holds and write back every entry. */
  async writeBack (): Promise<void> {
    await this.resyncWithStore()
  }

  async stop (): Promise<void> {
    clearInterval(this.sweepTimer)
    await this.flushing
    await this.writer.flush()
  }

  health (): RegistryHealth {
    const store = this.store.health()
    const pending = this.writer.pending
    const dropped = this.writer.dropped
    if (!store.ok) return { ok: false, reason: `${store.reason ?? 'store unavailable'}; serving from memory, ${pending} change(s) to write when it is back`, pendingWrites: pending, droppedWrites: dropped }
    if (this.writer.error != null && pending > 0) return { ok: false, reason: `store writes failing: ${this.writer.error}; ${pending} change(s) pending`, pendingWrites: pending, droppedWrites: dropped }
    return { ok: true, pendingWrites: pending, droppedWrites: dropped }
  }

  // ---- commands from local callers ----

  async register (input: unknown): Promise<AgentRecord> {
    const data = parseInput(registerInput, input, 'agents register')
    const now = Date.now()
    const existing = this.entries.get(data.agent_id)
    if (existing?.record != null && !isExpired(existing.record, now)) this.assertOwnAgent(existing, 'register')
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
      chain_id: data.chain_id ?? existing?.record?.chain_id ?? this.init.agentDefaults.chainId,
      island_id: data.island_id ?? existing?.record?.island_id ?? this.init.agentDefaults.islandId,
      owner_node: this.node
    }
    record.health_score = viewOf(record, now).health_score
    assertRecordSize(record)
    await this.commitLocal(record.agent_id, existing?.clock, now, record)
    return viewOf(record, now)
  }

  async heartbeat (input: unknown): Promise<AgentRecord> {
    const data = parseInput(heartbeatInput, input, 'agents heartbeat')
    const now = Date.now()
    const existing = this.live(data.agent_id, now)
    this.assertOwnAgent(existing, 'heartbeat')
    const record: AgentRecord = {
      ...existing.record,
      last_heartbeat: new Date(now).toISOString(),
      // A heartbeat without a status revives an agent that had gone inactive.
      status: data.status ?? (existing.record.status === 'inactive' ? 'active' : existing.record.status),
      ...(data.load_metrics != null ? { load_metrics: data.load_metrics } : {})
    }
    record.health_score = viewOf(record, now).health_score
    assertRecordSize(record)
    await this.commitLocal(record.agent_id, existing.clock, now, record)
    return viewOf(record, now)
  }

  async remove (input: unknown): Promise<{ agent_id: string, removed: true }> {
    const data = parseInput(removeInput, input, 'agents remove')
    const now = Date.now()
    const existing = this.live(data.agent_id, now)
    if (existing.owner !== this.node && !this.authority.mayRemoveOthers(this.node)) {
      throw new UsageError(`agent "${data.agent_id}" is owned by node ${existing.owner}; remove it there (this node is not in trust.removalsFrom, which may remove other nodes' agents)`)
    }
    await this.commitLocal(data.agent_id, existing.clock, now, undefined, existing.owner)
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

  // ---- the local AITBC coordinator ----

  /**
   * An agent the local coordinator registered or changed (`event`), or holds in its store
   * without the mesh knowing it (`found`). Agents of this node (or new ones) become this node's
   * change, signed and replicated like any registration; the coordinator's writes about agents
   * of other nodes (its inactivity marking, the echo of an export) never override the mesh's
   * record: it is written back instead.
   */
  async fromCoordinator (incoming: CoordinatorRecord, event: 'registered' | 'updated' | 'found'): Promise<CoordinatorImportResult> {
    const now = Date.now()
    const id = incoming.agent_id
    const current = this.entries.get(id)
    const live = current?.record != null && !isExpired(current.record, now) ? current as AgentEntry & { record: AgentRecord } : undefined
    if (live != null && live.owner !== this.node) return this.reassert(id)
    // The coordinator never heard this agent's heartbeats (they come through the mesh): its
    // inactivity marking is not news.
    const heartbeat = Math.min(Date.parse(incoming.last_heartbeat), now)
    if (incoming.status === 'inactive' && (live == null || heartbeat <= Date.parse(live.record.last_heartbeat))) {
      return live != null ? this.reassert(id) : 'ignored'
    }
    if (live == null && event === 'found' && current != null) return 'ignored' // removed here: the removal stands
    const record: AgentRecord = {
      agent_id: id,
      agent_type: incoming.agent_type,
      status: incoming.status,
      capabilities: incoming.capabilities,
      services: incoming.services,
      endpoints: incoming.endpoints,
      metadata: incoming.metadata as AgentRecord['metadata'],
      last_heartbeat: new Date(Math.max(heartbeat, live != null ? Date.parse(live.record.last_heartbeat) : 0)).toISOString(),
      registration_time: live?.record.registration_time ?? new Date(Math.min(Date.parse(incoming.registration_time), heartbeat)).toISOString(),
      load_metrics: incoming.load_metrics,
      health_score: 1,
      version: incoming.version,
      tags: incoming.tags,
      chain_id: incoming.chain_id ?? live?.record.chain_id ?? this.init.agentDefaults.chainId,
      island_id: incoming.island_id ?? live?.record.island_id ?? this.init.agentDefaults.islandId,
      owner_node: this.node
    }
    if (isExpired(record, now)) return 'ignored'
    record.health_score = viewOf(record, now).health_score
    if (live != null && sameAgent(live.record, record)) return 'unchanged'
    try {
      assertRecordSize(record)
    } catch (err) {
      this.log.warn({ event: 'coordinator_import_refused', agentId: id, err: errorMessage(err) }, 'an agent of the local coordinator is too large for the mesh')
      return 'ignored'
    }
    await this.commitLocal(id, current?.clock, now, record)
    return 'imported'
  }

  /** The local coordinator unregistered an agent: removed if this node may remove it, else written back. */
  async removedByCoordinator (agentId: string): Promise<'removed' | 'reasserted' | 'ignored'> {
    const now = Date.now()
    const current = this.entries.get(agentId)
    if (current?.record == null || isExpired(current.record, now)) return 'ignored'
    if (current.owner !== this.node && !this.authority.mayRemoveOthers(this.node)) return this.reassert(agentId)
    await this.commitLocal(agentId, current.clock, now, undefined, current.owner)
    return 'removed'
  }

  /** Writes the mesh's record of an agent again over whatever the coordinator wrote. */
  private reassert (agentId: string): 'reasserted' {
    this.writer.mark(agentId)
    void this.writer.soon()
    return 'reasserted'
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
   * Applies a change from a peer (or its relay) if it is newer than ours. Its times must be
   * within the clock-skew window, its signature the author's and the author allowed to make it;
   * otherwise ChangeRejected says why and nothing is applied.
   */
  async applyRemote (entry: AgentEntry, opts: { vetted?: boolean, now?: number } = {}): Promise<ApplyResult> {
    if (this.vet(entry, opts) === 'stale') return 'stale'
    const current = this.entries.get(entry.agentId)
    if (current != null) this.noteSuperseded(entry, current)
    await this.commit(entry, false)
    return 'applied'
  }

  /**
   * Every check of applyRemote, applying nothing: 'stale' if ours is as new, else 'applied' would
   * happen. `vetted`: the entry passed vet already (the gossip validator), so the checks of the
   * entry alone (signature, storable) are not run again; those against our state are.
   */
  vet (entry: AgentEntry, opts: { vetted?: boolean, now?: number } = {}): ApplyResult {
    const now = opts.now ?? Date.now()
    checkBounds(entry, now, this.init.clockSkewMs)
    const current = this.entries.get(entry.agentId)
    if (current != null && compareClocks(entry.clock, current.clock) <= 0) {
      // Another node's older change arriving (after a partition heals): it loses; say so, once
      // it is known to be that node's own signed change.
      if (current.clock.node !== entry.clock.node && compareClocks(entry.clock, current.clock) < 0 && !this.superseded.has(supersededKey(entry))) {
        if (this.verifies(entry)) this.noteSuperseded(current, entry)
      }
      return 'stale'
    }
    if (entry.record != null && isExpired(entry.record, now)) return 'stale'
    if (opts.vetted !== true) this.authority.verify(entry)
    this.authority.authorise(entry, current?.record != null && !isExpired(current.record, now) ? current : undefined)
    if (opts.vetted !== true) this.assertWritable(entry, now)
    return 'applied'
  }

  // ---- internals ----

  /**
   * The registry's conflict rule is "the later change wins" (hybrid clock stamps: ms, counter,
   * then node name). When the two sides of a partition changed the same agent, the earlier
   * change is dropped when they meet again; it is logged here (once per change) with both
   * stamps and authors, so an operator can see which one lost. Changes by the same node replace
   * each other in order and are not logged.
   */
  private verifies (entry: AgentEntry): boolean {
    try {
      this.authority.verify(entry)
      return true
    } catch {
      return false
    }
  }

  private noteSuperseded (won: AgentEntry, lost: AgentEntry): void {
    if (won.clock.node === lost.clock.node || compareClocks(won.clock, lost.clock) <= 0) return
    const key = supersededKey(lost)
    if (this.superseded.has(key)) return
    this.superseded.add(key)
    if (this.superseded.size > SUPERSEDED_LOG_MEMORY) this.superseded.delete(this.superseded.values().next().value!)
    this.log.info({ event: 'agent_change_superseded', agentId: won.agentId, won: describeChange(won), lost: describeChange(lost) },
      `agent ${won.agentId}: the ${lost.record == null ? 'removal' : 'change'} by ${lost.clock.node} lost to a later ${won.record == null ? 'removal' : 'change'} by ${won.clock.node} (the later change wins)`)
  }

  private live (agentId: string, now: number): AgentEntry & { record: AgentRecord } {
    const entry = this.entries.get(agentId)
    if (entry?.record == null || isExpired(entry.record, now)) throw new UsageError(`unknown agent "${agentId}" (not registered, removed, or expired)`)
    return entry as AgentEntry & { record: AgentRecord }
  }

  /** Only the owning node changes an agent's record: it is the one that signs it. */
  private assertOwnAgent (entry: AgentEntry, what: string): void {
    if (entry.owner !== this.node) throw new UsageError(`agent "${entry.agentId}" is owned by node ${entry.owner}; ${what} it there (each node changes only the agents registered on it)`)
  }

  private liveRecords (now: number): AgentRecord[] {
    const out: AgentRecord[] = []
    for (const entry of this.entries.values()) if (entry.record != null && !isExpired(entry.record, now)) out.push(entry.record)
    return out
  }

  /** Signs a change made on this node (a record, or a removal of `removedOwner`'s agent) and commits it. */
  private async commitLocal (agentId: string, previous: Clock | undefined, now: number, record: AgentRecord | undefined, removedOwner?: string): Promise<void> {
    const clock = nextClock(this.node, previous, now)
    const unsigned: UnsignedEntry = record != null
      ? { agentId, clock, owner: this.node, recordJson: JSON.stringify(record), record }
      : { agentId, clock, owner: removedOwner ?? this.node, recordJson: '', removedAt: clock.ms }
    const entry = this.authority.sign(unsigned)
    this.assertWritable(entry, now)
    await this.commit(entry, true)
  }

  /** A change that could never be written is refused before it is applied, never queued. */
  private assertWritable (entry: AgentEntry, now: number): void {
    try {
      opsForEntry(entry.agentId, entry, now, this.init.recordFields)
    } catch (err) {
      throw new ChangeRejected('malformed', `change of ${entry.agentId} cannot be stored: ${errorMessage(err)}`)
    }
  }

  private async commit (entry: AgentEntry, local: boolean): Promise<void> {
    this.entries.set(entry.agentId, entry)
    this.legacyForeign.delete(entry.agentId)
    if (local) this.onLocalChange?.(entry)
    for (const watcher of this.watchers) watcher(entry)
    // Acknowledged once written; while the store is down, memory serves and the writer retries
    // (peers hold the change too). A write the store refused for good is reported to the caller.
    const outcome = await this.writer.commit(entry.agentId)
    if (outcome === 'dropped' && local) throw new Error(`agent ${entry.agentId}: the store refused the change (${this.writer.dropReason ?? 'unknown reason'}); it is held in memory and replicated, but not stored here`)
  }

  private opsFor (agentId: string, now: number): WriteOp[] {
    const entry = this.entries.get(agentId)
    const ops = opsForEntry(agentId, entry, now, this.init.recordFields)
    if (entry?.record != null && viewOf(entry.record, now).status === 'active') this.activeWritten.add(agentId)
    else this.activeWritten.delete(agentId)
    return ops
  }

  private async resyncWithStore (): Promise<void> {
    this.flushing ??= (async () => {
      try {
        const now = Date.now()
        const loaded = await this.loadFromStore(now)
        let merged = 0
        let refused = 0
        for (const entry of loaded.entries) {
          const current = this.entries.get(entry.agentId)
          if (current != null && compareClocks(entry.clock, current.clock) <= 0) continue
          try {
            this.authority.verify(entry)
            this.authority.authorise(entry, current?.record != null && !isExpired(current.record, now) ? current : undefined)
            opsForEntry(entry.agentId, entry, now, this.init.recordFields)
          } catch (err) {
            refused++
            loaded.drop.push(entry.agentId)
            this.log.warn({ event: 'store_record_refused', agentId: entry.agentId, author: entry.clock.node, reason: err instanceof ChangeRejected ? err.reason : 'invalid', err: errorMessage(err) }, 'a stored agent change does not verify; not loaded')
            continue
          }
          this.entries.set(entry.agentId, entry)
          merged++
        }
        for (const [id, heartbeat] of loaded.legacyForeign) if (!this.entries.has(id)) this.legacyForeign.set(id, heartbeat)
        // Write everything back: covers changes made while the store was away, a store that came
        // back empty, and migrated records (now with their signed change).
        for (const id of this.entries.keys()) this.writer.mark(id)
        for (const id of loaded.drop) if (!this.entries.has(id)) this.writer.mark(id)
        await this.writer.flush()
        const legacyKeys = loaded.legacyTombstones.map(id => ({ op: 'del' as const, key: LEGACY_TOMBSTONE_KEY_PREFIX + id }))
        if (legacyKeys.length > 0) await this.store.write(legacyKeys)
        const unknown = new Map([...loaded.coordinatorRecords].filter(([id]) => !this.entries.has(id)))
        if (unknown.size > 0) this.onCoordinatorRecords?.(unknown)
        this.log.info({
          event: 'store_synced', store: this.store.location, kind: this.store.kind, agents: this.liveRecords(Date.now()).length,
          loaded: loaded.entries.length, merged, refused, migrated: loaded.migrated, legacyForeign: this.legacyForeign.size
        }, 'agent registry synced with the store')
      } catch (err) {
        this.log.warn({ event: 'store_sync_failed', err: errorMessage(err) }, 'could not sync the agent registry with the store')
      } finally {
        delete this.flushing
      }
    })()
    await this.flushing
  }

  /**
   * Signed changes from the store, and records of earlier versions: this node's own are signed
   * now with their original clocks (peers then take them as usual); other nodes' are left for
   * their owners to send signed.
   */
  private async loadFromStore (now: number): Promise<{ entries: AgentEntry[], drop: string[], legacyForeign: Map<string, number>, legacyTombstones: string[], migrated: number, coordinatorRecords: Map<string, unknown> }> {
    const entries: AgentEntry[] = []
    const drop: string[] = []
    const seen = new Set<string>()
    for (const [key, value] of await this.store.scan(CHANGE_KEY_PREFIX)) {
      try {
        const entry = entryFromStored(JSON.parse(value) as StoredChange)
        entries.push(entry)
        seen.add(entry.agentId)
      } catch (err) {
        const id = key.slice(CHANGE_KEY_PREFIX.length)
        drop.push(id)
        this.log.warn({ event: 'store_record_skipped', key, err: errorMessage(err) }, 'skipped an unreadable agent change in the store')
      }
    }
    let migrated = 0
    const legacyForeign = new Map<string, number>()
    const coordinatorRecords = new Map<string, unknown>()
    for (const [key, value] of await this.store.scan(AGENT_KEY_PREFIX)) {
      let stored: LegacyStoredAgent
      try {
        stored = JSON.parse(value) as LegacyStoredAgent
      } catch {
        continue
      }
      // Records without a clock are the coordinator's, or the mesh's own view of an agent it has.
      if (stored?.mesh_clock == null) {
        const id = key.slice(AGENT_KEY_PREFIX.length)
        if (typeof stored === 'object' && stored != null) coordinatorRecords.set(id, stored)
        continue
      }
      const { mesh_clock: rawClock, ...rest } = stored
      try {
        const record = agentRecordSchema.parse({ chain_id: this.init.agentDefaults.chainId, island_id: this.init.agentDefaults.islandId, ...(rest as Record<string, unknown>) })
        const clock = clockFrom(rawClock)
        if (seen.has(record.agent_id)) continue
        if (clock.node === this.node && record.owner_node === this.node) {
          entries.push(this.authority.sign({ agentId: record.agent_id, clock, owner: this.node, recordJson: JSON.stringify(record), record }))
          seen.add(record.agent_id)
          migrated++
        } else if (!isExpired(record, now)) {
          legacyForeign.set(record.agent_id, Date.parse(record.last_heartbeat))
        } else {
          drop.push(record.agent_id)
        }
      } catch (err) {
        this.log.warn({ event: 'store_record_skipped', key, err: errorMessage(err) }, 'skipped an unreadable agent record in the store')
      }
    }
    const legacyTombstones: string[] = []
    for (const [key, value] of await this.store.scan(LEGACY_TOMBSTONE_KEY_PREFIX)) {
      const id = key.slice(LEGACY_TOMBSTONE_KEY_PREFIX.length)
      legacyTombstones.push(id)
      try {
        const tomb = JSON.parse(value) as LegacyTombstone
        const clock = clockFrom(tomb.mesh_clock)
        if (clock.node !== this.node || seen.has(tomb.agent_id)) continue
        entries.push(this.authority.sign({ agentId: tomb.agent_id, clock, owner: this.node, recordJson: '', removedAt: clock.ms }))
        seen.add(tomb.agent_id)
        migrated++
      } catch (err) {
        this.log.warn({ event: 'store_record_skipped', key, err: errorMessage(err) }, 'skipped an unreadable tombstone in the store')
      }
    }
    for (const id of seen) coordinatorRecords.delete(id)
    return { entries, drop, legacyForeign, legacyTombstones, migrated, coordinatorRecords }
  }

  /** Applies expiry the same way on every node: inactive after 120 s, gone after an hour more. */
  private sweep (): void {
    const now = Date.now()
    for (const [id, heartbeat] of this.legacyForeign) {
      if ((now - heartbeat) / 1000 > AGENT_INACTIVE_AFTER_S + AGENT_REMOVE_AFTER_INACTIVE_S) {
        this.legacyForeign.delete(id)
        if (!this.entries.has(id)) this.writer.mark(id)
      }
    }
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

/** The store's contents for one agent: the coordinator's view, the signed change, the active set. */
function opsForEntry (agentId: string, entry: AgentEntry | undefined, now: number, fields: RecordFields): WriteOp[] {
  const agentKey = AGENT_KEY_PREFIX + agentId
  const changeKey = CHANGE_KEY_PREFIX + agentId
  if (entry == null) {
    return [{ op: 'del', key: agentKey }, { op: 'del', key: changeKey }, { op: 'srem', set: ACTIVE_SET, member: agentId }]
  }
  const change = JSON.stringify(toStored(entry))
  if (entry.record == null) {
    // A removal's time must be a date; checked here so an impossible one is refused up front.
    new Date(entry.removedAt ?? entry.clock.ms).toISOString()
    return [{ op: 'del', key: agentKey }, { op: 'set', key: changeKey, value: change }, { op: 'srem', set: ACTIVE_SET, member: agentId }]
  }
  const view = viewOf(entry.record, now)
  if (!Number.isFinite(heartbeatAge(entry.record, now))) throw new Error('last_heartbeat is not a time')
  // A record the coordinator could not load (an agent type it does not know, from an earlier
  // version) is kept out of the keys it reads: one such record would end its whole load.
  const forCoordinator = toCoordinatorRecord(view, fields)
  return [
    forCoordinator != null
      ? { op: 'set', key: agentKey, value: JSON.stringify(forCoordinator), ttlS: COORDINATOR_RECORD_TTL_S }
      : { op: 'del', key: agentKey },
    { op: 'set', key: changeKey, value: change },
    view.status === 'active' ? { op: 'sadd', set: ACTIVE_SET, member: agentId } : { op: 'srem', set: ACTIVE_SET, member: agentId }
  ]
}

/** Whether two records say the same about an agent, apart from when it was last heard of. */
function sameAgent (a: AgentRecord, b: AgentRecord): boolean {
  const strip = (r: AgentRecord): string => JSON.stringify({ ...r, last_heartbeat: '', health_score: 0 })
  return strip(a) === strip(b) && Math.abs(Date.parse(a.last_heartbeat) - Date.parse(b.last_heartbeat)) < 1000
}

function supersededKey (entry: AgentEntry): string {
  return `${entry.agentId}|${entry.clock.ms}.${entry.clock.counter}.${entry.clock.node}`
}

/** A change as the log shows it: who made it, its stamp, and what it did. */
function describeChange (entry: AgentEntry): { author: string, stamp: string, at: string, change: string } {
  return {
    author: entry.clock.node,
    stamp: `${entry.clock.ms}.${entry.clock.counter}.${entry.clock.node}`,
    at: new Date(entry.clock.ms).toISOString(),
    change: entry.record == null ? 'removed' : `record (status ${entry.record.status}, last_heartbeat ${entry.record.last_heartbeat})`
  }
}
