import { existsSync, rmSync } from 'node:fs'
import { flushCompileCache } from 'node:module'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { configPathFrom, loadConfig } from '../config/config.js'
import { initNode } from '../config/init.js'
import { SHUTDOWN_TOTAL_TIMEOUT_MS, START_FAILED_EXIT_MS } from '../constants.js'
import { errorMessage } from '../errors.js'
import { ListenAddressInUseError } from '../mesh/port-owner.js'
import { Daemon } from './daemon.js'
import { createLogger } from './logger.js'

/** A node name from the host name, for the single-node default created by `daemon --create`. */
function defaultNodeName (): string {
  const name = hostname().split('.')[0]?.toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[^a-z0-9]+/, '') ?? ''
  return name === '' || ['all', 'genesis', 'follower'].includes(name) ? 'aitbc' : name.slice(0, 63)
}

export async function runDaemon (opts: { config?: string, create: boolean, freshStore?: boolean }): Promise<void> {
  const file = configPathFrom(opts.config)
  if (opts.create && !existsSync(file)) {
    // The embedded default: a lone genesis node on loopback, everything under the config's folder.
    const created = await initNode({ name: defaultNodeName(), role: 'genesis', dir: dirname(file), config: file, listen: ['/ip4/127.0.0.1/tcp/7070'] })
    process.stderr.write(`created ${created.config} and identity ${created.identity} (peer id ${created.peerId})\n`)
  }
  const config = loadConfig(file)
  const log = createLogger({ node: config.node.name }, config.logLevel)

  let daemon: Daemon
  try {
    daemon = await Daemon.start(config, log, { freshStore: opts.freshStore === true })
  } catch (err) {
    log.fatal({ event: 'start_failed', err: errorMessage(err), ...(err instanceof ListenAddressInUseError ? err.logFields() : {}) }, 'daemon failed to start')
    log.flush()
    // The start closed what it opened; if anything still holds the event loop, exit anyway (with
    // the code the CLI sets) so systemd sees the failure instead of a process that never ends.
    setTimeout(() => {
      log.error({ event: 'start_failed_exit_forced' }, `still running ${START_FAILED_EXIT_MS} ms after the failed start; exiting`)
      log.flush()
      process.exit()
    }, START_FAILED_EXIT_MS).unref()
    throw err
  }

  // Every module the daemon needs is loaded: write the compiled-code cache now (if the CLI turned
  // it on) and free the copy Node keeps of it until exit (about 5 MB, which later allocations reuse).
  flushCompileCache()

  process.on('unhandledRejection', reason => {
    log.error({ event: 'unhandled_rejection', err: errorMessage(reason) }, 'unhandled promise rejection')
  })

  await new Promise<void>(resolve => {
    let signalled = false
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        log.warn({ event: 'forced_exit', signal }, 'second signal: exiting now')
        process.exit(1)
      }
      signalled = true
      log.info({ event: 'stopping', signal }, 'stopping')
      // A hard bound in case a step ignores its own timeout.
      const hard = setTimeout(() => {
        log.error({ event: 'shutdown_timeout' }, `shutdown took over ${SHUTDOWN_TOTAL_TIMEOUT_MS} ms; exiting`)
        rmSync(config.controlSocket, { force: true })
        process.exit(1)
      }, SHUTDOWN_TOTAL_TIMEOUT_MS)
      hard.unref()
      void daemon.stop().finally(() => {
        clearTimeout(hard)
        resolve()
      })
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    // `systemctl reload` sends SIGHUP: re-read the config; a bad one is logged and changes nothing.
    process.on('SIGHUP', () => {
      log.info({ event: 'reload_requested', signal: 'SIGHUP' }, 'reloading the config')
      daemon.reload().catch(() => {})
    })
  })
  log.flush()
  // libp2p may leave timers behind; the process is done.
  process.exit(0)
}
