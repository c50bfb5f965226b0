import { spawn } from 'node:child_process'
import type { ActionConfig } from '../config/schema.js'
import { ACTION_KILL_GRACE_MS, ACTION_OUTPUT_TAIL_BYTES } from '../constants.js'

export interface ActionResult {
  action: string
  state: 'ok' | 'failed' | 'refused' | 'timed_out'
  exit_code: number | null
  duration_ms: number
  output_tail: string
  reason: string
  destructive: boolean
  health_before: string
  health_after: string
}

/**
 * Runs a named action from this node's own config. Only names cross the wire, never commands.
 * A destructive action needs `force`, and is bracketed by health checks whose verdicts are
 * reported, so the requester sees whether the node was healthy before and after.
 */
export async function runAction (
  actions: Record<string, ActionConfig>,
  name: string,
  options: { force: boolean, timeoutMs: number, health: () => Promise<string> }
): Promise<ActionResult> {
  const action = Object.hasOwn(actions, name) ? actions[name] : undefined
  const base = { action: name, exit_code: null, duration_ms: 0, output_tail: '', destructive: action?.destructive ?? false, health_before: '', health_after: '' }
  if (action == null) {
    const known = Object.keys(actions)
    return { ...base, state: 'refused', reason: `unknown action "${name}"; configured here: ${known.length > 0 ? known.join(', ') : '(none)'}` }
  }
  if (action.destructive && !options.force) {
    return { ...base, state: 'refused', reason: `"${name}" is destructive; run it with --force` }
  }
  const timeoutMs = Math.min(options.timeoutMs, (action.timeout ?? Number.MAX_SAFE_INTEGER / 1000) * 1000)
  const healthBefore = action.destructive ? await options.health() : ''
  const started = performance.now()
  const outcome = await new Promise<{ code: number | null, timedOut: boolean, output: string, error?: string }>(resolve => {
    let output = Buffer.alloc(0)
    const keep = (chunk: Buffer): void => {
      output = Buffer.concat([output, chunk])
      if (output.length > ACTION_OUTPUT_TAIL_BYTES * 2) output = output.subarray(output.length - ACTION_OUTPUT_TAIL_BYTES)
    }
    const [program, ...args] = action.run as [string, ...string[]]
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
      setTimeout(() => { child.kill('SIGKILL') }, ACTION_KILL_GRACE_MS).unref()
    }, timeoutMs)
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.once('error', err => { clearTimeout(timer); resolve({ code: null, timedOut: false, output: '', error: err.message }) })
    child.once('close', code => { clearTimeout(timer); resolve({ code, timedOut, output: output.subarray(Math.max(0, output.length - ACTION_OUTPUT_TAIL_BYTES)).toString('utf8') }) })
  })
  const duration = Math.round(performance.now() - started)
  const healthAfter = action.destructive ? await options.health() : ''
  const common = { ...base, exit_code: outcome.code, duration_ms: duration, output_tail: outcome.output, health_before: healthBefore, health_after: healthAfter }
  if (outcome.error != null) return { ...common, state: 'failed', reason: `cannot run ${action.run[0]}: ${outcome.error}` }
  if (outcome.timedOut) return { ...common, state: 'timed_out', reason: `did not finish within ${timeoutMs} ms; stopped` }
  if (outcome.code !== 0) return { ...common, state: 'failed', reason: `exited with ${String(outcome.code)}` }
  return { ...common, state: 'ok', reason: '' }
}
