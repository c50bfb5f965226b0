import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runCli } from '../helpers.js'

const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }

describe('aitbc-mesh --version', () => {
  it.each(['--version', '-V'])('%s prints the package version and exits 0', async flag => {
    const res = await runCli([flag])
    expect(res.stderr).toBe('')
    expect(res.stdout).toBe(`${version}\n`)
    expect(res.code).toBe(0)
  })

  it('is listed in --help', async () => {
    const res = await runCli(['--help'])
    expect(res.stdout).toMatch(/-V, --version\s+print the version of aitbc-mesh/)
  })
})
