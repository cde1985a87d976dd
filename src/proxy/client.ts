/**
 * The near half of the HTTP proxy: a forward proxy for browsers on a local
 * port. Browser connections stay alive as long as the browser likes; each
 * absolute-form request travels as one mux stream to the reserved gateway
 * target of the one session (its head rides in the OPEN), where the
 * tunnel server's {@link HttpGateway} forwards it over pooled keep-alive
 * connections. `CONNECT host:port` becomes a raw stream to host:port (the
 * TLS ClientHello rides in the OPEN); `Upgrade: websocket` passes through;
 * any other upgrade (h2c, ...) is dropped and the request served as it is.
 *
 * `node:http` (llhttp) parses every message on both sides: message
 * boundaries, keep-alive and in-order answers to pipelined requests are
 * Node's. Hop-by-hop fields are consumed on every hop.
 * @packageDocumentation
 */
import crypto from 'node:crypto'
import { EventEmitter } from 'node:events'
import http from 'node:http'
import type net from 'node:net'
import type { MuxError } from '../mux/errors.js'
import type { MuxStream } from '../mux/stream/stream.js'
import type { Target } from '../mux/wire/target.js'
import { silentLogger, type Logger } from '../common/log.js'
import { carry } from '../net/local.js'
import { relay } from '../net/relay.js'
import { listenError } from '../tunnel/errors.js'
import { GATEWAY_HOST, GATEWAY_PORT, isGatewayTarget } from '../tunnel/gateway.js'
import {
  MAX_HEADER_FIELDS,
  SAFE,
  endToEnd,
  headProblem,
  isWebSocketUpgrade,
  reparseWithoutUpgrade,
  endToEndTrailers,
  parseAbsoluteUrl,
  parseAuthority,
  proxyAnswer,
  rawAnswer,
  refusalStatus,
  requestFraming,
  requestFramingHeaders,
  responseFramingHeaders,
  serializeHead,
  forwardInformational,
} from './common.js'

/** What the proxy opens streams with: a {@link TunnelClient} (or anything with its `open`). */
export interface StreamOpener {
  open(target: Target, data?: Buffer): Promise<MuxStream>
}

/** Options of an {@link HttpProxy}. */
export interface HttpProxyOptions {
  /** The tunnel client whose session carries everything. */
  tunnel: StreamOpener
  /** Require `Proxy-Authorization: Basic` with these credentials (answered 407 otherwise). */
  auth?: { user: string; pass: string }
  /** Realm in `Proxy-Authenticate`. Default `synmux`. */
  realm?: string
  /** CONNECT: how long to wait for the client's first bytes (the TLS ClientHello) to send them in the OPEN. Default 5 ms. */
  firstBytesWait?: number
  /**
   * CONNECT: answer 200 at once, so the client's first bytes ride in the
   * OPEN (one round trip); a refused target then closes the connection.
   * `false`: wait for the far side (one more round trip) and answer
   * 403/502/504 on refusal. Default true.
   */
  optimisticConnect?: boolean
  /** Close a browser connection idle this long (ms) after its last response; 0: never (the browser decides). Default 0. */
  keepAliveTimeout?: number
  /** A request head must arrive within this many ms. Default 60,000. */
  headersTimeout?: number
  /** Header fields a request head may have; more are answered 431 (with `Proxy-Status`). Default 1,000. */
  maxHeaderFields?: number
  logger?: Logger
}

/** Counters of an {@link HttpProxy}. */
export interface HttpProxyStats {
  /** Client connections open now. */
  connections: number
  /** Requests received (absolute-form, CONNECT and upgrades). */
  requests: number
  /** Requests in progress. */
  active: number
  /** CONNECT tunnels opened. */
  tunnels: number
  /** Upgrades (WebSocket) relayed. */
  upgrades: number
  /** Requests whose stream the far side refused (answered 4xx/5xx, client connection closed). */
  refused: number
  /** Requests answered 407. */
  authFailures: number
}

