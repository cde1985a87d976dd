/**
 * Windows listeners with TCP Fast Open. `TCP_FASTOPEN` must be on the
 * listening SOCKET, which Node creates inside `listen()` and never exposes
 * on Windows. So for a server synmux manages, each TCP `listen()` creates the
 * listener natively — overlapped socket, `TCP_FASTOPEN`, `IPV6_V6ONLY` as
 * libuv sets it, bind — and hands it to Node's own listen path
 * (`interceptListen` in `win-handle.ts`, the one module that touches Node
 * internals). Everything after that (listen, accept, 'connection', close)
 * is Node's.
 *
 * Whenever this cannot apply (a pipe, `listen({ fd })`/`listen(handle)`, a
 * cluster worker, no hook in this Node), Node's own path runs unchanged and
 * the server's `fastOpen.reason` says so. A native bind failure also defers
 * to Node's path, so errors are exactly Node's own.
 * @internal
 * @packageDocumentation
 */
import type net from 'node:net'
import { native } from './native.js'
import type { FastOpenServerState } from './types.js'
import { interceptListen, ipv6OnlyFlag, listenerHandle, type InterceptedListener } from './win-handle.js'

const hooked = new WeakMap<net.Server, { queue: number }>()
const results = new WeakMap<net.Server, FastOpenServerState>()

/** The outcome of the last listen() that went through the hook. */
export function windowsListenState(server: net.Server): FastOpenServerState | undefined {
  return results.get(server)
}

function createListener(
  address: string,
  family: 4 | 6,
  port: number,
  flags: number,
  queue: number,
): { listener?: InterceptedListener; tfoError?: string; error?: string } {
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
  try {
    return { listener: { handle: listenerHandle(sock), address, addressType: family }, tfoError }
  } catch (err) {
    n.close(sock)
    return { error: `handle-unavailable: ${(err as Error).message}` }
  }
}

/** Routes the server's future TCP listen() calls through a native TFO listener. */
export function hookWindowsListen(server: net.Server, queue: number): void {
  const known = hooked.get(server)
  if (known) {
    known.queue = queue
    return
  }
  if (!native?.setV6Only) return
  const state = { queue }
  const ok = interceptListen(server, (address, port, addressType, flags) => {
    results.delete(server)
    // As Node: no address means '::' (dual-stack), or '0.0.0.0' without IPv6.
    const tries: Array<[string, 4 | 6]> = address ? [[address, addressType === 6 ? 6 : 4]] : [['::', 6], ['0.0.0.0', 4]]
    let last: string | undefined
    for (const [addr, family] of tries) {
      const r = createListener(addr, family, port, flags, state.queue)
      if (r.listener) {
        results.set(server, r.tfoError ? { enabled: false, queue: state.queue, reason: r.tfoError } : { enabled: true, queue: state.queue })
        return r.listener
      }
      last = r.error
    }
    results.set(server, { enabled: false, queue: state.queue, reason: last ?? 'unknown' })
    return null
  })
  if (ok) hooked.set(server, state)
}
