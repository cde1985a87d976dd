/**
 * The only module that touches Node's internal socket handles. Node has no
 * public API to put a natively created, TFO-configured descriptor under a
 * `net.Socket` that Node then connects, so this uses the same handle
 * methods `net` itself uses (`_handle.open(fd)`, `_handle.fd`). If a future
 * Node removes them, {@link canAdopt} turns false and callers fall back to
 * plain `net` with a reason.
 * @internal
 * @packageDocumentation
 */
import type net from 'node:net'

interface TcpHandle {
  fd?: number
  open?: (fd: number) => number
}

function handleOf(obj: net.Socket | net.Server): TcpHandle | null {
  return ((obj as unknown as { _handle?: TcpHandle | null })._handle ?? null)
}

/** The OS descriptor under a socket or server, or -1. */
export function fdOf(obj: net.Socket | net.Server): number {
  const h = handleOf(obj)
  return h && typeof h.fd === 'number' ? h.fd : -1
}

/** Whether `socket` has a handle that can adopt a descriptor (after `connect()` created it). */
export function canAdopt(socket: net.Socket): boolean {
  const h = handleOf(socket)
  return !!h && typeof h.open === 'function' && (h.fd === undefined || h.fd < 0)
}

/**
 * Puts `fd` under the socket's (not yet connected) handle, so Node's own
 * connect runs on it. Returns a libuv error code (0 on success).
 */
export function adoptFd(socket: net.Socket, fd: number): number {
  const h = handleOf(socket)
  if (!h || typeof h.open !== 'function') return -1
  return h.open(fd)
}
