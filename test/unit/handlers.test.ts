import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/config.js'
import { OUTCOME_KIND } from '../../src/constants.js'
import { ConfigError } from '../../src/errors.js'
import { handlerEnv, handlerFor } from '../../src/messaging/handlers/config.js'
import { parseOutcome } from '../../src/messaging/handlers/outcome.js'
import { runHandler } from '../../src/messaging/handlers/runner.js'
import { HANDLER_PENDING_INDEX, Inbox } from '../../src/messaging/inbox.js'
import type { InboxMessage } from '../../src/messaging/message.js'
import { Outbox } from '../../src/messaging/outbox.js'
import { SqliteBackend } from '../../src/store/sqlite-backend.js'
import { tempDir, waitFor } from '../helpers.js'

const base = 'node: { name: aitbc, role: genesis }\ndataDir: /var/lib/aitbc-mesh\n'

function refusal (text: string, file: string): ConfigError {
  try {
    parseConfig(text, file, {})
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

describe('handlers: config', () => {
  const dir = tempDir('aitbc-mesh-handler-config-')
  const file = join(dir, 'mesh.yaml')
  const program = join(dir, 'handler.sh')
  writeFileSync(program, '#!/bin/sh\nexit 0\n')
  chmodSync(program, 0o755)
  const notExecutable = join(dir, 'plain.txt')
  writeFileSync(notExecutable, 'text')

  it('accepts a handler, resolving a relative program against the config folder', () => {
    const config = parseConfig(`${base}handlers:\n  - { kind: deploy.request, run: [./handler.sh, --fast] }\nhandlerConcurrency: 2\n`, file, {})
    expect(config.handlers).toEqual([{ kind: 'deploy.request', run: [program, '--fast'], timeout: 60 }])
    expect(config.handlerConcurrency).toBe(2)
  })

  it.each([
    [`handlers:\n  - { kind: deploy, run: [${program}], timeout: 500 }\n`, 'handlers[0].timeout', /from 1 to 120/],
    ['handlers:\n  - { kind: deploy, run: [] }\n', 'handlers[0].run', /program and its arguments/],
    [`handlers:\n  - { kind: "bad kind!", run: [${program}] }\n`, 'handlers[0].kind', /prefix ending in "\*"/],
    [`handlers:\n  - { kind: aitbc-mesh.outcome, run: [${program}] }\n`, 'handlers[0].kind', /daemon's own/],
    [`handlers:\n  - { kind: deploy, run: [${program}], shell: true }\n`, 'handlers[0]', /unknown field\(s\) shell/],
    [`handlers:\n  - { kind: deploy, run: [${notExecutable}] }\n`, 'handlers[0].run[0]', /not an executable file/],
    ['handlers:\n  - { kind: deploy, run: [/no/such/handler] }\n', 'handlers[0].run[0]', /not an executable file/],
    ['handlers:\n  - { kind: deploy, run: [handler.sh] }\n', 'handlers[0].run[0]', /not a path/],
    [`handlers:\n  - { kind: deploy, run: [${program}] }\n  - { kind: deploy, run: [${program}] }\n`, 'handlers[1].kind', /has a handler already/],
    ['handlerConcurrency: 0\n', 'handlerConcurrency', /from 1 to 64/]
  ])('refuses %s with file and field', (text, field, expected) => {
    const err = refusal(base + text, file)
    expect(err.message).toContain(file)
    expect(err.message).toContain(field)
    expect(err.message).toMatch(expected)
  })

  it('matches a kind exactly, else by the longest prefix', () => {
    const handlers = [{ kind: 'deploy.*', run: ['/a'], timeout: 1 }, { kind: 'deploy.request', run: ['/b'], timeout: 1 }, { kind: 'deploy.req*', run: ['/c'], timeout: 1 }, { kind: '*', run: ['/d'], timeout: 1 }]
    expect(handlerFor(handlers, 'deploy.request')?.run).toEqual(['/b'])
    expect(handlerFor(handlers, 'deploy.requeue')?.run).toEqual(['/c'])
    expect(handlerFor(handlers, 'deploy.x')?.run).toEqual(['/a'])
    expect(handlerFor(handlers, 'chat')?.run).toEqual(['/d'])
    expect(handlerFor(handlers.slice(0, 3), 'chat')).toBeUndefined()
  })

  it('gives handlers the environment without secrets', () => {
    const env = handlerEnv({ PATH: '/bin', HOME: '/root', REDIS_URL: 'redis://:pw@h/1', API_TOKEN: 't', aitbc_secret_x: 's', SIGNING_KEY: 'k', DB_PASSWORD: 'p', AITBC_MESH_REDIS_URL: 'r' })
    expect(env).toEqual({ PATH: '/bin', HOME: '/root' })
  })
})

describe('handlers: a run', () => {
  const dir = tempDir('aitbc-mesh-handler-run-')
  it('stops the whole process group at the timeout', async () => {
    const pidFile = join(dir, 'child.pid')
    const program = join(dir, 'spawner.sh')
    writeFileSync(program, `#!/bin/sh\nsleep 60 &\necho $! > ${pidFile}\nwait\n`)
    chmodSync(program, 0o755)
    const run = await runHandler({ kind: 'x', run: [program], timeout: 1 }, '{}', process.env)
    expect(run).toMatchObject({ state: 'handler_failed', exit_code: null })
    expect(run.output_tail).toMatch(/timed out after 1 s/)
    const { readFileSync } = await import('node:fs')
    const child = Number(readFileSync(pidFile, 'utf8'))
    const alive = (): boolean => { try { process.kill(child, 0); return true } catch { return false } }
    const deadline = Date.now() + 5000
    while (alive() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    expect(alive()).toBe(false)
  })
})

describe('handlers: the inbox records and announces only stored messages', () => {
  const inboxes: Inbox[] = []
  afterEach(async () => { for (const i of inboxes.splice(0)) await i.stop() })

  it('a handled message is in the pending index with it; expired and duplicate ones never reach a handler', async () => {
    const store = new SqliteBackend(join(tempDir('aitbc-mesh-handler-inbox-'), 'store.sqlite'))
    const inbox = new Inbox(store, pino({ level: 'silent' }), { maxAgeS: 86400, maxCount: 1000 })
    inboxes.push(inbox)
    const stored: InboxMessage[] = []
    inbox.hooks = { needsHandler: kind => kind === 'job', onStored: m => { stored.push(m) }, intercept: () => undefined }
    await inbox.start()
    const now = Date.now()
    const envelope = (id: string, kind: string, expiresAt = now + 60_000): Parameters<Inbox['receive']>[0] => ({ id, from: 'aitbc1', kind, body: 'b', sentAt: now - 1000, expiresAt })
    for (let i = 0; i < 100 && (await inbox.receive(envelope('warmup', 'text')).catch(() => undefined)) == null; i++) await new Promise(resolve => setTimeout(resolve, 20))
    expect((await inbox.receive(envelope('m1', 'job'))).status).toBe('stored')
    expect((await inbox.receive(envelope('m1', 'job'))).status).toBe('duplicate')
    expect((await inbox.receive(envelope('m2', 'job', now - 1))).status).toBe('rejected')
    expect((await inbox.receive(envelope('m3', 'chat'))).status).toBe('stored')
    expect(stored.map(m => m.id)).toEqual(['m1'])
    expect((await store.zrange(HANDLER_PENDING_INDEX, { limit: 100 })).map(e => e.member)).toEqual(['m1'])
  })
})

describe('handlers: outcomes sent back are the daemon\'s own', () => {
  it('an outcome is not among the node\'s recent sent messages, and `message ID` still finds it', async () => {
    const store = new SqliteBackend(join(tempDir('aitbc-mesh-handler-outbox-'), 'store.sqlite'))
    const outbox = new Outbox('aitbc1', store, pino({ level: 'silent' }))
    await outbox.start()
    try {
      await waitFor('the outbox to load', () => outbox.ready, 5000, 5)
      const sent = await outbox.create({ to: 'aitbc', body: 'status please', kind: 'text', ttl: 60 }, ['aitbc'])
      const outcome = await outbox.create({ to: 'aitbc', body: '{"message_id":"m1"}', kind: OUTCOME_KIND, ttl: 60 }, ['aitbc'])
      expect(outbox.recent(10).map(m => m.id)).toEqual([sent.id])
      expect(await outbox.lookup(outcome.id)).toMatchObject({ outcome: 'sent', message: { id: outcome.id, kind: OUTCOME_KIND } })
    } finally {
      await outbox.stop()
      await store.close()
    }
  })
})

describe('handlers: outcomes from the wire', () => {
  it('refuses an outcome body that is not JSON, has an unknown field, or values out of range, naming the field', () => {
    const good = { message_id: 'm1', state: 'processed', exit_code: 0, output_tail: '', processed_at: 1 }
    expect(parseOutcome(JSON.stringify(good))).toEqual({ ok: true, outcome: good })
    expect(parseOutcome('not json')).toEqual({ ok: false, reason: 'outcome body is not JSON' })
    const refused = (body: unknown): string => {
      const parsed = parseOutcome(JSON.stringify(body))
      if (parsed.ok) throw new Error(`accepted ${JSON.stringify(body)}`)
      return parsed.reason
    }
    expect(refused({ ...good, extra: 1 })).toMatch(/^outcome field \(body\):/)
    expect(refused({ ...good, state: 'delivered' })).toMatch(/^outcome field state:/)
    expect(refused({ ...good, exit_code: 256 })).toMatch(/^outcome field exit_code:/)
    expect(refused({ ...good, message_id: 'a b' })).toMatch(/^outcome field message_id:/)
    expect(refused({ ...good, output_tail: 'x'.repeat(100_000) })).toMatch(/^outcome field output_tail:/)
    expect(refused({ ...good, processed_at: -5 })).toMatch(/^outcome field processed_at:/)
  })

  it('applies an outcome only from a target of the message, once; a forged or unknown one changes nothing', async () => {
    const store = new SqliteBackend(join(tempDir('aitbc-mesh-handler-forged-'), 'store.sqlite'))
    const outbox = new Outbox('aitbc', store, pino({ level: 'silent' }))
    await outbox.start()
    try {
      await waitFor('the outbox to load', () => outbox.ready, 5000, 5)
      const sent = await outbox.create({ to: 'aitbc1', body: 'deploy', kind: 'deploy.request', ttl: 60 }, ['aitbc1'])
      const outcome = { state: 'processed' as const, exit_code: 0, output_tail: '', processed_at: Date.now() }
      expect(await outbox.applyOutcome(sent.id, 'aitbc2', outcome)).toBe(`aitbc2 is not a target of message ${sent.id}`)
      expect(outbox.get(sent.id)!.targets.aitbc1!.state).toBe('pending')
      expect(outbox.get(sent.id)!.targets.aitbc2).toBeUndefined()
      expect(await outbox.applyOutcome('no-such-message', 'aitbc1', outcome)).toMatch(/^no message no-such-message was sent from here/)

      expect(await outbox.applyOutcome(sent.id, 'aitbc1', outcome)).toBeUndefined()
      expect(outbox.get(sent.id)!.targets.aitbc1).toMatchObject({ state: 'processed', exit_code: 0 })
      // A repeat (a handler run again) does not turn a processed target into a failed one.
      expect(await outbox.applyOutcome(sent.id, 'aitbc1', { ...outcome, state: 'handler_failed', exit_code: 1 })).toBeUndefined()
      expect(outbox.get(sent.id)!.targets.aitbc1).toMatchObject({ state: 'processed', exit_code: 0 })
    } finally {
      await outbox.stop()
      await store.close()
    }
  })
})
