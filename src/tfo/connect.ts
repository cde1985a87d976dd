/**
 * Client side: `createConnection()` (synchronous, Node style) and
 * `connectWithData()` (a promise, data in the SYN).
 *
 * Two ways to get data into the SYN:
 * - **handle** (`createConnection` on Linux >= 4.11): a descriptor with
 *   `TCP_FASTOPEN_CONNECT` is put under the socket's own handle just before
 *   Node connects it, so Node's normal connect, events, timeouts and errors
 *   all apply, and the first write rides in the SYN.
 * - **preconnect** (`connectWithData` on Linux: `sendto(MSG_FASTOPEN)`):
 *   native code connects with the data — the SYN leaves in the call —,
 *   waits until the socket is writable (not at all when the handshake is
 *   already complete: a peer on this host), then hands the connected
 *   descriptor to Node; bytes the SYN could not take are written after.
 * - macOS: `connectWithData` uses **preconnect** with `connectx()`;
 *   `createConnection` uses **deferred**: `connectx(CONNECT_RESUME_ON_READ_WRITE)`
 *   without data on a descriptor adopted with `new net.Socket({ fd })`, so
 *   the first write carries the SYN (`darwin.ts`; on Linux the same path
 *   runs under `SYNMUX_LINUX_TFO_METHOD=adopt`, for its tests).
 * - **connectex** (Windows, `connectWithData` only): `ConnectEx` with the
 *   data, then the SOCKET is handed to Node (`connect-win.ts`). Windows
 *   sends SYN data only through ConnectEx, which needs the data when the
 *   connect starts, so `createConnection` there uses plain `net`
 *   (`reason: 'unsupported-platform'`).
 * Anything else uses plain `net` and reports why.
 * @packageDocumentation
 */
import dns from 'node:dns'
import net from 'node:net'
import { Cancel, type CancelSignal } from './cancel.js'
import { connectEx } from './connect-win.js'
import { deferredConnection, sendSynIfIdle } from './darwin.js'
import { abortError, invalidArgType, systemError } from './errors.js'
import { adoptFd, canAdopt } from './handle.js'
import { native, type NativeTcpInfo, type NativeWaitHandle } from './native.js'
import { FastOpenSocket, fastOpenAttempted, markAttempted, markNotAttempted, refresh, socketFd } from './socket.js'
import { darwinSetting, SUPPORTED_PLATFORMS } from './support.js'
import type { FastOpenConnectOptions, FastOpenReason } from './types.js'
import { normalizeConnectArgs, toBytes, validateConnectOptions, type ConnectPlan } from './validate.js'
import { windowsHandleError } from './win-handle.js'

type Method = 'handle' | 'preconnect' | 'connectex' | 'deferred'

/**
 * Linux client method; switches to sendto(MSG_FASTOPEN) once the kernel
 * says ENOPROTOOPT. Test hooks: `SYNMUX_LINUX_TFO_METHOD=sendto` (the
 * pre-4.11 path), `=adopt` (createConnection through the macOS code path).
 */
let linuxMethod: Method = process.env.SYNMUX_LINUX_TFO_METHOD === 'sendto' ? 'preconnect' : 'handle'
const linuxAdopt = process.env.SYNMUX_LINUX_TFO_METHOD === 'adopt'
/**
 * `connectWithData` on Linux sends with `sendto(MSG_FASTOPEN)` even where
 * `TCP_FASTOPEN_CONNECT` works: the data is in hand, so the SYN leaves in
 * the call, not after Node's connect has gone round the event loop (about
 * 0.3 ms under load, on a forwarded connection's critical path). Test
 * hook: `SYNMUX_LINUX_TFO_METHOD=handle` keeps it on the handle path.
 */
const dataMethodHandle = process.env.SYNMUX_LINUX_TFO_METHOD === 'handle'

/** How a connect will try TFO, or why it will not. */
function clientMethod(opts: ConnectPlan): { method: Method } | { reason: FastOpenReason } {
  if (opts.fastOpen === false) return { reason: 'opted-out' }
  if (!SUPPORTED_PLATFORMS.includes(process.platform)) return { reason: 'unsupported-platform' }
  if (!native) return { reason: 'addon-unavailable' }
  if (process.platform === 'darwin') return native.connectResume ? { method: 'deferred' } : { reason: 'addon-unavailable' }
  if (process.platform === 'win32') {
    if (!native.connectEx) return { reason: 'addon-unavailable' }
    return windowsHandleError() === undefined ? { method: 'connectex' } : { reason: 'handle-unavailable' }
  }
  return { method: linuxMethod }
}

