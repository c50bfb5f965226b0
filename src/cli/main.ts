#!/usr/bin/env -S node --max-semi-space-size=2
// The CLI talks to the daemon only through its control socket; it never loads libp2p.
// `init` and `daemon` load their modules on demand so every other command starts fast.
import { readFileSync } from 'node:fs'
import { Command, CommanderError, Option } from 'commander'
import { ControlCallError, ControlClient, DaemonUnreachableError } from '../control/client.js'
import { resolveSocketPath } from './socket-path.js'
import { printOperation, printPeers, printId } from './output.js'

const EXIT_OK = 0
const EXIT_FAILED = 1
const EXIT_USAGE = 2
const EXIT_UNREACHABLE = 3

class CliUsageError extends Error {}

interface GlobalOptions {
  config?: string
  socket?: string
  json?: boolean
}

function globals (cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions
}

async function withClient<T> (cmd: Command, work: (client: ControlClient) => Promise<T>): Promise<T> {
  const socket = await resolveSocketPath(globals(cmd))
  const client = await ControlClient.connect(socket)
  try {
    return await work(client)
  } finally {
    client.close()
  }
}

function parseTimeout (value: string): number {
  const seconds = Number(value)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 120) throw new CliUsageError(`--timeout "${value}": expected seconds, more than 0 and at most 120`)
  return seconds
}

/** Exit code of an operation result: 0 only when every target succeeded. */
function exitCodeOf (result: { validation_status?: string }): number {
  return result.validation_status === 'success' ? EXIT_OK : EXIT_FAILED
}

async function runOperation (cmd: Command, request: Record<string, unknown>, forceJson = false): Promise<number> {
  const opts = globals(cmd)
  const result = await withClient(cmd, async client => await client.call<Record<string, unknown>>('op', request))
  if (opts.json === true || forceJson) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  else process.stdout.write(printOperation(result) + '\n')
  return exitCodeOf(result)
}

function readStdin (): string {
  try {
    return readFileSync(0, 'utf8')
  } catch (err) {
    throw new CliUsageError(`op -: cannot read standard input: ${(err as Error).message}`)
  }
}

