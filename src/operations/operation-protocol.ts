import { pbStream } from '@libp2p/utils'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import { OperationKind, OperationRequest, OperationResponse } from '../../protocols/operation.js'
import type { Role } from '../config/schema.js'
import {
  OPERATION_ANSWER_GRACE_MS, OPERATION_CLOSE_TIMEOUT_MS, OPERATION_DIAL_TIMEOUT_MS, OPERATION_MAX_INBOUND_STREAMS, OPERATION_MAX_OUTBOUND_STREAMS,
  OPERATION_MAX_REMOTE_TIMEOUT_MS, OPERATION_MIN_REMOTE_TIMEOUT_MS, OPERATION_REPORT_MAX_CHECKS, OPERATION_REPORT_MAX_ISSUES,
  OPERATION_REQUEST_ID_PATTERN, OPERATION_REQUEST_READ_TIMEOUT_MS, OPERATION_STREAM_MAX_MESSAGE_BYTES, OPERATION_WRITE_TIMEOUT_MS
} from '../constants.js'
import { errorMessage, ProtocolError, TimeoutError, UnreachableError } from '../errors.js'
import type { PeerTable } from '../mesh/peer-table.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { clipText } from '../mesh/wire-bounds.js'
import type { ActionResult } from './actions.js'
import type { Requester } from './authority.js'
import type { OperationExecutor, ReportKind } from './local-executor.js'
import { actionFromWire, actionToWire, clip, fromWire, KIND_TO_WIRE, reportToWire } from './operation-wire.js'
import type { NodeReport } from './report.js'

export const OPERATION_PROTOCOL = '/aitbc-mesh/operation/1.0.0'

/** A peer's answer that cannot be read at all: not a frame within the limit, or not JSON. */
export class AnswerUnreadableError extends ProtocolError {
  override name = 'AnswerUnreadableError'
}

/** The target would not run the request (an answer with an error and status `refused`, or no status: older daemons). */
export class RemoteRefusedError extends ProtocolError {
  override name = 'RemoteRefusedError'
}

/** The target ran the request and it failed there. */
export class RemoteFailedError extends ProtocolError {
  override name = 'RemoteFailedError'
}

/** The target's own work did not finish within the requested time. */
export class RemoteTimedOutError extends TimeoutError {
  override name = 'RemoteTimedOutError'
}

/** The statuses of an answer that carries an error (OperationResponse.status). */
export type AnswerStatus = 'refused' | 'failed' | 'timed_out'

/** Each step of an exchange has its own bound (defaults in constants.ts; tests shorten them). */
export interface OperationTimeouts {
  dialMs: number
  writeMs: number
  requestReadMs: number
  answerGraceMs: number
  closeMs: number
}

const DEFAULT_TIMEOUTS: OperationTimeouts = {
  dialMs: OPERATION_DIAL_TIMEOUT_MS,
  writeMs: OPERATION_WRITE_TIMEOUT_MS,
  requestReadMs: OPERATION_REQUEST_READ_TIMEOUT_MS,
  answerGraceMs: OPERATION_ANSWER_GRACE_MS,
  closeMs: OPERATION_CLOSE_TIMEOUT_MS
}

export interface OperationProtocolInit {
  /** The slice of libp2p the protocol uses. */
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>
  /** Who a connection's peer is: requests are served only to allowlisted nodes. */
  peers: Pick<PeerTable, 'getByPeerId'>
  /** Runs what a peer asks of this node, from this node's own config. */
  local: OperationExecutor
  log: Logger
  /** trust.clockSkewMs: the window for times in a peer's answers. */
  clockSkewMs?: number
  timeouts?: Partial<OperationTimeouts>
  /** Aborted when the daemon begins to stop: exchanges in flight end then. */
  shutdown?: AbortSignal
}

type Answer = Omit<OperationResponse, 'requestId'>

/**
 * The operation request/response protocol: a node asks a peer to run a named operation on
 * itself; the peer runs its own probes, action or sync step and answers. Nothing but the
 * operation's name, its input and a timeout crosses the wire.
 */
export class OperationProtocol {
  private started = false
  /** Aborted by stop(): every exchange in flight carries it. */
  private stopping = new AbortController()
  private readonly rejections: RejectionLog
  private readonly timeouts: OperationTimeouts