/**
 * macOS: `SYNMUX_MACOS_FORCE_TFO=1` sets the private
 * `TCP_FASTOPEN_FORCE_ENABLE`, so TFO is tried even after the kernel's
 * heuristics backed off (off by default: the back-off protects against
 * paths that drop SYN data).
 */
const forceDarwinTfo = process.env.SYNMUX_MACOS_FORCE_TFO === '1'

/** macOS: whether the client bit of `net.inet.tcp.fastopen` is set (assumed when unreadable). */
function darwinClientOn(): boolean {
  const v = darwinSetting()
  return v === undefined || (v & 0x2) !== 0
}

/**
 * The `net.Socket` constructor options. `adopted`: for a socket made over
 * a descriptor or handle synmux already has, without `noDelay` and
 * `keepAlive`: Node applies those options only when it connects the
 * socket itself, and takes them as already set, so that the
 * `setNoDelay(true)` / `setKeepAlive(true)` that follow would not reach
 * the kernel (the onward connection would keep Nagle on).
 */
function socketOptions(opts: ConnectPlan, adopted = false): net.SocketConstructorOpts {
  const o: Record<string, unknown> = {}
  if (opts.allowHalfOpen !== undefined) o.allowHalfOpen = opts.allowHalfOpen
  if (adopted) return o as net.SocketConstructorOpts
  if (opts.noDelay !== undefined) o.noDelay = opts.noDelay
  if (opts.keepAlive !== undefined) o.keepAlive = opts.keepAlive
  if (opts.keepAliveInitialDelay !== undefined) o.keepAliveInitialDelay = opts.keepAliveInitialDelay
  return o as net.SocketConstructorOpts
}

function netConnectOptions(opts: ConnectPlan): net.TcpSocketConnectOpts {
  const o: net.TcpSocketConnectOpts = { port: opts.port, host: opts.host, family: opts.family, autoSelectFamily: false }
  if (opts.localAddress !== undefined) o.localAddress = opts.localAddress
  if (opts.localPort !== undefined) o.localPort = opts.localPort
  if (opts.lookup !== undefined) o.lookup = opts.lookup
  return o
}

/**
 * Puts a TFO descriptor under the socket's handle (which `connect()` just
 * created and has not connected yet).
 */
function attach(socket: FastOpenSocket, family: 4 | 6, idleSyn: boolean): void {
  const n = native!
  if (!canAdopt(socket)) return markNotAttempted(socket, 'handle-unavailable')
  let fd: number
  try {
    fd = n.socket(family)
  } catch {
    // Node's own socket() will fail the same way and report it.
    return markNotAttempted(socket, 'unknown')
  }
  try {
    n.setFastOpenConnect(fd)
  } catch (err) {
    n.close(fd)
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOPROTOOPT') linuxMethod = 'preconnect'
    return markNotAttempted(socket, code === 'ENOPROTOOPT' ? 'kernel-too-old' : 'disabled-by-os')
  }
  if (adoptFd(socket, fd) !== 0) {
    n.close(fd)
    return markNotAttempted(socket, 'handle-unavailable')
  }
  markAttempted(socket)
  // With a cookie the kernel defers the SYN to the first write. A socket
  // that writes nothing when connected (a server-speaks-first protocol)
  // would wait forever, so send the SYN empty after this turn of the loop
  // (not needed when the caller writes its first bytes at once).
  if (idleSyn) socket.once('connect', () => setImmediate(() => sendSynIfIdle(socket, socketFd(socket))))
}

/**
 * Starts connecting `socket` through Node, with a TFO descriptor when
 * possible. `dataFollows`: the caller writes its first bytes right away
 * (no SYN can be left waiting for a write).
 */
