import { chownSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { isMap, isSeq, parseDocument, YAMLMap, YAMLSeq, type Document } from 'yaml'
import { ConfigError, UsageError } from '../errors.js'
import { parseConfig } from './config.js'
import { nodeName, peerSchema, ROLES, type Role } from './schema.js'

/**
 * Edits of the peer allowlist in a config file. The YAML is edited as a document, so comments,
 * key order and layout of everything else stay as the operator wrote them; the result is
 * validated as a whole before it replaces the file.
 */

export interface PeerEdit {
  file: string
  name: string
  role?: Role
  addr?: string
}

function readDocument (file: string): { text: string, doc: Document.Parsed } {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(file, '', code === 'ENOENT' ? 'file not found (create one with `aitbc-mesh init`)' : `cannot read: ${(err as Error).message}`)
  }
  // Refuse to edit a file the daemon would refuse anyway: the error says what to fix first.
  parseConfig(text, file, {})
  return { text, doc: parseDocument(text, { keepSourceTokens: true }) }
}

/** The `peers:` sequence, created (block style) if absent; an empty flow `[]` becomes block style. */
function peersSeq (doc: Document.Parsed, file: string): YAMLSeq {
  const root: unknown = doc.contents
  if (!isMap(root)) throw new ConfigError(file, '(top level)', 'expected a YAML mapping')
  let seq: unknown = root.get('peers', true)
  if (seq == null || (!isSeq(seq) && (seq as { value?: unknown }).value == null)) {
    seq = new YAMLSeq()
    root.set('peers', seq)
  }
  if (!isSeq(seq)) throw new ConfigError(file, 'peers', 'expected a list of peers')
  if (seq.items.length === 0) seq.flow = false
  return seq
}

function nameOf (item: unknown): string | undefined {
  return isMap(item) ? String(item.get('name')) : undefined
}

/** Writes next to the file, keeps its mode and owner, then renames over it: never a half-written config. */
function replaceFile (file: string, text: string): void {
  const stat = statSync(file)
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`)
  try {
    writeFileSync(temp, text, { mode: stat.mode & 0o777 })
    if (process.getuid?.() === 0) chownSync(temp, stat.uid, stat.gid)
    renameSync(temp, file)
  } finally {
    rmSync(temp, { force: true })
  }
}

function validateAndWrite (file: string, doc: Document.Parsed): void {
  const text = doc.toString({ lineWidth: 0 })
  parseConfig(text, file, {})
  replaceFile(file, text)
}

/** Adds a peer to the allowlist. The name and the peer id must be new to this config. */
export function addPeer (edit: PeerEdit): { name: string, role: Role, addr: string } {
  const name = nodeName.safeParse(edit.name)
  if (!name.success) throw new UsageError(`peer name "${edit.name}": ${name.error.issues[0]?.message}`)
  const role = edit.role ?? 'follower'
  if (!(ROLES as readonly string[]).includes(role)) throw new UsageError(`--role "${role}": expected genesis or follower`)
  const parsed = peerSchema.safeParse({ name: edit.name, role, addr: edit.addr })
  if (!parsed.success) throw new UsageError(`multiaddr "${edit.addr ?? ''}": ${parsed.error.issues[0]?.message}`)
  const peer = parsed.data

  const { doc } = readDocument(edit.file)
  const config = parseConfig(doc.toString(), edit.file, {})
  if (config.node.name === peer.name) throw new UsageError(`"${peer.name}" is this node's own name in ${edit.file}; a node does not list itself under peers`)
  if (config.peers.some(p => p.name === peer.name)) throw new UsageError(`a peer named "${peer.name}" is already in ${edit.file}; remove it first with \`aitbc-mesh config remove-peer ${peer.name}\``)
  const peerId = peer.addr.split('/p2p/')[1]
  const sameId = config.peers.find(p => p.peerId.toString() === peerId)
  if (sameId != null) throw new UsageError(`peer id ${peerId} is already in ${edit.file} as "${sameId.name}"`)
  if (peer.role === 'genesis') {
    const genesis = config.node.role === 'genesis' ? config.node.name : config.peers.find(p => p.role === 'genesis')?.name
    if (genesis != null) throw new UsageError(`"${genesis}" is already the genesis node; a mesh has exactly one (use --role follower)`)
  }

  const seq = peersSeq(doc, edit.file)
  const entry = new YAMLMap()
  entry.set('name', peer.name)
  entry.set('role', peer.role)
  entry.set('addr', peer.addr)
  seq.add(entry)
  validateAndWrite(edit.file, doc)
  return { name: peer.name, role: peer.role, addr: peer.addr }
}

/** Removes a peer from the allowlist by name. */
export function removePeer (edit: { file: string, name: string }): { name: string } {
  const { doc } = readDocument(edit.file)
  const seq = peersSeq(doc, edit.file)
  const index = seq.items.findIndex(item => nameOf(item) === edit.name)
  if (index < 0) {
    const names = seq.items.map(nameOf).filter((n): n is string => n != null)
    throw new UsageError(`no peer named "${edit.name}" in ${edit.file}; its peers are: ${names.length > 0 ? names.join(', ') : '(none)'}`)
  }
  seq.items.splice(index, 1)
  validateAndWrite(edit.file, doc)
  return { name: edit.name }
}
