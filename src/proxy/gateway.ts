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
import { RefuseCode } from '../mux/wire/constants.js'
import type { MuxStream } from '../mux/stream/stream.js'
import type { DecodedTarget } from '../mux/wire/target.js'
import { createConnection } from '../tfo/connect.js'
import { silentLogger, type Logger } from '../tunnel/log.js'
import { relay } from '../tunnel/relay.js'
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
  refuseCodeFor,
  requestFraming,
  requestFramingHeaders,
  responseFramingHeaders,
  serializeHead,
  via,
  forwardInformational,
} from './common.js'

/** An address the allow list permits (as `dns.lookup` with `all: true` yields). */
export interface AllowedAddress {
  address: string
  family: number
}

/** Limits of an {@link HttpGateway} (what {@link TunnelServer}'s `httpGateway` option takes). */
export interface HttpGatewayLimits {
  /** Onward connections per origin (host:port), busy and idle. Default 32. */
  maxSocketsPerOrigin?: number
  /** Idle onward connections kept per origin. Default 32. */
  maxFreeSocketsPerOrigin?: number
  /** Onward connections in all. Default 512. */
  maxTotalSockets?: number
  /** An idle pooled onward connection is closed after this many ms (or earlier, as the origin's `Keep-Alive: timeout` says). Default 30,000. */
  idleSocketTimeout?: number
  /** Onward connect timeout in ms. Default 10,000. */
  connectTimeout?: number
  /** A stream's request head must arrive within this many ms. Default 30,000. */
  headersTimeout?: number
  /** A stream idle between requests is ended after this many ms. Default 60,000. */
  keepAliveTimeout?: number
  /** How long an allow-list decision (the resolved, allowed addresses of a host:port) is reused, ms. Default 1,000. */
  resolveCacheMs?: number
  /** Request bodies up to this size are kept so an idempotent request can be retried on a new connection. Default 65,536. */
  retryBodyLimit?: number
  /**
   * Requests in progress on one gateway stream (pipelining depth). At this
   * many the gateway stops reading the stream (flow control then stops the
   * client); a stream found with more than four times as many (they arrived
   * at once, before the stop) is reset. Default 16.
   */
  maxPipelinedRequests?: number
  /**
   * Requests in progress on the gateway streams of one session. At this
   * many the gateway stops reading all of them, and refuses new gateway
   * streams of that session with BUSY (the HTTP proxy answers 503). Default 128.
   */
  maxRequestsPerSession?: number
  /** The pseudonym in `Via`. Default `synmux`. */
  pseudonym?: string
  /**
   * Header fields a request head may have; a head with more (or with two
   * `Host` fields) is refused (or answered 431/400). Default 1,024: a
   * little above the HTTP proxy's 1,000, for the fields a proxy adds.
   */
  maxHeaderFields?: number
}

/** Options of an {@link HttpGateway}. */
export interface HttpGatewayOptions extends HttpGatewayLimits {
  /**
   * Resolves an origin and returns the addresses the allow list permits
   * (empty: not allowed; rejects: not resolvable). {@link TunnelServer}
   * passes its own allow-list check.
   */
  resolve: (target: DecodedTarget) => Promise<AllowedAddress[]>
  logger?: Logger
}

/** Counters of an {@link HttpGateway}. */
export interface HttpGatewayStats {
  /** Gateway streams handled. */
  streams: number
  /** Of those, streams whose OPEN already carried request bytes (the request head: one round trip). */
  headsInOpen: number
  /** Requests received (upgrades included). */
  requests: number
  /** Requests in progress. */
  active: number
  /** Requests refused (stream refused, or answered 4xx/5xx by the gateway). */
  refused: number
  /** Idempotent requests retried because a pooled connection was closed before the origin answered. */
  retries: number
  /** Upgrades (WebSocket) relayed. */
  upgrades: number
  /** Onward connections opened (each then serves many requests). */
  originConnections: number
  /** Requests sent on a pooled connection that had served an earlier request. */
  reusedConnections: number
}

