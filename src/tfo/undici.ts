/**
 * `fastOpenConnector()`: a `connect` function for undici's `Agent`,
 * `Client` and `Pool` (and so for Node's global `fetch`, as its
 * `dispatcher`), opening every connection with TCP Fast Open. undici is
 * not a dependency: the connector is a plain function with undici's
 * contract, `(options, callback)`, where `callback(null, socket)` hands over
 * a connected socket and `callback(err, null)` a failure.
 * @packageDocumentation
 */
import net from 'node:net'
import tls from 'node:tls'
import { createConnection } from './connect.js'
import { invalidArgType, outOfRange, systemError } from './errors.js'
import { fastOpenInfo } from './info.js'
import type { FastOpenSocket } from './socket.js'
import { exposeFastOpen, type FastOpenTLSSocket } from './tls.js'
import type { FastOpenConnectOptions } from './types.js'
import { validateConnectOptions } from './validate.js'

/** Options of {@link fastOpenConnector}: TLS options for `https:` origins, and TCP options. */
export interface FastOpenConnectorOptions extends Omit<tls.ConnectionOptions, 'host' | 'port' | 'path' | 'socket' | 'timeout' | 'lookup' | 'session'> {
  /**
   * Connect deadline in milliseconds (TCP handshake, and TLS handshake for
   * `https:`), as undici's own connector: default 10 000, `0` for none.
   * Checked against the kernel's state, since a TFO socket reports
   * `'connect'` before its SYN is answered. Fails with `ETIMEDOUT`.
   */
  timeout?: number
  /** TLS sessions kept for resumption, per server name (as undici): default 100, `0` for none. */
  maxCachedSessions?: number
  /** Offer HTTP/2 in ALPN (`['http/1.1', 'h2']`), as undici's `allowH2`; default `false` (`['http/1.1']`). */
  allowH2?: boolean
  /** `false` opens plain connections (`fastOpen.reason === 'opted-out'`); default `true`. */
  fastOpen?: boolean
  /** Address family to resolve host names to: 0 (any), 4 or 6. */
  family?: 0 | 4 | 6
  /** Custom resolver with the signature of `dns.lookup`. */
  lookup?: net.LookupFunction
  /** Local address to bind (undici's own `localAddress`, when it passes one, wins). */
  localAddress?: string
  /** Local port to bind. */
  localPort?: number
  /** Disable Nagle's algorithm; default `true` (as undici). */
  noDelay?: boolean
  /** TCP keep-alive; default `true` (as undici). */
  keepAlive?: boolean
  /** Initial TCP keep-alive delay in milliseconds; default 60 000 (as undici). */
  keepAliveInitialDelay?: number
}

/** What undici passes to a `connect` function (its `buildConnector.Options`). */
export interface UndiciConnectOptions {
  /** Host name or IP literal to connect to (IPv6 without brackets). */
  hostname: string
  /** `host[:port]` of the origin. */
  host?: string
  /** `'http:'` or `'https:'`. */
  protocol: string
  /** Port; `''` for the protocol's default. */
  port: string | number
  /** TLS server name (SNI), when the client has one. */
  servername?: string | null
  /** Local address to bind. */
  localAddress?: string | null
  /** A Unix socket path: refused (TCP Fast Open has none). */
  socketPath?: string | null
  /** For `https:` through an HTTP proxy: the tunnel to run TLS over, instead of a new connection. */
  httpSocket?: net.Socket
}

/** undici's connect callback: `(null, socket)` once connected, or `(err, null)`. */
export type UndiciConnectCallback = (...args: [null, net.Socket | tls.TLSSocket] | [Error, null]) => void

/**
 * A connector made by {@link fastOpenConnector}: pass it as undici's
 * `connect` option. It returns the socket it opened (a
 * {@link FastOpenSocket}, or a {@link FastOpenTLSSocket} for `https:`), or
 * `undefined` when it failed at once (the callback has the error).
 */
export type FastOpenConnector = (options: UndiciConnectOptions, callback: UndiciConnectCallback) => FastOpenSocket | FastOpenTLSSocket | tls.TLSSocket | undefined

/** TLS sessions for resumption, least recently stored dropped first. */
class SessionCache {
  private readonly sessions = new Map<string, Buffer>()
  constructor(private readonly max: number) {}

  get(key: string): Buffer | undefined {
    return this.sessions.get(key)
  }

  set(key: string, session: Buffer): void {
    if (this.max === 0) return
    this.sessions.delete(key)
    this.sessions.set(key, session)
    if (this.sessions.size > this.max) this.sessions.delete(this.sessions.keys().next().value!)
  }

  delete(key: string): void {
    this.sessions.delete(key)
  }
}

function nonNegativeInteger(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v)
  if (!Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) throw outOfRange(name, `>= 0 and <= ${2 ** 31 - 1}`, v)
  return v
}

