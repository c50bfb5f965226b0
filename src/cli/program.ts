// Every command, parsed by commander. main.ts runs the most common ones without loading this.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { enableCompileCache } from 'node:module'
import { Command, CommanderError, Option } from 'commander'
import { packageVersion } from './version.js'
import { printReload, printOpList, printOpRecord, printAgentTable, printInboxHeader, printInboxLine, printMessage, printPeers, printMeshView, printId } from './output.js'
import { CliUsageError, EXIT_FAILED, EXIT_OK, EXIT_OUTCOME_UNKNOWN, EXIT_USAGE, parseTimeout, reportError, runDaemonCommand, runOperation, withClient, type GlobalOptions } from './run.js'

/**
 * Cache compiled code on disk (NODE_COMPILE_CACHE or the temp dir) before loading a large module
 * tree (init, doctor, probe, config): reusing the compiled code cuts their start time.
 * Only those commands call it: turning the cache on costs a short command more than it saves.
 * Failure to cache is harmless.
 */
function cacheCompiledCode (): void {
  enableCompileCache()
}

interface SendOptions { to?: string, toCapability?: string, agentType?: string, minHealth?: string, ttl: string, kind: string, wait?: boolean, processed?: boolean, timeout: string }

/** For a routed send: which agent, on which node. */
function routedTo (sent: Record<string, unknown>): string {
  const targets = sent.targets as Record<string, { agent_id?: string }>
  const [node, target] = Object.entries(targets)[0] ?? []
  return target?.agent_id != null ? ` (agent ${target.agent_id} on ${String(node)})` : ''
}

function globals (cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions
}

const OVERRIDE_QUORUM_HELP = 'run destructive work even though this node (or a target) does not see a majority of the configured nodes: a deliberate decision, logged on every node it runs on'

/** Sent only when given, so a daemon without the field still takes the request. */
function overrideQuorum (o: { overrideQuorum?: boolean }): { override_quorum?: true } {
  return o.overrideQuorum === true ? { override_quorum: true } : {}
}

function readStdin (): string {
  try {
    return readFileSync(0, 'utf8')
  } catch (err) {
    throw new CliUsageError(`op -: cannot read standard input: ${(err as Error).message}`)
  }
}

/** Every command, in the order help lists them. */
const COMMAND_NAMES = ['init', 'daemon', 'doctor', 'probe', 'config', 'reload', 'id', 'peers', 'status', 'health', 'agents', 'send', 'message', 'inbox', 'sync', 'coordinate', 'ops', 'op'] as const

/**
 * The command argv names, when it is clear (only global options before it, a known name), so only
 * that one is defined: defining all of them costs a short command more than its own work. Help,
 * unknown names and anything unclear get every command, so help and suggestions stay whole.
 */
function commandNamedIn (argv: string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--json' || arg.startsWith('--config=') || arg.startsWith('--socket=')) continue
    if (arg === '--config' || arg === '--socket') {
      i++
      continue
    }
    return (COMMAND_NAMES as readonly string[]).includes(arg) ? arg : undefined
  }
  return undefined
}

