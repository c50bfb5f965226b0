import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { describe, expect, it } from 'vitest'
import { peersOf, startTestMesh, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

/** Every way a secret could show up in a log line. */
function encodings (bytes: Uint8Array): string[] {
  const buffer = Buffer.from(bytes)
  return [buffer.toString('hex'), buffer.toString('base64'), buffer.toString('base64url')]
}

describe('logs', () => {
  it('are JSON lines with node, event and ids, honour LOG_LEVEL, and never contain a key, the swarm key or the Redis password', async () => {
    const password = `pw-${randomBytes(12).toString('hex')}`
    const redis = await new TestRedis(password).start()
    const { mesh } = await startTestMesh(2, {
      swarmKey: true,
      start: false,
      extra: i => ({ redis: redis.url.replace(/\/0$/, `/${i + 1}`) })
    })
    Object.assign(mesh.env, { LOG_LEVEL: 'trace' })
    await mesh.startAll()
    await waitFor('both nodes online', async () => (await peersOf(mesh, 'aitbc')).every(p => p.status === 'online'))

    // Work that logs: messages, agents, an operation, a reload, and a Redis outage with its reconnect.
    const sent = await mesh.cli('aitbc', ['send', '--to', 'aitbc1', '--wait', '--json', 'restart window at 02:00'])
    expect(sent.code, sent.stderr).toBe(0)
    const messageId = JSON.parse(sent.stdout).id as string
    expect((await mesh.cli('aitbc1', ['agents', 'register', '--id', 'agent-7', '--type', 'worker'])).code).toBe(0)
    const status = await mesh.cli('aitbc', ['status', '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect((await mesh.cli('aitbc', ['reload'])).code).toBe(0)
    await redis.stop('SIGKILL')
    await waitFor('the store outage in the log', () => mesh.node('aitbc').logLines.some(l => /"event":"store_(error|disconnected)"/.test(l)))
    await redis.start()
    await waitFor('the store back in the log', () => mesh.node('aitbc').logLines.some(l => l.includes('"event":"store_reconnected"')), 20000)
    await mesh.stopAll()

    const secrets = [password, encodeURIComponent(password)]
    const swarmKey = readFileSync(join(mesh.baseDir, 'swarm.key'), 'utf8').trim().split('\n').pop()!
    expect(swarmKey).toMatch(/^[0-9a-f]{64}$/)
    secrets.push(swarmKey, ...encodings(Buffer.from(swarmKey, 'hex')))
    for (const node of mesh.nodes.values()) {
      const file = readFileSync(join(node.dir, 'identity.key'))
      const key = privateKeyFromProtobuf(file)
      secrets.push(...encodings(file), ...encodings(key.raw), ...encodings(key.raw.subarray(0, 32)))
    }

    for (const node of mesh.nodes.values()) {
      // Everything the process wrote, stdout and stderr.
      const text = readFileSync(join(node.dir, 'daemon.log'), 'utf8')
      for (const secret of secrets) expect(text.includes(secret), `${node.spec.name}'s log contains a secret`).toBe(false)
      const lines = node.logLines.map(line => JSON.parse(line) as Record<string, unknown>)
      for (const line of lines) {
        expect(line).toMatchObject({ node: node.spec.name })
        expect(typeof line.level).toBe('string')
        expect(typeof line.msg).toBe('string')
      }
      const connected = lines.find(l => l.event === 'peer_connected')
      expect(connected).toMatchObject({ peerId: expect.stringMatching(/^12D3KooW/), node: node.spec.name })
    }
    const genesisLines = mesh.node('aitbc').logLines.join('\n')
    // LOG_LEVEL=trace lets the debug events through (at the default, info, they are left out).
    expect(genesisLines).toMatch(new RegExp(`"level":"debug".*"event":"message_sent","messageId":"${messageId}"`))
    expect(genesisLines).toMatch(/"level":"info".*"event":"operation_finished","operationId":"[\w-]+","operation":"status"/)
    // The Redis URL is logged, with the password masked.
    expect(genesisLines).toContain(`redis://:***@127.0.0.1:${redis.port}/1`)
  }, 90000)
})
