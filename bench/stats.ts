/** Percentiles and a one-line summary for benchmark samples (milliseconds). */
export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

export function summarize (samples: number[]): { n: number, p50: number, p99: number, max: number, mean: number } {
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)
  }
}

export function line (label: string, samples: number[], unit = 'ms'): string {
  const s = summarize(samples)
  const f = (v: number): string => v < 10 ? v.toFixed(2) : v.toFixed(1)
  return `${label.padEnd(44)} n=${String(s.n).padEnd(5)} p50=${f(s.p50)} ${unit}  p99=${f(s.p99)} ${unit}  max=${f(s.max)} ${unit}`
}

/** `--name N` from the command line, else the environment variable `{envPrefix}{NAME}` if a prefix is given, else the fallback. */
export function numberArg (name: string, fallback: number, envPrefix?: string): number {
  const i = process.argv.indexOf(`--${name}`)
  if (i >= 0) return Number(process.argv[i + 1])
  const env = envPrefix != null ? process.env[`${envPrefix}${name.toUpperCase()}`] : undefined
  return env != null ? Number(env) : fallback
}