export function buildProgram (): Command {
  const program = new Command('aitbc-mesh')
    .description('Peer-to-peer coordination for AITBC nodes: mesh status, health and operations over libp2p')
    .option('--config <file>', 'config file of the local daemon (default: $AITBC_MESH_CONFIG or /etc/aitbc/mesh.yaml)')
    .option('--socket <path>', 'control socket of the local daemon (overrides the config)')
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError()
    .exitOverride()

  program.command('init')
    .description('create an Ed25519 identity (mode 0600) and a config in a folder; an existing identity is kept')
    .requiredOption('--name <name>', 'node name, unique in the mesh (the host name is a good choice)')
    .requiredOption('--role <role>', 'genesis or follower')
    .requiredOption('--dir <dir>', 'folder for the identity, config and data')
    .option('--listen <multiaddr...>', 'listen address(es)', undefined)
    .option('--swarm-key', 'also create a private-network swarm key and name it in the config')
    .option('--force', 'rewrite an existing config (the identity is never replaced)')
    .action(async (opts: { name: string, role: string, dir: string, listen?: string[], swarmKey?: boolean, force?: boolean }, cmd: Command) => {
      const { initNode } = await import('../config/init.js')
      const g = globals(cmd)
      const result = await initNode({ ...opts, ...(g.config != null ? { config: g.config } : {}) })
      if (g.json === true) {
        process.stdout.write(JSON.stringify({ name: result.name, role: result.role, peerId: result.peerId, addrs: result.addrs, config: result.config, identity: result.identity, ...(result.swarmKey != null ? { swarmKey: result.swarmKey } : {}) }, null, 2) + '\n')
      } else {
        process.stdout.write([
          `name:      ${result.name}`,
          `role:      ${result.role}`,
          `peer id:   ${result.peerId}`,
          `addrs:     ${result.addrs.join('\n           ')}`,
          `identity:  ${result.identity}${result.identityCreated ? ' (created)' : ' (existing, kept)'}`,
          `config:    ${result.config}${result.configWritten ? ' (written)' : ' (exists, kept; --force rewrites it)'}`,
          ...(result.swarmKey != null ? [`swarm key: ${result.swarmKey} (copy it to every node)`] : []),
          '',
          'Add this line under `peers:` in the config of every other node:',
          `  ${result.peerEntry}`
        ].join('\n') + '\n')
      }
    })

  program.command('daemon')
    .description('run the daemon in the foreground (SIGTERM or SIGINT stops it cleanly)')
    .addOption(new Option('--create', 'if the config file does not exist, create it with an identity (local single-node default)'))
    .action(async (opts: { create?: boolean }, cmd: Command) => {
      const { runDaemon } = await import('../daemon/main.js')
      await runDaemon({ ...(globals(cmd).config != null ? { config: globals(cmd).config } : {}), create: opts.create === true })
    })

  program.command('id')
    .description("this node's name, peer id and listen addresses")
    .action(async (_opts, cmd: Command) => {
      const id = await withClient(cmd, async client => await client.call<Record<string, unknown>>('id'))
      process.stdout.write((globals(cmd).json === true ? JSON.stringify(id, null, 2) : printId(id)) + '\n')
    })

  program.command('peers')
    .description('mesh status: every configured node, connected or not')
    .action(async (_opts, cmd: Command) => {
      const peers = await withClient(cmd, async client => await client.call<Array<Record<string, unknown>>>('peers'))
      process.stdout.write((globals(cmd).json === true ? JSON.stringify(peers, null, 2) : printPeers(peers)) + '\n')
      process.exitCode = peers.every(p => p.status !== 'offline') ? EXIT_OK : EXIT_FAILED
    })

  for (const operation of ['status', 'health'] as const) {
    program.command(operation)
      .description(operation === 'status' ? 'node status of the targets, reported by each target itself' : 'health checks run on each target')
      .option('--target <target>', 'all, genesis, follower, a node name, or a comma-separated list', 'all')
      .option('--timeout <seconds>', 'how long to wait for the targets (at most 120)', '60')
      .action(async (opts: { target: string, timeout: string }, cmd: Command) => {
        process.exitCode = await runOperation(cmd, { operation, target_node: opts.target, timeout: parseTimeout(opts.timeout) })
      })
  }

  program.command('op')
    .description('run an operation given as JSON (argument, or - for standard input); prints the operation JSON')
    .argument('<json>', 'operation JSON, e.g. {"operation":"status","target_node":"all"}, or - to read it from standard input')
    .action(async (json: string, _opts, cmd: Command) => {
      const text = json === '-' ? readStdin() : json
      let request: unknown
      try {
        request = JSON.parse(text)
      } catch (err) {
        throw new CliUsageError(`op: invalid JSON: ${(err as Error).message}; expected e.g. {"operation":"status","target_node":"all"}`)
      }
      if (request == null || typeof request !== 'object' || Array.isArray(request)) throw new CliUsageError('op: expected a JSON object such as {"operation":"status","target_node":"all"}')
      process.exitCode = await runOperation(cmd, request as Record<string, unknown>, true)
    })

  return program
}

export async function main (argv: string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK
      return EXIT_USAGE
    }
    const message = err instanceof Error ? err.message : String(err)
    if (err instanceof DaemonUnreachableError) {
      process.stderr.write(`aitbc-mesh: ${message}\n`)
      return EXIT_UNREACHABLE
    }
    if (err instanceof ControlCallError) {
      process.stderr.write(`aitbc-mesh: ${message}\n`)
      return err.isUsageError ? EXIT_USAGE : EXIT_FAILED
    }
    const name = err instanceof Error ? err.name : ''
    if (err instanceof CliUsageError || name === 'UsageError' || name === 'ConfigError') {
      process.stderr.write(`aitbc-mesh: ${message}\n`)
      return EXIT_USAGE
    }
    process.stderr.write(`aitbc-mesh: ${message}\n`)
    return EXIT_FAILED
  }
}

const code = await main(process.argv)
// The daemon command returns only when it has stopped; other commands exit with their code.
process.exitCode = code
