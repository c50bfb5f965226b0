// The aitbc-mesh status page: follows /events (Server-Sent Events; /api/state polled if that is
// unavailable) and redraws. Read-only. Every value from the daemon is user data as far as this
// page is concerned: it is only ever set with textContent or setAttribute, never parsed as HTML.
'use strict'

const SVG = 'http://www.w3.org/2000/svg'
const KNOWN_CLASSES = new Set(['online', 'degraded', 'offline', 'pending', 'delivered', 'failed', 'success', 'partial',
  'error', 'running', 'unknown', 'active', 'inactive', 'busy', 'maintenance'])

function $ (id) { return document.getElementById(id) }

/** An element with text content and attributes (never HTML). */
function el (tag, opts = {}, ...children) {
  const node = document.createElement(tag)
  if (opts.className != null) node.className = opts.className
  if (opts.text != null) node.textContent = String(opts.text)
  if (opts.title != null) node.title = String(opts.title)
  for (const [name, value] of Object.entries(opts.attrs ?? {})) node.setAttribute(name, String(value))
  for (const child of children) if (child != null) node.append(child)
  return node
}

function badge (value, label) {
  const cls = KNOWN_CLASSES.has(value) ? value : 'unknown'
  return el('span', { className: `badge ${cls}`, text: label ?? value })
}

function age (ms) {
  if (ms == null) return '—'
  if (ms < 1000) return `${ms} ms ago`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  return `${(s / 3600).toFixed(1)} h ago`
}

function since (iso, now) {
  const t = Date.parse(iso)
  return Number.isNaN(t) ? '—' : age(Math.max(0, now - t))
}

function time (iso) {
  const t = new Date(iso)
  return Number.isNaN(t.getTime()) ? '—' : t.toLocaleTimeString()
}

function fillTable (id, rows, columns, emptyText) {
  const body = $(id).tBodies[0]
  if (rows.length === 0) {
    body.replaceChildren(el('tr', { className: 'empty' }, el('td', { text: emptyText, attrs: { colspan: columns } })))
    return
  }
  body.replaceChildren(...rows)
}

function renderNodes (state) {
  const rows = state.nodes.map(n => el('tr', { attrs: { 'data-node': n.name, 'data-status': n.status } },
    el('td', { text: n.self ? `${n.name} (this node)` : n.name }),
    el('td', { text: n.role }),
    el('td', { className: 'status', attrs: { 'data-status': n.status } }, badge(n.status)),
    el('td', { className: 'num', text: n.block_height ?? '—' }),
    el('td', { className: 'num', text: n.self ? 'now' : age(n.last_heartbeat_age_ms) }),
    el('td', { className: 'num', text: n.latency_ms != null && !n.self ? `${n.latency_ms} ms` : '—' }),
    el('td', { className: 'muted', text: n.reason ?? '' })
  ))
  fillTable('nodes', rows, 7, 'no nodes')
}

function renderGraph (state) {
  const svg = $('graph')
  const width = 520
  const height = 340
  const nodes = state.nodes
  const radius = nodes.length > 1 ? Math.min(width, height) / 2 - 50 : 0
  const pos = new Map()
  nodes.forEach((n, i) => {
    // This node at the top, the others clockwise.
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / nodes.length
    pos.set(n.name, { x: width / 2 + radius * Math.cos(angle), y: height / 2 + radius * Math.sin(angle) })
  })
  const parts = []
  for (const [a, b] of state.edges) {
    const p = pos.get(a)
    const q = pos.get(b)
    if (p == null || q == null) continue
    const line = document.createElementNS(SVG, 'line')
    line.setAttribute('class', 'edge')
    line.setAttribute('data-edge', `${a}--${b}`)
    line.setAttribute('x1', p.x.toFixed(1))
    line.setAttribute('y1', p.y.toFixed(1))
    line.setAttribute('x2', q.x.toFixed(1))
    line.setAttribute('y2', q.y.toFixed(1))
    parts.push(line)
  }
  for (const n of nodes) {
    const p = pos.get(n.name)
    const group = document.createElementNS(SVG, 'g')
    group.setAttribute('data-node', n.name)
    group.setAttribute('data-status', n.status)
    const circle = document.createElementNS(SVG, 'circle')
    circle.setAttribute('cx', p.x.toFixed(1))
    circle.setAttribute('cy', p.y.toFixed(1))
    circle.setAttribute('r', '20')
    circle.setAttribute('class', `${KNOWN_CLASSES.has(n.status) ? n.status : 'unknown'}${n.self ? ' self' : ''}`)
    const title = document.createElementNS(SVG, 'title')
    title.textContent = `${n.name} (${n.role}): ${n.status}`
    circle.append(title)
    const label = document.createElementNS(SVG, 'text')
    label.setAttribute('x', p.x.toFixed(1))
    label.setAttribute('y', (p.y + 36).toFixed(1))
    label.textContent = n.name
    group.append(circle, label)
    parts.push(group)
  }
  svg.replaceChildren(...parts)
}

