import {
  ActionResult as WireActionResult, NodeReport as WireReport, OperationKind
} from '../../protocols/operation.js'
import { ROLES, type Role } from '../config/schema.js'
import {
  CHAIN_ID_PATTERN, DEFAULT_TRUST_CLOCK_SKEW_MS, MAX_PLAUSIBLE_UPTIME_MS, MAX_PROBE_CHAINS, MAX_WIRE_PEER_COUNT, OPERATION_ACTION_OUTPUT_MAX_CHARS,
  OPERATION_DURATION_TOLERANCE_MS, OPERATION_REPORT_MAX_CHECKS, OPERATION_REPORT_MAX_ISSUES, OPERATION_REPORT_MAX_TEXT, OPERATION_REPORT_MAX_UPTIME_CHARS
} from '../constants.js'
import { ProtocolError } from '../errors.js'
import { aheadOfClock, clipText, MAX_WIRE_INTEGER } from '../mesh/wire-bounds.js'
import type { ActionResult } from './actions.js'
import type { ReportKind } from './local-executor.js'
import { CHECK_STATES, type ChainReport, type CheckState, type HealthCheck, type NodeReport, type StoreReport } from './report.js'
import type { DurabilityLevel } from '../store/backend.js'
import { DURABILITY_LEVELS, durabilityView } from '../store/durability.js'

// Converts reports and action results to and from the wire, checking a peer's before use.

const ACTION_STATES = ['ok', 'failed', 'refused', 'timed_out'] as const

/** `elapsedMs`: how long the exchange took here; the action ran within it. */
export function actionFromWire (wire: WireActionResult, expected: string, elapsedMs: number): ActionResult {
  if (wire.action !== expected) throw new ProtocolError(`answer is for action "${clipText(wire.action, 64)}", expected "${expected}"`)
  if (!(ACTION_STATES as readonly string[]).includes(wire.state)) throw new ProtocolError(`unknown action state "${clipText(wire.state, 64)}"`)
  if (wire.durationMs > BigInt(Math.ceil(elapsedMs) + OPERATION_DURATION_TOLERANCE_MS)) {
    throw new ProtocolError(`action took ${String(wire.durationMs)} ms by its report, longer than the ${Math.ceil(elapsedMs)} ms the request lasted`)
  }
  return {
    action: wire.action,
    state: wire.state as ActionResult['state'],
    exit_code: wire.exitCode ?? null,
    duration_ms: Number(wire.durationMs),
    output_tail: wire.outputTail.slice(-OPERATION_ACTION_OUTPUT_MAX_CHARS),
    reason: clip(wire.reason),
    destructive: wire.destructive,
    health_before: clip(wire.healthBefore),
    health_after: clip(wire.healthAfter)
  }
}

export const KIND_TO_WIRE: Record<ReportKind, OperationKind> = { status: OperationKind.STATUS, health: OperationKind.HEALTH }

export function reportToWire (report: NodeReport): WireReport {
  return {
    node: report.node,
    role: report.role,
    status: report.status,
    ...(report.block_height != null ? { blockHeight: BigInt(report.block_height) } : {}),
    ...(report.mempool_size != null ? { mempoolSize: BigInt(report.mempool_size) } : {}),
    p2pConnections: report.p2p_connections,
    ...(report.service_uptime != null ? { serviceUptime: report.service_uptime } : {}),
    ...(report.last_sync != null ? { lastSync: BigInt(report.last_sync) } : {}),
    issues: report.issues,
    checks: report.checks.map(c => ({ name: c.name, ok: c.ok, detail: c.detail, state: c.state ?? '' })),
    daemonUptimeMs: BigInt(report.daemon_uptime_ms),
    ...(report.probed_at_ms != null ? { probedAtMs: BigInt(report.probed_at_ms) } : {}),
    chains: Object.entries(report.chains).map(([chainId, c]) => ({
      chainId,
      ...(c.block_height != null ? { blockHeight: BigInt(c.block_height) } : {}),
      ...(c.mempool_size != null ? { mempoolSize: BigInt(c.mempool_size) } : {}),
      mempoolAtLeast: c.mempool_at_least
    })),
    ...(report.store != null ? { store: { kind: report.store.kind, durabilityLevel: report.store.durability.level, durabilityDetail: report.store.durability.detail } } : {})
  }
}

export function clip (text: string, max = OPERATION_REPORT_MAX_TEXT): string {
  return text.length > max ? `${text.slice(0, max)}…` : text
}

/**
 * Checks a peer's report before it reaches an operator; a peer cannot report for another node,
 * and its counts and times must be ones a node could report (a last_sync far in the future
 * would not even print as a date).
 */
