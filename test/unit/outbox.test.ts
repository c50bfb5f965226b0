import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { SendOutcomeUnknownError } from '../../src/errors.js'
import { storeEpochOutOfRange } from '../../src/mesh/wire-bounds.js'
import type { OutgoingMessage } from '../../src/messaging/message.js'
import {
  OUTBOX_ABANDONED_PREFIX, OUTBOX_INDEX, OUTBOX_KEY_PREFIX, OUTBOX_PENDING_SET, OUTBOX_RECEIPTED_PREFIX, Outbox
} from '../../src/messaging/outbox.js'
import { SentRetention } from '../../src/messaging/sent-retention.js'
import { StoreOutcomeUnknownError, StoreUnavailableError, type StoreBackend, type WriteOp } from '../../src/store/backend.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { DirtyWriter } from '../../src/store/writer.js'
import { STORE_WRITE_MAX_KEYS } from '../../src/constants.js'
import { tempDir } from '../helpers.js'

const log = pino({ level: 'silent' })

type WriteFault = 'refuse' | 'unanswered-applied' | 'unanswered-lost'

/** An embedded store whose writes can be made to fail the ways a Redis write fails. */
function faultyStore (): { store: StoreBackend, inner: SqliteBackend, fault: (f: WriteFault | undefined) => void } {
  const inner = new SqliteBackend(join(tempDir('aitbc-mesh-outbox-'), 'store.db'))
  let current: WriteFault | undefined
  const store: StoreBackend = Object.assign(Object.create(inner) as StoreBackend, {
    write: async (ops: WriteOp[]) => {
      if (current === 'refuse') throw new StoreUnavailableError('store down')
      if (current === 'unanswered-applied') {
        await inner.write(ops)
        throw new StoreOutcomeUnknownError('no answer (applied)')
      }
      if (current === 'unanswered-lost') throw new StoreOutcomeUnknownError('no answer (lost)')
      await inner.write(ops)
    },
    // A stalled store answers no reads either.
    get: async (key: string) => {
      if (current != null) throw new StoreUnavailableError('no answer')
      return await inner.get(key)
    }
  })
  return { store, inner, fault: f => { current = f } }
}

function outboxOn (store: StoreBackend): { outbox: Outbox, kicked: string[] } {
  const outbox = new Outbox('aitbc', store, log)
  const kicked: string[] = []
  outbox.onPending = node => { kicked.push(node) }
  return { outbox, kicked }
}

const input = { to: 'aitbc1', body: 'hello', kind: 'text', ttl: 3600 }

async function resumed (outbox: Outbox): Promise<void> {
  await outbox.start()
  await expect.poll(() => outbox.ready).toBe(true)
}

describe('outbox: exact answers to a send', () => {
  it('a refused write answers "not sent", never enters delivery, and no later write stores it', async () => {
    const { store, inner, fault } = faultyStore()
    const { outbox, kicked } = outboxOn(store)
    fault('refuse')
    await expect(outbox.create(input, ['aitbc1'])).rejects.toThrow(/message not sent: the store is unavailable/)
    expect(kicked).toEqual([])
    expect(outbox.hasPending('aitbc1')).toBe(false)
    fault(undefined)
    // The next write (another send) goes out: the refused one must not ride along.
    const sent = await outbox.create({ ...input, body: 'second' }, ['aitbc1'])
    expect(await inner.zcard(OUTBOX_INDEX)).toBe(1)
    expect(await inner.smembers(OUTBOX_PENDING_SET)).toEqual([sent.id])
    expect(outbox.pendingFor('aitbc1').map(m => m.body)).toEqual(['second'])
  })

  it('an unanswered write that landed: the answer names the id, and the message is then sent', async () => {
    const { store, fault } = faultyStore()
    const { outbox, kicked } = outboxOn(store)
    fault('unanswered-applied')
    const err = await outbox.create(input, ['aitbc1']).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SendOutcomeUnknownError)
    const id = (err as SendOutcomeUnknownError).messageId
    expect((err as Error).message).toContain(`aitbc-mesh message ${id}`)
    expect((await outbox.lookup(id))?.outcome).toBe('unknown')
    expect(outbox.hasPending('aitbc1')).toBe(false)
    fault(undefined)
    await outbox.resolve()
    expect((await outbox.lookup(id))?.outcome).toBe('sent')
    expect(outbox.pendingFor('aitbc1').map(m => m.id)).toEqual([id])
    expect(kicked).toEqual(['aitbc1'])
  })

  it('an unanswered write that did not land: not sent, and a late copy of it is removed at the next start, never delivered', async () => {
    const { store, inner, fault } = faultyStore()
    const { outbox } = outboxOn(store)
    fault('unanswered-lost')
    const err = await outbox.create(input, ['aitbc1']).catch((e: unknown) => e) as SendOutcomeUnknownError
    const id = err.messageId
    await outbox.resolve() // the store still does not answer: nothing is settled
    expect((await outbox.lookup(id))?.outcome).toBe('unknown')
    fault(undefined)
    await outbox.resolve()
    expect(await outbox.lookup(id)).toMatchObject({ outcome: 'not_sent', id })
    expect(await inner.get(OUTBOX_ABANDONED_PREFIX + id)).not.toBeNull()
    expect(outbox.hasPending('aitbc1')).toBe(false)

    // The lost write is applied after all (it sat in a stalled store's socket).
    const late: OutgoingMessage = { id, from: 'aitbc', to: 'aitbc1', kind: 'text', body: 'hello', sent_at: Date.now(), expires_at: Date.now() + 3600_000, seq: 1, targets: { aitbc1: { state: 'pending', attempts: 0 } } }
    await inner.write([{ op: 'set', key: OUTBOX_KEY_PREFIX + id, value: JSON.stringify(late) }, { op: 'sadd', set: OUTBOX_PENDING_SET, member: id }, { op: 'zadd', set: OUTBOX_INDEX, score: 1, member: id }])
    const restarted = outboxOn(inner).outbox
    await resumed(restarted)
    expect(restarted.hasPending('aitbc1')).toBe(false)
    expect(await inner.get(OUTBOX_KEY_PREFIX + id)).toBeNull()
    expect(await inner.smembers(OUTBOX_PENDING_SET)).toEqual([])
    expect((await restarted.lookup(id))?.outcome).toBe('not_sent')
    await restarted.stop()
  })
})

