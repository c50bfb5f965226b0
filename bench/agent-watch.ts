import type { ControlClient } from '../src/control/client.js'
import type { LocalMesh } from '../src/devmesh/local-mesh.js'

/** When each agent was first seen on each node: agent id → node → performance.now(). */
export type SeenAgents = Map<string, Map<string, number>>

/**
 * One `agents.watch` per node, recording when each agent first shows up there. A watch sees only
 * what happens after it reached its daemon, and its stream sends nothing before: callers wait for
 * a warm-up agent to be seen everywhere. The clients are the caller's to close.
 */
export async function watchAgents (mesh: LocalMesh, names: string[]): Promise<{ seen: SeenAgents, clients: ControlClient[] }> {
  const seen: SeenAgents = new Map()
  const clients: ControlClient[] = []
  for (const name of names) {
    const client = await mesh.client(name)
    clients.push(client)
    void client.call('agents.watch', {}, {
      onEvent: event => {
        const id = (event as { agent_id: string }).agent_id
        let at = seen.get(id)
        if (at == null) seen.set(id, at = new Map())
        if (!at.has(name)) at.set(name, performance.now())
      }
    }).catch(() => {})
  }
  return { seen, clients }
}
