import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface PageAsset {
  body: Buffer
  contentType: string
}

/** The status page's files, served by path. */
export const PAGE_FILES: Record<string, { file: string, contentType: string }> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', contentType: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', contentType: 'image/svg+xml' }
}

/**
 * The page's files live in src/http/page/ of the project (tsc does not copy them into dist/), so
 * they are found from the project root whether this module runs from dist/ or from src/.
 */
export function pageDir (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('cannot find the project root above ' + fileURLToPath(import.meta.url))
    dir = parent
  }
  return join(dir, 'src', 'http', 'page')
}

/** Reads every page file once; a missing one stops the start with its path. */
export function loadPage (dir = pageDir()): Map<string, PageAsset> {
  const assets = new Map<string, PageAsset>()
  for (const [path, { file, contentType }] of Object.entries(PAGE_FILES)) {
    const full = join(dir, file)
    let body: Buffer
    try {
      body = readFileSync(full)
    } catch (err) {
      throw new Error(`status page file ${full} cannot be read: ${(err as Error).message}`)
    }
    assets.set(path, { body, contentType })
  }
  return assets
}
