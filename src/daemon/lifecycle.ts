import type { Logger } from 'pino'
import { SHUTDOWN_STEP_TIMEOUT_MS } from '../constants.js'
import { errorMessage, withTimeout } from '../errors.js'

/** One part of the daemon: started in list order, stopped in the reverse order. */
export interface Part {
  name: string
  start?: () => Promise<void> | void
  /** Given a signal that aborts when the step's bound runs out. */
  stop?: (signal: AbortSignal) => Promise<void> | void
}

/**
 * Starts parts in order and stops the started ones in reverse, each stop bounded (libp2p's stop
 * can hang), so the stop order can never drift from the start order. A part that fails to start
 * stops the ones started before it, and the start fails with its error.
 */
export class Lifecycle {
  private readonly started: Part[] = []
  private stopping?: Promise<void>

  constructor (private readonly parts: Part[], private readonly log: Logger, private readonly stepTimeoutMs = SHUTDOWN_STEP_TIMEOUT_MS) {}

  async start (): Promise<void> {
    for (const part of this.parts) {
      if (this.stopping != null) throw new Error(`stopped while starting ${part.name}`)
      // Counted as started before it runs: a part that failed half-way is stopped too.
      this.started.push(part)
      try {
        await part.start?.()
      } catch (err) {
        await this.stop()
        throw err
      }
    }
  }

  async stop (): Promise<void> {
    this.stopping ??= this.stopAll()
    await this.stopping
  }

  private async stopAll (): Promise<void> {
    for (const part of [...this.started].reverse()) {
      if (part.stop == null) continue
      const stop = part.stop
      try {
        await withTimeout(part.name, stop, this.stepTimeoutMs)
      } catch (err) {
        this.log.warn({ event: 'shutdown_step_failed', step: part.name, err: errorMessage(err) }, 'shutdown step failed; continuing')
      }
    }
  }
}
