import { z } from 'zod'
import { AGENT_INACTIVE_AFTER_S, COORDINATOR_AGENT_TYPES, AGENT_REMOVE_AFTER_INACTIVE_S, MAX_AGENT_RECORD_BYTES } from '../constants.js'
import { UsageError } from '../errors.js'

/** The AITBC agent coordinator's statuses. */
export const AGENT_STATUSES = ['active', 'inactive', 'busy', 'maintenance', 'error'] as const
export type AgentStatus = typeof AGENT_STATUSES[number]
/** The AITBC agent coordinator's agent types: a record of any other type ends its load. */
export const AGENT_TYPES = COORDINATOR_AGENT_TYPES

const id = z.string().min(1).max(128).regex(/^[\w.:@-]+$/, 'expected letters, digits, ".", ":", "@", "_" or "-" (at most 128)')
const label = z.string().min(1).max(128)
const labels = z.array(label).max(64, 'at most 64 items')
const status = z.enum(AGENT_STATUSES, { message: `expected one of ${AGENT_STATUSES.join(', ')}` })
/** Any JSON, as the coordinator's metadata holds (nested values occur); the record size bounds it. */
const metadataValue = z.json()
const chainLike = z.string().min(1).max(64).regex(/^[\w.:-]+$/, 'expected letters, digits, ".", ":", "_" or "-" (at most 64)')
const loadMetrics = z.record(label, z.number().finite().min(0, 'load values are not negative')).refine(v => Object.keys(v).length <= 64, 'at most 64 load metrics')

/** What a caller gives to register (or re-register) an agent. */
export const registerInput = z.object({
  agent_id: id,
  agent_type: z.enum(AGENT_TYPES, { message: `expected one of the AITBC coordinator's agent types ${AGENT_TYPES.join(', ')}` }),
  status: status.default('active'),
  capabilities: labels.default([]),
  services: labels.default([]),
  endpoints: z.record(label, z.string().min(1).max(2048)).refine(v => Object.keys(v).length <= 64, 'at most 64 endpoints').default({}),
  metadata: z.record(label, metadataValue).refine(v => Object.keys(v).length <= 128, 'at most 128 metadata entries').default({}),
  load_metrics: loadMetrics.default({}),
  version: z.string().max(64).default('1.0.0'),
  tags: labels.default([]),
  /** Default: agents.chainId of the config, else the coordinator's default chain. */
  chain_id: chainLike.optional(),
  island_id: chainLike.optional()
}).strict()
export type RegisterInput = z.input<typeof registerInput>

export const heartbeatInput = z.object({
  agent_id: id,
  status: status.optional(),
  load_metrics: loadMetrics.optional()
}).strict()

export const removeInput = z.object({ agent_id: id }).strict()

export const listInput = z.object({
  agent_type: z.string().optional(),
  status: status.optional(),
  capabilities: z.array(z.string()).default([]),
  services: z.array(z.string()).default([]),
  tags: z.array(z.string()).default([]),
  min_health_score: z.number().min(0).max(1).optional(),
  limit: z.number().int().min(1).max(10000).optional()
}).strict()

/** A stored agent record: the AITBC coordinator's fields plus the node that owns the agent. */
export const agentRecordSchema = z.object({
  agent_id: id,
  agent_type: z.string().min(1).max(64),
  status,
  capabilities: labels,
  services: labels,
  endpoints: z.record(z.string(), z.string()),
  metadata: z.record(z.string(), metadataValue),
  last_heartbeat: z.string().datetime({ offset: true }),
  registration_time: z.string().datetime({ offset: true }),
  load_metrics: z.record(z.string(), z.number().finite()),
  health_score: z.number().min(0).max(1),
  version: z.string().max(64),
  tags: labels,
  chain_id: chainLike,
  island_id: chainLike,
  owner_node: z.string().min(1).max(63)
}).strict()
export type AgentRecord = z.infer<typeof agentRecordSchema>

export function assertRecordSize (record: AgentRecord): void {
  const bytes = Buffer.byteLength(JSON.stringify(record))
  if (bytes > MAX_AGENT_RECORD_BYTES) throw new UsageError(`agent ${record.agent_id}: record is ${bytes} bytes, over the ${MAX_AGENT_RECORD_BYTES} byte limit`)
}

/** Seconds since the agent's last heartbeat. */
export function heartbeatAge (record: AgentRecord, now: number): number {
  return (now - Date.parse(record.last_heartbeat)) / 1000
}

/**
 * The status every node derives from the record and the time alone: no heartbeat for 120 s
 * means inactive, whatever was stated.
 */
export function effectiveStatus (record: AgentRecord, now: number): AgentStatus {
  return heartbeatAge(record, now) > AGENT_INACTIVE_AFTER_S ? 'inactive' : record.status
}

/** Inactive for an hour: removed, on every node, without anyone sending a removal. */
export function isExpired (record: AgentRecord, now: number): boolean {
  return heartbeatAge(record, now) > AGENT_INACTIVE_AFTER_S + AGENT_REMOVE_AFTER_INACTIVE_S
}

/** The AITBC coordinator's health score. */
export function healthScore (record: AgentRecord, now: number): number {
  let score = 1.0
  const loads = Object.values(record.load_metrics)
  if (loads.length > 0) {
    const average = loads.reduce((a, b) => a + b, 0) / loads.length
    if (average > 0.8) score -= 0.3
    else if (average > 0.6) score -= 0.1
  }
  const stated = effectiveStatus(record, now)
  if (stated === 'error') score -= 0.5
  else if (stated === 'maintenance') score -= 0.2
  else if (stated === 'busy') score -= 0.1
  const age = heartbeatAge(record, now)
  if (age > 120) score -= 0.5
  else if (age > 60) score -= 0.2
  return Math.round(Math.min(1, Math.max(0, score)) * 1000) / 1000
}

/** The record as callers see it now: derived status and health score. */
export function viewOf (record: AgentRecord, now: number): AgentRecord {
  return { ...record, status: effectiveStatus(record, now), health_score: healthScore(record, now) }
}

export type ListQuery = z.output<typeof listInput>

/** The mean of an agent's load metrics (0 without any). */
export function averageLoad (record: Pick<AgentRecord, 'load_metrics'>): number {
  const loads = Object.values(record.load_metrics)
  return loads.length === 0 ? 0 : loads.reduce((a, b) => a + b, 0) / loads.length
}

/**
 * Discovery as the AITBC coordinator does it: exact type/status, all capabilities/services/tags,
 * min score, best first; equal health scores go to the least loaded (its task routing's tie-break).
 */
export function discover (records: AgentRecord[], query: ListQuery, now: number): AgentRecord[] {
  const views = records.map(r => viewOf(r, now)).filter(r =>
    (query.agent_type == null || r.agent_type === query.agent_type) &&
    (query.status == null || r.status === query.status) &&
    query.capabilities.every(c => r.capabilities.includes(c)) &&
    query.services.every(s => r.services.includes(s)) &&
    query.tags.every(t => r.tags.includes(t)) &&
    (query.min_health_score == null || r.health_score >= query.min_health_score))
  views.sort((a, b) => b.health_score - a.health_score || averageLoad(a) - averageLoad(b) || a.agent_id.localeCompare(b.agent_id))
  return query.limit != null ? views.slice(0, query.limit) : views
}
