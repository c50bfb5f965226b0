import { execFile } from 'node:child_process'
import { PROBE_COMMAND_TIMEOUT_MS } from '../../constants.js'
import type { ProbeResult } from './rpc.js'

export interface UnitState {
  activeState: string
  subState: string
  /** Seconds since the unit entered the active state; null when it is not active. */
  uptimeSeconds: number | null
}

/** Formats seconds the way AITBC reports service uptime: "5d 12h 34m". */
export function formatUptime (seconds: number): string {
  if (seconds < 60) return `${Math.max(0, Math.floor(seconds))}s`
  const days = Math.floor(seconds / 86400)
  const hours = Math.floor((seconds % 86400) / 3600)
  const minutes = Math.floor((seconds % 3600) / 60)
  if (days > 0) return `${days}d ${hours}h ${minutes}m`
  if (hours > 0) return `${hours}h ${minutes}m`
  return `${minutes}m`
}

/** Reads a unit's state and start time from `systemctl show` (read-only; never changes the unit). */
export async function readUnitState (unit: string, timeoutMs = PROBE_COMMAND_TIMEOUT_MS): Promise<ProbeResult<UnitState>> {
  return await new Promise(resolve => {
    execFile('systemctl', ['show', unit, '--property=ActiveState,SubState,ActiveEnterTimestamp', '--timestamp=unix'],
      { timeout: timeoutMs, env: { ...process.env, SYSTEMD_PAGER: '', LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err != null) {
          const code = (err as NodeJS.ErrnoException).code
          if (code === 'ENOENT') return resolve({ ok: false, reason: 'systemctl not found on this host' })
          if ((err as { killed?: boolean }).killed === true) return resolve({ ok: false, reason: `systemctl show ${unit} timed out after ${timeoutMs} ms` })
          const detail = (stderr.trim().split('\n')[0] ?? '') || err.message
          return resolve({ ok: false, reason: `systemctl show ${unit} failed: ${detail}` })
        }
        const props = new Map<string, string>()
        for (const line of stdout.split('\n')) {
          const eq = line.indexOf('=')
          if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1))
        }
        const activeState = props.get('ActiveState')
        if (activeState == null) return resolve({ ok: false, reason: `systemctl show ${unit} printed no ActiveState` })
        const entered = /^@(\d+)$/.exec(props.get('ActiveEnterTimestamp') ?? '')
        const uptimeSeconds = activeState === 'active' && entered != null ? Math.max(0, Date.now() / 1000 - Number(entered[1])) : null
        resolve({ ok: true, value: { activeState, subState: props.get('SubState') ?? '', uptimeSeconds } })
      })
  })
}
