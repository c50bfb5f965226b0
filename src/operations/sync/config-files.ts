import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { CONFIG_SYNC_MAX_FILE_BYTES } from '../../constants.js'
import { fitText } from './answers.js'

export interface FileHash {
  path: string
  sha256: string | null
  error?: string
}

export interface FileContent {
  path: string
  content_base64: string | null
  error?: string
}

export interface FileWritten {
  path: string
  state: 'written' | 'refused' | 'failed'
  backup?: string
  reason?: string
}

export function hashFiles (paths: string[]): FileHash[] {
  return paths.map(path => {
    try {
      return { path, sha256: createHash('sha256').update(readFileSync(path)).digest('hex') }
    } catch (err) {
      return { path, sha256: null, error: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : fitText((err as Error).message) }
    }
  })
}

export function readFiles (paths: string[]): FileContent[] {
  return paths.map(path => {
    try {
      const size = statSync(path).size
      if (size > CONFIG_SYNC_MAX_FILE_BYTES) return { path, content_base64: null, error: `${size} bytes, over the ${CONFIG_SYNC_MAX_FILE_BYTES} byte limit` }
      return { path, content_base64: readFileSync(path).toString('base64') }
    } catch (err) {
      return { path, content_base64: null, error: fitText((err as Error).message) }
    }
  })
}

/**
 * Replaces configured files with the given contents: each existing file is first copied to
 * `<file>.bak.<timestamp>`, then the new content is written to a temporary file and renamed
 * over it, keeping the old mode. Only files in `allowed` (this node's probes.configFiles) are
 * written, whatever the request says.
 */
export function writeFiles (files: Array<{ path: string, content_base64: string }>, allowed: string[], now = new Date()): FileWritten[] {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return files.map(file => {
    if (!allowed.includes(file.path)) return { path: file.path, state: 'refused' as const, reason: 'not one of this node\'s probes.configFiles' }
    try {
      let mode = 0o640
      let backup: string | undefined
      try {
        mode = statSync(file.path).mode & 0o7777
        backup = `${file.path}.bak.${stamp}`
        copyFileSync(file.path, backup)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
      const temp = `${file.path}.aitbc-mesh.tmp`
      writeFileSync(temp, Buffer.from(file.content_base64, 'base64'), { mode })
      chmodSync(temp, mode)
      renameSync(temp, file.path)
      return { path: file.path, state: 'written' as const, ...(backup != null ? { backup } : {}) }
    } catch (err) {
      return { path: file.path, state: 'failed' as const, reason: fitText((err as Error).message) }
    }
  })
}
