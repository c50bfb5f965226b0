import type { ControlMethod } from './server.js'

export type ControlMethods = Record<string, ControlMethod>

/**
 * The control socket's method table, put together from each service's own methods (each with its
 * params schema beside the service). A name defined twice is a programming error, caught at start.
 */
export function controlApi (...tables: ControlMethods[]): ControlMethods {
  const api: ControlMethods = {}
  for (const table of tables) {
    for (const [name, method] of Object.entries(table)) {
      if (name in api) throw new Error(`control method "${name}" is defined twice`)
      api[name] = method
    }
  }
  return api
}
