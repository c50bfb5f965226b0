import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { Lifecycle, type Part } from '../../src/daemon/lifecycle.js'
import { controlApi } from '../../src/control/api.js'
import { controlMethod } from '../../src/control/server.js'

const log = pino({ level: 'silent' })

function recorder (): { calls: string[], part: (name: string, opts?: { failStart?: boolean, hangStop?: boolean }) => Part } {
  const calls: string[] = []
  return {
    calls,
    part: (name, opts = {}) => ({
      name,
      start: async () => {
        calls.push(`start ${name}`)
        if (opts.failStart === true) throw new Error(`${name} would not start`)
      },
      stop: async () => {
        calls.push(`stop ${name}`)
        if (opts.hangStop === true) await new Promise(() => {})
      }
    })
  }
}

describe('Lifecycle', () => {
  it('starts parts in order and stops them in the reverse order, once', async () => {
    const { calls, part } = recorder()
    const lifecycle = new Lifecycle([part('store'), part('libp2p'), { name: 'no stop', start: () => { calls.push('start no stop') } }, part('control')], log)
    await lifecycle.start()
    await Promise.all([lifecycle.stop(), lifecycle.stop()])
    expect(calls).toEqual(['start store', 'start libp2p', 'start no stop', 'start control', 'stop control', 'stop libp2p', 'stop store'])
  })

  it('a part that fails to start stops itself and the parts before it, and the start fails with its error', async () => {
    const { calls, part } = recorder()
    const lifecycle = new Lifecycle([part('store'), part('libp2p', { failStart: true }), part('control')], log)
    await expect(lifecycle.start()).rejects.toThrow('libp2p would not start')
    expect(calls).toEqual(['start store', 'start libp2p', 'stop libp2p', 'stop store'])
  })

  it('a stop that hangs is abandoned after its bound and the next part still stops', async () => {
    const { calls, part } = recorder()
    const lifecycle = new Lifecycle([part('store'), part('libp2p', { hangStop: true })], log, 50)
    await lifecycle.start()
    await lifecycle.stop()
    expect(calls).toEqual(['start store', 'start libp2p', 'stop libp2p', 'stop store'])
  })
})

describe('controlApi', () => {
  it('refuses a method name defined by two services', () => {
    const method = controlMethod(raw => raw, async () => null)
    expect(Object.keys(controlApi({ a: method }, { b: method }))).toEqual(['a', 'b'])
    expect(() => controlApi({ status: method }, { status: method })).toThrow('control method "status" is defined twice')
  })
})
