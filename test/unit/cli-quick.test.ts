import { describe, expect, it } from 'vitest'
import { buildProgram } from '../../src/cli/program.js'
import { quickCommand } from '../../src/cli/quick.js'

class Stop extends Error {}

type View = { name: string, opts: Record<string, unknown>, globals: Record<string, unknown> } | { error: string }

/** What commander makes of the words: the command it runs with its options, or the error it reports. Nothing runs. */
async function commanderView (args: string[]): Promise<View> {
  const argv = ['node', 'aitbc-mesh', ...args]
  const program = buildProgram(argv)
  let seen: View | undefined
  program.hook('preAction', (_program, action) => {
    const opts = action.opts()
    seen = { name: action.name(), opts, globals: Object.fromEntries(Object.entries(action.optsWithGlobals()).filter(([key]) => !(key in opts))) }
    throw new Stop()
  })
  try {
    await program.parseAsync(argv)
  } catch (err) {
    if (!(err instanceof Stop)) return { error: (err as Error).message }
  }
  return seen!
}

function quickView (args: string[]): View | undefined {
  const quick = quickCommand(['node', 'aitbc-mesh', ...args])
  return quick == null ? undefined : { name: quick.name, opts: quick.opts, globals: { ...quick.globals } }
}

describe('CLI quick path (status, health, daemon without commander)', () => {
  it('reads what operators type exactly as commander does', async () => {
    const plain = [
      ['status'],
      ['status', '--json'],
      ['status', '--target', 'all', '--json', '--config', '/etc/aitbc/mesh.yaml'],
      ['--config', '/etc/aitbc/mesh.yaml', 'status', '--target', 'aitbc1,aitbc2', '--timeout', '5'],
      ['--config=/etc/aitbc/mesh.yaml', 'health', '--target=genesis', '--timeout=2.5', '--json'],
      ['--json', '--socket', '/run/aitbc/mesh.sock', 'health'],
      ['--config', 'status', 'status', '--target', 'daemon'],
      ['status', '--target', 'follower'],
      ['daemon', '--config', '/etc/aitbc/mesh.yaml'],
      ['daemon', '--config', 'var/mesh.yaml', '--create'],
      ['--config', '/etc/aitbc/mesh.yaml', 'daemon', '--fresh-store', '--create', '--json']
    ]
    for (const args of plain) {
      const quick = quickView(args)
      expect(quick, args.join(' ')).toBeDefined()
      expect(quick, args.join(' ')).toEqual(await commanderView(args))
    }
  })

  it('leaves everything else to commander: help, errors, other commands and unclear values', async () => {
    const unclear = [
      [], ['--help'], ['status', '--help'], ['-h'], ['--version'], ['-V'], ['help', 'status'],
      ['stauts'], ['peers'], ['send', '--to', 'all', 'hello'],
      ['status', '--bogus'], ['health', '--target'], ['status', '--timeout'], ['--config'],
      ['status', '--target', ''], ['status', '--target='], ['status', '--timeout', '-5'], ['status', '--target', '--json'],
      ['status', '--target', 'a', '--target', 'b'], ['--json', 'status', '--json'], ['--config', 'a', 'status', '--config=b'],
      ['status', 'extra'], ['status', '--', 'x'], ['status', '--json=yes'], ['daemon', '--create=yes'],
      ['--create', 'daemon'], ['--target', 'all', 'status'], ['daemon', '--target', 'all'], ['status', '--create']
    ]
    for (const args of unclear) expect(quickView(args), args.join(' ')).toBeUndefined()
    // Some of them commander refuses; it still does, with its own message.
    expect(await commanderView(['status', '--bogus'])).toEqual({ error: "error: unknown option '--bogus'" })
    expect(await commanderView(['health', '--target'])).toEqual({ error: "error: option '--target <target>' argument missing" })
  })
})
