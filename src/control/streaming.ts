import type { MethodContext } from './server.js'

/** Resolves once `signal` aborts (at once if it already has). */
export async function untilAborted (signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => { signal.addEventListener('abort', () => { resolve() }, { once: true }) })
}

/** Streams every event as a notification until the client disconnects or half-closes (it will send nothing more). */
export async function streamUntilClosed<T> (ctx: MethodContext, subscribe: (notify: (event: T) => void) => () => void): Promise<{ watching: false }> {
  const unsubscribe = subscribe(event => { ctx.notify(event) })
  try {
    await untilAborted(ctx.inputEnded)
  } finally {
    unsubscribe()
  }
  return { watching: false }
}
