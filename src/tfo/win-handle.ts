/**
 * Windows only: puts a natively created SOCKET under a Node `net.Socket` or
 * `net.Server`. Windows Node refuses `{ fd }` for sockets (libuv's
 * `uv_guess_handle` knows only files, pipes and TTYs), so this wraps the
 * SOCKET in a `TCP` handle of Node's `tcp_wrap` binding — the same handle
 * class `net` uses — with `open(socket)` (`uv_tcp_open`, which accepts
 * bound, listening-to-be and connected sockets and associates them with
 * libuv's completion port), then `new net.Socket({ handle })`, or assigns
 * it as a server's listen handle.
 *
 * The `TCP` class comes from `process.binding('tcp_wrap')` (allowed in
 * Node 20–24, documentation-deprecated), or, should that ever go, from the
 * constructor of a handle `net` itself creates. If neither works,
 * {@link windowsHandleError} says why and callers use plain `net` with the
 * reason `handle-unavailable`.
 *
 * Listeners: {@link interceptListen} wraps a server's `_listen2`, the hook
 * Node keeps "to avoid breaking code that wraps this method" (lib/net.js),
 * so a natively created listener becomes the server's handle before Node's
 * own `setupListenHandle` calls `listen()` on it.
 *
 * Nothing else in synmux touches Node internals on Windows.
 * @internal
 * @packageDocumentation
 */
import net from 'node:net'
import util from 'node:util'
import { SynmuxError } from '../common/errors.js'

/** The parts of Node's internal `TCP` handle used here. */
export interface TcpWrapHandle {
  open(socket: number): number
  close(cb?: () => void): void
}

interface TcpWrapBinding {
  TCP: new (type: number) => TcpWrapHandle
  constants: { SOCKET: number; SERVER: number; UV_TCP_IPV6ONLY: number }
}

let binding: TcpWrapBinding | null | undefined
let bindingError: string | undefined

function fromProcessBinding(): TcpWrapBinding | null {
  const pb = (process as unknown as { binding?: (name: string) => unknown }).binding
  if (typeof pb !== 'function') return null
  try {
    const b = pb.call(process, 'tcp_wrap') as Partial<TcpWrapBinding>
    if (typeof b?.TCP === 'function' && b.constants && typeof b.constants.SOCKET === 'number') return b as TcpWrapBinding
  } catch {
    // removed or disallowed in this Node
  }
  return null
}

function fromNetHandle(): TcpWrapBinding | null {
  // net creates a TCP handle synchronously in connect(); destroyed before
  // the next tick, it never reaches the network.
  const probe = new net.Socket()
  probe.on('error', () => {})
  try {
    probe.connect({ port: 9, host: '127.0.0.1' })
    const ctor = (probe as unknown as { _handle?: { constructor?: unknown } })._handle?.constructor
    if (typeof ctor !== 'function') return null
    // The handle types of src/tcp_wrap.h: SOCKET 0, SERVER 1.
    return { TCP: ctor as TcpWrapBinding['TCP'], constants: { SOCKET: 0, SERVER: 1, UV_TCP_IPV6ONLY: 1 } }
  } catch {
    return null
  } finally {
    probe.destroy()
  }
}

/** Which route {@link load} took: `'process.binding'`, `'net-handle'`, or null (none works). */
let route: 'process.binding' | 'net-handle' | null = null

/**
 * The one place that reaches for Node's internal `TCP` handle class. Node
 * has no supported way to wrap a Windows SOCKET in a `net.Socket`, so this
 * takes `process.binding('tcp_wrap')` (DEP0111, documentation-only in Node
 * 20–24) and, should Node remove it, the constructor of a handle `net`
 * itself creates. test/tfo/node-internals.test.ts fails loudly on the Node
 * version that removes either route.
 */
function load(): TcpWrapBinding | null {
  if (binding !== undefined) return binding
  const viaBinding = fromProcessBinding()
  binding = viaBinding ?? fromNetHandle()
  if (binding && typeof binding.TCP.prototype.open !== 'function') binding = null
  route = binding ? (viaBinding ? 'process.binding' : 'net-handle') : null
  if (!binding) bindingError = `Node ${process.version} exposes no TCP handle with open(); synmux cannot hand a Windows socket to net`
  return binding
}

