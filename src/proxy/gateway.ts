/**
 * The far half of the HTTP proxy: a `node:http` server fed with the mux
 * streams whose target is the reserved gateway name. Each stream carries
 * absolute-form requests; the gateway checks every origin against the
 * tunnel server's allow list and forwards the request over a keep-alive
 * pool of onward connections per origin (opened with TCP Fast Open),
 * shared by every stream of every session.
 *
 * Refusal (docs/PROTOCOL.md, "Tunnel conventions"): while a stream is still
 * unanswered, a request the gateway will not forward (origin not allowed,
 * not resolvable, not reachable, malformed) is answered by refusing the
 * stream, so whatever the client sent optimistically is discarded. Once
 * the stream is accepted (an onward connection is ready), errors become
 * HTTP answers (502/504) or, mid-response, a reset stream.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { silentLogger, type Logger } from '../common/log.js'
import type { MuxStream } from '../mux/stream/stream.js'
import { RefuseCode } from '../mux/wire/constants.js'
import type { DecodedTarget } from '../mux/wire/target.js'
import { acceptWhenReady, fixedLookup, onwardOptions, refuseOr } from '../net/onward.js'
import { refuseCodeFor } from '../net/refusal.js'
import { relay } from '../net/relay.js'
import { createConnection } from '../tfo/connect.js'
import type { AllowedAddress, HttpGatewayOptions, HttpGatewayStats, StreamGateway } from '../tunnel/gateway.js'
import {
  type AbsoluteUrl,
  IDEMPOTENT,
  MAX_HEADER_FIELDS,
  endToEnd,
  headProblem,
  isWebSocketUpgrade,
  reparseWithoutUpgrade,
  endToEndTrailers,
  parseAbsoluteUrl,
  proxyAnswer,
  refusalStatus,
  requestFraming,
  requestFramingHeaders,
  responseFramingHeaders,
  serializeHead,
  via,
  forwardInformational,
} from './common.js'
import { GatewayStreams } from './gateway-streams.js'

export type { AllowedAddress, HttpGatewayLimits, HttpGatewayOptions, HttpGatewayStats } from '../tunnel/gateway.js'

const isReset = (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET' || err.code === 'EPIPE'

const targetOf = (url: AbsoluteUrl): DecodedTarget => ({
  host: url.host,
  port: url.port,
  kind: net.isIPv4(url.host) ? 'ipv4' : net.isIPv6(url.host) ? 'ipv6' : 'hostname',
})

/**
 * The HTTP gateway. {@link TunnelServer} creates one (option
 * `httpGateway`, on by default) and hands it every stream whose target is
 * the reserved gateway name; use it directly only when serving sessions
 * yourself: `gateway.handle(stream)` for each such stream.
 */
export class HttpGateway extends EventEmitter implements StreamGateway {
  readonly #opts: HttpGatewayOptions
  readonly #log: Logger
  readonly #server: http.Server
  readonly #agent: http.Agent
  /** The streams' timers and request limits. */
  readonly #streams: GatewayStreams
  readonly #cache = new Map<string, { until: number; p: Promise<AllowedAddress[]> }>()
  readonly #stats: HttpGatewayStats = { streams: 0, headsInOpen: 0, requests: 0, active: 0, refused: 0, retries: 0, upgrades: 0, originConnections: 0, reusedConnections: 0 }
  #closed = false

