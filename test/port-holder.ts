import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { WaitAborted } from '../src/devmesh/local-mesh.js'
import { onCleanup, tempDir, waitFor } from './helpers.js'

/** What the AITBC hub's gossip relay does to the mesh: a separate program listening on its port. */
const RELAY_SCRIPT = `import { createServer } from 'node:net'
const [host, port] = [process.argv[process.argv.indexOf('--host') + 1], Number(process.argv[process.argv.indexOf('--port') + 1])]
// Hangs up on every connection, as a program that does not speak the mesh's protocol would.
createServer(socket => { socket.destroy() }).listen({ host, port, exclusive: true }, () => { process.stdout.write('listening\\n') })
`

export interface HeldPort {
  pid: number
  /** The holder's command line as /proc/<pid>/cmdline shows it, arguments joined by spaces. */
  cmdline: string
  stop: () => Promise<void>
}

/**
 * Starts a separate process, `node .../aitbc-p2p-relay.mjs --host H --port P`, that listens on
 * host:port until stopped; resolves once it listens.
 */
export async function holdPort (host: string, port: number): Promise<HeldPort> {
  const script = join(tempDir('aitbc-mesh-relay-'), 'aitbc-p2p-relay.mjs')
  writeFileSync(script, RELAY_SCRIPT)
  const args = [script, '--host', host, '--port', String(port)]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let exited = false
  const exit = new Promise<void>(resolve => child.once('exit', () => { exited = true; resolve() }))
  child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c })
  const stop = async (): Promise<void> => {
    if (!exited) child.kill('SIGKILL')
    await exit
  }
  onCleanup(stop)
  await waitFor(`the port holder on ${host}:${port}`, () => {
    if (exited) throw new WaitAborted(`the port holder exited: ${out}`)
    return out.includes('listening')
  })
  return { pid: child.pid!, cmdline: [process.execPath, ...args].join(' '), stop }
}
