/**
 * The far side of a stream — what the tunnel server and the HTTP gateway
 * share when they serve one: connecting onward with TCP Fast Open to
 * addresses already checked, accepting the stream once that connection is
 * ready, and refusing it while it is still unanswered.
 * @packageDocumentation
 */
import type net from 'node:net'
import type { MuxStream } from '../mux/stream/stream.js'
import type { FastOpenConnectOptions } from '../tfo/types.js'

/** An address the allow list permits (as `dns.lookup` with `all: true` yields). */
export interface AllowedAddress {
  address: string
  family: number
}

/** A `lookup` that answers with addresses already checked against the allow list (none: `ENOTFOUND`). */
export function fixedLookup(addrs: readonly AllowedAddress[]): net.LookupFunction {
  return ((_host: string, opts: unknown, cb?: unknown) => {
    const callback = (typeof opts === 'function' ? opts : cb) as (err: NodeJS.ErrnoException | null, a: unknown, f?: number) => void
    const o = (typeof opts === 'object' && opts !== null ? opts : {}) as { all?: boolean; family?: number }
    const list = o.family === 4 || o.family === 6 ? addrs.filter((a) => a.family === o.family) : addrs
    if (list.length === 0) return callback(Object.assign(new Error('no allowed address'), { code: 'ENOTFOUND' }), o.all ? [] : undefined)
    if (o.all) callback(null, list)
    else callback(null, list[0]!.address, list[0]!.family)
  }) as net.LookupFunction
}

/**
 * The options of an onward connection to `host:port`: TCP Fast Open (the
 * first bytes ride in the SYN), no Nagle, and — given `lookup`, a
 * {@link fixedLookup} — only the addresses the allow list permitted.
 */
export function onwardOptions(
  host: string,
  port: number,
  lookup: net.LookupFunction | undefined,
  extra: Pick<FastOpenConnectOptions, 'allowHalfOpen' | 'timeout' | 'signal'> = {},
): FastOpenConnectOptions {
  return { host, port, noDelay: true, ...extra, ...(lookup !== undefined ? { lookup } : {}) }
}

/**
 * Accepts `stream` once its onward connection `onward` is ready: when it
 * has connected (at once if it has already: a pooled connection). With
 * `firstResponseWait`, the accept waits that many ms more for the target's
 * first bytes, which then go in OPENED instead (the relay's first write
 * accepts the stream). A connect that takes over `connectTimeout` ms is
 * given up: `onTimeout` gets an `ETIMEDOUT` error.
 */
export function acceptWhenReady(
  stream: MuxStream,
  onward: net.Socket,
  opts: { firstResponseWait?: number; connectTimeout?: number; onTimeout?: (err: NodeJS.ErrnoException) => void } = {},
): void {
  const accept = (): void => {
    if (stream.pending) stream.accept()
  }
  let connectTimer: NodeJS.Timeout | undefined
  const ready = (): void => {
    clearTimeout(connectTimer)
    if (opts.firstResponseWait === undefined) return accept()
    const timer = setTimeout(accept, opts.firstResponseWait)
    onward.once('data', () => clearTimeout(timer))
    onward.once('close', () => clearTimeout(timer))
  }
  if (!onward.connecting) return ready()
  const ms = opts.connectTimeout
  if (ms !== undefined) connectTimer = setTimeout(() => opts.onTimeout?.(Object.assign(new Error(`connect timeout (${ms} ms)`), { code: 'ETIMEDOUT' })), ms)
  onward.once('connect', ready)
  onward.once('close', () => clearTimeout(connectTimer))
}

/**
 * Declines `stream`: while it is unanswered it is refused with `code` and
 * `why` (whatever the client sent optimistically is discarded,
 * docs/PROTOCOL.md "Tunnel conventions"); once answered, `answered()` runs
 * instead (an error answer of the stream's own protocol), by default the
 * stream is destroyed.
 */
export function refuseOr(stream: MuxStream, code: number, why: string, answered: () => void = () => stream.destroy()): void {
  if (stream.pending) stream.refuse(code, why)
  else answered()
}
