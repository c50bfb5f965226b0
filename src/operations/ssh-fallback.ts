import { readFileSync } from 'node:fs'
import ssh2 from 'ssh2'
import { z } from 'zod'
import type { SshConfig } from '../config/schema.js'
import type { Role } from '../config/schema.js'
import {
  CHAIN_ID_PATTERN, DEFAULT_TRUST_CLOCK_SKEW_MS, MAX_PLAUSIBLE_UPTIME_MS, MAX_PROBE_CHAINS, MAX_WIRE_PEER_COUNT, OPERATION_REPORT_MAX_CHECKS,
  OPERATION_REPORT_MAX_ISSUES, OPERATION_REPORT_MAX_TEXT, OPERATION_REPORT_MAX_UPTIME_CHARS, SSH_FALLBACK_MAX_OUTPUT_BYTES
} from '../constants.js'
import { ProtocolError, TimeoutError, UnreachableError } from '../errors.js'
import { MAX_DATE_MS } from '../mesh/wire-bounds.js'
import { CHECK_STATES, type NodeReport } from './report.js'

// ssh2 is CommonJS: take its exports from the default import.
const { Client, utils } = ssh2

const reportSchema = z.object({
  node: z.string(),
  role: z.enum(['genesis', 'follower']),
  status: z.enum(['online', 'degraded']),
  block_height: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable(),
  mempool_size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable(),
  p2p_connections: z.number().int().nonnegative().max(MAX_WIRE_PEER_COUNT),
  service_uptime: z.string().max(OPERATION_REPORT_MAX_UPTIME_CHARS).nullable(),
  // Seconds; a date the status table can print, not ahead of this node's clock.
  last_sync: z.number().int().min(0).refine(v => v * 1000 <= Date.now() + DEFAULT_TRUST_CLOCK_SKEW_MS, 'last_sync is in the future').nullable(),
  issues: z.array(z.string().max(OPERATION_REPORT_MAX_TEXT)).max(OPERATION_REPORT_MAX_ISSUES),
  checks: z.array(z.object({ name: z.string().max(64), ok: z.boolean(), detail: z.string().max(OPERATION_REPORT_MAX_TEXT), state: z.enum(CHECK_STATES).optional().catch(undefined) })).max(OPERATION_REPORT_MAX_CHECKS),
  daemon_uptime_ms: z.number().nonnegative().max(MAX_PLAUSIBLE_UPTIME_MS),
  probed_at_ms: z.number().min(0).max(MAX_DATE_MS).nullable(),
  // Older daemons print none.
  chains: z.record(z.string().regex(CHAIN_ID_PATTERN), z.object({
    block_height: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable(),
    mempool_size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable(),
    mempool_at_least: z.boolean()
  })).refine(chains => Object.keys(chains).length <= MAX_PROBE_CHAINS, `at most ${MAX_PROBE_CHAINS} chains`).default({})
})

/** The pinned key as the base64 blob of "ssh-ed25519 AAAA... comment". */
function pinnedBlob (hostKey: string): string {
  return hostKey.trim().split(/\s+/)[1] ?? ''
}

/**
 * Asks an unreachable peer for its report over SSH: key authentication only, the host key
 * pinned, one fixed command that runs the peer's own probes. Nothing else uses SSH.
 */
export async function reportOverSsh (node: { name: string, role: Role }, ssh: SshConfig, timeoutMs: number): Promise<NodeReport> {
  const privateKey = readFileSync(ssh.privateKey)
  const parsedKey = utils.parseKey(privateKey)
  if (parsedKey instanceof Error) throw new UnreachableError(`ssh ${ssh.user}@${ssh.host}: cannot read private key ${ssh.privateKey}: ${parsedKey.message}`)
  const expected = pinnedBlob(ssh.hostKey)
  let hostKeyRejected = false
  const output = await new Promise<string>((resolve, reject) => {
    const client = new Client()
    const timer = setTimeout(() => {
      client.end()
      reject(new TimeoutError(`ssh ${ssh.user}@${ssh.host}:${ssh.port}: no answer within ${timeoutMs} ms`))
    }, timeoutMs)
    const fail = (err: Error): void => { clearTimeout(timer); client.end(); reject(err) }
    client.on('ready', () => {
      client.exec(ssh.command, (err, stream) => {
        if (err != null) return fail(new UnreachableError(`ssh ${ssh.host}: ${err.message}`))
        let out = ''
        let errOut = ''
        stream.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8')
          if (out.length > SSH_FALLBACK_MAX_OUTPUT_BYTES) fail(new ProtocolError(`ssh ${ssh.host}: output over ${SSH_FALLBACK_MAX_OUTPUT_BYTES} bytes`))
        })
        stream.stderr.on('data', (chunk: Buffer) => { errOut += chunk.toString('utf8') })
        stream.on('close', (code: number | null) => {
          clearTimeout(timer)
          client.end()
          if (code !== 0 && out === '') reject(new ProtocolError(`ssh ${ssh.host}: "${ssh.command}" exited ${String(code)}: ${errOut.trim().split('\n').slice(-1)[0] ?? ''}`))
          else resolve(out)
        })
      })
    })
    client.on('error', err => {
      fail(new UnreachableError(hostKeyRejected
        ? `ssh ${ssh.host}:${ssh.port}: host key does not match the pinned key; refused`
        : `ssh ${ssh.user}@${ssh.host}:${ssh.port}: ${err.message}`))
    })
    client.connect({
      host: ssh.host,
      port: ssh.port,
      username: ssh.user,
      privateKey,
      readyTimeout: timeoutMs,
      // Key authentication only: no password, no keyboard-interactive, no agent.
      authHandler: ['publickey'],
      hostVerifier: (key: Buffer) => {
        const ok = key.toString('base64') === expected
        if (!ok) hostKeyRejected = true
        return ok
      }
    })
  })
  let json: unknown
  try {
    json = JSON.parse(output)
  } catch {
    throw new ProtocolError(`ssh ${ssh.host}: "${ssh.command}" did not print a JSON report`)
  }
  const parsed = reportSchema.safeParse(json)
  if (!parsed.success) throw new ProtocolError(`ssh ${ssh.host}: invalid report: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`)
  if (parsed.data.node !== node.name) throw new ProtocolError(`ssh ${ssh.host}: the report is from "${parsed.data.node}", expected "${node.name}"`)
  // `aitbc-mesh probe` runs without the daemon's store: nothing to say about it.
  return { ...parsed.data, role: node.role, store: null }
}
