import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { AITBC_RPC_RATE_LIMIT_PER_MINUTE } from '../constants.js'

export interface StandInChainState {
  height: number
  /** Pending transactions of this chain. */
  mempool: number
  /** HTTP status of /rpc/head for this chain; 404 is what AITBC answers before the first block. */
  headStatus: number
}

export interface StandInRpcState extends StandInChainState {
  /** The first chain's id (height, mempool and headStatus above are its values). */
  chainId: string
  /** More chains this node serves, by id. */
  otherChains: Record<string, StandInChainState>
  healthy: boolean
  /** /health omits supported_chains, as releases before multi-chain did. */
  omitSupportedChains: boolean
}

export interface StandInRateLimit {
  /** Calls allowed per client address and handler (path) within `windowMs`; AITBC: 200 a minute. */
  limit: number
  windowMs: number
}

/** One request the stand-in received. */
export interface StandInRequest {
  at: number
  method: string
  path: string
  client: string
  chainId: string | null
  limit: number | null
  status: number
}

/** Requests kept for `requestsTo`; tests look at the last few hundred. */
const REQUEST_LOG_MAX = 20_000

/**
 * A stand-in for an AITBC blockchain node's RPC, for the local demo mesh, the benchmarks and the
 * tests. It behaves as today's RPC where the probes depend on it:
 * - GET /rpc/head?chain_id=C: the chain's head; without chain_id the first chain; 404
 *   "no blocks yet" before the first block (headStatus 404) and for a chain it does not serve;
 * - GET /rpc/mempool?chain_id=C&limit=N: pending transactions of chain C only (without
 *   chain_id the RPC counts chain "": 0), at most N of them (default 100), each with a payload;
 * - GET /health: status and supported_chains;
 * - about 200 calls a minute per client address and handler, then HTTP 429 with Retry-After
 *   (`rateLimit`, smaller for tests; `forceRateLimit` answers 429 to everything);
 * - POST /rpc/force-sync: refuses a body without an admin signature with 422 (the stand-in
 *   cannot verify one; a body with a signature jumps to `catchUpTo`).
 * State can be changed while it runs; every request is counted and logged.
 */
export class StandInRpc {
  readonly state: StandInRpcState
  private server?: Server
  requests = 0
  /** Height that a signed POST /rpc/force-sync jumps to. */
  catchUpTo: number | null = null
  rateLimit: StandInRateLimit | null
  /** Answer every call with 429 and this Retry-After (seconds; null: no header). */
  forceRateLimit: { retryAfterS: number | null } | null = null
  readonly log: StandInRequest[] = []
  private readonly windows = new Map<string, number[]>()

  constructor (initial: Partial<StandInRpcState> = {}, opts: { rateLimit?: StandInRateLimit | null } = {}) {
    this.state = { height: 1000, mempool: 0, healthy: true, headStatus: 200, chainId: 'ait-devnet', otherChains: {}, omitSupportedChains: false, ...initial }
    this.rateLimit = opts.rateLimit === undefined ? { limit: AITBC_RPC_RATE_LIMIT_PER_MINUTE, windowMs: 60_000 } : opts.rateLimit
  }

  /** Requests to `path` (all methods) received at or after `since`. */
  requestsTo (path: string, since = 0): StandInRequest[] {
    return this.log.filter(r => r.path === path && r.at >= since)
  }

  private chain (id: string | null): StandInChainState | undefined {
    if (id == null || id === this.state.chainId) return this.state
    return this.state.otherChains[id]
  }

  /** Seconds until a call is allowed again, or null when this call is within the limit (and counted). */
  private limited (client: string, path: string, now: number): number | null {
    if (this.forceRateLimit != null) return this.forceRateLimit.retryAfterS ?? -1
    const limit = this.rateLimit
    if (limit == null) return null
    const key = `${client} ${path}`
    const calls = (this.windows.get(key) ?? []).filter(t => t > now - limit.windowMs)
    if (calls.length >= limit.limit) {
      this.windows.set(key, calls)
      return Math.max(1, Math.ceil((calls[0]! + limit.windowMs - now) / 1000))
    }
    calls.push(now)
    this.windows.set(key, calls)
    return null
  }

