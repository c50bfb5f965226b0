import { describe, expect, it } from 'vitest'
import { runCli } from '../helpers.js'

// The CLI defines only the command argv names; help, suggestions and option errors must not notice.
describe('aitbc-mesh help and usage errors', () => {
  it('lists every command in --help', async () => {
    const res = await runCli(['--json', '--help'])
    expect(res.code).toBe(0)
    const listed = [...res.stdout.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map(m => m[1])
    expect(listed).toEqual(['init', 'daemon', 'doctor', 'probe', 'config', 'reload', 'id', 'peers', 'status', 'health', 'agents', 'send', 'message', 'inbox', 'sync', 'coordinate', 'ops', 'op', 'help'])
  })

  it('prints one command\'s help, also after global options', async () => {
    const res = await runCli(['--socket', '/nonexistent.sock', 'status', '--help'])
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/^Usage: aitbc-mesh status \[options\]/)
    expect(res.stdout).toMatch(/--target <target>/)
    const help = await runCli(['help', 'agents'])
    expect(help.stdout).toMatch(/^Usage: aitbc-mesh agents \[options\] \[command\]/)
    expect(help.stdout).toMatch(/register/)
  })

  it('suggests the closest command for a misspelt one', async () => {
    const res = await runCli(['--socket', '/nonexistent.sock', 'stauts'])
    expect(res.code).toBe(2)
    expect(res.stderr).toMatch(/unknown command 'stauts'\n\(Did you mean status\?\)/)
  })

  it('names an unknown option and shows the command\'s help', async () => {
    const res = await runCli(['--config=/nonexistent.yaml', 'health', '--bogus'])
    expect(res.code).toBe(2)
    expect(res.stderr).toMatch(/unknown option '--bogus'/)
    expect(res.stderr).toMatch(/Usage: aitbc-mesh health \[options\]/)
  })
})