/** The reserved gateway target. */
const GATEWAY: Target = { host: GATEWAY_HOST, port: GATEWAY_PORT }

interface Exchange {
  seq: number
  abort(): void
}

/** Per client connection: request order, and whether a refusal is closing it. */
interface Conn {
  seq: number
  closing: boolean
  /** Settles when every exchange so far has finished. */
  all: Promise<void>
  /** Settles when the last non-safe exchange (and so everything before it) has finished. */
  unsafe: Promise<void>
  /** Settles when the latest exchange's stream was accepted by the far side (or it ended unrefused). */
  last: Promise<void>
  exchanges: Set<Exchange>
}

const isRefusal = (err: unknown): err is MuxError => (err as { code?: string })?.code === 'SYNMUX_REFUSED'

/**
 * A forward HTTP proxy over a synmux session.
 *
 * @example
 * ```js
 * const { TunnelClient, HttpProxy, readKeyFile } = require('synmux')
 * const tunnel = new TunnelClient({ server: { host: 'tunnel.example', port: 9000 }, key: readKeyFile('key').key }).start()
 * const proxy = await new HttpProxy({ tunnel }).listen(3128)
 * // browsers: --proxy-server=http://127.0.0.1:3128
 * ```
 */
export class HttpProxy extends EventEmitter {
  /** The underlying `node:http` server. */
  readonly server: http.Server
  readonly #opts: HttpProxyOptions
  readonly #log: Logger
  readonly #expected: Buffer | null
  readonly #conns = new WeakMap<object, Conn>()
  readonly #sockets = new Set<net.Socket>()
  /** Connections handed back to the HTTP parser after a non-WebSocket upgrade request. */
  readonly #reparsed = new WeakSet<net.Socket>()
  readonly #maxFields: number
  readonly #stats: HttpProxyStats = { connections: 0, requests: 0, active: 0, tunnels: 0, upgrades: 0, refused: 0, authFailures: 0 }

