// What every command shares, without the command-line parser: exit codes, the control-socket
// client, operations, and how an error becomes a message and an exit code. The quick path in
// main.ts runs the common commands with this alone; program.ts builds every command on it.
import { ControlCallError, ControlClient, DaemonUnreachableError } from '../control/client.js'
import { EXIT_LISTEN_ADDRESS_IN_USE } from '../constants.js'
import { resolveSocketPath } from './socket-path.js'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_UNREACHABLE = 3
/** `send`: the store did not answer the write, so whether the message was sent is not known yet. */
export const EXIT_OUTCOME_UNKNOWN = 4
/** Destructive work refused: this node does not see a majority of the configured nodes (quorum). */
export const EXIT_NO_QUORUM = 5

export class CliUsageError extends Error {}

export interface GlobalOptions {
  config?: string
  socket?: string
  json?: boolean
}

export async function withClient<T> (opts: GlobalOptions, work: (client: ControlClient) => Promise<T>): Promise<T> {
  const socket = await resolveSocketPath(opts)
  let client: ControlClient
  try {
    client = await ControlClient.connect(socket)
  } catch (err) {
    // The socket path was read without parsing the whole config: if no daemon answers, a broken config says more.
    if (err instanceof DaemonUnreachableError) await resolveSocketPath(opts, process.env, { fullParse: true })
    throw err
  }
  try {
    return await work(client)
  } finally {
    client.close()
  }
}

export function parseTimeout (value: string): number {
  const seconds = Number(value)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 120) throw new CliUsageError(`--timeout "${value}": expected seconds, more than 0 and at most 120`)
  return seconds
}

/** Exit code of an operation result: 0 only when every target succeeded. */
function exitCodeOf (result: { validation_status?: string }): number {
  return result.validation_status === 'success' ? EXIT_OK : EXIT_FAILED
}

export async function runOperation (opts: GlobalOptions, request: Record<string, unknown>, forceJson = false): Promise<number> {
  const human = opts.json !== true && !forceJson
  // The table printers are loaded only for a person reading them.
  const output = human ? await import('./output.js') : undefined
  const result = await withClient(opts, async client => await client.call<Record<string, unknown>>('op', request, {
    // Progress on stderr as it happens, so the table on stdout stays clean.
    onEvent: event => { if (output != null) process.stderr.write(output.printProgress(event as Record<string, unknown>)) }
  }))
  if (output == null) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  else process.stdout.write(output.printOperation(result) + '\n')
  return exitCodeOf(result)
}

/** Prints what went wrong (on stderr) and returns the exit code it means. */
export function reportError (err: unknown): number {
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`aitbc-mesh: ${message}\n`)
  if (err instanceof DaemonUnreachableError) return EXIT_UNREACHABLE
  if (err instanceof ControlCallError) return err.isUsageError ? EXIT_USAGE : err.isOutcomeUnknown ? EXIT_OUTCOME_UNKNOWN : err.isNoQuorum ? EXIT_NO_QUORUM : EXIT_FAILED
  const name = err instanceof Error ? err.name : ''
  // Another process holds the daemon's listen address: that can clear, so systemd retries.
  if (name === 'ListenAddressInUseError') return EXIT_LISTEN_ADDRESS_IN_USE
  // A refused daemon start (config, identity key, store) needs the operator, like bad input.
  if (err instanceof CliUsageError || name === 'UsageError' || name === 'ConfigError' || name === 'StoreIntegrityError' || name === 'StoreDurabilityError') return EXIT_USAGE
  return EXIT_FAILED
}

/**
 * `daemon`: runs it in the foreground until it stops. Compiled code is cached on disk
 * (NODE_COMPILE_CACHE or the temp dir) before the libp2p stack loads: reusing it cuts the start
 * time. Failure to cache is harmless.
 */
export async function runDaemonCommand (config: string | undefined, opts: { create: boolean, freshStore: boolean }): Promise<void> {
  const { enableCompileCache } = await import('node:module')
  enableCompileCache()
  const { runDaemon } = await import('../daemon/main.js')
  await runDaemon({ ...(config != null ? { config } : {}), create: opts.create, freshStore: opts.freshStore })
}
