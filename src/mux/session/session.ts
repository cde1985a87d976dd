/**
 * Session: the multiplexer over one transport (any Node `Duplex`). This
 * is its public face; the work is done by its parts (see core.ts): the
 * handshake, the link to the transport, bytes in, the output scheduler,
 * flow control, the stream table, the timers and the shutdown.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import { GoawayCode, RefuseCode } from '../wire/constants.js'
import type { Hello } from '../wire/hello.js'
import { normalizeTarget } from '../wire/target.js'
import { MuxError, invalidArgType, invalidState } from '../errors.js'
import { SF } from '../stream/flags.js'
import { MuxStream } from '../stream/stream.js'
import { LaneSet } from '../lanes/lane-set.js'
import { AuthState, Life, SessionCore } from './core.js'
import type { SessionDirectory } from './directory.js'
import { Flow } from './flow.js'
import { Handshake } from './handshake.js'
import { Inbound } from './inbound.js'
import { Link } from './link.js'
import { type ResolvedOptions, type SessionOptions, resolveOptions } from './options.js'
import { Outbound } from './outbound.js'
import { ReplayBuffer } from './replay.js'
import { Shutdown } from './shutdown.js'
import { Streams } from './streams.js'
import { Timers } from './timers.js'
import type { OpenOptions, SessionEvents, SessionState, SessionStats } from './types.js'
import type { RedirectAddress } from '../wire/redirect.js'

declare module '../stream/stream.js' {
  interface MuxStream {
    /** The session the stream belongs to. */
    readonly session: Session
  }
}

const STATE_NAMES: SessionState[] = ['handshaking', 'open', 'closing', 'closed']

/**
 * A multiplexed session over one transport.
 *
 * ```js
 * const session = new Session(socket, { role: 'client' })
 * const stream = session.open({ target: { host: 'example.com', port: 80 }, data: 'GET / ...' })
 * stream.on('open', () => console.log('opened in', stream.openedIn, 'ms'))
 * ```
 *
 * The session takes over the transport: it reads it in flowing mode and is
 * the only writer. With a `net.Socket` it disables Nagle (`noDelay`).
 */
export class Session extends EventEmitter<SessionEvents> {
  /** This side's role. */
  readonly role: 'client' | 'server'
  /** @internal */ readonly opts: ResolvedOptions
  readonly #c: SessionCore
  readonly #streams: Streams
  readonly #link: Link

