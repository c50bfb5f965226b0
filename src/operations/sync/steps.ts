import { z } from 'zod'
import type { MeshConfig } from '../../config/config.js'
import { CONFIG_SYNC_MAX_FILE_BYTES, CONFIG_SYNC_MAX_KEY_CHARS, CONFIG_SYNC_MAX_KEYS, PROBE_HTTP_TIMEOUT_MS, SYNC_MAX_CONFIG_FILES } from '../../constants.js'
import { ENV_KEY_PATTERN } from '../../config/schema.js'
import { errorMessage, UsageError } from '../../errors.js'
import type { ActionResult } from '../actions.js'
import { fitAction, fitText } from './answers.js'
import { hashFiles, readFiles, writeFiles } from './config-files.js'
import { applyRepo, inspectRepo, type GitApplyResult } from './git.js'

export const SYNC_STEPS = ['git.inspect', 'git.apply', 'blockchain.catch_up', 'config.inspect', 'config.read', 'config.write'] as const
export type SyncStep = typeof SYNC_STEPS[number]

const writePayload = z.object({
  files: z.array(z.union([
    z.object({ path: z.string().min(1), content_base64: z.string() }).strict(),
    z.object({
      path: z.string().min(1),
      keys: z.literal('env'),
      set: z.array(z.object({
        key: z.string().max(CONFIG_SYNC_MAX_KEY_CHARS).regex(ENV_KEY_PATTERN, 'expected a key name of letters, digits and "_"'),
        // One line each: a line break in a value would add assignments of its own.
        value: z.string().max(CONFIG_SYNC_MAX_FILE_BYTES).regex(/^[^\r\n\0]*$/, 'expected a value on one line')
      }).strict()).max(CONFIG_SYNC_MAX_KEYS)
    }).strict()
  ])).max(SYNC_MAX_CONFIG_FILES)
}).strict()

/** What a target answers when asked to catch up without a configured way to. */
export const NO_CATCH_UP = 'no sync.catchUp is configured on this node; for AITBC add the action ' +
  'blockchain-sync: { run: [systemctl, start, aitbc-blockchain-sync.service] } and sync.catchUp: { action: blockchain-sync }'

export interface SyncStepContext {
  config: MeshConfig
  force: boolean
  timeoutMs: number
  runAction: (name: string, force: boolean, timeoutMs: number) => Promise<ActionResult>
  /** Records that this node finished a sync now (reported as last_sync). */
  markSynced: () => void
}

/**
 * One step of a sync, run by the target on itself from its own config: which repository, which
 * files and which catch-up are the target's business; the request only names the step.
 */
export async function runSyncStep (step: string, payload: unknown, ctx: SyncStepContext): Promise<unknown> {
  const { config } = ctx
  const repo = (): string => {
    if (config.probes.repo == null) throw new UsageError('probes.repo is not configured on this node')
    return config.probes.repo
  }
  switch (step) {
    case 'git.inspect':
      return await inspectRepo(repo(), ctx.timeoutMs)
    case 'git.apply': {
      const result: GitApplyResult & { after_git?: ActionResult } = await applyRepo(repo(), ctx.force, ctx.timeoutMs)
      if (!['up_to_date', 'fast_forwarded', 'reset'].includes(result.state)) return result
      // The checkout moved: run what the repository needs after an update (AITBC's update script).
      const afterGit = config.sync.afterGit
      if (afterGit != null && result.head_after != null && result.head_after !== result.head_before) {
        result.after_git = fitAction(await ctx.runAction(afterGit.action, ctx.force, ctx.timeoutMs))
        if (result.after_git.state !== 'ok') return result
      }
      ctx.markSynced()
      return result
    }
    case 'blockchain.catch_up': {
      const catchUp = config.sync.catchUp
      if (catchUp == null) return { state: 'refused', reason: NO_CATCH_UP }
      if ('action' in catchUp) {
        const result = fitAction(await ctx.runAction(catchUp.action, ctx.force, ctx.timeoutMs))
        return { state: result.state, reason: result.reason, action: result }
      }
      if (config.probes.rpc == null) return { state: 'refused', reason: 'sync.catchUp.post needs probes.rpc' }
      const url = config.probes.rpc + catchUp.post
      try {
        const res = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(Math.min(ctx.timeoutMs, PROBE_HTTP_TIMEOUT_MS * 5)) })
        await res.text().catch(() => '')
        return { state: res.ok ? 'ok' : 'failed', reason: fitText(res.ok ? `POST ${url}: ${res.status}` : `POST ${url} returned HTTP ${res.status}`) }
      } catch (err) {
        return { state: 'failed', reason: fitText(`POST ${url} failed: ${errorMessage(err)}`) }
      }
    }
    case 'config.inspect':
      return { files: hashFiles(config.probes.configFiles) }
    case 'config.read':
      return { files: readFiles(config.probes.configFiles) }
    case 'config.write': {
      if (!ctx.force) return { state: 'refused', reason: 'overwriting configuration files needs --force' }
      const parsed = writePayload.safeParse(payload)
      if (!parsed.success) throw new UsageError(`config.write: ${parsed.error.issues[0]?.message ?? 'invalid payload'}`)
      const files = writeFiles(parsed.data.files, config.probes.configFiles)
      if (files.every(f => f.state === 'written' || f.state === 'unchanged')) ctx.markSynced()
      return { files }
    }
    default:
      throw new UsageError(`unknown sync step "${step}"; known: ${SYNC_STEPS.join(', ')}`)
  }
}
