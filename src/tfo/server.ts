/**
 * Server side: a `net.Server` whose listener accepts data in the SYN.
 *
 * Linux and macOS: `TCP_FASTOPEN` is set on the listening descriptor when
 * the server emits `'listening'` (macOS accepts it only in LISTEN state).
 * Windows: Node's listening SOCKET is out of reach (`_handle.fd` is -1), so
 * synmux creates the listener itself — overlapped socket, `TCP_FASTOPEN`,
 * bind — and hands it to Node's own listen path (`win-listen.ts`).
 * @packageDocumentation
 */
import net from 'node:net'
import { invalidArgType } from './errors.js'
import { fdOf } from './handle.js'
import { native } from './native.js'
import { fastOpenSupport, SUPPORTED_PLATFORMS } from './support.js'
import type { FastOpenServerOptions, FastOpenServerState } from './types.js'
import { hookWindowsListen, windowsListenState } from './win-listen.js'
import { validateQueue, validateServerOptions } from './validate.js'

/** Default pending-TFO queue length of a listener. */
export const DEFAULT_FAST_OPEN_QUEUE = 256

/** A `net.Server` with TFO state. */
export type FastOpenServer = net.Server & { readonly fastOpen: FastOpenServerState }

const states = new WeakMap<net.Server, FastOpenServerState>()

function setState(server: net.Server, s: FastOpenServerState): void {
  states.set(server, s)
  if (!Object.prototype.hasOwnProperty.call(server, 'fastOpen')) {
    Object.defineProperty(server, 'fastOpen', {
      configurable: true,
      enumerable: false,
      get: () => states.get(server),
    })
  }
}

function apply(server: net.Server, queue: number): void {
  if (!SUPPORTED_PLATFORMS.includes(process.platform)) {
    return setState(server, { enabled: false, queue, reason: 'unsupported-platform' })
  }
  if (!native) return setState(server, { enabled: false, queue, reason: 'addon-unavailable' })
  if (process.platform === 'win32') {
    const st = windowsListenState(server) ?? {
      enabled: false,
      queue,
      reason: 'handle-unavailable: this listen() did not create a TCP listener through synmux (already listening, a cluster worker, or a handle/fd/pipe)',
    }
    if (!st.enabled) return setState(server, st)
    const support = fastOpenSupport()
    return setState(server, support.server ? st : { ...st, reason: support.detail })
  }
  const fd = fdOf(server)
  if (fd < 0) {
    // e.g. a cluster worker, whose listener lives in the primary process
    return setState(server, { enabled: false, queue, reason: 'handle-unavailable' })
  }
  try {
    native.setFastOpenListen(fd, queue)
  } catch (err) {
    return setState(server, { enabled: false, queue, reason: `setsockopt ${(err as NodeJS.ErrnoException).code}` })
  }
  const support = fastOpenSupport()
  setState(server, support.server ? { enabled: true, queue } : { enabled: true, queue, reason: support.detail })
}

/**
 * Enables TCP Fast Open on a server created elsewhere (e.g. by `http` or
 * `net`). Applies at once if the server is listening, otherwise when it
 * starts listening. The result is in `server.fastOpen`.
 *
 * @example
 * ```js
 * const http = require('node:http')
 * const { enableFastOpen } = require('synmux')
 * const server = enableFastOpen(http.createServer(handler)).listen(8080)
 * ```
 * @param queue - Pending-TFO queue length (Linux), default 256.
 */
export function enableFastOpen<S extends net.Server>(server: S, queue: number = DEFAULT_FAST_OPEN_QUEUE): S & { readonly fastOpen: FastOpenServerState } {
  if (!(server instanceof net.Server)) throw invalidArgType('server', 'an instance of net.Server', server)
  const q = validateQueue(queue, 'queue')
  if (q === false) return server as S & { readonly fastOpen: FastOpenServerState }
  setState(server, { enabled: false, queue: q, reason: 'not listening yet' })
  if (process.platform === 'win32' && native) hookWindowsListen(server, q)
  if (server.listening) apply(server, q)
  // Re-applied on every listen(): a server can be closed and listen again.
  server.prependListener('listening', () => apply(server, q))
  return server as S & { readonly fastOpen: FastOpenServerState }
}

/**
 * Creates a `net.Server` whose listener has TCP Fast Open, so clients'
 * first bytes arrive with their SYN. Same arguments as `net.createServer`
 * plus `fastOpen` (queue length, default 256, or `false`).
 *
 * @example
 * ```js
 * const { createServer } = require('synmux')
 * createServer((socket) => socket.pipe(socket)).listen(7000, '127.0.0.1')
 * ```
 */
export function createServer(connectionListener?: (socket: net.Socket) => void): FastOpenServer
export function createServer(options?: FastOpenServerOptions, connectionListener?: (socket: net.Socket) => void): FastOpenServer
export function createServer(
  options?: FastOpenServerOptions | ((socket: net.Socket) => void),
  connectionListener?: (socket: net.Socket) => void,
): FastOpenServer {
  if (typeof options === 'function') {
    connectionListener = options
    options = undefined
  }
  const opts = validateServerOptions(options)
  if (connectionListener !== undefined && typeof connectionListener !== 'function') {
    throw invalidArgType('connectionListener', 'of type function', connectionListener)
  }
  const { fastOpen = DEFAULT_FAST_OPEN_QUEUE, ...netOptions } = opts
  const server = net.createServer(netOptions, connectionListener)
  if (fastOpen === false) {
    setState(server, { enabled: false, queue: 0, reason: 'opted-out' })
    return server as FastOpenServer
  }
  return enableFastOpen(server, fastOpen)
}