  /**
   * Starts a session over `duplex`. The client sends its HELLO at once (in
   * the same write as the first OPENs of this tick); the server answers the
   * client's HELLO. Throws `ERR_INVALID_ARG_TYPE`/`ERR_INVALID_ARG_VALUE`/
   * `ERR_OUT_OF_RANGE` on bad arguments.
   */
  constructor(duplex: Duplex, options: SessionOptions) {
    super()
    if (typeof duplex !== 'object' || duplex === null || typeof (duplex as Duplex).write !== 'function' || typeof (duplex as Duplex).on !== 'function') {
      throw invalidArgType('duplex', 'a Duplex stream', duplex)
    }
    const opts = resolveOptions(options)
    // A client's resumes and lanes go where the server said the session
    // lives, once it said so (a REDIRECT, PROTOCOL.md 13.10).
    const connect = opts.resumption?.connect
    this.opts = opts.role === 'client' && connect ? { ...opts, resumption: { ...opts.resumption!, connect: () => connect(this.#link?.redirect ?? undefined) } } : opts
    this.role = this.opts.role
    const c = new SessionCore(this, this.opts, duplex)
    this.#c = c
    c.output = new Outbound(c)
    c.flow = new Flow(c)
    c.streams = this.#streams = new Streams(c)
    const timers = (c.timers = new Timers(c))
    c.shutdown = new Shutdown(c)
    c.handshake = new Handshake(c)
    c.link = this.#link = new Link(c)
    c.input = new Inbound(c)
    // A client that will resume keeps its session frames from the first
    // one: those sent before the server's HELLO (the first OPENs, in the
    // first flight) are part of the sequence the server's RECEIVED counts.
    if (this.role === 'client' && this.opts.resumption !== null) c.replay = new ReplayBuffer(this.opts.resumption.replayBuffer)
    this.#link.bind(this.#link.wrap(duplex))
    timers.armHandshake()
    if (duplex.destroyed) {
      process.nextTick(() => c.shutdown.destroy(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport is already destroyed')))
      return
    }
    if (this.role === 'client') {
      c.helloPending()
      c.output.scheduleFlush()
    }
  }

  // -------------------------------------------------------------------------
  // Public API

  /** The transport (the current one for a resumable session). */
  get duplex(): Duplex {
    return this.#c.dx
  }

  /**
   * Client: where a server said this session lives (a REDIRECT,
   * PROTOCOL.md 13.10), `null` until one did. Its resumes and lanes
   * connect there (`resumption.connect(to)`).
   */
  get redirect(): RedirectAddress | null {
    return this.#link.redirect
  }

  /** The 32-byte session id (chosen by the server), or `null` before the handshake. */
  get id(): Buffer | null {
    return this.#c.id
  }

  /** Smoothed round-trip time in ms from PING/PONG and the HELLO exchange (0 until measured). */
  get rtt(): number {
    return this.#c.timers.srtt
  }

  /** Lifecycle state. */
  get state(): SessionState {
    return STATE_NAMES[this.#c.life]!
  }

  /** Whether the session is closed (destroyed). */
  get destroyed(): boolean {
    return this.#c.life === Life.CLOSED
  }

  /** The peer's HELLO (limits and capabilities it announced), or `null` before the handshake. */
  get peerHello(): Hello | null {
    return this.#c.peer
  }

  /** Number of open streams. */
  get streamCount(): number {
    return this.#streams.map.size
  }

  /** Whether PSK authentication (`options.auth`) succeeded with the peer. */
  get authenticated(): boolean {
    return this.#c.authState === AuthState.DONE && this.#c.peer !== null
  }

  /** The error the session failed with, if any. */
  get error(): MuxError | undefined {
    return this.#c.shutdown.error
  }

  /** Whether message streams can be opened (PROTOCOL.md 15): `false` when `maxMessage` is 0 or the peer's HELLO lacks MESSAGES, `null` while the peer's HELLO is still to come. */
  get messages(): boolean | null {
    if (this.opts.maxMessage === 0) return false
    return this.#c.peer === null ? null : this.#c.messagesOn
  }

  /** Largest message the peer accepts (its MAX_MESSAGE), or `null` before its HELLO or without message mode. */
  get peerMaxMessage(): number | null {
    return this.#c.messagesOn ? this.#c.peerMax : null
  }

  /** Counters. */
  stats(): SessionStats {
    const c = this.#c
    const replay = c.replay
    const striped = c.dx instanceof LaneSet && c.dx.striped
    return {
      streams: this.#streams.map.size,
      pendingOpens: this.#streams.pendingCount,
      bufferedBytes: c.flow.budget.bufferedTotal,
      bytesSent: c.bytesSent,
      bytesReceived: c.bytesReceived,
      sessionBytesSent: c.sessionBytesSent,
      sessionBytesReceived: c.sessionBytesReceived,
      peerAcked: c.peerAcked,
      framesSent: c.framesSent,
      framesReceived: c.framesReceived,
      controlQueueBytes: c.output.controlBytes,
      sendQueueBytes: c.flow.sendQueued,
      rtt: c.timers.srtt,
      resumable: c.resumable,
      attached: c.attached,
      resumes: c.resumes,
      replayBytes: replay?.bytes ?? 0,
      replayMax: replay?.maxBytes ?? 0,
      replayLimit: replay?.limit ?? 0,
      replayedBytes: c.replayedBytes,
      duplicateBytes: c.duplicateBytes,
      striped,
      lanes: striped ? (c.dx as LaneSet).lanes() : [],
    }
  }

  /**
   * Striped client session (`lanes` option, PROTOCOL.md 14): adds a lane,
   * over `duplex` or, without it, a transport from `resumption.connect`.
   * Resolves with the lane index once it carries frames; rejects with
   * `SYNMUX_LANE_REFUSED`, `SYNMUX_AUTH_FAILED`, `SYNMUX_HANDSHAKE_TIMEOUT`,
   * or `ERR_INVALID_STATE` when striping is not in effect.
   */
  addLane(duplex?: Duplex): Promise<number> {
    if (duplex !== undefined && (typeof duplex !== 'object' || duplex === null || typeof (duplex as Duplex).write !== 'function')) throw invalidArgType('duplex', 'a Duplex stream', duplex)
    const dx = this.#c.dx
    if (!(dx instanceof LaneSet)) return Promise.reject(invalidState('striping is not in effect on this session (lanes option, and a server that allows lanes)'))
    return dx.join(duplex)
  }

  /**
   * Striped session: takes lane `index` out of service gracefully (frames it
   * carries are confirmed or sent again on the others). Returns false if
   * there is no such open lane or it is the last one.
   */
  removeLane(index: number): boolean {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw invalidArgType('index', 'a lane index (integer >= 0)', index)
    const dx = this.#c.dx
    return dx instanceof LaneSet ? dx.remove(index) : false
  }

  /**
   * Opens a stream and returns it at once. The OPEN frame (with `target`,
   * `data` and everything written to the stream during this tick, up to
   * the credit) leaves at the end of the tick; the stream emits `'open'`
   * when OPENED arrives, or `'error'` (`SYNMUX_REFUSED`, ...) if refused.
   * Throws `ERR_INVALID_ARG_TYPE`/`ERR_INVALID_ARG_VALUE`/`ERR_OUT_OF_RANGE`
   * on bad options; session-level failures (closed session, too many
   * streams) are reported as an `'error'` on the returned stream.
   *
   * With `messages: true` (a message stream, see {@link MuxStream}), throws
   * a `MuxError` with `code` `SYNMUX_MESSAGES_UNSUPPORTED` if message mode
   * is off here (`maxMessage: 0`) or the peer's HELLO showed it does not
   * offer it, and a `RangeError` with `code` `SYNMUX_MESSAGE_TOO_LARGE` if
   * `data` is larger than the peer's MAX_MESSAGE. Before the peer's HELLO
   * (a client's first flight) the stream is opened optimistically, in
   * 1 RTT; a peer without message mode then fails the session.
   */
  open(options: OpenOptions = {}): MuxStream {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
    const target = options.target == null ? null : normalizeTarget(options.target)
    const data = options.data
    if (data !== undefined && typeof data !== 'string' && !(data instanceof Uint8Array)) {
      throw invalidArgType('options.data', 'a string, Buffer or Uint8Array', data)
    }
    if (options.end !== undefined && typeof options.end !== 'boolean') throw invalidArgType('options.end', 'of type boolean', options.end)
    if (options.messages !== undefined && typeof options.messages !== 'boolean') throw invalidArgType('options.messages', 'of type boolean', options.messages)
    const c = this.#c
    const streams = this.#streams
    const messages = options.messages === true
    if (messages) {
      if (this.messages === false) {
        throw new MuxError('SYNMUX_MESSAGES_UNSUPPORTED', this.opts.maxMessage === 0 ? 'message mode is off on this session (maxMessage: 0)' : 'the peer does not offer message mode (no MESSAGES in its HELLO)')
      }
      if (data !== undefined) streams.checkMessage(typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength)
    }
    const now = performance.now()
    let err: MuxError | null = null
    if (c.life === Life.CLOSED || c.shutdown.goawaySent) {
      err = new MuxError('SYNMUX_SESSION_CLOSED', 'the session is closed')
    } else if (c.shutdown.goawayReceived || c.life === Life.CLOSING) {
      err = new MuxError('SYNMUX_REFUSED', 'the peer is going away (GOAWAY)', { wireCode: RefuseCode.GOING_AWAY })
    } else if (c.peer !== null && streams.ownCount >= c.peer.maxStreams) {
      err = new MuxError('SYNMUX_TOO_MANY_STREAMS', `the peer accepts at most ${c.peer.maxStreams} streams`)
    } else if (streams.exhausted) {
      err = new MuxError('SYNMUX_STREAM_IDS_EXHAUSTED', 'no stream id left in this session')
      c.shutdown.closeWith(GoawayCode.STREAM_IDS_EXHAUSTED, 'stream ids exhausted')
    }
    const id = err ? 0 : streams.nextId
    const s = new MuxStream(streams, this, id, 'local', target, this.opts.initialWindow, now, this.opts.streamHighWaterMark, messages)
    if (err) {
      s.f |= SF.DETACHED
      const e = err
      process.nextTick(() => s.destroy(e))
      return s
    }
    streams.addLocal(s)
    c.output.queueOpen(s)
    if (data !== undefined && (data.length > 0 || messages)) s.write(data)
    if (options.end) s.end()
    return s
  }

  /**
   * Measures the RTT with a PING; resolves with the sample in ms. Rejects
   * with `SYNMUX_SESSION_CLOSED` if the session closes first.
   */
  ping(): Promise<number> {
    if (this.#c.life === Life.CLOSED) return Promise.reject(new MuxError('SYNMUX_SESSION_CLOSED', 'the session is closed'))
    return new Promise((resolve, reject) => this.#c.timers.sendPing(resolve, reject))
  }

  /**
   * Graceful shutdown: sends GOAWAY(NORMAL), accepts no new stream, lets
   * existing streams finish, then ends the transport. Resolves when the
   * session is closed (never rejects).
   */
  close(): Promise<void> {
    this.#c.shutdown.closeWith(GoawayCode.NORMAL, '')
    return this.closed()
  }

  /** Resolves when the session is closed (never rejects). */
  closed(): Promise<void> {
    return this.#c.shutdown.closed()
  }

  /**
   * Abrupt shutdown: destroys every stream (with `err` if given, so they
   * emit it as `'error'`; without, they just close) and the transport.
   * No GOAWAY.
   */
  destroy(err?: MuxError): void {
    this.#c.shutdown.destroy(err)
  }

  // -------------------------------------------------------------------------
  // Resumption (PROTOCOL.md 13)

  /**
   * Client, resumable session: resumes the session over `duplex`, a new
   * transport to the same server (normally done by itself through
   * `resumption.connect`). If a transport is attached it is dropped first.
   * Throws `ERR_INVALID_STATE` if the session is not resumable or closed.
   */
  resume(duplex: Duplex): void {
    this.#link.resume(duplex)
  }

  /**
   * Resumable session: drops the current transport as if it had died (a
   * client then reconnects and resumes; a server waits for the client).
   * Used by pools to replace a connection that looks dead or slow. Returns
   * false if the session is not resumable or has no transport.
   */
  reconnect(reason = 'reconnect requested'): boolean {
    return this.#link.reconnect(reason)
  }

  // -------------------------------------------------------------------------
  // What the registry and the tunnel server use

  /** @internal Registry: attach this server session to its registry (before the client's HELLO is fed). */
  _setRegistry(directory: SessionDirectory<Session>, refuseResume: number): void {
    this.#c.directory = directory
    this.#c.refuseResume = refuseResume
  }

  /**
   * @internal Ends the session at once: `GOAWAY(code, reason)` to the peer
   * if a transport is attached, every stream failed (`SYNMUX_SESSION_CLOSED`).
   * Used by a server that withdraws a client's key.
   */
  _terminate(code: number, reason: string): void {
    this.#c.shutdown.fail(new MuxError('SYNMUX_SESSION_CLOSED', reason, { wireCode: code, reason }))
  }

  /** @internal Registry: feeds bytes read from the transport before the session took it over. */
  _input(buf: Buffer): void {
    if (buf.length > 0) this.#c.input.onData(buf)
  }

  /** @internal Registry: whether a client that received `n` session bytes can be resumed from our replay buffer. */
  _canReplayFrom(n: number): boolean {
    const c = this.#c
    return c.resumable && c.replay !== null && c.life !== Life.CLOSED && n >= c.replay.start && n <= c.sessionBytesSent
  }

  /** @internal Registry: session bytes received so far (the R of a resume). */
  get _received(): number {
    return this.#c.sessionBytesReceived
  }

  /** @internal Registry: EARLY_REPLAY is in effect (a RESUME may carry REPLAY_FROM, PROTOCOL.md 13.9). */
  get _earlyReplay(): boolean {
    return this.#c.earlyReplay
  }

  /**
   * @internal Server: the registry answered a RESUME for this session on
   * `d` with `ownHello` (and, with AUTH_PSK, checked the client's AUTH):
   * the session moves onto `d` (closing the old transport if it is still
   * open) and replays from the client's RECEIVED `received`. `ack`: our
   * received count goes first, in an ACK (with AUTH_PSK it is not in the
   * RESUMED HELLO, PROTOCOL.md 13.4). `leftover`: bytes read after the
   * client's HELLO (or AUTH).
   */
  _resumeOn(d: Duplex, peerRaw: Buffer, ownHello: Buffer, leftover: Buffer, received: number, ack: boolean, skip = 0): void {
    this.#link.resumeOn(d, peerRaw, ownHello, leftover, received, ack, skip)
  }
}
