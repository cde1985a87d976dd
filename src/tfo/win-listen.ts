/**
 * Windows listeners with TCP Fast Open. `TCP_FASTOPEN` must be on the
 * listening SOCKET, which Node creates inside `listen()` and never exposes
 * on Windows. So for a server synmux manages, its `_listen2` (the hook Node
 * keeps "to avoid breaking code that wraps this method", lib/net.js) creates
 * the listener natively — overlapped socket, `TCP_FASTOPEN`, `IPV6_V6ONLY`
 * as libuv sets it, bind — wraps it in a `TCP` handle (`win-handle.ts`) and
 * lets Node's own `setupListenHandle` call `listen()` on it. Everything
 * after that (accept, 'connection', close) is Node's.
 *
 * Whenever this cannot apply (a pipe, `listen({ fd })`/`listen(handle)`, a
 * cluster worker, no `_listen2`), Node's own path runs unchanged and the
 * server's `fastOpen.reason` says so. A native bind failure also defers to
 * Node's path, so errors are exactly Node's own.
 * @internal
 * @packageDocumentation
 */
import type net from 'node:net'
import { native } from './native.js'
import type { FastOpenServerState } from './types.js'
import { ipv6OnlyFlag, listenerHandle, windowsHandleError } from './win-handle.js'

type Listen2 = (
  this: net.Server,
  address: string | null | undefined,
  port: number,
  addressType: number,
  backlog: number | undefined,
  fd: number | undefined,
  flags: number | undefined,
) => void

interface ServerInternals {
  _handle?: unknown
  _listen2?: Listen2
}

const hooked = new WeakMap<net.Server, { queue: number }>()
const results = new WeakMap<net.Server, FastOpenServerState>()

/** The outcome of the last listen() that went through the hook. */
export function windowsListenState(server: net.Server): FastOpenServerState | undefined {
  return results.get(server)
}

interface Listener {
  handle: unknown
  address: string
  addressType: 4 | 6
}

function createListener(
  address: string,
  family: 4 | 6,
  port: number,
  flags: number,
  queue: number,
): { listener?: Listener; tfoError?: string; error?: string } {
  const n = native!
  let sock: number
  try {
    sock = n.socket(family)
  } catch (err) {
    return { error: `socket ${(err as NodeJS.ErrnoException).code}` }
  }
  let tfoError: string | undefined
  try {
    n.setFastOpenListen(sock, queue)
  } catch (err) {
    tfoError = `setsockopt ${(err as NodeJS.ErrnoException).code}`
  }
  try {
    if (family === 6) n.setV6Only!(sock, (flags & ipv6OnlyFlag()) !== 0)
    n.bind(sock, address, port)
  } catch (err) {
    n.close(sock)
    return { error: `bind ${(err as NodeJS.ErrnoException).code}` }
  }
  let handle: unknown
  try {
    handle = listenerHandle(sock)
  } catch (err) {
    n.close(sock)
    return { error: `handle-unavailable: ${(err as Error).message}` }
  }
  return { listener: { handle, address, addressType: family }, tfoError }
}

/** Routes the server's future TCP listen() calls through a native TFO listener. */
export function hookWindowsListen(server: net.Server, queue: number): void {
  const known = hooked.get(server)
  if (known) {
    known.queue = queue
    return
  }
  const s = server as unknown as ServerInternals
  const original = s._listen2
  if (typeof original !== 'function' || !native?.setV6Only || windowsHandleError() !== undefined) return
  const state = { queue }
  hooked.set(server, state)
  s._listen2 = function (address, port, addressType, backlog, fd, flags) {
    results.delete(server)
    const tcp = typeof port === 'number' && port >= 0 && (addressType === 4 || addressType === 6 || !address)
    if ((this as unknown as ServerInternals)._handle || typeof fd === 'number' || !tcp) {
      return original.call(this, address, port, addressType, backlog, fd, flags)
    }
    // As Node: no address means '::' (dual-stack), or '0.0.0.0' without IPv6.
    const tries: Array<[string, 4 | 6]> = address ? [[address, addressType === 6 ? 6 : 4]] : [['::', 6], ['0.0.0.0', 4]]
    let last: string | undefined
    for (const [addr, family] of tries) {
      const r = createListener(addr, family, port, flags ?? 0, state.queue)
      if (!r.listener) {
        last = r.error
        continue
      }
      ;(this as unknown as ServerInternals)._handle = r.listener.handle
      results.set(
        server,
        r.tfoError
          ? { enabled: false, queue: state.queue, reason: r.tfoError }
          : { enabled: true, queue: state.queue },
      )
      return original.call(this, r.listener.address, port, r.listener.addressType, backlog, fd, flags)
    }
    results.set(server, { enabled: false, queue: state.queue, reason: last ?? 'unknown' })
    return original.call(this, address, port, addressType, backlog, fd, flags)
  }
}
