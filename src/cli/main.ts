#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2 --max-old-space-size=1024
// The CLI talks to the daemon only through its control socket; it never loads libp2p.
// The commands run most (status, health, daemon), written plainly, are parsed here without
// loading commander, the full command set or the table printers: for `status` that is most of
// the CLI's own start time, and the daemon does not keep them in memory. Anything else (help,
// other commands, an option this reader is unsure of) goes to program.ts, which parses every
// command with commander, so usage errors, help and suggestions are commander's as before.
import { quickCommand, type QuickCommand } from './quick.js'
import { EXIT_OK, parseTimeout, reportError, runDaemonCommand, runOperation } from './run.js'

async function runQuick (quick: QuickCommand): Promise<number> {
  try {
    const { name, opts, globals } = quick
    if (name === 'daemon') {
      await runDaemonCommand(globals.config, { create: opts.create === true, freshStore: opts.freshStore === true })
      return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK
    }
    return await runOperation(globals, { operation: name, target_node: opts.target, timeout: parseTimeout(String(opts.timeout)) })
  } catch (err) {
    return reportError(err)
  }
}

export async function main (argv: string[]): Promise<number> {
  const quick = quickCommand(argv)
  if (quick != null) return await runQuick(quick)
  const { runProgram } = await import('./program.js')
  return await runProgram(argv)
}

const code = await main(process.argv)
// The daemon command returns only when it has stopped; other commands exit with their code.
process.exitCode = code
