import { pbStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import {
  ActionResult as WireActionResult, NodeReport as WireReport, OperationKind, OperationRequest, OperationResponse
} from '../../protocols/operation.js'
import { ROLES, type Role } from '../config/schema.js'
import {
  CHAIN_ID_PATTERN, MAX_PROBE_CHAINS, DEFAULT_TRUST_CLOCK_SKEW_MS, MAX_PLAUSIBLE_UPTIME_MS, MAX_WIRE_PEER_COUNT, OPERATION_MAX_INBOUND_STREAMS,
  OPERATION_MAX_OUTBOUND_STREAMS, OPERATION_REQUEST_ID_PATTERN, OPERATION_STREAM_MAX_MESSAGE_BYTES
} from '../constants.js'
import { errorMessage, ProtocolError, TimeoutError, UnreachableError } from '../errors.js'
import type { MeshLibp2p } from '../mesh/libp2p.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { aheadOfClock, clipText, MAX_WIRE_INTEGER } from '../mesh/wire-bounds.js'
import { CHECK_STATES, type ChainReport, type CheckState, type HealthCheck, type NodeReport, type StoreReport } from './report.js'
import type { DurabilityLevel } from '../store/backend.js'
import { DURABILITY_LEVELS, durabilityView } from '../store/durability.js'
import type { ActionResult } from './actions.js'
import type { Requester } from './authority.js'

export const OPERATION_PROTOCOL = '/aitbc-mesh/operation/1.0.0'
/** How long a responder waits for the request to arrive after the stream opens. */
const REQUEST_READ_TIMEOUT_MS = 5000
const STREAM_CLOSE_TIMEOUT_MS = 5000
const MAX_ISSUES = 64
const MAX_CHECKS = 64
const MAX_TEXT = 2048
/** service_uptime is short ("5d 12h 34m"); the SSH fallback holds it to the same length. */
const MAX_SERVICE_UPTIME_CHARS = 64
/** An action's reported duration may exceed our own measure of the exchange by this much (rounding). */
const DURATION_TOLERANCE_MS = 1000

export type ReportKind = 'status' | 'health'

/** A peer's answer that cannot be read at all: not a frame within the limit, or not JSON. */
export class AnswerUnreadableError extends ProtocolError {
  override name = 'AnswerUnreadableError'
}

export interface OperationProtocolInit {
  libp2p: MeshLibp2p
  peers: PeerTable
  log: Logger
  /** Produces this node's own report; runs only probes configured here. */
  localReport: (kind: ReportKind, timeoutMs: number) => Promise<NodeReport>
  /** Runs an action from this node's own config, if its config lets `requester` run it. */
  localAction: (action: string, force: boolean, timeoutMs: number, requester: Requester) => Promise<ActionResult>
  /** Runs one sync step on this node, if its config lets `requester` ask for it. */
  localSync: (step: string, payload: unknown, force: boolean, timeoutMs: number, requester: Requester) => Promise<unknown>
  /** trust.clockSkewMs: the window for times in a peer's answers. */
  clockSkewMs?: number
}

const ACTION_STATES = ['ok', 'failed', 'refused', 'timed_out'] as const

/** `elapsedMs`: how long the exchange took here; the action ran within it. */
export function actionFromWire (wire: WireActionResult, expected: string, elapsedMs: number): ActionResult {
  if (wire.action !== expected) throw new ProtocolError(`answer is for action "${clipText(wire.action, 64)}", expected "${expected}"`)
  if (!(ACTION_STATES as readonly string[]).includes(wire.state)) throw new ProtocolError(`unknown action state "${clipText(wire.state, 64)}"`)
  if (wire.durationMs > BigInt(Math.ceil(elapsedMs) + DURATION_TOLERANCE_MS)) {
    throw new ProtocolError(`action took ${String(wire.durationMs)} ms by its report, longer than the ${Math.ceil(elapsedMs)} ms the request lasted`)
  }
  return {
    action: wire.action,
    state: wire.state as ActionResult['state'],
    exit_code: wire.exitCode ?? null,
    duration_ms: Number(wire.durationMs),
    output_tail: wire.outputTail.slice(-8192),
    reason: clip(wire.reason),
    destructive: wire.destructive,
    health_before: clip(wire.healthBefore),
    health_after: clip(wire.healthAfter)
  }
}

const KIND_TO_WIRE: Record<ReportKind, OperationKind> = { status: OperationKind.STATUS, health: OperationKind.HEALTH }

function toWire (report: NodeReport): WireReport {
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

function clip (text: string, max = MAX_TEXT): string {
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
  const checks: HealthCheck[] = wire.checks.slice(0, MAX_CHECKS).map(c => ({
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
    service_uptime: wire.serviceUptime != null ? clip(wire.serviceUptime, MAX_SERVICE_UPTIME_CHARS) : null,
    last_sync: wire.lastSync != null ? Number(wire.lastSync) : null,
    issues: wire.issues.slice(0, MAX_ISSUES).map(issue => clip(issue)),
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

/**
 * The operation request/response protocol: a node asks a peer to run a named operation on
 * itself; the peer runs its own probes and answers with its report. Nothing but the operation
 * name and a timeout crosses the wire.
 */
export class OperationProtocol {
  private started = false
  private readonly rejections: RejectionLog

  constructor (private readonly init: OperationProtocolInit) {
    this.handle = this.handle.bind(this)
    this.rejections = new RejectionLog(init.log)
  }

  async start (): Promise<void> {
    await this.init.libp2p.handle(OPERATION_PROTOCOL, this.handle, {
      maxInboundStreams: OPERATION_MAX_INBOUND_STREAMS,
      maxOutboundStreams: OPERATION_MAX_OUTBOUND_STREAMS
    })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.init.libp2p.unhandle(OPERATION_PROTOCOL)
  }

  private async handle (stream: Stream, connection: Connection): Promise<void> {
    const requester = this.init.peers.getByPeerId(connection.remotePeer)
    const peerId = connection.remotePeer.toString()
    const log = this.init.log.child({ peerId, from: requester?.name })
    const pb = pbStream(stream, { maxDataLength: OPERATION_STREAM_MAX_MESSAGE_BYTES })
    let requestId = ''
    // What went wrong, as a stable category for the rejection log.
    let stage = 'not in the allowlist'
    try {
      if (requester == null) throw new ProtocolError('requester is not in the allowlist')
      stage = 'request unreadable'
      const request = await pb.read(OperationRequest, { signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
      stage = 'invalid request id'
      if (!OPERATION_REQUEST_ID_PATTERN.test(request.requestId)) throw new ProtocolError(`request id "${clipText(request.requestId, 64)}" is not 1 to 64 letters, digits, "_" or "-"`)
      requestId = request.requestId
      stage = 'request failed'
      const timeoutMs = Math.max(100, Math.min(request.timeoutMs, 120_000))
      // Who asks is the allowlisted node of the authenticated connection, with the role this
      // node's config gives it; nothing in the request can claim another.
      const from: Requester = { node: requester.name, role: requester.role, self: false, operationId: requestId }
      if (request.kind === OperationKind.COORDINATE) {
        log.info({ event: 'action_requested', operationId: requestId, action: request.action, force: request.force }, 'running an action for a peer')
        const result = await this.init.localAction(request.action, request.force, timeoutMs, from)
        await pb.write({ requestId, error: '', actionResult: { ...result, exitCode: result.exit_code ?? undefined, durationMs: BigInt(result.duration_ms), outputTail: result.output_tail, healthBefore: result.health_before, healthAfter: result.health_after } }, OperationResponse, { signal: AbortSignal.timeout(timeoutMs) })
        return
      }
      if (request.kind === OperationKind.SYNC) {
        let payload: unknown = null
        try {
          payload = request.payloadJson === '' ? null : JSON.parse(request.payloadJson)
        } catch {
          throw new ProtocolError('sync payload is not JSON')
        }
        let answer: { payloadJson: string, error: string }
        try {
          answer = { payloadJson: JSON.stringify(await this.init.localSync(request.syncStep, payload, request.force, timeoutMs, from)), error: '' }
        } catch (err) {
          answer = { payloadJson: '', error: errorMessage(err) }
        }
        await pb.write({ requestId, ...answer }, OperationResponse, { signal: AbortSignal.timeout(timeoutMs) })
        return
      }
      const kind = request.kind === OperationKind.STATUS ? 'status' : request.kind === OperationKind.HEALTH ? 'health' : undefined
      if (kind == null) {
        await pb.write({ requestId, error: `unknown operation kind ${String(request.kind)}` }, OperationResponse, { signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
        return
      }
      const report = await this.init.localReport(kind, timeoutMs)
      await pb.write({ requestId, error: '', report: toWire(report) }, OperationResponse, { signal: AbortSignal.timeout(timeoutMs) })
      log.info({ event: 'operation_served', operationId: requestId, kind }, 'answered an operation request')
    } catch (err) {
      // Once per (peer, stage), then summarised: a peer sending junk cannot flood the journal.
      this.rejections.reject('operation_request_failed', requester?.name ?? peerId, stage, { peerId, operationId: requestId, err: errorMessage(err) }, 'operation request failed')
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      if (stream.status === 'open') await stream.close({ signal: AbortSignal.timeout(STREAM_CLOSE_TIMEOUT_MS) }).catch(err => { stream.abort(err) })
    }
  }

  /** Asks `peerId` for its report. Throws TimeoutError, UnreachableError or ProtocolError. */
  async request (peerId: PeerId, expected: { name: string, role: Role }, kind: ReportKind, requestId: string, timeoutMs: number): Promise<NodeReport> {
    const response = await this.exchange(peerId, expected.name, { requestId, kind: KIND_TO_WIRE[kind], timeoutMs, action: '', force: false, syncStep: '', payloadJson: '' }, timeoutMs)
    if (response.report == null) throw new ProtocolError(`${expected.name} sent no report`)
    try {
      return fromWire(response.report, expected, Date.now(), this.init.clockSkewMs)
    } catch (err) {
      throw new ProtocolError(`${expected.name}: ${errorMessage(err)}`)
    }
  }

  /** Asks `peerId` to run one of its configured actions; the answer comes when it has finished. */
  async requestAction (peerId: PeerId, expected: string, action: string, force: boolean, requestId: string, timeoutMs: number): Promise<ActionResult> {
    // The target stops the action at timeoutMs; leave room for its answer to travel back.
    const started = performance.now()
    const response = await this.exchange(peerId, expected, { requestId, kind: OperationKind.COORDINATE, timeoutMs, action, force, syncStep: '', payloadJson: '' }, timeoutMs + 5000)
    if (response.actionResult == null) throw new ProtocolError(`${expected} sent no action result`)
    try {
      return actionFromWire(response.actionResult, action, performance.now() - started)
    } catch (err) {
      throw new ProtocolError(`${expected}: ${errorMessage(err)}`)
    }
  }

  /** Asks `peerId` to run one sync step on itself; returns the step's JSON result. */
  async requestSync (peerId: PeerId, expected: string, step: string, payload: unknown, force: boolean, requestId: string, timeoutMs: number): Promise<unknown> {
    const response = await this.exchange(peerId, expected, { requestId, kind: OperationKind.SYNC, timeoutMs, action: '', force, syncStep: step, payloadJson: payload == null ? '' : JSON.stringify(payload) }, timeoutMs + 5000, step)
    try {
      return JSON.parse(response.payloadJson)
    } catch {
      throw new AnswerUnreadableError(`${expected} answered ${step} with something that is not JSON`)
    }
  }

  /** `what`: the step or operation the request is for, named in an unreadable answer's error. */
  private async exchange (peerId: PeerId, name: string, request: OperationRequest, timeoutMs: number, what?: string): Promise<OperationResponse> {
    const signal = AbortSignal.timeout(timeoutMs)
    let stream: Stream | undefined
    try {
      try {
        // Optimistic protocol selection: the request travels with the protocol name, saving a round trip.
        stream = await this.init.libp2p.dialProtocol(peerId, OPERATION_PROTOCOL, { signal, negotiateFully: false })
      } catch (err) {
        if (signal.aborted) throw new TimeoutError(`no stream to ${name} within ${timeoutMs} ms`)
        throw new UnreachableError(`cannot reach ${name}: ${errorMessage(err)}`)
      }
      const pb = pbStream(stream, { maxDataLength: OPERATION_STREAM_MAX_MESSAGE_BYTES })
      let response: OperationResponse
      try {
        await pb.write(request, OperationRequest, { signal })
        response = await pb.read(OperationResponse, {
          signal,
          limits: { report: { issues: MAX_ISSUES, checks: MAX_CHECKS } } as never
        })
      } catch (err) {
        if (signal.aborted) throw new TimeoutError(`${name} did not answer within ${timeoutMs} ms`)
        throw new AnswerUnreadableError(`bad answer from ${name}${what != null ? ` to ${what}` : ''}: ${errorMessage(err)}`)
      }
      if (response.requestId !== request.requestId) throw new ProtocolError(`${name} answered request ${clipText(response.requestId, 64)}, expected ${request.requestId}`)
      if (response.error !== '') throw new ProtocolError(`${name} refused: ${clip(response.error)}`)
      return response
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      // Closing waits for the remote's half of the close; the answer is already in hand, so
      // do not make the caller wait for it.
      if (stream?.status === 'open') void stream.close({ signal: AbortSignal.timeout(STREAM_CLOSE_TIMEOUT_MS) }).catch(err => { stream?.abort(err) })
    }
  }
}
