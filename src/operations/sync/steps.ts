import { z } from 'zod'
import type { MeshConfig } from '../../config/config.js'
import { PROBE_HTTP_TIMEOUT_MS, SYNC_MAX_CONFIG_FILES } from '../../constants.js'
import { errorMessage, UsageError } from '../../errors.js'
import type { ActionResult } from '../actions.js'
import { fitText } from './answers.js'
import { hashFiles, readFiles, writeFiles } from './config-files.js'
import { applyRepo, inspectRepo } from './git.js'

export const SYNC_STEPS = ['git.inspect', 'git.apply', 'blockchain.catch_up', 'config.inspect', 'config.read', 'config.write'] as const
export type SyncStep = typeof SYNC_STEPS[number]

const writePayload = z.object({
  files: z.array(z.object({ path: z.string().min(1), content_base64: z.string() }).strict()).max(SYNC_MAX_CONFIG_FILES)
}).strict()

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
      const result = await applyRepo(repo(), ctx.force, ctx.timeoutMs)
      if (['up_to_date', 'fast_forwarded', 'reset'].includes(result.state)) ctx.markSynced()
      return result
    }
    case 'blockchain.catch_up': {
      const catchUp = config.sync.catchUp
      if (catchUp == null) return { state: 'refused', reason: 'no sync.catchUp is configured on this node' }
      if ('action' in catchUp) {
        const result = await ctx.runAction(catchUp.action, ctx.force, ctx.timeoutMs)
        const reason = fitText(result.reason)
        return { state: result.state, reason, action: { ...result, reason } }
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
      if (files.every(f => f.state === 'written')) ctx.markSynced()
      return { files }
    }
    default:
      throw new UsageError(`unknown sync step "${step}"; known: ${SYNC_STEPS.join(', ')}`)
  }
}
