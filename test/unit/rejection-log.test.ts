import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { RejectionLog } from '../../src/mesh/rejection-log.js'

function capture (): { lines: Array<Record<string, unknown>>, log: pino.Logger } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  return { lines, log: pino({ level: 'info' }, sink) }
}

describe('RejectionLog', () => {
  afterEach(() => { vi.useRealTimers() })

  it('writes the first rejection of each peer and reason, counts the rest, and summarises them once the interval has passed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const t0 = Date.parse('2026-01-01T00:00:00Z')
    vi.setSystemTime(t0)
    const { lines, log } = capture()
    const rejections = new RejectionLog(log, 60_000)
    for (let i = 0; i < 1000; i++) rejections.reject('agent_change_rejected', 'aitbc3', 'bad-signature', { agentId: `a${i}` })
    rejections.reject('agent_change_rejected', 'aitbc3', 'not-owner', { agentId: 'x' })
    rejections.reject('agent_change_rejected', 'aitbc2', 'bad-signature', { agentId: 'y' })
    await new Promise(resolve => setImmediate(resolve))
    expect(lines.map(l => [l.peer, l.reason, l.agentId])).toEqual([['aitbc3', 'bad-signature', 'a0'], ['aitbc3', 'not-owner', 'x'], ['aitbc2', 'bad-signature', 'y']])
    expect(rejections.total).toBe(1002)

    vi.setSystemTime(t0 + 60_001)
    rejections.reject('agent_change_rejected', 'aitbc3', 'bad-signature', { agentId: 'last' })
    await new Promise(resolve => setImmediate(resolve))
    expect(lines).toHaveLength(4)
    expect(lines[3]).toMatchObject({ level: 40, event: 'agent_change_rejected', peer: 'aitbc3', reason: 'bad-signature', agentId: 'last', repeated: 1000 })
  })

  it('remembers a bounded number of (peer, reason) pairs', async () => {
    const { lines, log } = capture()
    const rejections = new RejectionLog(log, 60_000, 4)
    for (let i = 0; i < 100; i++) rejections.reject('e', `peer${i}`, 'r')
    // The oldest pairs were forgotten, so peer0 is written again; the newest is still remembered.
    rejections.reject('e', 'peer0', 'r')
    rejections.reject('e', 'peer99', 'r')
    await new Promise(resolve => setImmediate(resolve))
    expect(lines).toHaveLength(101)
    expect(lines[100]).toMatchObject({ peer: 'peer0' })
  })
})
