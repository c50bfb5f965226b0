import { EXPORT_MAX_RESPONSE_BYTES, EXPORT_RETRY_AFTER_DEFAULT_MS, EXPORT_RETRY_AFTER_MAX_MS } from '../constants.js'
import { errorMessage } from '../errors.js'

/** The coordinator could not be asked: refused or reset connection, timeout, or an unreadable answer. */
export class CoordinatorUnreachable extends Error {
  override name = 'CoordinatorUnreachable'
  constructor (readonly reason: 'timeout' | 'connection' | 'response', message: string) {
    super(message)
  }
}

export interface CoordinatorAnswer {
  status: number
  /** The JSON body, or undefined when there was none or it was not JSON. */
  body: unknown
  /** For a 429: how long the server asks us to wait (Retry-After, bounded). */
  retryAfterMs?: number
}

/** Retry-After as seconds or an HTTP date, bounded; the default when absent or unreadable. */
export function retryAfterMs (header: string | null, now = Date.now()): number {
  if (header == null || header.trim() === '') return EXPORT_RETRY_AFTER_DEFAULT_MS
  const text = header.trim()
  let ms: number
  if (/^\d+$/.test(text)) ms = Number(text) * 1000
  else {
    // An HTTP date names its day and month; Date.parse would also take "-5" as a year.
    const at = /^[A-Za-z]{3}, /.test(text) ? Date.parse(text) : NaN
    if (Number.isNaN(at)) return EXPORT_RETRY_AFTER_DEFAULT_MS
    ms = at - now
  }
  return Math.min(EXPORT_RETRY_AFTER_MAX_MS, Math.max(0, ms))
}

/** JSON over HTTP to the coordinator's API; every request has its own timeout and is cancelled by `signal`. */
export class CoordinatorClient {
  constructor (readonly baseUrl: string, private readonly timeoutMs: number, private readonly signal: AbortSignal) {}

  async request (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<CoordinatorAnswer> {
    const url = `${this.baseUrl}${path}`
    let response: Response
    try {
      response = await fetch(url, {
        method,
        headers: body !== undefined ? { 'content-type': 'application/json', accept: 'application/json' } : { accept: 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.any([this.signal, AbortSignal.timeout(this.timeoutMs)]),
        redirect: 'error'
      })
    } catch (err) {
      throw unreachable(err, `${method} ${url}`, this.timeoutMs)
    }
    let text: string
    try {
      text = await readBounded(response)
    } catch (err) {
      throw err instanceof CoordinatorUnreachable ? err : unreachable(err, `${method} ${url} (reading the answer)`, this.timeoutMs)
    }
    let parsed: unknown
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      parsed = undefined
    }
    return {
      status: response.status,
      body: parsed,
      ...(response.status === 429 ? { retryAfterMs: retryAfterMs(response.headers.get('retry-after')) } : {})
    }
  }
}

function unreachable (err: unknown, what: string, timeoutMs: number): CoordinatorUnreachable {
  if (err instanceof Error && err.name === 'TimeoutError') return new CoordinatorUnreachable('timeout', `${what}: no answer within ${timeoutMs} ms`)
  return new CoordinatorUnreachable('connection', `${what}: ${errorMessage(err)}`)
}

async function readBounded (response: Response): Promise<string> {
  const reader = response.body?.getReader()
  if (reader == null) return ''
  const chunks: Uint8Array[] = []
  let bytes = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      bytes += value.byteLength
      if (bytes > EXPORT_MAX_RESPONSE_BYTES) {
        await reader.cancel().catch(() => {})
        throw new CoordinatorUnreachable('response', `answer over ${EXPORT_MAX_RESPONSE_BYTES} bytes`)
      }
      chunks.push(value)
    }
  } finally {
    reader.releaseLock()
  }
  return Buffer.concat(chunks).toString('utf8')
}
