import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

/**
 * The version in this program's package.json, read at run time: the nearest package.json above
 * this file (dist/src/cli in a build or an install, src/cli under the tests).
 */
export function packageVersion (from: string = import.meta.dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json')
    let text: string | undefined
    try {
      text = readFileSync(file, 'utf8')
    } catch {}
    if (text != null) {
      const version = (JSON.parse(text) as { version?: unknown }).version
      if (typeof version !== 'string') throw new Error(`${file}: no "version" string`)
      return version
    }
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`)
  }
}
