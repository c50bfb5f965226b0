import { setTimeout as delay } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { TimeoutError, withTimeout } from '../../src/errors.js'

describe('withTimeout', () => {
  it('gives the work\'s result, and the work\'s signal stays unaborted', async () => {
    let seen: AbortSignal | undefined
    const value = await withTimeout('quick work', async signal => { seen = signal; return 42 }, 1000)
    expect(value).toBe(42)
    expect(seen?.aborted).toBe(false)
  })

  it('on timeout rejects with a TimeoutError naming the work, and aborts the work it gives up on', async () => {
    let work: Promise<unknown> | undefined
    let seen: AbortSignal | undefined
    const result = withTimeout('closing the store', signal => {
      seen = signal
      // Work that honours its signal: a wait far longer than the timeout.
      work = delay(60_000, 'finished', { signal })
      return work
    }, 20)
    await expect(result).rejects.toThrow(new TimeoutError('closing the store did not finish within 20 ms'))
    expect(seen?.aborted).toBe(true)
    expect(seen?.reason).toBeInstanceOf(TimeoutError)
    // The abandoned work was cancelled, not left running.
    await expect(work).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('passes on the work\'s own failure, thrown or rejected', async () => {
    await expect(withTimeout('failing work', () => { throw new Error('boom') }, 1000)).rejects.toThrow('boom')
    await expect(withTimeout('rejecting work', async () => { throw new Error('bang') }, 1000)).rejects.toThrow('bang')
  })

  it('still takes a bare promise, which it can only stop waiting for', async () => {
    await expect(withTimeout('a promise', Promise.resolve('done'), 1000)).resolves.toBe('done')
    await expect(withTimeout('a stuck promise', new Promise(() => {}), 20)).rejects.toThrow('a stuck promise did not finish within 20 ms')
  })
})
