/**
 * What services report for the daemon's metrics. The Prometheus implementation lives in
 * src/http/metrics.ts and is loaded only when `http:` is configured; everywhere else (and in unit
 * tests) the no-op below is used, so services never depend on prom-client.
 */
export interface MeshMetrics {
  /** A message was stored for delivery to `targets` nodes (each target counts once). */
  messageSent: (targets: number) => void
  /** One target's delivery ended; `latencyMs` is send to receipt for delivered ones. */
  messageSettled: (state: 'delivered' | 'failed', latencyMs: number | undefined, reason: string | undefined) => void
  /** An operation finished: `result` is its validation_status, or `error` when it threw. */
  operationFinished: (operation: string, result: string) => void
  /** A store call failed (`operation`: get, write, scan, ...). */
  storeError: (operation: string) => void
  /** A store write (one transaction, a batch of `ops` operations) finished, successful or not, after `ms`. */
  storeWrite: (ms: number, ops: number) => void
}

export const NO_METRICS: MeshMetrics = {
  messageSent: () => {},
  messageSettled: () => {},
  operationFinished: () => {},
  storeError: () => {},
  storeWrite: () => {}
}
