import { readFileSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { StandInRpc } from '../../src/devmesh/stand-in-rpc.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { onCleanup, peersOf, runCli, startTestMesh, waitFor } from '../helpers.js'

/** Log lines of a node from index `from` on that match. */
function logMatches (mesh: LocalMesh, name: string, pattern: RegExp, from = 0): string[] {
  return mesh.node(name).logLines.slice(from).filter(line => pattern.test(line))
}

async function statusAt (mesh: LocalMesh, at: string, peer: string): Promise<string | undefined> {
  return (await peersOf(mesh, at)).find(p => p.name === peer)?.status
}

interface StatusEntry { status: string, block_height: number | null, mempool_size: number | null }

async function nodeStatus (mesh: LocalMesh): Promise<StatusEntry> {
  const res = await mesh.cli('aitbc', ['status', '--json'])
  expect(res.code, res.stderr).toBe(0)
  return (JSON.parse(res.stdout) as { nodes_status: Record<string, StatusEntry> }).nodes_status.aitbc!
}

describe('joining and removing a node on a running mesh', () => {
  it('config add-peer keeps the YAML, reload (SIGHUP or CLI) admits the new node without dropping others, remove-peer disconnects and refuses it', async () => {
    const { mesh } = await startTestMesh(3, { start: false })
    const genesis = mesh.node('aitbc')
    const follower = mesh.node('aitbc1')
    const newcomer = mesh.node('aitbc2')

    // The two running nodes do not know aitbc2 yet.
    for (const node of [genesis, follower]) {
      const res = await runCli(['config', 'remove-peer', 'aitbc2', '--config', node.configFile])
      expect(res.code, res.stderr).toBe(0)
      expect(res.stdout).toContain('run `aitbc-mesh reload`')
    }
    const operatorNotes = '# operator: genesis host, rack 4\n'
    writeFileSync(genesis.configFile, operatorNotes + readFileSync(genesis.configFile, 'utf8').replace('heartbeat:', '# keep the default interval\nheartbeat:'))
    const before = readFileSync(genesis.configFile, 'utf8')

    await mesh.startAll()
    await waitFor('aitbc and aitbc1 online at each other', async () =>
      await statusAt(mesh, 'aitbc', 'aitbc1') === 'online' && await statusAt(mesh, 'aitbc1', 'aitbc') === 'online')
    expect((await peersOf(mesh, 'aitbc')).map(p => p.name)).toEqual(['aitbc', 'aitbc1'])
    await waitFor('aitbc to refuse the unknown aitbc2', () => logMatches(mesh, 'aitbc', new RegExp(`"event":"peer_refused".*"peerId":"${newcomer.peerId}"`)).length > 0, 10000)
    const linkBefore = (await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc1')?.since
    expect(linkBefore).toBeTruthy()
    const genesisPid = genesis.process?.pid
    const genesisLogMark = genesis.logLines.length

    // Join: the line `init` prints on aitbc2, run on each of the others.
    for (const node of [genesis, follower]) {
      const res = await runCli(['config', 'add-peer', 'aitbc2', newcomer.addr, '--role', 'follower', '--config', node.configFile])
      expect(res.code, res.stderr).toBe(0)
      expect(res.stdout).toContain(`added aitbc2 (follower) to ${node.configFile}`)
    }
    const after = readFileSync(genesis.configFile, 'utf8')
    // Everything the operator wrote is still there as it was; only the peer entry is new.
    const entry = `  - name: aitbc2\n    role: follower\n    addr: ${newcomer.addr}\n`
    expect(after).toContain(entry)
    expect(after.replace(entry, '')).toBe(before)

    genesis.process?.kill('SIGHUP')
    const viaCli = await mesh.cli('aitbc1', ['reload'])
    expect(viaCli.code, viaCli.stderr).toBe(0)
    expect(viaCli.stdout).toMatch(/^reloaded .*mesh\.yaml: added aitbc2; 2 peer\(s\)$/m)

    await waitFor('aitbc2 online at both and both online at aitbc2', async () =>
      await statusAt(mesh, 'aitbc', 'aitbc2') === 'online' &&
      await statusAt(mesh, 'aitbc1', 'aitbc2') === 'online' &&
      await statusAt(mesh, 'aitbc2', 'aitbc') === 'online' &&
      await statusAt(mesh, 'aitbc2', 'aitbc1') === 'online', 15000)
    expect(logMatches(mesh, 'aitbc', /"event":"config_reloaded".*"added":\["aitbc2"\]/, genesisLogMark)).toHaveLength(1)
    // Same process, and the existing link was never dropped.
    expect(genesis.process?.pid).toBe(genesisPid)
    expect(genesis.process?.exitCode).toBeNull()
    expect(logMatches(mesh, 'aitbc', /"event":"peer_disconnected".*"peer":"aitbc1"/, genesisLogMark)).toEqual([])
    const linkAfter = (await peersOf(mesh, 'aitbc')).find(p => p.name === 'aitbc1')?.since
    expect(linkAfter).toBe(linkBefore)

    // An operation now reaches the new node too.
    const status = await mesh.cli('aitbc', ['status', '--target', 'all', '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect(Object.keys(JSON.parse(status.stdout).nodes_status).sort()).toEqual(['aitbc', 'aitbc1', 'aitbc2'])

    // Removal: the genesis node drops aitbc2; its connection closes and it is refused from then on.
    const removeMark = genesis.logLines.length
    const removed = await runCli(['config', 'remove-peer', 'aitbc2', '--reload', '--config', genesis.configFile, '--socket', genesis.socket])
    expect(removed.code, removed.stderr).toBe(0)
    expect(removed.stdout).toContain('reloaded: removed aitbc2; 1 peer(s)')
    expect((await peersOf(mesh, 'aitbc')).map(p => p.name)).toEqual(['aitbc', 'aitbc1'])
    await waitFor('aitbc2 to see aitbc offline', async () => await statusAt(mesh, 'aitbc2', 'aitbc') === 'offline', 10000)
    await waitFor('aitbc to refuse aitbc2 again', () => logMatches(mesh, 'aitbc', new RegExp(`"event":"peer_refused".*"peerId":"${newcomer.peerId}"`), removeMark).length > 0, 15000)
    expect(await statusAt(mesh, 'aitbc2', 'aitbc')).toBe('offline')
    // aitbc1 still has aitbc2 in its allowlist: that link is untouched.
    expect(await statusAt(mesh, 'aitbc1', 'aitbc2')).toBe('online')
    const send = await mesh.cli('aitbc', ['send', '--to', 'aitbc2', 'hello'])
    expect(send.code).toBe(2)
    expect(send.stderr).toMatch(/aitbc2/)
  }, 90000)

  it('a reload of a broken config changes nothing and says what is wrong', async () => {
    const { mesh } = await startTestMesh(2)
    const genesis = mesh.node('aitbc')
    await waitFor('aitbc1 online at aitbc', async () => await statusAt(mesh, 'aitbc', 'aitbc1') === 'online')
    const good = readFileSync(genesis.configFile, 'utf8')
    writeFileSync(genesis.configFile, good.replace(/role: follower/, 'role: leader'))
    const res = await mesh.cli('aitbc', ['reload'])
    expect(res.code).toBe(2)
    expect(res.stderr).toContain(`reload refused, nothing changed: ${genesis.configFile}: peers[0].role: expected "genesis" or "follower"`)
    // SIGHUP with the same file: logged, and the daemon keeps running.
    const mark = genesis.logLines.length
    genesis.process?.kill('SIGHUP')
    await waitFor('the refusal in the log', () => logMatches(mesh, 'aitbc', /"event":"reload_refused"/, mark).length > 0)
    expect(genesis.process?.exitCode).toBeNull()
    expect(await statusAt(mesh, 'aitbc', 'aitbc1')).toBe('online')

    // Fields that need a restart are reported, the rest applies.
    writeFileSync(genesis.configFile, good.replace(/intervalMs: \d+/, 'intervalMs: 500'))
    const restart = await mesh.cli('aitbc', ['reload', '--json'])
    expect(restart.code, restart.stderr).toBe(0)
    expect(JSON.parse(restart.stdout)).toMatchObject({ added: [], removed: [], peers: 1, restart_needed: ['heartbeat'] })
  }, 60000)

  it('a reload that moves probes.rpc probes the new RPC at once, and does not ask for a restart', async () => {
    // A long probe interval: the timer would not pick the change up within the wait below.
    const { mesh, hosts } = await startTestMesh(1, { heights: [1000], extra: () => ({ probes: { intervalMs: 60_000 } }) })
    const genesis = mesh.node('aitbc')
    const before = await nodeStatus(mesh)
    expect(before.block_height).toBe(1000)

    const moved = new StandInRpc({ height: 7777, mempool: 3 })
    const movedUrl = await moved.start(hosts[0]!)
    onCleanup(async () => { await moved.stop() })
    const good = readFileSync(genesis.configFile, 'utf8')
    const oldUrl = /rpc: (\S+)/.exec(good)?.[1]
    expect(oldUrl).toMatch(/^http:\/\//)
    writeFileSync(genesis.configFile, good.replace(oldUrl!, movedUrl))

    const res = await mesh.cli('aitbc', ['reload', '--json'])
    expect(res.code, res.stderr).toBe(0)
    expect(JSON.parse(res.stdout)).toMatchObject({ restart_needed: [] })
    // Well within the default probe interval: the reload itself probes the new RPC.
    await waitFor('status to show the new RPC\'s height', async () => (await nodeStatus(mesh)).block_height === 7777, 5000)
    expect(moved.requestsTo('/health').length).toBeGreaterThan(0)
    const after = await nodeStatus(mesh)
    expect(after.status).toBe('online')
    expect(after.mempool_size).toBe(3)
  }, 60000)
})
