import { describe, expect, it } from 'vitest'
import type { LocalMesh } from '../../src/devmesh/local-mesh.js'
import { startTestMesh, waitAllOnline, waitFor } from '../helpers.js'

async function send (mesh: LocalMesh, node: string, to: string, body: string, wait: boolean): Promise<string> {
  const res = await mesh.cli(node, ['send', '--to', to, ...(wait ? ['--wait', '--timeout', '30'] : []), '--json', body])
  if (res.code !== 0) throw new Error(`send on ${node}: ${res.stderr}`)
  return (JSON.parse(res.stdout) as { id: string }).id
}

/** `message ID`: its targets' states, or undefined once retention removed it. */
async function stateOf (mesh: LocalMesh, node: string, id: string): Promise<Record<string, string> | undefined> {
  const res = await mesh.cli(node, ['message', id, '--json'])
  if (res.code === 2 && /no message/.test(res.stderr)) return undefined
  const view = JSON.parse(res.stdout) as { targets: Record<string, { state: string }> }
  return Object.fromEntries(Object.entries(view.targets).map(([n, t]) => [n, t.state]))
}

describe('retention of sent messages (retention.sent)', () => {
  it('prunes ended records beyond maxCount (oldest first) and after maxAgeS; pending and fresh ones stay', async () => {
    const t = await startTestMesh(3, {
      extra: i => i === 0
        ? { retention: { sent: { maxAgeS: 3600, maxCount: 3 } } }
        : i === 1 ? { retention: { sent: { maxAgeS: 2, maxCount: 1000 } } } : {}
    })
    await waitAllOnline(t.mesh)
    await t.mesh.stop('aitbc2')

    // By count: one pending message (the oldest) and six delivered ones; three may stay.
    const pending = await send(t.mesh, 'aitbc', 'aitbc2', 'waits for aitbc2', false)
    const delivered: string[] = []
    for (let i = 0; i < 6; i++) delivered.push(await send(t.mesh, 'aitbc', 'aitbc1', `count ${i}`, true))
    await waitFor('the four oldest delivered messages pruned', async () => {
      for (const id of delivered.slice(0, 4)) if (await stateOf(t.mesh, 'aitbc', id) != null) return false
      return true
    }, 30000, 250)
    expect(await stateOf(t.mesh, 'aitbc', pending)).toEqual({ aitbc2: 'pending' })
    for (const id of delivered.slice(4)) expect(await stateOf(t.mesh, 'aitbc', id)).toEqual({ aitbc1: 'delivered' })

    // By age: delivered ones go after 2 s, the pending one stays.
    const old = [await send(t.mesh, 'aitbc1', 'aitbc', 'ages 1', true), await send(t.mesh, 'aitbc1', 'aitbc', 'ages 2', true)]
    const waiting = await send(t.mesh, 'aitbc1', 'aitbc2', 'waits too', false)
    await waitFor('delivered messages older than maxAgeS pruned', async () => {
      for (const id of old) if (await stateOf(t.mesh, 'aitbc1', id) != null) return false
      return true
    }, 30000, 250)
    expect(await stateOf(t.mesh, 'aitbc1', waiting)).toEqual({ aitbc2: 'pending' })
  }, 120_000)
})