describe('DirtyWriter outcomes', () => {
  it('reports an unanswered write as unknown and keeps it for the next attempt; a forgotten key is never written', async () => {
    const { store, inner, fault } = faultyStore()
    const state = new Map<string, string>([['a', '1'], ['b', '2']])
    const writer = new DirtyWriter(store, key => state.has(key) ? [{ op: 'set', key, value: state.get(key)! }] : [], log, 'test')
    fault('unanswered-lost')
    expect(await writer.commit('a')).toBe('unknown')
    writer.mark('b')
    expect(await writer.commit('b')).toBe('unknown')
    writer.forget('b')
    fault(undefined)
    expect(await writer.flush()).toBe(true)
    expect(await inner.get('a')).toBe('1')
    expect(await inner.get('b')).toBeNull()
  })
})

describe('DirtyWriter transactions', () => {
  it('writes many keys marked together in transactions of at most STORE_WRITE_MAX_KEYS, every caller told written', async () => {
    const { store, inner } = faultyStore()
    const sizes: number[] = []
    const counted: StoreBackend = Object.assign(Object.create(store) as StoreBackend, {
      write: async (ops: WriteOp[]) => { sizes.push(ops.length); await store.write(ops) }
    })
    const writer = new DirtyWriter(counted, key => [{ op: 'set', key, value: `v-${key}` }], log, 'test')
    const keys = Array.from({ length: STORE_WRITE_MAX_KEYS * 2 + 10 }, (_, i) => `k${i}`)
    const outcomes = await Promise.all(keys.map(async key => await writer.commit(key)))
    expect(outcomes.every(o => o === 'written')).toBe(true)
    expect(sizes).toEqual([STORE_WRITE_MAX_KEYS, STORE_WRITE_MAX_KEYS, 10])
    expect(await inner.get(keys.at(-1)!)).toBe(`v-${keys.at(-1)!}`)
  })

  it('a store that goes away mid-way keeps the chunk that failed and the ones not tried, and writes them later', async () => {
    const { store, inner, fault } = faultyStore()
    let writes = 0
    const failing: StoreBackend = Object.assign(Object.create(store) as StoreBackend, {
      write: async (ops: WriteOp[]) => { if (++writes === 2) fault('refuse'); await store.write(ops) }
    })
    const writer = new DirtyWriter(failing, key => [{ op: 'set', key, value: 'v' }], log, 'test')
    const keys = Array.from({ length: STORE_WRITE_MAX_KEYS * 3 }, (_, i) => `k${i}`)
    const outcomes = await Promise.all(keys.map(async key => await writer.commit(key)))
    expect(outcomes.slice(0, STORE_WRITE_MAX_KEYS).every(o => o === 'written')).toBe(true)
    expect(outcomes.slice(STORE_WRITE_MAX_KEYS).every(o => o === 'pending')).toBe(true)
    expect(writer.pending).toBe(STORE_WRITE_MAX_KEYS * 2)
    fault(undefined)
    expect(await writer.flush()).toBe(true)
    expect(await inner.get(keys.at(-1)!)).toBe('v')
  })
})

