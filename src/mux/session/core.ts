/**
 * What the parts of a session share: its options, its four state machines
 * (with their transitions, each in one place), the transport, what the
 * HELLOs negotiated, the counters, and the contracts between the parts.
 *
 * A {@link Session} is a small facade over eight parts, one concern each:
 * `handshake.ts` (HELLOs, capabilities, PSK auth), `link.ts` (the
 * transport: bind, detach, reconnect, resume, early replay), `inbound.ts`
 * (bytes in, one handler per frame type), `outbound.ts` (the scheduler:
 * one batch of frames per flush), `flow.ts` (receive credit and the send
 * budget), `streams.ts` (the stream table and the stream hooks),
 * `timers.ts` (keepalive, idle, accept delay, PINGs), `shutdown.ts`
 * (GOAWAY and teardown). Each part holds its own state privately and
 * reaches the others only through the interfaces below, so no part
 * imports another.
 * @packageDocumentation
 */
import type { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import type { MuxError } from '../errors.js'
import type { Frame, GoawayFrame, PongFrame } from '../wire/frames.js'
import type { Hello } from '../wire/hello.js'
import type { MuxStream, StreamHost } from '../stream/stream.js'
import type { WindowBudget } from '../stream/flow.js'
import { MIN_INITIAL_WINDOW, MIN_MAX_FRAME_SIZE } from '../wire/constants.js'
import type { ResolvedOptions } from './options.js'
import type { ReplayBuffer } from './replay.js'
import type { SessionDirectory } from './directory.js'
import type { SessionEvents } from './types.js'
import type { RedirectAddress } from '../wire/redirect.js'

/** Lifecycle: HANDSHAKING → OPEN (the peer's HELLO) → CLOSING (GOAWAY either way, or ending) → CLOSED; CLOSED from anywhere. @internal */
export const enum Life {
  HANDSHAKING = 0,
  OPEN = 1,
  CLOSING = 2,
  CLOSED = 3,
}

/**
 * The link to the peer: ATTACHED (a transport carries the session);
 * DETACHED (a resumable session lost it); RESUMING (client: its RESUME
 * HELLO is out on a new transport, the answer has not come); VERDICT
 * (client with AUTH_PSK: RESUMED came and its AUTH is out; the server's
 * ACK, where to replay from, or its refusal has not). @internal
 */
export const enum LinkState {
  ATTACHED = 0,
  RESUMING = 1,
  VERDICT = 2,
  DETACHED = 3,
}

/**
 * PSK authentication (PROTOCOL.md 16): OFF (not configured); HOLD (the
 * peer is not authenticated yet: our session frames wait); AWAIT_PROOF
 * (server: HELLOs exchanged, the client's AUTH has not come: its frames
 * are held too); DONE. @internal
 */
export const enum AuthState {
  OFF = 0,
  HOLD = 1,
  AWAIT_PROOF = 2,
  DONE = 3,
}

/** Our HELLO on the current transport: UNSENT (a server before the client's), PENDING (goes with the next flush), SENT. @internal */
export const enum HelloState {
  UNSENT = 0,
  PENDING = 1,
  SENT = 2,
}

/** The object that emits a session's events (the {@link Session} itself). @internal */
export type SessionEmitter = EventEmitter<SessionEvents>

/** The output scheduler (outbound.ts). @internal */
export interface OutboundPart {
  /** Bytes of control frames owed to the peer and not yet written. */
  readonly controlBytes: number
  /** Session bytes received that the last ACK reported. */
  readonly ackReported: number
  /** Queues a control frame (PONG, REFUSED, RST, WINDOW, GOAWAY, PING); a peer that makes them pile up fails the session. */
  queueControl(frame: Buffer): void
  /** Puts a frame in front of every queued one (our AUTH). */
  unshiftControl(frame: Buffer): void
  /** Puts an ACK of what we received in front of every queued frame (a server's first frame of a resume with AUTH_PSK). */
  unshiftAck(): void
  /** An ACK goes with the next flush. */
  requestAck(): void
  /** An ACK goes with the next flush if `ackEvery` bytes came since the last. */
  ackIfDue(ackEvery: number): void
  /** A flush once this turn of the event loop has run its I/O callbacks (`setImmediate`). */
  scheduleFlush(): void
  /** The stream may have something to send: into the round-robin ring. */
  scheduleStream(s: MuxStream): void
  /** OPEN (opener) or OPENED (acceptor) of `s` goes out with the next flush. */
  queueOpen(s: MuxStream): void
  /** A WINDOW for `s` goes out with the next flush. */
  queueWindow(s: MuxStream): void
  /** The replay buffer got room (an ACK): session frames held for it go on. */
  replayRoom(): void
  /** The next flush sends the replay buffer again from session offset `offset`. */
  replayFrom(offset: number): void
  /** The transport drained. */
  drained(): void
  /** A new transport: no drain to wait for. */
  clearDrainWait(): void
  /** The transport is gone: link frames and link state go with it; session frames stay queued. */
  dropLink(): void
  /** Teardown: nothing more to send. */
  clear(): void
  /** Writes one batch (scheduled by {@link OutboundPart.scheduleFlush}). */
  flush(): void
}

/** Receive credit and the send budget (flow.ts). @internal */
export interface FlowPart {
  /** Window growth and buffered bytes of the whole session. */
  readonly budget: WindowBudget
  /** Bytes the streams have queued to send. */
  readonly sendQueued: number
  /** The send queues went over the budget: writes are held until they are down to half. */
  readonly sendFull: boolean
  /** Hands received bytes to a byte stream. */
  deliver(s: MuxStream, buf: Buffer): void
  /** Adds a frame's bytes to a message stream's message being assembled (`eom`: it is complete). */
  messageIn(s: MuxStream, data: Buffer, chunks: Buffer[] | undefined, len: number, eom: boolean): void
  /** The application may have read: credit what it consumed, maybe a WINDOW. */
  checkConsumed(s: MuxStream): void
  /** `n` bytes were queued to send (negative: taken or dropped). */
  queued(n: number): void
  /** Whether writes held for the budget can go on (the queues are at half of it). */
  readonly releasable: boolean
  /** Releases the writes held for the budget (their callbacks into `cbs`). */
  releaseWrites(cbs: Array<(err?: Error | null) => void>): void
}

/** The stream table and the stream hooks (streams.ts). @internal */
export interface StreamsPart extends StreamHost {
  /** Open streams by id. */
  readonly map: Map<number, MuxStream>
  /** Peer-opened streams not answered yet. */
  readonly pendingCount: number
  readonly ownCount: number
  readonly peerCount: number
  /** The id our next stream gets. */
  readonly nextId: number
  /** The highest stream id the peer opened. */
  highestPeerId: number
  /** Whether `id` has our parity. */
  isOwnId(id: number): boolean
  /** The stream a frame names, `null` if it is closed (ignore the frame); throws if it never existed. */
  lookup(id: number, type: number): MuxStream | null
  /** A stream we open: takes the next id. */
  addLocal(s: MuxStream): void
  /** A stream the peer opened. */
  addRemote(s: MuxStream): void
  /** The stream leaves the table (closed, reset or refused). */
  detach(s: MuxStream): void
}

/** Keepalive, idle, accept delay, PINGs and the RTT (timers.ts). @internal */
export interface TimersPart {
  /** Smoothed RTT in ms (0 until measured). */
  readonly srtt: number
  /** Something arrived (keepalive: the peer is alive). */
  heard(): void
  armKeepalive(): void
  /** The transport is gone: no keepalive on it, no PONG will come. */
  dropLink(): void
  /** The handshake timer stops (the HELLO, and any AUTH, came). */
  clearHandshake(): void
  armIdle(): void
  clearIdle(): void
  /** A peer-opened stream (opened at `now`) is accepted after the accept delay unless answered. */
  queueAccept(s: MuxStream, now: number): void
  /** Sends a PING; `resolve`/`reject` (or none) get its RTT. */
  sendPing(resolve: ((rtt: number) => void) | null, reject: ((err: Error) => void) | null): void
  onPong(f: PongFrame): void
  sampleRtt(ms: number): void
  /** Teardown: every timer stops, every PING is rejected. */
  clear(): void
}

/** GOAWAY and teardown (shutdown.ts). @internal */
export interface ShutdownPart {
  readonly goawaySent: boolean
  readonly goawayReceived: boolean
  /** Highest peer stream id our GOAWAY let through. */
  readonly goawaySentLast: number
  /** The session ends its transport gracefully (GOAWAY done, no stream left). */
  readonly ending: boolean
  /** The error the session failed with. */
  readonly error: MuxError | undefined
  /** Graceful: GOAWAY with `code`, no new stream, the transport ends when the streams are done. */
  closeWith(code: number, reason: string): void
  /** Ends the transport once GOAWAY went either way and no stream is left. */
  maybeEnd(): void
  /** Ends our side of the transport after the last flush of a graceful close. */
  endTransport(): void
  onGoaway(f: GoawayFrame): void
  /** A violation by the peer or a lost session: GOAWAY with its code if there is a transport to say it on, then close. */
  fail(err: MuxError): void
  /** Closes at once, every stream destroyed (with `err`). */
  destroy(err?: MuxError): void
  /** Resolves when the session is closed. */
  closed(): Promise<void>
}

/** HELLOs, capabilities and PSK authentication (handshake.ts). @internal */
export interface HandshakePart {
  /** When our HELLO left (RTT sample of the exchange). */
  readonly sentAt: number
  /** Our HELLO for the current transport (records it for the auth proofs). */
  encodeOwnHello(): Buffer
  /** Our pending HELLO, leaving now: SENT, and when it left. */
  takeHello(): Buffer
  /** The peer's HELLO arrived. */
  onHello(h: Hello, raw: Buffer): void
  /** Server, before the client's AUTH: holds every frame (bounded); on a valid AUTH, processes them. */
  holdUntilAuth(frame: Frame, size: number): void
  /** Client: checks the server's proof and queues our AUTH in front of everything. */
  authenticateServer(h: Hello, raw: Buffer): void
  /** Client, resuming: a new nonce, the peer not authenticated again yet, our RESUME HELLO pending. */
  restart(): void
  /** Server, resumed by the registry on a new transport: these HELLOs are the exchange. */
  adopt(peerRaw: Buffer, ownHello: Buffer): void
  /** Whether this side offers EARLY_REPLAY (PROTOCOL.md 13.9). */
  offersEarlyReplay(): boolean
}

/** The transport (link.ts). @internal */
export interface LinkPart {
  /** Client: where a REDIRECT said the session lives, `null` until one did. */
  readonly redirect: RedirectAddress | null
  /** Client, resuming with EARLY_REPLAY: where its replay on the new transport starts (REPLAY_FROM), -1 otherwise. */
  readonly earlyFrom: number
  /** Starts reading and writing `d`. */
  bind(d: Duplex): void
  /** Teardown: stops reading the transport (keeps a no-op `'error'` listener on it). */
  release(): void
  /** The transport was lost: detach and resume if we can, else fail. */
  lost(err: MuxError): void
  /** Client: resumes over a new transport. */
  resume(d: Duplex): void
  /** Client: the server's answer to our RESUME. */
  onResumeAnswer(h: Hello, raw: Buffer): void
  /** Client, resuming with AUTH_PSK: the server's first frame after our AUTH. */
  onResumeVerdict(frame: Frame): void
  /** Server: the registry moves the session onto `d`. */
  resumeOn(d: Duplex, peerRaw: Buffer, ownHello: Buffer, leftover: Buffer, received: number, ack: boolean, skip: number): void
  /** Teardown: the reconnect, detach and attempt timers stop. */
  clearTimers(): void
}

/** Bytes in (inbound.ts). @internal */
export interface InboundPart {
  /** Session bytes received between two ACKs we send (set once resumption is in effect). */
  ackEvery: number
  onData(chunk: Buffer | string): void
  onEnd(): void
  onFrame(frame: Frame, size: number): void
  /** A new transport: the peer's HELLO comes first on it. */
  expectHello(): void
  /** The peer's HELLO on this transport was read by someone else (the registry). */
  helloRead(): void
  /** The first `n` session bytes on the new transport were received already: dropped. */
  skip(n: number): void
  /** MESSAGES is in effect: the decoder accepts its flags. */
  enableMessages(): void
  /** The transport is gone: a fresh decoder for the next. */
  dropLink(): void
  /** Teardown: nothing more is read. */
  stop(): void
}

/** A session's shared state and the way to its parts. @internal */
export class SessionCore {
  readonly opts: ResolvedOptions
  readonly role: 'client' | 'server'
  /** Emits the session's events (the Session). */
  readonly session: SessionEmitter
  /** The transport (a LaneSet when striped). */
  dx: Duplex
  /** The session id (the server chooses it), `null` before. */
  id: Buffer | null = null
  /** The peer's HELLO (of the NEW exchange), `null` before. */
  peer: Hello | null = null

  // What the HELLOs negotiated.
  /** Credit the peer grants per stream. */
  peerInitialWindow = MIN_INITIAL_WINDOW
  /** Largest frame payload we send. */
  sendFrameSize = MIN_MAX_FRAME_SIZE
  /** MESSAGES is in effect (PROTOCOL.md 15). */
  messagesOn = false
  /** The peer's MAX_MESSAGE (0 until known, or without MESSAGES). */
  peerMax = 0
  /** RESUME is in effect (PROTOCOL.md 13). */
  resumable = false
  /** EARLY_REPLAY is in effect (PROTOCOL.md 13.9). */
  earlyReplay = false
  /** Sent session frames kept for replay (a resuming client keeps them from the first). */
  replay: ReplayBuffer | null = null
  /** Server: the registry that finds this session by id. */
  directory: SessionDirectory | null = null
  /** Server: why a RESUME/JOIN got NEW (RESUME_REFUSED), 0 if not. */
  refuseResume = 0

  // Counters (see SessionStats).
  bytesSent = 0
  bytesReceived = 0
  sessionBytesSent = 0
  sessionBytesReceived = 0
  peerAcked = 0
  framesSent = 0
  framesReceived = 0
  resumes = 0
  replayedBytes = 0
  duplicateBytes = 0

  // The parts (set once by the Session's constructor).
  output!: OutboundPart
  flow!: FlowPart
  streams!: StreamsPart
  timers!: TimersPart
  shutdown!: ShutdownPart
  handshake!: HandshakePart
  link!: LinkPart
  input!: InboundPart

  constructor(session: SessionEmitter, opts: ResolvedOptions, dx: Duplex) {
    this.session = session
    this.opts = opts
    this.role = opts.role
    this.dx = dx
    this.authState = opts.auth !== null ? AuthState.HOLD : AuthState.OFF
  }

  // ---------------------------------------------------------------------------
  // Lifecycle

  /** Lifecycle state; changed only by the methods below. */
  life: Life = Life.HANDSHAKING

  /** Whether the session is closed. (A method, so TypeScript does not narrow `life` across calls that may close the session.) */
  isClosed(): boolean {
    return this.life === Life.CLOSED
  }

  /** The peer's HELLO: HANDSHAKING → OPEN. */
  opened(): void {
    if (this.life === Life.HANDSHAKING) this.life = Life.OPEN
  }

  /** GOAWAY either way, or ending: → CLOSING. */
  closing(): void {
    if (this.life !== Life.CLOSED) this.life = Life.CLOSING
  }

  /** Teardown: → CLOSED. */
  toClosed(): void {
    this.life = Life.CLOSED
  }

  // ---------------------------------------------------------------------------
  // Link

  /** Link state; changed only by the methods below. */
  linkState: LinkState = LinkState.ATTACHED

  /** A transport is bound (resuming or not). */
  get attached(): boolean {
    return this.linkState !== LinkState.DETACHED
  }

  /** Client: the answer to our RESUME HELLO (or, with AUTH_PSK, the verdict after our AUTH) has not come. */
  get resumePending(): boolean {
    return this.linkState === LinkState.RESUMING || this.linkState === LinkState.VERDICT
  }

  /** The session runs on a transport: ATTACHED. */
  linkUp(): void {
    this.linkState = LinkState.ATTACHED
  }

  /** Client: RESUME HELLO out on a new transport: → RESUMING. */
  linkResuming(): void {
    this.linkState = LinkState.RESUMING
  }

  /** Client with AUTH_PSK: RESUMED came, our AUTH is out: → VERDICT. */
  linkVerdict(): void {
    this.linkState = LinkState.VERDICT
  }

  /** The transport is gone: → DETACHED. */
  linkDown(): void {
    this.linkState = LinkState.DETACHED
  }

  // ---------------------------------------------------------------------------
  // Authentication

  /** PSK authentication state; changed only by the methods below. */
  authState: AuthState

  /** Our session frames wait: the peer is not authenticated yet. */
  get authHold(): boolean {
    return this.authState === AuthState.HOLD || this.authState === AuthState.AWAIT_PROOF
  }

  /** Server: the client's AUTH has not come (its frames are held). */
  get authPending(): boolean {
    return this.authState === AuthState.AWAIT_PROOF
  }

  /** Not authenticated (again) yet: HOLD (or OFF without a key). */
  authRestart(): void {
    this.authState = this.opts.auth !== null ? AuthState.HOLD : AuthState.OFF
  }

  /** Server: HELLOs exchanged, the client's AUTH to come: → AWAIT_PROOF. */
  authAwaitProof(): void {
    this.authState = AuthState.AWAIT_PROOF
  }

  /** The peer proved the key (client: the server's proof; server: the client's AUTH): → DONE. */
  authDone(): void {
    this.authState = AuthState.DONE
  }

  // ---------------------------------------------------------------------------
  // Our HELLO

  /** Our HELLO on this transport; changed only by the methods below. */
  helloState: HelloState = HelloState.UNSENT

  /** Our HELLO goes with the next flush. */
  helloPending(): void {
    this.helloState = HelloState.PENDING
  }

  /** Our HELLO went (or is no longer to be sent on this transport). */
  helloSent(): void {
    this.helloState = HelloState.SENT
  }
}
