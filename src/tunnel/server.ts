/**
 * The tunnel server: accepts authenticated mux sessions on a TFO listener
 * — over the secure channel (PROTOCOL.md 20) by default — and, for each
 * stream, connects onward to the stream's target — if the allow list
 * permits it — carrying the OPEN's bytes in the onward SYN, and answers
 * OPENED with the target's first response bytes.
 * @packageDocumentation
 */
import dns from 'node:dns'
import { EventEmitter } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import { DEFAULTS, GoawayCode, RefuseCode, ResetCode } from '../mux/constants.js'
import { Session } from '../mux/session.js'
import { SessionRegistry } from '../mux/registry.js'
import type { SessionOptions } from '../mux/options.js'
import type { MuxStream } from '../mux/stream.js'
import type { DecodedTarget } from '../mux/target.js'
import { connectWithData } from '../tfo/connect.js'
import type { FastOpenSocket } from '../tfo/socket.js'
import { enableFastOpen } from '../tfo/server.js'
import { AllowList } from './allow.js'
import { refuseCodeFor } from './onward.js'
import { listenError } from './errors.js'
import { FailureLimiter, type FailureLimiterOptions } from './ratelimit.js'
import { HandshakeGuard } from './handshakes.js'
import { relay, type RelayCounts } from './relay.js'
import { ConnectSlots } from './slots.js'
import { silentLogger, type Logger } from './log.js'
import { HttpGateway, type HttpGatewayLimits, type HttpGatewayStats } from '../proxy/gateway.js'
import { isGatewayTarget } from '../proxy/common.js'
import { secure } from '../secure/secure.js'
import type { AuthorizedKeys } from '../secure/keys.js'
import { ReplayGuard, type ReplayChecker } from '../secure/replay.js'
import type { ServerRouting } from './routing.js'
import { MESSAGE1_TYPE } from '../secure/payload.js'
import { refusalText, serverSecurity, TUNNEL_FRAME_SIZE, TUNNEL_RECORD_SIZE, type Security, type TunnelServerSecureOptions } from './security.js'

/** Options of {@link TunnelServer}. */
export interface TunnelServerOptions {
  /**
   * The secure channel (PROTOCOL.md 20): the server's private key and the
   * client keys it accepts. Every session is encrypted and authenticated;
   * a client's first request rides in the handshake's first flight. The
   * default: give this, or one of the two alternatives below.
   */
  secure?: TunnelServerSecureOptions
  /**
   * Pre-shared key (at least 32 bytes, {@link readKeyFile}), for `tls` or
   * `insecurePlaintext`: clients prove it with PROTOCOL.md 16.
   */
  key?: Buffer
  /** Serve sessions over TLS with this certificate and key (clients authenticate with `key`). */
  tls?: { cert: string | Buffer; key: string | Buffer }
  /**
   * Serve sessions in clear text, authenticated only by `key`
   * (PROTOCOL.md 16): anyone on the path reads everything and can inject
   * frames. For benchmarks; never on a network you do not control.
   */
  insecurePlaintext?: boolean
  /** Targets clients may reach: an {@link AllowList} or its entries. Default deny. */
  allow: AllowList | string | readonly string[]
  /**
   * Session limits (role and auth are set by the server). `maxStreams`,
   * the streams a client may keep open at once in one session, defaults to
   * {@link TUNNEL_MAX_STREAMS} (16,384) here; an OPEN past it is refused
   * (`REFUSED(TOO_MANY_STREAMS)`) and logged.
   */
  session?: Omit<SessionOptions, 'role'>
  /**
   * Onward connects in progress per session (resolving and connecting; a
   * stream holds no slot once its connect has completed or failed); more
   * wait, unanswered, for a slot. Default 64.
   */
  maxConnectsPerSession?: number
  /** Onward connect timeout in ms. Default 10,000. */
  connectTimeout?: number
  /** After the onward connect, how long to wait for the target's first bytes to send them in OPENED. Default 10 ms. */
  firstResponseWait?: number
  /** Per-source limit on failed handshakes (every failure before the key is proved counts; see README). */
  handshakeLimit?: FailureLimiterOptions
  /** Connections that have not proved the key yet, at once, in all; more are closed unread. Default 1,024. */
  maxUnauthenticated?: number
  /** The same, per source address. Default 64. */
  maxUnauthenticatedPerSource?: number
  /** Resolver (default `dns.lookup`). */
  lookup?: typeof dns.lookup
  /**
   * The HTTP gateway (the far half of `synmux client --http-proxy`): streams
   * whose target is the reserved name `gateway.synmux.invalid` carry HTTP
   * requests, forwarded to allowed origins over pooled keep-alive
   * connections. `false` refuses such streams. Default on, with these limits.
   */
  httpGateway?: boolean | HttpGatewayLimits
  logger?: Logger
  /**
   * Sessions shared with other processes or servers (`synmux server
   * --workers`, `--instance-id`; `src/tunnel/cluster/`): session ids,
   * where RESUMEs and JOINs go, the shared replay guard. Default: every
   * session here.
   */
  routing?: ServerRouting
}

