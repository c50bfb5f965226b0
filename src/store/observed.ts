import type { MeshMetrics } from '../metrics.js'
import type { StoreBackend } from './backend.js'

/** The same store, counting every failed call and timing every write in `metrics` (used only when metrics are served). */
export function observedStore (store: StoreBackend, metrics: MeshMetrics): StoreBackend {
  const counted = <A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await call(...args)
      } catch (err) {
        metrics.storeError(operation)
        throw err
      }
    }
  const write = counted('write', store.write.bind(store))
  return {
    kind: store.kind,
    location: store.location,
    get: counted('get', store.get.bind(store)),
    scan: counted('scan', store.scan.bind(store)),
    smembers: counted('smembers', store.smembers.bind(store)),
    lrange: counted('lrange', store.lrange.bind(store)),
    mget: counted('mget', store.mget.bind(store)),
    zrange: counted('zrange', store.zrange.bind(store)),
    zscore: counted('zscore', store.zscore.bind(store)),
    zcard: counted('zcard', store.zcard.bind(store)),
    durability: counted('durability', store.durability.bind(store)),
    write: async ops => {
      const started = performance.now()
      try {
        await write(ops)
      } finally {
        metrics.storeWrite(performance.now() - started, ops.length)
      }
    },
    health: () => store.health(),
    whenReady: async timeoutMs => await store.whenReady(timeoutMs),
    onReady: listener => { store.onReady(listener) },
    close: async () => { await store.close() }
  }
}
