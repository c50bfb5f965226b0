import type { ConnectionGater, PeerId } from '@libp2p/interface'

/**
 * Admits only allowlisted peer ids, in both directions. Checked once the peer id is known
 * (after the Noise handshake proves it) and again before any dial.
 */
export class AllowlistGater implements ConnectionGater {
  private allowed: Set<string>
  /** Called for every refused peer, so refusals show up in the log. */
  onRefused?: (peerId: PeerId, direction: 'inbound' | 'outbound') => void

  constructor (peerIds: Iterable<PeerId>) {
    this.allowed = new Set([...peerIds].map(p => p.toString()))
  }

  setAllowed (peerIds: Iterable<PeerId>): void {
    this.allowed = new Set([...peerIds].map(p => p.toString()))
  }

  isAllowed (peerId: PeerId): boolean {
    return this.allowed.has(peerId.toString())
  }

  private refuse (peerId: PeerId, direction: 'inbound' | 'outbound'): boolean {
    if (this.isAllowed(peerId)) return false
    this.onRefused?.(peerId, direction)
    return true
  }

  denyDialPeer = (peerId: PeerId): boolean => this.refuse(peerId, 'outbound')
  denyInboundEncryptedConnection = (peerId: PeerId): boolean => this.refuse(peerId, 'inbound')
  denyOutboundEncryptedConnection = (peerId: PeerId): boolean => this.refuse(peerId, 'outbound')
  denyInboundUpgradedConnection = (peerId: PeerId): boolean => !this.isAllowed(peerId)
  denyOutboundUpgradedConnection = (peerId: PeerId): boolean => !this.isAllowed(peerId)
}