function connectThroughNode(
  socket: FastOpenSocket,
  opts: ConnectPlan,
  tfo: boolean,
  listener?: () => void,
  dataFollows = false,
): void {
  const netOpts = netConnectOptions(opts)
  if (opts.timeout !== undefined) socket.setTimeout(opts.timeout)
  if (!tfo) {
    socket.connect(netOpts, listener)
    return
  }
  const literal = net.isIP(opts.host)
  if (literal !== 0) {
    socket.connect(netOpts, listener)
    attach(socket, literal as 4 | 6, !dataFollows)
    return
  }
  // Node emits 'lookup' synchronously right before it connects.
  socket.prependOnceListener('lookup', (err: Error | null, address: string, family: number | string) => {
    if (err || !address) return
    attach(socket, family === 6 || family === 'IPv6' || net.isIP(address) === 6 ? 6 : 4, !dataFollows)
  })
  socket.connect(netOpts, listener)
}

/**
 * Creates a TCP connection whose first written bytes ride in the SYN, Node
 * style: returns the socket at once, emits `'connect'`, and works wherever
 * `net.createConnection` does — as `http.Agent`'s `createConnection`,
 * undici's `connect`, or under `tls.connect({ socket })` (the ClientHello
 * then rides in the SYN).
 *
 * Write before or right after `'connect'`: if nothing has been written by
 * then, the SYN is sent without data (`fastOpen.reason === 'no-data'`).
 *
 * Takes what `net.createConnection` takes for TCP: `(options[, listener])`
 * or `(port[, host][, listener])`, the port a number or a decimal string
 * (`'8080'`). A path (`net`'s reading of a non-numeric string, or
 * `options.path`) throws: TCP Fast Open has no Unix domain sockets.
 *
 * @example
 * ```js
 * const { createConnection } = require('synmux')
 * const socket = createConnection({ host: '127.0.0.1', port: 8080 })
 * socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
 * socket.on('data', () => console.log(socket.fastOpen))
 * ```
 * @throws TypeError / RangeError (with `code`) for invalid options:
 * `ERR_SOCKET_BAD_PORT` for a port outside 1–65535, `ERR_INVALID_ARG_VALUE`
 * for a path, `ERR_INVALID_ARG_TYPE` for a wrong type.
 */
export function createConnection(options: FastOpenConnectOptions, connectListener?: () => void): FastOpenSocket
/** `createConnection(port[, host][, listener])`, as `net.createConnection`; `host` defaults to `'localhost'`. */
export function createConnection(port: number | string, host?: string, connectListener?: () => void): FastOpenSocket
/** `createConnection(port[, listener])` to `'localhost'`, as `net.createConnection`. */
export function createConnection(port: number | string, connectListener?: () => void): FastOpenSocket
export function createConnection(...args: unknown[]): FastOpenSocket {
  const { options, listener: connectListener } = normalizeConnectArgs(args)
  const opts = validateConnectOptions(options)
  if (connectListener !== undefined && typeof connectListener !== 'function') {
    throw invalidArgType('connectListener', 'of type function', connectListener)
  }
  let plan = clientMethod(opts)
  if ('method' in plan && (plan.method === 'deferred' || (plan.method === 'handle' && linuxAdopt))) {
    if (process.platform === 'darwin' && !darwinClientOn()) {
      plan = { reason: 'disabled-by-os' }
    } else {
      const made = deferredConnection({ plan: opts, socketOptions: socketOptions(opts, true), force: forceDarwinTfo, connectListener })
      if (made instanceof FastOpenSocket) {
        if (opts.signal) watchSignal(made, opts.signal)
        return made
      }
      plan = made
    }
  }
  const socket = new FastOpenSocket(socketOptions(opts))
  if (opts.signal) watchSignal(socket, opts.signal)
  if ('reason' in plan) {
    markNotAttempted(socket, plan.reason)
    connectThroughNode(socket, opts, false, connectListener)
  } else {
    // createConnection cannot hand data to a native connect, so it always
    // uses Node's connect (on old kernels this means no TFO).
    const tfo = plan.method === 'handle'
    if (!tfo) markNotAttempted(socket, plan.method === 'connectex' ? 'unsupported-platform' : 'kernel-too-old')
    connectThroughNode(socket, opts, tfo, connectListener)
  }
  return socket
}

function watchSignal(socket: net.Socket, signal: AbortSignal): void {
  if (signal.aborted) {
    process.nextTick(() => socket.destroy(abortError(signal)))
    return
  }
  const onAbort = () => socket.destroy(abortError(signal))
  signal.addEventListener('abort', onAbort, { once: true })
  socket.once('close', () => signal.removeEventListener('abort', onAbort))
}

