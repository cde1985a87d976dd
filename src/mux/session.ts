/**
 * Session: the multiplexer's state machine over one transport (any Node
 * `Duplex`). States: handshaking → open → closing → closed.
 *
 * Input: transport chunks → HELLO parser → {@link FrameDecoder} → one
 * handler per frame type. Output: everything is queued and written once per
 * tick by {@link Session.flush}: HELLO, control frames, WINDOWs, OPEN/OPENED
 * in id order, then DATA round-robin across streams, one frame per stream
 * per turn, batched into one `writev`.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import {
  Capability,
  DEFAULTS,
  FRAME_HEADER_SIZE,
  FrameFlag,
  FrameType,
  GoawayCode,
  HelloExtension,
  HelloKind,
  MAX_STREAM_ID,
  MAX_WINDOW,
  MIN_INITIAL_WINDOW,
  MIN_MAX_FRAME_SIZE,
  MIN_MAX_MESSAGE,
  RefuseCode,
  ResumeRefused,
  SESSION_ID_SIZE,
  isGracefulGoaway,
} from './constants.js'
import {
  type AckFrame,
  type DataFrame,
  type Frame,
  type GoawayFrame,
  type Hello,
  type OpenFrame,
  type OpenedFrame,
  type PongFrame,
  type RefusedFrame,
  type RstFrame,
  type WindowFrame,
  FrameDecoder,
  decodeHello,
  encodeFrame,
  encodeHello,
  frameTypeName,
} from './codec.js'
import { MuxError, ProtocolError, invalidArgType, invalidState } from './errors.js'
import { AUTH_HOLD_LIMIT, AUTH_SIZE, clientProof, newNonce, proofMatches, serverProof } from './auth.js'
import { type WindowBudget, creditDue, onConsumed } from './flow.js'
import { Head, headMessage, messageTooLarge } from './message.js'
import { type ResolvedOptions, type SessionOptions, resolveOptions } from './options.js'
import { OutputBatch, Queue, Slab } from './scheduler.js'
import { ReplayBuffer } from './replay.js'
import { type LaneInfo, LaneSet, type LaneSetOptions } from './lanes.js'
import type { SessionRegistry } from './registry.js'
import { decodeRedirect, type RedirectAddress } from './redirect.js'
import { MuxStream, SF } from './stream.js'
import { type DecodedTarget, type Target, isPrintableHost, normalizeTarget, targetSize, writeTarget } from './target.js'

/** Options of {@link Session.open}. */
export interface OpenOptions {
  /** Where the stream should lead (carried in OPEN); default none. */
  target?: Target | null
  /** First bytes, sent in the OPEN frame itself. */
  data?: Buffer | Uint8Array | string
  /** Half-close right after `data` (FIN rides in the OPEN). Default false. */
  end?: boolean
  /**
   * Open a message stream (PROTOCOL.md 15): each write is one message and
   * arrives whole as one `'message'` (see {@link MuxStream}); `data`, if
   * given, is the first message (it rides in the OPEN). Default false.
   */
  messages?: boolean
}

/** Second argument of the `'stream'` event. */
export interface StreamInfo {
  /** The target the opener named, or `null`. */
  target: DecodedTarget | null
  /** Whether the opener made it a message stream (`stream.messages`). */
  messages: boolean
}

/** Argument of the `'refused'` event: a peer's OPEN the session refused itself. */
export interface RefusedOpenInfo {
  /** The stream id of the OPEN. */
  streamId: number
  /** The REFUSED code sent (`RefuseCode`: TOO_MANY_STREAMS, TOO_MANY_PENDING, BUSY, ...). */
  code: number
  /** The reason sent with it. */
  reason: string
  /** The target the opener named, or `null`. */
  target: DecodedTarget | null
}

/** Argument of the `'goaway'` event. */
export interface GoawayInfo {
  /** GOAWAY code (`GoawayCode`). */
  code: number
  /** Highest stream id of ours the peer processed. */
  lastStreamId: number
  /** The peer's reason text. */
  reason: string
}

/** Lifecycle state of a {@link Session}. */
export type SessionState = 'handshaking' | 'open' | 'closing' | 'closed'

/** Counters of a {@link Session} (see {@link Session.stats}). */
export interface SessionStats {
  /** Open streams (both directions). */
  streams: number
  /** Peer-opened streams the application has not answered. */
  pendingOpens: number
  /** Bytes received and not yet read by the application, all streams. */
  bufferedBytes: number
  /** Transport bytes written / read. */
  bytesSent: number
  bytesReceived: number
  /** Session sequence (PROTOCOL.md 7): session-frame bytes sent / received. */
  sessionBytesSent: number
  sessionBytesReceived: number
  /** Highest ACK received from the peer. */
  peerAcked: number
  /** Frames written / read. */
  framesSent: number
  framesReceived: number
  /** Bytes of control frames owed to the peer and not yet written. */
  controlQueueBytes: number
  /** Bytes the streams have queued to send (framed as credit and the transport allow); within `maxSessionBuffer` plus one write per stream. */
  sendQueueBytes: number
  /** Smoothed RTT in ms (0 until measured). */
  rtt: number
  /** Resumption (PROTOCOL.md 13) is in effect. */
  resumable: boolean
  /** A transport is attached (false while a resumable session waits for a new one). */
  attached: boolean
  /** Times the session moved to a new transport. */
  resumes: number
  /** Sent session bytes the peer has not acknowledged, held for replay. */
  replayBytes: number
  /** Highest `replayBytes` ever (never above `replayLimit`). */
  replayMax: number
  /** The replay buffer limit (0 when not resumable). */
  replayLimit: number
  /** Session bytes sent again from the replay buffer after resumes. */
  replayedBytes: number
  /** Duplicate session bytes dropped on arrival (replays that crossed). */
  duplicateBytes: number
  /** Striping (PROTOCOL.md 14) is in effect on the current transport. */
  striped: boolean
  /** The lanes of a striped session (lane 0 first); empty when not striped. */
  lanes: LaneInfo[]
}

/** Events of a {@link Session}. */
export interface SessionEvents {
  /** A peer-opened stream; answer with accept()/write()/refuse(). */
  stream: [stream: MuxStream, info: StreamInfo]
  /** A peer's OPEN the session refused by itself, before any `'stream'` (a limit: max streams, max pending opens, the session buffer; a bad target; going away). */
  refused: [info: RefusedOpenInfo]
  /** The peer's HELLO arrived; `session.id` is set. */
  handshake: []
  /** The peer sent GOAWAY. */
  goaway: [info: GoawayInfo]
  /** The session failed (only emitted when a listener exists; always passed to `'close'`). */
  error: [err: MuxError]
  /** The session is closed; `err` if it failed. */
  close: [err?: MuxError]
  /** Resumable session: the transport was lost; streams are paused, not failed. */
  detached: [err: MuxError]
  /** Resumable session: it runs on a new transport; what was lost has been replayed. */
  resumed: []
  /** Client: a server said the session lives at `to` (REDIRECT, PROTOCOL.md 13.10); its resumes and lanes go there. */
  redirect: [to: RedirectAddress]
  /** Striped session: a lane joined, is leaving or is gone (`err`: why it died or could not join). */
  lane: [info: LaneInfo, err?: MuxError]
  /** An RTT sample in ms (a PING answered; emitted only while someone listens). */
  rtt: [ms: number]
}

const enum State {
  HANDSHAKING = 0,
  OPEN = 1,
  CLOSING = 2,
  CLOSED = 3,
}
const STATE_NAMES: SessionState[] = ['handshaking', 'open', 'closing', 'closed']

const REFUSE_REASONS: Record<number, string> = {
  [RefuseCode.REFUSED]: 'refused',
  [RefuseCode.NO_LISTENER]: 'no stream listener',
  [RefuseCode.TOO_MANY_STREAMS]: 'too many streams',
  [RefuseCode.TOO_MANY_PENDING]: 'too many pending opens',
  [RefuseCode.BUSY]: 'session buffer full',
  [RefuseCode.TARGET_TOO_LONG]: 'target too long',
  [RefuseCode.BAD_TARGET]: 'bad target',
  [RefuseCode.NOT_ALLOWED]: 'target not allowed',
  [RefuseCode.UNREACHABLE]: 'target unreachable',
  [RefuseCode.CONNECTION_REFUSED]: 'connection refused',
  [RefuseCode.TIMEOUT]: 'timeout',
  [RefuseCode.GOING_AWAY]: 'going away',
}

const ZERO_ID = Buffer.alloc(SESSION_ID_SIZE)
/** REDIRECTs a client follows in a row (without a resume between them) before it takes the session for lost. */
const MAX_REDIRECTS = 4
/** A resumable session's flush of session frames carries an ACK of new data at most this often (ms). */
const ACK_PIGGYBACK_MS = 10
/** Session frames are emitted only while the replay buffer has this much room (a target plus some data). */
const MIN_ROOM = 1024

/** @internal Options of the LaneSet of a session with options `o` (hooks are set when the session binds it). */
export function laneSetOptions(o: ResolvedOptions, extra: Partial<LaneSetOptions> = {}): LaneSetOptions {
  return {
    role: o.role,
    key: o.auth?.key ?? null,
    maxFrameSize: o.maxFrameSize,
    lanes: o.lanes,
    maxLanes: o.maxLanes,
    connect: o.resumption?.connect ?? null,
    handshakeTimeout: o.handshakeTimeout,
    ...extra,
  }
}

/** @internal */
export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n >>> 0, 0)
  return b
}
/** @internal */
export function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0)
  b.writeUInt32BE(n >>> 0, 4)
  return b
}
function readU64Ext(h: Hello, type: number): number | null {
  const v = h.extensions.get(type)
  if (v === undefined || v.length !== 8) return null
  const n = v.readUInt32BE(0) * 0x1_0000_0000 + v.readUInt32BE(4)
  return n > Number.MAX_SAFE_INTEGER ? null : n
}
function readU32Ext(h: Hello, type: number): number | null {
  const v = h.extensions.get(type)
  return v === undefined || v.length !== 4 ? null : v.readUInt32BE(0)
}
/** The `SYNMUX_SESSION_LOST` error for a RESUME_REFUSED reason (or a local reason). @internal */
export function sessionLost(reason: number | string, detail?: string): MuxError {
  const names: Record<number, string> = { 1: 'unknown session id', 2: 'session expired', 3: 'replay out of range', 4: 'resumption not supported' }
  const text = typeof reason === 'number' ? names[reason] ?? `reason ${reason}` : reason
  return new MuxError('SYNMUX_SESSION_LOST', `the session could not be resumed: ${text}${detail ? ` (${detail})` : ''}`, typeof reason === 'number' ? { wireCode: reason, reason: text } : { reason: text })
}
const LINGER_MS = 5000

function protocolError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_PROTOCOL_ERROR', message, GoawayCode.PROTOCOL_ERROR)
}
function flowError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_FLOW_CONTROL_ERROR', message, GoawayCode.FLOW_CONTROL_ERROR)
}
function handshakeError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_HANDSHAKE_FAILED', message, GoawayCode.HANDSHAKE_FAILED)
}
function authError(message: string): MuxError {
  return new MuxError('SYNMUX_AUTH_FAILED', `authentication failed: ${message}`, { wireCode: GoawayCode.AUTH_FAILED })
}

function flushTick(session: Session): void {
  session._flush()
}
/**
 * The first flush of a tick goes to the back of the nextTick queue once, so
 * that work other nextTick callbacks queue meanwhile (a pipe's end(), a
 * stream's 'end' handler) still rides in the same write.
 */
