import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { dirname } from 'node:path'
import type { Logger } from 'pino'
import {
  CONTROL_CLOSE_LINGER_MS, CONTROL_IDLE_TIMEOUT_MS, CONTROL_MAX_CONNECTIONS, CONTROL_MAX_REQUEST_BYTES, CONTROL_MAX_REQUESTS_IN_FLIGHT,
  CONTROL_MAX_UNREAD_BYTES, CONTROL_MAX_UNSENT_BYTES, CONTROL_PARTIAL_LINE_TIMEOUT_MS, CONTROL_SOCKET_MODE, CONTROL_UNKNOWN_ANSWER_BYTES
} from '../constants.js'
import { errorMessage, NoQuorumError, SendOutcomeUnknownError, UsageError } from '../errors.js'
import { RejectionLog } from '../mesh/rejection-log.js'
import { ErrorCodes, JSONRPC_VERSION, type ControlError, type ControlResponse } from './protocol.js'

export interface MethodContext {
  /** Sends an event tied to this request before its result (progress lines, followed items). */
  notify: (event: unknown) => void
  /** Aborted when the client disconnects. */
  signal: AbortSignal
  /** Aborted when the client will send nothing more (it half-closed or is gone): streams end then, with their answer. */
  inputEnded: AbortSignal
}

/** A control method: its params are checked by `params` (a UsageError names the field) before `run` sees them. */
export interface ControlMethod {
  params: (raw: unknown) => unknown
  run: (params: unknown, ctx: MethodContext) => Promise<unknown>
}

/** A method whose handler gets the params as `params` returned them. */
export function controlMethod<P> (params: (raw: unknown) => P, run: (params: P, ctx: MethodContext) => Promise<unknown>): ControlMethod {
  // The server passes `run` only what `params` returned.
  return { params, run: run as (params: unknown, ctx: MethodContext) => Promise<unknown> }
}

export class SocketInUseError extends Error {
  override name = 'SocketInUseError'
}

export interface ControlServerOptions {
  idleTimeoutMs?: number
  partialLineTimeoutMs?: number
}

/** One client connection and what it has sent that is not answered yet. */
interface Connection {
  socket: Socket
  /** Text received and not yet dispatched: whole lines waiting for room, then the start of the next line. */
  buffered: string
  /** `buffered` holds no line end before this index (a long line arrives in many chunks). */
  scanFrom: number
  inFlight: number
  /** What the requests in flight are expected to answer, in bytes. */
  owed: number
  readingPaused: boolean
  /** The client sent EOF: it will send nothing more. */
  ended: boolean
  closing: boolean
  lastProgressAt: number
  /** Bytes handed to the kernel at the last sweep: a change is progress. */
  lastFlushed: number
  /** When the incomplete line at the end of `buffered` began (only while the daemon reads). */
  partialSince?: number
  closed: AbortController
  inputEnded: AbortController
}

async function socketAnswers (path: string): Promise<boolean> {
  return await new Promise(resolve => {
    const probe = createConnection(path)
    probe.once('connect', () => { probe.destroy(); resolve(true) })
    probe.once('error', () => { resolve(false) })
  })
}

/** Test-only: AITBC_MESH_TEST_CONTROL_IDLE_MS shortens the idle timeout so a test need not wait a minute. */
function idleTimeoutFromEnv (env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.AITBC_MESH_TEST_CONTROL_IDLE_MS
  if (raw == null || raw === '') return CONTROL_IDLE_TIMEOUT_MS
  const ms = Number(raw)
  if (!Number.isInteger(ms) || ms < 100) throw new UsageError(`AITBC_MESH_TEST_CONTROL_IDLE_MS "${raw}": expected whole milliseconds, at least 100`)
  return ms
}

/**
 * The local control socket: JSON-RPC 2.0 over newline-delimited JSON. Each request line is
 * bounded; a bad request gets an error response and the connection stays usable, except an
 * oversized one, after which the connection is closed (its remainder cannot be framed).
 *
 * Each connection is held to bounds: it is not read while its unsent answers exceed
 * CONTROL_MAX_UNSENT_BYTES or CONTROL_MAX_REQUESTS_IN_FLIGHT requests run; it is closed when idle,
 * when a line stays incomplete, or when it falls CONTROL_MAX_UNREAD_BYTES behind reading. A client
 * that half-closes gets its answers, then the daemon closes.
 */
export class ControlServer {
  private server?: Server
  private readonly connections = new Map<Socket, Connection>()
  /** Refused or closing sockets, lingering so their error line can be read. */
  private readonly lingering = new Set<Socket>()
  /** Size of each method's answers so far (see CONTROL_UNKNOWN_ANSWER_BYTES). */
  private readonly answerBytes = new Map<string, number>()
  private sweepTimer?: NodeJS.Timeout
  private readonly rejections: RejectionLog
  private readonly idleTimeoutMs: number
  private readonly partialLineTimeoutMs: number

