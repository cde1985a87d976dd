/**
 * The tunnel client: keeps one authenticated mux session up to a tunnel
 * server — over the secure channel (PROTOCOL.md 20) by default — and turns
 * local connections (port forwards, SOCKS5) into streams whose OPEN
 * carries the application's first bytes.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import net from 'node:net'
import { RefuseCode, ResetCode } from '../mux/constants.js'
import type { MuxError } from '../mux/errors.js'
import type { SessionOptions } from '../mux/options.js'
import { Session } from '../mux/session.js'
import type { MuxStream } from '../mux/stream.js'
import type { Target } from '../mux/target.js'
import type { RedirectAddress } from '../mux/redirect.js'
import { createConnection } from '../tfo/connect.js'
import { listenError, TunnelError } from './errors.js'
import { OpenPacer } from './room.js'
import { silentLogger, type Logger } from './log.js'
import { relay, type RelayCounts } from './relay.js'
import { readFirstBytes } from './onward.js'
import { SessionPool, type PoolStats } from './pool.js'
import type { LaneInfo } from '../mux/lanes.js'
import { Socks5Parser, SocksReply, socksReply } from './socks5.js'
import { FailureLimiter } from './ratelimit.js'
import type { SecureChannel } from '../secure/channel.js'
import { GoawayCode } from '../mux/constants.js'
import { clientSecurity, TUNNEL_FRAME_SIZE, type Security, type TunnelClientSecureOptions } from './security.js'
import { ClientTransports } from './transports.js'

/** TLS settings of a {@link TunnelClient}. */
export interface TunnelClientTls {
  /** CA certificate(s) that sign the server's certificate. */
  ca?: string | Buffer
  /** Or: the server certificate's SHA-256 fingerprint (hex, colons allowed), pinned. */
  fingerprint?: string
  /** Server name for SNI and the certificate check. Default: the server host. */
  servername?: string
}

/** Options of {@link TunnelClient}. */
export interface TunnelClientOptions {
  /** The tunnel server. */
  server: { host: string; port: number }
  /**
   * The secure channel (PROTOCOL.md 20): this client's private key and the
   * server's public key. Every session is encrypted and authenticated; the
   * first request of a new session rides in the handshake's first flight.
   * The default: give this, or one of the two alternatives below.
   */
  secure?: TunnelClientSecureOptions
  /** Pre-shared key (at least 32 bytes), for `tls` or `insecurePlaintext` (PROTOCOL.md 16). */
  key?: Buffer
  /** Run the session over TLS (authenticated with `key`). */
  tls?: TunnelClientTls
  /** Run the session in clear text, authenticated only by `key`: for benchmarks, against a server that does the same. */
  insecurePlaintext?: boolean
  /**
   * Connect only when the first local connection needs a session (or
   * `open()` is called), instead of at `start()`: that connection's first
   * bytes then ride in the session's first flight (with the secure channel
   * and a warm TFO cookie: in the SYN), so it still takes one round trip.
   * Default false.
   */
  onDemand?: boolean
  /** Session limits (role and auth are set by the client). */
  session?: Omit<SessionOptions, 'role'>
  /** Reconnect backoff in ms: starts at `min`, doubles up to `max`. Default 100 / 10,000. */
  reconnect?: { min?: number; max?: number }
  /** How long to wait for an application's first bytes before opening its stream. Default 5 ms. */
  firstBytesWait?: number
  /**
   * How long a new local connection waits for a session (or, with every
   * session at its stream limit's pace, for room) before it is closed, and
   * logged. Default 10,000 ms.
   */
  sessionWait?: number
  /**
   * Opens sent on one session and not answered yet; more wait (in order)
   * until an answer comes back. The server keeps an unanswered open pending
   * while it connects onward and refuses opens past its own pending limit
   * (256 per session by default), so a burst of thousands of connections
   * is paced instead of refused. Default 128.
   */
  maxOpening?: number
  /**
   * Give up after this many handshakes in a row failed authentication: the
   * client closes and emits `'error'` with `code` `SYNMUX_AUTH_FAILED`.
   * With a pre-shared key, a failure is the server's proof not matching
   * this key. With the secure channel, a failure is a server that answers
   * the first flight with nothing (it closes, or stays silent until the
   * handshake timeout: `secure.serverKey` is not its key, or it does not
   * authorize this client's key) before any session was up; once a session
   * has been up, such failures are retried with backoff. 0: keep trying.
   * Default 3 (pre-shared key), 1 (secure channel: each attempt costs a
   * handshake timeout).
   */
  maxAuthFailures?: number
  /**
   * Run a {@link SessionPool} of this many sessions, each on its own
   * connection (new streams go to the best one). Default: one session.
   * Sessions are resumable either way: a lost connection is reconnected
   * and the session resumed without failing its streams.
   */
  pool?: number
  /**
   * Stripe each session over this many connections ("lanes", PROTOCOL.md
   * 14), each opened like the first (TFO, TLS, authenticated): frames go to
   * the lane that will deliver them first and are put back in order on the
   * far side, so per-connection rate caps add up. Default 1.
   */
  lanes?: number
  logger?: Logger
}

