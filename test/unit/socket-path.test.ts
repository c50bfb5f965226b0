import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml'
import { afterAll, describe, expect, it } from 'vitest'
import { quickSocketFields } from '../../src/cli/socket-fields.js'
import { resolveSocketPath } from '../../src/cli/socket-path.js'

/** The two fields as the YAML parser reads them, only where they are present. */
function parsedFields (text: string): Record<string, unknown> {
  const doc = parse(text) as Record<string, unknown> | null
  const out: Record<string, unknown> = {}
  for (const key of ['controlSocket', 'dataDir']) if (doc != null && key in doc) out[key] = doc[key]
  return out
}

const INIT_CONFIG = `# aitbc-mesh node configuration (see README: Configuration)
node:
  name: "aitbc1"
  role: follower
listen:
  - /ip4/0.0.0.0/tcp/7070
identity: "identity.key"
dataDir: "."
controlSocket: "mesh.sock"
# swarmKey: /etc/aitbc/mesh.swarm.key   # private network: every node needs the same key
peers: []
`

describe('quick read of controlSocket and dataDir', () => {
  const readable: string[] = [
    INIT_CONFIG,
    INIT_CONFIG.replaceAll('\n', '\r\n'),
    'controlSocket: /run/aitbc/mesh.sock\n',
    'controlSocket: /run/aitbc/mesh.sock   # systemd\ndataDir: /var/lib/aitbc-mesh\n',
    "controlSocket: '/run/it''s here/mesh.sock'  # quoted\n",
    'controlSocket: "/run/a \\"b\\"/m\\u00e9sh.sock"\n',
    'node: { name: n1, role: genesis }\ndataDir: ./data\n',
    'controlSocket:\ndataDir: /srv/mesh\n',
    'dataDir: a#b\n',
    'peers:\n  - name: a\n    controlSocket: /nested/is/not/read\ndataDir: /top\n'
  ]
  it.each(readable)('reads what the YAML parser reads: %j', text => {
    const fields = quickSocketFields(text)
    expect(fields).not.toBeUndefined()
    expect(fields).toEqual(parsedFields(text))
  })

  const leftToParser: string[] = [
    'controlSocket: /run/a\n  continued\n',
    'controlSocket: |\n  /run/a\n',
    'controlSocket: &s /run/a\n',
    'controlSocket: !!str /run/a\n',
    'controlSocket: [a]\n',
    'controlSocket: "a\\x41"\n',
    'controlSocket: "unclosed\n',
    'controlSocket: a: b\n',
    'controlSocket: a\ncontrolSocket: b\n',
    '"controlSocket": /run/a\n',
    '---\ncontrolSocket: /run/a\n',
    '{ controlSocket: /run/a }\n',
    '\tcontrolSocket: /run/a\n',
    'controlSocket: null\n',
    'controlSocket: ~\ndataDir: /srv/mesh\n',
    'controlSocket: 42\ndataDir: data\n',
    'controlSocket: 0x1f\n',
    'node: n1\n',
    ''
  ]
  it.each(leftToParser)('leaves to the YAML parser what it cannot be sure of: %j', text => {
    expect(quickSocketFields(text)).toBeUndefined()
  })
})

describe('resolveSocketPath', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aitbc-mesh-socket-path-'))
  afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
  const config = (text: string): string => {
    const file = join(dir, `mesh-${Math.random().toString(36).slice(2)}.yaml`)
    writeFileSync(file, text)
    return file
  }

  it('finds the socket relative to the config, from controlSocket or else dataDir', async () => {
    expect(await resolveSocketPath({ config: config(INIT_CONFIG) }, {})).toBe(join(dir, 'mesh.sock'))
    expect(await resolveSocketPath({ config: config('dataDir: data\n') }, {})).toBe(join(dir, 'data', 'mesh.sock'))
    expect(await resolveSocketPath({ config: config('controlSocket: >-\n  /run/block.sock\n') }, {})).toBe('/run/block.sock')
  })

  it('names the file when neither field is there', async () => {
    const file = config('node: n1\n')
    await expect(resolveSocketPath({ config: file }, {})).rejects.toThrow(`${file}: no controlSocket or dataDir to find the daemon's socket`)
  })

  it('reports invalid YAML elsewhere in the file only when asked to parse it all', async () => {
    const file = config('controlSocket: /run/a.sock\nnode: [unclosed\n')
    expect(await resolveSocketPath({ config: file }, {})).toBe('/run/a.sock')
    await expect(resolveSocketPath({ config: file }, {}, { fullParse: true })).rejects.toThrow(`${file}: invalid YAML: `)
  })
})
