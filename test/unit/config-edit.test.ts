import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/config.js'
import { addPeer, removePeer } from '../../src/config/edit.js'
import { initNode } from '../../src/config/init.js'
import { tempDir } from '../helpers.js'

async function node (name: string, role: 'genesis' | 'follower', host: string): Promise<{ config: string, addr: string }> {
  const result = await initNode({ name, role, dir: join(tempDir(), name), listen: [`/ip4/${host}/tcp/7070`] })
  return { config: result.config, addr: result.addrs[0]! }
}

describe('config add-peer / remove-peer', () => {
  it('turns the empty `peers: []` from init into a block list and keeps every comment', async () => {
    const genesis = await node('aitbc', 'genesis', '10.0.0.1')
    const follower = await node('aitbc1', 'follower', '10.0.0.2')
    const before = readFileSync(genesis.config, 'utf8')
    addPeer({ file: genesis.config, name: 'aitbc1', addr: follower.addr })
    const after = readFileSync(genesis.config, 'utf8')
    expect(after).toContain(`peers:\n  - name: aitbc1\n    role: follower\n    addr: ${follower.addr}\n`)
    for (const comment of before.split('\n').filter(l => l.trimStart().startsWith('#'))) expect(after).toContain(comment)
    expect(loadConfig(genesis.config).peers.map(p => p.name)).toEqual(['aitbc1'])

    removePeer({ file: genesis.config, name: 'aitbc1' })
    expect(loadConfig(genesis.config).peers).toEqual([])
    expect(readFileSync(genesis.config, 'utf8')).toBe(before)
  })

  it('keeps the file mode and writes nothing when the edit is refused', async () => {
    const genesis = await node('aitbc', 'genesis', '10.0.0.1')
    const follower = await node('aitbc1', 'follower', '10.0.0.2')
    const other = await node('aitbc9', 'genesis', '10.0.0.9')
    chmodSync(genesis.config, 0o640)
    addPeer({ file: genesis.config, name: 'aitbc1', addr: follower.addr })
    expect(statSync(genesis.config).mode & 0o777).toBe(0o640)
    const text = readFileSync(genesis.config, 'utf8')

    const refusals: Array<[() => unknown, RegExp]> = [
      [() => addPeer({ file: genesis.config, name: 'aitbc1', addr: other.addr }), /a peer named "aitbc1" is already in .*remove-peer aitbc1/],
      [() => addPeer({ file: genesis.config, name: 'aitbc2', addr: follower.addr }), /peer id 12D3KooW\w+ is already in .* as "aitbc1"/],
      [() => addPeer({ file: genesis.config, name: 'aitbc', addr: other.addr }), /"aitbc" is this node's own name/],
      [() => addPeer({ file: genesis.config, name: 'aitbc9', role: 'genesis', addr: other.addr }), /"aitbc" is already the genesis node; a mesh has exactly one/],
      [() => addPeer({ file: genesis.config, name: 'aitbc9', addr: '/ip4/10.0.0.9/tcp/7070' }), /multiaddr "\/ip4\/10\.0\.0\.9\/tcp\/7070": expected \/ip4\/<address>\/tcp\/<port>\/p2p\/<peer id>/],
      [() => addPeer({ file: genesis.config, name: 'all', addr: other.addr }), /peer name "all": must not be one of the target keywords/],
      [() => removePeer({ file: genesis.config, name: 'aitbc7' }), /no peer named "aitbc7" in .*; its peers are: aitbc1/],
      [() => addPeer({ file: join(tempDir(), 'missing.yaml'), name: 'aitbc9', addr: other.addr }), /missing\.yaml: file not found/]
    ]
    for (const [edit, message] of refusals) expect(edit).toThrow(message)
    expect(readFileSync(genesis.config, 'utf8')).toBe(text)
  })

  it('refuses to edit a config that is already invalid, naming the field', async () => {
    const genesis = await node('aitbc', 'genesis', '10.0.0.1')
    const follower = await node('aitbc1', 'follower', '10.0.0.2')
    writeFileSync(genesis.config, readFileSync(genesis.config, 'utf8').replace('role: genesis', 'role: leader'))
    expect(() => addPeer({ file: genesis.config, name: 'aitbc1', addr: follower.addr })).toThrow(/mesh\.yaml: node\.role: expected "genesis" or "follower"/)
  })
})
