import { PROBE_HTTP_TIMEOUT_MS } from '../../constants.js'
import { errorMessage } from '../../errors.js'

/** A probe either reads a value or says why it could not. */
export type ProbeResult<T> = { ok: true, value: T } | { ok: false, reason: string }

async function getJson (url: string, timeoutMs: number): Promise<ProbeResult<{ status: number, body: unknown }>> {
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
  } catch (err) {
    const name = (err as Error).name
    if (name === 'TimeoutError' || name === 'AbortError') return { ok: false, reason: `GET ${url} timed out after ${timeoutMs} ms` }
    return { ok: false, reason: `GET ${url} failed: ${errorMessage(err)}` }
  }
  const text = await res.text().catch(() => '')
  let body: unknown = null
  if (text !== '') {
    try {
      body = JSON.parse(text)
    } catch {
      if (res.ok) return { ok: false, reason: `GET ${url} returned ${res.status} with a body that is not JSON` }
    }
  }
  return { ok: true, value: { status: res.status, body } }
}

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** The AITBC blockchain RPC: GET /rpc/head, /rpc/mempool?limit=N, /health. */
export class BlockchainRpc {
  constructor (readonly baseUrl: string, private readonly timeoutMs = PROBE_HTTP_TIMEOUT_MS) {}

  async head (): Promise<ProbeResult<number>> {
    const url = `${this.baseUrl}/rpc/head`
    const res = await getJson(url, this.timeoutMs)
    if (!res.ok) return res
    if (res.value.status === 404) return { ok: false, reason: `no block yet (GET ${url} returned 404)` }
    if (res.value.status !== 200) return { ok: false, reason: `GET ${url} returned HTTP ${res.value.status}` }
    const height = (res.value.body as { height?: unknown } | null)?.height
    if (!isCount(height)) return { ok: false, reason: `GET ${url} returned no integer "height"` }
    return { ok: true, value: height }
  }

  async mempoolSize (limit: number): Promise<ProbeResult<number>> {
    const url = `${this.baseUrl}/rpc/mempool?limit=${limit}`
    const res = await getJson(url, this.timeoutMs)
    if (!res.ok) return res
    if (res.value.status !== 200) return { ok: false, reason: `GET ${url} returned HTTP ${res.value.status}` }
    const count = (res.value.body as { count?: unknown } | null)?.count
    if (!isCount(count)) return { ok: false, reason: `GET ${url} returned no integer "count"` }
    return { ok: true, value: count }
  }

  async health (): Promise<ProbeResult<string>> {
    const url = `${this.baseUrl}/health`
    const res = await getJson(url, this.timeoutMs)
    if (!res.ok) return res
    const status = (res.value.body as { status?: unknown } | null)?.status
    if (res.value.status !== 200) return { ok: false, reason: `GET ${url} returned HTTP ${res.value.status}${typeof status === 'string' ? ` (status "${status}")` : ''}` }
    if (typeof status !== 'string') return { ok: false, reason: `GET ${url} returned no "status"` }
    if (!['ok', 'healthy', 'up'].includes(status.toLowerCase())) return { ok: false, reason: `GET ${url} reports status "${status}"` }
    return { ok: true, value: status }
  }
}
