/**
 * The stats of several {@link TunnelServer} processes as one server's:
 * counters and gauges added up, per-reason maps merged, per-client rows
 * merged by key.
 * @packageDocumentation
 */
import type { TunnelClientInfo, TunnelServerStats } from '../server-options.js'

type Plain = number | Record<string, unknown> | unknown[] | string | boolean | null | undefined

/** `a + b` for numbers, field by field for objects (what only one has is kept). */
function add(a: Plain, b: Plain): Plain {
  if (typeof a === 'number' && typeof b === 'number') return a + b
  if (a === undefined || a === null) return b
  if (b === undefined || b === null) return a
  if (typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...a }
    for (const [k, v] of Object.entries(b)) out[k] = add(out[k] as Plain, v as Plain)
    return out
  }
  return a
}

/** One client's rows from several processes, merged by key. */
function clients(all: (TunnelClientInfo[] | undefined)[]): TunnelClientInfo[] | undefined {
  if (all.every((c) => c === undefined)) return undefined
  const by = new Map<string, TunnelClientInfo>()
  for (const rows of all) {
    for (const c of rows ?? []) {
      const m = by.get(c.key)
      if (m === undefined) by.set(c.key, { ...c })
      else {
        m.sessions += c.sessions
        m.streams += c.streams
        m.bytesUp += c.bytesUp
        m.bytesDown += c.bytesDown
      }
    }
  }
  return [...by.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** The stats of the server made of these processes. */
export function sumStats(list: TunnelServerStats[]): TunnelServerStats | null {
  if (list.length === 0) return null
  let out: Plain = {}
  for (const s of list) out = add(out, { ...s, clients: undefined } as unknown as Plain)
  const c = clients(list.map((s) => s.clients))
  const sum = out as unknown as TunnelServerStats
  if (c !== undefined) sum.clients = c
  else delete sum.clients
  return sum
}