/**
 * Makes a `connect` function for undici (`new Agent({ connect })`,
 * `new Client(url, { connect })`, `new Pool(url, { connect })`) that opens
 * each connection with {@link createConnection}: the request (`http:`) or
 * the TLS ClientHello (`https:`, with `servername`/SNI, ALPN and session
 * resumption) rides in the SYN. Keep-alive and pipelining are undici's as
 * usual. Works with the undici package and, as the `dispatcher` of Node's
 * global `fetch`, with an `Agent` of the undici package.
 *
 * @example
 * ```js
 * import { Agent, setGlobalDispatcher } from 'undici'
 * import { fastOpenConnector } from 'synmux'
 * setGlobalDispatcher(new Agent({ connect: fastOpenConnector() })) // every fetch() with TFO
 * const res = await fetch('https://example.com/')
 * ```
 * @throws TypeError / RangeError (with `code`) for invalid options.
 */
export function fastOpenConnector(options: FastOpenConnectorOptions = {}): FastOpenConnector {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
  const {
    timeout: timeoutOption,
    maxCachedSessions,
    allowH2 = false,
    fastOpen,
    family,
    lookup,
    localAddress,
    localPort,
    noDelay = true,
    keepAlive = true,
    keepAliveInitialDelay = 60_000,
    ...tlsOptions
  } = options
  const timeout = nonNegativeInteger(timeoutOption, 'options.timeout', 10_000)
  const sessions = new SessionCache(nonNegativeInteger(maxCachedSessions, 'options.maxCachedSessions', 100))
  if (typeof allowH2 !== 'boolean') throw invalidArgType('options.allowH2', 'of type boolean', allowH2)
  const tcp: Omit<FastOpenConnectOptions, 'host' | 'port'> = { noDelay, keepAlive, keepAliveInitialDelay }
  if (fastOpen !== undefined) tcp.fastOpen = fastOpen
  if (family !== undefined) tcp.family = family
  if (lookup !== undefined) tcp.lookup = lookup
  if (localAddress !== undefined) tcp.localAddress = localAddress
  if (localPort !== undefined) tcp.localPort = localPort
  validateConnectOptions({ ...tcp, port: 1 }) // invalid TCP options throw here, not at the first request
  const ALPNProtocols = tlsOptions.ALPNProtocols ?? (allowH2 ? ['http/1.1', 'h2'] : ['http/1.1'])

  function secureOver(socket: net.Socket, hostname: string, servername: string | undefined): tls.TLSSocket {
    const key = servername || hostname
    const session = sessions.get(key)
    const o: tls.ConnectionOptions = { ...tlsOptions, ALPNProtocols, socket, host: hostname }
    if (servername) o.servername = servername
    if (session) o.session = session
    const secure = tls.connect(o)
    secure.on('session', (s: Buffer) => sessions.set(key, s))
    secure.once('error', () => sessions.delete(key))
    return secure
  }

  return function connect(params: UndiciConnectOptions, callback: UndiciConnectCallback) {
    if (params === null || typeof params !== 'object') throw invalidArgType('options', 'of type object', params)
    if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback)
    const https = params.protocol === 'https:'
    const hostname = params.hostname
    const port = params.port === '' || params.port === undefined || params.port === null ? (https ? 443 : 80) : params.port
    const servername = params.servername || tlsOptions.servername || (net.isIP(hostname) === 0 ? hostname : undefined)
    let raw: FastOpenSocket | undefined
    let socket: FastOpenSocket | FastOpenTLSSocket | tls.TLSSocket
    try {
      if (https && params.httpSocket) {
        // TLS through an HTTP proxy's tunnel: the TCP connection exists already
        socket = secureOver(params.httpSocket, hostname, servername)
      } else {
        const target: Record<string, unknown> = { ...tcp, host: hostname, port }
        if (params.localAddress) target.localAddress = params.localAddress
        if (params.socketPath) target.path = params.socketPath // refused by createConnection, with the reason
        raw = createConnection(target as unknown as FastOpenConnectOptions)
        socket = https ? exposeFastOpen(secureOver(raw, hostname, servername), raw) : raw
      }
    } catch (err) {
      raw?.destroy() // e.g. invalid TLS options: the connection has no owner
      callback(err as Error, null)
      return undefined
    }
    let pending: UndiciConnectCallback | null = callback
    let timer: NodeJS.Timeout | undefined
    if (timeout > 0) {
      timer = setTimeout(() => {
        // A TFO socket emits 'connect' before its SYN is answered: ask the kernel.
        if (pending !== null || (raw !== undefined && fastOpenInfo(raw).connecting)) {
          socket.destroy(systemError('ETIMEDOUT', 'connect', hostname, Number(port)))
        }
      }, timeout)
      timer.unref()
    }
    socket.once(https ? 'secureConnect' : 'connect', () => {
      // TLS done, or a plain connect: the handshake is over (a TFO one may not be yet)
      if (https || !raw?.fastOpen.attempted) clearTimeout(timer)
      const cb = pending
      pending = null
      cb?.(null, socket)
    })
    socket.on('error', (err: Error) => {
      const cb = pending
      pending = null
      cb?.(err, null)
    })
    socket.once('close', () => clearTimeout(timer))
    return socket
  }
}