function flushHop(session: Session): void {
  process.nextTick(flushTick, session)
}
function readCheck(session: Session, s: MuxStream): void {
  s.f &= ~SF.READ_CHECK
  session._checkConsumed(s)
}
function emitOpen(s: MuxStream): void {
  if (!s.destroyed) s.emit('open')
}

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
  private dx: Duplex

  private st: State = State.HANDSHAKING
  private sessionId: Buffer | null = null
  private peer: Hello | null = null
  private helloBuf: Buffer | null = null
  private helloPending = false
  private helloSent = false
  private helloSentAt = 0
  private decoder: FrameDecoder
  /** No HELLO from the peer yet on the current transport. */
  private helloWait = true
  /** RESUME is in effect (both HELLOs set it). */
  private resumable = false
  private replay: ReplayBuffer | null = null
  /** Replay from this session offset at the next flush (-1: nothing to replay). */
  private replayFrom = -1
  private replayBlocked = false
  /** Duplicate session bytes to drop at the start of a resumed transport. */
  private rxSkip = 0
  private ackEvery: number = DEFAULTS.ackEvery
  private attached = true
  /** Client: our RESUME HELLO is out, the answer has not come. */
  private resuming = false
  /** Client, with AUTH_PSK: RESUMED came and our AUTH is out; the server's ACK (where to replay from) or refusal has not. */
  private resumeVerdict = false
  /** EARLY_REPLAY is in effect (both HELLOs set it, no AUTH_PSK): a resuming client replays right after its HELLO (PROTOCOL.md 13.9). */
  private earlyReplay = false
  /** Client, resuming with EARLY_REPLAY: the offset its replay on the new transport starts at (REPLAY_FROM), -1 otherwise. */
  private earlyFrom = -1
  /** When we last sent an ACK (resumable sessions piggyback one on session frames at most this often, see _flush). */
  private lastAckAt = 0
  private resumes = 0
  private replayedBytes = 0
  private duplicateBytes = 0
  private detachedAt = 0
  private reconnectTimer: NodeJS.Timeout | null = null
  private reconnectDelay = 0
  private detachTimer: NodeJS.Timeout | null = null
  private attemptTimer: NodeJS.Timeout | null = null
  /** Server: the registry that finds this session by id. */
  private registry: SessionRegistry | null = null
  /** Client: where the server said the session lives (REDIRECT, PROTOCOL.md 13.10), once it did. */
  private redirectedTo: RedirectAddress | null = null
  /** Client: REDIRECTs followed since the last successful resume. */
  private redirects = 0
  /** Server: why a RESUME/JOIN got NEW (RESUME_REFUSED), 0 if not. */
  private refuseResume = 0
  private readonly streams = new Map<number, MuxStream>()
  private nextStreamId: number
  private highestPeerId = 0
  private ownStreamCount = 0
  private peerStreamCount = 0
  private pendingCount = 0
  private peerInitialWindow = MIN_INITIAL_WINDOW
  private sendFrameSize = MIN_MAX_FRAME_SIZE
  /** MESSAGES is in effect (both HELLOs set it, PROTOCOL.md 15). */
  private messagesOn = false
  /** The peer's MAX_MESSAGE (0 until known, or when MESSAGES is not in effect). */
  private peerMax = 0
  /** @internal */ readonly budget: WindowBudget

  private control: Buffer[] = []
  private controlBytes = 0
  /** Bytes in all streams' send queues; above `sendBudget`, writes wait until it is half that (PROTOCOL.md 6.4). */
  private sendQueued = 0
  private sendFull = false
  /** Scratch of the session frames of a resumable session, shared by its flushes (they are kept for replay). */
  private readonly sessionSlab = new Slab()
  private ackPending = false
  private ackReported = 0
  private readonly windowQueue = new Queue<MuxStream>()
  private readonly openQueue = new Queue<MuxStream>()
  private readonly ring = new Queue<MuxStream>()
  private readonly acceptQueue = new Queue<MuxStream>()
  private flushScheduled = false
  private waitingDrain = false
  private ending = false
  private endCalled = false

  private goawaySent = false
  private goawaySentLast = 0
  private goawayReceived = false
  private goawayRecvLast = 0

  private bytesSent = 0
  private bytesReceived = 0
  private sessionBytesSent = 0
  private sessionBytesReceived = 0
  private peerAcked = 0
  private framesSent = 0
  private framesReceived = 0

  private srtt = 0
  private pingSeq = 0
  private readonly pings = new Map<number, { at: number; resolve: ((rtt: number) => void) | null; reject: ((err: Error) => void) | null }>()
  private rx = false
  private kaTimer: NodeJS.Timeout | null = null
  private handshakeTimer: NodeJS.Timeout | null = null
  private idleTimer: NodeJS.Timeout | null = null
  private acceptTimer: NodeJS.Timeout | null = null
  private closeError: MuxError | undefined
  private closePromise: Promise<void> | null = null
  private closeEmitted = false

  private ownHelloBytes: Buffer | null = null
  private peerHelloBytes: Buffer | null = null
  private nonce: Buffer | null
  private peerNonce: Buffer | null = null
  /** Server: the client's AUTH has not arrived yet; its frames are held. */
  private authPending = false
  /** Our own session frames wait until the peer is authenticated. */
  private authHold: boolean
  private held: Array<[Frame, number]> = []
  private heldBytes = 0

  private readonly onDataBound: (chunk: Buffer | string) => void
  private readonly onFrameBound: (frame: Frame, size: number) => void
  private readonly onDrainBound: () => void
  private readonly onEndBound: () => void
  private readonly onErrorBound: (err: Error) => void
  private readonly onCloseBound: () => void

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
    this.opts = opts.role === 'client' && connect ? { ...opts, resumption: { ...opts.resumption!, connect: () => connect(this.redirectedTo ?? undefined) } } : opts
    this.role = this.opts.role
    this.dx = duplex
    this.nextStreamId = this.role === 'client' ? 1 : 2
    this.decoder = this.newDecoder()
    this.budget = { windowExtra: 0, maxSessionBuffer: this.opts.maxSessionBuffer, bufferedTotal: 0, maxWindow: this.opts.maxWindow }
    this.nonce = this.opts.auth ? newNonce() : null
    this.authHold = this.opts.auth !== null
    // A client that will resume keeps its session frames from the first
    // one: those sent before the server's HELLO (the first OPENs, in the
    // first flight) are part of the sequence the server's RECEIVED counts.
    if (this.role === 'client' && this.opts.resumption !== null) this.replay = new ReplayBuffer(this.opts.resumption.replayBuffer)
    this.onDataBound = (c) => this.onData(c)
    this.onFrameBound = (f, n) => this.onFrame(f, n)
    this.onDrainBound = () => {
      this.waitingDrain = false
      this.scheduleFlush(true)
    }
    this.onEndBound = () => this.onEnd()
    this.onErrorBound = (err) => this.lost(new MuxError('SYNMUX_CONNECTION_LOST', `transport error: ${err.message}`, { cause: err }))
    this.onCloseBound = () => {
      if (this.st !== State.CLOSED) {
        if (this.ending) this.destroy()
        else this.lost(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport closed'))
      }
    }
    this.bindTransport(this.wrap(duplex))
    if (this.opts.handshakeTimeout > 0) {
      this.handshakeTimer = setTimeout(() => {
        this.handshakeTimer = null
        if (this.peer === null || this.authPending) {
          const what = this.peer === null ? 'HELLO' : 'AUTH'
          this.destroy(new MuxError('SYNMUX_HANDSHAKE_TIMEOUT', `no ${what} from the peer within ${this.opts.handshakeTimeout} ms`))
        }
      }, this.opts.handshakeTimeout)
      this.handshakeTimer.unref?.()
    }
    if (duplex.destroyed) {
      process.nextTick(() => this.destroy(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport is already destroyed')))
      return
    }
    if (this.role === 'client') {
      this.helloPending = true
      this.scheduleFlush()
    }
  }

  // -------------------------------------------------------------------------
  // Public API

  /** The transport (the current one for a resumable session). */
  get duplex(): Duplex {
    return this.dx
  }

  /** The 32-byte session id (chosen by the server), or `null` before the handshake. */
  get id(): Buffer | null {
    return this.sessionId
  }

  /** Smoothed round-trip time in ms from PING/PONG and the HELLO exchange (0 until measured). */
  get rtt(): number {
    return this.srtt
  }

  /** Lifecycle state. */
  get state(): SessionState {
    return STATE_NAMES[this.st]!
  }

  /** Whether the session is closed (destroyed). */
  get destroyed(): boolean {
    return this.st === State.CLOSED
  }

  /** The peer's HELLO (limits and capabilities it announced), or `null` before the handshake. */
  get peerHello(): Hello | null {
    return this.peer
  }

  /** Number of open streams. */
  get streamCount(): number {
    return this.streams.size
  }

  /** Whether PSK authentication (`options.auth`) succeeded with the peer. */
  get authenticated(): boolean {
    return this.opts.auth !== null && this.peer !== null && !this.authHold && !this.authPending
  }

  /** The error the session failed with, if any. */
  get error(): MuxError | undefined {
    return this.closeError
  }

  /** Whether message streams can be opened (PROTOCOL.md 15): `false` when `maxMessage` is 0 or the peer's HELLO lacks MESSAGES, `null` while the peer's HELLO is still to come. */
  get messages(): boolean | null {
    if (this.opts.maxMessage === 0) return false
    return this.peer === null ? null : this.messagesOn
  }

  /** Largest message the peer accepts (its MAX_MESSAGE), or `null` before its HELLO or without message mode. */
  get peerMaxMessage(): number | null {
    return this.messagesOn ? this.peerMax : null
  }

  /** Counters. */
  stats(): SessionStats {
    return {
      streams: this.streams.size,
      pendingOpens: this.pendingCount,
      bufferedBytes: this.budget.bufferedTotal,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      sessionBytesSent: this.sessionBytesSent,
      sessionBytesReceived: this.sessionBytesReceived,
      peerAcked: this.peerAcked,
      framesSent: this.framesSent,
      framesReceived: this.framesReceived,
      controlQueueBytes: this.controlBytes,
      sendQueueBytes: this.sendQueued,
      rtt: this.srtt,
      resumable: this.resumable,
      attached: this.attached,
      resumes: this.resumes,
      replayBytes: this.replay?.bytes ?? 0,
      replayMax: this.replay?.maxBytes ?? 0,
      replayLimit: this.replay?.limit ?? 0,
      replayedBytes: this.replayedBytes,
      duplicateBytes: this.duplicateBytes,
      striped: this.dx instanceof LaneSet && this.dx.striped,
      lanes: this.dx instanceof LaneSet && this.dx.striped ? this.dx.lanes() : [],
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
    if (!(this.dx instanceof LaneSet)) return Promise.reject(invalidState('striping is not in effect on this session (lanes option, and a server that allows lanes)'))
    return this.dx.join(duplex)
  }

  /**
   * Striped session: takes lane `index` out of service gracefully (frames it
   * carries are confirmed or sent again on the others). Returns false if
   * there is no such open lane or it is the last one.
   */
  removeLane(index: number): boolean {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw invalidArgType('index', 'a lane index (integer >= 0)', index)
    return this.dx instanceof LaneSet ? this.dx.remove(index) : false
  }

  /** @internal A client's transport, wrapped in a LaneSet when the session stripes. */
  private wrap(d: Duplex): Duplex {
    if (this.role !== 'client' || this.opts.lanes <= 1 || this.opts.resumption === null) return d
    return this.laneSet(d)
  }

  /** @internal A client's LaneSet over `lane0`. */
  private laneSet(lane0: Duplex): LaneSet {
    return new LaneSet(lane0, laneSetOptions(this.opts))
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
    const messages = options.messages === true
    if (messages) {
      if (this.messages === false) {
        throw new MuxError('SYNMUX_MESSAGES_UNSUPPORTED', this.opts.maxMessage === 0 ? 'message mode is off on this session (maxMessage: 0)' : 'the peer does not offer message mode (no MESSAGES in its HELLO)')
      }
      if (data !== undefined) this._checkMessage(typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength)
    }
    const now = performance.now()
    let err: MuxError | null = null
    if (this.st === State.CLOSED || this.goawaySent) {
      err = new MuxError('SYNMUX_SESSION_CLOSED', 'the session is closed')
    } else if (this.goawayReceived || this.st === State.CLOSING) {
      err = new MuxError('SYNMUX_REFUSED', 'the peer is going away (GOAWAY)', { wireCode: RefuseCode.GOING_AWAY })
    } else if (this.peer !== null && this.ownStreamCount >= this.peer.maxStreams) {
      err = new MuxError('SYNMUX_TOO_MANY_STREAMS', `the peer accepts at most ${this.peer.maxStreams} streams`)
    } else if (this.nextStreamId > MAX_STREAM_ID) {
      err = new MuxError('SYNMUX_STREAM_IDS_EXHAUSTED', 'no stream id left in this session')
      this.closeWith(GoawayCode.STREAM_IDS_EXHAUSTED, 'stream ids exhausted')
    }
    const id = err ? 0 : this.nextStreamId
    const s = new MuxStream(this, id, 'local', target, this.opts.initialWindow, now, this.opts.streamHighWaterMark, messages)
    if (err) {
      s.f |= SF.DETACHED
      const e = err
      process.nextTick(() => s.destroy(e))
      return s
    }
    this.nextStreamId += 2
    s.scredit = this.peerInitialWindow
    if (this.peer === null) s.f |= SF.PRE_HELLO
    this.streams.set(id, s)
    this.ownStreamCount++
    this.clearIdle()
    s.f |= SF.IN_OPEN_QUEUE
    this.openQueue.push(s)
    this.scheduleFlush()
    if (data !== undefined && (data.length > 0 || messages)) s.write(data)
    if (options.end) s.end()
    return s
  }

  /**
   * @internal Message streams: throws the `SYNMUX_MESSAGE_TOO_LARGE`
   * RangeError if a message of `size` bytes is above the peer's MAX_MESSAGE
   * (unknown before its HELLO: then the flush holds it, PROTOCOL.md 15.5).
   */
  _checkMessage(size: number): void {
    if (this.messagesOn && size > this.peerMax) throw messageTooLarge(size, this.peerMax)
  }

  private newDecoder(): FrameDecoder {
    return new FrameDecoder({ maxFrameSize: this.opts.maxFrameSize, zeroCopy: true, messages: this.messagesOn })
  }

  /**
   * Measures the RTT with a PING; resolves with the sample in ms. Rejects
   * with `SYNMUX_SESSION_CLOSED` if the session closes first.
   */
  ping(): Promise<number> {
    if (this.st === State.CLOSED) return Promise.reject(new MuxError('SYNMUX_SESSION_CLOSED', 'the session is closed'))
    return new Promise((resolve, reject) => this.sendPing(resolve, reject))
  }

  /**
   * Graceful shutdown: sends GOAWAY(NORMAL), accepts no new stream, lets
   * existing streams finish, then ends the transport. Resolves when the
   * session is closed (never rejects).
   */
  close(): Promise<void> {
    this.closeWith(GoawayCode.NORMAL, '')
    return this.closed()
  }

  /** Resolves when the session is closed (never rejects). */
  closed(): Promise<void> {
    if (this.closePromise === null) {
      this.closePromise = this.closeEmitted ? Promise.resolve() : new Promise((resolve) => this.once('close', () => resolve()))
    }
    return this.closePromise
  }

  /**
   * Abrupt shutdown: destroys every stream (with `err` if given, so they
   * emit it as `'error'`; without, they just close) and the transport.
   * No GOAWAY.
   */
  destroy(err?: MuxError): void {
    this.teardown(err, false)
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
    if (this.role !== 'client' || !this.resumable) throw invalidState('resume() is for a resumable client session')
    if (this.st === State.CLOSED) throw invalidState('the session is closed')
    if (typeof duplex !== 'object' || duplex === null || typeof duplex.write !== 'function') throw invalidArgType('duplex', 'a Duplex stream', duplex)
    if (this.attached) this.detachTransport(new MuxError('SYNMUX_CONNECTION_LOST', 'replaced by resume()'), false)
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer)
      this.reconnectTimer = null
    }
    const bound = this.wrap(duplex)
    this.bindTransport(bound)
    this.attached = true
    this.resuming = true
    this.resumeVerdict = false
    this.helloWait = true
    this.helloBuf = null
    this.helloPending = true
    this.helloSent = false
    this.waitingDrain = false
    this.nonce = this.opts.auth ? newNonce() : null
    this.authHold = this.opts.auth !== null
    // EARLY_REPLAY: everything not acknowledged goes right after the HELLO,
    // in the same flight (0-RTT on a secure channel); the server drops what
    // it already has (PROTOCOL.md 13.9).
    this.earlyFrom = this.earlyReplay && !(bound instanceof LaneSet) ? this.replay!.start : -1
    if (this.earlyFrom >= 0) this.replayFrom = this.earlyFrom
    const t = this.opts.handshakeTimeout
    if (t > 0) {
      this.attemptTimer = setTimeout(() => {
        this.attemptTimer = null
        if ((this.resuming || this.resumeVerdict) && this.dx === bound) this.lost(new MuxError('SYNMUX_HANDSHAKE_TIMEOUT', `no answer to RESUME within ${t} ms`))
      }, t)
      this.attemptTimer.unref?.()
    }
    if (duplex.destroyed) {
      process.nextTick(() => {
        if (this.dx === bound) this.lost(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport is already destroyed'))
      })
      return
    }
    this.scheduleFlush()
  }

  /**
   * Resumable session: drops the current transport as if it had died (a
   * client then reconnects and resumes; a server waits for the client).
   * Used by pools to replace a connection that looks dead or slow. Returns
   * false if the session is not resumable or has no transport.
   */
  reconnect(reason = 'reconnect requested'): boolean {
    if (!this.resumable || !this.attached || this.st === State.CLOSED) return false
    this.lost(new MuxError('SYNMUX_CONNECTION_LOST', reason))
    return true
  }

  /** @internal The transport was lost: detach and resume if we can, else fail. */
  private lost(err: MuxError): void {
    if (this.st === State.CLOSED) return
    // A session is resumable only once both sides are authenticated.
    if (this.resumable && !this.ending && this.attached && !this.authPending && (!this.authHold || this.resuming)) {
      this.detachTransport(err, true)
      return
    }
    if (this.resumable && !this.attached) return
    this.destroy(err)
  }

  private bindTransport(d: Duplex): void {
    this.dx = d
    if (d instanceof LaneSet) {
      d._hooks(
        (err) => this.fail(err),
        (info, err) => {
          // A JOIN answered with a REDIRECT: this session's next lanes (and resumes) go there.
          const to = (err as { redirect?: RedirectAddress | null } | undefined)?.redirect
          if (to) this.redirected(to)
          if (this.listenerCount('lane') > 0) this.emit('lane', info, err)
        },
      )
    }
    const sock = d as Duplex & { setNoDelay?: (v: boolean) => unknown }
    if (this.opts.noDelay && typeof sock.setNoDelay === 'function') sock.setNoDelay(true)
    d.on('data', this.onDataBound)
    d.on('drain', this.onDrainBound)
    d.on('end', this.onEndBound)
    d.on('error', this.onErrorBound)
    d.on('close', this.onCloseBound)
  }

  private unbindTransport(): void {
    const d = this.dx
    d.removeListener('data', this.onDataBound)
    d.removeListener('drain', this.onDrainBound)
    d.removeListener('end', this.onEndBound)
    d.removeListener('close', this.onCloseBound)
    d.removeListener('error', this.onErrorBound)
    d.on('error', () => {})
    d.destroy()
  }

  /** Forgets the transport and everything that belonged to it (link state); streams are kept. */
  private detachTransport(err: MuxError, reconnect: boolean): void {
    // A failed resume attempt keeps the clock and the backoff of the outage.
    const failedAttempt = this.resuming || this.resumeVerdict
    this.unbindTransport()
    this.attached = false
    this.resuming = false
    this.resumeVerdict = false
    this.earlyFrom = -1
    if (!failedAttempt) this.detachedAt = performance.now()
    for (const t of [this.kaTimer, this.attemptTimer]) if (t) clearTimeout(t)
    this.kaTimer = this.attemptTimer = null
    if (this.handshakeTimer && !this.authPending) {
      clearTimeout(this.handshakeTimer)
      this.handshakeTimer = null
    }
    this.decoder.stop()
    this.decoder = this.newDecoder()
    this.helloBuf = null
    this.flushScheduled = false
    this.waitingDrain = false
    this.replayBlocked = false
    this.replayFrom = -1
    this.rxSkip = 0
    this.ackPending = false
    // Link frames were for the dead transport; unsent session frames stay.
    const keep: Buffer[] = []
    let keepBytes = 0
    for (const b of this.control) {
      if (b[3]! < 0x80) {
        keep.push(b)
        keepBytes += b.length
      }
    }
    this.control = keep
    this.controlBytes = keepBytes
    const pingErr = new MuxError('SYNMUX_CONNECTION_LOST', 'the transport was lost before the PONG')
    for (const p of this.pings.values()) p.reject?.(pingErr)
    this.pings.clear()
    if (this.listenerCount('detached') > 0) this.emit('detached', err)
    if (!reconnect) return
    if (this.role === 'client') {
      if (!failedAttempt) this.reconnectDelay = 0
      this.scheduleReconnect()
    } else {
      const t = this.opts.resumption!.detachTimeout
      if (this.detachTimer) clearTimeout(this.detachTimer)
      this.detachTimer = setTimeout(() => {
        this.detachTimer = null
        if (!this.attached) this.destroy(sessionLost(ResumeRefused.EXPIRED, `detached for more than ${t} ms`))
      }, t)
      this.detachTimer.unref?.()
    }
  }

  private scheduleReconnect(): void {
    const r = this.opts.resumption!
    if (this.st === State.CLOSED || this.attached) return
    if (r.connect === null) {
      // The application resumes by hand; still give up after resumeTimeout.
      if (this.reconnectTimer === null) {
        this.reconnectTimer = setTimeout(() => {
          this.reconnectTimer = null
          if (!this.attached) this.destroy(sessionLost('no transport', `not resumed within ${r.resumeTimeout} ms`))
        }, r.resumeTimeout)
        this.reconnectTimer.unref?.()
      }
      return
    }
    const left = r.resumeTimeout - (performance.now() - this.detachedAt)
    if (left <= 0) {
      this.destroy(sessionLost('reconnect failed', `no new transport within ${r.resumeTimeout} ms`))
      return
    }
    const delay = Math.min(this.reconnectDelay, left)
    this.reconnectDelay = Math.min(Math.max(r.minDelay, this.reconnectDelay * 2), r.maxDelay)
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      if (this.st === State.CLOSED || this.attached) return
      let res: Duplex | Promise<Duplex>
      try {
        res = r.connect!()
      } catch {
        this.scheduleReconnect()
        return
      }
      Promise.resolve(res).then(
        (d) => {
          if (this.st === State.CLOSED || this.attached) {
            d.destroy()
            return
          }
          this.resume(d)
        },
        () => this.scheduleReconnect(),
      )
    }, delay)
    // Not unref'd: streams are waiting for this reconnect (the transport
    // that kept the process alive is gone).
  }

  /**
   * After the NEW exchange: is MESSAGES in effect (PROTOCOL.md 15)? Then the
   * decoder accepts its flags and we learn the peer's MAX_MESSAGE. Message
   * streams opened before the HELLO that cannot go on fail here.
   */
  private setupMessages(h: Hello): void {
    if (this.opts.maxMessage > 0 && (h.capabilities & Capability.MESSAGES)) {
      const max = readU32Ext(h, HelloExtension.MAX_MESSAGE)
      if (max === null || max < MIN_MAX_MESSAGE) throw handshakeError('MESSAGES without a valid MAX_MESSAGE')
      this.messagesOn = true
      this.peerMax = max
      this.decoder.messages = true
    }
    for (const s of [...this.streams.values()]) {
      if (!s.messages || s.opener !== 'local') continue
      let err: MuxError | null = null
      if (!this.messagesOn) {
        err = new MuxError('SYNMUX_MESSAGES_UNSUPPORTED', `stream ${s.id}: the peer does not offer message mode (no MESSAGES in its HELLO)`)
      } else {
        for (let i = s.sqHead; i < s.sq.length; i++) {
          const n = s.sq[i]!.length
          if (n > this.peerMax) {
            err = new MuxError('SYNMUX_MESSAGE_TOO_LARGE', `stream ${s.id}: a message of ${n} bytes written before the peer's HELLO is above its MAX_MESSAGE ${this.peerMax}`)
            break
          }
        }
      }
      if (err !== null) s.destroy(err)
    }
  }

  /** After the NEW exchange: is RESUME in effect? Sets up the replay buffer and the ACK rate. */
  private setupResumption(h: Hello): void {
    const r = this.opts.resumption
    if (r === null || !(h.capabilities & Capability.RESUME)) {
      // A client that kept its first frames for a resumption the server does not offer: nothing to keep.
      this.replay = null
      return
    }
    if (this.role === 'server' && (this.registry === null || this.refuseResume !== 0)) return
    const peerReplay = readU32Ext(h, HelloExtension.REPLAY_BUFFER)
    if (peerReplay === null || peerReplay < MIN_INITIAL_WINDOW) throw handshakeError('RESUME without a valid REPLAY_BUFFER')
    this.resumable = true
    this.earlyReplay = (h.capabilities & Capability.EARLY_REPLAY) !== 0 && this.opts.auth === null && this.offersEarlyReplay()
    // Either side keeps at most the smaller REPLAY_BUFFER unacknowledged
    // (13.1), so no peer can make us buffer more than our own (a striped
    // receiver's reorder buffer, 14.3).
    if (this.replay === null) this.replay = new ReplayBuffer(Math.min(r.replayBuffer, peerReplay))
    else this.replay.limit = Math.min(this.replay.limit, peerReplay)
    // At least every quarter of that bound (13.1 requires half).
    this.ackEvery = Math.min(DEFAULTS.ackEvery, Math.floor(Math.min(r.replayBuffer, peerReplay) / 4))
    if (this.role === 'server') this.registry!._register(this)
  }

  /** Client: the server's answer to our RESUME. */
  private onResumeAnswer(h: Hello, raw: Buffer): void {
    this.resuming = false
    if (h.kind === HelloKind.NEW) {
      this.clearAttemptTimer()
      const why = h.extensions.get(HelloExtension.RESUME_REFUSED)
      const to = why !== undefined && why.length === 1 && why[0] === ResumeRefused.ELSEWHERE ? decodeRedirect(h.extensions.get(HelloExtension.REDIRECT)) : null
      // The session lives on another server: resume there at once (a few hops at most, PROTOCOL.md 13.10).
      if (to !== null && this.redirects < MAX_REDIRECTS) {
        this.redirects++
        this.redirected(to)
        this.resuming = true
        this.reconnectDelay = 0
        this.lost(new MuxError('SYNMUX_CONNECTION_LOST', `the session lives at ${to.host}:${to.port} (REDIRECT)`))
        return
      }
      this.destroy(sessionLost(why !== undefined && why.length === 1 ? why[0]! : ResumeRefused.NOT_SUPPORTED))
      return
    }
    if (h.kind !== HelloKind.RESUME) throw handshakeError(`unexpected HELLO kind ${h.kind} in answer to RESUME`)
    if (!h.sessionId.equals(this.sessionId!)) throw handshakeError('RESUMED names another session')
    this.authenticateServer(h, raw)
    this.sampleRtt(performance.now() - this.helloSentAt)
    if (this.opts.auth !== null) {
      // The server says where to replay from only after our AUTH: its first frame (13.4).
      if (h.extensions.has(HelloExtension.RECEIVED)) throw handshakeError('RESUMED carries RECEIVED before the client proved its key')
      this.resumeVerdict = true
      this.scheduleFlush()
      return
    }
    this.clearAttemptTimer()
    const r = readU64Ext(h, HelloExtension.RECEIVED)
    if (r === null) throw handshakeError('RESUMED without RECEIVED')
    if (this.earlyFrom >= 0) {
      // Our replay already left after the HELLO, from earlyFrom; the server dropped what it had (13.9).
      const from = this.earlyFrom
      this.earlyFrom = -1
      if (r < from || r > this.sessionBytesSent) {
        const e = sessionLost(ResumeRefused.OUT_OF_RANGE, `the server received ${r}, our replay started at ${from} and we sent ${this.sessionBytesSent}`)
        this.fail(new MuxError('SYNMUX_SESSION_LOST', e.message, { wireCode: GoawayCode.RESUME_OUT_OF_RANGE, reason: 'replay out of range' }))
        return
      }
      this.onAttached(r, 0, false)
      return
    }
    this.resumeFrom(r)
  }

  /** Client, resuming with AUTH_PSK: the server's first frame after our AUTH is ACK(R) (resumed) or GOAWAY (refused). */
  private onResumeVerdict(frame: Frame): void {
    this.resumeVerdict = false
    this.clearAttemptTimer()
    this.framesReceived++
    if (frame.type === FrameType.ACK) return this.resumeFrom(frame.received)
    if (frame.type === FrameType.GOAWAY) {
      const reason = frame.code === GoawayCode.RESUME_UNKNOWN_ID ? ResumeRefused.UNKNOWN_ID : frame.code === GoawayCode.RESUME_EXPIRED ? ResumeRefused.EXPIRED : frame.code === GoawayCode.RESUME_OUT_OF_RANGE ? ResumeRefused.OUT_OF_RANGE : null
      this.destroy(reason !== null ? sessionLost(reason) : sessionLost(`refused (GOAWAY ${frame.code}${frame.reason ? `: ${frame.reason}` : ''})`))
      return
    }
    throw protocolError(`${frameTypeName(frame.type)} frame before the answer to RESUME (ACK or GOAWAY)`)
  }

  /** Client: the server received `r` of our session bytes; replay from there. */
  private resumeFrom(r: number): void {
    if (r < this.replay!.start || r > this.sessionBytesSent) {
      const e = sessionLost(ResumeRefused.OUT_OF_RANGE, `the server received ${r}, replay holds ${this.replay!.start}..${this.sessionBytesSent}`)
      this.fail(new MuxError('SYNMUX_SESSION_LOST', e.message, { wireCode: GoawayCode.RESUME_OUT_OF_RANGE, reason: 'replay out of range' }))
      return
    }
    this.onAttached(r, 0)
  }

  private clearAttemptTimer(): void {
    if (this.attemptTimer) {
      clearTimeout(this.attemptTimer)
      this.attemptTimer = null
    }
  }

  /** Both sides: a new transport carries the session; replay from `peerReceived` (unless it already went: `replay` false), drop `skip` duplicate bytes. */
  private onAttached(peerReceived: number, skip: number, replay = true): void {
    if (peerReceived > this.peerAcked) this.peerAcked = peerReceived
    this.replay!.ack(peerReceived)
    if (replay) this.replayFrom = peerReceived
    this.rxSkip = skip
    this.resumes++
    this.redirects = 0
    if (this.detachTimer) {
      clearTimeout(this.detachTimer)
      this.detachTimer = null
    }
    this.sendPing(null, null)
    this.armKeepalive()
    this.scheduleFlush()
    this.emit('resumed')
  }

  /**
   * Client: where the server said this session lives (a REDIRECT,
   * PROTOCOL.md 13.10), `null` until one did. Its resumes and lanes
   * connect there (`resumption.connect(to)`).
   */
  get redirect(): RedirectAddress | null {
    return this.redirectedTo
  }

  /** Client: a server said the session lives at `to`; `'redirect'` `(to)`. */
  private redirected(to: RedirectAddress): void {
    const same = this.redirectedTo !== null && this.redirectedTo.host === to.host && this.redirectedTo.port === to.port
    this.redirectedTo = to
    if (!same && this.listenerCount('redirect') > 0) this.emit('redirect', to)
  }

  /** @internal Registry: attach this server session to its registry (before the client's HELLO is fed). */
  _setRegistry(registry: SessionRegistry, refuseResume: number): void {
    this.registry = registry
    this.refuseResume = refuseResume
  }

  /**
   * @internal Ends the session at once: `GOAWAY(code, reason)` to the peer
   * if a transport is attached, every stream failed (`SYNMUX_SESSION_CLOSED`).
   * Used by a server that withdraws a client's key.
   */
  _terminate(code: number, reason: string): void {
    this.fail(new MuxError('SYNMUX_SESSION_CLOSED', reason, { wireCode: code, reason }))
  }

  /** @internal Registry: feeds bytes read from the transport before the session took it over. */
  _input(buf: Buffer): void {
    if (buf.length > 0) this.onData(buf)
  }

  /** @internal Registry: whether a client that received `n` session bytes can be resumed from our replay buffer. */
  _canReplayFrom(n: number): boolean {
    return this.resumable && this.replay !== null && this.st !== State.CLOSED && n >= this.replay.start && n <= this.sessionBytesSent
  }

  /** @internal Registry: session bytes received so far (the R of a resume). */
  get _received(): number {
    return this.sessionBytesReceived
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
    if (this.attached) this.detachTransport(new MuxError('SYNMUX_CONNECTION_LOST', 'replaced by a resumed transport'), false)
    this.bindTransport(d)
    this.bytesSent += ownHello.length
    this.attached = true
    this.helloWait = false
    this.helloSent = true
    this.helloPending = false
    this.ownHelloBytes = ownHello
    this.peerHelloBytes = Buffer.from(peerRaw)
    if (ack) {
      const b = encodeFrame({ type: FrameType.ACK, received: this.sessionBytesReceived })
      this.control.unshift(b)
      this.controlBytes += b.length
      this.ackReported = this.sessionBytesReceived
    }
    this.onAttached(received, skip)
    if (leftover.length > 0) this.onData(leftover)
  }

  /** @internal Registry: EARLY_REPLAY is in effect (a RESUME may carry REPLAY_FROM, PROTOCOL.md 13.9). */
  get _earlyReplay(): boolean {
    return this.earlyReplay
  }

  // -------------------------------------------------------------------------
  // Internal: shutdown

  private closeWith(code: number, reason: string): void {
    if (this.st === State.CLOSED) return
    if (!this.attached) {
      // Detached: no transport to say goodbye on.
      this.destroy()
      return
    }
    if (this.role === 'server' && !this.helloSent && !this.helloPending) {
      // Nothing said yet: nothing to say goodbye with.
      this.destroy()
      return
    }
    if (!this.goawaySent) {
      this.goawaySent = true
      this.goawaySentLast = this.highestPeerId
      this.queueControl(encodeFrame({ type: FrameType.GOAWAY, lastStreamId: this.highestPeerId, code, reason }))
    }
    this.st = State.CLOSING
    this.clearIdle()
    this.maybeEnd()
  }

  private maybeEnd(): void {
    if (!this.ending && (this.goawaySent || this.goawayReceived) && this.streams.size === 0 && this.st !== State.CLOSED) {
      this.ending = true
      if (this.st === State.OPEN || this.st === State.HANDSHAKING) this.st = State.CLOSING
      this.scheduleFlush()
    }
  }

  /** Protocol or resource violation by the peer: GOAWAY with the code, then close. */
  private fail(err: MuxError): void {
    if (this.st === State.CLOSED) return
    const wire = err.wireCode ?? GoawayCode.PROTOCOL_ERROR
    // Not synmux, or not authenticated: close without saying why.
    let goaway = err.code !== 'SYNMUX_BAD_MAGIC' && err.code !== 'SYNMUX_AUTH_FAILED'
    if (err.code === 'SYNMUX_UNSUPPORTED_VERSION' && this.role === 'server' && !this.helloSent) this.helloPending = true
    if (!this.helloSent && !this.helloPending) goaway = false
    if (goaway && this.dx.writable) {
      const parts: Buffer[] = []
      if (this.helloPending) parts.push(this.encodeOwnHello())
      this.helloPending = false
      this.helloSent = true
      parts.push(encodeFrame({ type: FrameType.GOAWAY, lastStreamId: this.highestPeerId, code: wire, reason: err.message }))
      const out = Buffer.concat(parts)
      this.bytesSent += out.length
      this.teardown(err, true)
      this.dx.end(out)
      const t = setTimeout(() => this.dx.destroy(), LINGER_MS)
      t.unref?.()
      return
    }
    this.teardown(err, false)
  }

  private teardown(err: MuxError | undefined, keepTransport: boolean): void {
    if (this.st === State.CLOSED) return
    this.st = State.CLOSED
    this.closeError = err
    for (const t of [this.kaTimer, this.handshakeTimer, this.idleTimer, this.acceptTimer, this.reconnectTimer, this.detachTimer, this.attemptTimer]) if (t) clearTimeout(t)
    this.kaTimer = this.handshakeTimer = this.idleTimer = this.acceptTimer = this.reconnectTimer = this.detachTimer = this.attemptTimer = null
    this.registry?._forget(this, err?.code === 'SYNMUX_SESSION_LOST' && err.wireCode === ResumeRefused.EXPIRED)
    this.replay?.clear()
    this.decoder.stop()
    this.helloBuf = null
    this.dx.removeListener('data', this.onDataBound)
    this.dx.removeListener('drain', this.onDrainBound)
    this.dx.removeListener('end', this.onEndBound)
    this.dx.removeListener('close', this.onCloseBound)
    // Keep an 'error' listener: a late transport error must not crash the process.
    this.dx.removeListener('error', this.onErrorBound)
    this.dx.on('error', () => {})
    // Like http2: an error destroys the streams with it; a deliberate
    // destroy() closes them without an 'error' event.
    for (const s of [...this.streams.values()]) {
      this.detach(s)
      s.destroy(err)
    }
    this.control = []
    this.controlBytes = 0
    this.windowQueue.clear()
    this.openQueue.clear()
    this.ring.clear()
    this.acceptQueue.clear()
    const pingErr = new MuxError('SYNMUX_SESSION_CLOSED', 'the session closed before the PONG')
    for (const p of this.pings.values()) p.reject?.(pingErr)
    this.pings.clear()
    if (!keepTransport) {
      if (this.ending && !this.dx.destroyed) {
        // Graceful: our end() is done or under way; make sure it completes.
        if (!this.endCalled) {
          this.endCalled = true
          this.dx.end()
        }
        const t = setTimeout(() => this.dx.destroy(), LINGER_MS)
        t.unref?.()
      } else {
        this.dx.destroy()
      }
    }
    process.nextTick(() => {
      if (err && this.listenerCount('error') > 0) this.emit('error', err)
      this.closeEmitted = true
      this.emit('close', err)
    })
  }

  // -------------------------------------------------------------------------
  // Internal: input

  private onData(chunk: Buffer | string): void {
    if (this.st === State.CLOSED) return
    if (typeof chunk === 'string') chunk = Buffer.from(chunk)
    this.bytesReceived += chunk.length
    this.rx = true
    try {
      if (this.helloWait) {
        const buf: Buffer = this.helloBuf === null ? chunk : Buffer.concat([this.helloBuf, chunk])
        const r = decodeHello(buf)
        if (r === null) {
          this.helloBuf = buf
          return
        }
        this.helloBuf = null
        this.onHello(r.hello, buf.subarray(0, r.size))
        if (this.isClosed()) return
        if (buf.length > r.size) this.decoder.push(buf.subarray(r.size), this.onFrameBound)
      } else {
        this.decoder.push(chunk, this.onFrameBound)
      }
    } catch (err) {
      if (err instanceof MuxError) this.fail(err)
      else throw err
    }
  }

  private onEnd(): void {
    if (this.st === State.CLOSED) return
    if (this.ending || ((this.goawaySent || this.goawayReceived) && this.streams.size === 0)) {
      this.maybeEnd()
      return
    }
    this.lost(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport ended without GOAWAY'))
  }

  private encodeOwnHello(): Buffer {
    if (this.sessionId === null && this.role === 'server') this.sessionId = this.registry?._newId() ?? randomBytes(SESSION_ID_SIZE)
    const extensions: Array<[number, Buffer]> = []
    let capabilities = 0
    const auth = this.opts.auth
    if (auth !== null) {
      capabilities |= Capability.AUTH_PSK
      extensions.push([HelloExtension.AUTH_NONCE, this.nonce!])
      if (this.role === 'server' && this.peerHelloBytes !== null) {
        extensions.push([HelloExtension.AUTH_PROOF, serverProof(auth.key, this.peerHelloBytes, this.nonce!)])
      }
    }
    const res = this.opts.resumption
    if (res !== null && (this.role === 'client' || (this.registry !== null && this.refuseResume === 0))) {
      capabilities |= Capability.RESUME
      extensions.push([HelloExtension.REPLAY_BUFFER, u32(res.replayBuffer)])
    }
    if ((capabilities & Capability.RESUME) && this.dx instanceof LaneSet) capabilities |= Capability.STRIPE
    if ((capabilities & Capability.RESUME) && this.offersEarlyReplay()) capabilities |= Capability.EARLY_REPLAY
    if (this.opts.maxMessage > 0) {
      capabilities |= Capability.MESSAGES
      extensions.push([HelloExtension.MAX_MESSAGE, u32(this.opts.maxMessage)])
    }
    if (this.resuming) extensions.push([HelloExtension.RECEIVED, u64(this.sessionBytesReceived)])
    if (this.resuming && this.earlyFrom >= 0) extensions.push([HelloExtension.REPLAY_FROM, u64(this.earlyFrom)])
    if (this.role === 'server' && this.refuseResume !== 0) extensions.push([HelloExtension.RESUME_REFUSED, Buffer.from([this.refuseResume])])
    const hello = encodeHello({
      kind: this.resuming ? HelloKind.RESUME : HelloKind.NEW,
      role: this.role,
      capabilities,
      sessionId: this.role === 'server' || this.resuming ? this.sessionId! : ZERO_ID,
      initialWindow: this.opts.initialWindow,
      maxFrameSize: this.opts.maxFrameSize,
      maxStreams: this.opts.maxStreams,
      extensions,
    })
    this.ownHelloBytes = hello
    return hello
  }

  /**
   * Whether this side offers EARLY_REPLAY (PROTOCOL.md 13.9): without
   * AUTH_PSK (whose verdict must come first), and a client only on an
   * unstriped session (a striped one's lanes number their frames).
   */
  private offersEarlyReplay(): boolean {
    if (this.opts.auth !== null) return false
    return this.role === 'server' || !(this.dx instanceof LaneSet)
  }

  /** Client: checks the server's proof, then queues our AUTH in front of everything else. */
  private authenticateServer(h: Hello, raw: Buffer): void {
    const auth = this.opts.auth
    const offered = (h.capabilities & Capability.AUTH_PSK) !== 0
    if (auth === null) {
      if (offered) throw authError('the server requires a pre-shared key and none is configured')
      return
    }
    if (!offered) throw authError('the server does not authenticate (no AUTH_PSK)')
    const ns = h.extensions.get(HelloExtension.AUTH_NONCE)
    if (ns === undefined || ns.length !== AUTH_SIZE) throw authError('the server sent no nonce')
    if (!proofMatches(h.extensions.get(HelloExtension.AUTH_PROOF), serverProof(auth.key, this.ownHelloBytes!, ns))) {
      throw authError('the server does not hold our key')
    }
    const b = encodeFrame({ type: FrameType.AUTH, proof: clientProof(auth.key, raw, this.nonce!) })
    this.control.unshift(b)
    this.controlBytes += b.length
    this.authHold = false
  }

  /** Server: until the client's AUTH, hold every frame (bounded); on a valid AUTH, process them. */
  private holdUntilAuth(frame: Frame, size: number): void {
    if (frame.type !== FrameType.AUTH) {
      this.heldBytes += size
      if (this.heldBytes > AUTH_HOLD_LIMIT) throw authError(`more than ${AUTH_HOLD_LIMIT} bytes before AUTH`)
      this.held.push([frame, size])
      return
    }
    if (!proofMatches(frame.proof, clientProof(this.opts.auth!.key, this.ownHelloBytes!, this.peerNonce!))) {
      throw authError('the client does not hold our key')
    }
    this.authPending = false
    this.authHold = false
    if (this.handshakeTimer) {
      clearTimeout(this.handshakeTimer)
      this.handshakeTimer = null
    }
    const held = this.held
    this.held = []
    this.heldBytes = 0
    this.scheduleFlush()
    this.emit('handshake')
    for (const [f, n] of held) {
      if (this.isClosed()) return
      this.onFrame(f, n)
    }
  }

  private onHello(h: Hello, raw: Buffer): void {
    this.helloWait = false
    this.peerHelloBytes = Buffer.from(raw)
    const expected = this.role === 'client' ? 'server' : 'client'
    if (h.role !== expected) throw handshakeError(`role conflict: the peer is also a ${h.role}`)
    const zero = h.sessionId.equals(ZERO_ID)
    if (this.resuming) return this.onResumeAnswer(h, raw)
    if (this.role === 'client') {
      if (h.kind !== HelloKind.NEW) throw handshakeError(`unexpected HELLO kind ${h.kind} from the server`)
      if (zero) throw handshakeError('the server sent an all-zero session id')
      this.authenticateServer(h, raw)
      this.sessionId = h.sessionId
      this.sampleRtt(performance.now() - this.helloSentAt)
    } else {
      // A RESUME or JOIN that reaches a fresh session is answered with NEW
      // (the registry hands the ones it can honour to their session).
      if (h.kind === HelloKind.NEW && !zero) throw handshakeError('a client NEW HELLO must carry a zero session id')
      if (h.kind !== HelloKind.NEW && this.refuseResume === 0) this.refuseResume = this.registry !== null ? ResumeRefused.UNKNOWN_ID : ResumeRefused.NOT_SUPPORTED
      if (this.opts.auth !== null) {
        if (!(h.capabilities & Capability.AUTH_PSK)) throw authError('the client offered no authentication')
        const nc = h.extensions.get(HelloExtension.AUTH_NONCE)
        if (nc === undefined || nc.length !== AUTH_SIZE) throw authError('the client sent no nonce')
        this.peerNonce = nc
        this.authPending = true
      }
      this.sessionId = this.registry?._newId() ?? randomBytes(SESSION_ID_SIZE)
      this.helloPending = true
    }
    this.peer = h
    this.peerInitialWindow = h.initialWindow
    this.sendFrameSize = Math.min(h.maxFrameSize, this.opts.maxFrameSize)
    this.setupMessages(h)
    this.setupResumption(h)
    if (this.handshakeTimer && !this.authPending) {
      clearTimeout(this.handshakeTimer)
      this.handshakeTimer = null
    }
    if (this.st === State.HANDSHAKING) this.st = State.OPEN
    const extra = h.initialWindow - MIN_INITIAL_WINDOW
    for (const s of this.streams.values()) {
      if (s.f & SF.PRE_HELLO) {
        s.f &= ~SF.PRE_HELLO
        s.scredit += extra
        this.scheduleStream(s)
      }
    }
    this.sendPing(null, null)
    this.armKeepalive()
    if (this.streams.size === 0) this.armIdle()
    this.scheduleFlush()
    if (!this.authPending) this.emit('handshake')
  }

  /** (A method, so TypeScript does not narrow `st` across calls that may close the session.) */
  private isClosed(): boolean {
    return this.st === State.CLOSED
  }

  private isOwnId(id: number): boolean {
    return (id & 1) === (this.role === 'client' ? 1 : 0)
  }

  /** The stream a frame names, `null` if it is closed (ignore the frame); throws if it never existed. */
  private lookup(id: number, type: number): MuxStream | null {
    const s = this.streams.get(id)
    if (s !== undefined) return s
    if (this.isOwnId(id) ? id >= this.nextStreamId : id > this.highestPeerId) {
      throw protocolError(`${frameTypeName(type)} frame for stream ${id}, which was never opened`)
    }
    return null
  }

  private onFrame(frame: Frame, size: number): void {
    if (this.authPending) return this.holdUntilAuth(frame, size)
    if (this.resumeVerdict) return this.onResumeVerdict(frame)
    this.framesReceived++
    if (frame.type < 0x80) {
      if (this.rxSkip > 0) {
        // Replayed by the peer, but already received on the old transport.
        this.rxSkip -= size
        this.duplicateBytes += size
        if (this.rxSkip < 0) throw protocolError('replayed session frames do not end on the resume offset')
        return
      }
      this.sessionBytesReceived += size
      if (this.sessionBytesReceived - this.ackReported >= this.ackEvery && !this.ackPending) {
        this.ackPending = true
        this.scheduleFlush()
      }
    }
    switch (frame.type) {
      case FrameType.DATA:
        return this.onDataFrame(frame)
      case FrameType.WINDOW:
        return this.onWindow(frame)
      case FrameType.OPEN:
        return this.onOpen(frame)
      case FrameType.OPENED:
        return this.onOpened(frame)
      case FrameType.REFUSED:
        return this.onRefused(frame)
      case FrameType.RST:
        return this.onRst(frame)
      case FrameType.GOAWAY:
        return this.onGoaway(frame)
      case FrameType.PING: {
        const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 8)
        b.fill(0, 0, FRAME_HEADER_SIZE)
        b[2] = 8
        b[3] = FrameType.PONG
        frame.opaque.copy(b, FRAME_HEADER_SIZE)
        this.ackPending = true
        this.queueControl(b)
        return
      }
      case FrameType.PONG:
        return this.onPong(frame)
      case FrameType.ACK:
        return this.onAck(frame)
      case FrameType.AUTH:
        if (this.opts.auth !== null && this.peer !== null && (this.peer.capabilities & Capability.AUTH_PSK)) throw protocolError('unexpected AUTH frame')
        throw protocolError('AUTH frame, but AUTH_PSK is not in effect')
      default:
        throw protocolError(`${frameTypeName(frame.type)} frame, but its capability is not in effect`)
    }
  }

  private onOpen(f: OpenFrame): void {
    const id = f.streamId
    if (this.isOwnId(id) || id <= this.highestPeerId) throw protocolError(`OPEN with stream id ${id}: wrong parity or not increasing`)
    this.highestPeerId = id
    const len = f.data.length
    if (len > this.opts.initialWindow) throw flowError(`OPEN with ${len} bytes of data exceeds the initial window`)
    if (this.goawaySent && id > this.goawaySentLast) return // crossed our GOAWAY: ignored
    let refuse = 0
    if (this.st !== State.OPEN) refuse = RefuseCode.GOING_AWAY
    else if (this.listenerCount('stream') === 0) refuse = RefuseCode.NO_LISTENER
    else if (this.peerStreamCount >= this.opts.maxStreams) refuse = RefuseCode.TOO_MANY_STREAMS
    else if (this.pendingCount >= this.opts.maxPendingOpens) refuse = RefuseCode.TOO_MANY_PENDING
    else if (this.budget.bufferedTotal >= this.opts.maxSessionBuffer) refuse = RefuseCode.BUSY
    else if (f.target !== null && f.target.kind === 'hostname') {
      if (f.target.host.length > this.opts.maxTargetLength) refuse = RefuseCode.TARGET_TOO_LONG
      else if (!isPrintableHost(f.target.host)) refuse = RefuseCode.BAD_TARGET
    }
    if (refuse !== 0) {
      const reason = REFUSE_REASONS[refuse] ?? ''
      this.queueControl(encodeFrame({ type: FrameType.REFUSED, streamId: id, code: refuse, reason }))
      if (this.listenerCount('refused') > 0) this.emit('refused', { streamId: id, code: refuse, reason, target: f.target })
      return
    }
    const messages = (f.flags & FrameFlag.MESSAGES) !== 0
    // Message-mode violations in the OPEN itself fail the session before a stream exists.
    if (messages) this.checkMessageFrame(id, 0, len, (f.flags & FrameFlag.OPEN_EOM) !== 0, (f.flags & FrameFlag.FIN) !== 0)
    const now = performance.now()
    const s = new MuxStream(this, id, 'remote', f.target, this.opts.initialWindow, now, this.opts.streamHighWaterMark, messages)
    s.scredit = this.peerInitialWindow
    s.f |= SF.PENDING
    this.pendingCount++
    this.streams.set(id, s)
    this.peerStreamCount++
    this.clearIdle()
    s.rs.rcredit -= len
    if (messages) this.messageIn(s, f.data, undefined, len, (f.flags & FrameFlag.OPEN_EOM) !== 0)
    else if (len > 0) this.deliver(s, f.data)
    if (f.flags & FrameFlag.FIN) this.remoteFin(s)
    if (this.opts.acceptDelay !== Infinity) {
      s.acceptDeadline = now + this.opts.acceptDelay
      this.acceptQueue.push(s)
      // Answered streams leave the queue lazily; keep it proportional to the pending ones.
      if (this.acceptQueue.length > 2 * this.pendingCount + 64) this.acceptQueue.retain((x) => x.pending)
      this.armAcceptTimer()
    }
    this.emit('stream', s, { target: f.target, messages })
  }

  private onOpened(f: OpenedFrame): void {
    const s = this.lookup(f.streamId, f.type)
    if (s === null) return
    if (s.opener !== 'local' || (s.f & SF.REMOTE_OPENED) || !(s.f & SF.OPEN_SENT)) throw protocolError(`unexpected OPENED for stream ${s.id}`)
    const len = f.data.length
    if (len > s.rs.rcredit) throw flowError(`OPENED with ${len} bytes exceeds the credit of stream ${s.id}`)
    if (s.inbox === null && (f.flags & FrameFlag.EOM)) throw protocolError(`OPENED with EOM on stream ${s.id}, which is not a message stream`)
    if (s.inbox !== null) this.checkMessageFrame(s.id, s.inbox.partial, len, (f.flags & FrameFlag.EOM) !== 0, (f.flags & FrameFlag.FIN) !== 0)
    s.f |= SF.REMOTE_OPENED
    s.openedIn = performance.now() - s.openAt
    s.rs.rcredit -= len
    // 'open' before the OPENED's bytes reach 'data' (a listener may end the stream: then they are moot)
    s.emit('open')
    if (s.f & SF.DETACHED) return
    if (s.inbox !== null) this.messageIn(s, f.data, undefined, len, (f.flags & FrameFlag.EOM) !== 0)
    else if (len > 0) this.deliver(s, f.data)
    if (f.flags & FrameFlag.FIN) this.remoteFin(s)
    if (len > 0) this._checkConsumed(s)
  }

  private onRefused(f: RefusedFrame): void {
    const s = this.lookup(f.streamId, f.type)
    if (s === null) return
    if (s.opener !== 'local' || (s.f & SF.REMOTE_OPENED) || !(s.f & SF.OPEN_SENT)) throw protocolError(`unexpected REFUSED for stream ${s.id}`)
    this.detach(s)
    const name = REFUSE_REASONS[f.code] ?? `code ${f.code}`
    s.destroy(new MuxError('SYNMUX_REFUSED', `stream ${s.id} refused (${name})${f.reason ? `: ${f.reason}` : ''}`, { wireCode: f.code, reason: f.reason }))
  }

  private onDataFrame(f: DataFrame): void {
    const s = this.lookup(f.streamId, f.type)
    if (s === null) return
    if (s.opener === 'local' && !(s.f & SF.REMOTE_OPENED)) throw protocolError(`DATA before OPENED on stream ${s.id}`)
    if (s.f & SF.FIN_RECEIVED) throw protocolError(`DATA after FIN on stream ${s.id}`)
    const chunks = f.chunks
    let len = 0
    if (chunks === undefined) len = f.data.length
    else for (let i = 0; i < chunks.length; i++) len += chunks[i]!.length
    if (len > s.rs.rcredit) throw flowError(`DATA of ${len} bytes exceeds the credit (${s.rs.rcredit}) of stream ${s.id}`)
    s.rs.rcredit -= len
    if (s.inbox !== null) {
      this.messageIn(s, f.data, chunks, len, (f.flags & FrameFlag.EOM) !== 0)
    } else if (f.flags & FrameFlag.EOM) {
      throw protocolError(`DATA with EOM on stream ${s.id}, which is not a message stream`)
    } else if (chunks === undefined) {
      if (len > 0) this.deliver(s, f.data)
    } else {
      for (let i = 0; i < chunks.length; i++) this.deliver(s, chunks[i]!)
    }
    if (f.flags & FrameFlag.FIN) this.remoteFin(s)
    if (len > 0) this._checkConsumed(s)
  }

  private onWindow(f: WindowFrame): void {
    const s = this.lookup(f.streamId, f.type)
    if (s === null) return
    s.scredit += f.increment
    if (s.scredit > MAX_WINDOW) throw flowError(`WINDOW overflows the credit of stream ${s.id}`)
    this.scheduleStream(s)
  }

  private onRst(f: RstFrame): void {
    const s = this.lookup(f.streamId, f.type)
    if (s === null) return
    this.detach(s)
    s.destroy(new MuxError('SYNMUX_STREAM_RESET', `stream ${s.id} reset by the peer (code ${f.code})`, { wireCode: f.code }))
  }

  private onGoaway(f: GoawayFrame): void {
    const last = f.lastStreamId
    if (last !== 0 && !this.isOwnId(last)) throw protocolError(`GOAWAY last stream id ${last} has the wrong parity`)
    if (this.goawayReceived && last > this.goawayRecvLast) throw protocolError('GOAWAY last stream id increased')
    this.goawayReceived = true
    this.goawayRecvLast = last
    if (!isGracefulGoaway(f.code)) {
      this.destroy(new MuxError('SYNMUX_REMOTE_GOAWAY', `the peer closed the session with GOAWAY code ${f.code}${f.reason ? `: ${f.reason}` : ''}`, { wireCode: f.code, reason: f.reason }))
      return
    }
    if (this.st === State.OPEN) this.st = State.CLOSING
    this.clearIdle()
    for (const s of [...this.streams.values()]) {
      if (s.opener === 'local' && s.id > last && !(s.f & SF.REMOTE_OPENED)) {
        this.detach(s)
        s.destroy(new MuxError('SYNMUX_REFUSED', `stream ${s.id} not processed: the peer is going away`, { wireCode: RefuseCode.GOING_AWAY }))
      }
    }
    this.emit('goaway', { code: f.code, lastStreamId: last, reason: f.reason })
    this.maybeEnd()
  }

  private onPong(f: PongFrame): void {
    const hi = f.opaque.readUInt32BE(0)
    const id = hi * 0x1_0000_0000 + f.opaque.readUInt32BE(4)
    const p = this.pings.get(id)
    if (p === undefined) return
    this.pings.delete(id)
    const sample = performance.now() - p.at
    this.sampleRtt(sample)
    p.resolve?.(sample)
  }

  private onAck(f: AckFrame): void {
    if (f.received < this.peerAcked) throw protocolError('ACK went backwards')
    if (f.received > this.sessionBytesSent) throw protocolError('ACK of more session bytes than were sent')
    this.peerAcked = f.received
    if (this.replay !== null) {
      this.replay.ack(f.received)
      if (this.replayBlocked) {
        this.replayBlocked = false
        this.scheduleFlush()
      }
    }
  }

  private sampleRtt(sample: number): void {
    this.srtt = this.srtt === 0 ? sample : this.srtt * 0.875 + sample * 0.125
    if (this.listenerCount('rtt') > 0) this.emit('rtt', sample)
  }

  /** Message streams: a frame adding `len` bytes to a message of `partial` bytes must stay within our MAX_MESSAGE, and FIN must not cut a message (PROTOCOL.md 15.5, 15.7). */
  private checkMessageFrame(id: number, partial: number, len: number, eom: boolean, fin: boolean): void {
    if (partial + len > this.opts.maxMessage) throw protocolError(`a message of more than ${this.opts.maxMessage} bytes (our MAX_MESSAGE) on stream ${id}`)
    if (fin && !eom && partial + len > 0) throw protocolError(`FIN on stream ${id} in the middle of a message (${partial + len} bytes without EOM)`)
  }

  private remoteFin(s: MuxStream): void {
    if (s.inbox !== null) this.checkMessageFrame(s.id, s.inbox.partial, 0, false, true)
    s.f |= SF.FIN_RECEIVED
    s.push(null)
    if (s.f & SF.FIN_SENT) this.detach(s)
  }

  /**
   * Message streams (PROTOCOL.md 15): adds a frame's bytes to the message
   * being assembled (a protocol error if it would exceed our MAX_MESSAGE:
   * checked before the bytes are kept); on EOM hands the whole message to
   * the readable side. Bytes of the incomplete message are credited back
   * as they arrive (15.6), complete ones as the application reads them.
   */
  private messageIn(s: MuxStream, data: Buffer, chunks: Buffer[] | undefined, len: number, eom: boolean): void {
    const box = s.inbox!
    this.checkMessageFrame(s.id, box.partial, len, eom, false)
    if (chunks === undefined) box.add(data)
    else for (let i = 0; i < chunks.length; i++) box.add(chunks[i]!)
    this.budget.bufferedTotal += len
    if (eom) {
      const msg = box.finish()
      s.rs.rbuffered += msg.length
      s.push(msg)
    } else if (len > 0 && !(s.f & SF.IN_WINDOW_QUEUE) && creditDue(s.rs) > 0) {
      s.f |= SF.IN_WINDOW_QUEUE
      this.windowQueue.push(s)
      this.scheduleFlush()
    }
  }

  /** Hands received bytes to a stream; small or sparse views are copied so they do not pin big transport buffers. */
  private deliver(s: MuxStream, buf: Buffer): void {
    const n = buf.length
    if (n === 0) return
    if (n < 4096 || n * 4 < buf.buffer.byteLength) buf = Buffer.from(buf)
    s.rs.rbuffered += n
    this.budget.bufferedTotal += n
    s.push(buf)
  }

  // -------------------------------------------------------------------------
  // Internal: hooks called by MuxStream

  /** @internal */
  _checkConsumed(s: MuxStream): void {
    if (s.f & SF.DETACHED) return
    // Message streams: the readable side counts messages; credit counts bytes.
    const len = s.inbox !== null ? s.inbox.unread(s.readableLength) : s.readableLength
    const consumed = s.rs.rbuffered - len
    if (consumed <= 0) return
    s.rs.rbuffered = len
    this.budget.bufferedTotal -= consumed
    if (s.f & SF.FIN_RECEIVED) return
    const inc = onConsumed(s.rs, consumed, performance.now(), this.srtt, this.budget)
    if (inc > 0 && !(s.f & SF.IN_WINDOW_QUEUE)) {
      s.f |= SF.IN_WINDOW_QUEUE
      this.windowQueue.push(s)
      this.scheduleFlush()
    }
  }

  /** @internal */
  _streamRead(s: MuxStream): void {
    if (!(s.f & SF.READ_CHECK) && !(s.f & SF.DETACHED)) {
      s.f |= SF.READ_CHECK
      process.nextTick(readCheck, this, s)
    }
  }

  /** @internal */
  _streamWrite(s: MuxStream, chunk: Buffer | null, chunks: Array<{ chunk: Buffer }> | null, cb: (err?: Error | null) => void): void {
    if (s.f & (SF.DETACHED | SF.FIN_SENT)) {
      cb(new MuxError('SYNMUX_SESSION_CLOSED', `stream ${s.id} is closed`))
      return
    }
    if (s.opener === 'remote' && !(s.f & SF.ANSWERED)) this._accept(s)
    // Message streams queue every chunk as one entry, even an empty one: an entry is a message.
    const keepEmpty = s.messages
    const before = s.sqBytes
    if (chunk !== null) {
      if (chunk.length > 0 || keepEmpty) {
        s.sq.push(chunk)
        s.sqBytes += chunk.length
      }
    } else if (chunks !== null) {
      for (let i = 0; i < chunks.length; i++) {
        const c = chunks[i]!.chunk
        if (c.length > 0 || keepEmpty) {
          s.sq.push(c)
          s.sqBytes += c.length
        }
      }
    }
    if (s.sqBytes > 0 || (keepEmpty && s.sqHead < s.sq.length)) this.scheduleStream(s)
    this.sendQueued += s.sqBytes - before
    if (this.sendQueued > this.sendBudget) this.sendFull = true
    // Take writes synchronously while the queue is under the high-water mark
    // (so everything written in one tick can share one frame); beyond it,
    // or while the session's send queues are full (a peer that does not
    // read, whatever windows it grants), hold the callback: Node's
    // backpressure (write() false, 'drain') then follows the stream's
    // credit and the transport end to end.
    if (s.sqBytes <= s.writableHighWaterMark && !this.sendFull) cb()
    else s.writeCb = cb
  }

  /** @internal */
  _streamFinal(s: MuxStream, cb: (err?: Error | null) => void): void {
    if (s.f & (SF.FIN_SENT | SF.DETACHED)) {
      cb()
      return
    }
    if (s.opener === 'remote' && !(s.f & SF.ANSWERED)) this._accept(s)
    s.f |= SF.FIN_QUEUED
    s.finalCb = cb
    this.scheduleStream(s)
  }

  /** @internal */
  _streamDestroy(s: MuxStream, _err: Error | null): void {
    if (!(s.f & SF.DETACHED)) {
      if (this.st !== State.CLOSED && (s.opener === 'remote' || (s.f & SF.OPEN_SENT))) {
        const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 2)
        b[0] = 0
        b[1] = 0
        b[2] = 2
        b[3] = FrameType.RST
        b[4] = 0
        b.writeUInt32BE(s.id, 5)
        b.writeUInt16BE(s.resetCode, 9)
        this.queueControl(b)
      }
      this.detach(s)
    }
    this.sendQueued -= s.sqBytes
    if (this.sendFull && this.sendQueued <= this.sendBudget / 2) this.scheduleFlush() // releases the held writes
    s.sq = []
    s.sqHead = 0
    s.sqBytes = 0
    s.writeCb = null
    s.finalCb = null
  }

  /** @internal */
  _accept(s: MuxStream): void {
    if (s.opener !== 'remote') throw invalidState('accept() is for streams the peer opened')
    if (s.f & (SF.ANSWERED | SF.DETACHED)) return
    s.f |= SF.ANSWERED | SF.IN_OPEN_QUEUE
    this.unpend(s)
    this.openQueue.push(s)
    this.scheduleFlush()
    process.nextTick(emitOpen, s)
  }

  /** @internal */
  _refuse(s: MuxStream, code: number, reason: string | undefined): void {
    if (s.opener !== 'remote') throw invalidState('refuse() is for streams the peer opened')
    if (s.f & (SF.ANSWERED | SF.DETACHED)) throw invalidState(`stream ${s.id} was already answered`)
    s.f |= SF.ANSWERED
    this.unpend(s)
    if (this.st !== State.CLOSED) this.queueControl(encodeFrame({ type: FrameType.REFUSED, streamId: s.id, code, reason: reason ?? '' }))
    this.detach(s)
    s.destroy()
  }

  private unpend(s: MuxStream): void {
    if (s.f & SF.PENDING) {
      s.f &= ~SF.PENDING
      this.pendingCount--
    }
  }

  private detach(s: MuxStream): void {
    if (s.f & SF.DETACHED) return
    s.f |= SF.DETACHED
    this.streams.delete(s.id)
    if (s.opener === 'local') this.ownStreamCount--
    else this.peerStreamCount--
    this.unpend(s)
    if (s.inbox !== null) {
      this.budget.bufferedTotal -= s.inbox.partial
      s.inbox.clear()
    }
    this.budget.bufferedTotal -= s.rs.rbuffered
    s.rs.rbuffered = 0
    this.budget.windowExtra -= s.rs.rwin - this.opts.initialWindow
    if (this.streams.size === 0 && this.st !== State.CLOSED) {
      this.armIdle()
      this.maybeEnd()
    }
  }

  // -------------------------------------------------------------------------
  // Internal: timers

  private armKeepalive(): void {
    if (this.opts.keepAliveInterval <= 0 || this.st === State.CLOSED) return
    this.rx = false
    this.kaTimer = setTimeout(() => this.keepaliveFire(), this.opts.keepAliveInterval)
    this.kaTimer.unref?.()
  }

  private keepaliveFire(): void {
    this.kaTimer = null
    if (this.st === State.CLOSED) return
    if (this.rx) {
      this.armKeepalive()
      return
    }
    this.sendPing(null, null)
    this.kaTimer = setTimeout(() => {
      // Decide after this turn's poll phase: if our own event loop was
      // blocked, the peer's answer may be waiting in the socket right now.
      setImmediate(() => {
        this.kaTimer = null
        if (this.st === State.CLOSED) return
        if (this.rx) this.armKeepalive()
        else this.lost(new MuxError('SYNMUX_PEER_TIMEOUT', `the peer did not answer a keepalive PING within ${this.opts.keepAliveTimeout} ms`))
      })
    }, this.opts.keepAliveTimeout)
    this.kaTimer.unref?.()
  }

  private armIdle(): void {
    if (this.opts.idleTimeout <= 0 || this.st !== State.OPEN || this.idleTimer) return
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null
      if (this.st === State.OPEN && this.streams.size === 0) this.closeWith(GoawayCode.IDLE_TIMEOUT, 'idle')
    }, this.opts.idleTimeout)
    this.idleTimer.unref?.()
  }

  private clearIdle(): void {
    if (this.idleTimer) {
      clearTimeout(this.idleTimer)
      this.idleTimer = null
    }
  }

  private armAcceptTimer(): void {
    if (this.acceptTimer !== null) return
    let head = this.acceptQueue.peek()
    while (head !== undefined && !head.pending) {
      this.acceptQueue.shift()
      head = this.acceptQueue.peek()
    }
    if (head === undefined) return
    const delay = Math.max(0, Math.ceil(head.acceptDeadline - performance.now()))
    this.acceptTimer = setTimeout(() => {
      this.acceptTimer = null
      if (this.st === State.CLOSED) return
      const now = performance.now() + 1
      let s = this.acceptQueue.peek()
      while (s !== undefined && (s.acceptDeadline <= now || !s.pending)) {
        this.acceptQueue.shift()
        if (s.pending) this._accept(s)
        s = this.acceptQueue.peek()
      }
      this.armAcceptTimer()
    }, delay)
    this.acceptTimer.unref?.()
  }

  private sendPing(resolve: ((rtt: number) => void) | null, reject: ((err: Error) => void) | null): void {
    const id = ++this.pingSeq
    this.pings.set(id, { at: performance.now(), resolve, reject })
    if (this.pings.size > 64) {
      // Forget the oldest unanswered PINGs (bounded state).
      const oldest = this.pings.keys().next().value as number
      const p = this.pings.get(oldest)
      this.pings.delete(oldest)
      p?.reject?.(new MuxError('SYNMUX_PEER_TIMEOUT', 'too many unanswered PINGs'))
    }
    const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 8)
    b.fill(0, 0, FRAME_HEADER_SIZE)
    b[2] = 8
    b[3] = FrameType.PING
    b.writeUInt32BE(Math.floor(id / 0x1_0000_0000), FRAME_HEADER_SIZE)
    b.writeUInt32BE(id >>> 0, FRAME_HEADER_SIZE + 4)
    this.queueControl(b)
  }

  // -------------------------------------------------------------------------
  // Internal: output

  private queueControl(buf: Buffer): void {
    if (this.st === State.CLOSED) return
    this.control.push(buf)
    this.controlBytes += buf.length
    if (this.controlBytes > DEFAULTS.maxControlQueue) {
      this.fail(new MuxError('SYNMUX_RESOURCE_EXHAUSTED', `the peer made ${this.controlBytes} bytes of control frames pile up unread`, { wireCode: GoawayCode.RESOURCE_EXHAUSTED }))
      return
    }
    this.scheduleFlush()
  }

  private scheduleStream(s: MuxStream): void {
    if (!(s.f & SF.OPEN_SENT)) {
      if (s.f & SF.IN_OPEN_QUEUE) this.scheduleFlush()
      return
    }
    if (!(s.f & SF.IN_RING) && this.sendable(s)) {
      s.f |= SF.IN_RING
      this.ring.push(s)
      this.scheduleFlush()
    }
  }

  private sendable(s: MuxStream): boolean {
    if (s.f & (SF.DETACHED | SF.FIN_SENT)) return false
    if (s.messages) {
      const h = headMessage(s.sq, s.sqHead, this.peer === null)
      if (h > 0) return s.scredit > 0
      if (h === 0) return true
      if (h === Head.HELD) return false
    } else if (s.sqBytes > 0) return s.scredit > 0
    return (s.f & SF.FIN_QUEUED) !== 0
  }

  private scheduleFlush(immediate = false): void {
    if (this.flushScheduled || this.waitingDrain || this.st === State.CLOSED || !this.attached) return
    this.flushScheduled = true
    if (immediate) setImmediate(flushTick, this)
    else process.nextTick(flushHop, this)
  }

  private hasWork(): boolean {
    return this.control.length > 0 || this.ackPending || this.windowQueue.length > 0 || this.openQueue.length > 0 || this.ring.length > 0 || this.helloPending
  }

  /** Bytes of session frames the replay buffer can still take (Infinity when not resumable). */
  private room(): number {
    return this.replay === null ? Infinity : this.replay.limit - (this.sessionBytesSent - this.peerAcked)
  }

  /** Writes one batch of frames. @internal */
  _flush(): void {
    this.flushScheduled = false
    if (this.st === State.CLOSED || this.waitingDrain || !this.attached) return
    if (!this.helloSent && !this.helloPending) return
    if (this.dx.writableNeedDrain) {
      this.waitingDrain = true
      return
    }
    // Link frames go in `lb`; session frames in `sb`, which is the same
    // batch unless the session is resumable (then its bytes are also kept
    // for replay).
    const lb = new OutputBatch()
    const sb = this.replay !== null ? new OutputBatch(this.sessionSlab) : lb
    const cbs: Array<(err?: Error | null) => void> = []
    const limit = DEFAULTS.writeBatch
    if (this.helloPending) {
      this.helloPending = false
      this.helloSent = true
      this.helloSentAt = performance.now()
      lb.append(this.encodeOwnHello())
    }
    if (this.authHold || (this.resuming && this.earlyFrom < 0) || this.resumeVerdict) {
      // Until the peer is authenticated (or, resuming, has said where to
      // replay from), only the HELLO and link frames leave (our AUTH).
      const keep: Buffer[] = []
      let keepBytes = 0
      for (const b of this.control) {
        if (b[3]! >= 0x80 && !this.resuming) {
          lb.append(b)
          this.framesSent++
        } else {
          keep.push(b)
          keepBytes += b.length
        }
      }
      this.control = keep
      this.controlBytes = keepBytes
      const chunks = lb.finish()
      if (chunks.length > 0) this.writeChunks(chunks, lb.bytes)
      return
    }
    let replayed: Buffer[] | null = null
    let replayedBytes = 0
    if (this.replayFrom >= 0 && this.replay !== null) {
      replayed = this.replay.slice(this.replayFrom)
      replayedBytes = this.sessionBytesSent - this.replayFrom
      this.replayedBytes += replayedBytes
      this.replayFrom = -1
    }
    if (this.control.length > 0) {
      const control = this.control
      this.control = []
      this.controlBytes = 0
      let held = false
      for (let i = 0; i < control.length; i++) {
        const b = control[i]!
        if (b[3]! >= 0x80) {
          lb.append(b)
        } else if (!held && b.length <= this.room()) {
          this.sessionBytesSent += b.length
          sb.append(b)
        } else {
          // Replay buffer full: session frames wait for an ACK, in order.
          held = true
          this.control.push(b)
          this.controlBytes += b.length
          continue
        }
        this.framesSent++
      }
    }
    if (this.ackPending) {
      this.ackPending = false
      this.ackReported = this.sessionBytesReceived
      this.lastAckAt = performance.now()
      lb.header(8, FrameType.ACK, 0, 0)
      const [b, o] = lb.reserve(8)
      b.writeUInt32BE(Math.floor(this.sessionBytesReceived / 0x1_0000_0000), o)
      b.writeUInt32BE(this.sessionBytesReceived >>> 0, o + 4)
      this.framesSent++
    }
    let s: MuxStream | undefined
    while (this.room() >= MIN_ROOM && (s = this.windowQueue.shift()) !== undefined) {
      s.f &= ~SF.IN_WINDOW_QUEUE
      if (s.f & (SF.DETACHED | SF.FIN_RECEIVED)) continue
      const rs = s.rs
      const inc = rs.rwin - rs.rcredit - rs.rbuffered
      if (inc <= 0) continue
      rs.rcredit += inc
      sb.header(4, FrameType.WINDOW, 0, s.id)
      const [b, o] = sb.reserve(4)
      b.writeUInt32BE(inc, o)
      this.sessionBytesSent += FRAME_HEADER_SIZE + 4
      this.framesSent++
    }
    while (sb.bytes < limit && this.room() >= MIN_ROOM && (s = this.openQueue.shift()) !== undefined) {
      s.f &= ~SF.IN_OPEN_QUEUE
      if (s.f & SF.DETACHED) continue
      this.emitFirst(s, sb, cbs)
    }
    while (sb.bytes < limit && this.room() >= MIN_ROOM && (s = this.ring.shift()) !== undefined) {
      s.f &= ~SF.IN_RING
      if (!this.sendable(s)) continue
      this.emitData(s, sb, cbs)
      if (this.sendable(s)) {
        s.f |= SF.IN_RING
        this.ring.push(s)
      }
    }
    if (this.sendFull && this.sendQueued <= this.sendBudget / 2) this.releaseWrites(cbs)
    if (this.earlyReplay && sb.bytes > 0 && this.sessionBytesReceived > this.ackReported) {
      // EARLY_REPLAY: session frames carry an ACK of what arrived since the
      // last one (at most every ACK_PIGGYBACK_MS), so the peer's replay
      // buffer — what it sends again at once after a resume (13.9) — stays
      // about one RTT of data instead of up to ackEvery bytes.
      const now = performance.now()
      if (now - this.lastAckAt >= ACK_PIGGYBACK_MS) {
        this.ackReported = this.sessionBytesReceived
        this.lastAckAt = now
        lb.header(8, FrameType.ACK, 0, 0)
        const [b, o] = lb.reserve(8)
        b.writeUInt32BE(Math.floor(this.sessionBytesReceived / 0x1_0000_0000), o)
        b.writeUInt32BE(this.sessionBytesReceived >>> 0, o + 4)
        this.framesSent++
      }
    }
    const chunks = lb.finish()
    let bytes = lb.bytes
    if (sb !== lb) {
      const schunks = sb.finish()
      if (replayed !== null) {
        for (let i = 0; i < replayed.length; i++) chunks.push(replayed[i]!)
        bytes += replayedBytes
      }
      if (sb.bytes > 0) {
        // The replay buffer keeps the very Buffers handed to the transport
        // (no copy): scratch bytes handed out are never written again (the
        // next flush continues after them in the same slab, so a kept frame
        // pins its own bytes, not a slab), and payloads are the
        // application's chunks, which a stream already holds past its write
        // callback (see MuxStream).
        this.replay!.pushAll(schunks)
        for (let i = 0; i < schunks.length; i++) chunks.push(schunks[i]!)
        bytes += sb.bytes
      }
    }
    if (chunks.length > 0) this.writeChunks(chunks, bytes)
    for (let i = 0; i < cbs.length; i++) cbs[i]!()
    if (this.isClosed() || !this.attached) return
    if (this.hasWork()) {
      if (this.room() < MIN_ROOM && this.control.every((b) => b[3]! < 0x80) && !this.ackPending && !this.helloPending) {
        // Only session frames left and the replay buffer is full: the next
        // ACK schedules the flush.
        this.replayBlocked = true
      } else if (this.dx.writableNeedDrain) this.waitingDrain = true
      else this.scheduleFlush(true)
    } else if (this.ending && !this.endCalled) {
      this.endCalled = true
      this.dx.end()
      const t = setTimeout(() => this.dx.destroy(), LINGER_MS)
      t.unref?.()
    }
  }

  private writeChunks(chunks: Buffer[], bytes: number): void {
    const d = this.dx
    if (!d.writable) return
    this.bytesSent += bytes
    if (chunks.length === 1) {
      d.write(chunks[0])
      return
    }
    d.cork()
    for (let i = 0; i < chunks.length; i++) d.write(chunks[i])
    d.uncork()
  }

  /** Whether the stream's writable side has nothing beyond what is queued here and has ended: FIN can ride with the last bytes. */
  private finReady(s: MuxStream, n: number, eom: boolean): boolean {
    if (s.sqBytes !== n) return false
    // Message streams: FIN rides only with the end of the last queued message.
    if (s.messages && s.sq.length - s.sqHead > (eom ? 1 : 0)) return false
    if (s.f & SF.FIN_QUEUED) return true
    return s.writableEnded && s.writableLength === s.sqBytes
  }

  private emitFirst(s: MuxStream, batch: OutputBatch, cbs: Array<(err?: Error | null) => void>): void {
    const isOpen = s.opener === 'local'
    const tsize = isOpen ? targetSize(s.target) : 0
    const head = s.messages ? headMessage(s.sq, s.sqHead, this.peer === null) : s.sqBytes
    const n = Math.max(0, Math.min(head, s.scredit, this.sendFrameSize - tsize, this.room() - FRAME_HEADER_SIZE - tsize))
    const eom = s.messages && n === head
    const fin = this.finReady(s, n, eom)
    let flags = fin ? FrameFlag.FIN : 0
    if (s.messages) {
      if (isOpen) flags |= FrameFlag.MESSAGES | (eom ? FrameFlag.OPEN_EOM : 0)
      else if (eom) flags |= FrameFlag.EOM
    }
    batch.header(tsize + n, isOpen ? FrameType.OPEN : FrameType.OPENED, flags, s.id)
    if (isOpen) {
      const [b, o] = batch.reserve(tsize)
      writeTarget(s.target, b, o)
    }
    if (n > 0 || eom) this.take(s, n, batch)
    s.f |= SF.OPEN_SENT
    this.sessionBytesSent += FRAME_HEADER_SIZE + tsize + n
    this.framesSent++
    this.afterEmit(s, fin, cbs)
    if (this.sendable(s) && !(s.f & SF.IN_RING)) {
      s.f |= SF.IN_RING
      this.ring.push(s)
    }
  }

  private emitData(s: MuxStream, batch: OutputBatch, cbs: Array<(err?: Error | null) => void>): void {
    const head = s.messages ? headMessage(s.sq, s.sqHead, this.peer === null) : s.sqBytes
    const n = Math.max(0, Math.min(head, s.scredit, this.sendFrameSize, this.room() - FRAME_HEADER_SIZE))
    const eom = s.messages && n === head
    const fin = this.finReady(s, n, eom)
    if (n === 0 && !fin && !eom) return
    batch.header(n, FrameType.DATA, (fin ? FrameFlag.FIN : 0) | (eom ? FrameFlag.EOM : 0), s.id)
    if (n > 0 || eom) this.take(s, n, batch)
    this.sessionBytesSent += FRAME_HEADER_SIZE + n
    this.framesSent++
    this.afterEmit(s, fin, cbs)
  }

  /** Moves `n` bytes of the send queue into the batch; `n` = 0 takes an empty message (message streams). */
  private take(s: MuxStream, n: number, batch: OutputBatch): void {
    let left = n
    const sq = s.sq
    if (n === 0) s.sqHead++
    while (left > 0) {
      const b = sq[s.sqHead]!
      if (b.length <= left) {
        batch.append(b)
        left -= b.length
        s.sqHead++
      } else {
        batch.append(b.subarray(0, left))
        sq[s.sqHead] = b.subarray(left)
        left = 0
      }
    }
    s.sqBytes -= n
    this.sendQueued -= n
    s.scredit -= n
    if (s.sqHead === sq.length) {
      s.sq = []
      s.sqHead = 0
    }
  }

  /** What the streams may queue to send in all: maxSessionBuffer, at least one batch of output. */
  private get sendBudget(): number {
    return Math.max(this.opts.maxSessionBuffer, DEFAULTS.writeBatch)
  }

  /** The send queues shrank to half of the budget: writes held for it go on. */
  private releaseWrites(cbs: Array<(err?: Error | null) => void>): void {
    this.sendFull = false
    for (const s of this.streams.values()) {
      if (s.writeCb !== null && s.sqBytes <= s.writableHighWaterMark) {
        cbs.push(s.writeCb)
        s.writeCb = null
      }
    }
  }

  private afterEmit(s: MuxStream, fin: boolean, cbs: Array<(err?: Error | null) => void>): void {
    if (s.writeCb !== null && s.sqBytes <= s.writableHighWaterMark && !this.sendFull) {
      cbs.push(s.writeCb)
      s.writeCb = null
    }
    if (fin) {
      s.f |= SF.FIN_SENT
      if (s.finalCb !== null) {
        cbs.push(s.finalCb)
        s.finalCb = null
      }
      if (s.f & SF.FIN_RECEIVED) this.detach(s)
    }
  }
}