/** Live counters of a {@link TunnelClient}. */
export interface TunnelClientStats {
  /** `'connecting'`, `'up'` or `'closed'`. */
  state: 'connecting' | 'up' | 'closed'
  streams: number
  /** Bytes from applications to targets, and back. */
  bytesUp: number
  bytesDown: number
  /** Smoothed RTT of the session in ms. */
  rtt: number
  /** Sessions established after the first. */
  reconnects: number
  /** Times a session moved to a new connection without losing its streams. */
  resumes: number
  /** Local connections whose stream was refused (by the server, or no room for it). */
  refused: number
  /** The same by reason: the REFUSED code's name (`not_allowed`, `unreachable`, `connection_refused`, `timeout`, ...), or `too_many_streams`. */
  refusedBy: Record<string, number>
  /** Local connections carried (streams opened). */
  connects: number
  /** Connections to the server (sessions, resumes, lanes) that sent their first bytes in a TFO SYN (`attempted`), and whose SYN data the server accepted (`accepted`). */
  tfo: { attempted: number; accepted: number }
  /** SOCKS5 clients refused for wrong credentials (`socks({ auth })`). */
  socksAuthFailures: number
  /** With `pool`: every pool member's state. */
  pool?: PoolStats
  /** With `lanes`: the session's lanes (PROTOCOL.md 14). */
  lanes?: LaneInfo[]
}

/** Options of {@link TunnelClient.socks}. */
export interface SocksOptions {
  /**
   * Require username/password authentication (RFC 1929): clients that do
   * not offer it are refused (`05 FF`). After 10 failures from a source
   * address within a minute, its connections are closed unread until the
   * minute has passed.
   */
  auth?: { user: string; pass: string }
  /**
   * Answer a CONNECT only once the far side has connected (OPENED), with
   * the real reply code when it did not (`0x02` not allowed, `0x04` host
   * unreachable, `0x05` connection refused, `0x06` timeout, `0x01` other).
   * Costs a round trip: the application sends its first bytes only after
   * the reply. Default false: success at once, the first bytes ride in the
   * OPEN, a refusal closes the connection.
   */
  wait?: boolean
  /** Time for a client to complete the greeting, authentication and request, in ms. Default 10,000. */
  timeout?: number
}

/** SOCKS5 reply codes for REFUSED codes (PROTOCOL.md 11.2; RFC 1928 section 6). */
const SOCKS_REPLY_FOR: Record<number, number> = {
  [RefuseCode.NOT_ALLOWED]: SocksReply.NOT_ALLOWED,
  [RefuseCode.UNREACHABLE]: SocksReply.HOST_UNREACHABLE,
  [RefuseCode.CONNECTION_REFUSED]: SocksReply.CONNECTION_REFUSED,
  [RefuseCode.TIMEOUT]: SocksReply.TTL_EXPIRED,
}

/** REFUSED codes by their name in lower case (`not_allowed`), for stats. */
const REFUSE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RefuseCode).map(([k, v]) => [v, k.toLowerCase()]))

