import { createRequire } from 'node:module'
import type * as Http from 'node:http'
import type * as Https from 'node:https'

// node:http and node:https through require, not an ES import: importing node:http as a module
// reads every export, and its lazy WebSocket, MessageEvent and CloseEvent getters then load
// undici, about 13 MiB of resident memory the daemon never uses. Types still come from imports.
const require = createRequire(import.meta.url)

export const http = require('node:http') as typeof Http

/** Loaded on first use: only an https:// probe URL needs TLS. */
export function https (): typeof Https {
  return require('node:https') as typeof Https
}
