import type { NodeEntry } from '../config/config.js'
import { UsageError } from '../errors.js'

/**
 * Resolves a target expression (`all`, `genesis`, `follower`, a node name, or a comma-separated
 * list of these) against the configured nodes, in config order, without duplicates. Offline
 * nodes are included: the set comes from the config, not from who is connected.
 */
export function resolveTargets (expression: string, nodes: NodeEntry[]): NodeEntry[] {
  const parts = expression.split(',').map(p => p.trim())
  if (expression.trim() === '' || parts.some(p => p === '')) {
    throw new UsageError(`target "${expression}" is empty or has an empty item; expected all, genesis, follower, a node name or a comma-separated list (${validTargets(nodes)})`)
  }
  const wanted = new Set<string>()
  for (const part of parts) {
    const key = part.toLowerCase()
    if (key === 'all') nodes.forEach(n => wanted.add(n.name))
    else if (key === 'genesis') nodes.filter(n => n.role === 'genesis').forEach(n => wanted.add(n.name))
    else if (key === 'follower') nodes.filter(n => n.role === 'follower').forEach(n => wanted.add(n.name))
    else {
      const node = nodes.find(n => n.name === part)
      if (node == null) throw new UsageError(`unknown target "${part}"; valid targets: ${validTargets(nodes)}`)
      wanted.add(node.name)
    }
  }
  const resolved = nodes.filter(n => wanted.has(n.name))
  if (resolved.length === 0) throw new UsageError(`target "${expression}" matches no configured node; valid targets: ${validTargets(nodes)}`)
  return resolved
}

export function validTargets (nodes: NodeEntry[]): string {
  return ['all', 'genesis', 'follower', ...nodes.map(n => n.name)].join(', ')
}
