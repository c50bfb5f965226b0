/** Typed errors: each names what went wrong so callers and the CLI can map them to exit codes. */

export class ConfigError extends Error {
  override name = 'ConfigError'
  /** `fix`: what the operator does about it, when that is more than correcting the field. */
  constructor (readonly file: string, readonly field: string, readonly detail: string, readonly fix?: string) {
    super(`${file}: ${field === '' ? '' : `${field}: `}${detail}${fix != null ? `; fix: ${fix}` : ''}`)
  }
}

/**
 * The embedded store is missing, empty or damaged where data was expected: the daemon refuses to
 * start rather than run on an empty store as if nothing had been lost. CLI exit code 2.
 */
export class StoreIntegrityError extends Error {
  override name = 'StoreIntegrityError'
  constructor (readonly file: string, readonly reason: string, readonly fix: string) {
    super(`${file}: ${reason}; fix: ${fix}`)
  }
}

/**
 * The store does not keep acknowledged writes through a crash and `store.durability` is
 * `refuse`: the daemon does not start. CLI exit code 2, like StoreIntegrityError.
 */
export class StoreDurabilityError extends Error {
  override name = 'StoreDurabilityError'
  constructor (readonly store: string, readonly reason: string, readonly fix: string) {
    super(`${store}: ${reason}; fix: ${fix}`)
  }
}

/** Bad input from a caller (CLI, control socket, op JSON): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/**
 * A send whose store write was sent but not answered: the message may or may not be stored. The
 * daemon settles it once the store answers (`message ID` tells); the CLI exits 4.
 */
export class SendOutcomeUnknownError extends Error {
  override name = 'SendOutcomeUnknownError'
  constructor (readonly messageId: string, detail: string) {
    super(`message ${messageId}: outcome not known yet: the store did not answer the write (${detail}); \`aitbc-mesh message ${messageId}\` will tell whether it was sent`)
  }
}

/**
 * Destructive work refused because this node does not see a majority of the configured nodes;
 * `unreachable` names the nodes it cannot reach. CLI exit code 5.
 */
export class NoQuorumError extends Error {
  override name = 'NoQuorumError'
  constructor (message: string, readonly unreachable: string[]) {
    super(message)
  }
}

export class TimeoutError extends Error {
  override name = 'TimeoutError'
}

/**
 * The work's result, or a TimeoutError naming `label` once `ms` have passed. Work given as a
 * function receives a signal that aborts (with that TimeoutError as its reason) at the timeout,
 * so work that takes a signal is cancelled rather than left running; a bare promise cannot be
 * cancelled, only no longer waited for.
 */
export async function withTimeout<T> (label: string, work: Promise<T> | ((signal: AbortSignal) => Promise<T> | T), ms: number): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new TimeoutError(`${label} did not finish within ${ms} ms`)
      controller.abort(err)
      reject(err)
    }, ms)
  })
  try {
    const running = typeof work === 'function' ? Promise.resolve().then(async () => await work(controller.signal)) : work
    return await Promise.race([running, timedOut])
  } finally {
    clearTimeout(timer)
  }
}

export class ProtocolError extends Error {
  override name = 'ProtocolError'
}

export class UnreachableError extends Error {
  override name = 'UnreachableError'
}

export function errorMessage (err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause
    const code = (err as { code?: unknown }).code
    let text = err.message !== '' ? err.message : err.name
    if (typeof code === 'string' && !text.includes(code)) text = `${text} (${code})`
    if (cause instanceof Error && !text.includes(cause.message)) text = `${text}: ${errorMessage(cause)}`
    return text
  }
  return String(err)
}