/**
 * Default streams per session of a tunnel server (the session's
 * `maxStreams`, announced in its HELLO): enough for 10,000 concurrent
 * connections through one `synmux client` with defaults.
 */
export const TUNNEL_MAX_STREAMS = 16_384

/** One authorized client of a {@link TunnelServer} with sessions (secure channel). */
export interface TunnelClientInfo {
  /** Its name in the authorized keys. */
  name: string
  /** Its public key (base64). */
  key: string
  sessions: number
  streams: number
  bytesUp: number
  bytesDown: number
}

/** Live counters of a {@link TunnelServer}. */
export interface TunnelServerStats {
  /** Sessions (established, and resumable ones waiting for their client). */
  sessions: number
  /** Of those, resumable sessions whose client's connection is lost, waiting to be resumed. */
  detached: number
  streams: number
  connectsInProgress: number
  /** Onward connects that succeeded (relayed streams). */
  connects: number
  /**
   * Of those, connects whose first bytes went in a TCP Fast Open SYN
   * (`attempted`: the stream's OPEN carried bytes and TFO was asked of the
   * OS) and whose SYN data the target accepted (`accepted`).
   */
  tfo: { attempted: number; accepted: number }
  /** Opens refused (by the allow list, a failed connect or a limit). */
  refused: number
  /** The same by reason: the REFUSED code's name (`not_allowed`, `unreachable`, `connection_refused`, `timeout`, `too_many_streams`, ...). */
  refusedBy: Record<string, number>
  /** Sessions resumed on a new connection. */
  resumes: number
  /** Open lanes of striped sessions (PROTOCOL.md 14). */
  lanes: number
  handshakeFailures: number
  /** The same by reason: `tls`, `protocol` (not synmux), `auth` (a wrong key), `timeout` (no HELLO or AUTH in time), `closed` (closed before proving the key). */
  handshakeFailuresBy: Record<string, number>
  /** Connections that have not proved the key yet. */
  unauthenticated: number
  /** Connections closed unread (a source over its failure limit, or a cap on unauthenticated connections). */
  handshakeRefusals: number
  /** Bytes relayed from clients to targets (connections still open included), and back. */
  bytesUp: number
  bytesDown: number
  /** The HTTP gateway's counters (absent when it is off). */
  http?: HttpGatewayStats
  /** Secure channel: per client key with a session, its name and counters. */
  clients?: TunnelClientInfo[]
}

/** Who a session belongs to (secure channel: its client key and name). */
interface Owner {
  key: string | null
  name: string | null
  source: string
  bytesUp: number
  bytesDown: number
}

