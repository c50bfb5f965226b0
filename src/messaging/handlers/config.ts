import type { HandlerConfig } from '../../config/schema.js'
import { HANDLER_ENV_DENY } from '../../constants.js'

/** The handler for `kind`: an exact match, else the longest prefix (`deploy.*`), else `*`. */
export function handlerFor (handlers: readonly HandlerConfig[], kind: string): HandlerConfig | undefined {
  let best: HandlerConfig | undefined
  let bestLength = -1
  for (const handler of handlers) {
    if (handler.kind === kind) return handler
    if (!handler.kind.endsWith('*')) continue
    const prefix = handler.kind.slice(0, -1)
    if (kind.startsWith(prefix) && prefix.length > bestLength) {
      best = handler
      bestLength = prefix.length
    }
  }
  return best
}

const denied = HANDLER_ENV_DENY.map(pattern => new RegExp(`^${pattern.split('*').map(part => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i'))

/** The daemon's environment without what HANDLER_ENV_DENY names (credentials the daemon holds). */
export function handlerEnv (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(env)) {
    if (!denied.some(re => re.test(name))) out[name] = value
  }
  return out
}
