import { existsSync } from 'node:fs'
import { request } from 'node:http'
import { beforeAll, describe, expect, it } from 'vitest'
import { chromium, type Browser } from 'playwright-core'
import { onCleanup, startTestMesh, waitAllOnline, waitFor, type TestMesh } from '../helpers.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const HTTP_PORT = 7071

interface RawResponse { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** One HTTP request with full control over method, headers and body (fetch forbids some of them). */
async function raw (url: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<RawResponse> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, timeout: 5000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('timeout', () => { req.destroy(new Error(`${url}: no answer within 5 s`)) })
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** Prometheus text: the value of the sample with exactly this name and labels, or undefined. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',')
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match == null || match[1] !== name) continue
    const have = (match[2] ?? '').split(/,(?=[a-zA-Z_]\w*=")/).filter(Boolean).sort().join(',')
    if (have === wanted) return Number(match[3])
  }
  return undefined
}

describe('HTTP: /health, /metrics and the live status page on a three-node mesh', () => {
  let t: TestMesh
  const base = new Map<string, string>()
  const url = (node: string, path: string): string => `${base.get(node)!}${path}`

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium package (.ci/run does) or set CHROMIUM_PATH`)
    t = await startTestMesh(3, { extra: (_i, host) => ({ http: `${host}:${HTTP_PORT}` }) })
    t.hosts.forEach((host, i) => base.set(i === 0 ? 'aitbc' : `aitbc${i}`, `http://${host}:${HTTP_PORT}`))
    await waitAllOnline(t.mesh)
  })

  it('/health answers 200 with the node and its store; other methods, paths, hosts and bodies are refused', async () => {
    const res = await fetch(url('aitbc', '/health'))
    expect(res.status).toBe(200)
    const body = await res.json() as { status: string, node: string, store: { ok: boolean, kind: string }, peers: { connected: number, configured: number } }
    expect(body).toMatchObject({ status: 'ok', node: 'aitbc', store: { ok: true, kind: 'embedded' }, peers: { connected: 2, configured: 2 } })
    expect((await fetch(url('aitbc', '/health'), { method: 'HEAD' })).status).toBe(200)

    const post = await raw(url('aitbc', '/health'), { method: 'POST' })
    expect(post.status).toBe(405)
    expect(post.headers.allow).toBe('GET, HEAD')
    expect((await raw(url('aitbc', '/nope'))).status).toBe(404)
    expect((await raw(url('aitbc', '/health'), { body: 'x'.repeat(100), headers: { 'Content-Length': '100' } })).status).toBe(413)
    // A page on another site reaching this port through DNS rebinding names its own host.
    expect((await raw(url('aitbc', '/api/state'), { headers: { Host: 'attacker.example:7071' } })).status).toBe(421)
    // Oversized headers are refused without troubling the daemon.
    expect((await raw(url('aitbc', '/health'), { headers: { 'X-Big': 'y'.repeat(64 * 1024) } })).status).toBe(431)
    expect((await fetch(url('aitbc', '/health'))).status).toBe(200)
  })

  it('/metrics: peers connected, heartbeat age per peer, message counters and receipt latency, operations, libp2p metrics', async () => {
    const before = await (await fetch(url('aitbc', '/metrics'))).text()
    expect(sample(before, 'aitbc_mesh_peers_connected')).toBe(2)
    for (const peer of ['aitbc1', 'aitbc2']) {
      const age = sample(before, 'aitbc_mesh_heartbeat_age_seconds', { node: peer })
      expect(age, `heartbeat age of ${peer}`).toBeDefined()
      expect(age!).toBeGreaterThanOrEqual(0)
      expect(age!).toBeLessThan(5)
      expect(sample(before, 'aitbc_mesh_peer_status', { node: peer, status: 'online' })).toBe(1)
    }
    expect(sample(before, 'aitbc_mesh_store_healthy')).toBe(1)
    expect(sample(before, 'aitbc_mesh_store_errors_total', { operation: 'write' })).toBe(0)
    // libp2p's own metrics and the process metrics come from the same registry.
    expect(before).toMatch(/^libp2p_\w+/m)
    expect(before).toMatch(/^process_resident_memory_bytes \d/m)
    const sent0 = sample(before, 'aitbc_mesh_messages_sent_total') ?? 0
    const delivered0 = sample(before, 'aitbc_mesh_messages_delivered_total') ?? 0
    const receipts0 = sample(before, 'aitbc_mesh_receipt_latency_seconds_count') ?? 0

    const sent = await t.mesh.cli('aitbc', ['send', '--to', 'follower', '--wait', '--timeout', '30', 'metrics check'])
    expect(sent.code, sent.stderr).toBe(0)
    const status = await t.mesh.cli('aitbc', ['status', '--target', 'all', '--json'])
    expect(status.code, status.stderr).toBe(0)

    const after = await (await fetch(url('aitbc', '/metrics'))).text()
    expect(sample(after, 'aitbc_mesh_messages_sent_total')).toBe(sent0 + 2)
    expect(sample(after, 'aitbc_mesh_messages_delivered_total')).toBe(delivered0 + 2)
    expect(sample(after, 'aitbc_mesh_receipt_latency_seconds_count')).toBe(receipts0 + 2)
    expect(sample(after, 'aitbc_mesh_receipt_latency_seconds_bucket', { le: '+Inf' })).toBe(receipts0 + 2)
    expect(sample(after, 'aitbc_mesh_messages_failed_total', { reason: 'expired' })).toBe(0)
    expect(sample(after, 'aitbc_mesh_operations_total', { operation: 'status', result: 'success' })).toBe(1)
  })

  it('the status page shows all three nodes online and the connections, escapes user text, and shows a killed node offline', async () => {
    // User input with markup: it must show as text, never become an element.
    const hostile = '<img id="injected" src="x"> & <b>bold</b>'
    expect((await t.mesh.cli('aitbc', ['send', '--to', 'aitbc1', '--wait', '--timeout', '30', hostile])).code).toBe(0)
    expect((await t.mesh.cli('aitbc1', ['agents', 'register', '--id', 'worker-7', '--type', 'worker', '--capability', '<script>gpu</script>'])).code).toBe(0)

    // Playwright gives each launch a fresh profile of its own.
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
    })
    onCleanup(async () => { await browser.close() })
    const page = await browser.newPage()
    const problems: string[] = []
    const foreign: string[] = []
    page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
    page.on('console', msg => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`) })
    page.on('request', req => { if (!req.url().startsWith(base.get('aitbc')!)) foreign.push(req.url()) })

    const res = await page.goto(url('aitbc', '/'))
    expect(res?.status()).toBe(200)
    expect(res?.headers()['content-security-policy']).toContain("default-src 'self'")

    for (const node of ['aitbc', 'aitbc1', 'aitbc2']) {
      await page.waitForSelector(`#nodes tr[data-node="${node}"][data-status="online"]`, { timeout: 20000 })
    }
    expect(await page.getAttribute('#live', 'data-live')).toBe('true')
    // The full mesh: aitbc's own two connections and aitbc1-aitbc2 from their heartbeats.
    await page.waitForFunction(() => ['aitbc--aitbc1', 'aitbc--aitbc2', 'aitbc1--aitbc2']
      .every(edge => document.querySelector(`#graph line[data-edge="${edge}"]`) != null), undefined, { timeout: 20000 })
    expect(await page.locator('#graph g[data-node]').count()).toBe(3)
    // Block heights from each node's own probes (the stand-in RPCs start at 1000 + index).
    await page.waitForFunction(() => document.querySelector('#nodes tr[data-node="aitbc2"] td:nth-child(4)')?.textContent === '1002', undefined, { timeout: 20000 })

    // The message with its receipt, the markup shown as text.
    const row = page.locator('#messages tr', { hasText: '<img id="injected"' })
    await row.waitFor({ timeout: 20000 })
    expect(await row.locator('td.body').textContent()).toBe(hostile)
    expect(await row.locator('[data-target="aitbc1"]').getAttribute('data-state')).toBe('delivered')
    expect(await page.locator('#injected').count()).toBe(0)
    expect(await page.locator('#messages b').count()).toBe(0)
    // The agent registered on aitbc1 reaches aitbc's page through replication.
    await page.locator('#agents tr[data-agent="worker-7"] td', { hasText: '<script>gpu</script>' }).waitFor({ timeout: 20000 })
    // The status operation from the previous test.
    await page.locator('#operations tr', { hasText: 'status' }).first().waitFor({ timeout: 20000 })
    // Nothing on the page can change anything.
    expect(await page.locator('button, form, input').count()).toBe(0)

    t.mesh.node('aitbc2').process!.kill('SIGKILL')
    await page.waitForSelector('#nodes tr[data-node="aitbc2"][data-status="offline"]', { timeout: 10000 })
    await page.waitForFunction(() => document.querySelector('#graph line[data-edge*="aitbc2"]') == null, undefined, { timeout: 10000 })
    expect(await page.getAttribute('#graph g[data-node="aitbc2"]', 'data-status')).toBe('offline')
    expect(await page.locator('#nodes tr[data-node="aitbc1"]').getAttribute('data-status')).toBe('online')

    expect(problems).toEqual([])
    expect(foreign).toEqual([])
    await browser.close()
  })

  it('a daemon stops promptly on SIGTERM while a status page follows it', async () => {
    const events = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      request(url('aitbc1', '/events'), res => { resolve(res) }).on('error', reject).end()
    })
    expect(events.statusCode).toBe(200)
    expect(events.headers['content-type']).toContain('text/event-stream')
    let received = ''
    events.setEncoding('utf8').on('data', (c: string) => { received += c })
    await waitFor('a first snapshot on /events', () => received.includes('event: state'), 10000)
    const ended = new Promise<void>(resolve => { events.on('close', () => { resolve() }) })
    const started = Date.now()
    expect(await t.mesh.stop('aitbc1')).toBe(0)
    expect(Date.now() - started).toBeLessThan(5000)
    await ended
  })
})
