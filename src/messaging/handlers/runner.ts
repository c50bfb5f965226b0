import { spawn } from 'node:child_process'
import type { HandlerConfig } from '../../config/schema.js'
import { HANDLER_KILL_GRACE_MS, HANDLER_OUTPUT_TAIL_BYTES } from '../../constants.js'

export interface HandlerRun {
  state: 'processed' | 'handler_failed'
  /** null: stopped by a signal (a timeout), or it could not start. */
  exit_code: number | null
  /** The end of stderr; for a run that could not start or timed out, that is said first. */
  output_tail: string
  duration_ms: number
}

/** A handler program run: its input on stdin, stopped (with its whole process group) at the timeout or on abort. */
export async function runHandler (handler: HandlerConfig, input: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<HandlerRun> {
  const started = performance.now()
  const [program, ...args] = handler.run as [string, ...string[]]
  return await new Promise<HandlerRun>(resolve => {
    let stderr = Buffer.alloc(0)
    let stoppedBy: string | undefined
    // Its own process group, so a timeout stops what it started too.
    const child = spawn(program, args, { stdio: ['pipe', 'ignore', 'pipe'], env, detached: true })
    const killGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid != null) process.kill(-child.pid, sig)
      } catch {}
    }
    const stop = (why: string): void => {
      if (stoppedBy != null) return
      stoppedBy = why
      killGroup('SIGTERM')
      setTimeout(() => { killGroup('SIGKILL') }, HANDLER_KILL_GRACE_MS).unref()
    }
    const timer = setTimeout(() => { stop(`timed out after ${handler.timeout} s; its process group was stopped`) }, handler.timeout * 1000)
    const onAbort = (): void => { stop('stopped: the daemon is stopping') }
    signal?.addEventListener('abort', onAbort, { once: true })
    const finish = (run: Omit<HandlerRun, 'duration_ms'>): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      resolve({ ...run, duration_ms: Math.round(performance.now() - started) })
    }
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = Buffer.concat([stderr, chunk])
      if (stderr.length > HANDLER_OUTPUT_TAIL_BYTES * 2) stderr = stderr.subarray(stderr.length - HANDLER_OUTPUT_TAIL_BYTES)
    })
    // A handler that does not read its input closes the pipe: that is its business.
    child.stdin.on('error', () => {})
    child.stdin.end(input)
    child.once('error', err => { finish({ state: 'handler_failed', exit_code: null, output_tail: `cannot run ${program}: ${err.message}` }) })
    child.once('close', code => {
      const tail = stderr.subarray(Math.max(0, stderr.length - HANDLER_OUTPUT_TAIL_BYTES)).toString('utf8')
      if (stoppedBy != null) finish({ state: 'handler_failed', exit_code: code, output_tail: `${stoppedBy}\n${tail}`.slice(-HANDLER_OUTPUT_TAIL_BYTES) })
      else finish({ state: code === 0 ? 'processed' : 'handler_failed', exit_code: code, output_tail: tail })
    })
  })
}
