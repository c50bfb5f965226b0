import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { INBOX_INDEX, INBOX_LIST, INBOX_MIGRATION_KEY, Inbox } from '../../src/messaging/inbox.js'
import type { InboxMessage } from '../../src/messaging/message.js'
import type { StoreBackend, WriteOp } from '../../src/store/backend.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir, waitFor } from '../helpers.js'

const log = pino({ level: 'silent' })
const limits = { maxAgeS: 86400, maxCount: 100_000 }

/** The embedded store, with the inbox migration's batch writes held while `hold` is set. */
function gatedStore (): { store: StoreBackend, batchesWritten: () => number, release: () => void } {
  const inner = new SqliteBackend(join(tempDir('aitbc-mesh-inbox-'), 'store.sqlite'))
  let batches = 0
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  const store = Object.create(inner) as StoreBackend
  store.write = async (ops: WriteOp[]): Promise<void> => {
    const isBatch = ops.length > 1 && ops.some(op => op.op === 'set' && op.key === INBOX_MIGRATION_KEY)
    if (isBatch && batches >= 1) await gate
    await inner.write(ops)
    if (isBatch) batches++
  }
  return { store, batchesWritten: () => batches, release }
}

describe('inbox: a legacy inbox list moved into the index while the inbox is in use', () => {
  const inboxes: Inbox[] = []
  afterEach(async () => { for (const i of inboxes.splice(0)) await i.stop() })

  it('reads the older part through the list and the newer through the index, and tells legacy duplicates apart, until the move ends', async () => {
    const { store, batchesWritten, release } = gatedStore()
    const now = Date.now()
    const legacy = Array.from({ length: 1200 }, (_, i) => `legacy-${i}`)
    await store.write(legacy.flatMap((id, i): WriteOp[] => [
      { op: 'set', key: `mesh:in:${id}`, value: JSON.stringify({ id, from: 'aitbc', kind: 'text', body: `legacy ${i}`, sent_at: now - 60_000, expires_at: now + 3600_000, received_at: now - 60_000 + i, position: i }) },
      { op: 'rpush', list: INBOX_LIST, value: id }
    ]))
    const inbox = new Inbox(store, log, limits)
    inboxes.push(inbox)
    await inbox.start()
    await waitFor('the first batch moved', () => batchesWritten() === 1, 5000, 5)

    const envelope = (id: string): { id: string, from: string, kind: string, body: string, sentAt: number, expiresAt: number } =>
      ({ id, from: 'aitbc', kind: 'text', body: id, sentAt: Date.now(), expiresAt: Date.now() + 60_000 })
    expect(await inbox.receive(envelope('fresh-1'))).toMatchObject({ status: 'stored' })
    // legacy-1000 is not moved yet: still known, not stored twice.
    expect(await inbox.receive(envelope('legacy-1000'))).toMatchObject({ status: 'duplicate', storedAt: now - 60_000 + 1000 })

    const ids = (messages: InboxMessage[]): string[] => messages.map(m => m.id)
    expect(ids(await inbox.list(undefined, 5000))).toEqual([...legacy, 'fresh-1'])
    expect(ids(await inbox.list('legacy-1100', 3))).toEqual(['legacy-1101', 'legacy-1102', 'legacy-1103'])
    expect(ids(await inbox.list('legacy-1198', 5))).toEqual(['legacy-1199', 'fresh-1'])
    expect(await inbox.list('fresh-1', 5)).toEqual([])
    const replayed: string[] = []
    for await (const page of inbox.replay(undefined, 500)) replayed.push(...ids(page))
    expect(replayed).toEqual([...legacy, 'fresh-1'])

    release()
    await waitFor('the legacy list moved', async () => (await store.lrange(INBOX_LIST, 0, -1)).length === 0 && await store.get(INBOX_MIGRATION_KEY) == null, 5000, 10)
    const after = await inbox.list(undefined, 5000)
    expect(ids(after)).toEqual([...legacy, 'fresh-1'])
    expect(after.every((m, i) => i === 0 || m.position > after[i - 1]!.position)).toBe(true)
    expect(await store.zcard(INBOX_INDEX)).toBe(1201)
    expect(ids(await inbox.list('legacy-1198', 5))).toEqual(['legacy-1199', 'fresh-1'])
    expect(await inbox.receive(envelope('legacy-5'))).toMatchObject({ status: 'duplicate' })
  })

  it('answers a retry that arrives while the first copy is being written as a duplicate, stored once', async () => {
    const store = new SqliteBackend(join(tempDir('aitbc-mesh-inbox-'), 'store.sqlite'))
    const inbox = new Inbox(store, log, limits)
    inboxes.push(inbox)
    await inbox.start()
    await waitFor('inbox loaded', async () => await inbox.receive({ id: 'probe', from: 'a', kind: 'text', body: 'x', sentAt: Date.now(), expiresAt: Date.now() + 60_000 }).then(() => true, () => false), 5000, 10)
    const e = { id: 'twice', from: 'a', kind: 'text', body: 'once', sentAt: Date.now(), expiresAt: Date.now() + 60_000 }
    const [first, second] = await Promise.all([inbox.receive(e), inbox.receive(e)])
    expect(first.status).toBe('stored')
    expect(second.status).toBe('duplicate')
    expect((await inbox.list(undefined, 10)).filter(m => m.id === 'twice')).toHaveLength(1)
    expect(await store.get('mesh:seen:twice')).not.toBeNull()
  })
})
