import { dirname, isAbsolute, join, resolve } from 'node:path'
import { CONTROL_SOCKET_FILE_NAME, DEFAULT_CONFIG_PATH, DEFAULT_SOCKET_PATH } from '../constants.js'
import { quickSocketFields, type SocketFields } from './socket-fields.js'

// Not `import ... from 'node:fs'`: an ES import of node:fs fills in every export, which loads
// fs/promises, streams and readline, a few milliseconds of every `status` spent on nothing.
const { existsSync, readFileSync } = process.getBuiltinModule('node:fs')

/**
 * Where the local daemon's control socket is: --socket, else the controlSocket of the config
 * (--config, $AITBC_MESH_CONFIG, /etc/aitbc/mesh.yaml), else $AITBC_MESH_SOCKET or /run/aitbc/mesh.sock.
 * Only the two fields needed are read, so the CLI does not validate (or load) the whole schema;
 * `fullParse` also parses the whole file as YAML, so a broken config is reported.
 */
export async function resolveSocketPath (opts: { socket?: string, config?: string }, env: NodeJS.ProcessEnv = process.env, { fullParse = false } = {}): Promise<string> {
  if (opts.socket != null) return resolve(opts.socket)
  const explicit = opts.config ?? env.AITBC_MESH_CONFIG
  const file = explicit != null ? resolve(explicit) : DEFAULT_CONFIG_PATH
  if (explicit != null || existsSync(file)) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw Object.assign(new Error(`cannot read config ${file}: ${(err as Error).message}`), { name: 'ConfigError' })
    }
    const doc = (fullParse ? undefined : quickSocketFields(text)) ?? await parseYaml(text, file)
    const base = dirname(file)
    const abs = (p: string): string => isAbsolute(p) ? p : join(base, p)
    if (typeof doc?.controlSocket === 'string') return abs(doc.controlSocket)
    if (typeof doc?.dataDir === 'string') return join(abs(doc.dataDir), CONTROL_SOCKET_FILE_NAME)
    throw Object.assign(new Error(`${file}: no controlSocket or dataDir to find the daemon's socket`), { name: 'ConfigError' })
  }
  return env.AITBC_MESH_SOCKET ?? DEFAULT_SOCKET_PATH
}

async function parseYaml (text: string, file: string): Promise<SocketFields | null> {
  const { parse } = await import('yaml')
  try {
    return parse(text) as SocketFields | null
  } catch (err) {
    throw Object.assign(new Error(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`), { name: 'ConfigError' })
  }
}
