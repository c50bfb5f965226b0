// The commands run most (status, health, daemon), written plainly, read without commander.
import type { GlobalOptions } from './run.js'

interface QuickSpec {
  /** Options that take a value: flag -> option key, as commander names it. */
  values: Record<string, string>
  /** Options without a value. */
  flags: Record<string, string>
  /** What commander gives an option not on the command line. */
  defaults: Record<string, string>
}

/** The quick path's commands, with the options and defaults program.ts gives them. */
const QUICK_COMMANDS: Record<string, QuickSpec> = {
  status: { values: { '--target': 'target', '--timeout': 'timeout' }, flags: {}, defaults: { target: 'all', timeout: '60' } },
  health: { values: { '--target': 'target', '--timeout': 'timeout' }, flags: {}, defaults: { target: 'all', timeout: '60' } },
  daemon: { values: {}, flags: { '--create': 'create', '--fresh-store': 'freshStore' }, defaults: {} }
}
const GLOBAL: QuickSpec = { values: { '--config': 'config', '--socket': 'socket' }, flags: { '--json': 'json' }, defaults: {} }

export interface QuickCommand {
  name: string
  /** The command's own options, as commander would hand them to its action. */
  opts: Record<string, string | true>
  globals: GlobalOptions
}

/**
 * argv as one of QUICK_COMMANDS when it is plainly that: known options only, each at most once,
 * as `--name value` or `--name=value` with a value that is neither empty nor starts with "-", and no
 * other words. Undefined for anything else, which commander then parses (and reports) as always.
 */
export function quickCommand (argv: string[]): QuickCommand | undefined {
  let name: string | undefined
  const seen = new Set<string>()
  const opts: Record<string, string | true> = {}
  const globals: Record<string, string | true> = {}
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!
    if (name == null && Object.hasOwn(QUICK_COMMANDS, arg)) {
      name = arg
      continue
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1
    const flag = eq > 0 ? arg.slice(0, eq) : arg
    if (seen.has(flag)) return undefined
    seen.add(flag)
    const spec = name != null ? QUICK_COMMANDS[name]! : undefined
    if (eq < 0 && (Object.hasOwn(GLOBAL.flags, flag) || (spec != null && Object.hasOwn(spec.flags, flag)))) {
      if (Object.hasOwn(GLOBAL.flags, flag)) globals[GLOBAL.flags[flag]!] = true
      else opts[spec!.flags[flag]!] = true
      continue
    }
    const isGlobal = Object.hasOwn(GLOBAL.values, flag)
    if (!isGlobal && (spec == null || !Object.hasOwn(spec.values, flag))) return undefined
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value == null || value === '' || value.startsWith('-')) return undefined
    if (isGlobal) globals[GLOBAL.values[flag]!] = value
    else opts[spec!.values[flag]!] = value
  }
  if (name == null) return undefined
  return { name, opts: { ...QUICK_COMMANDS[name]!.defaults, ...opts }, globals: globals as GlobalOptions }
}
