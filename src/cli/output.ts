import { ago, list, since, table } from './format.js'

type Json = Record<string, unknown>

export function printId (id: Json): string {
  return [
    `name:    ${String(id.name)}`,
    `role:    ${String(id.role)}`,
    `peer id: ${String(id.peerId)}`,
    `addrs:   ${(id.addrs as string[]).join('\n         ')}`
  ].join('\n')
}

/** One line for the membership view: which side of a partition this node is on. */
export function printMeshView (view: Json | undefined): string {
  if (view == null) return ''
  const reachable = (view.reachable ?? []) as string[]
  const unreachable = (view.unreachable ?? []) as string[]
  const count = `${reachable.length} of ${String(view.configured ?? reachable.length + unreachable.length)} configured nodes reachable`
  return view.quorum === true
    ? `mesh view: quorum, ${count} (since ${String(view.since)})`
    : `mesh view: NO QUORUM, ${count}; unreachable: ${unreachable.join(', ')} (since ${String(view.since)}); destructive work is refused here without --override-quorum`
}

export function printPeers (peers: Json[]): string {
  return table(
    ['NODE', 'ROLE', 'STATUS', 'CONNECTED', 'ADDR', 'LATENCY', 'SINCE', 'LAST HEARTBEAT', 'PEER ID'],
    peers.map(p => [
      `${String(p.name)}${p.self === true ? ' (this node)' : ''}`,
      p.role as string,
      p.status as string,
      p.self === true ? '-' : p.connected === true ? 'yes' : 'no',
      (p.addrs as string[])[0]?.replace(/\/p2p\/.*$/, '') ?? null,
      p.latency_ms == null ? null : `${p.latency_ms as number} ms`,
      since(p.since as string | null),
      p.self === true ? null : ago(p.last_heartbeat_age_ms as number | null) ?? 'never',
      p.peerId as string
    ])
  ) + '\n' + peers.filter(p => p.reason != null).map(p => `${String(p.name)}: ${String(p.reason)}`).join('\n')
}

/** "at least" counts (the probe's limit reached) print as ">=500". */
function mempoolText (size: unknown, atLeast: unknown): string | number | null {
  if (typeof size !== 'number') return null
  return atLeast === true ? `>=${size}` : size
}

/** ok / FAIL, or the check's own state when it is neither (rate-limited, no-block, stale). */
function checkLabel (check: Json): string {
  const state = check.state
  if (typeof state === 'string' && !['ok', 'failed', 'not-configured'].includes(state)) return state
  return check.ok === true ? 'ok' : 'FAIL'
}

