/**
 * The tunnel server: accepts authenticated mux sessions on a TFO listener
 * — over the secure channel (PROTOCOL.md 20) by default — and, for each
 * stream, connects onward to the stream's target — if the allow list
 * permits it — carrying the OPEN's bytes in the onward SYN, and answers
 * OPENED with the target's first response bytes.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import { invalidState } from '../common/errors.js'
import { LineBudget } from '../common/log-budget.js'
import { silentLogger, type Logger } from '../common/log.js'
import { SessionRegistry } from '../mux/registry/registry.js'
import type { Session } from '../mux/session/session.js'
import type { MuxStream } from '../mux/stream/stream.js'
import { DEFAULTS, GoawayCode, RefuseCode, ResetCode } from '../mux/wire/constants.js'
import type { AuthorizedKeys } from '../secure/keys.js'
import { MESSAGE1_TYPE } from '../secure/payload.js'
import { ReplayGuard, type ReplayChecker } from '../secure/replay.js'
import { secure } from '../secure/secure.js'
import { IPV6_SOURCE_PREFIX, sourceOf } from '../net/address.js'
import { enableFastOpen } from '../tfo/server.js'
import { AllowList } from './allow.js'
import { listenError } from './errors.js'
import { bump, Forwarder, sessionTag, targetText, type Owner } from './forwarder.js'
import { getDefaultGateway, isGatewayTarget, type StreamGateway } from './gateway.js'
import { HandshakeGuard } from './handshakes.js'
import { FailureLimiter } from './ratelimit.js'
import { refusalText, serverSecurity, TUNNEL_FRAME_SIZE, TUNNEL_RECORD_SIZE, type Security, type TunnelServerSecureOptions } from './security.js'
import { TUNNEL_MAX_STREAMS, type TunnelClientInfo, type TunnelServerOptions, type TunnelServerStats } from './server-options.js'

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
  /** Lines about refused streams: 20 per session per 10 s, then counted only (README, "Logs"). */
  readonly #refusalLines = new LineBudget(20, 10_000)
  readonly #server: net.Server
  readonly #sessions = new Set<Session>()
  /** Resumption: RESUME HELLOs find their session here (sessions outlive their connection). */
  #registry: SessionRegistry | null = null
  readonly #gateway: StreamGateway | null
  /** Each stream's onward connect and relay. */
  readonly #forwarder: Forwarder
  readonly #stats = {
    handshakeFailures: 0,
    handshakeFailuresBy: {} as Record<string, number>,
    handshakeRefusals: 0,
  }
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
    const v6Prefix = options.ipv6SourcePrefix ?? IPV6_SOURCE_PREFIX
    if (typeof v6Prefix !== 'number' || !Number.isInteger(v6Prefix) || v6Prefix < 1 || v6Prefix > 128) {
      throw Object.assign(new RangeError('options.ipv6SourcePrefix must be an integer from 1 to 128'), { code: 'ERR_OUT_OF_RANGE' })
    }
    this.#guard = new HandshakeGuard({
      sourceOf: (address) => sourceOf(address, v6Prefix),
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
    this.#forwarder = new Forwarder({
      allow: () => this.allow,
      lookup: options.lookup,
      maxConnectsPerSession: options.maxConnectsPerSession,
      connectTimeout: options.connectTimeout,
      firstResponseWait: options.firstResponseWait,
      log: this.#log,
      refusalLines: this.#refusalLines,
    })
    // The HTTP gateway is handed in (the tunnel does not import the proxy): options.gateway, or the package's default.
    const gateway = options.httpGateway === false ? null : (options.gateway ?? getDefaultGateway())
    this.#gateway =
      gateway === null ? null : gateway({ ...(typeof options.httpGateway === 'object' ? options.httpGateway : {}), resolve: (t) => this.#forwarder.allowedAddresses(t), logger: this.#log })
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
    if (!(this.#server instanceof tls.Server)) throw invalidState('the server does not use TLS')
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
    const f = this.#forwarder.stats()
    return {
      connectsInProgress: f.connectsInProgress,
      connects: f.connects,
      tfo: f.tfo,
      refused: f.refused,
      refusedBy: f.refusedBy,
      ...this.#stats,
      handshakeFailuresBy: { ...this.#stats.handshakeFailuresBy },
      sessions: this.#sessions.size,
      detached,
      streams,
      resumes: this.#registry?.stats().resumed ?? 0,
      lanes,
      bytesUp: f.bytesUp,
      bytesDown: f.bytesDown,
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
    if (this.#authorized === null) throw invalidState('setAuthorizedKeys() needs the secure channel (options.secure)')
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
      this.#forwarder.countRefusal(code)
      const limit =
        code === RefuseCode.TOO_MANY_STREAMS ? ` (${session.opts.maxStreams} per session, --max-streams)` : code === RefuseCode.TOO_MANY_PENDING ? ` (${session.opts.maxPendingOpens} per session)` : code === RefuseCode.BUSY ? ` (${session.opts.maxSessionBuffer} bytes buffered)` : ''
      const more = this.#refusalLines.take(session)
      if (more !== null) this.#log.info(`refused stream ${streamId}${target ? ` to ${targetText(target)}` : ''} from ${source}: ${reason}${limit}${more}`, { session: sessionTag(session), stream: streamId, target: target ? targetText(target) : undefined })
    })
    session.once('close', (err) => {
      this.#sessions.delete(session)
      this.#owners.delete(session)
      // (a failure before the handshake is counted and logged by the guard)
      const skipped = this.#refusalLines.skipped(session)
      const more = skipped > 0 ? ` (${skipped} more refused streams not logged)` : ''
      if (handshook) this.#log.info(`session from ${source}${who} closed${err ? `: ${err.code}` : ''}${more}`, { session: sessionTag(session) })
    })
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
        return this.#forwarder.refuse(stream, target, RefuseCode.NOT_ALLOWED, 'the HTTP gateway is off', session)
      }
      this.#forwarder.serve(stream, target, session, owner, started)
    })
  }
}