/** A forward or SOCKS listener of a {@link TunnelClient}. */
export interface LocalListener {
  server: net.Server
  address(): net.AddressInfo
}



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
        this.#pool.on('up', (s: Session) => {
          this.#up = true
          this.#wasUp = true
          this.#authFailures = 0
          this.#pacer.wake(true)
          this.emit('up', s)
        })
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
      this.#up = true
      this.#wasUp = true
      this.#authFailures = 0
      this.#pacer.wake(true)
      this.#sessions++
      this.#backoff = this.#opts.reconnect?.min ?? 100
      this.#log.info(`session to ${host}:${port} up${this.#sessions > 1 ? ` (reconnect ${this.#sessions - 1})` : ''}, TFO ${raw.fastOpen.accepted === true ? 'used' : `not used (${raw.fastOpen.reason ?? 'pending'})`}`)
      this.emit('up', session)
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
    this.#log.error(`giving up after ${n} failed authentications: check that the client and the server use the same key file`)
    const e = new TunnelError('SYNMUX_AUTH_FAILED', why, { cause: err })
    void this.close()
    if (this.listenerCount('error') > 0) this.emit('error', e)
    return true
  }

  /** Ends the client for good: one line at error level, `'error'` (`SYNMUX_AUTH_FAILED`) and close. */
  #giveUp(why: string, err: Error): true {
    this.#lastFailure = why
    this.#log.error(why)
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
        this.off('up', onUp)
        this.off('close', onClose)
        if (err) reject(err)
        else resolve()
      }
      const onUp = (): void => done()
      const onClose = (): void => done(new TunnelError('SYNMUX_NO_SESSION', `the tunnel client is closed${this.#lastFailure ? ` (${this.#lastFailure})` : ''}`))
      const { host, port } = this.#opts.server
      const wait = this.#opts.sessionWait ?? 10_000
      const timer = setTimeout(
        () => done(new TunnelError('SYNMUX_NO_SESSION', `no session to the server ${host}:${port} within ${wait} ms${this.#lastFailure ? ` (last attempt: ${this.#lastFailure})` : ''}`)),
        ms,
      )
      this.once('up', onUp)
      this.once('close', onClose)
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
    const from = `${socket.remoteAddress}:${socket.remotePort}`
    const to = net.isIPv6(target.host) ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`
    const first = head && head.length > 0 ? head : socks ? Buffer.alloc(0) : await readFirstBytes(socket, this.#opts.firstBytesWait ?? 5)
    const refusedAs = (name: string): void => {
      this.#stats.refused++
      this.#refusedBy[name] = (this.#refusedBy[name] ?? 0) + 1
    }
    let stream: MuxStream
    try {
      stream = await this.open(target, first)
    } catch (err) {
      if ((err as TunnelError).code === 'SYNMUX_TOO_MANY_STREAMS') refusedAs('too_many_streams')
      this.#log.warn(`closing the connection from ${from} to ${target.host}:${target.port}: ${(err as Error).message}`, { from, target: to })
      if (socks && !socket.destroyed) socket.end(Buffer.concat([socks.prefix ?? Buffer.alloc(0), socksReply(SocksReply.GENERAL_FAILURE)]))
      else socket.destroy()
      return
    }
    if (socket.destroyed) {
      // The application gave up while its stream waited for a session or for room.
      stream.on('error', () => {})
      stream.reset(ResetCode.CANCEL)
      return
    }
    this.#stats.connects++
    this.#carried.set(socket, stream)
    const session = stream.session
    const tag = session.id?.subarray(0, 8).toString('hex')
    let refusal: (Error & { code?: string; wireCode?: number }) | null = null
    stream.once('error', (err: Error & { code?: string; wireCode?: number }) => {
      if (err.code === 'SYNMUX_REFUSED' || err.code === 'SYNMUX_TOO_MANY_STREAMS') {
        refusal = err
        refusedAs(err.code === 'SYNMUX_TOO_MANY_STREAMS' ? 'too_many_streams' : (REFUSE_NAMES[err.wireCode ?? RefuseCode.REFUSED] ?? 'refused'))
        // Nothing the application sent is forwarded anywhere else: close it.
        this.#log.warn(`${target.host}:${target.port} refused: ${err.message}`, { session: tag, stream: stream.id, from, target: to })
      }
    })
    if (socks) {
      // Wait for OPENED (or the refusal) before answering the application.
      const opened = await new Promise<boolean>((resolve) => {
        if (stream.destroyed) return resolve(false)
        const onOpen = (): void => (stream.off('close', onClose), resolve(true))
        const onClose = (): void => (stream.off('open', onOpen), resolve(false))
        stream.once('open', onOpen)
        stream.once('close', onClose)
      })
      if (!opened) {
        const code = refusal === null ? SocksReply.GENERAL_FAILURE : (SOCKS_REPLY_FOR[(refusal as { wireCode?: number }).wireCode ?? -1] ?? SocksReply.GENERAL_FAILURE)
        if (!socket.destroyed) socket.end(Buffer.concat([socks.prefix ?? Buffer.alloc(0), socksReply(code)]))
        return
      }
      socket.write(Buffer.concat([socks.prefix ?? Buffer.alloc(0), socksReply(SocksReply.SUCCEEDED)]))
    }
    const live: RelayCounts = { up: first.length, down: 0, reason: '' }
    this.#relays.add(live)
    const counts = await relay(stream, socket, live, 'application').finally(() => this.#relays.delete(live))
    this.#stats.bytesUp += counts.up
    this.#stats.bytesDown += counts.down
    this.#log.debug(`closed ${from} -> ${to}`, { session: tag, stream: stream.id, from, target: to, up: counts.up, down: counts.down, ms: Math.round(performance.now() - started), reason: refusal ? 'refused' : counts.reason })
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
    const auth = options.auth
    if (auth !== undefined && (typeof auth !== 'object' || auth === null || typeof auth.user !== 'string' || typeof auth.pass !== 'string' || auth.user === '' || Buffer.byteLength(auth.user) > 255 || Buffer.byteLength(auth.pass) > 255)) {
      throw Object.assign(new TypeError('options.auth must be { user, pass }: strings of 1-255 bytes (the password may be empty)'), { code: 'ERR_INVALID_ARG_VALUE' })
    }
    const timeout = options.timeout ?? 10_000
    if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1) throw Object.assign(new RangeError('options.timeout must be a positive integer'), { code: 'ERR_OUT_OF_RANGE' })
    // Guessing the password: after 10 failures from an address within a minute, its connections are closed unread.
    const limiter = auth ? new FailureLimiter({ maxFailures: 10, windowMs: 60_000 }) : null
    let refusedLogAt = 0
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      socket.on('error', () => {})
      const source = socket.remoteAddress ?? '?'
      if (limiter !== null && !limiter.allowed(source)) {
        if (Date.now() - refusedLogAt > 10_000) {
          refusedLogAt = Date.now()
          this.#log.warn(`SOCKS5: refusing ${source}: too many failed authentications (for up to a minute)`)
        }
        socket.destroy()
        return
      }
      const parser = new Socks5Parser(auth ? { auth } : {})
      const timer = setTimeout(() => {
        this.#log.info(`SOCKS5: ${source}: no request within ${timeout} ms${parser.authenticated ? '' : auth ? ' (not authenticated)' : ''}; closed`)
        socket.destroy()
      }, timeout)
      const onData = (chunk: Buffer) => {
        let r: ReturnType<Socks5Parser['push']>
        try {
          r = parser.push(chunk)
        } catch (err) {
          clearTimeout(timer)
          socket.off('data', onData)
          const e = err as Error & { reply?: Buffer; authFailed?: boolean }
          if (e.authFailed && limiter !== null) {
            this.#stats.socksAuthFailures++
            limiter.fail(source)
            this.#log.warn(`${e.message} from ${source}`)
          } else this.#log.info(e.message)
          if (e.reply) socket.end(e.reply)
          else socket.destroy()
          return
        }
        if (r.send && !r.request) socket.write(r.send)
        if (!r.request) return
        clearTimeout(timer)
        socket.off('data', onData)
        socket.pause()
        const target = { host: r.request.host, port: r.request.port }
        if (options.wait) return void this.#carry(socket, target, r.rest, { prefix: r.send })
        socket.write(r.send ? Buffer.concat([r.send, socksReply(SocksReply.SUCCEEDED)]) : socksReply(SocksReply.SUCCEEDED))
        void this.#carry(socket, target, r.rest)
      }
      socket.on('data', onData)
    })
    return this.#listen(server, at, `SOCKS5${auth ? ' (username/password)' : ''}${options.wait ? ' (replies wait for the far side)' : ''}`)
  }

  /**
   * Stops accepting local connections; the session closes (GOAWAY) once
   * the connections it carries have finished (a drain: however long that
   * takes; {@link TunnelClient.destroy} ends it).
   */
  async close(): Promise<void> {
    if (!this.#closed) process.nextTick(() => this.emit('close'))
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
