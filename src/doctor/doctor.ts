import { DOCTOR_CHECK_TIMEOUT_MS } from '../constants.js'
import { ControlClient } from '../control/client.js'
import { errorMessage } from '../errors.js'
import {
  checkClockSkew, checkConfig, checkCoordinatorHealth, checkCoordinatorRedis, checkDaemon, checkEmbeddedStore, checkIdentity, checkListen, checkPeerMesh, checkPeerSsh, checkRedis, checkRpc, checkStoreDurability, checkSwarmKey,
  type CheckResult, type DaemonIdentity, type PeerViewLike
} from './checks.js'

export type { CheckResult } from './checks.js'

interface DaemonAnswer {
  id?: DaemonIdentity & { startedAt?: string }
  peers?: PeerViewLike[]
  error?: string
}

/** Asks the local daemon for its identity and its view of the peers; the daemon may not be running. */
async function askDaemon (socket: string, timeoutMs: number): Promise<DaemonAnswer> {
  let client: ControlClient
  try {
    client = await ControlClient.connect(socket, timeoutMs)
  } catch (err) {
    return { error: errorMessage(err) }
  }
  try {
    const [id, peers] = await Promise.all([
      client.call<DaemonIdentity & { startedAt?: string }>('id', {}, { timeoutMs }),
      client.call<PeerViewLike[]>('peers', {}, { timeoutMs })
    ])
    return { id, peers }
  } catch (err) {
    return { error: errorMessage(err) }
  } finally {
    client.close()
  }
}

/**
 * Every check of `aitbc-mesh doctor`, in the order printed. Local checks need no daemon; the mesh
 * checks (peers, clock skew) ask the running daemon. With an invalid config only that is reported.
 */
export async function runDoctor (file: string, opts: { socket?: string, timeoutMs?: number } = {}): Promise<CheckResult[]> {
  const timeoutMs = opts.timeoutMs ?? DOCTOR_CHECK_TIMEOUT_MS
  const { result: configResult, config } = checkConfig(file)
  if (config == null) return [configResult]
  const socket = opts.socket ?? config.controlSocket
  const daemon = await askDaemon(socket, timeoutMs)
  const daemonId = daemon.id != null ? { peerId: daemon.id.peerId, listen: daemon.id.listen } : undefined
  // The network checks run at once; each is bounded by the timeout.
  const [listen, redis, durability, rpc, coordinator, ssh] = await Promise.all([
    Promise.all(config.listen.map(async addr => await checkListen(config, addr, daemonId))),
    checkRedis(config, timeoutMs),
    checkStoreDurability(config, timeoutMs),
    checkRpc(config, timeoutMs),
    checkCoordinatorHealth(config, timeoutMs),
    Promise.all(config.peers.map(async peer => await checkPeerSsh(config, peer, timeoutMs)))
  ])
  const results: CheckResult[] = [
    configResult,
    checkIdentity(config),
    checkSwarmKey(config),
    ...listen,
    redis,
    ...(config.redisUrl == null ? [checkEmbeddedStore(config)] : []),
    durability,
    rpc,
    ...[checkCoordinatorRedis(config), coordinator].filter((c): c is CheckResult => c != null),
    checkDaemon(socket, daemon.id, daemon.error)
  ]
  config.peers.forEach((peer, i) => {
    results.push(checkPeerMesh(config, peer, daemon.peers))
    const overSsh = ssh[i]
    if (overSsh != null) results.push(overSsh)
  })
  results.push(checkClockSkew(config, daemon.peers))
  return results
}

/** `PASS name (detail)` or `FAIL name: detail — fix: ...`. */
export function formatCheck (check: CheckResult): string {
  if (check.ok) return `PASS ${check.name} (${check.detail})`
  return `FAIL ${check.name}: ${check.detail} — fix: ${check.fix ?? ''}`
}
