/**
 * The tunnel client: keeps one authenticated mux session up to a tunnel
 * server — over the secure channel (PROTOCOL.md 20) by default — and turns
 * local connections (port forwards, SOCKS5) into streams whose OPEN
 * carries the application's first bytes.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import net from 'node:net'
import { logs, silentLogger, type Logger } from '../common/log.js'
import { GoawayCode, RefuseCode, ResetCode } from '../mux/wire/constants.js'
import type { MuxError } from '../mux/errors.js'
import { Session } from '../mux/session/session.js'
import type { MuxStream } from '../mux/stream/stream.js'
import type { Target } from '../mux/wire/target.js'
import { carry } from '../net/local.js'
import type { RelayCounts } from '../net/relay.js'
import { refuseName } from '../net/refusal.js'
import type { RedirectAddress } from '../mux/wire/redirect.js'
import type { SecureChannel } from '../secure/channel.js'
import type { createConnection } from '../tfo/connect.js'
import type { LocalListener, TunnelClientOptions, TunnelClientStats } from './client-options.js'
import { listenError, TunnelError } from './errors.js'
import { sessionTag } from './forwarder.js'
import { SessionPool } from './pool.js'
import { OpenPacer } from './room.js'
import { clientSecurity, TUNNEL_FRAME_SIZE, type Security, type TunnelClientSecureOptions } from './security.js'
import { socksAnswer, socksName, socksReplyFor, socksServer, type SocksOptions } from './socks-listener.js'
import { SocksReply } from './socks5.js'
import { ClientTransports } from './transports.js'

/** What the client logs when the server's proof fails: the keys differ. */
const WRONG_KEY = 'authentication failed: the server does not accept this key'

/**
 * A tunnel client.
 *
 * Events: `'up'` `(session)` a session is established; `'down'` `(err?)`
 * a session closed (it reconnects); `'error'` `(err)` — only emitted when a
 * listener exists — the client gave up (`SYNMUX_AUTH_FAILED` after
 * `maxAuthFailures`, or when the server withdrew this client's key) and is
 * closed; `'close'` the client is closed.
 *
 * @example
 * ```js
 * const { TunnelClient, readPrivateKeyFile, decodePublicKey } = require('synmux')
 * const client = new TunnelClient({
 *   server: { host: 'tunnel.example', port: 9000 },
 *   secure: { staticKey: readPrivateKeyFile('client.key'), serverKey: decodePublicKey('<the server key>') },
 * })
 * client.start()
 * await client.forward({ port: 8080 }, { host: 'intranet', port: 80 })
 * await client.socks({ port: 1080 })
 * ```
 */
export class TunnelClient extends EventEmitter {
  readonly #opts: TunnelClientOptions
  readonly #security: Security<TunnelClientSecureOptions>
  readonly #transports: ClientTransports
  /** A session has been up at least once. */
  #wasUp = false
  /** A session created in this tick (its first flight has not left). */
  #fresh: Session | null = null
  readonly #log: Logger
  #session: Session | null = null
  #up = false
  #closed = false
  #backoff: number
  #timer: NodeJS.Timeout | undefined
  #sessions = 0
  readonly #listeners = new Set<net.Server>()
  readonly #stats = { bytesUp: 0, bytesDown: 0, refused: 0, resumes: 0, connects: 0, socksAuthFailures: 0 }
  readonly #refusedBy: Record<string, number> = {}
  readonly #tfo = { attempted: 0, accepted: 0 }
  /** Byte counts of the relays running now (added to the totals in stats()). */
  readonly #relays = new Set<RelayCounts>()
  /** Local connections being carried (waiting for a stream, or relaying), with their stream once opened. */
  readonly #carried = new Map<net.Socket, MuxStream | null>()
  #pool: SessionPool | null = null
  readonly #pacer: OpenPacer
  /** `open()` calls waiting for a session: an 'up' settles them, `close()` fails them (not one listener each on this emitter). */
  readonly #upWaiters = new Set<(err?: Error) => void>()
  /** Handshakes in a row that failed authentication. */
  #authFailures = 0
  /** Why the last session attempt failed (for the log line of a connection that found no session). */
  #lastFailure = ''