// ---------------------------------------------------------------------------
// connectWithData

interface Address {
  address: string
  family: 4 | 6
}

/** Errors after which the next resolved address may be tried: the SYN was refused, so no byte was delivered. */
const RETRYABLE = new Set(['ECONNREFUSED', 'EADDRNOTAVAIL', 'ENETUNREACH', 'EHOSTUNREACH', 'EAFNOSUPPORT'])
/** Errors that mean "the connect failed" even when a read or write reported them. */
const CONNECT_ERRORS = new Set([...RETRYABLE, 'ETIMEDOUT', 'ECONNRESET', 'EPIPE'])

/** Resolves a host name (the caller takes an IP literal as it is). */
function resolve(opts: ConnectPlan, cancel: CancelSignal): Promise<Address[]> {
  return new Promise((res, rej) => {
    const onAbort = () => rej(cancel.reason)
    cancel.addEventListener('abort', onAbort, { once: true })
    const lookup = (opts.lookup ?? dns.lookup) as (
      host: string,
      o: dns.LookupOptions,
      cb: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[] | string, family?: number) => void,
    ) => void
    lookup(opts.host, { family: opts.family, all: true }, (err, addresses, family) => {
      cancel.removeEventListener('abort', onAbort)
      if (cancel.aborted) return
      if (err) return rej(err)
      const list = typeof addresses === 'string' ? [{ address: addresses, family: family ?? 4 }] : addresses
      const out = list
        .map((a) => ({ address: a.address, family: (net.isIP(a.address) || a.family) as 4 | 6 }))
        .filter((a) => a.family === 4 || a.family === 6)
      if (out.length === 0) return rej(systemError('ENOTFOUND', 'getaddrinfo', opts.host))
      res(out)
    })
  })
}

/**
 * Connects and sends `data` in the SYN where the OS allows, otherwise
 * right after the handshake — exactly once, in order, whatever its size.
 * Resolves once the handshake has completed, so `socket.fastOpen` is final
 * (the first response byte is not delayed by this: it cannot arrive before
 * the SYN-ACK).
 *
 * Host names are resolved first; addresses are tried in order while they
 * refuse (a refused SYN delivered nothing).
 *
 * @example
 * ```js
 * const { connectWithData } = require('synmux')
 * const socket = await connectWithData({ host: '127.0.0.1', port: 8080 },
 *   'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
 * console.log(socket.fastOpen) // { attempted: true, accepted: true }
 * ```
 * @param data - Bytes to send first: a string (UTF-8), Buffer or Uint8Array.
 * @returns The connected socket; rejects with a Node-style error
 * (`code`, `errno`, `syscall`, `address`, `port`), `ETIMEDOUT` after
 * `options.timeout`, or an `AbortError` when `options.signal` aborts.
 */
export function connectWithData(options: FastOpenConnectOptions, data?: string | Uint8Array): Promise<FastOpenSocket> {
  return connectCancellable(options, data, new Cancel())
}

/**
 * {@link connectWithData}, called off by `cancel` too (its `reason` is the
 * rejection) — for callers in this package, without the cost of an
 * `AbortController` per connect. `cancel` is this connect's own: its
 * timeout aborts it.
 * @internal
 */
export async function connectCancellable(options: FastOpenConnectOptions, data: string | Uint8Array | undefined, cancel: Cancel): Promise<FastOpenSocket> {
  const opts = validateConnectOptions(options)
  const payload = toBytes(data)
  if (cancel.aborted) throw cancel.reason
  const onAbort = () => cancel.abort(abortError(opts.signal!))
  if (opts.signal) {
    if (opts.signal.aborted) throw abortError(opts.signal)
    opts.signal.addEventListener('abort', onAbort, { once: true })
  }
  const timer =
    opts.timeout !== undefined && opts.timeout > 0
      ? setTimeout(() => cancel.abort(systemError('ETIMEDOUT', 'connect', opts.host, opts.port)), opts.timeout)
      : undefined
  try {
    // (an IP literal needs no lookup: no turn of the microtask queue before the SYN)
    const literal = net.isIP(opts.host)
    const addresses = literal !== 0 ? [{ address: opts.host, family: literal as 4 | 6 }] : await resolve(opts, cancel)
    let last: unknown
    for (const addr of addresses) {
      try {
        return await connectOnce(addr, opts, payload, cancel)
      } catch (err) {
        last = err
        if (cancel.aborted || !RETRYABLE.has((err as NodeJS.ErrnoException).code ?? '')) break
      }
    }
    throw last
  } finally {
    if (timer) clearTimeout(timer)
    opts.signal?.removeEventListener('abort', onAbort)
  }
}

