// The NATS JetStream reference for bench:messages: a nats-server of the benchmark's own with file
// storage, one publisher connection and one consumer connection, publish → consumer ack.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { AckPolicy, jetstream, jetstreamManager, StorageType, type JsMsg } from '@nats-io/jetstream'
import { waitFor } from '../src/devmesh/local-mesh.js'
import { freePort } from './redis.js'

const STREAM = 'BENCH'
const SUBJECT = 'bench.coordination'
/** The message index is written over the start of the body, so every message keeps the same size. */
const INDEX_WIDTH = 10

export interface NatsServer { port: number, version: string, proc: ChildProcess }

/** Starts `nats-server -js` on a free loopback port with its store in `dir`; null when the binary is not installed. */
export async function startNats (dir: string): Promise<NatsServer | null> {
  const probe = spawnSync('nats-server', ['--version'], { encoding: 'utf8' })
  if (probe.error != null || probe.status !== 0) return null
  const port = await freePort()
  const proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: 'ignore' })
  await waitFor('nats-server', async () => {
    try {
      const nc = await connect({ servers: `127.0.0.1:${port}`, reconnect: false })
      await nc.close()
      return true
    } catch {
      return false
    }
  }, 10000, 50)
  return { port, version: probe.stdout.trim().replace(/^nats-server:\s*/, ''), proc }
}

export interface JetStreamResult {
  /** Sustained: `count` published with up to `window` publishes awaiting their stream ack, until the last consumer ack. */
  sustainedMs: number
  /** Messages of the sustained phase the consumer acked. */
  acked: number
  /** Publish to consumer ack (confirmed by the server), at `rate` msg/s offered. */
  latencies: number[]
}

function indexed (body: string, index: number): string {
  return String(index).padStart(INDEX_WIDTH, '0') + body.slice(INDEX_WIDTH)
}

/**
 * The same two phases as the mesh benchmark: `count` messages of `body`'s size with up to `window`
 * outstanding, then `rate` msg/s for `seconds`. Each message is acked by the consumer and the ack
 * is confirmed by the server (ackAck), the counterpart of a delivered receipt.
 */
export async function jetStreamReference (port: number, opts: { count: number, body: string, window: number, rate: number, seconds: number }): Promise<JetStreamResult> {
  const pub = await connect({ servers: `127.0.0.1:${port}` })
  const sub = await connect({ servers: `127.0.0.1:${port}` })
  try {
    const jsm = await jetstreamManager(pub)
    await jsm.streams.add({ name: STREAM, subjects: [SUBJECT], storage: StorageType.File })
    await jsm.consumers.add(STREAM, { durable_name: 'bench', ack_policy: AckPolicy.Explicit })
    const ackedAt = new Map<number, number>()
    const consuming = consume(sub, ackedAt)
    const js = jetstream(pub)

    const started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: opts.window }, async () => {
      while (next < opts.count) await js.publish(SUBJECT, indexed(opts.body, next++))
    }))
    await waitFor('JetStream messages acked', () => ackedAt.size >= opts.count, 300000, 5)
    const sustainedMs = Math.max(...ackedAt.values()) - started

    const sentAt = new Map<number, number>()
    const total = opts.rate * opts.seconds
    const first = opts.count
    const t0 = performance.now()
    const pending: Array<Promise<unknown>> = []
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / opts.rate
      const wait = due - performance.now()
      if (wait > 1) await new Promise(resolve => setTimeout(resolve, wait))
      sentAt.set(first + i, performance.now())
      pending.push(js.publish(SUBJECT, indexed(opts.body, first + i)))
    }
    await Promise.all(pending)
    await waitFor('paced JetStream messages acked', () => ackedAt.size >= first + total, 60000, 5)
    const latencies = [...sentAt].map(([i, at]) => ackedAt.get(i)! - at)
    consuming.stop()
    return { sustainedMs, acked: [...ackedAt.keys()].filter(i => i < first).length, latencies }
  } finally {
    await sub.close()
    await pub.close()
  }
}

function consume (nc: NatsConnection, ackedAt: Map<number, number>): { stop: () => void } {
  let stop = (): void => {}
  void (async () => {
    const consumer = await jetstream(nc).consumers.get(STREAM, 'bench')
    const messages = await consumer.consume({ max_messages: 1000 })
    stop = () => { void messages.close() }
    for await (const m of messages) void ack(m, ackedAt)
  })()
  return { stop: () => { stop() } }
}

async function ack (m: JsMsg, ackedAt: Map<number, number>): Promise<void> {
  const index = Number(new TextDecoder().decode(m.data.subarray(0, INDEX_WIDTH)))
  await m.ackAck()
  ackedAt.set(index, performance.now())
}
