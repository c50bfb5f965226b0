import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import {
  HTTP_HANDLER_TIMEOUT_MS, HTTP_HEADERS_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS, HTTP_MAX_CONNECTIONS, HTTP_MAX_EVENT_STREAMS,
  HTTP_MAX_HEADER_BYTES, HTTP_REQUEST_TIMEOUT_MS
} from '../constants.js'
import { errorMessage, withTimeout } from '../errors.js'
import type { Liveness, PeerState } from '../mesh/peer-table.js'
import type { DurabilityView } from '../store/durability.js'
import { http } from '../node-http.js'
import { PrometheusMeshMetrics } from './metrics.js'
import { loadPage, PAGE_FILES, type PageAsset } from './page.js'
import { buildSnapshot, type StatusSource } from './status.js'

export interface HttpServiceInit {
  /** A loopback address (the config refuses others). */
  address: { host: string, port: number }
  node: { name: string, role: string }
  log: Logger
}

export interface HttpSource extends StatusSource {
  liveness: (state: PeerState, now: number) => Liveness
}

/** An event stream client whose unsent data grows past this is too slow and is dropped. */
const MAX_STREAM_BACKLOG_BYTES = 1024 * 1024

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store'
}

const ROUTES = new Set([...Object.keys(PAGE_FILES), '/metrics', '/health', '/api/state', '/events'])

/**
 * A Host header naming anything but a loopback address is refused, so a web page on another
 * site cannot read the status through DNS rebinding. Any port is fine (SSH tunnels).
 */
function loopbackHost (host: string | undefined): boolean {
  if (host == null) return false
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '')
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

/**
 * The daemon's HTTP side, on a loopback address: Prometheus metrics (`/metrics`), a health check
 * for load balancers and systemd (`/health`), and a read-only status page (`/`) that follows the
 * mesh live over Server-Sent Events (`/events`; `/api/state` is the same snapshot once).
 */
export class HttpService {
  readonly metrics: PrometheusMeshMetrics
  private server?: Server
  private source?: HttpSource
  private assets = new Map<string, PageAsset>()
  private readonly streams = new Set<ServerResponse>()
  private pushTimer?: NodeJS.Timeout
  private pushing = false
  private stopping = false

  constructor (private readonly init: HttpServiceInit) {
    this.metrics = new PrometheusMeshMetrics(init.node)
  }