function connectOnce(addr: Address, opts: ConnectPlan, payload: Buffer, cancel: CancelSignal): Promise<FastOpenSocket> {
  const one: ConnectPlan = { ...opts, host: addr.address, family: addr.family }
  const plan = clientMethod(one)
  if ('method' in plan && payload.length > 0) {
    if (plan.method === 'preconnect' || plan.method === 'deferred' || (plan.method === 'handle' && !dataMethodHandle)) {
      return preconnect(addr, one, payload, cancel)
    }
    if (plan.method === 'connectex') return connectEx(addr, one, payload, cancel, socketOptions(one, true))
  }
  const socket = new FastOpenSocket(socketOptions(one))
  if ('reason' in plan) markNotAttempted(socket, plan.reason)
  else if (payload.length === 0) markNotAttempted(socket, 'no-data')
  connectThroughNode(socket, one, 'method' in plan && plan.method === 'handle' && payload.length > 0, undefined, payload.length > 0)
  if (payload.length > 0) socket.write(payload)
  return established(socket, addr, one.port, cancel)
}

/** Kernel TCP states past the handshake of a connection we opened (Linux: include/net/tcp_states.h). */
const LINUX_PAST_HANDSHAKE = new Set([1 /* ESTABLISHED */, 4 /* FIN_WAIT1 */, 5 /* FIN_WAIT2 */, 6 /* TIME_WAIT */, 8 /* CLOSE_WAIT */, 9 /* LAST_ACK */, 11 /* CLOSING */])

/**
 * Whether the handshake has completed: ESTABLISHED, or already past it — a
 * fast peer may have answered and closed before we look (on loopback it
 * all happens within our first write). A refused SYN (CLOSE) is not.
 */
function handshakeDone(info: NativeTcpInfo): boolean {
  if (info.established) return true
  if (process.platform === 'linux') return LINUX_PAST_HANDSHAKE.has(info.state)
  // macOS (netinet/tcp_fsm.h): CLOSE_WAIT 5 ... TIME_WAIT 10 follow ESTABLISHED 4.
  if (process.platform === 'darwin') return info.state >= 5 && info.state <= 10
  return false
}

/** Resolves when the handshake is complete (not merely when a TFO connect was queued). */
function established(socket: FastOpenSocket, addr: Address, port: number, cancel: CancelSignal): Promise<FastOpenSocket> {
  return new Promise((resolve, reject) => {
    let waiter: NativeWaitHandle | undefined
    const cleanup = () => {
      socket.off('connect', onConnect)
      socket.off('error', onError)
      socket.off('close', onClose)
      cancel.removeEventListener('abort', onAbort)
      waiter?.cancel()
      waiter = undefined
    }
    const fail = (err: unknown) => {
      cleanup()
      discard(socket)
      reject(err)
    }
    const onError = (err: NodeJS.ErrnoException) => {
      // A refused TFO SYN surfaces on the first read or write; report it as
      // the connect failure it is.
      fail(err.syscall !== 'connect' && CONNECT_ERRORS.has(err.code ?? '') ? systemError(err, 'connect', addr.address, port) : err)
    }
    const onAbort = () => fail(cancel.reason)
    const onClose = () => fail(systemError('ECONNRESET', 'connect', addr.address, port))
    const onConnect = () => {
      const fd = socketFd(socket)
      if (native && fastOpenAttempted(socket) && fd >= 0) {
        let info: NativeTcpInfo
        try {
          info = native.tcpInfo(fd)
          // A TFO connect reports 'connect' before the SYN-ACK: wait for
          // the handshake (or its failure: a refused SYN may already have
          // closed it).
          if (!handshakeDone(info)) {
            waiter = native.waitWritable(fd, (err) => {
              waiter = undefined
              if (err) fail(systemError(err, 'connect', addr.address, port))
              else if (!socket.destroyed) finish()
              // else Node's own 'error' for this socket follows
            })
            return
          }
        } catch (err) {
          return fail(err)
        }
        return finish(info)
      }
      finish()
    }
    const finish = (info?: NativeTcpInfo) => {
      cleanup()
      refresh(socket, info)
      resolve(socket)
    }
    if (cancel.aborted) return fail(cancel.reason)
    socket.once('connect', onConnect)
    socket.once('error', onError)
    socket.once('close', onClose)
    cancel.addEventListener('abort', onAbort, { once: true })
  })
}