  constructor (private readonly init: OperationProtocolInit) {
    this.handle = this.handle.bind(this)
    this.rejections = new RejectionLog(init.log)
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...init.timeouts }
  }

  async start (): Promise<void> {
    if (this.started) return
    const stopping = this.stopping = new AbortController()
    // The daemon's shutdown ends every exchange at once, before the parts stop one by one.
    this.init.shutdown?.addEventListener('abort', () => { stopping.abort(new Error('the daemon is stopping')) }, { once: true })
    await this.init.libp2p.handle(OPERATION_PROTOCOL, this.handle, {
      maxInboundStreams: OPERATION_MAX_INBOUND_STREAMS,
      maxOutboundStreams: OPERATION_MAX_OUTBOUND_STREAMS
    })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.stopping.abort(new Error('the daemon is stopping'))
    await this.init.libp2p.unhandle(OPERATION_PROTOCOL)
  }

  private async handle (stream: Stream, connection: Pick<Connection, 'remotePeer'>): Promise<void> {
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
      const request = await pb.read(OperationRequest, { signal: this.signal(this.timeouts.requestReadMs) })
      stage = 'invalid request id'
      if (!OPERATION_REQUEST_ID_PATTERN.test(request.requestId)) throw new ProtocolError(`request id "${clipText(request.requestId, 64)}" is not 1 to 64 letters, digits, "_" or "-"`)
      requestId = request.requestId
      stage = 'invalid payload'
      // Who asks is the allowlisted node of the authenticated connection, with the role this
      // node's config gives it; nothing in the request can claim another.
      const from: Requester = { node: requester.name, role: requester.role, self: false, operationId: requestId, ...(request.overrideQuorum ? { overrideQuorum: true } : {}) }
      const answer = await this.answer(request, from, log)
      stage = 'answer not taken'
      await pb.write({ requestId, ...answer }, OperationResponse, { signal: this.signal(this.timeouts.writeMs) })
      log.info({ event: 'operation_served', operationId: requestId, kind: String(request.kind).toLowerCase(), ...(answer.status != null ? { status: answer.status } : {}) }, 'answered an operation request')
    } catch (err) {
      // Once per (peer, stage), then summarised: a peer sending junk cannot flood the journal.
      this.rejections.reject('operation_request_failed', requester?.name ?? peerId, stage, { peerId, operationId: requestId, err: errorMessage(err) }, 'operation request failed')
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      if (stream.status === 'open') await stream.close({ signal: AbortSignal.timeout(this.timeouts.closeMs) }).catch(err => { stream.abort(err) })
    }
  }

  /**
   * Runs the request on this node. Work that fails or runs out of time is answered with its
   * status and reason; only a request that cannot be understood throws (the stream is reset).
   */
  private async answer (request: OperationRequest, from: Requester, log: Logger): Promise<Answer> {
    const timeoutMs = Math.max(OPERATION_MIN_REMOTE_TIMEOUT_MS, Math.min(request.timeoutMs, OPERATION_MAX_REMOTE_TIMEOUT_MS))
    const { local } = this.init
    let run: () => Promise<Answer>
    if (request.kind === OperationKind.COORDINATE) {
      log.info({ event: 'action_requested', operationId: from.operationId, action: request.action, force: request.force, ...(request.overrideQuorum ? { overrideQuorum: true } : {}) }, 'running an action for a peer')
      run = async () => ({ error: '', actionResult: actionToWire(await local.action(request.action, request.force, timeoutMs, from)), payloadJson: '' })
    } else if (request.kind === OperationKind.SYNC) {
      const payload = parsePayload(request.payloadJson)
      run = async () => ({ error: '', payloadJson: JSON.stringify(await local.sync(request.syncStep, payload, request.force, timeoutMs, from)) })
    } else if (request.kind === OperationKind.STATUS || request.kind === OperationKind.HEALTH) {
      const kind = request.kind === OperationKind.STATUS ? 'status' : 'health'
      run = async () => ({ error: '', report: reportToWire(await local.report(kind, timeoutMs)), payloadJson: '' })
    } else {
      return { error: `unknown operation kind ${String(request.kind)}`, status: 'refused', payloadJson: '' }
    }
    try {
      return await run()
    } catch (err) {
      const status: AnswerStatus = err instanceof TimeoutError ? 'timed_out' : 'failed'
      log.warn({ event: 'operation_step_failed', operationId: from.operationId, kind: String(request.kind).toLowerCase(), status, err: errorMessage(err) }, 'a peer\'s operation failed here')
      return { error: clip(errorMessage(err)), status, payloadJson: '' }
    }
  }

  /** Asks `peerId` for its report. Throws TimeoutError, UnreachableError or ProtocolError. */
  async request (peerId: PeerId, expected: { name: string, role: Role }, kind: ReportKind, requestId: string, timeoutMs: number): Promise<NodeReport> {
    const response = await this.exchange(peerId, expected.name, { requestId, kind: KIND_TO_WIRE[kind], timeoutMs, action: '', force: false, syncStep: '', payloadJson: '', overrideQuorum: false }, timeoutMs)
    if (response.report == null) throw new ProtocolError(`${expected.name} sent no report`)
    try {
      return fromWire(response.report, expected, Date.now(), this.init.clockSkewMs)
    } catch (err) {
      throw new ProtocolError(`${expected.name}: ${errorMessage(err)}`)
    }
  }

  /** Asks `peerId` to run one of its configured actions; the answer comes when it has finished. */
  async requestAction (peerId: PeerId, expected: string, action: string, force: boolean, requestId: string, timeoutMs: number, overrideQuorum = false): Promise<ActionResult> {
    const started = performance.now()
    // The target stops the action at timeoutMs; leave room for its answer to travel back.
    const response = await this.exchange(peerId, expected, { requestId, kind: OperationKind.COORDINATE, timeoutMs, action, force, syncStep: '', payloadJson: '', overrideQuorum }, timeoutMs + this.timeouts.answerGraceMs)
    if (response.actionResult == null) throw new ProtocolError(`${expected} sent no action result`)
    try {
      return actionFromWire(response.actionResult, action, performance.now() - started)
    } catch (err) {
      throw new ProtocolError(`${expected}: ${errorMessage(err)}`)
    }
  }

  /** Asks `peerId` to run one sync step on itself; returns the step's JSON result. */
  async requestSync (peerId: PeerId, expected: string, step: string, payload: unknown, force: boolean, requestId: string, timeoutMs: number, overrideQuorum = false): Promise<unknown> {
    const request = { requestId, kind: OperationKind.SYNC, timeoutMs, action: '', force, syncStep: step, payloadJson: payload == null ? '' : JSON.stringify(payload), overrideQuorum }
    const response = await this.exchange(peerId, expected, request, timeoutMs + this.timeouts.answerGraceMs, step)
    try {
      return JSON.parse(response.payloadJson)
    } catch {
      throw new AnswerUnreadableError(`${expected} answered ${step} with something that is not JSON`)
    }
  }

  /**
   * One request and its answer. `answerWithinMs` bounds the whole exchange; opening the stream
   * and writing the request each have their own, shorter bound too. `what`: the step the request
   * is for, named in an unreadable answer's error.
   */
  private async exchange (peerId: PeerId, name: string, request: OperationRequest, answerWithinMs: number, what?: string): Promise<OperationResponse> {
    const deadline = AbortSignal.any([AbortSignal.timeout(answerWithinMs), this.stopping.signal])
    const { dialMs, writeMs } = this.timeouts
    let stream: Stream | undefined
    try {
      const dialSignal = AbortSignal.any([deadline, AbortSignal.timeout(dialMs)])
      try {
        // Optimistic protocol selection: the request travels with the protocol name, saving a round trip.
        stream = await this.init.libp2p.dialProtocol(peerId, OPERATION_PROTOCOL, { signal: dialSignal, negotiateFully: false })
      } catch (err) {
        this.throwIfStopping(name)
        if (dialSignal.aborted) throw new TimeoutError(`no stream to ${name} within ${deadline.aborted ? answerWithinMs : dialMs} ms`)
        throw new UnreachableError(`cannot reach ${name}: ${errorMessage(err)}`)
      }
      const pb = pbStream(stream, { maxDataLength: OPERATION_STREAM_MAX_MESSAGE_BYTES })
      let response: OperationResponse
      const writeSignal = AbortSignal.any([deadline, AbortSignal.timeout(writeMs)])
      try {
        await pb.write(request, OperationRequest, { signal: writeSignal })
        response = await pb.read(OperationResponse, {
          signal: deadline,
          limits: { report: { issues: OPERATION_REPORT_MAX_ISSUES, checks: OPERATION_REPORT_MAX_CHECKS } } as never
        })
      } catch (err) {
        this.throwIfStopping(name)
        if (deadline.aborted) throw new TimeoutError(`${name} did not answer within ${answerWithinMs} ms`)
        if (writeSignal.aborted) throw new TimeoutError(`${name} did not take the request within ${writeMs} ms`)
        throw new AnswerUnreadableError(`bad answer from ${name}${what != null ? ` to ${what}` : ''}: ${errorMessage(err)}`)
      }
      if (response.requestId !== request.requestId) throw new ProtocolError(`${name} answered request ${clipText(response.requestId, 64)}, expected ${request.requestId}`)
      if (response.error !== '') throw answerError(name, response)
      return response
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      // Closing waits for the remote's half of the close; the answer is already in hand, so
      // do not make the caller wait for it.
      if (stream?.status === 'open') void stream.close({ signal: AbortSignal.timeout(this.timeouts.closeMs) }).catch(err => { stream?.abort(err) })
    }
  }

  /** `ms` from now, or sooner when the protocol stops. */
  private signal (ms: number): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(ms), this.stopping.signal])
  }

  private throwIfStopping (name: string): void {
    if (this.stopping.signal.aborted) throw new UnreachableError(`${name}: given up, this daemon is stopping`)
  }
}

function parsePayload (json: string): unknown {
  try {
    return json === '' ? null : JSON.parse(json)
  } catch {
    throw new ProtocolError('sync payload is not JSON')
  }
}

/** The error for an answer that carries one; an answer without a status (an older daemon's) reads as refused. */
function answerError (name: string, response: OperationResponse): Error {
  const reason = clip(response.error)
  if (response.status === 'failed') return new RemoteFailedError(`${name} failed: ${reason}`)
  if (response.status === 'timed_out') return new RemoteTimedOutError(`${name} timed out: ${reason}`)
  return new RemoteRefusedError(`${name} refused: ${reason}`)
}