export function fromWire (wire: WireReport, expected: { name: string, role: Role }, now = Date.now(), clockSkewMs = DEFAULT_TRUST_CLOCK_SKEW_MS): NodeReport {
  if (wire.node !== expected.name) throw new ProtocolError(`report names node "${clipText(wire.node, 64)}", expected "${expected.name}"`)
  if (!(ROLES as readonly string[]).includes(wire.role)) throw new ProtocolError(`report has unknown role "${clipText(wire.role, 64)}"`)
  if (wire.status !== 'online' && wire.status !== 'degraded') throw new ProtocolError(`report has unknown status "${clipText(wire.status, 64)}"`)
  for (const [field, value] of [['block_height', wire.blockHeight], ['mempool_size', wire.mempoolSize]] as const) {
    if (value != null && value > MAX_WIRE_INTEGER) throw new ProtocolError(`report has ${field} ${String(value)}, over ${String(MAX_WIRE_INTEGER)}`)
  }
  if (wire.p2pConnections > MAX_WIRE_PEER_COUNT) throw new ProtocolError(`report has p2p_connections ${wire.p2pConnections}, over ${MAX_WIRE_PEER_COUNT}`)
  if (wire.daemonUptimeMs > BigInt(MAX_PLAUSIBLE_UPTIME_MS)) throw new ProtocolError(`report has daemon_uptime_ms ${String(wire.daemonUptimeMs)}, over ${MAX_PLAUSIBLE_UPTIME_MS} (10 years)`)
  const future = (wire.lastSync != null ? aheadOfClock('last_sync', wire.lastSync * 1000n, now, clockSkewMs) : undefined) ??
    (wire.probedAtMs != null ? aheadOfClock('probed_at', wire.probedAtMs, now, clockSkewMs) : undefined)
  if (future != null) throw new ProtocolError(`report has ${future}`)
  const checks: HealthCheck[] = wire.checks.slice(0, OPERATION_REPORT_MAX_CHECKS).map(c => ({
    name: clip(c.name),
    ok: c.ok,
    detail: clip(c.detail),
    // A state this daemon does not know (a newer peer's) is left out; ok still tells.
    ...((CHECK_STATES as readonly string[]).includes(c.state) ? { state: c.state as CheckState } : {})
  }))
  const chains = chainsFromWire(wire.chains)
  return {
    node: wire.node,
    role: wire.role as Role,
    status: wire.status,
    block_height: wire.blockHeight != null ? Number(wire.blockHeight) : null,
    mempool_size: wire.mempoolSize != null ? Number(wire.mempoolSize) : null,
    p2p_connections: wire.p2pConnections,
    service_uptime: wire.serviceUptime != null ? clip(wire.serviceUptime, OPERATION_REPORT_MAX_UPTIME_CHARS) : null,
    last_sync: wire.lastSync != null ? Number(wire.lastSync) : null,
    issues: wire.issues.slice(0, OPERATION_REPORT_MAX_ISSUES).map(issue => clip(issue)),
    checks,
    daemon_uptime_ms: Number(wire.daemonUptimeMs),
    probed_at_ms: wire.probedAtMs != null ? Number(wire.probedAtMs) : null,
    chains,
    store: storeFromWire(wire.store)
  }
}

/** The peer's store section; the guarantee and verdict are this node's words for the level it names. */
function storeFromWire (wire: WireReport['store']): StoreReport | null {
  if (wire == null) return null
  if (wire.kind !== 'redis' && wire.kind !== 'embedded') throw new ProtocolError(`report has store kind "${clipText(wire.kind, 64)}", expected redis or embedded`)
  if (!(DURABILITY_LEVELS as readonly string[]).includes(wire.durabilityLevel)) {
    throw new ProtocolError(`report has store durability "${clipText(wire.durabilityLevel, 64)}", expected one of ${DURABILITY_LEVELS.join(', ')}`)
  }
  return { kind: wire.kind, durability: durabilityView({ level: wire.durabilityLevel as DurabilityLevel, detail: clip(wire.durabilityDetail) }) }
}

function chainsFromWire (wire: WireReport['chains']): Record<string, ChainReport> {
  if (wire.length > MAX_PROBE_CHAINS) throw new ProtocolError(`report has ${wire.length} chains, over ${MAX_PROBE_CHAINS}`)
  const chains: Record<string, ChainReport> = {}
  for (const c of wire) {
    if (!CHAIN_ID_PATTERN.test(c.chainId)) throw new ProtocolError(`report has chain id "${clipText(c.chainId, 64)}", expected letters, digits, ".", "_" or "-"`)
    if (Object.hasOwn(chains, c.chainId)) throw new ProtocolError(`report lists chain ${c.chainId} twice`)
    for (const [field, value] of [['block_height', c.blockHeight], ['mempool_size', c.mempoolSize]] as const) {
      if (value != null && value > MAX_WIRE_INTEGER) throw new ProtocolError(`report has ${field} ${String(value)} for chain ${c.chainId}, over ${String(MAX_WIRE_INTEGER)}`)
    }
    chains[c.chainId] = {
      block_height: c.blockHeight != null ? Number(c.blockHeight) : null,
      mempool_size: c.mempoolSize != null ? Number(c.mempoolSize) : null,
      mempool_at_least: c.mempoolAtLeast
    }
  }
  return chains
}

export function actionToWire (result: ActionResult): WireActionResult {
  return {
    action: result.action,
    state: result.state,
    ...(result.exit_code != null ? { exitCode: result.exit_code } : {}),
    durationMs: BigInt(result.duration_ms),
    outputTail: result.output_tail,
    reason: result.reason,
    destructive: result.destructive,
    healthBefore: result.health_before,
    healthAfter: result.health_after
  }
}
