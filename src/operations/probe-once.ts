import { loadConfig } from '../config/config.js'
import { PeerTable } from '../mesh/peer-table.js'
import { LocalProbes } from './local-probes.js'
import type { NodeReport } from './report.js'

/**
 * This node's report from its own probes, without the daemon: what `aitbc-mesh probe` prints,
 * and what the SSH fallback runs on a host the mesh cannot reach.
 */
export async function probeOnce (configFile: string): Promise<NodeReport> {
  const config = loadConfig(configFile)
  const probes = new LocalProbes({
    config,
    peers: new PeerTable(config.peers, config.heartbeat.offlineAfterMs),
    connectedPeers: () => 0,
    startedAt: Date.now()
  })
  return await probes.reportFor('health')
}
