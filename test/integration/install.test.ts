import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WaitAborted } from '../../src/devmesh/local-mesh.js'
import { onCleanup, tempDir, waitFor } from '../helpers.js'

/**
 * The README's "Install on two hosts", run as written: every fenced block marked
 * `<!-- install-test: TAG -->` is read from README.md and run command by command, so the README
 * and this test cannot drift apart.
 *
 * Each "host" is a network namespace (the two joined by a veth pair, addresses 10.x.y.1 and .2,
 * port 7070 on each) plus a mount namespace in which /etc, /opt, /usr/local, /var, /run and /home
 * are overlays of the real ones: users, files and sockets made on one host stay there. An operator
 * `alice` with sudo rights runs each command as a fresh login (`setpriv --init-groups`), in her
 * own checkout of this repository (a copy of this working tree without build output).
 *
 * `npm run setup` (`npm ci` on the pinned Node) runs in the host's mount namespace but the
 * machine's network namespace (the veth pair has no route to the npm registry). `systemctl enable
 * --now` cannot run: systemd is not the init process here. In its place the test starts the installed unit's ExecStart as its User= and
 * Group=, with its EnvironmentFile=, Environment=, UMask= and the runtime, state and cache
 * directories it names, as systemd would; `systemd-analyze verify` checks the installed unit.
 * `systemctl reload` (ExecReload, SIGHUP) is covered by test/integration/reload.test.ts.
 *
 * Needs root, `ip netns`, overlayfs, nsenter, setpriv and sudo; without them it fails saying so.
 */

const ROOT = join(import.meta.dirname, '..', '..')
const README = join(ROOT, 'README.md')
const OVERLAID = ['/etc', '/opt', '/usr/local', '/var', '/run', '/home']
const OPERATOR = 'alice'
const OPERATOR_PATH = '/usr/local/bin:/usr/bin:/bin'
const ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
/** PATH systemd gives services. */
const SERVICE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin'
const INSTALL_TIMEOUT_MS = 240_000

interface Run { code: number | null, stdout: string, stderr: string }

function run (command: string, args: string[], opts: { env?: NodeJS.ProcessEnv, cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? '/', stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    child.once('error', reject)
    child.once('close', code => { resolve({ code, stdout, stderr }) })
  })
}

