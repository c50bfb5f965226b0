/** Typed errors: each names what went wrong so callers and the CLI can map them to exit codes. */

export class ConfigError extends Error {
  override name = 'ConfigError'
  constructor (readonly file: string, readonly field: string, detail: string) {
    super(`${file}: ${field === '' ? '' : `${field}: `}${detail}`)
  }
}

/** Bad input from a caller (CLI, control socket, op JSON): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

export class TimeoutError extends Error {
  override name = 'TimeoutError'
}

/** `work`, or a TimeoutError naming `label` once `ms` have passed (the work itself is not cancelled). */
export async function withTimeout<T> (label: string, work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      work,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new TimeoutError(`${label} did not finish within ${ms} ms`)) }, ms) })
    ])
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
