import type { ActionResult } from './actions.js'
import type { HealthCheck, NodeReport, StoreReport } from './report.js'
import type { OperationRequest } from './request.js'
import type { MeshView } from '../mesh/membership.js'

export type TargetOutcome = 'ok' | 'failed' | 'timed_out' | 'unreachable'
export type Verdict = 'success' | 'partial' | 'failed'

/** One target in `nodes_status`: the report's public fields, plus what the operation adds. */
export type NodeStatusEntry = Pick<NodeReport, 'role' | 'status' | 'block_height' | 'mempool_size' | 'p2p_connections' | 'service_uptime' | 'last_sync'> & {
  checks?: HealthCheck[]
  /** status and health: per chain values, and when the report's probe ran (status answers from the last one). */
  chains?: NodeReport['chains']
  probed_at?: string | null
  probe_age_ms?: number | null
  /** status and health: the node's store and its durability (null when the node did not say). */
  store?: StoreReport | null
  delivery?: { state: string, reason?: string, receipt_at?: string }
  action?: ActionResult | { state: string, reason: string }
  sync?: Record<string, unknown>
  /** `ssh` when the report came over the SSH fallback. */
  via?: 'ssh'
}

/** The operation JSON of DESIGN.md; every top-level field is always present. */
export interface OperationResult {
  summary: string
  operation: OperationRequest['operation']
  target_node: string
  nodes_status: Record<string, NodeStatusEntry>
  sync_result: Verdict | null
  sync_details: Record<string, boolean> | null
  message_delivery: { sent: number, delivered: number, processed: number, failed: number }
  issues: string[]
  recommendations: string[]
  confidence: number
  execution_time: number
  validation_status: Verdict
  /** The requesting node's membership view when the operation finished. */
  mesh_view?: MeshView
}

/** What one operation kind found; operationResult() turns it into the operation JSON. */
export interface KindOutcome {
  summary: string
  nodes_status: Record<string, NodeStatusEntry>
  issues: string[]
  recommendations: string[]
  /** validation_status: how many of what was asked succeeded. */
  succeeded: number
  asked: number
  /** confidence: the share of the targets that answered. */
  answered: number
  targets: number
  /** sync: the result per kind of sync (null: not asked); its verdict is the validation's. */
  syncDetails?: Record<string, boolean | null>
  messageDelivery?: OperationResult['message_delivery']
}

export function verdict (succeeded: number, asked: number): Verdict {
  return succeeded === asked ? 'success' : succeeded === 0 ? 'failed' : 'partial'
}

/** The operation JSON for `request`, from what its kind found; `startedMs` is performance.now() at its start. */
export function operationResult (request: OperationRequest, outcome: KindOutcome, startedMs: number, meshView?: MeshView): OperationResult {
  const validation = verdict(outcome.succeeded, outcome.asked)
  return {
    summary: outcome.summary,
    operation: request.operation,
    target_node: request.target_node,
    nodes_status: outcome.nodes_status,
    sync_result: outcome.syncDetails != null ? validation : null,
    sync_details: (outcome.syncDetails ?? null) as Record<string, boolean> | null,
    message_delivery: outcome.messageDelivery ?? { sent: 0, delivered: 0, processed: 0, failed: 0 },
    issues: outcome.issues,
    recommendations: outcome.recommendations,
    confidence: Math.round((outcome.answered / Math.max(1, outcome.targets)) * 100) / 100,
    execution_time: Math.round(performance.now() - startedMs) / 1000,
    validation_status: validation,
    ...(meshView != null ? { mesh_view: meshView } : {})
  }
}

/** "1 node" / "3 nodes". */
export function nodeCount (n: number): string {
  return `${n} node${n === 1 ? '' : 's'}`
}