export function printOperation (result: Json): string {
  const nodes = (result.nodes_status ?? {}) as Record<string, Json>
  const reports = result.operation === 'status' || result.operation === 'health'
  const firstChain = (n: Json): Json | undefined => Object.values((n.chains ?? {}) as Record<string, Json>)[0]
  const rows = Object.entries(nodes).map(([name, n]) => [
    name, n.role as string, n.status as string, n.block_height as number | null,
    mempoolText(n.mempool_size, firstChain(n)?.mempool_at_least),
    n.p2p_connections as number, n.service_uptime as string | null,
    n.last_sync == null ? null : new Date((n.last_sync as number) * 1000).toISOString(),
    ...(reports ? [ago(n.probe_age_ms as number | null)] : [])
  ])
  const parts = [table(['NODE', 'ROLE', 'STATUS', 'HEIGHT', 'MEMPOOL', 'P2P', 'SERVICE UPTIME', 'LAST SYNC', ...(reports ? ['PROBED'] : [])], rows)]
  if (result.mesh_view != null) parts.push('\n' + printMeshView(result.mesh_view as Json))
  // Per chain when a node probes more than one (the table above shows each node's first).
  if (Object.values(nodes).some(n => Object.keys((n.chains ?? {}) as Json).length > 1)) {
    const chainRows = Object.entries(nodes).flatMap(([name, n]) => Object.entries((n.chains ?? {}) as Record<string, Json>).map(([chain, c]) => [
      name, chain, c.block_height as number | null, mempoolText(c.mempool_size, c.mempool_at_least)
    ]))
    parts.push('\n' + table(['NODE', 'CHAIN', 'HEIGHT', 'MEMPOOL'], chainRows))
  }
  if (result.operation === 'health') {
    for (const [name, n] of Object.entries(nodes)) {
      const checks = (n.checks ?? []) as Json[]
      if (checks.length === 0) continue
      parts.push(`\n${name}:\n` + checks.map(c => `  ${checkLabel(c).padEnd(12)}  ${String(c.name).padEnd(13)} ${String(c.detail)}`).join('\n'))
    }
  }
  if (result.operation === 'coordinate') {
    for (const [name, n] of Object.entries(nodes)) {
      const a = (n.action ?? {}) as Json
      const head = `${name}: ${String(a.state)}${a.exit_code != null ? `, exit ${String(a.exit_code)}` : ''}${a.duration_ms != null ? `, ${String(a.duration_ms)} ms` : ''}${a.reason != null && a.reason !== '' ? ` (${String(a.reason)})` : ''}`
      const health = a.health_before != null && a.health_before !== '' ? `\n  health before: ${String(a.health_before)}, after: ${String(a.health_after)}` : ''
      const tail = typeof a.output_tail === 'string' && a.output_tail !== '' ? '\n' + a.output_tail.trimEnd().split('\n').slice(-5).map(l => `  | ${l}`).join('\n') : ''
      parts.push(`\n${head}${health}${tail}`)
    }
  }
  if (result.operation === 'sync') {
    for (const [name, n] of Object.entries(nodes)) {
      const sync = (n.sync ?? {}) as Json
      const lines: string[] = []
      const git = sync.git as Json | undefined
      if (git != null) lines.push(`git: ${String(git.state)}${git.head_after != null ? ` at ${String(git.head_after).slice(0, 12)}` : ''}${git.reason != null && git.reason !== '' ? ` (${String(git.reason)})` : ''}`)
      if (Array.isArray(git?.lost_commits) && (git.lost_commits as string[]).length > 0) lines.push(`git: dropped commits: ${(git.lost_commits as string[]).join('; ')}`)
      if (Array.isArray(git?.lost_files) && (git.lost_files as string[]).length > 0) lines.push(`git: dropped changes to: ${(git.lost_files as string[]).join(', ')}`)
      const after = git?.after_git as Json | undefined
      if (after != null) lines.push(`git: after-git ${String(after.action)}: ${String(after.state)}${after.exit_code != null ? `, exit ${String(after.exit_code)}` : ''}${after.reason != null && after.reason !== '' ? ` (${String(after.reason)})` : ''}`)
      const chain = sync.blockchain as Json | undefined
      if (chain != null) lines.push(`blockchain: height ${String(chain.height)}, lag ${String(chain.lag)} (threshold ${String(chain.threshold)})${chain.synced === true ? '' : ' NOT IN SYNC'}`)
      const config = sync.configuration as Json | undefined
      if (config?.error != null) lines.push(`configuration: not compared (${String(config.error)})`)
      else if (config != null) {
        const drift = Array.isArray(config.drift) ? config.drift as string[] : []
        const keys = (config.drift_keys ?? {}) as Record<string, { differ: string[], missing: string[] }>
        const describe = (path: string): string => keys[path] == null ? path : `${path} (${[...keys[path].differ.length > 0 ? [`keys ${keys[path].differ.join(', ')}`] : [], ...keys[path].missing.length > 0 ? [`missing ${keys[path].missing.join(', ')}`] : []].join('; ')})`
        lines.push(`configuration: ${drift.length === 0 ? 'same as genesis' : `differs: ${drift.map(describe).join(', ')}`}`)
        for (const [path, kept] of Object.entries((config.kept_local ?? {}) as Record<string, string[]>)) lines.push(`configuration: ${path}: kept local, not compared: ${kept.join(', ')}`)
      }
      if (lines.length > 0) parts.push(`\n${name}:\n` + lines.map(l => `  ${l}`).join('\n'))
    }
  }
  parts.push(`\n${String(result.summary)} (${String(result.validation_status)}, ${String(result.execution_time)} s)`)
  parts.push(list('issues', result.issues as string[] ?? []))
  parts.push(list('recommendations', result.recommendations as string[] ?? []))
  return parts.filter(p => p !== '').join('\n')
}

export function printAgentTable (records: Json[]): string {
  if (records.length === 0) return 'no agents'
  return table(
    ['AGENT', 'TYPE', 'STATUS', 'HEALTH', 'OWNER', 'LAST HEARTBEAT', 'CAPABILITIES', 'SERVICES', 'TAGS'],
    records.map(r => [
      r.agent_id as string, r.agent_type as string, r.status as string, (r.health_score as number).toFixed(2), r.owner_node as string,
      ago(Date.now() - Date.parse(r.last_heartbeat as string)),
      (r.capabilities as string[]).join(','), (r.services as string[]).join(','), (r.tags as string[]).join(',')
    ])
  )
}

