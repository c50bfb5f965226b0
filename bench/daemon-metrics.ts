// Event-loop delay and GC pauses of benchmarked daemons, read from their /metrics, so a p99 can be
// attributed to a stalled loop or a collection. The daemon's event-loop histogram is reset at every
// scrape, so `start` then `stop` gives the worst delay of the phase in between; GC is a delta.

/** Upper bounds (seconds) of prom-client's default nodejs_gc_duration_seconds buckets that are reported. */
const GC_REPORTED_BOUNDS = ['0.01', '0.1']

interface Sample { lagMaxS: number, gcCount: number, gcSumS: number, gcOver: Map<string, number> }

export interface PhaseFigures { lagMaxMs: number, gcCount: number, gcTotalMs: number, gcOver: Map<string, number> }

async function scrape (address: string): Promise<Sample> {
  const res = await fetch(`http://${address}/metrics`)
  if (!res.ok) throw new Error(`GET http://${address}/metrics: HTTP ${res.status}`)
  const sample: Sample = { lagMaxS: NaN, gcCount: 0, gcSumS: 0, gcOver: new Map() }
  const gcLe = new Map<string, number>()
  for (const row of (await res.text()).split('\n')) {
    const match = /^(\w+)(\{[^}]*\})? (\S+)/.exec(row)
    if (match == null) continue
    const [, name, labels = '', raw] = match
    const value = Number(raw)
    if (name === 'nodejs_eventloop_lag_max_seconds') sample.lagMaxS = value
    else if (name === 'nodejs_gc_duration_seconds_count') sample.gcCount += value
    else if (name === 'nodejs_gc_duration_seconds_sum') sample.gcSumS += value
    else if (name === 'nodejs_gc_duration_seconds_bucket') {
      const le = /le="([^"]+)"/.exec(labels)?.[1]
      if (le != null) gcLe.set(le, (gcLe.get(le) ?? 0) + value)
    }
  }
  // Pauses longer than a bound: all pauses less those within it.
  for (const bound of GC_REPORTED_BOUNDS) sample.gcOver.set(bound, sample.gcCount - (gcLe.get(bound) ?? 0))
  return sample
}

/** Watches the daemons serving /metrics at `addresses` (name → host:port) over one phase. */
export class DaemonPhase {
  private readonly before = new Map<string, Sample>()

  private constructor (private readonly addresses: Map<string, string>) {}

  static async start (addresses: Map<string, string>): Promise<DaemonPhase> {
    const phase = new DaemonPhase(addresses)
    for (const [name, address] of addresses) phase.before.set(name, await scrape(address))
    return phase
  }

  async stop (): Promise<Map<string, PhaseFigures>> {
    const figures = new Map<string, PhaseFigures>()
    for (const [name, address] of this.addresses) {
      const after = await scrape(address)
      const before = this.before.get(name)!
      figures.set(name, {
        lagMaxMs: after.lagMaxS * 1000,
        gcCount: after.gcCount - before.gcCount,
        gcTotalMs: (after.gcSumS - before.gcSumS) * 1000,
        gcOver: new Map(GC_REPORTED_BOUNDS.map(b => [b, (after.gcOver.get(b) ?? 0) - (before.gcOver.get(b) ?? 0)]))
      })
    }
    return figures
  }
}

/** One line per daemon: worst event-loop delay and GC pauses during the phase. */
export function phaseLines (label: string, figures: Map<string, PhaseFigures>): string[] {
  return [...figures].map(([name, f]) => {
    const over = [...f.gcOver].map(([b, n]) => `${n} > ${Number(b) * 1000} ms`).join(', ')
    return `${`  ${label}, daemon ${name}`.padEnd(44)} event-loop delay max=${f.lagMaxMs.toFixed(1)} ms; GC ${f.gcCount} pauses, ${f.gcTotalMs.toFixed(0)} ms in all (${over})`
  })
}