/** Destroys a socket that failed before it was handed to the caller; late errors from it are moot. */
function discard(socket: net.Socket): void {
  socket.on('error', () => {})
  socket.destroy()
}

/** Native connect-with-data, then hand the connected descriptor to Node. */
function preconnect(addr: Address, opts: ConnectPlan, payload: Buffer, cancel: CancelSignal): Promise<FastOpenSocket> {
  const n = native!
  const darwin = process.platform === 'darwin'
  // macOS: connectx() sends the data either way; with the client bit of
  // net.inet.tcp.fastopen off it simply never rides in the SYN.
  const disabled = darwin && !darwinClientOn()
  return new Promise((resolve, reject) => {
    let fd: number
    try {
      fd = n.socket(addr.family)
    } catch (err) {
      return reject(systemError(err as NodeJS.ErrnoException, 'socket'))
    }
    let sent: number
    try {
      if (opts.localAddress !== undefined || opts.localPort !== undefined) {
        n.bind(fd, opts.localAddress ?? (addr.family === 6 ? '::' : '0.0.0.0'), opts.localPort ?? 0)
      }
      if (darwin && forceDarwinTfo) {
        try {
          n.setFastOpenConnect(fd)
        } catch {
          // private option gone: the heuristics decide
        }
      }
      sent = n.connectData(fd, addr.address, opts.port, payload)
    } catch (err) {
      n.close(fd)
      const e = err as NodeJS.ErrnoException
      if (e.code === 'EOPNOTSUPP') {
        // client TFO off: plain connect through Node instead
        const socket = new FastOpenSocket(socketOptions(opts))
        markNotAttempted(socket, 'disabled-by-os')
        connectThroughNode(socket, opts, false)
        socket.write(payload)
        return established(socket, addr, opts.port, cancel).then(resolve, reject)
      }
      return reject(e.syscall === 'bind' ? systemError(e, 'bind', opts.localAddress, opts.localPort) : systemError(e, 'connect', addr.address, opts.port))
    }
    // A peer on this host: the kernel usually completes the handshake
    // inside the connect call. Then the descriptor is handed over at once
    // (no turn of the event loop to wait for writability), and this
    // TCP_INFO settles what happened to the data in the SYN.
    let now: NativeTcpInfo | undefined
    let waiter: NativeWaitHandle | undefined
    try {
      now = n.tcpInfo(fd)
    } catch {
      // asked again once writable
    }
    if (now?.established && !cancel.aborted) return onWritable(null)
    const onAbort = () => {
      waiter?.cancel()
      n.close(fd)
      reject(cancel.reason)
    }
    try {
      waiter = n.waitWritable(fd, onWritable)
    } catch (err) {
      // e.g. EMFILE from dup(): the descriptor is still ours to close.
      n.close(fd)
      return reject(systemError(err as NodeJS.ErrnoException, 'connect', addr.address, opts.port))
    }
    if (cancel.aborted) return onAbort()
    cancel.addEventListener('abort', onAbort, { once: true })

    function onWritable(err: NodeJS.ErrnoException | null): void {
      if (waiter !== undefined) cancel.removeEventListener('abort', onAbort)
      if (err) {
        n.close(fd)
        return reject(systemError(err, 'connect', addr.address, opts.port))
      }
      const socket = new FastOpenSocket({ fd, readable: true, writable: true, ...socketOptions(opts, true) })
      if (disabled) markNotAttempted(socket, 'disabled-by-os')
      else markAttempted(socket)
      if (opts.noDelay) socket.setNoDelay(true)
      if (opts.keepAlive) socket.setKeepAlive(true, opts.keepAliveInitialDelay ?? 0)
      if (opts.timeout !== undefined) socket.setTimeout(opts.timeout)
      const rest = sent > 0 ? payload.subarray(sent) : payload
      if (rest.length > 0) socket.write(rest)
      refresh(socket, now?.established ? now : undefined)
      resolve(socket)
    }
  })
}
