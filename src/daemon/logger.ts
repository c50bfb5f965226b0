import { pino, type Logger } from 'pino'

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

/** JSON lines on stdout (journald picks them up); LOG_LEVEL wins over the config. */
export function createLogger (base: Record<string, unknown>, configLevel?: string): Logger {
  const envLevel = process.env.LOG_LEVEL?.toLowerCase()
  const level = envLevel != null && LEVELS.has(envLevel) ? envLevel : configLevel ?? 'info'
  return pino({
    level,
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: label => ({ level: label }) },
    // Secrets never appear in events, but redact the obvious paths anyway as a second guard.
    redact: { paths: ['privateKey', 'swarmKey', 'psk', 'password', '*.password', 'redisUrl'], censor: '[redacted]' }
  })
}
