import type { IncomingMessage, RequestOptions } from 'node:http'
import { PROBE_HTTP_MAX_REDIRECTS, PROBE_HTTP_MAX_RESPONSE_BYTES } from '../../constants.js'
import { http, https } from '../../node-http.js'

/**
 * A GET over node:http rather than fetch: fetch loads undici and its WebAssembly HTTP parser,
 * which holds about 25 MiB of resident memory for the life of the daemon, for a probe that reads
 * a few small JSON bodies.
 */

export interface HttpGetAnswer {
  status: number
  text: string
  retryAfter: string | null
}

/** No answer (headers and body) within the time given; `name` matches fetch's AbortSignal.timeout error. */
export class HttpTimeoutError extends Error {
  override name = 'TimeoutError'
}

/** GET `url` and read its body as text; follows redirects as fetch does. Rejects on timeout, connection errors or an oversized body. */
export async function httpGetText (url: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<HttpGetAnswer> {
  const deadline = Date.now() + timeoutMs
  let current = new URL(url)
  for (let hop = 0; ; hop++) {
    const res = await getOnce(current, deadline, timeoutMs, headers)
    const location = res.headers.location
    if (res.status >= 300 && res.status < 400 && res.status !== 304 && location != null) {
      if (hop === PROBE_HTTP_MAX_REDIRECTS) throw new Error(`more than ${PROBE_HTTP_MAX_REDIRECTS} redirects`)
      current = new URL(location, current)
      if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new Error(`redirect to ${current.protocol} is not followed`)
      continue
    }
    const retryAfter = res.headers['retry-after']
    return { status: res.status, text: res.text, retryAfter: typeof retryAfter === 'string' ? retryAfter : null }
  }
}

interface RawAnswer { status: number, headers: IncomingMessage['headers'], text: string }

async function getOnce (url: URL, deadline: number, timeoutMs: number, headers: Record<string, string>): Promise<RawAnswer> {
  const request = url.protocol === 'https:' ? https().request : http.request
  const options: RequestOptions = { method: 'GET', headers }
  return await new Promise<RawAnswer>((resolve, reject) => {
    const req = request(url, options, res => {
      const chunks: Buffer[] = []
      let bytes = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes > PROBE_HTTP_MAX_RESPONSE_BYTES) {
          req.destroy(new Error(`answer over ${PROBE_HTTP_MAX_RESPONSE_BYTES} bytes`))
          return
        }
        chunks.push(chunk)
      })
      res.on('end', () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') })
      })
      res.on('error', fail)
    })
    const timer = setTimeout(() => req.destroy(new HttpTimeoutError(`no answer within ${timeoutMs} ms`)), Math.max(0, deadline - Date.now()))
    function fail (err: Error): void {
      clearTimeout(timer)
      reject(err)
    }
    req.on('error', fail)
    req.end()
  })
}