export function printMessage (message: Json): string {
  if (message.outcome === 'not_sent') return `message ${String(message.id)}: not sent: ${String(message.reason)}`
  const targets = message.targets as Record<string, Json>
  const counts = message.message_delivery as { sent: number, delivered: number, processed?: number, failed: number }
  const route = message.route as Json | undefined
  const tails = Object.entries(targets).filter(([, t]) => typeof t.output_tail === 'string' && t.output_tail !== '')
  const kind = String(message.kind)
  const withoutHandler = Object.entries(targets).filter(([, t]) => t.state === 'delivered' && t.handler === false).map(([node]) => node)
  return [
    `id:      ${String(message.id)}`,
    `from:    ${String(message.from)} to ${String(message.to)}  kind: ${String(message.kind)}`,
    `sent:    ${new Date(message.sent_at as number).toISOString()}  expires: ${new Date(message.expires_at as number).toISOString()}`,
    ...(route != null ? [routeLine(route)] : []),
    '',
    table(['NODE', 'AGENT', 'STATE', 'RECEIPT', 'ATTEMPTS', 'EXIT', 'REASON'], Object.entries(targets).map(([node, t]) => [
      node, (t.agent_id as string | undefined) ?? null, targetState(t, kind), t.receipt_at != null ? new Date(t.receipt_at as number).toISOString() : null, t.attempts as number,
      t.exit_code === undefined ? null : t.exit_code === null ? 'signal' : String(t.exit_code as number),
      (t.reason as string | undefined) ?? (t.redelivered_at != null ? `delivered again ${new Date(t.redelivered_at as number).toISOString()}` : undefined)
    ])),
    ...tails.map(([node, t]) => `\n${node} stderr (tail):\n` + (t.output_tail as string).trimEnd().split('\n').map(l => `  ${l}`).join('\n')),
    '',
    message.outcome === 'unknown'
      ? 'outcome unknown (resolving): the store has not answered the write yet'
      : `delivered ${counts.delivered} of ${counts.sent}${counts.processed != null && counts.processed > 0 ? `, processed ${counts.processed}` : ''}${counts.failed > 0 ? `, ${counts.failed} failed` : ''}`,
    ...(withoutHandler.length > 0 ? [`no handler for kind ${kind} on ${withoutHandler.join(', ')}: nothing will process it there`] : [])
  ].join('\n')
}

/** A target's state; a delivered one whose node has no handler for the kind says so. */
function targetState (target: Json, kind: string): string {
  return target.state === 'delivered' && target.handler === false ? `delivered (no handler for kind ${kind})` : String(target.state)
}

/** A routed message: what was asked, and the path taken so far. */
function routeLine (route: Json): string {
  const candidates = route.candidates as Array<{ agent_id: string, node: string }>
  const tried = (route.tried as string[]).map(node => `${candidates.find(c => c.node === node)?.agent_id ?? '?'}@${node}`)
  const skipped = (route.skipped as Array<{ agent_id: string, node: string, reason: string }>).map(s => `${s.agent_id}@${s.node} skipped (${s.reason})`)
  return `route:   capability ${String(route.capability)}: ${[...skipped, ...tried].join(' -> ')}  [${String(route.state)}]`
}

export function printInboxHeader (): string {
  return 'RECEIVED                  FROM      KIND      ID                                    MESSAGE'
}

export function printInboxLine (m: Json): string {
  const body = String(m.body).replace(/\s+/g, ' ')
  return `${new Date(m.received_at as number).toISOString().padEnd(25)} ${String(m.from).padEnd(9)} ${String(m.kind).padEnd(9)} ${String(m.id).padEnd(37)} ${body.length > 80 ? body.slice(0, 79) + '…' : body}`
}

export function printProgress (event: Json): string {
  if (event.type === 'queued') return `waiting in line: ${String(event.running)} operations running, ${String(event.ahead)} ahead of this one\n`
  if (event.type === 'node') return `  ${String(event.node)}: ${String(event.state)}${event.detail != null ? ` (${String(event.detail)})` : ''}\n`
  return ''
}

export function printOpList (records: Json[]): string {
  if (records.length === 0) return 'no operations yet'
  return table(['ID', 'STARTED', 'OPERATION', 'TARGET', 'RESULT', 'SUMMARY'], records.map(r => {
    const request = (r.request ?? {}) as Json
    const result = r.result as Json | null
    return [
      r.id as string, r.started_at as string,
      `${String(request.operation)}${request.action != null ? ` ${String(request.action)}` : ''}`,
      request.target_node as string,
      result != null ? result.validation_status as string : r.error != null ? 'error' : 'running',
      result != null ? result.summary as string : r.error as string | null
    ]
  }))
}

export function printOpRecord (record: Json): string {
  const lines = [`id:       ${String(record.id)}`, `started:  ${String(record.started_at)}`, `finished: ${String(record.finished_at ?? 'still running')}`, `request:  ${JSON.stringify(record.request)}`]
  if (record.error != null) lines.push(`error:    ${String(record.error)}`)
  if (record.result != null) lines.push('', printOperation(record.result as Json))
  return lines.join('\n')
}

/** One line for a reload result: what changed in the allowlist, and what waits for a restart. */
export function printReload (result: Record<string, unknown>): string {
  const list = (key: string): string[] => Array.isArray(result[key]) ? (result[key] as unknown[]).map(String) : []
  const parts = [
    ...(list('added').length > 0 ? [`added ${list('added').join(', ')}`] : []),
    ...(list('removed').length > 0 ? [`removed ${list('removed').join(', ')}`] : []),
    ...(list('readdressed').length > 0 ? [`new address for ${list('readdressed').join(', ')}`] : [])
  ]
  const summary = parts.length > 0 ? parts.join('; ') : 'no peer changes'
  const restart = list('restart_needed')
  return `${summary}; ${String(result.peers)} peer(s)${restart.length > 0 ? `; needs a restart to change: ${restart.join(', ')}` : ''}`
}