/** The CLI program; given argv, only the command it names (see commandNamedIn). */
export function buildProgram (argv?: string[]): Command {
  const named = argv != null ? commandNamedIn(argv) : undefined
  const wants = (name: string): boolean => named == null || named === name
  const program = new Command('aitbc-mesh')
    .description('Peer-to-peer coordination for AITBC nodes: mesh status, health and operations over libp2p')
    .option('--config <file>', 'config file of the local daemon (default: $AITBC_MESH_CONFIG or /etc/aitbc/mesh.yaml)')
    .option('--socket <path>', 'control socket of the local daemon (overrides the config)')
    .option('--json', 'machine-readable JSON output')
    .version(packageVersion(), '-V, --version', 'print the version of aitbc-mesh')
    .showHelpAfterError()
    .exitOverride()

  if (wants('init')) {
    program.command('init')
      .description('create an Ed25519 identity (mode 0600) and a config in a folder; an existing identity is kept')
      .requiredOption('--name <name>', 'node name, unique in the mesh (the host name is a good choice)')
      .requiredOption('--role <role>', 'genesis or follower')
      .requiredOption('--dir <dir>', 'folder for the identity, config and data')
      .option('--listen <multiaddr...>', 'listen address(es)', undefined)
      .option('--swarm-key', 'also create a private-network swarm key and name it in the config')
      .option('--force', 'rewrite an existing config (the identity is never replaced)')
      .option('--control-socket <path>', 'control socket the config names (default: <dir>/mesh.sock; under systemd: /run/aitbc/mesh.sock)')
      .action(async (opts: { name: string, role: string, dir: string, listen?: string[], swarmKey?: boolean, force?: boolean, controlSocket?: string }, cmd: Command) => {
        cacheCompiledCode()
        const { initNode } = await import('../config/init.js')
        const g = globals(cmd)
        const { controlSocket, ...rest } = opts
        const result = await initNode({ ...rest, ...(g.config != null ? { config: g.config } : {}), ...(controlSocket != null ? { controlSocket: resolve(controlSocket) } : {}) })
        // A held listen port is a warning, not a failure: it may be freed before the daemon starts.
        for (const warning of result.warnings) process.stderr.write(`aitbc-mesh: warning: ${warning}\n`)
        if (g.json === true) {
          process.stdout.write(JSON.stringify({ name: result.name, role: result.role, peerId: result.peerId, addrs: result.addrs, config: result.config, identity: result.identity, ...(result.swarmKey != null ? { swarmKey: result.swarmKey } : {}), addPeer: result.addPeerCommand, ...(result.warnings.length > 0 ? { warnings: result.warnings } : {}) }, null, 2) + '\n')
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
            'To admit this node, run on every other node (then `aitbc-mesh reload` there):',
            `  ${result.addPeerCommand}`
          ].join('\n') + '\n')
        }
      })
  }

  if (wants('daemon')) {
    program.command('daemon')
      .description('run the daemon in the foreground (SIGTERM or SIGINT stops it cleanly)')
      .addOption(new Option('--create', 'if the config file does not exist, create it with an identity (local single-node default)'))
      .addOption(new Option('--fresh-store', 'if the embedded store is missing, empty or damaged, move it aside (store.sqlite.damaged.<time>) and start with an empty one; an intact store is kept'))
      .action(async (opts: { create?: boolean, freshStore?: boolean }, cmd: Command) => {
        await runDaemonCommand(globals(cmd).config, { create: opts.create === true, freshStore: opts.freshStore === true })
      })
  }

  if (wants('doctor')) {
    program.command('doctor')
      .description('check this node, each with PASS or FAIL and a fix: config, identity key, swarm key, listen port, Redis, blockchain RPC, the daemon, each peer over the mesh (and SSH), clock skew; exit 0 only if all pass')
      .action(async (_o, cmd: Command) => {
        cacheCompiledCode()
        const [{ runDoctor, formatCheck }, { configPathFrom }] = await Promise.all([import('../doctor/doctor.js'), import('../config/config.js')])
        const g = globals(cmd)
        const checks = await runDoctor(configPathFrom(g.config), { ...(g.socket != null ? { socket: resolve(g.socket) } : {}) })
        process.stdout.write((g.json === true ? JSON.stringify(checks, null, 2) : checks.map(formatCheck).join('\n')) + '\n')
        process.exitCode = checks.every(c => c.ok) ? EXIT_OK : EXIT_FAILED
      })
  }

  if (wants('probe')) {
    program.command('probe')
      .description("run this node's own probes without the daemon and print its report (what the SSH fallback runs)")
      .action(async (_o, cmd: Command) => {
        cacheCompiledCode()
        const { probeOnce } = await import('../operations/probe-once.js')
        const { configPathFrom } = await import('../config/config.js')
        const report = await probeOnce(configPathFrom(globals(cmd).config))
        process.stdout.write(JSON.stringify(report, null, globals(cmd).json === true ? undefined : 2) + '\n')
      })
  }

  if (wants('config')) {
    const configCmd = program.command('config').description("edit this node's config file (comments and layout are kept); `reload` applies it")
    const applyAfterEdit = async (cmd: Command, reload: boolean | undefined, what: string): Promise<void> => {
      if (reload !== true) {
        process.stdout.write(`${what}; run \`aitbc-mesh reload\` (or \`systemctl reload aitbc-mesh\`) to apply it\n`)
        return
      }
      const result = await withClient(globals(cmd), async client => await client.call<Record<string, unknown>>('reload'))
      process.stdout.write(`${what}; reloaded: ${printReload(result)}\n`)
    }
    configCmd.command('add-peer')
      .description('add a node to the allowlist (the line `aitbc-mesh init` printed on that node)')
      .argument('<name>', "the node's name")
      .argument('<multiaddr>', 'its address with peer id: /ip4/<address>/tcp/7070/p2p/<peer id>')
      .addOption(new Option('--role <role>', 'genesis or follower').choices(['genesis', 'follower']).default('follower'))
      .option('--reload', 'then ask the running daemon to apply it')
      .action(async (name: string, addr: string, o: { role: 'genesis' | 'follower', reload?: boolean }, cmd: Command) => {
        cacheCompiledCode()
        const [{ addPeer }, { configPathFrom }] = await Promise.all([import('../config/edit.js'), import('../config/config.js')])
        const file = configPathFrom(globals(cmd).config)
        const added = addPeer({ file, name, role: o.role, addr })
        await applyAfterEdit(cmd, o.reload, `added ${added.name} (${added.role}) to ${file}`)
      })
    configCmd.command('remove-peer')
      .description('remove a node from the allowlist; after a reload its connections are closed and it is refused')
      .argument('<name>', "the node's name")
      .option('--reload', 'then ask the running daemon to apply it')
      .action(async (name: string, o: { reload?: boolean }, cmd: Command) => {
        cacheCompiledCode()
        const [{ removePeer }, { configPathFrom }] = await Promise.all([import('../config/edit.js'), import('../config/config.js')])
        const file = configPathFrom(globals(cmd).config)
        removePeer({ file, name })
        await applyAfterEdit(cmd, o.reload, `removed ${name} from ${file}`)
      })
  }

  if (wants('reload')) {
    program.command('reload')
      .description('make the daemon re-read its config: peers, probes, actions, sync and log level apply without a restart')
      .action(async (_o, cmd: Command) => {
        const result = await withClient(globals(cmd), async client => await client.call<Record<string, unknown>>('reload'))
        process.stdout.write((globals(cmd).json === true ? JSON.stringify(result, null, 2) : `reloaded ${String(result.file)}: ${printReload(result)}`) + '\n')
      })
  }

  if (wants('id')) {
    program.command('id')
      .description("this node's name, peer id and listen addresses")
      .action(async (_opts, cmd: Command) => {
        const id = await withClient(globals(cmd), async client => await client.call<Record<string, unknown>>('id'))
        process.stdout.write((globals(cmd).json === true ? JSON.stringify(id, null, 2) : printId(id)) + '\n')
      })
  }

  if (wants('peers')) {
    program.command('peers')
      .description('mesh status: every configured node, connected or not')
      .action(async (_opts, cmd: Command) => {
        const [peers, view] = await withClient(globals(cmd), async client => await Promise.all([
          client.call<Array<Record<string, unknown>>>('peers'),
          client.call<Record<string, unknown>>('mesh')
        ]))
        process.stdout.write((globals(cmd).json === true ? JSON.stringify({ mesh_view: view, nodes: peers }, null, 2) : printPeers(peers) + '\n' + printMeshView(view)) + '\n')
        process.exitCode = peers.every(p => p.status !== 'offline') ? EXIT_OK : EXIT_FAILED
      })
  }

  for (const operation of ['status', 'health'] as const) {
    if (!wants(operation)) continue
    program.command(operation)
      .description(operation === 'status' ? 'node status of the targets, reported by each target itself' : 'health checks run on each target')
      .option('--target <target>', 'all, genesis, follower, a node name, or a comma-separated list', 'all')
      .option('--timeout <seconds>', 'how long to wait for the targets (at most 120)', '60')
      .action(async (opts: { target: string, timeout: string }, cmd: Command) => {
        process.exitCode = await runOperation(globals(cmd), { operation, target_node: opts.target, timeout: parseTimeout(opts.timeout) })
      })
  }

  if (wants('agents')) {
    const agents = program.command('agents').description('the agent registry, replicated on every node')
    const collect = (value: string, previous: string[] = []): string[] => [...previous, value]
    const pairs = (flag: string, values: string[] | undefined, numeric: boolean): Record<string, string | number> => {
      const out: Record<string, string | number> = {}
      for (const item of values ?? []) {
        const eq = item.indexOf('=')
        if (eq <= 0) throw new CliUsageError(`${flag} "${item}": expected KEY=VALUE`)
        const key = item.slice(0, eq)
        const raw = item.slice(eq + 1)
        if (numeric) {
          const n = Number(raw)
          if (raw === '' || !Number.isFinite(n)) throw new CliUsageError(`${flag} "${item}": expected a number after "="`)
          out[key] = n
        } else out[key] = raw
      }
      return out
    }
    const printAgents = (cmd: Command, records: Array<Record<string, unknown>>): void => {
      if (globals(cmd).json === true) {
        process.stdout.write(JSON.stringify(records, null, 2) + '\n')
        return
      }
      process.stdout.write(printAgentTable(records) + '\n')
    }

    agents.command('register')
      .description('register (or re-register) an agent on this node; every node learns of it')
      .requiredOption('--id <id>', 'agent id')
      .requiredOption('--type <type>', 'agent type: coordinator, worker, specialist, monitor, gateway or orchestrator (the AITBC coordinator\'s)')
      .option('--status <status>', 'active, inactive, busy, maintenance or error', 'active')
      .option('--capability <c>', 'a capability (repeatable)', collect)
      .option('--service <s>', 'a service (repeatable)', collect)
      .option('--endpoint <name=url>', 'an endpoint (repeatable)', collect)
      .option('--meta <k=v>', 'a metadata entry (repeatable)', collect)
      .option('--tag <t>', 'a tag (repeatable)', collect)
      .option('--version <v>', 'agent version')
      .option('--chain <id>', 'chain id (default: agents.chainId of the config, else ait-hub)')
      .option('--island <id>', 'island id (default: agents.islandId of the config)')
      .action(async (o: { id: string, type: string, status: string, capability?: string[], service?: string[], endpoint?: string[], meta?: string[], tag?: string[], version?: string, chain?: string, island?: string }, cmd: Command) => {
        const record = await withClient(globals(cmd), async client => await client.call<Record<string, unknown>>('agents.register', {
          agent_id: o.id,
          agent_type: o.type,
          status: o.status,
          capabilities: o.capability ?? [],
          services: o.service ?? [],
          endpoints: pairs('--endpoint', o.endpoint, false),
          metadata: pairs('--meta', o.meta, false),
          tags: o.tag ?? [],
          ...(o.version != null ? { version: o.version } : {}),
          ...(o.chain != null ? { chain_id: o.chain } : {}),
          ...(o.island != null ? { island_id: o.island } : {})
        }))
        printAgents(cmd, [record])
      })

    agents.command('heartbeat')
      .description("record an agent's heartbeat, optionally with a status and load metrics")
      .argument('<id>', 'agent id')
      .option('--status <status>', 'active, inactive, busy, maintenance or error')
      .option('--load <k=v>', 'a load metric between 0 and 1 (repeatable)', collect)
      .action(async (id: string, o: { status?: string, load?: string[] }, cmd: Command) => {
        const record = await withClient(globals(cmd), async client => await client.call<Record<string, unknown>>('agents.heartbeat', {
          agent_id: id,
          ...(o.status != null ? { status: o.status } : {}),
          ...(o.load != null ? { load_metrics: pairs('--load', o.load, true) } : {})
        }))
        printAgents(cmd, [record])
      })

    agents.command('remove')
      .description('remove an agent from every node')
      .argument('<id>', 'agent id')
      .action(async (id: string, _o, cmd: Command) => {
        const result = await withClient(globals(cmd), async client => await client.call<Record<string, unknown>>('agents.remove', { agent_id: id }))
        process.stdout.write(globals(cmd).json === true ? JSON.stringify(result, null, 2) + '\n' : `removed ${id}\n`)
      })

    agents.command('list')
      .description('agents known to this node, best health first (AITBC discovery filters)')
      .option('--type <type>', 'agent type (exact)')
      .option('--status <status>', 'status (exact)')
      .option('--capability <c>', 'required capability (repeatable)', collect)
      .option('--service <s>', 'required service (repeatable)', collect)
      .option('--tag <t>', 'required tag (repeatable)', collect)
      .option('--min-health <x>', 'minimum health score, 0 to 1')
      .option('--limit <n>', 'at most this many')
      .action(async (o: { type?: string, status?: string, capability?: string[], service?: string[], tag?: string[], minHealth?: string, limit?: string }, cmd: Command) => {
        const minHealth = o.minHealth != null ? Number(o.minHealth) : undefined
        if (minHealth != null && (!Number.isFinite(minHealth) || minHealth < 0 || minHealth > 1)) throw new CliUsageError(`--min-health "${o.minHealth}": expected a number from 0 to 1`)
        const limit = o.limit != null ? Number(o.limit) : undefined
        if (limit != null && (!Number.isInteger(limit) || limit < 1)) throw new CliUsageError(`--limit "${o.limit}": expected a whole number of at least 1`)
        const records = await withClient(globals(cmd), async client => await client.call<Array<Record<string, unknown>>>('agents.list', {
          ...(o.type != null ? { agent_type: o.type } : {}),
          ...(o.status != null ? { status: o.status } : {}),
          capabilities: o.capability ?? [],
          services: o.service ?? [],
          tags: o.tag ?? [],
          ...(minHealth != null ? { min_health_score: minHealth } : {}),
          ...(limit != null ? { limit } : {})
        }))
        printAgents(cmd, records)
      })
  }

  if (wants('send')) {
    program.command('send')
      .description('send a coordination message; each target stores it once and returns a receipt')
      .option('--to <target>', 'all, genesis, follower, a node name, or a comma-separated list')
      .option('--to-capability <capability>', 'to the best active agent with this capability (health, then least load), on its node')
      .option('--agent-type <type>', 'with --to-capability: only agents of this type')
      .option('--min-health <score>', 'with --to-capability: only agents with at least this health score (0 to 1)')
      .option('--ttl <seconds>', 'give up on a target after this long (1 s to 7 days)', '3600')
      .option('--kind <kind>', 'message kind', 'text')
      .option('--wait', 'wait until every target has receipted or failed')
      .option('--processed', 'with --wait: wait until every target\'s handler processed it, or one failed')
      .option('--timeout <seconds>', 'with --wait: how long to wait (at most 120)', '60')
      .argument('<message>', 'the message text (at most 64 KiB)')
      .action(async (text: string, o: SendOptions, cmd: Command) => {
        const ttl = Number(o.ttl)
        if (!Number.isInteger(ttl)) throw new CliUsageError(`--ttl "${o.ttl}": expected whole seconds, from 1 to 604800`)
        if ((o.to == null) === (o.toCapability == null)) throw new CliUsageError('send: give either --to <target> or --to-capability <capability>')
        if (o.toCapability == null && (o.agentType != null || o.minHealth != null)) throw new CliUsageError('send: --agent-type and --min-health go with --to-capability')
        if (o.processed === true && o.wait !== true) throw new CliUsageError('send: --processed goes with --wait')
        const minHealth = o.minHealth != null ? Number(o.minHealth) : undefined
        if (minHealth != null && !(minHealth >= 0 && minHealth <= 1)) throw new CliUsageError(`--min-health "${String(o.minHealth)}": expected a health score from 0 to 1`)
        const timeout = parseTimeout(o.timeout)
        const json = globals(cmd).json === true
        const processed = o.processed === true
        await withClient(globals(cmd), async client => {
          const sent = o.toCapability != null
            ? await client.call<Record<string, unknown>>('messages.route', { to_capability: o.toCapability, ...(o.agentType != null ? { agent_type: o.agentType } : {}), ...(minHealth != null ? { min_health: minHealth } : {}), body: text, kind: o.kind, ttl })
            : await client.call<Record<string, unknown>>('messages.send', { to: o.to, body: text, kind: o.kind, ttl })
          if (sent.outcome === 'no_candidate') {
            process.stdout.write(json ? JSON.stringify(sent, null, 2) + '\n' : `no candidate: ${String(sent.reason)}\n`)
            process.exitCode = EXIT_FAILED
            return
          }
          if (o.wait !== true) {
            process.stdout.write(json ? JSON.stringify(sent, null, 2) + '\n' : `${String(sent.id)}${routedTo(sent)}\n`)
            return
          }
          if (!json) process.stdout.write(`message ${String(sent.id)} to ${Object.keys(sent.targets as object).join(', ')}${routedTo(sent)}\n`)
          const done = await client.call<Record<string, unknown>>('messages.wait', { id: sent.id, timeout, processed }, {
            onEvent: event => {
              if (json) return
              const e = event as { node: string, state: string, reason?: string, exit_code?: number | null, handler?: boolean }
              const detail = e.reason ?? (e.exit_code !== undefined ? `exit ${e.exit_code === null ? 'by signal' : String(e.exit_code)}` : e.handler === false ? `no handler for kind ${o.kind}` : undefined)
              process.stdout.write(`  ${e.node}: ${e.state}${detail != null ? ` (${detail})` : ''}\n`)
            }
          })
          process.stdout.write(json ? JSON.stringify(done, null, 2) + '\n' : printMessage(done) + '\n')
          const success = done.success as { delivered: boolean, processed: boolean }
          process.exitCode = (processed ? success.processed : success.delivered) ? EXIT_OK : EXIT_FAILED
        })
      })
  }

  if (wants('message')) {
    program.command('message')
      .description('a message sent from this node, with each target\'s delivery state')
      .argument('<id>', 'message id')
      .action(async (id: string, _o, cmd: Command) => {
        const message = await withClient(globals(cmd), async client => await client.call<Record<string, unknown>>('messages.get', { id }))
        process.stdout.write(globals(cmd).json === true ? JSON.stringify(message, null, 2) + '\n' : printMessage(message) + '\n')
        if (message.outcome === 'unknown') process.exitCode = EXIT_OUTCOME_UNKNOWN
        else if (message.outcome === 'not_sent') process.exitCode = EXIT_FAILED
        else process.exitCode = (message.success as { delivered: boolean }).delivered ? EXIT_OK : EXIT_FAILED
      })
  }

  if (wants('inbox')) {
    program.command('inbox')
      .description('messages this node received, oldest first')
      .option('--since <id|time>', 'only messages after this message id or ISO time')
      .option('--limit <n>', 'at most this many', '1000')
      .option('--follow', 'keep printing new messages as they arrive')
      .action(async (o: { since?: string, limit: string, follow?: boolean }, cmd: Command) => {
        const json = globals(cmd).json === true
        const limit = Number(o.limit)
        if (!Number.isInteger(limit) || limit < 1) throw new CliUsageError(`--limit "${o.limit}": expected a whole number of at least 1`)
        await withClient(globals(cmd), async client => {
          if (o.follow === true) {
            if (!json) process.stdout.write(printInboxHeader() + '\n')
            await client.call('inbox.follow', { ...(o.since != null ? { since: o.since } : {}) }, {
              onEvent: message => { process.stdout.write((json ? JSON.stringify(message) : printInboxLine(message as Record<string, unknown>)) + '\n') }
            })
            return
          }
          const messages = await client.call<Array<Record<string, unknown>>>('inbox.list', { ...(o.since != null ? { since: o.since } : {}), limit })
          process.stdout.write(json ? JSON.stringify(messages, null, 2) + '\n' : [printInboxHeader(), ...messages.map(printInboxLine)].join('\n') + '\n')
        })
      })
  }

  if (wants('sync')) {
    program.command('sync')
      .description('sync run locally on each target: git checkout, blockchain height, mempool, configuration files')
      .requiredOption('--type <type>', 'blockchain, mempool, configuration, git or all')
      .option('--target <target>', 'all, genesis, follower, a node name, or a comma-separated list', 'all')
      .option('--force', 'reset diverged or dirty checkouts, overwrite drifted config files (with a backup)')
      .option('--no-verify', 'do not check the result against the genesis node / the highest block')
      .option('--override-quorum', OVERRIDE_QUORUM_HELP)
      .option('--timeout <seconds>', 'how long the sync may take (at most 120)', '60')
      .action(async (o: { type: string, target: string, force?: boolean, verify: boolean, overrideQuorum?: boolean, timeout: string }, cmd: Command) => {
        process.exitCode = await runOperation(globals(cmd), { operation: 'sync', sync_type: o.type, target_node: o.target, force: o.force === true, verify: o.verify, ...overrideQuorum(o), timeout: parseTimeout(o.timeout) })
      })
  }

  if (wants('coordinate')) {
    program.command('coordinate')
      .description("run a named action from each target's own config (destructive ones need --force)")
      .argument('<action>', 'action name, as configured under actions: on the targets')
      .option('--target <target>', 'all, genesis, follower, a node name, or a comma-separated list', 'all')
      .option('--force', 'allow destructive actions')
      .option('--sequential', 'one node after the other, stopping at the first failure')
      .option('--override-quorum', OVERRIDE_QUORUM_HELP)
      .option('--timeout <seconds>', 'how long each node may take (at most 120)', '60')
      .action(async (action: string, o: { target: string, force?: boolean, sequential?: boolean, overrideQuorum?: boolean, timeout: string }, cmd: Command) => {
        process.exitCode = await runOperation(globals(cmd), { operation: 'coordinate', target_node: o.target, action, force: o.force === true, sequential: o.sequential === true, ...overrideQuorum(o), timeout: parseTimeout(o.timeout) })
      })
  }

  if (wants('ops')) {
    program.command('ops')
      .description('operations run from this node (kept across restarts); with an id, that one in full')
      .argument('[id]', 'operation id')
      .option('--limit <n>', 'how many recent ones', '20')
      .action(async (id: string | undefined, o: { limit: string }, cmd: Command) => {
        const json = globals(cmd).json === true
        await withClient(globals(cmd), async client => {
          if (id != null) {
            const record = await client.call<Record<string, unknown>>('ops.get', { id })
            process.stdout.write(json ? JSON.stringify(record, null, 2) + '\n' : printOpRecord(record) + '\n')
            return
          }
          const limit = Number(o.limit)
          if (!Number.isInteger(limit) || limit < 1) throw new CliUsageError(`--limit "${o.limit}": expected a whole number of at least 1`)
          const records = await client.call<Array<Record<string, unknown>>>('ops.list', { limit })
          process.stdout.write(json ? JSON.stringify(records, null, 2) + '\n' : printOpList(records) + '\n')
        })
      })
  }

  if (wants('op')) {
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
        process.exitCode = await runOperation(globals(cmd), request as Record<string, unknown>, true)
      })
  }

  return program
}

/** Runs argv through the full command-line parser; returns the exit code. */
export async function runProgram (argv: string[]): Promise<number> {
  const program = buildProgram(argv)
  try {
    await program.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK
      return EXIT_USAGE
    }
    return reportError(err)
  }
}