/**
 * How this Node gives synmux a `TCP` handle class: the route, and whether
 * each route works on its own (for the test that watches Node for their removal).
 * @internal
 */
export function tcpWrapRoutes(): { route: 'process.binding' | 'net-handle' | null; processBinding: boolean; netHandle: boolean } {
  load()
  const ok = (b: TcpWrapBinding | null) => !!b && typeof b.TCP.prototype.open === 'function'
  return { route, processBinding: ok(fromProcessBinding()), netHandle: ok(fromNetHandle()) }
}

/** Why sockets cannot be handed to Node here, or undefined when they can. */
export function windowsHandleError(): string | undefined {
  load()
  return bindingError
}

/** `UV_TCP_IPV6ONLY`, the listen flag `net` passes for `ipv6Only: true`. */
export function ipv6OnlyFlag(): number {
  return load()?.constants.UV_TCP_IPV6ONLY ?? 1
}

function openHandle(socket: number, server: boolean): TcpWrapHandle {
  const b = load()
  if (!b) throw new SynmuxError('ERR_SYNMUX_HANDLE_UNAVAILABLE', bindingError ?? 'the TCP handle binding is unavailable')
  const handle = new b.TCP(server ? b.constants.SERVER : b.constants.SOCKET)
  const err = handle.open(socket)
  if (err !== 0) {
    handle.close()
    const e = new Error(`uv_tcp_open failed (${err})`) as NodeJS.ErrnoException
    e.errno = err
    try {
      e.code = util.getSystemErrorName(err)
    } catch {
      e.code = 'UNKNOWN'
    }
    e.syscall = 'open'
    throw e
  }
  return handle
}

/**
 * A TCP handle around a connected SOCKET, for `new net.Socket({ handle })`.
 * On success libuv owns the SOCKET (closing the socket closes it); on
 * failure the SOCKET is still the caller's.
 */
export function connectedHandle(socket: number): TcpWrapHandle {
  return openHandle(socket, false)
}

/** A server TCP handle around a bound (not yet listening) SOCKET; Node calls `listen()` on it. */
export function listenerHandle(socket: number): TcpWrapHandle {
  return openHandle(socket, true)
}

/** What {@link interceptListen}'s callback returns: the listen handle, and the address it is bound to. */
export interface InterceptedListener {
  handle: TcpWrapHandle
  address: string
  addressType: 4 | 6
}

type Listen2 = (
  this: net.Server,
  address: string | null | undefined,
  port: number,
  addressType: number,
  backlog: number | undefined,
  fd: number | undefined,
  flags: number | undefined,
) => void

/**
 * Before each TCP `listen()` of `server` that would make Node create its own
 * socket, calls `create(address, port, addressType, flags)` (address null:
 * any); a returned listener is used instead, `null` leaves Node's own path
 * untouched. Pipes, `listen({ fd })`, `listen(handle)` and cluster workers
 * never reach it. Returns false when this Node has no such hook.
 */
export function interceptListen(
  server: net.Server,
  create: (address: string | null, port: number, addressType: number, flags: number) => InterceptedListener | null,
): boolean {
  const s = server as unknown as { _handle?: unknown; _listen2?: Listen2 }
  const original = s._listen2
  if (typeof original !== 'function' || windowsHandleError() !== undefined) return false
  s._listen2 = function (address, port, addressType, backlog, fd, flags) {
    const self = this as unknown as { _handle?: unknown }
    const tcp = typeof port === 'number' && port >= 0 && (addressType === 4 || addressType === 6 || !address)
    if (!self._handle && typeof fd !== 'number' && tcp) {
      const l = create(address ?? null, port, addressType, flags ?? 0)
      if (l) {
        self._handle = l.handle
        return original.call(this, l.address, port, l.addressType, backlog, fd, flags)
      }
    }
    return original.call(this, address, port, addressType, backlog, fd, flags)
  }
  return true
}
