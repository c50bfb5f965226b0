import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DAEMON_ENV, DAEMON_NODE_FLAGS } from '../../src/constants.js'
import { tempDir } from '../helpers.js'

const ROOT = join(import.meta.dirname, '..', '..')
const UNIT_FILE = join(ROOT, 'config', 'aitbc-mesh.service')
/** Where the unit expects the program (config/install.sh puts it there). */
const INSTALL_DIR = '/opt/aitbc-mesh'

/** The [Service] section as key -> values (a key may repeat). */
function serviceSection (text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  let section = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header != null) { section = header[1]!; continue }
    if (section !== 'Service') continue
    const eq = line.indexOf('=')
    out.set(line.slice(0, eq), [...(out.get(line.slice(0, eq)) ?? []), line.slice(eq + 1)])
  }
  return out
}

/** Runs `systemd-analyze verify`; fails with what to install when the tool is missing (.ci/run installs it). */
function verify (unitFile: string): { status: number | null, output: string } {
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) {
    throw new Error('systemd-analyze is not installed: the unit check needs it (Debian: apt-get install systemd; .ci/run does this)')
  }
  const res = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' })
  return { status: res.status, output: `${res.stdout}${res.stderr}` }
}

describe('config/aitbc-mesh.service', () => {
  const service = serviceSection(readFileSync(UNIT_FILE, 'utf8'))
  const value = (key: string): string | undefined => service.get(key)?.at(-1)

  it('runs the daemon as its own user in a sandbox, restarting on failure and reloading on SIGHUP', () => {
    expect(value('User')).toBe('aitbc')
    expect(value('Group')).toBe('aitbc')
    expect(value('ExecStart')).toBe(`${INSTALL_DIR}/node_modules/.bin/node ${DAEMON_NODE_FLAGS.join(' ')} ${INSTALL_DIR}/dist/src/cli/main.js daemon --config /etc/aitbc/mesh.yaml`)
    for (const [name, setting] of Object.entries(DAEMON_ENV)) expect(service.get('Environment')).toContain(`${name}=${setting}`)
    expect(value('ExecReload')).toBe('/bin/kill -HUP $MAINPID')
    expect(value('Restart')).toBe('on-failure')
    expect(value('RestartPreventExitStatus')).toBe('2')
    expect(value('EnvironmentFile')).toBe('-/etc/aitbc/mesh.env')
    expect(service.get('Environment')).toContain('NODE_COMPILE_CACHE=/var/cache/aitbc-mesh')
    expect(value('CacheDirectory')).toBe('aitbc-mesh')
    // The control socket /run/aitbc/mesh.sock (0660): the group may enter the folder.
    expect(value('RuntimeDirectory')).toBe('aitbc')
    expect(value('RuntimeDirectoryMode')).toBe('0750')
    expect(value('StateDirectory')).toBe('aitbc/mesh')
    expect(value('UMask')).toBe('0007')
    expect(value('NoNewPrivileges')).toBe('yes')
    expect(value('ProtectSystem')).toBe('strict')
    expect(service.get('ReadWritePaths')).toEqual(['-/var/log/aitbc'])
    expect(value('CapabilityBoundingSet')).toBe('')
    for (const key of ['ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs',
      'ProtectControlGroups', 'RestrictNamespaces', 'RestrictSUIDSGID', 'LockPersonality']) {
      expect(value(key), key).toBe('yes')
    }
    expect(value('RestrictAddressFamilies')?.split(' ').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'])
    expect(value('SystemCallArchitectures')).toBe('native')
    // V8's JIT needs memory that is writable and executable.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false)
  })

  it('passes `systemd-analyze verify` without a complaint (with its paths pointed at this checkout)', () => {
    // verify needs the ExecStart binary to exist, so the copy runs the checkout's build and runtime.
    expect(existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')), 'run `npm run build` first').toBe(true)
    const copy = join(tempDir('aitbc-mesh-unit-'), 'aitbc-mesh.service')
    writeFileSync(copy, readFileSync(UNIT_FILE, 'utf8').replaceAll(INSTALL_DIR, ROOT))
    const res = verify(copy)
    // verify exits 0 even for unknown keys or values it ignores: any line about the unit is a failure.
    const complaints = res.output.split('\n').filter(line => line.trim() !== '')
    expect(complaints).toEqual([])
    expect(res.status).toBe(0)
  })

  it('the check above catches a bad directive', () => {
    const copy = join(tempDir('aitbc-mesh-unit-'), 'aitbc-mesh.service')
    writeFileSync(copy, readFileSync(UNIT_FILE, 'utf8').replaceAll(INSTALL_DIR, ROOT).replace('ProtectSystem=strict', 'ProtectSystem=strictest'))
    expect(verify(copy).output).toMatch(/Failed to parse protect system value, ignoring: strictest/)
  })
})
