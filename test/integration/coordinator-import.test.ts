import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { CoordinatorImport } from '../../src/coordinator/import.js'
import type { CoordinatorRecord } from '../../src/coordinator/record.js'
import { onCleanup, waitFor } from '../helpers.js'
import { freePort, TestRedis } from '../redis.js'

function agentInfo (id: string): Record<string, unknown> {
  const now = new Date().toISOString().replace('Z', '000+00:00')
  return { agent_id: id, agent_type: 'worker', status: 'active', capabilities: [], services: [], endpoints: {}, metadata: {}, last_heartbeat: now, registration_time: now, load_metrics: {}, health_score: 1, version: '1.0.0', tags: [], chain_id: 'ait-hub', island_id: 'default' }
}

describe('coordinator import from agent_events', () => {
  it('subscribes once Redis is up, even when it was down at start, and again after Redis restarts; events it cannot load are refused', async () => {
    const redis = new TestRedis()
    redis.port = await freePort()
    const imported: string[] = []
    const removed: string[] = []
    const importer = new CoordinatorImport({
      redisUrl: redis.url,
      registry: {
        fromCoordinator: async (record: CoordinatorRecord) => { imported.push(record.agent_id); return 'imported' },
        removedByCoordinator: async (agentId: string) => { removed.push(agentId); return 'removed' }
      },
      recordFields: 15,
      log: pino({ level: 'silent' })
    })
    await importer.start()
    onCleanup(async () => { await importer.stop() })

    await redis.start()
    const publisher = redis.client()
    onCleanup(() => { publisher.disconnect() })
    const publish = async (event: Record<string, unknown>): Promise<void> => { await publisher.publish('agent_events', JSON.stringify(event)) }
    await waitFor('the first registration imported', async () => {
      await publish({ event_type: 'agent_registered', timestamp: 'now', agent_info: agentInfo('a1') })
      return imported.includes('a1')
    }, 15000, 200)

    // Not a record the coordinator could load: not imported.
    await publish({ event_type: 'agent_registered', timestamp: 'now', agent_info: { ...agentInfo('bad'), agent_type: 'trainer' } })
    await publish({ event_type: 'agent_unregistered', timestamp: 'now', agent_info: { agent_id: 'a1' } })
    await waitFor('the unregistration', () => removed.includes('a1'), 5000)
    expect(imported).not.toContain('bad')

    // Redis restarts: the subscription comes back by itself.
    await redis.stop()
    await redis.start()
    publisher.disconnect()
    const again = redis.client()
    onCleanup(() => { again.disconnect() })
    await waitFor('a registration after the restart imported', async () => {
      await again.publish('agent_events', JSON.stringify({ event_type: 'agent_registered', timestamp: 'now', agent_info: agentInfo('a2') }))
      return imported.includes('a2')
    }, 15000, 200)
  })
})