async function must (command: string, args: string[]): Promise<string> {
  const res = await run(command, args)
  if (res.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(res.code)}: ${res.stderr.trim()}`)
  return res.stdout
}

/** The README's marked blocks: tag -> commands (continuation lines joined, comments kept). */
function readmeBlocks (): Map<string, string[]> {
  const text = readFileSync(README, 'utf8')
  const blocks = new Map<string, string[]>()
  for (const match of text.matchAll(/<!-- install-test: ([\w-]+) -->\n```sh\n([\s\S]*?)```/g)) {
    const commands = match[2]!.replace(/\\\n\s*/g, '').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    blocks.set(match[1]!, commands)
  }
  return blocks
}

function block (blocks: Map<string, string[]>, tag: string): string[] {
  const commands = blocks.get(tag)
  if (commands == null) throw new Error(`README.md has no block marked <!-- install-test: ${tag} -->`)
  return commands
}

function requireTools (): void {
  const missing: string[] = []
  if (process.getuid?.() !== 0) missing.push('root (namespaces, overlay mounts, useradd)')
  for (const [tool, args] of [['ip', ['netns', 'list']], ['nsenter', ['--version']], ['unshare', ['--version']], ['setpriv', ['--version']], ['sudo', ['--version']], ['npm', ['--version']]] as const) {
    if (spawnSync(tool, [...args]).status !== 0) missing.push(tool)
  }
  if (missing.length > 0) throw new Error(`the two-host install test needs ${missing.join(', ')}; .ci/run installs the packages (sudo, iproute2, util-linux) and runs as root`)
}

class Host {
  readonly mountNs: string
  readonly netns: string
  private readonly daemons: ChildProcess[] = []

  constructor (readonly name: string, readonly base: string, readonly address: string, id: string) {
    this.mountNs = join(base, 'ns', `${name}.mnt`)
    this.netns = `aitbc-install-${id}-${name === 'aitbc' ? 'g' : 'f'}`
  }

  /** A mount namespace with this host's overlays, kept alive by a bind mount of its file. */
  async create (): Promise<void> {
    const mounts: string[] = []
    for (const path of OVERLAID) {
      const layer = join(this.base, this.name, path.slice(1).replace(/\//g, '-'))
      mkdirSync(join(layer, 'upper'), { recursive: true })
      mkdirSync(join(layer, 'work'), { recursive: true })
      mounts.push(`mount -t overlay overlay -o lowerdir=${path},upperdir=${layer}/upper,workdir=${layer}/work ${path}`)
    }
    await must('touch', [this.mountNs])
    await must('unshare', [`--mount=${this.mountNs}`, '--propagation', 'private', 'sh', '-ec', mounts.join('\n')])
  }

  /** Runs a command on this host: as root, or as a user through a fresh login. */
  async sh (command: string, opts: { as?: string, cwd?: string, network?: 'mesh' | 'machine', env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
    const as = opts.as ?? 'root'
    const user = as === 'root' ? [] : ['setpriv', `--reuid=${as}`, `--regid=${as}`, '--init-groups', '--']
    const home = as === 'root' ? '/root' : `/home/${as}`
    const net = opts.network === 'machine' ? [] : [`--net=/run/netns/${this.netns}`]
    return await run('nsenter', [`--mount=${this.mountNs}`, ...net, '--', ...user, 'bash', '-c', `cd ${opts.cwd ?? home} && ${command}`], {
      env: { PATH: as === 'root' ? ROOT_PATH : OPERATOR_PATH, HOME: home, USER: as, LOGNAME: as, LANG: 'C.UTF-8', ...opts.env }
    })
  }

  async root (command: string): Promise<string> {
    const res = await this.sh(command)
    if (res.code !== 0) throw new Error(`${this.name}: ${command} exited ${String(res.code)}: ${res.stderr.trim()}`)
    return res.stdout
  }

  /**
   * What `systemctl start aitbc-mesh` does, from the installed unit: its directories (owned by
   * User=, with their modes), then ExecStart as User=/Group= with UMask=, Environment= and
   * EnvironmentFile=; resolves when the daemon logs that it is ready.
   */
  async startUnit (unitPath: string): Promise<number> {
    const unit = new Map<string, string[]>()
    let section = ''
    for (const raw of (await this.root(`cat ${unitPath}`)).split('\n')) {
      const line = raw.trim()
      if (line === '' || line.startsWith('#')) continue
      if (line.startsWith('[')) { section = line; continue }
      if (section !== '[Service]') continue
      const eq = line.indexOf('=')
      unit.set(line.slice(0, eq), [...(unit.get(line.slice(0, eq)) ?? []), line.slice(eq + 1)])
    }
    const one = (key: string): string => {
      const value = unit.get(key)?.at(-1)
      if (value == null) throw new Error(`${unitPath} has no ${key}=`)
      return value
    }
    const user = one('User')
    const group = one('Group')
    const env: Record<string, string> = { PATH: SERVICE_PATH, HOME: (await this.root(`getent passwd ${user} | cut -d: -f6`)).trim(), USER: user, LOGNAME: user, LANG: 'C.UTF-8' }
    for (const [kind, root] of [['Runtime', '/run'], ['State', '/var/lib'], ['Cache', '/var/cache']] as const) {
      const dirs = unit.get(`${kind}Directory`)?.at(-1)
      if (dirs == null) continue
      const mode = unit.get(`${kind}DirectoryMode`)?.at(-1) ?? '0755'
      for (const dir of dirs.split(/\s+/)) await this.root(`mkdir -p ${root}/${dir} && chown ${user}:${group} ${root}/${dir} && chmod ${mode} ${root}/${dir}`)
      env[`${kind.toUpperCase()}_DIRECTORY`] = dirs.split(/\s+/).map(d => `${root}/${d}`).join(':')
    }
    for (const file of unit.get('EnvironmentFile') ?? []) {
      const optional = file.startsWith('-')
      const path = file.replace(/^-/, '')
      const res = await this.sh(`cat ${path}`)
      if (res.code !== 0) {
        if (optional) continue
        throw new Error(`EnvironmentFile ${path}: ${res.stderr}`)
      }
      for (const line of res.stdout.split('\n')) {
        const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
        if (m != null) env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1')
      }
    }
    for (const assignment of unit.get('Environment') ?? []) {
      for (const pair of assignment.split(/\s+/)) { const eq = pair.indexOf('='); env[pair.slice(0, eq)] = pair.slice(eq + 1) }
    }
    const execStart = one('ExecStart')
    if (/["'$%]/.test(execStart)) throw new Error(`ExecStart uses quoting or specifiers this stand-in does not expand: ${execStart}`)
    const child = spawn('nsenter', [`--mount=${this.mountNs}`, `--net=/run/netns/${this.netns}`, '--',
      'setpriv', `--reuid=${user}`, `--regid=${group}`, '--init-groups', '--',
      'sh', '-c', `umask ${one('UMask')} && exec "$@"`, 'sh', ...execStart.split(/\s+/)], { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] })
    this.daemons.push(child)
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
    child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c })
    await waitFor(`the daemon on ${this.name} to be ready`, () => {
      if (child.exitCode != null || child.signalCode != null) throw new WaitAborted(`the daemon on ${this.name} exited (${String(child.exitCode ?? child.signalCode)}): ${out}`)
      return out.includes('"event":"ready"')
    }, 20_000, 50)
    // nsenter, setpriv and sh exec in turn: the pid is the daemon's.
    return child.pid!
  }

  async stopDaemons (): Promise<void> {
    await Promise.all(this.daemons.map(async child => {
      if (child.exitCode != null || child.signalCode != null) return
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 8000)
      await exited
      clearTimeout(timer)
    }))
  }
}

describe('README: install on two hosts', () => {
  const blocks = readmeBlocks()
  const base = tempDir('aitbc-mesh-install-')
  const id = Math.random().toString(36).slice(2, 7)
  const subnet = `10.${100 + Math.floor(Math.random() * 150)}.${Math.floor(Math.random() * 256)}`
  let genesis: Host
  let follower: Host
  let hosts: Host[]
  /** What each host's `init` printed last: the line that admits it elsewhere. */
  const admitLine = new Map<string, string>()

  /** Runs every command of a README block on a host as the operator, in her checkout; each must exit 0. */
  async function operator (host: Host, command: string, network: 'mesh' | 'machine' = 'mesh'): Promise<Run> {
    const res = await host.sh(command, {
      as: OPERATOR,
      cwd: join(base, host.name, 'checkout'),
      network,
      env: { npm_config_cache: join(base, 'npm-cache'), npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' }
    })
    return res
  }

  // The operators' checkouts with their node_modules and the npm cache are tens of thousands of
  // files: removed here, under this test's bound, rather than in the shared cleanup's 60 s.
  afterAll(async () => {
    await Promise.all([...(hosts ?? []).map(host => join(base, host.name, 'checkout')), join(base, 'npm-cache')]
      .map(async dir => { await rm(dir, { recursive: true, force: true }) }))
  }, INSTALL_TIMEOUT_MS)

  beforeAll(async () => {
    requireTools()
    chmodSync(base, 0o755) // the operators reach their checkouts inside it
    mkdirSync(join(base, 'ns'))
    // Namespace files must sit on a private mount to be bind-mounted.
    await must('mount', ['--bind', join(base, 'ns'), join(base, 'ns')])
    await must('mount', ['--make-private', join(base, 'ns')])
    genesis = new Host('aitbc', base, `${subnet}.1`, id)
    follower = new Host('aitbc1', base, `${subnet}.2`, id)
    hosts = [genesis, follower]
    onCleanup(async () => {
      for (const host of hosts) {
        await host.stopDaemons()
        spawnSync('ip', ['netns', 'del', host.netns])
        spawnSync('umount', [host.mountNs])
      }
      spawnSync('umount', [join(base, 'ns')])
    })

    for (const host of hosts) {
      await host.create()
      await must('ip', ['netns', 'add', host.netns])
      await must('ip', ['-n', host.netns, 'link', 'set', 'lo', 'up'])
    }
    const [vg, vf] = [`aim${id}g`, `aim${id}f`]
    await must('ip', ['link', 'add', vg, 'netns', genesis.netns, 'type', 'veth', 'peer', 'name', vf, 'netns', follower.netns])
    for (const [host, dev] of [[genesis, vg], [follower, vf]] as const) {
      await must('ip', ['-n', host.netns, 'addr', 'add', `${host.address}/24`, 'dev', dev])
      await must('ip', ['-n', host.netns, 'link', 'set', dev, 'up'])
    }

    // The operator on each host: sudo rights, and a checkout of this repository without build output.
    const files = (await must('git', ['-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'])).split('\0').filter(f => f !== '' && existsSync(join(ROOT, f)))
    for (const host of hosts) {
      await host.root(`useradd --create-home --shell /bin/bash ${OPERATOR} && echo '${OPERATOR} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/${OPERATOR} && chmod 0440 /etc/sudoers.d/${OPERATOR}`)
      const checkout = join(base, host.name, 'checkout')
      for (const file of files) cpSync(join(ROOT, file), join(checkout, file), { recursive: true })
      await host.root(`chown -R ${OPERATOR}: ${checkout}`)
    }
    // A warm npm cache (what this machine has), so `npm run setup` does not download everything again.
    const cache = join(process.env.HOME ?? '/root', '.npm', '_cacache')
    mkdirSync(join(base, 'npm-cache'))
    if (existsSync(cache)) await must('cp', ['-a', cache, join(base, 'npm-cache', '_cacache')])
    await genesis.root(`chown -R ${OPERATOR}: ${join(base, 'npm-cache')}`)
  }, INSTALL_TIMEOUT_MS)

  it('builds and installs on each host: launcher, unit, env file, user aitbc, data folder', async () => {
    const build = block(blocks, 'build')
    expect(build).toEqual(['npm run setup', 'sudo bash config/install.sh'])
    await Promise.all(hosts.map(async host => {
      for (const command of build) {
        const res = await operator(host, command, command.startsWith('npm ') ? 'machine' : 'mesh')
        expect(res.code, `${host.name}: ${command}\n${res.stdout}\n${res.stderr}`).toBe(0)
      }
    }))
    for (const host of hosts) {
      expect(await host.root('id -nG aitbc')).toBe('aitbc\n')
      expect(await host.root('stat -c "%U:%G %a" /opt/aitbc-mesh /usr/local/bin/aitbc-mesh /etc/aitbc /etc/aitbc/mesh.env /var/lib/aitbc/mesh'))
        .toBe('root:root 755\nroot:root 755\nroot:aitbc 750\nroot:aitbc 640\naitbc:aitbc 750\n')
      // The launcher runs the pinned Node 24, whatever `node` the host has.
      expect(await host.root('/opt/aitbc-mesh/node_modules/.bin/node --version')).toMatch(/^v24\./)
      expect(await host.root('test ! -e /opt/aitbc-mesh/node_modules/typescript && test ! -e /opt/aitbc-mesh/node_modules/vitest && echo pruned')).toBe('pruned\n')
      expect((await operator(host, 'aitbc-mesh --help')).stdout).toMatch(/Usage: aitbc-mesh/)
      // The installed unit, with its real paths and user, passes systemd's own check.
      const verify = await host.sh('systemd-analyze verify /etc/systemd/system/aitbc-mesh.service')
      expect(`${verify.stdout}${verify.stderr}`.trim()).toBe('')
      expect(verify.code).toBe(0)
    }
  }, INSTALL_TIMEOUT_MS)

  it('init on each host writes the identity for user aitbc and a root-owned config, and prints the line that admits it', async () => {
    for (const [host, tag] of [[genesis, 'init-genesis'], [follower, 'init-follower']] as const) {
      const [command, ...rest] = block(blocks, tag)
      expect(rest).toEqual([])
      const res = await operator(host, command!)
      expect(res.code, res.stderr).toBe(0)
      const last = res.stdout.trim().split('\n').at(-1)!.trim()
      expect(last).toMatch(new RegExp(`^aitbc-mesh config add-peer ${host.name} /ip4/${host.address.replace(/\./g, '\\.')}/tcp/7070/p2p/12D3KooW\\w+ --role ${host === genesis ? 'genesis' : 'follower'}$`))
      admitLine.set(host.name, last)
      expect(await host.root('stat -c "%U:%G %a" /var/lib/aitbc/mesh/identity.key /etc/aitbc/mesh.yaml')).toBe('aitbc:aitbc 600\nroot:aitbc 640\n')
    }
    // Installing again (an upgrade) keeps the identity, config and env file.
    const before = await genesis.root('sha256sum /var/lib/aitbc/mesh/identity.key /etc/aitbc/mesh.yaml /etc/aitbc/mesh.env')
    const again = await operator(genesis, 'sudo bash config/install.sh')
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/upgraded \/opt\/aitbc-mesh/)
    expect(again.stdout).toMatch(/kept \/etc\/aitbc\/mesh\.env/)
    expect(await genesis.root('sha256sum /var/lib/aitbc/mesh/identity.key /etc/aitbc/mesh.yaml /etc/aitbc/mesh.env')).toBe(before)
  }, INSTALL_TIMEOUT_MS)

  it('exchanging the printed lines admits each node on the other', async () => {
    const exchange = block(blocks, 'exchange')
    expect(exchange).toHaveLength(2)
    for (const line of exchange) {
      // The README shows each printed line run with sudo on the other host: `sudo <line>  # on <host>`.
      const m = /^sudo (aitbc-mesh config add-peer (\S+) \S+ --role (\S+))\s+# on (\S+)$/.exec(line)
      expect(m, line).not.toBeNull()
      const [, shown, from, , on] = m!
      const printed = admitLine.get(from!)!
      expect(printed.replace(/\/ip4\/\S+/, 'ADDR')).toBe(shown!.replace(/\/ip4\/\S+/, 'ADDR'))
      const target = hosts.find(h => h.name === on)!
      const res = await operator(target, `sudo ${printed}`)
      expect(res.code, res.stderr).toBe(0)
      expect(res.stdout).toMatch(new RegExp(`^added ${from!} `))
      // The edit keeps the config root's and readable by the daemon's group.
      expect(await target.root('stat -c "%U:%G %a" /etc/aitbc/mesh.yaml')).toBe('root:aitbc 640\n')
    }
  })

  it('the units start (ExecStart as user aitbc) and an operator in group aitbc sees both nodes online; doctor passes', async () => {
    expect(block(blocks, 'start')).toEqual(['sudo systemctl enable --now aitbc-mesh'])
    const pids = await Promise.all(hosts.map(async host => await host.startUnit('/etc/systemd/system/aitbc-mesh.service')))
    for (const [i, host] of hosts.entries()) {
      expect(await host.root('stat -c "%U:%G %a" /run/aitbc /run/aitbc/mesh.sock')).toBe('aitbc:aitbc 750\naitbc:aitbc 660\n')
      expect(await host.root(`ps -o user=,args= -p ${pids[i]!}`)).toMatch(/^aitbc\s+\/opt\/aitbc-mesh\/node_modules\/\.bin\/node --max-semi-space-size=2 --max-old-space-size=1024 \/opt\/aitbc-mesh\/dist\/src\/cli\/main\.js daemon --config \/etc\/aitbc\/mesh\.yaml\n$/)
    }

    // Before joining group aitbc the operator cannot use the socket.
    const refused = await operator(genesis, 'aitbc-mesh status --target all')
    expect(refused.code).toBe(3)
    expect(refused.stderr).toMatch(/permission denied|cannot read config/)

    const [joinGroup] = block(blocks, 'operator')
    const check = block(blocks, 'check')
    expect(check).toEqual(['aitbc-mesh status --target all', 'sudo aitbc-mesh doctor'])
    for (const host of hosts) {
      const added = await operator(host, joinGroup!)
      expect(added.code, added.stderr).toBe(0)
      // A new login: the group applies.
      const status = await waitFor(`status --target all on ${host.name} with both nodes online`, async () => {
        const res = await operator(host, check[0]!)
        return res.code === 0 ? res : undefined
      }, 20_000, 200)
      const rows = status.stdout.split('\n')
      expect(rows.find(r => /^aitbc\s/.test(r))).toMatch(/^aitbc\s+genesis\s+online\s/)
      expect(rows.find(r => /^aitbc1\s/.test(r))).toMatch(/^aitbc1\s+follower\s+online\s/)
      const doctor = await operator(host, check[1]!)
      expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0)
      const other = host === genesis ? follower : genesis
      expect(doctor.stdout).toContain(`PASS peer ${other.name} over the mesh (connected, online, `)
      expect(doctor.stdout).toContain('PASS listen /ip4/0.0.0.0/tcp/7070 (held by this node\'s daemon, ')
      // Without sudo, as a member of group aitbc: the identity key's mode is checked, not its content.
      const asOperator = await operator(host, 'aitbc-mesh doctor')
      expect(asOperator.code, asOperator.stdout + asOperator.stderr).toBe(0)
      expect(asOperator.stdout).toMatch(/^PASS identity key \(\/var\/lib\/aitbc\/mesh\/identity\.key, mode 0600, owner uid \d+; not readable by this user, so its content was not checked \(run doctor as root for that\)\)$/m)
    }
  })
})