  constructor(options: HttpProxyOptions) {
    super()
    if (typeof options?.tunnel?.open !== 'function') throw Object.assign(new TypeError('options.tunnel must be a TunnelClient (or have its open())'), { code: 'ERR_INVALID_ARG_TYPE' })
    const auth = options.auth
    if (auth !== undefined) {
      if (typeof auth !== 'object' || auth === null || typeof auth.user !== 'string' || typeof auth.pass !== 'string') {
        throw Object.assign(new TypeError('options.auth must be { user: string, pass: string }'), { code: 'ERR_INVALID_ARG_TYPE' })
      }
      if (auth.user === '' || auth.user.includes(':')) throw Object.assign(new TypeError('options.auth.user must be non-empty and contain no colon'), { code: 'ERR_INVALID_ARG_VALUE' })
    }
    for (const k of ['firstBytesWait', 'keepAliveTimeout', 'headersTimeout', 'maxHeaderFields'] as const) {
      const v = options[k]
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) throw Object.assign(new RangeError(`options.${k} must be a non-negative integer`), { code: 'ERR_OUT_OF_RANGE' })
    }
    this.#opts = options
    this.#log = options.logger ?? silentLogger
    this.#maxFields = options.maxHeaderFields ?? MAX_HEADER_FIELDS
    this.#expected = auth ? crypto.createHash('sha256').update(`${auth.user}:${auth.pass}`, 'utf8').digest() : null
    const server = http.createServer({ maxHeaderSize: 65_536, requestTimeout: 0, headersTimeout: options.headersTimeout ?? 60_000, noDelay: true })
    server.keepAliveTimeout = options.keepAliveTimeout ?? 0
    // one more than the limit, so that a head over it is seen (and answered 431)
    server.maxHeadersCount = this.#maxFields + 1
    server.on('connection', (socket: net.Socket) => {
      if (this.#reparsed.has(socket)) return
      this.#stats.connections++
      this.#sockets.add(socket)
      socket.once('close', () => {
        this.#stats.connections--
        this.#sockets.delete(socket)
      })
    })
    server.on('request', (req, res) => void this.#onRequest(req, res, false))
    server.on('checkContinue', (req, res) => void this.#onRequest(req, res, true))
    server.on('connect', (req, socket, head) => void this.#onConnect(req, socket as net.Socket, head))
    server.on('upgrade', (req, socket, head) => void this.#onUpgrade(req, socket as net.Socket, head))
    server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable || (socket as { _httpMessage?: http.ServerResponse })._httpMessage?.headersSent) return void socket.destroy()
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
      this.#log.debug(`http proxy: bad request from ${socket.remoteAddress}: ${err.code ?? err.message}`)
      const details = status === 431 ? `head larger than 64 KiB or more than ${this.#maxFields} header fields` : (err.code ?? 'parse error')
      socket.end(serializeHead(status, http.STATUS_CODES[status] ?? 'Bad Request', ['Content-Length', '0', 'Proxy-Status', `synmux; error=http_request_error; details="${details}"`, 'Connection', 'close']))
    })
    this.server = server
  }

  /** Starts listening (default host 127.0.0.1). */
  listen(port: number, host = '127.0.0.1'): Promise<this> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(listenError(err, host, port, 'HTTP proxy'))
      this.server.once('error', onError)
      this.server.listen(port, host, () => {
        this.server.off('error', onError)
        this.server.on('error', (err) => this.#log.error(`HTTP proxy: ${err.message}`))
        const a = this.address()
        this.#log.info(`HTTP proxy on ${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}${this.#expected ? ' (basic auth)' : ''}`)
        resolve(this)
      })
    })
  }

  /** The listening address. */
  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo
  }

  /** Live counters. */
  stats(): HttpProxyStats {
    return { ...this.#stats }
  }

  /** Stops listening and closes every client connection. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      for (const s of this.#sockets) s.destroy()
    })
  }

  #conn(socket: object): Conn {
    let c = this.#conns.get(socket)
    if (!c) {
      c = { seq: 0, closing: false, all: Promise.resolve(), unsafe: Promise.resolve(), last: Promise.resolve(), exchanges: new Set() }
      this.#conns.set(socket, c)
    }
    return c
  }

  /** Checks `Proxy-Authorization` (constant time); true when no auth is configured. */
  #authorized(req: http.IncomingMessage): boolean {
    if (this.#expected === null) return true
    const h = req.headers['proxy-authorization']
    const m = typeof h === 'string' ? /^\s*basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(h) : null
    const got = crypto.createHash('sha256').update(m ? Buffer.from(m[1]!, 'base64') : Buffer.alloc(0)).digest()
    return crypto.timingSafeEqual(got, this.#expected) && m !== null
  }

  #challenge(): string[] {
    return ['Proxy-Authenticate', `Basic realm="${(this.#opts.realm ?? 'synmux').replace(/["\\]/g, '')}", charset="UTF-8"`]
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean): Promise<void> {
    this.#stats.requests++
    const conn = this.#conn(req.socket)
    // after a refusal, nothing more is read or forwarded from this connection
    if (conn.closing) return
    if (!this.#authorized(req)) {
      this.#stats.authFailures++
      return proxyAnswer(res, 407, 'proxy authentication required', { extra: this.#challenge() })
    }
    const url = parseAbsoluteUrl(req.url ?? '')
    if (!url) {
      const text = (req.url ?? '').startsWith('/') ? 'this is a proxy: send absolute-form requests (GET http://host/path)' : 'only http:// request targets (use CONNECT for https)'
      return proxyAnswer(res, 400, text, { error: 'http_request_error' })
    }
    const framing = requestFraming(req)
    if (framing.kind === 'unsupported') return proxyAnswer(res, 501, `unsupported transfer coding: ${req.headers['transfer-encoding']}`, { close: true })
    if (isGatewayTarget(url)) return proxyAnswer(res, 400, `${GATEWAY_HOST} is reserved`, { error: 'http_request_error' })
    const bad = headProblem(req, this.#maxFields)

    // Order of pipelined requests: a safe one is sent once the far side has
    // accepted the one before it (so nothing behind a refused request is
    // ever forwarded) and every earlier non-safe one has finished; a
    // non-safe one waits for all before it to finish (RFC 9112 9.3.2).
    // Node's server writes the answers in order.
    const method = req.method ?? 'GET'
    const safe = SAFE.has(method)
    let done!: () => void
    const mine = new Promise<void>((r) => (done = r))
    let opened!: () => void
    const gate = new Promise<void>((r) => (opened = r))
    const before = safe ? Promise.all([conn.unsafe, conn.last]) : conn.all
    conn.all = Promise.all([conn.all, mine]).then(() => {})
    conn.last = gate
    if (!safe) conn.unsafe = mine
    let up: http.ClientRequest | null = null
    let finished = false
    const ex: Exchange = {
      seq: ++conn.seq,
      abort: () => {
        finish()
        up?.destroy()
      },
    }
    const finish = () => {
      if (finished) return
      finished = true
      this.#stats.active--
      conn.exchanges.delete(ex)
      done()
      opened()
    }
    this.#stats.active++
    conn.exchanges.add(ex)
    res.once('close', () => {
      if (!res.writableFinished) ex.abort()
    })
    await before
    if (finished || conn.closing || res.destroyed) return finish()
    if (bad) {
      // A head that must not be forwarded: answered in its turn, and nothing
      // pipelined behind it is forwarded either (the connection closes).
      conn.closing = true
      for (const other of [...conn.exchanges]) if (other.seq > ex.seq) other.abort()
      this.#log.info(`http proxy: ${method} ${url.authority}: ${bad.status}, ${bad.text}`)
      proxyAnswer(res, bad.status, bad.text, { error: bad.proxyStatus, close: true })
      return finish()
    }

    let stream: MuxStream
    try {
      stream = await this.#opts.tunnel.open(GATEWAY)
    } catch (err) {
      proxyAnswer(res, 502, `synmux: no session to the server (${(err as Error).message})`, { error: 'proxy_internal_error' })
      return finish()
    }
    if (finished) return void stream.destroy()
    stream.on('error', () => {})
    stream.once('open', opened)
    const target = `http://${url.authority}${url.path}`
    const headers = [...endToEnd(req.rawHeaders), 'Host', url.authority, ...requestFramingHeaders(framing)]
    let responded = false
    up = http.request({ createConnection: () => stream as unknown as net.Socket, method, path: target, headers, setHost: false, maxHeaderSize: 65_536 })
    forwardInformational(up, res, expectContinue)
    up.on('response', (upRes) => {
      responded = true
      const framingHeaders = responseFramingHeaders(upRes) ?? []
      try {
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, [...endToEnd(upRes.rawHeaders), ...framingHeaders])
      } catch (err) {
        upRes.destroy()
        proxyAnswer(res, 502, `synmux: unusable response head (${(err as Error).message})`, { error: 'http_response_header_block_size' })
        return finish()
      }
      upRes.pipe(res, { end: false })
      upRes.once('end', () => {
        const trailers = endToEndTrailers(upRes.rawTrailers)
        if (trailers.length > 0) res.addTrailers(trailers)
        res.end()
        finish()
      })
      upRes.once('close', () => {
        if (upRes.complete) return
        // the far side reset mid-body: the message cannot be completed
        res.destroy()
        finish()
      })
    })
    up.on('error', (err: Error) => {
      if (finished) return
      if (isRefusal(err)) return this.#refused(conn, ex, res, err, target, finish)
      this.#log.debug(`http proxy: ${method} ${target}: ${err.message}`)
      if (responded || res.headersSent) res.destroy()
      else proxyAnswer(res, 502, `synmux: ${err.message}`, { error: 'proxy_internal_error' })
      finish()
    })
    if (framing.kind === 'none') {
      up.end()
      return
    }
    up.flushHeaders()
    req.pipe(up, { end: false })
    req.once('end', () => {
      const trailers = endToEndTrailers(req.rawTrailers)
      if (trailers.length > 0) up!.addTrailers(trailers)
      up!.end()
    })
  }

  /**
   * The far side refused the request's stream: its bytes were discarded
   * there, and nothing else from this connection goes anywhere. Answer
   * (403/502/504), abort the requests pipelined behind it, and close the
   * connection after the answer (docs/PROTOCOL.md, "Tunnel conventions").
   */
  #refused(conn: Conn, ex: Exchange, res: http.ServerResponse, err: MuxError, target: string, finish: () => void): void {
    this.#stats.refused++
    conn.closing = true
    for (const other of [...conn.exchanges]) if (other.seq > ex.seq) other.abort()
    const { status, error } = refusalStatus(err.wireCode)
    this.#log.info(`http proxy: ${target} refused: ${err.message}`)
    proxyAnswer(res, status, `synmux: ${err.message}`, { error, close: true })
    finish()
  }

  async #onConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    this.#stats.requests++
    socket.on('error', () => {})
    if (!this.#authorized(req)) {
      this.#stats.authFailures++
      return rawAnswer(socket, 407, 'Proxy Authentication Required', 'proxy authentication required', this.#challenge())
    }
    const bad = headProblem(req, this.#maxFields)
    if (bad) return rawAnswer(socket, bad.status, http.STATUS_CODES[bad.status]!, bad.text, [], bad.proxyStatus)
    const hp = parseAuthority(req.url ?? '')
    if (!hp) return rawAnswer(socket, 400, 'Bad Request', 'CONNECT needs host:port', [], 'http_request_error')
    const target: Target = { host: hp.host, port: hp.port }
    if (isGatewayTarget(target)) return rawAnswer(socket, 403, 'Forbidden', `${GATEWAY_HOST} is reserved`, [], 'destination_ip_prohibited')
    this.#stats.tunnels++
    this.#stats.active++
    const name = req.url
    const optimistic = this.#opts.optimisticConnect !== false
    // Optimistic: 200 at once, so the ClientHello that follows rides in the OPEN.
    if (optimistic) socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    await carry(socket, {
      head,
      firstBytesWait: optimistic ? (this.#opts.firstBytesWait ?? 5) : null,
      open: (first) => this.#opts.tunnel.open(target, optimistic || first.length > 0 ? first : undefined),
      failed: (err) => {
        if (!optimistic) return rawAnswer(socket, 502, 'Bad Gateway', `synmux: ${err.message}`, [], 'proxy_internal_error')
        this.#log.warn(`http proxy: CONNECT ${name}: ${err.message}`)
        socket.destroy()
      },
      refused: (err) => {
        if (!isRefusal(err)) return
        // nothing the client sent goes anywhere else: its connection closes
        this.#stats.refused++
        this.#log.info(`http proxy: CONNECT ${name} refused: ${err.message}`)
      },
      ...(optimistic
        ? {}
        : {
            // 200 only once the far side has connected; a refusal is answered 403/502/504.
            ready: async (_stream: MuxStream, answered: () => Promise<Error | null>) => {
              const err = await answered()
              if (err === null) {
                socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
                return true
              }
              const { status, error } = isRefusal(err) ? refusalStatus(err.wireCode) : { status: 502, error: 'proxy_internal_error' }
              rawAnswer(socket, status, http.STATUS_CODES[status] ?? 'Error', `synmux: ${err.message}`, [], error)
              return false
            },
          }),
    })
    this.#stats.active--
  }

  async #onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    socket.on('error', () => {})
    if (!isWebSocketUpgrade(req.headers.upgrade)) {
      // h2c or anything else: never an upgrade (no raw tunnel), but the
      // request itself is served, body intact, on a connection kept alive.
      await this.#conn(socket).all // every earlier answer written first
      if (socket.destroyed) return
      this.#log.debug(`http proxy: ${req.method} ${req.url}: Upgrade: ${req.headers.upgrade} dropped, served as a plain request`)
      this.#reparsed.add(socket)
      return reparseWithoutUpgrade(this.server, req, socket, head)
    }
    this.#stats.requests++
    const bad = headProblem(req, this.#maxFields)
    if (bad) return rawAnswer(socket, bad.status, http.STATUS_CODES[bad.status]!, bad.text, [], bad.proxyStatus)
    if (!this.#authorized(req)) {
      this.#stats.authFailures++
      return rawAnswer(socket, 407, 'Proxy Authentication Required', 'proxy authentication required', this.#challenge())
    }
    const url = parseAbsoluteUrl(req.url ?? '')
    if (!url || isGatewayTarget(url)) return rawAnswer(socket, 400, 'Bad Request', 'only http:// request targets', [], 'http_request_error')
    this.#stats.active++
    let stream: MuxStream
    try {
      stream = await this.#opts.tunnel.open(GATEWAY)
    } catch (err) {
      this.#stats.active--
      return rawAnswer(socket, 502, 'Bad Gateway', `synmux: no session to the server (${(err as Error).message})`, [], 'proxy_internal_error')
    }
    stream.on('error', () => {})
    const target = `http://${url.authority}${url.path}`
    const headers = [...endToEnd(req.rawHeaders, { upgrade: true }), 'Host', url.authority]
    const up = http.request({ createConnection: () => stream as unknown as net.Socket, method: req.method, path: target, headers, setHost: false, maxHeaderSize: 65_536 })
    let settled = false
    const settle = () => {
      if (settled) return false
      settled = true
      this.#stats.active--
      return true
    }
    socket.once('close', () => {
      if (settle()) up.destroy()
    })
    up.on('upgrade', (upRes, upSocket: net.Socket, upHead: Buffer) => {
      if (!isWebSocketUpgrade(upRes.headers.upgrade)) {
        // a 101 to another protocol than the one asked for: never a raw tunnel
        upSocket.destroy()
        this.#log.info(`http proxy: upgrade ${target}: the far side switched to ${JSON.stringify(upRes.headers.upgrade ?? '')}, not websocket`)
        return rawAnswer(socket, 502, 'Bad Gateway', 'synmux: the origin switched to another protocol than websocket', [], 'http_upgrade_failed')
      }
      this.#stats.upgrades++
      socket.write(serializeHead(upRes.statusCode ?? 101, upRes.statusMessage ?? 'Switching Protocols', endToEnd(upRes.rawHeaders, { upgrade: true })), 'latin1')
      if (upHead.length > 0) socket.write(upHead)
      if (head.length > 0) upSocket.write(head)
      void relay(upSocket as unknown as MuxStream, socket)
    })
    up.on('response', (upRes) => {
      // no upgrade: pass the answer on, then close (the socket left the HTTP parser)
      const framing = responseFramingHeaders(upRes) ?? []
      socket.resume()
      socket.write(serializeHead(upRes.statusCode ?? 502, upRes.statusMessage ?? '', [...endToEnd(upRes.rawHeaders), ...framing, 'Connection', 'close']), 'latin1')
      upRes.pipe(socket)
    })
    up.on('error', (err: Error) => {
      if (socket.destroyed) return
      if (isRefusal(err)) {
        this.#stats.refused++
        this.#log.info(`http proxy: upgrade ${target} refused: ${err.message}`)
        const { status, error } = refusalStatus(err.wireCode)
        return rawAnswer(socket, status, http.STATUS_CODES[status] ?? 'Error', `synmux: ${err.message}`, [], error)
      }
      rawAnswer(socket, 502, 'Bad Gateway', `synmux: ${err.message}`, [], 'proxy_internal_error')
    })
    up.end()
  }
}

/** Creates an {@link HttpProxy} (call `listen()` on it). */
export function createHttpProxy(options: HttpProxyOptions): HttpProxy {
  return new HttpProxy(options)
}
