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
 * part of the same side of a partition. Quorum changes are logged (`quorum_changed`) when seen,
 * checked every MEMBERSHIP_CHECK_INTERVAL_MS and on every read.
 */
export class Membership {
  private quorum?: boolean
  private since: number
  private timer?: NodeJS.Timeout

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
    for (const state of peers.all()) {
      if (peers.liveness(state, now).liveness === 'offline') unreachable.push(state.name)
      else reachable.push(state.name)
    }
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
}

/** The refusal text for destructive work without quorum: who is unreachable and how to override. */
export function noQuorumReason (view: MeshView, node: string): string {
  return `no quorum: ${node} reaches ${view.reachable.length} of ${view.configured} configured nodes (unreachable: ${view.unreachable.join(', ')}); ` +
    'destructive work needs a majority; --override-quorum runs it anyway, as a deliberate decision'
}