  async start (host: string, port = 0): Promise<string> {
    const server = createServer((req, res) => {
      void this.handle(req).then(({ status, body, headers }) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers })
        res.end(JSON.stringify(body))
      }, () => {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end('{"detail":"Internal server error"}')
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { resolve() })
    })
    this.server = server
    const addr = server.address() as AddressInfo
    return `http://${host}:${addr.port}`
  }

  private async handle (req: IncomingMessage): Promise<{ status: number, body: unknown, headers?: Record<string, string> }> {
    this.requests++
    const now = Date.now()
    const url = new URL(req.url ?? '/', 'http://stand-in')
    const chainId = url.searchParams.get('chain_id')
    const limitParam = url.searchParams.get('limit')
    const entry: StandInRequest = { at: now, method: req.method ?? '', path: url.pathname, client: req.socket.remoteAddress ?? 'unknown', chainId, limit: limitParam != null ? Number(limitParam) : null, status: 0 }
    if (this.log.length >= REQUEST_LOG_MAX) this.log.splice(0, this.log.length - REQUEST_LOG_MAX + 1)
    this.log.push(entry)
    const answer = async (): Promise<{ status: number, body: unknown, headers?: Record<string, string> }> => {
      const retryAfter = this.limited(entry.client, url.pathname, now)
      if (retryAfter != null) return { status: 429, body: { detail: 'Rate limit exceeded' }, ...(retryAfter >= 0 ? { headers: { 'retry-after': String(retryAfter) } } : {}) }
      if (req.method === 'POST' && url.pathname === '/rpc/force-sync') {
        const body = await readBody(req)
        const signature = (body as { signature?: unknown } | null)?.signature
        if (typeof signature !== 'string' || signature === '') {
          return { status: 422, body: { detail: [{ type: 'missing', loc: ['body', 'signature'], msg: 'Field required: force-sync needs an admin-signed body' }] } }
        }
        return this.catchUp()
      }
      if (req.method !== 'GET') return { status: 405, body: { detail: 'Method Not Allowed' } }
      if (url.pathname === '/rpc/head') {
        const chain = this.chain(chainId)
        if (chain == null || chain.headStatus === 404) return { status: 404, body: { detail: 'no blocks yet' } }
        if (chain.headStatus !== 200) return { status: chain.headStatus, body: { detail: 'Internal server error' } }
        return { status: 200, body: { height: chain.height, hash: `0x${chain.height.toString(16).padStart(64, '0')}`, timestamp: new Date().toISOString(), tx_count: 0 } }
      }
      if (url.pathname === '/rpc/mempool') {
        const limit = limitParam != null && /^\d+$/.test(limitParam) ? Number(limitParam) : 100
        // Without chain_id the RPC looks at chain "", where nothing is ever pending.
        const pending = chainId == null || chainId === '' ? 0 : this.chain(chainId)?.mempool ?? 0
        const count = Math.min(pending, limit)
        const transactions = Array.from({ length: count }, (_, i) => ({ tx_hash: `0x${i.toString(16).padStart(64, '0')}`, chain_id: chainId, from: 'ait1sender', to: 'ait1recipient', amount: 1, fee: 36, nonce: i, payload: {} }))
        return { status: 200, body: { success: true, transactions, count } }
      }
      if (url.pathname === '/health') {
        const chains = [this.state.chainId, ...Object.keys(this.state.otherChains)]
        return {
          status: this.state.healthy ? 200 : 503,
          body: { status: this.state.healthy ? 'ok' : 'error', ...(this.state.omitSupportedChains ? {} : { supported_chains: chains }), proposer_id: 'stand-in' }
        }
      }
      return { status: 404, body: { detail: 'Not Found' } }
    }
    const result = await answer()
    entry.status = result.status
    return result
  }

  private catchUp (): { status: number, body: unknown } {
    if (this.catchUpTo == null) return { status: 200, body: { success: true, height: this.state.height } }
    this.state.height = Math.max(this.state.height, this.catchUpTo)
    return { status: 200, body: { success: true, height: this.state.height } }
  }

  async stop (): Promise<void> {
    const server = this.server
    delete this.server
    if (server == null) return
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => { resolve() }))
  }
}

async function readBody (req: IncomingMessage): Promise<unknown> {
  let text = ''
  for await (const chunk of req) {
    text += String(chunk)
    if (text.length > 64 * 1024) return null
  }
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}
