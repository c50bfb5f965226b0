import type { AgentUpdate } from '../../protocols/agents.js'
import { AGENT_CLOCK_MAX_COUNTER, AGENT_ID_MAX_LENGTH, AGENT_TOMBSTONE_RETENTION_MS, MAX_AGENT_RECORD_BYTES } from '../constants.js'
import { NODE_NAME } from '../config/schema.js'
import { MAX_DATE_MS } from '../mesh/wire-bounds.js'
import { agentRecordSchema, type AgentRecord } from './agent.js'
import { ChangeRejected } from './authorship.js'
import type { Clock } from './clock.js'

/**
 * One change of one agent, as its author signed it: the latest record, or a removal (kept as a
 * tombstone so an old copy cannot come back). The author is `clock.node`.
 */
export interface AgentEntry {
  agentId: string
  clock: Clock
  /** The node owning the agent. */
  owner: string
  /** The record as signed; '' for a removal. */
  recordJson: string
  /** Parsed from recordJson; absent for a removal. */
  record?: AgentRecord
  /** Removals: when (the clock's ms). */
  removedAt?: number
  signature: Uint8Array
}

export type UnsignedEntry = Omit<AgentEntry, 'signature'>

/** How an entry is kept in the store under `mesh:agent-change:{id}`. */
export interface StoredChange {
  agent_id: string
  clock: Clock
  owner: string
  removed: boolean
  record_json: string
  signature: string
}

export function toStored (entry: AgentEntry): StoredChange {
  return {
    agent_id: entry.agentId,
    clock: entry.clock,
    owner: entry.owner,
    removed: entry.record == null,
    record_json: entry.recordJson,
    signature: Buffer.from(entry.signature).toString('base64')
  }
}

export function toWire (entry: AgentEntry, origin: string): AgentUpdate {
  return {
    origin,
    agentId: entry.agentId,
    clock: { ms: BigInt(entry.clock.ms), counter: entry.clock.counter, node: entry.clock.node },
    removed: entry.record == null,
    recordJson: entry.recordJson,
    owner: entry.owner,
    signature: entry.signature as Uint8Array<ArrayBuffer>
  }
}

function malformed (detail: string): ChangeRejected {
  return new ChangeRejected('malformed', detail)
}

/** A wire or stored clock, checked for shape; its range is checked by `checkBounds`. */
export function clockFrom (clock: { ms: bigint | number, counter: number, node: string } | undefined): Clock {
  if (clock == null || clock.node === '') throw malformed('change has no clock')
  // A plain pattern, not the zod schema: digests carry thousands of clocks.
  if (!NODE_NAME.test(clock.node)) throw malformed('clock names no valid node')
  const ms = Number(clock.ms)
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_DATE_MS) throw new ChangeRejected('clock-out-of-range', `clock ms ${String(clock.ms)} is not a time`)
  if (!Number.isInteger(clock.counter) || clock.counter < 0 || clock.counter > AGENT_CLOCK_MAX_COUNTER) throw new ChangeRejected('clock-out-of-range', `clock counter ${clock.counter} is over ${AGENT_CLOCK_MAX_COUNTER}`)
  return { ms, counter: clock.counter, node: clock.node }
}

/** Decodes a change from the wire or the store; throws ChangeRejected('malformed') on anything ill-formed. */
export function entryFrom (fields: { agentId: string, clock: Clock, removed: boolean, recordJson: string, owner: string, signature: Uint8Array }): AgentEntry {
  const { agentId, clock, removed, recordJson, owner, signature } = fields
  if (agentId === '' || agentId.length > AGENT_ID_MAX_LENGTH) throw malformed('change has no valid agent_id')
  if (!NODE_NAME.test(owner)) throw malformed(`change of ${agentId} names no valid owner`)
  const base = { agentId, clock, owner, signature }
  if (removed) {
    if (recordJson !== '') throw malformed('a removal carries no record')
    return { ...base, recordJson: '', removedAt: clock.ms }
  }
  if (recordJson.length > MAX_AGENT_RECORD_BYTES) throw malformed(`record of ${recordJson.length} bytes is over the ${MAX_AGENT_RECORD_BYTES} byte limit`)
  let json: unknown
  try {
    json = JSON.parse(recordJson)
  } catch {
    throw malformed('record is not JSON')
  }
  const parsed = agentRecordSchema.safeParse(json)
  if (!parsed.success) throw malformed(`invalid record: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`)
  if (parsed.data.agent_id !== agentId) throw malformed('record agent_id does not match the change')
  return { ...base, recordJson, record: parsed.data }
}

export function entryFromWire (update: AgentUpdate): AgentEntry {
  return entryFrom({ ...update, clock: clockFrom(update.clock) })
}

export function entryFromStored (stored: StoredChange): AgentEntry {
  if (typeof stored !== 'object' || stored == null || typeof stored.agent_id !== 'string' || typeof stored.record_json !== 'string' ||
    typeof stored.owner !== 'string' || typeof stored.signature !== 'string' || typeof stored.removed !== 'boolean') throw malformed('stored change is missing fields')
  return entryFrom({ agentId: stored.agent_id, clock: clockFrom(stored.clock), removed: stored.removed, recordJson: stored.record_json, owner: stored.owner, signature: new Uint8Array(Buffer.from(stored.signature, 'base64')) })
}

/**
 * Every time in a change is within the clock-skew window of `now` and no older than anything
 * the registry still keeps: a stamp in the far future would win every later comparison, and
 * one outside a Date's range cannot even be written.
 */
export function checkBounds (entry: AgentEntry, now: number, skewMs: number): void {
  const latest = now + skewMs
  if (entry.clock.ms > latest) throw new ChangeRejected('clock-out-of-range', `clock of ${entry.agentId} is ${entry.clock.ms - now} ms ahead of ours (at most ${skewMs})`)
  const oldestKept = now - AGENT_TOMBSTONE_RETENTION_MS - skewMs
  if (entry.clock.ms < oldestKept) throw new ChangeRejected('clock-out-of-range', `clock of ${entry.agentId} is older than anything kept (${AGENT_TOMBSTONE_RETENTION_MS} ms)`)
  const record = entry.record
  if (record == null) return
  const heartbeat = Date.parse(record.last_heartbeat)
  const registered = Date.parse(record.registration_time)
  if (heartbeat > latest || heartbeat > entry.clock.ms + skewMs) throw new ChangeRejected('time-out-of-range', `last_heartbeat of ${entry.agentId} (${record.last_heartbeat}) is ahead of the change and of our clock`)
  if (registered > latest || registered > heartbeat + skewMs) throw new ChangeRejected('time-out-of-range', `registration_time of ${entry.agentId} (${record.registration_time}) is after its last heartbeat or ahead of our clock`)
}
