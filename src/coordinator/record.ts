import { z } from 'zod'
import { AGENT_STATUSES, AGENT_TYPES, type AgentRecord } from '../registry/agent.js'

/**
 * The AITBC agent coordinator's own record, `agent:{agent_id}` in its Redis. It loads these at
 * its start with exactly these fields (the older release: the first 13), its enums and
 * Python's isoformat times; one record it cannot build ends the whole load. So the mesh writes
 * only records of exactly this shape there, and reads the coordinator's with the same rules.
 */
export const COORDINATOR_FIELDS_13 = [
  'agent_id', 'agent_type', 'status', 'capabilities', 'services', 'endpoints', 'metadata',
  'last_heartbeat', 'registration_time', 'load_metrics', 'health_score', 'version', 'tags'
] as const
export const COORDINATOR_FIELDS_15 = [...COORDINATOR_FIELDS_13, 'chain_id', 'island_id'] as const

export type RecordFields = 15 | 13

/** Python's `datetime.isoformat()`: microseconds, `+00:00` for aware UTC, no offset for naive UTC. */
export function pythonIsoformat (iso: string, aware: boolean): string {
  const ms = Date.parse(iso)
  const base = new Date(ms).toISOString().slice(0, 23) // yyyy-mm-ddThh:mm:ss.mmm
  return `${base}000${aware ? '+00:00' : ''}`
}

/** A Python isoformat time as ISO 8601 UTC; naive times are UTC (the coordinator writes utcnow()). */
export function fromPythonIsoformat (value: string): string | undefined {
  const match = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$/.exec(value)
  if (match == null) return undefined
  const fraction = (match[3] ?? '.000').slice(0, 4).padEnd(4, '0')
  const ms = Date.parse(`${match[1]}T${match[2]}${fraction}${match[4] ?? 'Z'}`)
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined
}

/** Whether the coordinator can load a record of this agent at all. */
export function coordinatorLoads (record: Pick<AgentRecord, 'agent_type' | 'status'>): boolean {
  return (AGENT_TYPES as readonly string[]).includes(record.agent_type) && (AGENT_STATUSES as readonly string[]).includes(record.status)
}

/** The record as the coordinator stores it, or undefined if it could not load it. */
export function toCoordinatorRecord (view: AgentRecord, fields: RecordFields): Record<string, unknown> | undefined {
  if (!coordinatorLoads(view)) return undefined
  const aware = fields === 15
  const out: Record<string, unknown> = {
    agent_id: view.agent_id,
    agent_type: view.agent_type,
    status: view.status,
    capabilities: view.capabilities,
    services: view.services,
    endpoints: view.endpoints,
    metadata: view.metadata,
    last_heartbeat: pythonIsoformat(view.last_heartbeat, aware),
    registration_time: pythonIsoformat(view.registration_time, aware),
    load_metrics: view.load_metrics,
    health_score: view.health_score,
    version: view.version,
    tags: view.tags
  }
  if (fields === 15) {
    out.chain_id = view.chain_id
    out.island_id = view.island_id
  }
  return out
}

const pythonTime = z.string().transform((value, ctx) => {
  const iso = fromPythonIsoformat(value)
  if (iso == null) ctx.addIssue({ code: 'custom', message: `"${value.slice(0, 64)}" is not an isoformat time` })
  return iso ?? ''
})

const labels = z.array(z.string().min(1).max(128)).max(64)
const common = {
  agent_id: z.string().min(1).max(128).regex(/^[\w.:@-]+$/),
  agent_type: z.enum(AGENT_TYPES),
  status: z.enum(AGENT_STATUSES),
  capabilities: labels,
  services: labels,
  endpoints: z.record(z.string().min(1).max(128), z.string().min(1).max(2048)),
  metadata: z.record(z.string().min(1).max(128), z.json()),
  last_heartbeat: pythonTime,
  registration_time: pythonTime,
  load_metrics: z.record(z.string().min(1).max(128), z.number().finite().min(0)),
  health_score: z.number().min(0).max(1),
  version: z.string().max(64),
  tags: labels
}
const chainLike = z.string().min(1).max(64).regex(/^[\w.:-]+$/)
const record15 = z.object({ ...common, chain_id: chainLike, island_id: chainLike }).strict()
const record13 = z.object(common).strict()

export type CoordinatorRecord = z.output<typeof record13> & { chain_id?: string, island_id?: string }

/** Parses a record the coordinator wrote (or published), by its rules: exactly its fields. */
export function parseCoordinatorRecord (json: unknown, fields: RecordFields): { ok: true, record: CoordinatorRecord } | { ok: false, reason: string } {
  const parsed = (fields === 15 ? record15 : record13).safeParse(json)
  if (parsed.success) return { ok: true, record: parsed.data }
  const issue = parsed.error.issues[0]
  return { ok: false, reason: `${issue?.path.join('.') ?? ''}: ${issue?.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue?.message ?? 'invalid'}` }
}