  get #maxFields(): number {
    return this.#opts.maxHeaderFields ?? MAX_HEADER_FIELDS + 24
  }

  constructor(options: HttpGatewayOptions) {
    super()
    if (typeof options?.resolve !== 'function') throw Object.assign(new TypeError('options.resolve must be a function'), { code: 'ERR_INVALID_ARG_TYPE' })
    for (const k of ['maxSocketsPerOrigin', 'maxFreeSocketsPerOrigin', 'maxTotalSockets', 'idleSocketTimeout', 'connectTimeout', 'headersTimeout', 'keepAliveTimeout', 'resolveCacheMs', 'retryBodyLimit', 'maxHeaderFields'] as const) {
      const v = options[k]
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) {
        throw Object.assign(new RangeError(`options.${k} must be a non-negative integer`), { code: 'ERR_OUT_OF_RANGE' })
      }
    }
    for (const k of ['maxPipelinedRequests', 'maxRequestsPerSession'] as const) {
      const v = options[k]
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) {
        throw Object.assign(new RangeError(`options.${k} must be a positive integer`), { code: 'ERR_OUT_OF_RANGE' })
      }
    }
    this.#opts = options
    this.#log = options.logger ?? silentLogger
    this.#streams = new GatewayStreams({
      maxPipelined: options.maxPipelinedRequests ?? 16,
      maxPerSession: options.maxRequestsPerSession ?? 128,
      headersTimeout: options.headersTimeout ?? 30_000,
      keepAliveTimeout: options.keepAliveTimeout ?? 60_000,
      log: this.#log,
    })
    this.#server = http.createServer({ maxHeaderSize: 65_536, requestTimeout: 0, noDelay: true })
    // one more than the limit, so that a head over it is seen (and refused)
    this.#server.maxHeadersCount = this.#maxFields + 1
    this.#server.on('request', (req, res) => void this.#onRequest(req, res, false))
    this.#server.on('checkContinue', (req, res) => void this.#onRequest(req, res, true))
    this.#server.on('upgrade', (req, socket, head) => void this.#onUpgrade(req, socket as unknown as MuxStream, head))
    this.#server.on('connect', (req, socket) => {
      this.#streams.begin(socket)
      this.#stats.requests++
      this.#refuse(socket as unknown as MuxStream, null, RefuseCode.BAD_TARGET, 'CONNECT is not a gateway request (open a stream to the target instead)', 405)
    })
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      this.#streams.begin(socket)
      const stream = socket as unknown as MuxStream
      this.#log.debug(`gateway: malformed request: ${err.code ?? err.message}`)
      refuseOr(stream, RefuseCode.BAD_TARGET, `malformed HTTP request (${err.code ?? 'parse error'})`, () => {
        if (stream.writable && !(socket as { _httpMessage?: http.ServerResponse })._httpMessage?.headersSent) this.#answer(stream, 400)
        else stream.destroy()
      })
    })
    this.#agent = new http.Agent({
      keepAlive: true,
      scheduling: 'lifo',
      maxSockets: options.maxSocketsPerOrigin ?? 32,
      maxFreeSockets: options.maxFreeSocketsPerOrigin ?? 32,
      maxTotalSockets: options.maxTotalSockets ?? 512,
      timeout: options.idleSocketTimeout ?? 30_000,
    })
    // Onward connections with TCP Fast Open: the first request rides in the SYN.
    this.#agent.createConnection = ((o: { host: string; port: number; lookup?: net.LookupFunction }) => this.#connect(o.host, o.port, o.lookup)) as never
  }

  /** Live counters. */
  stats(): HttpGatewayStats {
    return { ...this.#stats }
  }

  /** Serves one gateway stream (its target named the gateway). */
  handle(stream: MuxStream): void {
    if (this.#closed) return refuseOr(stream, RefuseCode.GOING_AWAY, 'the gateway is closed')
    if (!this.#streams.admit(stream)) {
      this.#stats.refused++
      this.#log.info(`gateway: refused: ${this.#streams.active(stream)} requests in progress on this session`)
      return refuseOr(stream, RefuseCode.BUSY, 'too many HTTP requests in progress on this session')
    }
    this.#stats.streams++
    if (stream.readableLength > 0) this.#stats.headsInOpen++
    this.#server.emit('connection', stream)
  }

  /** Destroys the pooled onward connections; later streams are refused. */
  async close(): Promise<void> {
    this.#closed = true
    this.#agent.destroy()
  }

  /** An onward connection to an origin (TFO: the first request rides in the SYN), counted. */
  #connect(host: string, port: number, lookup: net.LookupFunction | undefined, extra: { allowHalfOpen?: boolean } = {}): net.Socket {
    this.#stats.originConnections++
    return createConnection(onwardOptions(host, port, lookup, extra))
  }

  /** A request of `stream` finished. */
  #end(stream: MuxStream, state: ReturnType<GatewayStreams['begin']>): void {
    this.#stats.active--
    this.#streams.end(stream, state)
  }

  /** Answers `stream` with an empty error response and closes it (nothing more is read). */
  #answer(stream: MuxStream, status: number): void {
    this.#streams.discard(stream)
    stream.end(serializeHead(status, http.STATUS_CODES[status] ?? 'Error', ['Content-Length', '0', 'Connection', 'close']))
  }

  /** Allowed addresses of an origin, from a short cache (one lookup for a burst of requests). */
  #allowed(url: AbsoluteUrl): Promise<AllowedAddress[]> {
    const key = `${url.host} ${url.port}`
    const now = Date.now()
    const hit = this.#cache.get(key)
    if (hit && hit.until > now) return hit.p
    if (this.#cache.size > 4096) this.#cache.clear()
    const p = this.#opts.resolve(targetOf(url))
    this.#cache.set(key, { until: now + (this.#opts.resolveCacheMs ?? 1000), p })
    p.catch(() => this.#cache.delete(key))
    return p
  }

  /**
   * Declines a request: refuses the stream while it is unanswered (the
   * client's optimistic bytes are discarded; docs/PROTOCOL.md), otherwise
   * answers with an HTTP error and closes the stream.
   */
  #refuse(stream: MuxStream, res: http.ServerResponse | null, code: number, why: string, status?: number): void {
    this.#stats.refused++
    this.#log.info(`gateway: refused: ${why}`)
    refuseOr(stream, code, why, () => {
      const s = status ?? refusalStatus(code).status
      if (res) proxyAnswer(res, s, why, { close: true, error: refusalStatus(code).error })
      else if (stream.writable) this.#answer(stream, s)
      else stream.destroy()
    })
  }

  /** Checks the request head and target: the origin and its allowed addresses, or `null` (declined). */
  async #check(req: http.IncomingMessage, stream: MuxStream, res: http.ServerResponse | null): Promise<{ url: AbsoluteUrl; addrs: AllowedAddress[] } | null> {
    const bad = headProblem(req, this.#maxFields)
    if (bad) {
      this.#refuse(stream, res, RefuseCode.BAD_TARGET, bad.text, bad.status)
      return null
    }
    const url = parseAbsoluteUrl(req.url ?? '')
    if (!url) {
      this.#refuse(stream, res, RefuseCode.BAD_TARGET, `not an absolute http:// request target: ${JSON.stringify((req.url ?? '').slice(0, 100))}`, 400)
      return null
    }
    const origin = url.authority
    let addrs: AllowedAddress[]
    try {
      addrs = await this.#allowed(url)
    } catch (err) {
      this.#refuse(stream, res, refuseCodeFor(err as NodeJS.ErrnoException), `${origin}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      return null
    }
    if (addrs.length === 0) {
      this.#refuse(stream, res, RefuseCode.NOT_ALLOWED, `${origin}: not in the allow list`, 403)
      return null
    }
    if (stream.destroyed) return null
    return { url, addrs }
  }

  /** Accepts the stream once the onward connection is ready (pooled: at once). */
  #acceptOn(up: http.ClientRequest, stream: MuxStream): void {
    up.once('socket', (socket: net.Socket) => {
      if ((up as { reusedSocket?: boolean }).reusedSocket) this.#stats.reusedConnections++
      acceptWhenReady(stream, socket, { connectTimeout: this.#opts.connectTimeout ?? 10_000, onTimeout: (err) => up.destroy(err) })
    })
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean): Promise<void> {
    const stream = req.socket as unknown as MuxStream
    const state = this.#streams.begin(stream)
    this.#stats.requests++
    this.#stats.active++
    let ended = false
    const end = () => {
      if (ended) return
      ended = true
      this.#end(stream, state)
    }
    res.once('close', end)
    const framing = requestFraming(req)
    if (framing.kind === 'unsupported') {
      this.#refuse(stream, res, RefuseCode.BAD_TARGET, `unsupported transfer coding: ${req.headers['transfer-encoding']}`, 501)
      return end()
    }
    const checked = await this.#check(req, stream, res)
    if (!checked) return end()
    const { url, addrs } = checked
    const method = req.method ?? 'GET'
    const pseudonym = this.#opts.pseudonym ?? 'synmux'
    const headers = [...endToEnd(req.rawHeaders), 'Host', url.authority, ...requestFramingHeaders(framing), ...via(req.httpVersion, pseudonym)]
    // Kept for one retry on a new connection (idempotent requests only).
    const limit = this.#opts.retryBodyLimit ?? 65_536
    let replay: Buffer[] | null = IDEMPOTENT.has(method) ? [] : null
    let replayBytes = 0
    let responded = false
    let current: http.ClientRequest
    const lookup = fixedLookup(addrs)
    const started = Date.now()

    const attempt = (retry: boolean): http.ClientRequest => {
      // The retry goes on a connection of its own, never another pooled one:
      // when an origin drops idle connections, it usually drops all of them.
      const route = retry
        ? {
            createConnection: () => this.#connect(url.host, url.port, lookup),
          }
        : { agent: this.#agent, lookup }
      const up = http.request({ host: url.host, port: url.port, method, path: url.path, headers, setHost: false, maxHeaderSize: 65_536, ...route })
      current = up
      this.#acceptOn(up, stream)
      forwardInformational(up, res, expectContinue)
      up.on('response', (upRes) => {
        responded = true
        const framingHeaders = responseFramingHeaders(upRes)
        if (framingHeaders === null) {
          upRes.destroy()
          this.#refuse(stream, res, RefuseCode.REFUSED, `${url.authority}: response with an unsupported transfer coding (${upRes.headers['transfer-encoding']})`, 502)
          return
        }
        try {
          res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, [...endToEnd(upRes.rawHeaders), ...framingHeaders, ...via(upRes.httpVersion, pseudonym)])
        } catch (err) {
          upRes.destroy()
          this.#refuse(stream, res, RefuseCode.REFUSED, `${url.authority}: unusable response head (${(err as Error).message})`, 502)
          return
        }
        this.#log.debug(`gateway: ${method} http://${url.authority}${url.path} -> ${upRes.statusCode} (${Date.now() - started} ms)`)
        upRes.pipe(res, { end: false })
        upRes.once('end', () => {
          const trailers = endToEndTrailers(upRes.rawTrailers)
          if (trailers.length > 0) res.addTrailers(trailers)
          res.end()
        })
        upRes.once('close', () => {
          // the origin went away mid-body: the message cannot be completed, so neither can ours
          if (!upRes.complete) res.destroy()
        })
      })
      up.on('error', (err: NodeJS.ErrnoException) => {
        if (responded) return void res.destroy()
        if (res.destroyed || stream.destroyed) return
        if (!retry && (up as { reusedSocket?: boolean }).reusedSocket && isReset(err) && replay !== null && req.complete) {
          // The origin closed the pooled connection before answering: once more, on a new connection.
          this.#stats.retries++
          this.#log.debug(`gateway: ${method} http://${url.authority}${url.path}: pooled connection closed (${err.code}), retrying once`)
          const again = attempt(true)
          for (const c of replay) again.write(c)
          const trailers = endToEndTrailers(req.rawTrailers)
          if (trailers.length > 0) again.addTrailers(trailers)
          again.end()
          return
        }
        const code = refuseCodeFor(err)
        this.#refuse(stream, res, code, `${url.authority}: ${err.code ?? err.message}`, code === RefuseCode.TIMEOUT ? 504 : 502)
      })
      return up
    }

    const first = attempt(false)
    res.once('close', () => {
      if (!res.writableFinished) current.destroy()
    })
    if (framing.kind === 'none') {
      first.end()
      return
    }
    first.flushHeaders()
    req.on('data', (c: Buffer) => {
      if (replay === null) return
      replayBytes += c.length
      if (replayBytes > limit) replay = null
      else replay.push(c)
    })
    req.pipe(first, { end: false })
    req.once('end', () => {
      if (current !== first) return
      const trailers = endToEndTrailers(req.rawTrailers)
      if (trailers.length > 0) first.addTrailers(trailers)
      first.end()
    })
  }

  async #onUpgrade(req: http.IncomingMessage, stream: MuxStream, head: Buffer): Promise<void> {
    if (!isWebSocketUpgrade(req.headers.upgrade)) {
      // h2c or anything else: never an upgrade (no raw tunnel); the request
      // is served as a plain one, after every earlier answer on the stream.
      await this.#streams.idle(stream)
      if (stream.destroyed) return
      this.#log.debug(`gateway: ${req.method} ${req.url}: Upgrade: ${req.headers.upgrade} dropped, served as a plain request`)
      return reparseWithoutUpgrade(this.#server, req, stream as unknown as Duplex, head)
    }
    const state = this.#streams.begin(stream)
    this.#stats.requests++
    this.#stats.active++
    stream.once('close', () => this.#end(stream, state))
    const checked = await this.#check(req, stream, null)
    if (!checked) return
    const { url, addrs } = checked
    const pseudonym = this.#opts.pseudonym ?? 'synmux'
    const lookup = fixedLookup(addrs)
    const headers = [...endToEnd(req.rawHeaders, { upgrade: true }), 'Host', url.authority, ...via(req.httpVersion, pseudonym)]
    const up = http.request({
      host: url.host,
      port: url.port,
      method: req.method,
      path: url.path,
      headers,
      setHost: false,
      maxHeaderSize: 65_536,
      createConnection: () => this.#connect(url.host, url.port, lookup, { allowHalfOpen: true }),
    })
    this.#acceptOn(up, stream)
    stream.once('close', () => up.destroy())
    up.on('upgrade', (upRes, origin: net.Socket, upHead: Buffer) => {
      if (!isWebSocketUpgrade(upRes.headers.upgrade)) {
        // a 101 to another protocol than the one asked for: never a raw tunnel
        origin.destroy()
        this.#refuse(stream, null, RefuseCode.REFUSED, `${url.authority}: the origin switched to ${JSON.stringify(upRes.headers.upgrade ?? '')}, not websocket`, 502)
        return
      }
      this.#stats.upgrades++
      // A raw relay from now on: not a request in progress any more.
      this.#streams.upgraded(stream, state)
      this.#log.debug(`gateway: upgrade http://${url.authority}${url.path} -> ${upRes.statusCode} ${upRes.headers.upgrade ?? ''}`)
      stream.write(serializeHead(upRes.statusCode ?? 101, upRes.statusMessage ?? 'Switching Protocols', [...endToEnd(upRes.rawHeaders, { upgrade: true }), ...via(upRes.httpVersion, pseudonym)]), 'latin1')
      if (upHead.length > 0) stream.write(upHead)
      if (head.length > 0) origin.write(head)
      void relay(stream, origin)
    })
    up.on('response', (upRes) => {
      // the origin declined the upgrade: pass its answer on, then close
      const framing = responseFramingHeaders(upRes) ?? []
      this.#streams.discard(stream) // nothing more is read from this stream
      stream.write(serializeHead(upRes.statusCode ?? 502, upRes.statusMessage ?? '', [...endToEnd(upRes.rawHeaders), ...framing, ...via(upRes.httpVersion, pseudonym), 'Connection', 'close']), 'latin1')
      upRes.pipe(stream)
    })
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (stream.destroyed) return
      const code = refuseCodeFor(err)
      this.#refuse(stream, null, code, `${url.authority}: ${err.code ?? err.message}`, code === RefuseCode.TIMEOUT ? 504 : 502)
    })
    up.end()
  }
}
