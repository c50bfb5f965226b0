import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'

/**
 * Hosts in network namespaces joined by a switch: a namespace of its own holding two bridges,
 * `main` and `side`, with one veth pair per host (its end in the host is eth0, 10.77.0.<i+1>/24).
 * A host moved to the `side` bridge, or detached from both, loses every packet to the others
 * silently, as in a real partition (no reset, no ICMP); moving it back heals it.
 */
export class SwitchedHosts {
  readonly id = randomBytes(3).toString('hex')
  readonly switchNs = `aitbc-q-${this.id}-sw`
  readonly addresses: string[]
  private readonly created: string[] = []

  constructor (readonly count: number) {
    this.addresses = Array.from({ length: count }, (_, i) => `10.77.0.${i + 1}`)
  }

  /** Fails with what is missing when the test cannot run here (it needs root and iproute2). */
  static requireRoot (what: string): void {
    const missing: string[] = []
    if (process.getuid?.() !== 0) missing.push('root (network namespaces)')
    if (spawnSync('ip', ['netns', 'list']).status !== 0) missing.push('ip netns (iproute2)')
    if (missing.length > 0) throw new Error(`${what} needs ${missing.join(' and ')}; CI runs it as root like the install test`)
  }

  hostNs (i: number): string {
    return `aitbc-q-${this.id}-${i}`
  }

  private veth (i: number): string {
    return `q${this.id}v${i}`
  }

  /** `ip netns exec` for host i: a daemon started under it lives in that host's network. */
  exec (i: number): string[] {
    return ['ip', 'netns', 'exec', this.hostNs(i)]
  }

  async create (): Promise<void> {
    await ip(['netns', 'add', this.switchNs])
    this.created.push(this.switchNs)
    for (const bridge of ['main', 'side']) {
      await ip(['-n', this.switchNs, 'link', 'add', bridge, 'type', 'bridge'])
      await ip(['-n', this.switchNs, 'link', 'set', bridge, 'up'])
    }
    for (let i = 0; i < this.count; i++) {
      const ns = this.hostNs(i)
      await ip(['netns', 'add', ns])
      this.created.push(ns)
      await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
      await ip(['link', 'add', this.veth(i), 'netns', this.switchNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      await ip(['-n', ns, 'addr', 'add', `${this.addresses[i]!}/24`, 'dev', 'eth0'])
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up'])
      await ip(['-n', this.switchNs, 'link', 'set', this.veth(i), 'master', 'main'])
      await ip(['-n', this.switchNs, 'link', 'set', this.veth(i), 'up'])
    }
  }

  /** Puts the hosts on a bridge: `main` (everyone), `side` (a second island), or none (alone). */
  async move (hosts: number[], to: 'main' | 'side' | 'none'): Promise<void> {
    for (const i of hosts) await ip(['-n', this.switchNs, 'link', 'set', this.veth(i), ...to === 'none' ? ['nomaster'] : ['master', to]])
  }

  /**
   * Cuts the link between hosts a and b alone: each sends the other's packets to a MAC address no
   * host has, so they vanish (no reset, no ICMP) while both still reach everyone else.
   */
  async cutLink (a: number, b: number): Promise<void> {
    for (const [from, to] of [[a, b], [b, a]] as const) {
      await ip(['-n', this.hostNs(from), 'neigh', 'replace', this.addresses[to]!, 'lladdr', NOBODY_MAC, 'dev', 'eth0', 'nud', 'permanent'])
    }
  }

  /** Heals a cut link: the hosts find each other's addresses again. */
  async healLink (a: number, b: number): Promise<void> {
    for (const [from, to] of [[a, b], [b, a]] as const) await ip(['-n', this.hostNs(from), 'neigh', 'del', this.addresses[to]!, 'dev', 'eth0'])
  }

  /** Deletes every namespace made (their veths and bridges go with them); never throws. */
  destroy (): void {
    for (const ns of this.created.reverse()) spawnSync('ip', ['netns', 'del', ns])
    this.created.length = 0
  }
}

/** A locally administered unicast address that no host in the switch has. */
const NOBODY_MAC = '02:00:00:00:00:01'

async function ip (args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    child.once('error', reject)
    child.once('close', code => { code === 0 ? resolve() : reject(new Error(`ip ${args.join(' ')}: exit ${String(code)}: ${stderr.trim()}`)) })
  })
}
