/** Plain-text tables for the CLI's readable output. */

export function table (headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map(r => r.map(c => c == null || c === '' ? '-' : String(c)))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map(r => (r[i] ?? '').length)))
  const line = (r: string[]): string => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  return [line(headers), ...cells.map(line)].join('\n')
}

export function ago (ms: number | null | undefined): string | null {
  if (ms == null) return null
  if (ms < 1000) return `${ms} ms ago`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s ago`
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min ago`
  return `${(ms / 3_600_000).toFixed(1)} h ago`
}

export function since (iso: string | null | undefined, now = Date.now()): string | null {
  if (iso == null) return null
  const ms = now - Date.parse(iso)
  const text = ago(ms)
  return text == null ? null : text.replace(/ ago$/, '')
}

export function list (title: string, items: string[]): string {
  if (items.length === 0) return ''
  return `\n${title}:\n${items.map(i => `  - ${i}`).join('\n')}`
}
