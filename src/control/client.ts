import { createConnection, type Socket } from 'node:net'
import { ErrorCodes, JSONRPC_VERSION, type ControlNotification, type ControlResponse } from './protocol.js'

/** No daemon answers on the socket (not running, wrong path, no permission): CLI exit code 3. */
export class DaemonUnreachableError extends Error {
  override name = 'DaemonUnreachableError'
}

/** The daemon refused the connection: as many control connections as it allows are open. CLI exit code 3. */
export class DaemonBusyError extends DaemonUnreachableError {
  override name = 'DaemonBusyError'
}

/** The daemon answered with a JSON-RPC error. */
export class ControlCallError extends Error {
  override name = 'ControlCallError'
  constructor (readonly code: number, message: string, readonly data?: unknown) {
    super(message)
  }

  /** The outcome is not known yet (a send whose store write went unanswered): CLI exit code 4. */
  get isOutcomeUnknown (): boolean {
    return this.code === ErrorCodes.OutcomeUnknown
  }

  /** Destructive work refused for want of quorum: CLI exit code 5. */
  get isNoQuorum (): boolean {
    return this.code === ErrorCodes.NoQuorum
  }

  /** The daemon refused the input (bad params, unknown method): CLI exit code 2. */
  get isUsageError (): boolean {
    return this.code === ErrorCodes.InvalidParams || this.code === ErrorCodes.MethodNotFound ||
      this.code === ErrorCodes.InvalidRequest || this.code === ErrorCodes.ParseError || this.code === ErrorCodes.RequestTooLarge
  }
}

export interface CallOptions {
  timeoutMs?: number
  onEvent?: (event: unknown) => void
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  onEvent?: (event: unknown) => void
  timer?: NodeJS.Timeout
}

/** A connection to the daemon's control socket; several calls may be in flight at once. */
export class ControlClient {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private buffered = ''
  /** Why the connection is over, once it is: later calls fail with it at once. */
  private closedWith?: Error

  private constructor (private readonly socket: Socket, readonly path: string) {
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { this.onData(chunk) })
    socket.on('close', () => { this.end(new DaemonUnreachableError(`the daemon closed the control socket ${path}`)) })
    socket.on('error', err => { this.end(new DaemonUnreachableError(`control socket ${path}: ${err.message}`)) })
  }

  static async connect (path: string, timeoutMs = 2000): Promise<ControlClient> {
    return await new Promise((resolve, reject) => {
      const socket = createConnection(path)
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new DaemonUnreachableError(`no answer from the daemon on ${path} within ${timeoutMs} ms`))
      }, timeoutMs)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(new ControlClient(socket, path))
      })
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        const why = err.code === 'ENOENT'
          ? 'no such socket (is the daemon running? see `aitbc-mesh daemon`)'
          : err.code === 'ECONNREFUSED' ? 'connection refused (the daemon is not running)'
            : err.code === 'EACCES' ? 'permission denied (run as the daemon user or a member of its group)'
              : err.message
        reject(new DaemonUnreachableError(`cannot reach the daemon on ${path}: ${why}`))
      })
    })
  }

  async call<T = unknown> (method: string, params?: unknown, options: CallOptions = {}): Promise<T> {
    const id = this.nextId++
    if (this.closedWith != null) throw this.closedWith
    return await new Promise<T>((resolve, reject) => {
      const entry: Pending = { resolve: resolve as (v: unknown) => void, reject, ...(options.onEvent != null ? { onEvent: options.onEvent } : {}) }
      if (options.timeoutMs != null) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id)
          reject(new DaemonUnreachableError(`the daemon did not answer "${method}" within ${options.timeoutMs} ms`))
        }, options.timeoutMs)
      }
      this.pending.set(id, entry)
      // Calls made in the same tick leave in one write.
      if (this.socket.writableCorked === 0) {
        this.socket.cork()
        process.nextTick(() => { this.socket.uncork() })
      }
      this.socket.write(JSON.stringify({ jsonrpc: JSONRPC_VERSION, id, method, params: params ?? {} }) + '\n')
    })
  }

  close (): void {
    this.socket.end()
    this.socket.destroy()
  }

  private onData (chunk: string): void {
    // Search only the new bytes for a line end: a long line arrives in many chunks.
    let newline = chunk.indexOf('\n')
    if (newline >= 0) newline += this.buffered.length
    this.buffered += chunk
    // Walk the buffer with an index: slicing it per line would be quadratic in a large chunk.
    let start = 0
    for (; newline >= 0; newline = this.buffered.indexOf('\n', start)) {
      const line = this.buffered.slice(start, newline)
      start = newline + 1
      if (line.trim() === '') continue
      let message: ControlResponse | ControlNotification
      try {
        message = JSON.parse(line)
      } catch {
        continue
      }
      if ('method' in message && message.method === 'event') {
        const id = message.params?.id
        if (typeof id === 'number') this.pending.get(id)?.onEvent?.(message.params.event)
        continue
      }
      const response = message as ControlResponse
      if (typeof response.id !== 'number') {
        const error = response.error
        if (error == null) continue
        // Sent just before the daemon closes the connection: every call on it fails with this.
        if (error.code === ErrorCodes.TooManyConnections) this.end(new DaemonBusyError(`the daemon on ${this.path} refused the connection: ${error.message}`))
        else if (error.code === ErrorCodes.ConnectionClosed) this.end(new DaemonUnreachableError(`the daemon on ${this.path} closed the connection: ${error.message}`))
        else this.failAll(new ControlCallError(error.code, error.message, error.data))
        continue
      }
      const entry = this.pending.get(response.id)
      if (entry == null) continue
      this.pending.delete(response.id)
      clearTimeout(entry.timer)
      if (response.error != null) entry.reject(new ControlCallError(response.error.code, response.error.message, response.error.data))
      else entry.resolve(response.result)
    }
    this.buffered = this.buffered.slice(start)
  }

  /** The connection is over: the first reason given is the one every pending and later call gets. */
  private end (reason: Error): void {
    this.closedWith ??= reason
    this.failAll(this.closedWith)
  }

  private failAll (err: Error): void {
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer)
      entry.reject(err)
      this.pending.delete(id)
    }
  }
}
