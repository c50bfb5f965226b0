import { describe, expect, it } from 'vitest'
import { ControlCallError } from '../../src/control/client.js'
import { ErrorCodes } from '../../src/control/protocol.js'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { onCleanup, startTestMesh, waitAllOnline, waitFor } from '../helpers.js'
import { TestRedis } from '../redis.js'

interface InboxMessage { id: string, from: string, body: string }
interface MessageView { id: string, outcome: 'sent' | 'unknown' | 'not_sent', targets?: Record<string, { state: string }> }

async function inbox (mesh: LocalMesh, node: string): Promise<InboxMessage[]> {
  const res = await mesh.cli(node, ['inbox', '--json', '--limit', '100000'])
  if (res.code !== 0) throw new Error(`inbox on ${node}: ${res.stderr}`)
  return JSON.parse(res.stdout) as InboxMessage[]
}

async function message (mesh: LocalMesh, node: string, id: string): Promise<{ code: number | null, view: MessageView }> {
  const res = await mesh.cli(node, ['message', id, '--json'])
  return { code: res.code, view: JSON.parse(res.stdout) as MessageView }
}

describe('send answers while the sender\'s Redis stalls, is killed and comes back', () => {
  it('every send is answered with an id (delivered once), "not sent" (never delivered) or "outcome unknown" naming an id (settled later)', async () => {
    const senderRedis = await new TestRedis().start()
    const receiverRedis = await new TestRedis().start()
    const redisOf = [senderRedis, receiverRedis]
    const t = await startTestMesh(2, { extra: i => ({ redis: redisOf[i]!.url }) })
    await waitAllOnline(t.mesh)
    const client = await t.mesh.client('aitbc')
    onCleanup(() => { client.close() })

    const sent = new Map<string, string>() // body → id
    const notSent: string[] = [] // bodies
    const unknown = new Map<string, string>() // body → id
    const other: string[] = []
    const outstanding = new Set<Promise<void>>()
    let n = 0
    let sending = true
    const sendOne = async (body: string): Promise<void> => {
      try {
        const answer = await client.call<{ id: string }>('messages.send', { to: 'aitbc1', body })
        sent.set(body, answer.id)
      } catch (err) {
        if (err instanceof ControlCallError && err.code === ErrorCodes.OutcomeUnknown) {
          const id = (err.data as { id: string }).id
          expect(err.message).toContain(id)
          expect(err.message).toMatch(/outcome not known yet/)
          unknown.set(body, id)
        } else if (/message not sent: the store is unavailable/.test((err as Error).message)) {
          notSent.push(body)
        } else {
          other.push((err as Error).message)
        }
      }
    }
    const loop = (async () => {
      while (sending) {
        const p = sendOne(`race ${n++}`)
        outstanding.add(p)
        void p.finally(() => outstanding.delete(p))
        // A steady trickle of sends, so some land in every phase of the outage.
        await new Promise(resolve => setTimeout(resolve, 15))
      }
    })()

    await waitFor('sends answered before the stall', () => sent.size >= 20, 15000, 20)
    senderRedis.pause()
    await waitFor('a send answered "outcome unknown" while Redis is stalled', () => unknown.size >= 1, 20000, 20)
    await senderRedis.stop('SIGKILL')
    await waitFor('a send answered "not sent" while Redis is down', () => notSent.length >= 1, 20000, 20)
    await senderRedis.start()
    const sentBefore = sent.size
    await waitFor('sends answered again after the restart', () => sent.size >= sentBefore + 20, 30000, 50)
    sending = false
    await loop
    await Promise.all([...outstanding])
    expect(other).toEqual([])

    // Every unknown outcome is settled, and says which way.
    const settled = new Map<string, MessageView>()
    await waitFor('every "outcome unknown" send settled', async () => {
      for (const [body, id] of unknown) {
        if (settled.has(body)) continue
        const { code, view } = await message(t.mesh, 'aitbc', id)
        if (view.outcome === 'unknown') {
          expect(code).toBe(4)
          continue
        }
        settled.set(body, view)
      }
      return settled.size === unknown.size
    }, 30000, 200)
    const sentAfterAll = new Map(sent)
    for (const [body, view] of settled) if (view.outcome === 'sent') sentAfterAll.set(body, view.id)

    await waitFor('every sent message in the receiver\'s inbox', async () => {
      const ids = new Set((await inbox(t.mesh, 'aitbc1')).map(m => m.id))
      return [...sentAfterAll.values()].every(id => ids.has(id))
    }, 30000, 200)
    const received = (await inbox(t.mesh, 'aitbc1')).filter(m => m.body.startsWith('race '))
    // Exactly the sent ones, each once: nothing refused or settled "not sent" was delivered.
    expect(received.map(m => m.body).sort()).toEqual([...sentAfterAll.keys()].sort())
    expect(new Set(received.map(m => m.id)).size).toBe(received.length)
    for (const m of received) expect(m.id).toBe(sentAfterAll.get(m.body))
    for (const [body, view] of settled) {
      if (view.outcome === 'not_sent') expect(received.some(m => m.body === body)).toBe(false)
      else expect(view.targets?.aitbc1?.state).toBe('delivered')
    }

    // Nothing of a refused or abandoned send sits in the sender's Redis.
    const redis = senderRedis.client()
    onCleanup(() => { redis.disconnect() })
    const pending = await redis.smembers('mesh:out-pending')
    const records = await redis.keys('mesh:out:*')
    const knownIds = new Set(sentAfterAll.values())
    for (const id of pending) expect(knownIds.has(id), `pending ${id}`).toBe(true)
    for (const key of records) expect(knownIds.has(key.slice('mesh:out:'.length)), key).toBe(true)
    expect(notSent.length + unknown.size + sent.size).toBe(n)
  }, 180_000)
})
