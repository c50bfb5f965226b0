import { describe, expect, it } from 'vitest'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { onCleanup, startTestMesh, waitAllOnline, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

interface InboxMessage { id: string, from: string, body: string }

async function inbox (mesh: LocalMesh, node: string): Promise<InboxMessage[]> {
  const res = await mesh.cli(node, ['inbox', '--json', '--limit', '100000'])
  if (res.code !== 0) throw new Error(`inbox on ${node}: ${res.stderr}`)
  return JSON.parse(res.stdout) as InboxMessage[]
}

describe('a receiver whose store comes back empty', () => {
  it('gets back from the senders every message it had receipted, each once in its inbox', async () => {
    const names = ['aitbc', 'aitbc1', 'aitbc2']
    const redis = await Promise.all(names.map(async () => await new TestRedis().start()))
    const t = await startTestMesh(3, { extra: i => ({ redis: redis[i]!.url }) })
    await waitAllOnline(t.mesh)

    const receipted = new Map<string, string>() // id → body
    for (const sender of ['aitbc', 'aitbc2']) {
      const client = await t.mesh.client(sender)
      onCleanup(() => { client.close() })
      for (let i = 0; i < 20; i++) {
        const body = `from ${sender} ${i}`
        const { id } = await client.call<{ id: string }>('messages.send', { to: 'aitbc1', body })
        receipted.set(id, body)
      }
    }
    await waitFor('all 40 messages in aitbc1\'s inbox', async () => {
      const ids = new Set((await inbox(t.mesh, 'aitbc1')).map(m => m.id))
      return [...receipted.keys()].every(id => ids.has(id))
    }, 20000, 200)

    await redis[1]!.restartEmpty()

    // Each sender sees aitbc1's new store epoch in its heartbeats and gives back its 20 messages.
    for (const sender of ['aitbc', 'aitbc2']) {
      await waitFor(`${sender} gives back what aitbc1 lost`, () => t.mesh.node(sender).logLines.some(line => line.includes('"messages_redelivered"') && line.includes('"count":20')), 30000, 200)
    }

    await waitFor('every receipted message back in aitbc1\'s inbox', async () => {
      const ids = new Set((await inbox(t.mesh, 'aitbc1')).map(m => m.id))
      return [...receipted.keys()].every(id => ids.has(id))
    }, 60000, 500)
    const got = (await inbox(t.mesh, 'aitbc1')).filter(m => receipted.has(m.id))
    expect(got.length).toBe(receipted.size)
    expect(new Set(got.map(m => m.id)).size).toBe(got.length)
    for (const m of got) expect(m.body).toBe(receipted.get(m.id))
  }, 180_000)
})
