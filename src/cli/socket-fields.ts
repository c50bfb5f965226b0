/** The two config fields that locate the daemon's control socket. */
export interface SocketFields {
  controlSocket?: unknown
  dataDir?: unknown
}

const TOP_LEVEL_KEY = /^([A-Za-z_][A-Za-z0-9_-]*):(?=[ \t]|$)(.*)$/
const AFTER_VALUE = /^[ \t]*(#.*)?$/
// Plain scalars the YAML core schema reads as null, booleans or numbers, not strings.
const NOT_A_STRING = /^(~|null|Null|NULL|true|True|TRUE|false|False|FALSE)$|^[-+]?(\.?[0-9]|\.(inf|Inf|INF)$)|^\.(nan|NaN|NAN)$|^0[ox]/
// A plain scalar starting with an indicator is not a plain string (flow, anchor, tag, block scalar...).
const INDICATOR_START = /^([[\]{}&*!|>%@`,]|[-?:]([ \t]|$))/

/**
 * controlSocket and dataDir read from the config text without a YAML parser: the CLI needs only
 * these, and loading the parser costs more than the rest of a command. Only top-level lines
 * `key: value` with the value on that line (plain, single- or double-quoted) are read; for anything
 * this reader cannot be sure of, or when neither field is there, it returns undefined and the
 * caller parses the whole file. The rest of the file is not checked.
 */
export function quickSocketFields (text: string): SocketFields | undefined {
  const lines = text.split('\n').map(l => l.endsWith('\r') ? l.slice(0, -1) : l)
  const fields: SocketFields = {}
  let found = false
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line === '' || line.startsWith(' ') || /^[ \t]*#/.test(line)) continue
    const match = TOP_LEVEL_KEY.exec(line)
    if (match == null) return undefined // document markers, directives, tabs, quoted or complex keys
    const key = match[1]!
    if (key !== 'controlSocket' && key !== 'dataDir') continue
    if (key in fields) return undefined // a duplicate key is a YAML error
    // An indented line after it continues the value (multi-line scalar, block or nested map).
    let next = i + 1
    while (next < lines.length && (lines[next]!.trim() === '' || /^[ \t]*#/.test(lines[next]!))) next++
    if (next < lines.length && /^[ \t]/.test(lines[next]!)) return undefined
    const value = scalarOnLine(match[2]!.replace(/^[ \t]+/, ''))
    if (value === undefined) return undefined
    fields[key] = value
    found = true
  }
  return found ? fields : undefined
}

/** The value of a one-line scalar (null when empty), or undefined when it is not a simple one. */
function scalarOnLine (raw: string): string | null | undefined {
  if (raw === '' || raw.startsWith('#')) return null
  if (raw.startsWith('"')) {
    const end = closingDoubleQuote(raw)
    if (end < 0 || !AFTER_VALUE.test(raw.slice(end + 1))) return undefined
    // JSON's escapes are a subset of YAML's double-quoted ones and mean the same; others go to the parser.
    try {
      return JSON.parse(raw.slice(0, end + 1)) as string
    } catch {
      return undefined
    }
  }
  if (raw.startsWith("'")) {
    const match = /^'((?:[^']|'')*)'(.*)$/.exec(raw)
    if (match == null || !AFTER_VALUE.test(match[2]!)) return undefined
    return match[1]!.replaceAll("''", "'")
  }
  if (INDICATOR_START.test(raw)) return undefined
  const comment = /[ \t]#/.exec(raw)
  const value = (comment != null ? raw.slice(0, comment.index) : raw).replace(/[ \t]+$/, '')
  if (NOT_A_STRING.test(value) || /:([ \t]|$)/.test(value)) return undefined
  return value
}

function closingDoubleQuote (raw: string): number {
  for (let i = 1; i < raw.length; i++) {
    if (raw[i] === '\\') i++
    else if (raw[i] === '"') return i
  }
  return -1
}