  constructor (private readonly socketPath: string, private readonly methods: Record<string, ControlMethod>, private readonly log: Logger, options: ControlServerOptions = {}) {
    this.rejections = new RejectionLog(log)
    this.idleTimeoutMs = options.idleTimeoutMs ?? idleTimeoutFromEnv()
    this.partialLineTimeoutMs = options.partialLineTimeoutMs ?? CONTROL_PARTIAL_LINE_TIMEOUT_MS
  }

  async start (): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o750 })
    if (existsSync(this.socketPath)) {
      if (await socketAnswers(this.socketPath)) {
        throw new SocketInUseError(`control socket ${this.socketPath} is in use: another aitbc-mesh daemon is running with it`)
      }
      unlinkSync(this.socketPath) // left behind by a daemon that was killed
    }
    // Half-open: a client may send its last request and EOF, then read the answer.
    const server = createServer({ allowHalfOpen: true }, socket => { this.accept(socket) })
    server.maxConnections = CONTROL_MAX_CONNECTIONS * 2
    // Create the socket 0660 from the start, not world-accessible until a chmod.
    const previousUmask = process.umask(0o117)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.socketPath, () => { server.off('error', reject); resolve() })
      })
    } finally {
      process.umask(previousUmask)
    }
    chmodSync(this.socketPath, CONTROL_SOCKET_MODE)
    this.server = server
    const sweepMs = Math.max(50, Math.min(1000, this.idleTimeoutMs / 5, this.partialLineTimeoutMs / 5))
    this.sweepTimer = setInterval(() => { this.sweep() }, sweepMs)
    this.sweepTimer.unref()
  }

  async stop (): Promise<void> {
    const server = this.server
    delete this.server
    if (server == null) return
    clearInterval(this.sweepTimer)
    const closed = new Promise<void>(resolve => server.close(() => { resolve() }))
    for (const socket of [...this.connections.keys(), ...this.lingering]) socket.destroy()
    await closed
    try {
      unlinkSync(this.socketPath)
    } catch {
      // already gone
    }
  }

  private activeConnections (): number {
    let n = 0
    for (const conn of this.connections.values()) if (!conn.closing) n++
    return n
  }

  private accept (socket: Socket): void {
    socket.on('error', () => {})
    if (this.activeConnections() >= CONTROL_MAX_CONNECTIONS) {
      this.rejections.reject('control_connection_refused', 'local', 'too_many_connections', { limit: CONTROL_MAX_CONNECTIONS }, 'control connection refused: too many open')
      this.linger(socket, { code: ErrorCodes.TooManyConnections, message: `too many control connections (${CONTROL_MAX_CONNECTIONS} open); try again later` })
      return
    }
    const conn: Connection = {
      socket,
      buffered: '',
      scanFrom: 0,
      inFlight: 0,
      owed: 0,
      readingPaused: false,
      ended: false,
      closing: false,
      lastProgressAt: Date.now(),
      lastFlushed: 0,
      closed: new AbortController(),
      inputEnded: new AbortController()
    }
    this.connections.set(socket, conn)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      if (conn.closing) return
      conn.lastProgressAt = Date.now()
      conn.buffered += chunk
      this.pump(conn)
    })
    socket.on('end', () => {
      conn.ended = true
      conn.inputEnded.abort()
      this.pump(conn)
    })
    socket.on('drain', () => {
      conn.lastProgressAt = Date.now()
      this.pump(conn)
    })
    socket.on('close', () => {
      conn.closing = true
      conn.buffered = ''
      conn.inputEnded.abort()
      conn.closed.abort()
      this.connections.delete(socket)
      this.lingering.delete(socket)
    })
  }

  /**
   * No more requests are taken from this connection until its answers are sent or its running
   * requests finish. One request may always run when nothing else is owed.
   */
  private backlogged (conn: Connection): boolean {
    const unsent = conn.socket.writableLength
    return unsent > CONTROL_MAX_UNSENT_BYTES || conn.inFlight >= CONTROL_MAX_REQUESTS_IN_FLIGHT ||
      (conn.inFlight > 0 && unsent + conn.owed > CONTROL_MAX_UNSENT_BYTES)
  }

  /** Bytes a request of `method` is expected to answer. */
  private answerEstimate (method: string): number {
    return this.answerBytes.get(method) ?? CONTROL_UNKNOWN_ANSWER_BYTES
  }

  /** Up at once to a larger answer, down slowly, so alternating small and large answers keeps the large size. */
  private learnAnswer (method: string, bytes: number): void {
    const known = this.answerBytes.get(method)
    this.answerBytes.set(method, known == null || bytes >= known ? bytes : known + (bytes - known) / 16)
  }

  /** Dispatches the complete lines there is room for, then decides whether to read on, end or close. */
  private pump (conn: Connection): void {
    if (conn.closing) return
    const text = conn.buffered
    let start = 0
    let backlogged = false
    for (;;) {
      if (this.backlogged(conn)) {
        backlogged = true
        break
      }
      const newline = text.indexOf('\n', Math.max(start, conn.scanFrom))
      if (newline < 0) break
      const line = text.slice(start, newline)
      start = newline + 1
      if (line.trim() !== '') this.dispatch(conn, line)
      if (conn.closing) return
    }
    // Walk the buffer with an index: slicing it per line would be quadratic in a large chunk.
    if (start > 0) conn.buffered = text.slice(start)
    conn.scanFrom = backlogged ? 0 : conn.buffered.length

    if (!backlogged) {
      if (conn.ended) {
        // A last request without a newline, then EOF: it is still a request.
        const last = conn.buffered
        conn.buffered = ''
        conn.scanFrom = 0
        conn.partialSince = undefined
        if (last.trim() !== '') this.dispatch(conn, last)
        if (conn.inFlight === 0 && !conn.closing && conn.socket.writable) conn.socket.end()
        return
      }
      if (conn.buffered.length > CONTROL_MAX_REQUEST_BYTES / 3 && Buffer.byteLength(conn.buffered) > CONTROL_MAX_REQUEST_BYTES) {
        this.rejections.reject('control_connection_closed', 'local', 'request_too_large', { bytes: Buffer.byteLength(conn.buffered) }, 'control request too large; closing the connection')
        this.close(conn, { code: ErrorCodes.RequestTooLarge, message: `request exceeds ${CONTROL_MAX_REQUEST_BYTES} bytes; requests are one JSON object per line` })
        return
      }
      conn.partialSince = conn.buffered === '' ? undefined : conn.partialSince ?? Date.now()
    } else {
      conn.partialSince = undefined
    }
    // While only the in-flight limit holds lines back, reading goes on (bounded) so a disconnect is seen.
    const read = !conn.ended && (!backlogged ||
      (conn.socket.writableLength <= CONTROL_MAX_UNSENT_BYTES && conn.buffered.length <= CONTROL_MAX_REQUEST_BYTES))
    if (read && conn.readingPaused) {
      conn.readingPaused = false
      conn.socket.resume()
    } else if (!read && !conn.readingPaused) {
      conn.readingPaused = true
      conn.socket.pause()
    }
  }

  /** Closes connections that are idle, stuck in the middle of a line, or not reading what they are sent. */
  private sweep (): void {
    const now = Date.now()
    for (const conn of this.connections.values()) {
      if (conn.closing) continue
      const flushed = conn.socket.bytesWritten - conn.socket.writableLength
      if (flushed !== conn.lastFlushed) {
        conn.lastFlushed = flushed
        conn.lastProgressAt = now
      }
      if (conn.partialSince != null && now - conn.partialSince > this.partialLineTimeoutMs) {
        this.rejections.reject('control_connection_closed', 'local', 'incomplete_line', { bytes: conn.buffered.length }, 'control connection sent part of a line and stalled; closing it')
        this.close(conn, { code: ErrorCodes.ConnectionClosed, message: `incomplete request: no end of line within ${this.partialLineTimeoutMs} ms; requests are one JSON object per line` })
        continue
      }
      // A request still running with everything sent is a quiet stream, not an idle client.
      const quietStream = conn.inFlight > 0 && conn.socket.writableLength === 0
      if (!quietStream && now - conn.lastProgressAt > this.idleTimeoutMs) {
        this.log.debug({ event: 'control_connection_idle', inFlight: conn.inFlight, unsent: conn.socket.writableLength }, 'closing an idle control connection')
        this.close(conn, { code: ErrorCodes.ConnectionClosed, message: `closing the connection: nothing sent or read for ${this.idleTimeoutMs} ms` })
      }
    }
  }

  /** Ends a connection with an error line after what it is already owed, or cuts it if it does not read. */
  private close (conn: Connection, error: ControlError): void {
    conn.closing = true
    conn.buffered = ''
    conn.inputEnded.abort()
    if (conn.socket.writable && conn.socket.writableLength <= CONTROL_MAX_UNSENT_BYTES) {
      this.linger(conn.socket, error)
    } else {
      conn.socket.destroy()
    }
  }

  /**
   * Sends the error line and ends the connection, reading and dropping what the client still
   * sends so its writes do not fail before it reads the line; cut after CONTROL_CLOSE_LINGER_MS.
   */
  private linger (socket: Socket, error: ControlError): void {
    this.lingering.add(socket)
    socket.end(JSON.stringify({ jsonrpc: JSONRPC_VERSION, id: null, error } satisfies ControlResponse) + '\n')
    socket.removeAllListeners('data')
    socket.on('data', () => {})
    socket.resume()
    const timer = setTimeout(() => { socket.destroy() }, CONTROL_CLOSE_LINGER_MS)
    timer.unref()
    socket.once('close', () => {
      clearTimeout(timer)
      this.lingering.delete(socket)
    })
  }

  /** Queues one message; returns its size in bytes. */
  private send (conn: Connection, message: object): number {
    const socket = conn.socket
    if (conn.closing || !socket.writable) return 0
    if (socket.writableLength > CONTROL_MAX_UNREAD_BYTES) {
      this.rejections.reject('control_connection_closed', 'local', 'not_reading', { unsent: socket.writableLength }, 'control client is not reading its answers; closing the connection')
      this.close(conn, { code: ErrorCodes.ConnectionClosed, message: `closing the connection: more than ${CONTROL_MAX_UNREAD_BYTES} bytes unread` })
      return 0
    }
    // Answers produced in the same tick leave in one write.
    if (socket.writableCorked === 0) {
      socket.cork()
      process.nextTick(() => { socket.uncork() })
    }
    // Bytes, not a string: the unsent count (writableLength) is then in bytes.
    const bytes = Buffer.from(JSON.stringify(message) + '\n')
    socket.write(bytes)
    return bytes.length
  }

  private dispatch (conn: Connection, line: string): void {
    let request: unknown
    try {
      request = JSON.parse(line)
    } catch (err) {
      this.send(conn, { jsonrpc: JSONRPC_VERSION, id: null, error: { code: ErrorCodes.ParseError, message: `request is not valid JSON: ${(err as Error).message}` } })
      return
    }
    const req = request as { jsonrpc?: unknown, id?: unknown, method?: unknown, params?: unknown }
    const isObject = req != null && typeof req === 'object' && !Array.isArray(req)
    // JSON-RPC 2.0: a request without an id is a notification; nothing is sent back for it.
    const notification = isObject && !Object.hasOwn(req, 'id')
    const id = isObject && (typeof req.id === 'number' || typeof req.id === 'string') ? req.id : null
    const fail = (error: ControlError): void => { if (!notification) this.send(conn, { jsonrpc: JSONRPC_VERSION, id, error } satisfies ControlResponse) }
    if (!isObject || typeof req.method !== 'string' || (!notification && id == null)) {
      // Not a request at all, so not a notification either: answered with the id if there is one.
      this.send(conn, { jsonrpc: JSONRPC_VERSION, id, error: { code: ErrorCodes.InvalidRequest, message: 'expected {"jsonrpc":"2.0","id":<number|string>,"method":<string>,"params":<object>} (without "id": a notification, not answered)' } })
      return
    }
    const name = req.method
    const method = Object.hasOwn(this.methods, name) ? this.methods[name] : undefined
    if (method == null) {
      fail({ code: ErrorCodes.MethodNotFound, message: `unknown method "${name}"; available: ${Object.keys(this.methods).join(', ')}` })
      return
    }
    let params: unknown
    try {
      params = method.params(req.params ?? {})
    } catch (err) {
      if (err instanceof UsageError) fail({ code: ErrorCodes.InvalidParams, message: err.message })
      else this.failInternal(name, err, fail)
      return
    }
    const owed = this.answerEstimate(name)
    conn.inFlight++
    conn.owed += owed
    const ctx: MethodContext = {
      notify: notification ? () => {} : event => { this.send(conn, { jsonrpc: JSONRPC_VERSION, method: 'event', params: { id, event } }) },
      signal: conn.closed.signal,
      inputEnded: conn.inputEnded.signal
    }
    void method.run(params, ctx).then(
      result => {
        if (notification) return
        const bytes = this.send(conn, { jsonrpc: JSONRPC_VERSION, id, result } satisfies ControlResponse)
        if (bytes > 0) this.learnAnswer(name, bytes)
      },
      err => {
        if (err instanceof UsageError) fail({ code: ErrorCodes.InvalidParams, message: err.message })
        else if (err instanceof SendOutcomeUnknownError) fail({ code: ErrorCodes.OutcomeUnknown, message: err.message, data: { id: err.messageId } })
        else if (err instanceof NoQuorumError) fail({ code: ErrorCodes.NoQuorum, message: err.message, data: { unreachable: err.unreachable } })
        else this.failInternal(name, err, fail)
      }
    ).finally(() => {
      conn.inFlight--
      conn.owed -= owed
      conn.lastProgressAt = Date.now()
      this.pump(conn)
    })
  }

  private failInternal (method: string, err: unknown, fail: (error: ControlError) => void): void {
    this.log.error({ event: 'control_method_failed', method, err: errorMessage(err) }, 'control method failed')
    fail({ code: ErrorCodes.InternalError, message: errorMessage(err) })
  }
}
