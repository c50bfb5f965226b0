/**
 * Sent retention: prunes --records ended sent messages down to --keep and prints how long the
 * pass took and the event-loop pauses while it ran (the worst one is what the daemon's other
 * work waits at most), on the embedded store or a redis-server of its own (--store redis).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import type { OutgoingMessage } from '../src/messaging/message.js'
import { indexOps, Outbox, OUTBOX_KEY_PREFIX } from '../src/messaging/outbox.js'
import { SentRetention } from '../src/messaging/sent-retention.js'
import type { StoreBackend, WriteOp } from '../src/store/backend.js'
import { RedisBackend } from '../src/store/redis-backend.js'
import { SqliteBackend } from '../src/store/sqlite-backend.js'
import { startRedis } from './redis.js'

const { values: opts } = parseArgs({ options: { records: { type: 'string', default: '100000' }, keep: { type: 'string', default: '1000' }, store: { type: 'string', default: 'embedded' } } })
const records = Number(opts.records)
const keep = Number(opts.keep)
const log = pino({ level: 'silent' })
const dir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-bench-retention-'))
let redisProc: { kill: () => void } | undefined
let store: StoreBackend
if (opts.store === 'redis') {
  const redis = await startRedis(dir)
  redisProc = redis.proc
  store = new RedisBackend(redis.url, '', log)
  await store.whenReady(5000)
} else {
  store = new SqliteBackend(join(dir, 'store.db'))
}

try {
  const now = Date.now()
  for (let i = 0; i < records; i += 1000) {
    const ops: WriteOp[] = []
    for (let j = i; j < Math.min(records, i + 1000); j++) {
      const m: OutgoingMessage = { id: `bench-${j}`, from: 'aitbc', to: 'aitbc1', kind: 'text', body: 'x'.repeat(200), sent_at: now, expires_at: now + 3600_000, seq: now * 1000 + j, targets: { aitbc1: { state: 'delivered', receipt_at: now, attempts: 1 } } }
      ops.push({ op: 'set', key: OUTBOX_KEY_PREFIX + m.id, value: JSON.stringify(m) }, ...indexOps(m))
    }
    await store.write(ops)
  }
  await store.write([{ op: 'set', key: 'mesh:out-index-migrated', value: '1' }])
  const outbox = new Outbox('aitbc', store, log)
  await outbox.start()
  while (!outbox.ready) await new Promise(resolve => setTimeout(resolve, 10))
  const retention = new SentRetention(store, outbox, () => ({ maxAgeS: 3600, maxCount: keep }), log)

  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const started = performance.now()
  const pruned = await retention.pass()
  const took = performance.now() - started
  delay.disable()
  // The same measure with nothing to do, for reference: on a busy machine the OS pauses us too.
  const idle = monitorEventLoopDelay({ resolution: 1 })
  idle.enable()
  await new Promise(resolve => setTimeout(resolve, Math.min(5000, took)))
  idle.disable()
  const ms = (ns: number): string => (ns / 1e6).toFixed(2)
  console.log(`store ${opts.store}: pruned ${pruned} of ${records} sent records (keep ${keep}) in ${took.toFixed(0)} ms (${(pruned / (took / 1000)).toFixed(0)} records/s)`)
  console.log(`event-loop delay while pruning: p50=${ms(delay.percentile(50))} ms  p99=${ms(delay.percentile(99))} ms  max=${ms(delay.max)} ms`)
  console.log(`event-loop delay idle (reference): p50=${ms(idle.percentile(50))} ms  p99=${ms(idle.percentile(99))} ms  max=${ms(idle.max)} ms`)
  await outbox.stop()
} finally {
  await store.close()
  redisProc?.kill()
  rmSync(dir, { recursive: true, force: true })
}
