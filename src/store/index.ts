import { join } from 'node:path'
import type { Logger } from 'pino'
import type { MeshConfig } from '../config/config.js'
import { EMBEDDED_STORE_FILE_NAME } from '../constants.js'
import type { StoreBackend } from './backend.js'
import { SqliteBackend } from './sqlite-backend.js'

export type { StoreBackend, WriteOp, BackendHealth } from './backend.js'

/** The node's store: its own Redis when configured (`redis:` or REDIS_URL), else SQLite in dataDir. */
export async function openStore (config: MeshConfig, log: Logger): Promise<StoreBackend> {
  if (config.redisUrl != null) {
    // ioredis is loaded only by nodes that use Redis.
    const { RedisBackend } = await import('./redis-backend.js')
    return new RedisBackend(config.redisUrl, config.keyPrefix, log)
  }
  return new SqliteBackend(join(config.dataDir, EMBEDDED_STORE_FILE_NAME), config.keyPrefix)
}