function renderAgents (state, now) {
  $('agents-count').textContent = state.agents_total > state.agents.length ? `(${state.agents.length} of ${state.agents_total})` : `(${state.agents_total})`
  const rows = state.agents.map(a => el('tr', { attrs: { 'data-agent': a.agent_id } },
    el('td', { text: a.agent_id }),
    el('td', { text: a.agent_type }),
    el('td', {}, badge(a.status)),
    el('td', { text: a.owner_node }),
    el('td', { className: 'num', text: Number(a.health_score).toFixed(2) }),
    el('td', { className: 'num', text: since(a.last_heartbeat, now), title: a.last_heartbeat }),
    el('td', { text: (a.capabilities ?? []).join(', ') })
  ))
  fillTable('agents', rows, 7, 'no agents registered')
}

function renderMessages (state) {
  const rows = state.messages.map(m => el('tr', { attrs: { 'data-message': m.id } },
    el('td', { className: 'num', text: time(m.sent_at), title: m.sent_at }),
    el('td', { text: m.kind }),
    el('td', { text: m.to }),
    el('td', { className: 'body', text: m.truncated ? `${m.body}…` : m.body, title: m.id }),
    el('td', {}, ...m.targets.map(t => {
      const detail = t.state === 'delivered' && t.receipt_ms != null ? ` ${t.receipt_ms} ms` : t.reason != null ? ` (${t.reason})` : ''
      const b = badge(t.state, `${t.node}: ${t.state}${detail}`)
      b.setAttribute('data-target', t.node)
      b.setAttribute('data-state', t.state)
      b.title = `attempts: ${t.attempts}`
      return b
    }))
  ))
  fillTable('messages', rows, 5, 'no messages sent since the daemon started')
}

function renderOperations (state) {
  const rows = state.operations.map(o => {
    const ms = o.finished_at != null ? Date.parse(o.finished_at) - Date.parse(o.started_at) : null
    return el('tr', { attrs: { 'data-operation': o.id } },
      el('td', { className: 'num', text: time(o.started_at), title: o.started_at }),
      el('td', { text: o.operation }),
      el('td', { text: o.target_node }),
      el('td', {}, badge(o.result)),
      el('td', { className: 'num', text: ms != null && !Number.isNaN(ms) ? `${(ms / 1000).toFixed(2)} s` : '—' }),
      el('td', { text: o.summary ?? '' })
    )
  })
  fillTable('operations', rows, 6, 'no operations yet')
}

function renderQuorum (view) {
  const node = $('quorum')
  if (view == null) { node.textContent = ''; return }
  node.setAttribute('data-quorum', String(view.quorum))
  node.className = view.quorum ? 'quorum on' : 'quorum off'
  const since = new Date(Date.parse(view.since)).toLocaleTimeString()
  node.textContent = view.quorum
    ? `quorum: ${view.reachable.length} of ${view.configured} reachable (since ${since})`
    : `NO QUORUM: ${view.reachable.length} of ${view.configured} reachable, unreachable ${view.unreachable.join(', ')} (since ${since}); destructive work is refused here`
}

function render (state) {
  const now = Date.parse(state.generated_at) || Date.now()
  document.title = `aitbc-mesh: ${state.node}`
  $('self-name').textContent = `— ${state.node} (${state.role})`
  $('generated').textContent = `updated ${new Date(now).toLocaleTimeString()}`
  const durability = state.store.durability
  const kept = durability == null ? '' : `, ${durability.durable ? 'durable' : 'NOT durable'} (${durability.level})`
  $('store').textContent = state.store.ok ? `store: ${state.store.kind}, ok${kept}` : `store: ${state.store.kind}, ${state.store.reason ?? 'unavailable'}${kept}`
  $('store').title = durability == null ? '' : `${durability.guarantee}\n${durability.detail}`
  renderQuorum(state.mesh_view)
  renderNodes(state)
  renderGraph(state)
  renderAgents(state, now)
  renderMessages(state)
  renderOperations(state)
}

function setLive (live, text) {
  const node = $('live')
  node.className = `live ${live ? 'on' : 'off'}`
  node.setAttribute('data-live', String(live))
  node.textContent = text
}

function show (data) {
  try {
    render(JSON.parse(data))
  } catch (err) {
    setLive(false, `bad update: ${err.message}`)
  }
}

function poll () {
  fetch('/api/state', { cache: 'no-store' })
    .then(res => { if (!res.ok) throw new Error(`HTTP ${res.status}`); return res.text() })
    .then(text => { setLive(true, 'live (polling)'); show(text) })
    .catch(err => { setLive(false, `daemon unreachable: ${err.message}`) })
    .finally(() => { setTimeout(poll, 2000) })
}

function follow () {
  if (typeof EventSource !== 'function') { poll(); return }
  const events = new EventSource('/events')
  events.addEventListener('open', () => { setLive(true, 'live') })
  events.addEventListener('state', evt => { setLive(true, 'live'); show(evt.data) })
  // EventSource reconnects by itself (the server sets the retry delay).
  events.addEventListener('error', () => { setLive(false, 'reconnecting…') })
}

follow()