  get url (): string {
    const { host } = this.init.address
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.port}`
  }

  /** The port listened on (the configured one; the bound one when 0 was given). */
  get port (): number {
    const bound = this.server?.address()
    return bound != null && typeof bound === 'object' ? bound.port : this.init.address.port
  }

  /** libp2p's own metrics, for createLibp2p, registered in the registry `/metrics` serves. */
  libp2pMetrics (): ReturnType<PrometheusMeshMetrics['libp2pMetrics']> {
    return this.metrics.libp2pMetrics()
  }

  async start (source: HttpSource): Promise<void> {
    this.source = source
    this.metrics.attach({ peers: source.peers, liveness: source.liveness, storeHealthy: () => source.storeHealth().ok, storeDurability: () => source.storeDurability().view, meshView: source.meshView })
    this.assets = loadPage()
    const server = http.createServer({
      maxHeaderSize: HTTP_MAX_HEADER_BYTES,
      headersTimeout: HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: HTTP_KEEP_ALIVE_TIMEOUT_MS
    }, (req, res) => { void this.handle(req, res) })
    server.maxConnections = HTTP_MAX_CONNECTIONS
    // Malformed or oversized requests and slow headers: answered and closed, never thrown.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      else socket.destroy()
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', err => { reject(new Error(`http: cannot listen on ${this.init.address.host}:${this.init.address.port}: ${errorMessage(err)}`)) })
      server.listen(this.init.address.port, this.init.address.host, () => { resolve() })
    })
    server.on('error', err => { this.init.log.warn({ event: 'http_error', err: errorMessage(err) }, 'http server error') })
    this.server = server
    this.init.log.info({ event: 'http_listening', url: this.url }, 'serving metrics, health and the status page')
  }

  /** Ends event streams and every connection, idle or not, so stopping never waits on a client. */
  async stop (): Promise<void> {
    this.stopping = true
    clearInterval(this.pushTimer)
    for (const res of this.streams) res.end()
    this.streams.clear()
    const server = this.server
    if (server == null) return
    delete this.server
    const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
    server.closeAllConnections()
    await closed
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value)
      const path = (req.url ?? '/').split('?')[0] ?? '/'
      if (!loopbackHost(req.headers.host)) { this.send(req, res, 421, 'text/plain; charset=utf-8', 'unexpected Host header: this server answers only to loopback names\n'); return }
      if (!ROUTES.has(path)) { this.send(req, res, 404, 'text/plain; charset=utf-8', 'not found\n'); return }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD')
        this.send(req, res, 405, 'text/plain; charset=utf-8', 'method not allowed: this server is read-only (GET, HEAD)\n')
        return
      }
      const length = req.headers['content-length']
      if ((length != null && length !== '0') || req.headers['transfer-encoding'] != null) {
        res.setHeader('Connection', 'close')
        this.send(req, res, 413, 'text/plain; charset=utf-8', 'no request body is accepted\n')
        return
      }
      const asset = this.assets.get(path)
      if (asset != null) { this.send(req, res, 200, asset.contentType, asset.body, { 'Cache-Control': 'no-cache' }); return }
      if (path === '/metrics') {
        const text = await withTimeout('collecting metrics', this.metrics.text(), HTTP_HANDLER_TIMEOUT_MS)
        this.send(req, res, 200, this.metrics.contentType, text)
      } else if (path === '/health') {
        const health = this.health()
        this.send(req, res, health.status === 'unavailable' ? 503 : 200, 'application/json; charset=utf-8', JSON.stringify(health) + '\n')
      } else if (path === '/api/state') {
        const snapshot = await withTimeout('building the status', buildSnapshot(this.source!), HTTP_HANDLER_TIMEOUT_MS)
        this.send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify(snapshot) + '\n')
      } else {
        this.follow(req, res)
      }
    } catch (err) {
      this.init.log.warn({ event: 'http_request_failed', url: req.url, err: errorMessage(err) }, 'http request failed')
      if (!res.headersSent) this.send(req, res, 500, 'text/plain; charset=utf-8', `internal error: ${errorMessage(err)}\n`)
      else res.destroy()
    }
  }

  private send (req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string | Buffer, headers: Record<string, string> = {}): void {
    const data = typeof body === 'string' ? Buffer.from(body) : body
    res.writeHead(status, { ...headers, 'Content-Type': contentType, 'Content-Length': data.byteLength })
    if (req.method === 'HEAD') res.end()
    else res.end(data)
  }

  /**
   * 200 while the daemon runs and its store is usable: `ok`, or `degraded` with the reasons (a
   * store that can lose acknowledged writes, store.durability: degraded); 503 `unavailable` with
   * the reasons otherwise.
   */
  health (): { status: 'ok' | 'degraded' | 'unavailable', node: string, role: string, uptime_s: number, store: { kind: string, ok: boolean, reason: string | null, durability: DurabilityView }, peers: { connected: number, configured: number }, probes_healthy: boolean, reasons: string[] } {
    const source = this.source!
    const store = source.storeHealth()
    const durability = source.storeDurability()
    const peers = source.peers()
    const reasons: string[] = []
    if (this.stopping) reasons.push('the daemon is stopping')
    if (!store.ok) reasons.push(`store: ${store.reason ?? 'unavailable'}`)
    const unavailable = reasons.length > 0
    if (durability.issue != null) reasons.push(durability.issue)
    return {
      status: unavailable ? 'unavailable' : reasons.length > 0 ? 'degraded' : 'ok',
      node: source.node.name,
      role: source.node.role,
      uptime_s: Math.round((Date.now() - source.startedAt) / 1000),
      store: { kind: source.storeKind, ok: store.ok, reason: store.reason ?? null, durability: durability.view },
      peers: { connected: peers.filter(p => p.connected).length, configured: peers.length },
      probes_healthy: source.localHealth().healthy,
      reasons
    }
  }

  /** Server-Sent Events: a snapshot at once, then one every heartbeat interval. */
  private follow (req: IncomingMessage, res: ServerResponse): void {
    if (this.streams.size >= HTTP_MAX_EVENT_STREAMS) {
      this.send(req, res, 503, 'text/plain; charset=utf-8', `too many status page clients (at most ${HTTP_MAX_EVENT_STREAMS})\n`)
      return
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'X-Accel-Buffering': 'no' })
    if (req.method === 'HEAD') { res.end(); return }
    res.write(`retry: ${Math.max(1000, this.source!.heartbeatIntervalMs)}\n\n`)
    this.streams.add(res)
    res.on('close', () => { this.streams.delete(res) })
    this.pushTimer ??= setInterval(() => { void this.push() }, this.source!.heartbeatIntervalMs)
    void this.push(res)
  }

  /** Builds one snapshot and writes it to `only`, or to every stream; stops the timer when nobody listens. */
  private async push (only?: ServerResponse): Promise<void> {
    if (only == null && this.pushing) return // the last one is still being built
    if (this.streams.size === 0) {
      clearInterval(this.pushTimer)
      delete this.pushTimer
      return
    }
    if (only == null) this.pushing = true
    try {
      const snapshot = await withTimeout('building the status', buildSnapshot(this.source!), HTTP_HANDLER_TIMEOUT_MS)
      const frame = `event: state\ndata: ${JSON.stringify(snapshot)}\n\n`
      for (const res of only != null ? [only] : this.streams) {
        if (res.writableEnded || res.destroyed) continue
        if (res.writableLength > MAX_STREAM_BACKLOG_BYTES) { res.destroy(); continue }
        res.write(frame)
      }
    } catch (err) {
      this.init.log.warn({ event: 'http_status_failed', err: errorMessage(err) }, 'status snapshot failed')
    } finally {
      if (only == null) this.pushing = false
    }
  }
}
