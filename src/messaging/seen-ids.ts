import type { StoreBackend } from '../store/backend.js'

export const SEEN_KEY_PREFIX = 'mesh:seen:'

interface Asked {
  id: string
  resolve: (storedAt: number | null) => void
  reject: (err: unknown) => void
}

/**
 * Whether a message id was stored before, asked of the store: `mesh:seen:{id}` (kept until the
 * message expires) or, failing that, the message itself (an older inbox, or a retry after the
 * expiry of a message still kept). The ids asked in one turn of the event loop share one mget,
 * so envelopes arriving together cost one round trip.
 */
export class SeenIds {
  private asked: Asked[] = []

  constructor (private readonly store: StoreBackend, private readonly messageKey: (id: string) => string) {}

  /** When the id was stored (ms since the epoch), or null if it never was. */
  async storedAt (id: string): Promise<number | null> {
    return await new Promise((resolve, reject) => {
      if (this.asked.push({ id, resolve, reject }) === 1) setImmediate(() => { void this.ask() })
    })
  }

  private async ask (): Promise<void> {
    const asked = this.asked
    this.asked = []
    let values: Array<string | null>
    try {
      values = await this.store.mget(asked.flatMap(a => [SEEN_KEY_PREFIX + a.id, this.messageKey(a.id)]))
    } catch (err) {
      for (const a of asked) a.reject(err)
      return
    }
    asked.forEach((a, i) => {
      const seen = values[2 * i]
      const message = values[2 * i + 1]
      if (seen != null) a.resolve(Number(seen))
      else if (message != null) a.resolve(receivedAt(message))
      else a.resolve(null)
    })
  }
}

/** A stored message's arrival time; 0 if its value cannot be read (it is stored all the same). */
function receivedAt (value: string): number {
  try {
    const time = (JSON.parse(value) as { received_at?: unknown }).received_at
    return typeof time === 'number' ? time : 0
  } catch {
    return 0
  }
}
