import { CHAIN_ID_PATTERN, MAX_PROBE_CHAINS, PROBE_HTTP_TIMEOUT_MS, RATE_LIMIT_MAX_RETRY_AFTER_MS } from '../../constants.js'
import { errorMessage } from '../../errors.js'
import { httpGetText, type HttpGetAnswer } from './http-get.js'

/**
 * Why a probe read nothing. `rate-limited`: the RPC answered HTTP 429 (its Retry-After in ms
 * when it sent one); `no-block`: /rpc/head answered 404, the chain has no block yet. Both are
 * states of a healthy node, not failures.
 */
export interface ProbeFailure {
  ok: false
  reason: string
  state?: 'rate-limited' | 'no-block'
  retryAfterMs?: number
}

/** A probe either reads a value or says why it could not. */
export type ProbeResult<T> = { ok: true, value: T } | ProbeFailure

export interface MempoolCount {
  count: number
  /** The count reached the limit asked for: there are at least `count` pending transactions. */
  atLeast: boolean
}

export interface RpcHealth {
  status: string
  /** `supported_chains` of GET /health; null when the RPC does not list them (older releases). */
  supportedChains: string[] | null
}

/**
 * Retry-After as milliseconds from `now`: delay-seconds or an HTTP date; null when absent or
 * unreadable. Capped at RATE_LIMIT_MAX_RETRY_AFTER_MS.
 */
export function parseRetryAfter (value: string | null, now = Date.now()): number | null {
  if (value == null) return null
  const text = value.trim()
  let ms: number
  if (/^\d{1,9}$/.test(text)) ms = Number(text) * 1000
  else {
    const at = Date.parse(text)
    if (!/[a-z]/i.test(text) || Number.isNaN(at)) return null
    ms = Math.max(0, at - now)
  }
  return Math.min(ms, RATE_LIMIT_MAX_RETRY_AFTER_MS)
}

/** The chain ids of a /health body's `supported_chains` (a list, or a comma-separated string), bounded. */
export function parseSupportedChains (value: unknown): string[] | null {
  const list = typeof value === 'string' ? value.split(',').map(s => s.trim()).filter(s => s !== '') : value
  if (!Array.isArray(list)) return null
  const chains: string[] = []
  for (const item of list) {
    if (typeof item === 'string' && CHAIN_ID_PATTERN.test(item) && !chains.includes(item)) chains.push(item)
    if (chains.length === MAX_PROBE_CHAINS) break
  }
  return chains
}

interface HttpAnswer { status: number, body: unknown, retryAfter: string | null }

async function getJson (url: string, timeoutMs: number): Promise<ProbeResult<HttpAnswer>> {
  let res: HttpGetAnswer
  try {
    res = await httpGetText(url, timeoutMs, { accept: 'application/json' })
  } catch (err) {
    const name = (err as Error).name
    if (name === 'TimeoutError' || name === 'AbortError') return { ok: false, reason: `GET ${url} timed out after ${timeoutMs} ms` }
    return { ok: false, reason: `GET ${url} failed: ${errorMessage(err)}` }
  }
  let body: unknown = null
  if (res.text !== '') {
    try {
      body = JSON.parse(res.text)
    } catch {
      if (res.status >= 200 && res.status < 300) return { ok: false, reason: `GET ${url} returned ${res.status} with a body that is not JSON` }
    }
  }
  return { ok: true, value: { status: res.status, body, retryAfter: res.retryAfter } }
}

function rateLimited (url: string, answer: HttpAnswer): ProbeFailure {
  const retryAfterMs = parseRetryAfter(answer.retryAfter)
  return {
    ok: false,
    state: 'rate-limited',
    reason: `GET ${url} returned HTTP 429 (rate limit)${retryAfterMs != null ? `, Retry-After ${Math.ceil(retryAfterMs / 1000)} s` : ''}`,
    ...(retryAfterMs != null ? { retryAfterMs } : {})
  }
}

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/**
 * The AITBC blockchain RPC: GET /rpc/head and /rpc/mempool (each for one chain, `chain_id`),
 * /health. Every read is one call; the caller decides how often (the RPC limits calls per client
 * address and handler).
 */
export class BlockchainRpc {
  constructor (readonly baseUrl: string, private readonly timeoutMs = PROBE_HTTP_TIMEOUT_MS) {}

  private url (path: string, params: Record<string, string | number | undefined>): string {
    const query = Object.entries(params).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&')
    return `${this.baseUrl}${path}${query !== '' ? `?${query}` : ''}`
  }

  /** The head height of `chainId` (without it, the RPC's default chain). */
  async head (chainId?: string): Promise<ProbeResult<number>> {
    const url = this.url('/rpc/head', { chain_id: chainId })
    const res = await getJson(url, this.timeoutMs)
    if (!res.ok) return res
    if (res.value.status === 429) return rateLimited(url, res.value)
    if (res.value.status === 404) return { ok: false, state: 'no-block', reason: `no block yet${chainId != null ? ` on ${chainId}` : ''} (GET ${url} returned 404)` }
    if (res.value.status !== 200) return { ok: false, reason: `GET ${url} returned HTTP ${res.value.status}` }
    const height = (res.value.body as { height?: unknown } | null)?.height
    if (!isCount(height)) return { ok: false, reason: `GET ${url} returned no integer "height"` }
    return { ok: true, value: height }
  }

  /**
   * Pending transactions of `chainId`, counted by the RPC over at most `limit` of them (it has
   * no count-only call). Without a chain id the RPC counts chain "" (always 0 on today's nodes).
   */
  async mempoolSize (chainId: string | undefined, limit: number): Promise<ProbeResult<MempoolCount>> {
    const url = this.url('/rpc/mempool', { chain_id: chainId, limit })
    const res = await getJson(url, this.timeoutMs)
    if (!res.ok) return res
    if (res.value.status === 429) return rateLimited(url, res.value)
    if (res.value.status !== 200) return { ok: false, reason: `GET ${url} returned HTTP ${res.value.status}` }
    const count = (res.value.body as { count?: unknown } | null)?.count
    if (!isCount(count)) return { ok: false, reason: `GET ${url} returned no integer "count"` }
    return { ok: true, value: { count, atLeast: count >= limit } }
  }

  async health (): Promise<ProbeResult<RpcHealth>> {
    const url = `${this.baseUrl}/health`
    const res = await getJson(url, this.timeoutMs)
    if (!res.ok) return res
    if (res.value.status === 429) return rateLimited(url, res.value)
    const body = res.value.body as { status?: unknown, supported_chains?: unknown } | null
    const status = body?.status
    if (res.value.status !== 200) return { ok: false, reason: `GET ${url} returned HTTP ${res.value.status}${typeof status === 'string' ? ` (status "${status.slice(0, 64)}")` : ''}` }
    if (typeof status !== 'string') return { ok: false, reason: `GET ${url} returned no "status"` }
    if (!['ok', 'healthy', 'up'].includes(status.toLowerCase())) return { ok: false, reason: `GET ${url} reports status "${status.slice(0, 64)}"` }
    return { ok: true, value: { status, supportedChains: parseSupportedChains(body?.supported_chains) } }
  }
}
