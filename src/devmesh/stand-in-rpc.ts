import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface StandInRpcState {
  height: number
  mempool: number
  healthy: boolean
  /** HTTP status of /rpc/head; 404 is what AITBC answers before the first block. */
  headStatus: number
}

/**
 * A stand-in for an AITBC blockchain node's RPC (GET /rpc/head, /rpc/mempool, /health), for the
 * local demo mesh and the tests. Its state can be changed while it runs.
 */
export class StandInRpc {
  readonly state: StandInRpcState
  private server?: Server
  requests = 0
  /** Height that POST /rpc/force-sync jumps to (a catch-up); null: the endpoint answers 404. */
  catchUpTo: number | null = null

  constructor (initial: Partial<StandInRpcState> = {}) {
    this.state = { height: 1000, mempool: 0, healthy: true, headStatus: 200, ...initial }
  }

  async start (host: string, port = 0): Promise<string> {
    const server = createServer((req, res) => {
      this.requests++
      const url = new URL(req.url ?? '/', 'http://stand-in')
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(body))
      }
      if (req.method === 'POST' && url.pathname === '/rpc/force-sync') {
        if (this.catchUpTo == null) return send(404, { detail: 'Not Found' })
        this.state.height = Math.max(this.state.height, this.catchUpTo)
        return send(200, { success: true, height: this.state.height })
      }
      if (req.method !== 'GET') return send(405, { detail: 'method not allowed' })
      if (url.pathname === '/rpc/head') {
        if (this.state.headStatus !== 200) return send(this.state.headStatus, { detail: 'Chain has no blocks' })
        return send(200, { height: this.state.height, hash: `0x${this.state.height.toString(16).padStart(64, '0')}`, timestamp: new Date().toISOString(), tx_count: 0 })
      }
      if (url.pathname === '/rpc/mempool') {
        const limit = Number(url.searchParams.get('limit') ?? '50')
        const count = Math.min(this.state.mempool, limit)
        return send(200, { success: true, transactions: [], count })
      }
      if (url.pathname === '/health') {
        return send(this.state.healthy ? 200 : 503, { status: this.state.healthy ? 'ok' : 'error', supported_chains: ['ait-devnet'], proposer_id: 'stand-in' })
      }
      send(404, { detail: 'Not Found' })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { resolve() })
    })
    this.server = server
    const addr = server.address() as AddressInfo
    return `http://${host}:${addr.port}`
  }

  async stop (): Promise<void> {
    const server = this.server
    delete this.server
    if (server == null) return
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => { resolve() }))
  }
}