const targetText = (t: DecodedTarget) => (t.kind === 'ipv6' ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`)

/** REFUSED codes by their name in lower case (`not_allowed`), for stats. */
const REFUSE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RefuseCode).map(([k, v]) => [v, k.toLowerCase()]))
const refuseName = (code: number): string => REFUSE_NAMES[code] ?? `code_${code}`

/** The class of a failed handshake's reason (see {@link TunnelServerStats.handshakeFailuresBy}). */
function failureClass(why: string): string {
  if (why.startsWith('TLS')) return 'tls'
  // The secure channel's refusals (refusalText in security.ts): a client key it does not accept, or a
  // first flight sealed for another server key, is `auth`; anything else that is not its handshake
  // (and, in clear-text mode, a secure-channel client) is `protocol`.
  if (/^secure channel: (client key .* is not authorized|the first flight failed authentication)/.test(why)) return 'auth'
  if (/^(secure channel: |a secure-channel client: )/.test(why)) return 'protocol'
  if (/SYNMUX_(BAD_MAGIC|UNSUPPORTED_VERSION|PROTOCOL_ERROR|FRAME_SIZE_ERROR|HANDSHAKE_FAILED)/.test(why)) return 'protocol'
  if (/authentication failed|SYNMUX_AUTH_FAILED/.test(why)) return 'auth'
  if (/ within \d+ ms|TIMEOUT/.test(why)) return 'timeout'
  return 'closed'
}

/** A session's id as logged: its first 8 bytes in hex. */
export const sessionTag = (s: Session): string | undefined => s.id?.subarray(0, 8).toString('hex')

const bump = (m: Record<string, number>, k: string): void => {
  m[k] = (m[k] ?? 0) + 1
}

/**
 * A tunnel server. `listen()` like a `net.Server`; `close()` stops accepting
 * and drains (every session gets a GOAWAY and closes when its streams have
 * finished); `destroy()` ends everything at once. Emits `'session'`
 * `(session)` for each session that completed its handshake.
 *
 * @example
 * ```js
 * const { TunnelServer, readPrivateKeyFile, readAuthorizedKeysFile } = require('synmux')
 * const server = new TunnelServer({
 *   secure: { staticKey: readPrivateKeyFile('server.key'), authorizedKeys: readAuthorizedKeysFile('authorized_keys') },
 *   allow: ['127.0.0.1:8080'],
 * })
 * await server.listen(9000, '0.0.0.0')
 * ```
 */
export class TunnelServer extends EventEmitter {
  /** The allow list (replaced by {@link TunnelServer.setAllow}). */
  allow: AllowList
  readonly #opts: TunnelServerOptions
  readonly #security: Security<TunnelServerSecureOptions>
  /** Secure channel: the client keys accepted now (replaced by setAuthorizedKeys). */
  #authorized: AuthorizedKeys | null = null
  readonly #replayGuard: ReplayChecker | null = null
  readonly #owners = new Map<Session, Owner>()
  /** Clear-text mode: the first byte of each connection (to name a secure-channel client that came to the wrong server). */
  readonly #firstBytes = new WeakMap<object, number>()
  readonly #log: Logger
  readonly #limiter: FailureLimiter
  readonly #guard: HandshakeGuard
  readonly #server: net.Server
  readonly #sessions = new Set<Session>()
  /** Resumption: RESUME HELLOs find their session here (sessions outlive their connection). */
  #registry: SessionRegistry | null = null
  readonly #gateway: HttpGateway | null
  readonly #stats = {
    connectsInProgress: 0,
    connects: 0,
    tfo: { attempted: 0, accepted: 0 },
    refused: 0,
    refusedBy: {} as Record<string, number>,
    handshakeFailures: 0,
    handshakeFailuresBy: {} as Record<string, number>,
    handshakeRefusals: 0,
    bytesUp: 0,
    bytesDown: 0,
  }
  /** Byte counts of the relays running now (added to the totals in stats()); the relay's socket is the target, so its `up` is our `bytesDown`. */
  readonly #relays = new Set<{ first: number; counts: RelayCounts }>()
  #closing = false
  /** Open streams of every session (reset by destroy()). */
  readonly #streams = new Set<MuxStream>()

  constructor(options: TunnelServerOptions) {
    super()
    if (options === null || typeof options !== 'object') throw Object.assign(new TypeError('options must be an object'), { code: 'ERR_INVALID_ARG_TYPE' })
    this.#security = serverSecurity(options)
    const sec = this.#security.secure
    if (sec !== null) {
      this.#authorized = sec.authorizedKeys
      this.#replayGuard = sec.replayGuard ?? options.routing?.replayGuard ?? new ReplayGuard(sec.replayWindow !== undefined ? { window: sec.replayWindow } : {})
    }
    this.#opts = options
    this.#log = options.logger ?? silentLogger
    this.allow = options.allow instanceof AllowList ? options.allow : AllowList.parse(options.allow as string | string[])
    this.#limiter = options.routing?.failureLimiter?.(options.handshakeLimit) ?? new FailureLimiter(options.handshakeLimit)
    for (const k of ['maxUnauthenticated', 'maxUnauthenticatedPerSource'] as const) {
      const v = options[k]
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) throw Object.assign(new RangeError(`options.${k} must be a positive integer`), { code: 'ERR_OUT_OF_RANGE' })
    }
    const handshakeTimeout = options.session?.handshakeTimeout ?? DEFAULTS.handshakeTimeout
    this.#guard = new HandshakeGuard({
      limiter: this.#limiter,
      timeout: handshakeTimeout,
      max: options.maxUnauthenticated ?? 1024,
      maxPerSource: options.maxUnauthenticatedPerSource ?? 64,
      logger: this.#log,
      onFailure: (why) => {
        this.#stats.handshakeFailures++
        bump(this.#stats.handshakeFailuresBy, failureClass(why))
      },
      onRefused: () => this.#stats.handshakeRefusals++,
      ...(options.routing?.admission ? { peers: options.routing.admission } : {}),
    })
    this.#gateway =
      options.httpGateway === false
        ? null
        : new HttpGateway({ ...(typeof options.httpGateway === 'object' ? options.httpGateway : {}), resolve: (t) => this.#allowedAddresses(t), logger: this.#log })
    const onTransport = (socket: net.Socket) => this.#onTransport(socket)
    if (options.tls) {
      // A TLS handshake that stalls is closed at the same deadline as the rest of the handshake (not Node's 120 s).
      const server = tls.createServer({ cert: options.tls.cert, key: options.tls.key, allowHalfOpen: true, handshakeTimeout }, onTransport)
      server.on('tlsClientError', (err, socket) => {
        this.#guard.failed(socket, socket.remoteAddress, `TLS: ${err.message}`)
        socket.destroy()
      })
      this.#server = server
    } else {
      this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, onTransport)
    }
    // Before any byte is read (and before TLS): the source's failure limit,
    // the caps on unauthenticated connections, and the handshake deadline.
    this.#server.on('connection', (socket: net.Socket) => this.#guard.admit(socket))
    enableFastOpen(this.#server)
  }

  /** The listening address (as `net.Server#address()`). */
  address(): net.AddressInfo {
    return this.#server.address() as net.AddressInfo
  }

  /** Starts listening. */
  listen(port: number, host?: string): Promise<this> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(listenError(err, host ?? '::', port))
      this.#server.once('error', onError)
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError)
        // Later listener errors (EMFILE on accept, ...) are logged, never unhandled.
        this.#server.on('error', (err) => this.#log.error(`listener: ${err.message}`))
        const a = this.address()
        const fo = (this.#server as net.Server & { fastOpen?: { enabled: boolean; reason?: string } }).fastOpen
        const n = this.#authorized?.size ?? 0
        const mode = this.#security.mode === 'secure' ? `secure channel with ${n} authorized key${n === 1 ? '' : 's'}` : this.#security.mode === 'tls' ? 'TLS with the pre-shared key' : 'INSECURE clear text with the pre-shared key'
        this.#log.info(`listening on ${a.address}:${a.port}${this.#opts.tls ? ' (TLS)' : ''}, ${mode}, TFO ${fo?.enabled ? 'on' : `off (${fo?.reason ?? 'unknown'})`}, allow: ${this.allow.entries.join(', ') || 'nothing (default deny)'}`)
        resolve(this)
      })
    })
  }

  /**
   * Takes over a connection accepted elsewhere (another process of the
   * same server handed it on, `synmux server --workers`) as if this server
   * had accepted it, with `head`: the bytes already read from it. It is
   * admitted like any new connection (limits, handshake deadline).
   */
  adopt(socket: net.Socket, head: Buffer): void {
    if (this.#closing || !this.#server.listening) {
      socket.destroy()
      return
    }
    // As the listener makes its sockets (a socket passed between processes is made with Node's defaults).
    socket.allowHalfOpen = true
    socket.setNoDelay(true)
    if (head.length > 0) socket.unshift(head)
    this.#server.emit('connection', socket)
  }

  /**
   * Stops accepting and drains: every session gets a GOAWAY (its client
   * opens no more streams on it; an open that crossed it is refused) and
   * closes once its open streams have finished. Resolves when all are
   * closed; however long that takes ({@link TunnelServer.destroy} ends it).
   */
  async close(): Promise<void> {
    this.#closing = true
    await Promise.all([new Promise<void>((r) => this.#server.close(() => r())), ...[...this.#sessions].map((s) => s.close())])
    await this.#gateway?.close()
  }

  /**
   * Stops accepting and ends everything now (no drain): every open stream
   * is reset (its client closes the application's connection, and does
   * not wait to resume it), then every session is closed; one whose
   * transport does not take the goodbye within `graceMs` (default 1,000)
   * is torn down. Resolves when all are gone.
   */
  async destroy(graceMs = 1000): Promise<void> {
    this.#closing = true
    if (this.#server.listening) this.#server.close()
    for (const stream of this.#streams) if (!stream.destroyed) stream.reset(ResetCode.CANCEL)
    const sessions = [...this.#sessions]
    const closed = Promise.all(sessions.map((s) => s.close()))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))])
    clearTimeout(timer)
    for (const s of sessions) s.destroy()
    await this.#gateway?.close()
  }

  /**
   * Replaces the allow list (for new streams; streams already relaying are
   * not touched). Throws like the constructor on a bad entry, and then
   * changes nothing.
   */
  setAllow(allow: AllowList | string | readonly string[]): void {
    this.allow = allow instanceof AllowList ? allow : AllowList.parse(allow as string | string[])
  }

  /** Replaces the TLS certificate and key (for new connections). Throws `ERR_INVALID_STATE` without TLS. */
  setTls(options: { cert: string | Buffer; key: string | Buffer }): void {
    if (!(this.#server instanceof tls.Server)) throw Object.assign(new Error('the server does not use TLS'), { code: 'ERR_INVALID_STATE' })
    this.#server.setSecureContext({ cert: options.cert, key: options.key })
  }

  /** Live counters. */
  stats(): TunnelServerStats {
    let streams = 0
    let detached = 0
    let lanes = 0
    for (const s of this.#sessions) {
      streams += s.streamCount
      const st = s.stats()
      if (!st.attached) detached++
      for (const l of st.lanes) if (l.state === 'open') lanes++
    }
    let bytesUp = this.#stats.bytesUp
    let bytesDown = this.#stats.bytesDown
    for (const r of this.#relays) {
      bytesUp += r.first + r.counts.down
      bytesDown += r.counts.up
    }
    return {
      ...this.#stats,
      tfo: { ...this.#stats.tfo },
      refusedBy: { ...this.#stats.refusedBy },
      handshakeFailuresBy: { ...this.#stats.handshakeFailuresBy },
      sessions: this.#sessions.size,
      detached,
      streams,
      resumes: this.#registry?.stats().resumed ?? 0,
      lanes,
      bytesUp,
      bytesDown,
      unauthenticated: this.#guard.unauthenticated,
      ...(this.#gateway ? { http: this.#gateway.stats() } : {}),
      ...(this.#authorized !== null ? { clients: this.#clients() } : {}),
    }
  }

  /** Per client key with sessions: its name and counters. */
  #clients(): TunnelClientInfo[] {
    const by = new Map<string, TunnelClientInfo>()
    for (const [s, o] of this.#owners) {
      if (o.key === null) continue
      let c = by.get(o.key)
      if (c === undefined) by.set(o.key, (c = { name: o.name ?? '?', key: o.key, sessions: 0, streams: 0, bytesUp: 0, bytesDown: 0 }))
      c.sessions++
      c.streams += s.streamCount
      c.bytesUp += o.bytesUp
      c.bytesDown += o.bytesDown
    }
    return [...by.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /**
   * Secure channel: replaces the authorized client keys (e.g. re-read on
   * SIGHUP). New handshakes use the new set at once; every session of a
   * key no longer in it is closed at once (`GOAWAY(AUTH_FAILED)` to its
   * client, whose streams fail). Returns the names of the clients whose
   * sessions were closed. Throws `ERR_INVALID_STATE` without the secure
   * channel.
   */
  setAuthorizedKeys(keys: AuthorizedKeys): string[] {
    if (this.#authorized === null) throw Object.assign(new Error('setAuthorizedKeys() needs the secure channel (options.secure)'), { code: 'ERR_INVALID_STATE' })
    if (keys === null || typeof keys !== 'object' || typeof (keys as AuthorizedKeys).get !== 'function') throw Object.assign(new TypeError('keys must be an AuthorizedKeys'), { code: 'ERR_INVALID_ARG_TYPE' })
    this.#authorized = keys
    const closed: string[] = []
    for (const [s, o] of [...this.#owners]) {
      if (o.key === null || keys.get(Buffer.from(o.key, 'base64')) !== null) continue
      closed.push(o.name ?? o.key)
      this.#log.warn(`closing the session of ${o.name ?? '?'} (${o.key}): its key is no longer authorized`)
      s._terminate(GoawayCode.AUTH_FAILED, 'the client key is no longer authorized')
    }
    return closed
  }

  /** Secure channel: the name of an authorized client key, or `null`. */
  readonly #authorize = (key: Buffer): string | null => this.#authorized?.get(key) ?? null

  #registryFor(): SessionRegistry {
    if (this.#registry !== null) return this.#registry
    // The secure channel: a full DATA frame is one record (unless the session options set a frame size).
    const frames = this.#security.key === null ? { maxFrameSize: TUNNEL_FRAME_SIZE } : {}
    const auth = this.#security.key !== null ? { auth: { key: this.#security.key } } : {}
    const placement = this.#opts.routing ? { placement: this.#opts.routing.placement } : {}
    const registry = new SessionRegistry({ resumption: {}, maxStreams: TUNNEL_MAX_STREAMS, ...frames, ...this.#opts.session, acceptDelay: Infinity, ...auth, ...placement })
    const from = (d: unknown) => (d as net.Socket).remoteAddress ?? '?'
    registry.on('session', (s) => this.#onSession(s, from(s.duplex), registry.identity(s)))
    registry.on('resumed', (s) => this.#log.info(`session${this.#who(s)} resumed from ${from(s.duplex)}`))
    registry.on('authenticated', (duplex) => this.#guard.authenticated(duplex))
    registry.on('failed', ({ why, duplex }) => {
      // Clear-text mode: a secure-channel client (its first byte is message 1's type) is not synmux here; say which.
      const secureClient = this.#security.mode === 'plaintext' && this.#firstBytes.get(duplex) === MESSAGE1_TYPE
      this.#guard.failed(duplex, from(duplex), secureClient ? 'a secure-channel client: this server runs --insecure-plaintext' : why)
    })
    this.#registry = registry
    return registry
  }

  /** ` of <name>` for a session of an authorized key ('' otherwise). */
  #who(s: Session): string {
    const o = this.#owners.get(s)
    return o?.name ? ` of ${o.name}` : ''
  }

  #onTransport(socket: net.Socket): void {
    if (socket.destroyed) return
    socket.on('error', () => {})
    this.#guard.link(socket)
    const registry = this.#registryFor()
    if (this.#security.mode === 'plaintext') socket.prependOnceListener('data', (d: Buffer) => this.#firstBytes.set(socket, d[0]!))
    if (this.#security.mode !== 'secure') return registry.accept(socket)
    this.#secureTransport(socket, registry)
  }

  /**
   * The secure channel over an accepted connection: its first flight is
   * authenticated and authorized before anything reads the session HELLO
   * (and the first OPENs) it carries; a flight that fails gets no byte in
   * reply (PROTOCOL.md 20.9) and counts against its source.
   */
  #secureTransport(socket: net.Socket, registry: SessionRegistry): void {
    const source = socket.remoteAddress ?? '?'
    const sec = this.#security.secure!
    let firstByte: number | undefined
    socket.prependOnceListener('data', (d: Buffer) => (firstByte = d[0]))
    // Routing (--workers, --instance-id): a first flight may be handed to the process that holds its session.
    const routing = this.#opts.routing
    let handOn: ((head: Buffer) => void) | null = null
    const route = routing
      ? {
          divert: (f: { data: Buffer }) => (handOn = routing.divert(f.data, socket)) !== null,
          ...(routing.acceptEarlyData ? { acceptEarlyData: (f: { data: Buffer }) => routing.acceptEarlyData!(f.data) } : {}),
        }
      : {}
    const ch = secure(socket, {
      role: 'server',
      staticKey: sec.staticKey,
      authorize: this.#authorize,
      replayGuard: this.#replayGuard!,
      handshakeTimeout: this.#opts.session?.handshakeTimeout ?? DEFAULTS.handshakeTimeout,
      maxRecordSize: sec.maxRecordSize ?? TUNNEL_RECORD_SIZE,
      onAuthFailure: sec.onAuthFailure ?? 'drain',
      ...(sec.psk !== undefined ? { psk: sec.psk } : {}),
      ...(sec.rekeyInterval !== undefined ? { rekeyInterval: sec.rekeyInterval } : {}),
      ...route,
    })
    this.#guard.link(ch, socket)
    ch.once('diverted', (head: Buffer) => {
      // No longer ours to time or count: the process it goes to admits it again.
      this.#guard.authenticated(socket)
      handOn!(head)
    })
    ch.once('secure', (info) => {
      const who = `${source}${info.peerName ? ` (${info.peerName})` : ''}`
      // A rejected first flight is not an error (its data follows as records), but a replay or a client clock far off is worth a line.
      if (info.earlyData === 'rejected') this.#log.info(`first flight from ${who}: 0-RTT rejected (${info.earlyDataRejectReason}); its data follows as records`)
      else this.#log.debug(`first flight from ${who}: 0-RTT ${info.earlyData}`)
    })
    ch.on('refused', (r) => this.#guard.failed(socket, source, `secure channel: ${refusalText(r, firstByte)}`, (sec.onAuthFailure ?? 'drain') === 'drain'))
    ch.on('error', (err: Error) => {
      // After the handshake: a record that fails (tampered, truncated, replayed) ends the transport; the session resumes on a new one.
      if (ch.secured) this.#log.info(`secure channel from ${source}${ch.peerName ? ` (${ch.peerName})` : ''} closed: ${(err as { code?: string }).code ?? ''} ${err.message}`)
    })
    registry.accept(ch)
  }

  #onSession(session: Session, source: string, key: string | null): void {
    let handshook = false
    this.#sessions.add(session)
    const name = key !== null ? this.#authorize(Buffer.from(key, 'base64')) : null
    const owner: Owner = { key, name, source, bytesUp: 0, bytesDown: 0 }
    this.#owners.set(session, owner)
    const who = name !== null ? ` (${name})` : ''
    session.once('handshake', () => {
      handshook = true
      this.#log.info(`session from ${source}${who} established`, { session: sessionTag(session) })
      this.emit('session', session)
      // A session that completed its handshake while the server drains: it gets its GOAWAY at once.
      if (this.#closing) void session.close()
    })
    session.on('error', () => {})
    // OPENs the session refuses by itself (its limits): each one is logged.
    session.on('refused', ({ streamId, code, reason, target }) => {
      this.#stats.refused++
      bump(this.#stats.refusedBy, refuseName(code))
      const limit =
        code === RefuseCode.TOO_MANY_STREAMS ? ` (${session.opts.maxStreams} per session, --max-streams)` : code === RefuseCode.TOO_MANY_PENDING ? ` (${session.opts.maxPendingOpens} per session)` : code === RefuseCode.BUSY ? ` (${session.opts.maxSessionBuffer} bytes buffered)` : ''
      this.#log.info(`refused stream ${streamId}${target ? ` to ${targetText(target)}` : ''} from ${source}: ${reason}${limit}`, { session: sessionTag(session), stream: streamId, target: target ? targetText(target) : undefined })
    })
    session.once('close', (err) => {
      this.#sessions.delete(session)
      this.#owners.delete(session)
      // (a failure before the handshake is counted and logged by the guard)
      if (handshook) this.#log.info(`session from ${source}${who} closed${err ? `: ${err.code}` : ''}`, { session: sessionTag(session) })
    })
    // At most maxConnectsPerSession onward connects run at once; the rest
    // wait unanswered (the session's maxPendingOpens bounds how many). A
    // slot is released when the connect completes or fails, not when the
    // relay ends.
    const slots = new ConnectSlots(this.#opts.maxConnectsPerSession ?? 64)
    session.on('stream', (stream, { target }) => {
      const started = performance.now()
      this.#streams.add(stream)
      stream.once('close', () => this.#streams.delete(stream))
      // The server owns the stream from its first moment: whatever phase it
      // is in (waiting for a slot, resolving, connecting, relaying), a reset
      // from the peer or the failure of its session destroys it with an
      // error, and that must never be an unhandled 'error' that ends the
      // process. Each phase then only checks `stream.destroyed`.
      stream.on('error', (err: Error) => this.#log.debug(`stream ${stream.id}${target ? ` to ${targetText(target)}` : ''}: ${err.message}`))
      if (!target) return stream.refuse(RefuseCode.BAD_TARGET, 'a target is required')
      if (isGatewayTarget(target)) {
        if (this.#gateway) return this.#gateway.handle(stream)
        return this.#refuse(stream, target, RefuseCode.NOT_ALLOWED, 'the HTTP gateway is off', session)
      }
      void slots
        .run(stream, async () => {
          this.#stats.connectsInProgress++
          try {
            return await this.#connect(stream, target, session)
          } finally {
            this.#stats.connectsInProgress--
          }
        })
        .then((c) => c && this.#relay(stream, c.onward, c.first, session, target, started, owner))
        .catch((err: Error) => {
          // A bug in one stream's handling must cost that stream, not the process.
          this.#log.error(`stream ${stream.id} to ${targetText(target)}: ${err.stack ?? err.message}`)
          stream.destroy()
        })
    })
  }

  #refuse(stream: MuxStream, target: DecodedTarget, code: number, why: string, session: Session): void {
    this.#stats.refused++
    bump(this.#stats.refusedBy, refuseName(code))
    this.#log.info(`refused ${targetText(target)}: ${why}`, { session: sessionTag(session), stream: stream.id, target: targetText(target), code: refuseName(code) })
    if (stream.pending) stream.refuse(code, why)
  }

  /** Resolves the target and keeps only the addresses the allow list permits. */
  async #allowedAddresses(target: DecodedTarget): Promise<{ address: string; family: number }[]> {
    if (target.kind !== 'hostname') {
      return this.allow.match({ host: target.host, port: target.port, address: target.host }) ? [{ address: target.host, family: target.kind === 'ipv6' ? 6 : 4 }] : []
    }
    if (!this.allow.mayAllowName(target.host, target.port)) return []
    const lookup = this.#opts.lookup ?? dns.lookup
    const all = await new Promise<dns.LookupAddress[]>((resolve, reject) =>
      lookup(target.host, { all: true }, (err, addrs) => (err ? reject(err) : resolve(addrs as dns.LookupAddress[]))),
    )
    return all.filter((a) => this.allow.match({ host: target.host, port: target.port, address: a.address }))
  }

  /** Resolves, checks and connects onward (the part that holds a connect slot); `null` if refused or abandoned. */
  async #connect(stream: MuxStream, target: DecodedTarget, session: Session): Promise<{ onward: FastOpenSocket; first: Buffer } | null> {
    let addresses: { address: string; family: number }[]
    try {
      addresses = await this.#allowedAddresses(target)
    } catch (err) {
      this.#refuse(stream, target, refuseCodeFor(err as NodeJS.ErrnoException), (err as Error).message, session)
      return null
    }
    if (addresses.length === 0) {
      this.#refuse(stream, target, RefuseCode.NOT_ALLOWED, 'not in the allow list', session)
      return null
    }
    if (stream.destroyed) return null
    // The OPEN's bytes (and any DATA that followed) go in the onward SYN.
    const chunks: Buffer[] = []
    for (let c: Buffer | null; (c = stream.read()) !== null; ) chunks.push(c)
    const first = Buffer.concat(chunks)
    // A stream that closes (reset, or its session gone) abandons its connect: the slot and the fd are freed at once.
    const abandon = new AbortController()
    const onClose = (): void => abandon.abort()
    stream.once('close', onClose)
    let onward: FastOpenSocket
    try {
      onward = await connectWithData(
        {
          host: target.host,
          port: target.port,
          noDelay: true,
          allowHalfOpen: true,
          timeout: this.#opts.connectTimeout ?? 10_000,
          signal: abandon.signal,
          lookup: ((_h: string, _o: unknown, cb: (e: null, a: typeof addresses) => void) => cb(null, addresses)) as never,
        },
        first,
      )
    } catch (err) {
      if (!stream.destroyed) this.#refuse(stream, target, refuseCodeFor(err as NodeJS.ErrnoException), (err as NodeJS.ErrnoException).code ?? (err as Error).message, session)
      return null
    } finally {
      stream.off('close', onClose)
    }
    onward.setTimeout(0)
    if (stream.destroyed) {
      onward.destroy()
      return null
    }
    this.#stats.connects++
    if (first.length > 0 && onward.fastOpen.attempted) this.#stats.tfo.attempted++
    if (onward.fastOpen.accepted === true) this.#stats.tfo.accepted++
    this.#log.debug(`connected ${targetText(target)} (${first.length} bytes in ${onward.fastOpen.accepted ? 'the SYN' : `the stream, ${onward.fastOpen.reason ?? ''}`})`, {
      session: sessionTag(session),
      stream: stream.id,
      target: targetText(target),
      tfo: onward.fastOpen.accepted === true,
    })
    return { onward, first }
  }

  /** Answers OPENED (with the target's first bytes if they come quickly) and relays until both sides are done. */
  async #relay(stream: MuxStream, onward: FastOpenSocket, first: Buffer, session: Session, target: DecodedTarget, started: number, owner: Owner): Promise<void> {
    if (stream.destroyed) {
      onward.destroy()
      return
    }
    const wait = this.#opts.firstResponseWait ?? 10
    const timer = setTimeout(() => stream.pending && stream.accept(), wait)
    onward.once('data', () => clearTimeout(timer))
    onward.once('close', () => clearTimeout(timer))
    const live = { first: first.length, counts: { up: 0, down: 0, reason: '' } }
    this.#relays.add(live)
    // (the relay's socket is the target: its `up` is from the target, its `down` toward it)
    const counts = await relay(stream, onward, live.counts, 'target').finally(() => this.#relays.delete(live))
    const up = first.length + counts.down
    this.#stats.bytesUp += up
    this.#stats.bytesDown += counts.up
    owner.bytesUp += up
    owner.bytesDown += counts.up
    this.#log.debug(`closed ${targetText(target)}`, {
      session: sessionTag(session),
      stream: stream.id,
      target: targetText(target),
      up,
      down: counts.up,
      ms: Math.round(performance.now() - started),
      reason: counts.reason,
    })
  }
}