describe('outbox: delivery again to a target that lost its store', () => {
  it('queues what the target receipted since its loss, in send order, skipping expired ones; its state stays delivered', async () => {
    const { store, inner } = faultyStore()
    const { outbox } = outboxOn(store)
    await resumed(outbox)
    const sent: OutgoingMessage[] = []
    for (let i = 0; i < 4; i++) sent.push(await outbox.create({ ...input, body: `m${i}`, ttl: i === 2 ? 1 : 3600 }, ['aitbc1']))
    const before = Date.now()
    for (const m of sent) outbox.settle(m.id, 'aitbc1', 'delivered', { receiptAt: m === sent[0] ? before - 60_000 : before })
    await expect.poll(async () => await inner.zcard(OUTBOX_RECEIPTED_PREFIX + 'aitbc1')).toBe(4)
    await expect.poll(() => Date.now() > sent[2]!.expires_at).toBe(true)

    expect(await outbox.redeliverTo('aitbc1', before - 1000)).toBe(2)
    expect(outbox.pendingFor('aitbc1').map(m => m.body)).toEqual(['m1', 'm3'])
    const done = outbox.redeliveryDone('aitbc1')
    outbox.settle(sent[1]!.id, 'aitbc1', 'delivered', { receiptAt: Date.now() })
    outbox.settle(sent[3]!.id, 'aitbc1', 'delivered', { receiptAt: Date.now() })
    await done
    const again = (await outbox.lookup(sent[3]!.id))
    expect(again?.outcome === 'sent' && again.message.targets.aitbc1).toMatchObject({ state: 'delivered', redelivered_at: expect.any(Number) })
    expect(outbox.hasPending('aitbc1')).toBe(false)
    await outbox.stop()
  })
})

describe('sent retention', () => {
  it('prunes ended records beyond maxCount, oldest first, and keeps pending ones', async () => {
    const { store, inner } = faultyStore()
    const { outbox } = outboxOn(store)
    await resumed(outbox)
    const ended: OutgoingMessage[] = []
    for (let i = 0; i < 5; i++) {
      const m = await outbox.create({ ...input, body: `ended ${i}` }, ['aitbc1'])
      outbox.settle(m.id, 'aitbc1', 'delivered', { receiptAt: Date.now() })
      ended.push(m)
    }
    const pending = await outbox.create({ ...input, body: 'pending' }, ['aitbc1'])
    await expect.poll(async () => (await inner.smembers(OUTBOX_PENDING_SET)).length).toBe(1)
    const retention = new SentRetention(store, outbox, () => ({ maxAgeS: 3600, maxCount: 2 }), log)
    expect(await retention.pass()).toBe(4)
    const left = (await inner.zrange(OUTBOX_INDEX, { limit: 10 })).map(e => e.member)
    expect(left).toEqual([ended[4]!.id, pending.id])
    expect(await inner.get(OUTBOX_KEY_PREFIX + ended[0]!.id)).toBeNull()
    expect(await inner.zcard(OUTBOX_RECEIPTED_PREFIX + 'aitbc1')).toBe(1)
    expect(await outbox.lookup(ended[0]!.id)).toBeUndefined()
    // By age: everything ended goes; the pending one stays.
    const byAge = new SentRetention(store, outbox, () => ({ maxAgeS: 1, maxCount: 100 }), log)
    expect(await byAge.prune(Date.now() + 2000)).toBe(1)
    expect((await inner.zrange(OUTBOX_INDEX, { limit: 10 })).map(e => e.member)).toEqual([pending.id])
    await outbox.stop()
  })

  it('indexes records stored before the index existed, once', async () => {
    const { store, inner } = faultyStore()
    const old: OutgoingMessage = { id: 'old-1', from: 'aitbc', to: 'aitbc1', kind: 'text', body: 'x', sent_at: 1, expires_at: 2, seq: 1000, targets: { aitbc1: { state: 'delivered', receipt_at: 5, attempts: 1 } } }
    await inner.write([{ op: 'set', key: OUTBOX_KEY_PREFIX + old.id, value: JSON.stringify(old) }])
    const { outbox } = outboxOn(store)
    await resumed(outbox)
    const retention = new SentRetention(store, outbox, () => ({ maxAgeS: 3600 * 24 * 365 * 100, maxCount: 100 }), log)
    await retention.pass()
    expect(await inner.zscore(OUTBOX_INDEX, old.id)).toBe(1000)
    expect(await inner.zscore(OUTBOX_RECEIPTED_PREFIX + 'aitbc1', old.id)).toBe(5)
    await outbox.stop()
  })
})

describe('store epoch in heartbeats', () => {
  it('bounds the epoch and the loss time', () => {
    const now = Date.now()
    expect(storeEpochOutOfRange(undefined, undefined, now, 1000)).toBeUndefined()
    expect(storeEpochOutOfRange('0b7e-epoch', BigInt(now - 5000), now, 1000)).toBeUndefined()
    expect(storeEpochOutOfRange('x'.repeat(65), 0n, now, 1000)).toMatch(/not 1 to 64 visible ASCII characters/)
    expect(storeEpochOutOfRange('', 0n, now, 1000)).toMatch(/not 1 to 64/)
    expect(storeEpochOutOfRange('has space', 0n, now, 1000)).toMatch(/not 1 to 64/)
    expect(storeEpochOutOfRange('e', BigInt(now + 60_000), now, 1000)).toMatch(/store_lost_from_ms .* ahead of this node's clock/)
    expect(storeEpochOutOfRange('e', 2n ** 64n - 1n, now, 1000)).toMatch(/ahead/)
    expect(storeEpochOutOfRange(undefined, 5n, now, 1000)).toMatch(/without a store_epoch/)
  })
})
