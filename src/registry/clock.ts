/** Hybrid logical clock stamps: wall-clock ms, a counter for same-ms updates, the node as tie-break. */
export interface Clock {
  ms: number
  counter: number
  node: string
}

export function compareClocks (a: Clock, b: Clock): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0
}

/** A stamp later than `previous` (if any) and not behind the local wall clock. */
export function nextClock (node: string, previous: Clock | undefined, now = Date.now()): Clock {
  if (previous == null || now > previous.ms) return { ms: now, counter: 0, node }
  return { ms: previous.ms, counter: previous.counter + 1, node }
}