  constructor(options: TunnelClientOptions) {
    super()
    if (options === null || typeof options !== 'object') throw Object.assign(new TypeError('options must be an object'), { code: 'ERR_INVALID_ARG_TYPE' })
    this.#security = clientSecurity(options)
    this.#opts = options
    this.#transports = new ClientTransports(options, this.#security, options.logger ?? silentLogger)
    this.#log = options.logger ?? silentLogger
    this.#backoff = options.reconnect?.min ?? 100
    for (const k of ['maxOpening', 'maxAuthFailures'] as const) {
      const v = options[k]
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < (k === 'maxOpening' ? 1 : 0))) {
        throw Object.assign(new RangeError(`options.${k} must be an integer >= ${k === 'maxOpening' ? 1 : 0}`), { code: 'ERR_OUT_OF_RANGE' })
      }
    }
    this.#pacer = new OpenPacer(options.maxOpening ?? 128)
  }

  /** Connects, and keeps a session up until {@link TunnelClient.close}. */
  start(): this {
    if (this.#closed) return this
    if ((this.#opts.pool ?? 0) > 1) {
      if (this.#pool === null) {
        this.#pool = new SessionPool({
          size: this.#opts.pool!,
          connect: (_i, to) => this.#transport(to).transport,
          session: { ...this.#opts.session, ...(this.#opts.lanes !== undefined ? { lanes: this.#opts.lanes } : {}), ...this.#auth() },
        })
        this.#pool.on('up', (s: Session) => this.#wentUp(s))
        this.#pool.on('down', (_i: number, err?: MuxError) => this.#failed(err))
        this.#pool.start()
      }
      return this
    }
    if (!this.#session && !this.#timer) this.#connect()
    return this
  }

  /** The current session when it is established. */
  get session(): Session | null {
    if (this.#pool !== null) return this.#pool.pick()
    return this.#up ? this.#session : null
  }

  /** The pool, with `pool` > 1. */
  get pool(): SessionPool | null {
    return this.#pool
  }

  /** Live counters. */
  stats(): TunnelClientStats {
    let bytesUp = this.#stats.bytesUp
    let bytesDown = this.#stats.bytesDown
    for (const c of this.#relays) {
      bytesUp += c.up
      bytesDown += c.down
    }
    const common = {
      bytesUp,
      bytesDown,
      refused: this.#stats.refused,
      refusedBy: { ...this.#refusedBy },
      connects: this.#stats.connects,
      tfo: { ...this.#tfo },
      socksAuthFailures: this.#stats.socksAuthFailures,
    }
    if (this.#pool !== null) {
      const p = this.#pool.stats()
      return {
        ...common,
        state: this.#closed ? 'closed' : p.up > 0 ? 'up' : 'connecting',
        streams: p.members.reduce((n, m) => n + m.streams, 0),
        rtt: Math.min(...p.members.map((m) => (m.state === 'up' ? m.rtt : Infinity))) || 0,
        reconnects: p.replaced,
        resumes: p.members.reduce((n, m) => n + m.resumes, 0),
        pool: p,
      }
    }
    const s = this.#session
    return {
      ...common,
      state: this.#closed ? 'closed' : this.#up ? 'up' : 'connecting',
      streams: s?.streamCount ?? 0,
      rtt: s?.rtt ?? 0,
      reconnects: Math.max(0, this.#sessions - 1),
      resumes: this.#stats.resumes + (s?.stats().resumes ?? 0),
      ...((this.#opts.lanes ?? 1) > 1 ? { lanes: s?.stats().lanes ?? [] } : {}),
    }
  }

  /** Local connections being carried now (waiting for a stream, or relaying). */
  get connections(): number {
    return this.#carried.size
  }

  /**
   * Session options set by the transport security: the pre-shared-key
   * authentication (without the secure channel); on the secure channel, a
   * frame size that makes a full DATA frame one record (unless the options
   * set one).
   */
  #auth(): { auth?: { key: Buffer }; maxFrameSize?: number } {
    if (this.#security.key !== null) return { auth: { key: this.#security.key } }
    return this.#opts.session?.maxFrameSize === undefined ? { maxFrameSize: TUNNEL_FRAME_SIZE } : {}
  }

  /** A new connection to the server: TFO, then the secure channel (or TLS) if configured. */
  #transport(to?: RedirectAddress): { raw: ReturnType<typeof createConnection>; transport: net.Socket | SecureChannel } {
    const made = this.#transports.make(to)
    const raw = made.raw
    // The outcome is known once the handshake completed (the SYN-ACK said whether it took the data).
    raw.once('connect', () =>
      process.nextTick(() => {
        const f = raw.fastOpen
        if (f.attempted) this.#tfo.attempted++
        if (f.accepted === true) this.#tfo.accepted++
      }),
    )
    return made
  }

  /** A session (the pool's, or ours) is up: whoever waits for one or for room goes on. */
  #wentUp(session: Session): void {
    this.#up = true
    this.#wasUp = true
    this.#authFailures = 0
    this.#pacer.wake(true)
    this.emit('up', session)
    for (const w of [...this.#upWaiters]) w()
  }

  #connect(): void {
    this.#timer = undefined
    const { host, port } = this.#opts.server
    const { raw, transport } = this.#transport()
    const session = new Session(transport, {
      ...this.#opts.session,
      ...(this.#opts.lanes !== undefined ? { lanes: this.#opts.lanes } : {}),
      role: 'client',
      ...this.#auth(),
      resumption: { ...this.#opts.session?.resumption, connect: (to) => this.#transport(to).transport },
    })
    session.on('redirect', (to: RedirectAddress) => this.#log.info(`the session lives at ${to.host}:${to.port} (the server at ${host}:${port} redirected it): resuming and adding lanes there`))
    session.on('detached', (err: MuxError) => this.#log.warn(`connection to ${host}:${port} lost (${err.message}); resuming the session`))
    session.on('resumed', () => this.#log.info(`session to ${host}:${port} resumed on a new connection`))
    this.#session = session
    session.on('error', () => {})
    session.once('handshake', () => {
      this.#sessions++
      this.#backoff = this.#opts.reconnect?.min ?? 100
      this.#log.info(`session to ${host}:${port} up${this.#sessions > 1 ? ` (reconnect ${this.#sessions - 1})` : ''}, TFO ${raw.fastOpen.accepted === true ? 'used' : `not used (${raw.fastOpen.reason ?? 'pending'})`}`)
      this.#wentUp(session)
    })
    session.once('close', (err?: MuxError) => {
      this.#stats.resumes += session.stats().resumes
      const wasUp = this.#up
      this.#up = false
      this.#session = null
      if (err?.code !== 'SYNMUX_AUTH_FAILED' && this.#transports.refusal(err) === null) this.#log[wasUp ? 'warn' : 'info'](`session to ${host}:${port} ${wasUp ? 'lost' : 'failed'}${err ? `: ${err.code} ${err.message}` : ''}`)
      this.emit('down', err)
      if (this.#failed(err) || this.#closed) return
      const delay = this.#backoff
      this.#backoff = Math.min(this.#backoff * 2, this.#opts.reconnect?.max ?? 10_000)
      this.#timer = setTimeout(() => this.#connect(), delay)
    })
  }



  /**
   * A session attempt ended with `err`: counts authentication failures
   * (a wrong pre-shared key; with the secure channel, a refused handshake
   * before any session was up) and gives up after `maxAuthFailures` in a
   * row; a server that withdrew this client's key (`GOAWAY(AUTH_FAILED)` on
   * the secure channel) ends it at once. Returns whether it gave up.
   */
  #failed(err: MuxError | undefined): boolean {
    if (err) this.#lastFailure = `${err.code} ${err.message}`
    if (this.#closed || err === undefined) return false
    const { host, port } = this.#opts.server
    if (err.code === 'SYNMUX_REMOTE_GOAWAY' && err.wireCode === GoawayCode.AUTH_FAILED) {
      const why = `the server ${host}:${port} no longer authorizes this client's key (${err.reason ?? 'GOAWAY AUTH_FAILED'})`
      return this.#giveUp(why, err)
    }
    const refused = this.#transports.refusal(err)
    if (refused !== null) {
      this.#lastFailure = refused
      if (this.#wasUp) {
        this.#log.warn(`${refused}; retrying (a session was up before: the server may be restarting)`)
        return false
      }
      const max = this.#opts.maxAuthFailures ?? 1
      const n = ++this.#authFailures
      if (max === 0 || n < max) {
        this.#log.error(`${refused} (attempt ${n}${max > 0 ? ` of ${max}` : ''})`)
        return false
      }
      return this.#giveUp(refused, err)
    }
    if (err.code !== 'SYNMUX_AUTH_FAILED') return false
    const max = this.#opts.maxAuthFailures ?? 3
    const n = ++this.#authFailures
    // A wrong key shows as the server's proof not matching ours; other
    // authentication failures (the server requires no key, sent no nonce) keep their own words.
    const why = /does not hold our key/.test(err.message) ? WRONG_KEY : err.message
    this.#lastFailure = why
    this.#log.error(`${why} (server ${host}:${port}${max > 0 ? `, attempt ${n} of ${max}` : ''})`)
    if (max === 0 || n < max) return false
    return this.#giveUp(why, err, `giving up after ${n} failed authentications: check that the client and the server use the same key file`)
  }

  /** Ends the client for good: one line at error level (`line`, by default `why`), `'error'` (`SYNMUX_AUTH_FAILED`, `why`) and close. */
  #giveUp(why: string, err: Error, line = why): true {
    this.#lastFailure = why
    this.#log.error(line)
    const e = new TunnelError('SYNMUX_AUTH_FAILED', why, { cause: err })
    void this.close()
    if (this.listenerCount('error') > 0) this.emit('error', e)
    return true
  }

  /** Established sessions (with a pool: every slot's that is open). */
  #upSessions(): Session[] {
    if (this.#pool !== null) return this.#pool.sessions.filter((s) => !s.destroyed && s.state === 'open' && s.peerHello !== null)
    return this.#up && this.#session !== null && this.#session.state === 'open' ? [this.#session] : []
  }

  /**
   * Secure channel, no pool: a session whose first flight (handshake
   * message 1) has not left yet — started now if no attempt is under way
   * and none is waiting for its backoff — so that a stream opened on it in
   * this tick rides in that flight: a cold session's first request then
   * costs one round trip (in a TFO SYN with a warm cookie). `null` when
   * there is none (the caller waits for a session to come up).
   */
  #freshSession(): Session | null {
    if (this.#security.secure === null || this.#pool !== null || this.#closed) return null
    if (this.#session === null && this.#timer === undefined) {
      this.#connect()
      const s = this.#session
      this.#fresh = s
      setImmediate(() => {
        if (this.#fresh === s) this.#fresh = null
      })
    }
    const f = this.#fresh
    return f !== null && f === this.#session && !f.destroyed ? f : null
  }

  /** Resolves when a session is up, or rejects after `ms` (or when the client closes). */
  #waitUp(ms: number): Promise<void> {
    if (this.#closed) return Promise.reject(new TunnelError('SYNMUX_NO_SESSION', 'the tunnel client is closed'))
    this.start()
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer)
        this.#upWaiters.delete(done)
        if (err) reject(err)
        else resolve()
      }
      const { host, port } = this.#opts.server
      const wait = this.#opts.sessionWait ?? 10_000
      const timer = setTimeout(
        () => done(new TunnelError('SYNMUX_NO_SESSION', `no session to the server ${host}:${port} within ${wait} ms${this.#lastFailure ? ` (last attempt: ${this.#lastFailure})` : ''}`)),
        ms,
      )
      this.#upWaiters.add(done)
    })
  }

  /**
   * Opens a stream to `target` carrying `data` in its OPEN, on a session
   * with room (see {@link TunnelClientOptions.maxOpening}; with a pool, the
   * best session that has room). Waits up to `sessionWait` for a session,
   * or for an unanswered open to be answered; rejects with `code`
   * `SYNMUX_NO_SESSION` when none came, and `SYNMUX_TOO_MANY_STREAMS` when
   * every session holds as many streams as the server accepts.
   */
  async open(target: Target, data?: Buffer): Promise<MuxStream> {
    const wait = this.#opts.sessionWait ?? 10_000
    const until = Date.now() + wait
    let woken = false
    for (;;) {
      const up = this.#upSessions()
      if (up.length === 0) {
        // A cold session: this stream's OPEN (and its data) rides in the first flight.
        const fresh = this.#freshSession()
        if (fresh !== null) {
          const stream = fresh.open({ target, ...(data && data.length ? { data } : {}) })
          this.#pacer.track(fresh, stream)
          return stream
        }
        await this.#waitUp(Math.max(0, until - Date.now()))
        continue
      }
      const pacer = this.#pacer
      const session = this.#pool !== null ? this.#pool.pick((s) => pacer.room(s) === 'yes') : pacer.room(up[0]!) === 'yes' ? up[0]! : null
      if (session !== null) {
        const stream = session.open({ target, ...(data && data.length ? { data } : {}) })
        pacer.track(session, stream)
        // Someone else may be waiting for the room this one did not take.
        if (woken) pacer.wake()
        return stream
      }
      if (up.every((s) => pacer.room(s) === 'full') && (this.#pool === null || up.length === this.#pool.stats().size)) {
        const max = up[0]!.peerHello!.maxStreams
        throw new TunnelError(
          'SYNMUX_TOO_MANY_STREAMS',
          `the server accepts at most ${max} streams per session and ${up.length > 1 ? `all ${up.length} sessions are` : 'the session is'} full (raise the server's --max-streams${this.#pool === null ? ', or use --pool' : ''})`,
        )
      }
      if (!(await pacer.wait(Math.max(0, until - Date.now()), woken))) {
        throw new TunnelError('SYNMUX_NO_SESSION', `no room for a new stream within ${wait} ms (${this.#upSessions().map((s) => `${pacer.opening(s)} opens unanswered, ${s.streamCount} streams`).join('; ')})`)
      }
      woken = true
    }
  }

  /**
   * Carries one local connection to `target` through the session. With
   * `socks` (a SOCKS5 connection answered only now, `socks({ wait })`), the
   * reply is written once the far side answered: success, or the refusal's
   * reply code and the close.
   */
  async #carry(socket: net.Socket, target: Target, head?: Buffer, socks?: { prefix: Buffer | undefined }): Promise<void> {
    socket.on('error', () => {})
    this.#carried.set(socket, null)
    socket.once('close', () => this.#carried.delete(socket))
    const started = performance.now()
    // Names for log lines, made only when a line is written (the peer's
    // address is a getpeername(): read now only if the closing debug line,
    // written after the socket is gone, will want it).
    const debug = logs(this.#log, 'debug')
    let peer = debug ? `${socket.remoteAddress}:${socket.remotePort}` : undefined
    const from = (): string => (peer ??= `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`)
    const to = (): string => (net.isIPv6(target.host) ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`)
    const refusedAs = (name: string): void => {
      this.#stats.refused++
      this.#refusedBy[name] = (this.#refusedBy[name] ?? 0) + 1
    }
    let tag: string | undefined
    let refused = false
    const live: RelayCounts = { up: 0, down: 0, reason: '' }
    const done = await carry(socket, {
      head,
      firstBytesWait: socks ? null : (this.#opts.firstBytesWait ?? 5),
      open: (first) => {
        live.up = first.length
        return this.open(target, first)
      },
      failed: (err) => {
        if ((err as TunnelError).code === 'SYNMUX_TOO_MANY_STREAMS') refusedAs('too_many_streams')
        this.#log.warn(`closing the connection from ${from()} to ${target.host}:${target.port}: ${err.message}`, { from: from(), target: to() })
        if (socks && !socket.destroyed) socket.end(socksAnswer(socks.prefix, SocksReply.GENERAL_FAILURE))
        else socket.destroy()
      },
      opened: (stream) => {
        this.#stats.connects++
        this.#carried.set(socket, stream)
        if (debug) tag = sessionTag(stream.session)
        this.#relays.add(live)
      },
      refused: (err, stream) => {
        refused = true
        refusedAs(err.code === 'SYNMUX_TOO_MANY_STREAMS' ? 'too_many_streams' : refuseName(err.wireCode ?? RefuseCode.REFUSED))
        // Nothing the application sent is forwarded anywhere else: close it.
        this.#log.warn(`${target.host}:${target.port} refused: ${err.message}`, { session: tag ?? sessionTag(stream.session), stream: stream.id, from: from(), target: to() })
      },
      ...(socks
        ? {
            // Wait for OPENED (or the refusal) before answering the application.
            ready: async (_stream: MuxStream, answered: () => Promise<Error | null>) => {
              const err = await answered()
              if (err !== null) {
                if (!socket.destroyed) socket.end(socksAnswer(socks.prefix, socksReplyFor(err)))
                return false
              }
              socket.write(socksAnswer(socks.prefix, SocksReply.SUCCEEDED))
              return true
            },
          }
        : {}),
      counts: live,
      socketName: 'application',
    }).finally(() => this.#relays.delete(live))
    if (done === null) return
    const { stream, counts } = done
    this.#stats.bytesUp += counts.up
    this.#stats.bytesDown += counts.down
    if (debug) this.#log.debug(`closed ${from()} -> ${to()}`, { session: tag, stream: stream.id, from: from(), target: to(), up: counts.up, down: counts.down, ms: Math.round(performance.now() - started), reason: refused ? 'refused' : counts.reason })
  }

  #listen(server: net.Server, at: { host?: string; port: number }, what: string): Promise<LocalListener> {
    this.#listeners.add(server)
    return new Promise((resolve, reject) => {
      const host = at.host ?? '127.0.0.1'
      const onError = (err: NodeJS.ErrnoException): void => {
        this.#listeners.delete(server)
        reject(listenError(err, host, at.port, what))
      }
      server.once('error', onError)
      server.listen(at.port, host, () => {
        server.off('error', onError)
        // A listener's later errors (EMFILE on accept, ...) are logged, never unhandled.
        server.on('error', (err) => this.#log.error(`${what}: ${err.message}`))
        const a = server.address() as net.AddressInfo
        this.#log.info(`${what} on ${a.address}:${a.port}`)
        // The session starts once there is something to carry (a port in use connects nowhere);
        // on demand, with the first connection.
        if (this.#opts.onDemand !== true) this.start()
        resolve({ server, address: () => server.address() as net.AddressInfo })
      })
    })
  }

  /** Listens locally; every connection is carried to `target`. */
  forward(at: { host?: string; port: number }, target: Target): Promise<LocalListener> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => void this.#carry(socket, target))
    return this.#listen(server, at, `forwarding to ${target.host}:${target.port}`)
  }

  /**
   * Listens locally as a SOCKS5 proxy (CONNECT). By default success is
   * answered at once, so the application's first request rides in the
   * OPEN; if the far side refuses, the connection is closed. See
   * {@link SocksOptions} for authentication and waiting for the far side.
   */
  socks(at: { host?: string; port: number }, options: SocksOptions = {}): Promise<LocalListener> {
    const server = socksServer(options, this.#log, {
      carry: (socket, target, rest, wait) => void this.#carry(socket, target, rest, wait),
      authFailed: () => this.#stats.socksAuthFailures++,
    })
    return this.#listen(server, at, socksName(options))
  }

  /**
   * Stops accepting local connections; the session closes (GOAWAY) once
   * the connections it carries have finished (a drain: however long that
   * takes; {@link TunnelClient.destroy} ends it).
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      process.nextTick(() => {
        const err = new TunnelError('SYNMUX_NO_SESSION', `the tunnel client is closed${this.#lastFailure ? ` (${this.#lastFailure})` : ''}`)
        for (const w of [...this.#upWaiters]) w(err)
        this.emit('close')
      })
    }
    this.#closed = true
    this.#pacer.wake(true)
    if (this.#timer) clearTimeout(this.#timer)
    await Promise.all([...this.#listeners].map((s) => new Promise((r) => s.close(r))))
    if (this.#pool !== null) await this.#pool.close()
    const s = this.#session
    if (s) await s.close()
  }

  /**
   * Ends everything now (no drain): listeners close, every carried
   * connection is reset along with its stream (the server frees it at
   * once), and the sessions close; one whose transport does not take the
   * goodbye within `graceMs` (default 1,000) is torn down. Resolves when
   * all are gone.
   */
  async destroy(graceMs = 1000): Promise<void> {
    const closing = this.close()
    for (const [socket, stream] of this.#carried) {
      if (stream && !stream.destroyed) {
        stream.on('error', () => {})
        stream.reset(ResetCode.CANCEL)
      }
      if (!socket.destroyed) socket.resetAndDestroy()
    }
    let timer: NodeJS.Timeout | undefined
    await Promise.race([closing, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))])
    clearTimeout(timer)
    for (const s of this.#pool?.sessions ?? []) s.destroy()
    this.#session?.destroy()
  }
}
