import type { Logger } from 'pino'
import { MEMBERSHIP_CHECK_INTERVAL_MS } from '../constants.js'
import type { PeerTable } from './peer-table.js'

/** Which configured nodes this node reaches now, and whether they are a majority (`peers`, `status`, /metrics). */
export interface MeshView {
  /** This node and every peer whose heartbeats arrive (directly or relayed), sorted by name. */
  reachable: string[]
  /** The other configured nodes: no heartbeat within the offline window. */
  unreachable: string[]
  /** Configured nodes, this one included. */
  configured: number
  /** reachable > configured / 2. */
  quorum: boolean
  /** When the current quorum state began (ISO time; the daemon's start for the first one). */
  since: string
}

export interface MembershipInit {
  node: string
  peers: Pick<PeerTable, 'all' | 'liveness'>
  log: Logger
  /** Daemon start: the first quorum state is counted from it. */
  startedAt: number
  checkIntervalMs?: number
  /** Called when quorum is gained or lost (metrics). */
  onChange?: (view: MeshView) => void
}

/** The majority rule: more than half of the configured nodes, counting this one. */
export function hasQuorum (reachable: number, configured: number): boolean {
  return reachable * 2 > configured
}

/**
 * The membership view: reachable = this node plus every configured peer that liveness does not
 * call offline. A peer counts whether its heartbeats come over a direct connection or relayed by
 * another node's gossip (signed by the peer, so a relay cannot fake it): both prove it alive and
 * part of the same side of a partition. Quorum changes (`quorum_changed`) and each peer going
 * offline or coming back (`peer_offline`, `peer_online`) are logged when seen, checked every
 * MEMBERSHIP_CHECK_INTERVAL_MS and on every read.
 */
export class Membership {
  private quorum?: boolean
  private since: number
  private timer?: NodeJS.Timeout
  /** Each peer's reachability at the last read, to log when it changes. */
  private readonly reachableAtLastView = new Map<string, boolean>()

  constructor (private readonly init: MembershipInit) {
    this.since = init.startedAt
  }

  start (): void {
    this.view()
    this.timer = setInterval(() => { this.view() }, this.init.checkIntervalMs ?? MEMBERSHIP_CHECK_INTERVAL_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /** The view now; records (and logs) a change of quorum since the last read. */
  view (now = Date.now()): MeshView {
    const { node, peers } = this.init
    const reachable = [node]
    const unreachable: string[] = []
    const seen = new Set<string>()
    for (const state of peers.all()) {
      const verdict = peers.liveness(state, now)
      const isReachable = verdict.liveness !== 'offline'
      if (isReachable) reachable.push(state.name)
      else unreachable.push(state.name)
      seen.add(state.name)
      this.noteReachability(state.name, isReachable, verdict.reason)
    }
    for (const name of this.reachableAtLastView.keys()) if (!seen.has(name)) this.reachableAtLastView.delete(name)
    reachable.sort()
    unreachable.sort()
    const configured = reachable.length + unreachable.length
    const quorum = hasQuorum(reachable.length, configured)
    const changed = this.quorum != null && this.quorum !== quorum
    if (changed) this.since = now
    const view: MeshView = { reachable, unreachable, configured, quorum, since: new Date(this.since).toISOString() }
    if (changed || this.quorum == null) {
      this.quorum = quorum
      if (changed || !quorum) {
        this.init.log[quorum ? 'info' : 'warn']({ event: 'quorum_changed', quorum, reachable, unreachable, configured },
          quorum ? `quorum: this node reaches ${reachable.length} of ${configured} configured nodes` : `no quorum: this node reaches ${reachable.length} of ${configured} configured nodes; destructive operations are refused here`)
      }
      this.init.onChange?.(view)
    }
    return view
  }

  /** A peer never seen is not logged offline: only a change after it was first heard from. */
  private noteReachability (peer: string, isReachable: boolean, reason: string | undefined): void {
    const before = this.reachableAtLastView.get(peer)
    if (before === isReachable) return
    this.reachableAtLastView.set(peer, isReachable)
    if (isReachable) this.init.log.info({ event: 'peer_online', peer }, `${peer} is online`)
    else if (before === true) this.init.log.warn({ event: 'peer_offline', peer, reason }, `${peer} is offline: ${reason ?? 'no heartbeat'}`)
  }
}

/** The refusal text for destructive work without quorum: who is unreachable and how to override. */
export function noQuorumReason (view: MeshView, node: string): string {
  return `no quorum: ${node} reaches ${view.reachable.length} of ${view.configured} configured nodes (unreachable: ${view.unreachable.join(', ')}); ` +
    'destructive work needs a majority; --override-quorum runs it anyway, as a deliberate decision'
}
