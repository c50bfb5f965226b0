import type { Logger } from 'pino'
import type { MeshConfig } from '../config/config.js'
import type { StoreBackend } from './backend.js'
import { openEmbeddedStore } from './embedded-check.js'

export type { StoreBackend, WriteOp, BackendHealth } from './backend.js'

export interface OpenStoreOptions {
  /** Embedded store only: move a missing, empty or damaged store aside and start empty. */
  freshStore?: boolean
}

/** The node's store: its own Redis when configured (`redis:` or REDIS_URL), else SQLite in dataDir. */
export async function openStore (config: MeshConfig, log: Logger, opts: OpenStoreOptions = {}): Promise<StoreBackend> {
  if (config.redisUrl != null) {
    if (opts.freshStore === true) log.warn({ event: 'fresh_store_ignored' }, '--fresh-store applies to the embedded store only; this node uses Redis')
    // ioredis is loaded only by nodes that use Redis.
    const { RedisBackend } = await import('./redis-backend.js')
    return new RedisBackend(config.redisUrl, config.keyPrefix, log)
  }
  return openEmbeddedStore({ dataDir: config.dataDir, keyPrefix: config.keyPrefix, configFile: config.file, freshStore: opts.freshStore === true, log })
}
