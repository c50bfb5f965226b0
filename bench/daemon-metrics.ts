// Event-loop delay, GC pauses and store writes of benchmarked daemons, read from their /metrics, so
// a p99 can be attributed to a stalled loop, a collection or a slow store write. The daemon's event-loop histogram is reset at every
// scrape, so `start` then `stop` gives the worst delay of the phase in between; GC is a delta.

/** Upper bounds (seconds) of the GC and store-write histogram buckets that are reported. */
const REPORTED_BOUNDS = ['0.01', '0.1']

/** A histogram's count, sum and how many observations exceeded each reported bound. */
interface Histo { count: number, sum: number, over: Map<string, number> }

interface Sample { lagMaxS: number, gc: Histo, write: Histo, writeOps: Histo }

export interface PhaseFigures { lagMaxMs: number, gc: Histo, write: Histo, writeOps: Histo }

/** The histogram `name` in a Prometheus text page (all label sets summed). */
function histogram (rows: string[], name: string): Histo {
  const h: Histo = { count: 0, sum: 0, over: new Map() }
  const le = new Map<string, number>()
  for (const row of rows) {
    const match = /^(\w+)(\{[^}]*\})? (\S+)/.exec(row)
    if (match == null) continue
    const [, metric, labels = '', raw] = match
    const value = Number(raw)
    if (metric === `${name}_count`) h.count += value
    else if (metric === `${name}_sum`) h.sum += value
    else if (metric === `${name}_bucket`) {
      const bound = /le="([^"]+)"/.exec(labels)?.[1]
      if (bound != null) le.set(bound, (le.get(bound) ?? 0) + value)
    }
  }
  // Observations above a bound: all of them less those within it.
  for (const bound of REPORTED_BOUNDS) h.over.set(bound, h.count - (le.get(bound) ?? 0))
  return h
}

function minus (a: Histo, b: Histo): Histo {
  return { count: a.count - b.count, sum: a.sum - b.sum, over: new Map([...a.over].map(([k, v]) => [k, v - (b.over.get(k) ?? 0)])) }
}

async function scrape (address: string): Promise<Sample> {
  // A fresh connection each time: a kept-alive one may be closed by the daemon's idle timeout just as it is reused.
  const res = await fetch(`http://${address}/metrics`, { headers: { connection: 'close' } })
  if (!res.ok) throw new Error(`GET http://${address}/metrics: HTTP ${res.status}`)
  const rows = (await res.text()).split('\n')
  const lag = rows.find(row => row.startsWith('nodejs_eventloop_lag_max_seconds '))
  return {
    lagMaxS: lag != null ? Number(lag.split(' ')[1]) : NaN,
    gc: histogram(rows, 'nodejs_gc_duration_seconds'),
    write: histogram(rows, 'aitbc_mesh_store_write_seconds'),
    writeOps: histogram(rows, 'aitbc_mesh_store_write_operations')
  }
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
      figures.set(name, { lagMaxMs: after.lagMaxS * 1000, gc: minus(after.gc, before.gc), write: minus(after.write, before.write), writeOps: minus(after.writeOps, before.writeOps) })
    }
    return figures
  }
}

function over (h: Histo): string {
  return [...h.over].map(([b, n]) => `${n} > ${Number(b) * 1000} ms`).join(', ')
}

/** Per daemon: worst event-loop delay, GC pauses and store writes (batches) during the phase. */
export function phaseLines (label: string, figures: Map<string, PhaseFigures>): string[] {
  return [...figures].flatMap(([name, f]) => {
    const writes = f.write.count > 0
      ? `store ${f.write.count} writes, mean ${(f.write.sum / f.write.count * 1000).toFixed(2)} ms (${over(f.write)}), mean ${(f.writeOps.sum / f.write.count).toFixed(1)} ops per write`
      : 'store 0 writes'
    return [
      `${`  ${label}, daemon ${name}`.padEnd(44)} event-loop delay max=${f.lagMaxMs.toFixed(1)} ms; GC ${f.gc.count} pauses, ${(f.gc.sum * 1000).toFixed(0)} ms in all (${over(f.gc)})`,
      `${''.padEnd(44)} ${writes}`
    ]
  })
}