interface StreamState {
  timer: NodeJS.Timeout | null
  inFlight: number
  /** Called (and cleared) when inFlight drops to 0. */
  idle: (() => void)[]
  /** Requests of this stream counted in its session's `active`. */
  counted: number
  /** Reading is stopped by the pipelining limits. */
  gated: boolean
  /** Upgraded (raw from now on): no longer limited. */
  upgraded: boolean
  session: SessionRequests
}

/** The requests in progress on the gateway streams of one session. */
interface SessionRequests {
  active: number
  streams: Map<MuxStream, StreamState>
}

const isReset = (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET' || err.code === 'EPIPE'

/** A `lookup` that answers with addresses already checked against the allow list. */
function fixedLookup(addrs: AllowedAddress[]) {
  return (_host: string, opts: unknown, cb?: unknown) => {
    const callback = (typeof opts === 'function' ? opts : cb) as (err: NodeJS.ErrnoException | null, a: unknown, f?: number) => void
    const o = (typeof opts === 'object' && opts !== null ? opts : {}) as { all?: boolean; family?: number }
    const list = o.family === 4 || o.family === 6 ? addrs.filter((a) => a.family === o.family) : addrs
    if (list.length === 0) return callback(Object.assign(new Error('no allowed address'), { code: 'ENOTFOUND' }), o.all ? [] : undefined)
    if (o.all) callback(null, list)
    else callback(null, list[0]!.address, list[0]!.family)
  }
}

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
export class HttpGateway extends EventEmitter {
  readonly #opts: HttpGatewayOptions
  readonly #log: Logger
  readonly #server: http.Server
  readonly #agent: http.Agent
  readonly #states = new WeakMap<object, StreamState>()
  readonly #sessions = new WeakMap<object, SessionRequests>()
  readonly #maxPipelined: number
  readonly #maxPerSession: number
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
    this.#maxPipelined = options.maxPipelinedRequests ?? 16
    this.#maxPerSession = options.maxRequestsPerSession ?? 128
    this.#opts = options
    this.#log = options.logger ?? silentLogger
    this.#server = http.createServer({ maxHeaderSize: 65_536, requestTimeout: 0, noDelay: true })
    // one more than the limit, so that a head over it is seen (and refused)
    this.#server.maxHeadersCount = this.#maxFields + 1
    this.#server.on('request', (req, res) => void this.#onRequest(req, res, false))
    this.#server.on('checkContinue', (req, res) => void this.#onRequest(req, res, true))
    this.#server.on('upgrade', (req, socket, head) => void this.#onUpgrade(req, socket as unknown as MuxStream, head))
    this.#server.on('connect', (req, socket) => {
      this.#begin(socket)
      this.#stats.requests++
      this.#refuse(socket as unknown as MuxStream, null, RefuseCode.BAD_TARGET, 'CONNECT is not a gateway request (open a stream to the target instead)', 405)
    })
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      this.#begin(socket)
      const stream = socket as unknown as MuxStream
      this.#log.debug(`gateway: malformed request: ${err.code ?? err.message}`)
      if (stream.pending) stream.refuse(RefuseCode.BAD_TARGET, `malformed HTTP request (${err.code ?? 'parse error'})`)
      else if (stream.writable && !(socket as { _httpMessage?: http.ServerResponse })._httpMessage?.headersSent) {
        this.#discard(stream)
        stream.end(serializeHead(400, 'Bad Request', ['Content-Length', '0', 'Connection', 'close']))
      } else stream.destroy()
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
    this.#agent.createConnection = ((o: { host: string; port: number; lookup?: unknown }) => {
      this.#stats.originConnections++
      return createConnection({ host: o.host, port: o.port, noDelay: true, ...(o.lookup ? { lookup: o.lookup as never } : {}) })
    }) as never
  }

  /** Live counters. */
  stats(): HttpGatewayStats {
    return { ...this.#stats }
  }

  /** Serves one gateway stream (its target named the gateway). */
  handle(stream: MuxStream): void {
    if (this.#closed) {
      if (stream.pending) stream.refuse(RefuseCode.GOING_AWAY, 'the gateway is closed')
      else stream.destroy()
      return
    }
    let session = this.#sessions.get(stream.session)
    if (session === undefined) this.#sessions.set(stream.session, (session = { active: 0, streams: new Map() }))
    if (session.active >= this.#maxPerSession) {
      this.#stats.refused++
      this.#log.info(`gateway: refused: ${session.active} requests in progress on this session`)
      if (stream.pending) stream.refuse(RefuseCode.BUSY, 'too many HTTP requests in progress on this session')
      else stream.destroy()
      return
    }
    this.#stats.streams++
    if (stream.readableLength > 0) this.#stats.headsInOpen++
    stream.on('error', () => {})
    const state: StreamState = { timer: null, inFlight: 0, idle: [], counted: 0, gated: false, upgraded: false, session }
    this.#states.set(stream, state)
    session.streams.set(stream, state)
    this.#arm(stream, state, this.#opts.headersTimeout ?? 30_000, 'no request head')
    // While the limits stop reading, nobody resumes the stream (the HTTP
    // server resumes its socket whenever a request body is read or a
    // response finishes; that must not let the next requests in).
    const resume = stream.resume
    stream.resume = function (this: MuxStream) {
      return state.gated ? this : resume.call(this)
    }
    stream.once('close', () => {
      this.#disarm(state)
      session.streams.delete(stream)
      this.#uncount(stream, state, state.counted)
    })
    this.#server.emit('connection', stream)
  }

  /** Destroys the pooled onward connections; later streams are refused. */
  async close(): Promise<void> {
    this.#closed = true
    this.#agent.destroy()
  }

  #arm(stream: MuxStream, state: StreamState, ms: number, why: string): void {
    this.#disarm(state)
    if (ms <= 0) return
    state.timer = setTimeout(() => {
      this.#log.debug(`gateway: stream ${stream.id}: ${why} in ${ms} ms, closing`)
      if (stream.pending) stream.refuse(RefuseCode.TIMEOUT, why)
      else stream.end()
    }, ms)
    state.timer.unref?.()
  }

  #disarm(state: StreamState): void {
    if (state.timer) clearTimeout(state.timer)
    state.timer = null
  }

  /** A request (or upgrade) started on `socket`: no head timeout, no idle timeout while it runs; counted against the pipelining limits. */
  #begin(socket: object): StreamState | undefined {
    const state = this.#states.get(socket)
    if (state) {
      this.#disarm(state)
      state.inFlight++
      const stream = socket as MuxStream
      if (!stream.destroyed) {
        state.counted++
        state.session.active++
        if (state.counted > 4 * this.#maxPipelined) {
          // Far more requests at once than the gateway reads: bounded by a reset, not by parsing on.
          this.#log.info(`gateway: stream ${stream.id}: more than ${4 * this.#maxPipelined} pipelined requests at once, reset`)
          stream.destroy()
        } else if (state.session.active === this.#maxPerSession) this.#regateAll(state.session)
        else this.#regate(stream, state)
      }
    }
    return state
  }

  #end(stream: MuxStream, state: StreamState | undefined): void {
    this.#stats.active--
    if (!state) return
    state.inFlight--
    this.#uncount(stream, state, 1)
    if (state.inFlight === 0) for (const f of state.idle.splice(0)) f()
    if (state.inFlight === 0 && !stream.destroyed && !stream.writableEnded) this.#arm(stream, state, this.#opts.keepAliveTimeout ?? 60_000, 'idle')
  }

  /** `n` requests of `stream` are no longer in progress (or the stream is gone): reading may go on. */
  #uncount(stream: MuxStream, state: StreamState, n: number): void {
    n = Math.min(n, state.counted)
    if (n === 0) return
    const session = state.session
    const wasFull = session.active >= this.#maxPerSession
    state.counted -= n
    session.active -= n
    if (wasFull && session.active < this.#maxPerSession) this.#regateAll(session)
    else this.#regate(stream, state)
  }

  #regateAll(session: SessionRequests): void {
    for (const [stream, state] of session.streams) this.#regate(stream, state)
  }

  /** Stops or restarts reading `stream` as the limits say (PROTOCOL.md 19.2: flow control then pushes back). */
  #regate(stream: MuxStream, state: StreamState): void {
    const stop = !state.upgraded && (state.counted >= this.#maxPipelined || state.session.active >= this.#maxPerSession)
    if (stop === state.gated || stream.destroyed) return
    state.gated = stop
    if (stop) stream.pause()
    else stream.resume()
  }

  /** Reads and discards what is left of `stream` (it is being answered and closed): the limits no longer apply. */
  #discard(stream: MuxStream): void {
    const state = this.#states.get(stream)
    if (state) state.gated = false
    stream.resume()
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
    if (stream.pending) {
      stream.refuse(code, why.slice(0, 255))
      return
    }
    const s = status ?? refusalStatus(code).status
    if (res) proxyAnswer(res, s, why, { close: true, error: refusalStatus(code).error })
    else if (stream.writable) {
      this.#discard(stream)
      stream.end(serializeHead(s, http.STATUS_CODES[s] ?? 'Error', ['Content-Length', '0', 'Connection', 'close']))
    } else stream.destroy()
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
    const connectTimeout = this.#opts.connectTimeout ?? 10_000
    up.once('socket', (socket: net.Socket) => {
      if ((up as { reusedSocket?: boolean }).reusedSocket) this.#stats.reusedConnections++
      const ready = () => {
        clearTimeout(timer)
        if (stream.pending) stream.accept()
      }
      let timer: NodeJS.Timeout | undefined
      if (!socket.connecting) return ready()
      timer = setTimeout(() => up.destroy(Object.assign(new Error(`connect timeout (${connectTimeout} ms)`), { code: 'ETIMEDOUT' })), connectTimeout)
      socket.once('connect', ready)
      socket.once('close', () => clearTimeout(timer))
    })
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean): Promise<void> {
    const stream = req.socket as unknown as MuxStream
    const state = this.#begin(stream)
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
            createConnection: () => {
              this.#stats.originConnections++
              return createConnection({ host: url.host, port: url.port, noDelay: true, lookup: lookup as never })
            },
          }
        : { agent: this.#agent, lookup: lookup as never }
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
      const state = this.#states.get(stream)
      if (state && state.inFlight > 0) await new Promise<void>((r) => state.idle.push(r))
      if (stream.destroyed) return
      this.#log.debug(`gateway: ${req.method} ${req.url}: Upgrade: ${req.headers.upgrade} dropped, served as a plain request`)
      return reparseWithoutUpgrade(this.#server, req, stream as unknown as Duplex, head)
    }
    const state = this.#begin(stream)
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
      createConnection: () => {
        this.#stats.originConnections++
        return createConnection({ host: url.host, port: url.port, noDelay: true, allowHalfOpen: true, lookup: lookup as never })
      },
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
      if (state) {
        // A raw relay from now on: not a request in progress any more.
        state.upgraded = true
        this.#uncount(stream, state, state.counted)
      }
      this.#log.debug(`gateway: upgrade http://${url.authority}${url.path} -> ${upRes.statusCode} ${upRes.headers.upgrade ?? ''}`)
      stream.write(serializeHead(upRes.statusCode ?? 101, upRes.statusMessage ?? 'Switching Protocols', [...endToEnd(upRes.rawHeaders, { upgrade: true }), ...via(upRes.httpVersion, pseudonym)]), 'latin1')
      if (upHead.length > 0) stream.write(upHead)
      if (head.length > 0) origin.write(head)
      void relay(stream, origin)
    })
    up.on('response', (upRes) => {
      // the origin declined the upgrade: pass its answer on, then close
      const framing = responseFramingHeaders(upRes) ?? []
      this.#discard(stream) // nothing more is read from this stream
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
