/**
 * A session's handshake (PROTOCOL.md 3, 16): our HELLO, the peer's, what
 * the two negotiate (window, frame size, MESSAGES, RESUME, EARLY_REPLAY),
 * and PSK authentication — the client checks the server's proof and sends
 * its AUTH first; the server holds everything the client sends until that
 * AUTH proves the key.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Capability, DEFAULTS, FrameType, HelloExtension, HelloKind, MIN_INITIAL_WINDOW, MIN_MAX_MESSAGE, ResumeRefused, SESSION_ID_SIZE } from '../wire/constants.js'
import { encodeFrame, type Frame } from '../wire/frames.js'
import { type Hello, encodeHello, readU32Ext, u32, u64 } from '../wire/hello.js'
import { handshakeError } from '../wire/errors.js'
import { AUTH_HOLD_LIMIT, AUTH_SIZE, authError, clientProof, newNonce, proofMatches, serverProof } from '../wire/auth.js'
import { MuxError } from '../errors.js'
import { SF } from '../stream/flags.js'
import { LaneSet } from '../lanes/lane-set.js'
import { type HandshakePart, LinkState, type SessionCore } from './core.js'
import { ReplayBuffer } from './replay.js'

const ZERO_ID = Buffer.alloc(SESSION_ID_SIZE)

/** The handshake of a session. @internal */
export class Handshake implements HandshakePart {
  readonly #c: SessionCore
  #sentAt = 0
  /** Our HELLO and the peer's as sent (the transcript the auth proofs cover). */
  #ownHelloBytes: Buffer | null = null
  #peerHelloBytes: Buffer | null = null
  #nonce: Buffer | null
  #peerNonce: Buffer | null = null
  /** Server: frames of the client held until its AUTH. */
  #held: Array<[Frame, number]> = []
  #heldBytes = 0

  constructor(core: SessionCore) {
    this.#c = core
    this.#nonce = core.opts.auth ? newNonce() : null
  }

  get sentAt(): number {
    return this.#sentAt
  }

  takeHello(): Buffer {
    this.#c.helloSent()
    this.#sentAt = performance.now()
    return this.encodeOwnHello()
  }

  encodeOwnHello(): Buffer {
    const c = this.#c
    const server = c.role === 'server'
    const resuming = c.linkState === LinkState.RESUMING
    if (c.id === null && server) c.id = c.directory?._newId?.() ?? randomBytes(SESSION_ID_SIZE)
    const extensions: Array<[number, Buffer]> = []
    let capabilities = 0
    const auth = c.opts.auth
    if (auth !== null) {
      capabilities |= Capability.AUTH_PSK
      extensions.push([HelloExtension.AUTH_NONCE, this.#nonce!])
      if (server && this.#peerHelloBytes !== null) {
        extensions.push([HelloExtension.AUTH_PROOF, serverProof(auth.key, this.#peerHelloBytes, this.#nonce!)])
      }
    }
    const res = c.opts.resumption
    if (res !== null && (!server || (c.directory !== null && c.refuseResume === 0))) {
      capabilities |= Capability.RESUME
      extensions.push([HelloExtension.REPLAY_BUFFER, u32(res.replayBuffer)])
    }
    if ((capabilities & Capability.RESUME) && c.dx instanceof LaneSet) capabilities |= Capability.STRIPE
    if ((capabilities & Capability.RESUME) && this.offersEarlyReplay()) capabilities |= Capability.EARLY_REPLAY
    if (c.opts.maxMessage > 0) {
      capabilities |= Capability.MESSAGES
      extensions.push([HelloExtension.MAX_MESSAGE, u32(c.opts.maxMessage)])
    }
    if (resuming) extensions.push([HelloExtension.RECEIVED, u64(c.sessionBytesReceived)])
    if (resuming && c.link.earlyFrom >= 0) extensions.push([HelloExtension.REPLAY_FROM, u64(c.link.earlyFrom)])
    if (server && c.refuseResume !== 0) extensions.push([HelloExtension.RESUME_REFUSED, Buffer.from([c.refuseResume])])
    const hello = encodeHello({
      kind: resuming ? HelloKind.RESUME : HelloKind.NEW,
      role: c.role,
      capabilities,
      sessionId: server || resuming ? c.id! : ZERO_ID,
      initialWindow: c.opts.initialWindow,
      maxFrameSize: c.opts.maxFrameSize,
      maxStreams: c.opts.maxStreams,
      extensions,
    })
    this.#ownHelloBytes = hello
    return hello
  }

  /**
   * Whether this side offers EARLY_REPLAY (PROTOCOL.md 13.9): without
   * AUTH_PSK (whose verdict must come first), and a client only on an
   * unstriped session (a striped one's lanes number their frames).
   */
  offersEarlyReplay(): boolean {
    const c = this.#c
    if (c.opts.auth !== null) return false
    return c.role === 'server' || !(c.dx instanceof LaneSet)
  }

  restart(): void {
    const c = this.#c
    this.#nonce = c.opts.auth ? newNonce() : null
    c.authRestart()
    c.helloPending()
  }

  adopt(peerRaw: Buffer, ownHello: Buffer): void {
    this.#c.helloSent()
    this.#ownHelloBytes = ownHello
    this.#peerHelloBytes = Buffer.from(peerRaw)
  }

  authenticateServer(h: Hello, raw: Buffer): void {
    const c = this.#c
    const auth = c.opts.auth
    const offered = (h.capabilities & Capability.AUTH_PSK) !== 0
    if (auth === null) {
      if (offered) throw authError('the server requires a pre-shared key and none is configured')
      return
    }
    if (!offered) throw authError('the server does not authenticate (no AUTH_PSK)')
    const ns = h.extensions.get(HelloExtension.AUTH_NONCE)
    if (ns === undefined || ns.length !== AUTH_SIZE) throw authError('the server sent no nonce')
    if (!proofMatches(h.extensions.get(HelloExtension.AUTH_PROOF), serverProof(auth.key, this.#ownHelloBytes!, ns))) {
      throw authError('the server does not hold our key')
    }
    c.output.unshiftControl(encodeFrame({ type: FrameType.AUTH, proof: clientProof(auth.key, raw, this.#nonce!) }))
    c.authDone()
  }

  holdUntilAuth(frame: Frame, size: number): void {
    const c = this.#c
    if (frame.type !== FrameType.AUTH) {
      this.#heldBytes += size
      if (this.#heldBytes > AUTH_HOLD_LIMIT) throw authError(`more than ${AUTH_HOLD_LIMIT} bytes before AUTH`)
      this.#held.push([frame, size])
      return
    }
    if (!proofMatches(frame.proof, clientProof(c.opts.auth!.key, this.#ownHelloBytes!, this.#peerNonce!))) {
      throw authError('the client does not hold our key')
    }
    c.authDone()
    c.timers.clearHandshake()
    const held = this.#held
    this.#held = []
    this.#heldBytes = 0
    c.output.scheduleFlush()
    c.session.emit('handshake')
    for (const [f, n] of held) {
      if (c.isClosed()) return
      c.input.onFrame(f, n)
    }
  }

  onHello(h: Hello, raw: Buffer): void {
    const c = this.#c
    this.#peerHelloBytes = Buffer.from(raw)
    const expected = c.role === 'client' ? 'server' : 'client'
    if (h.role !== expected) throw handshakeError(`role conflict: the peer is also a ${h.role}`)
    const zero = h.sessionId.equals(ZERO_ID)
    if (c.linkState === LinkState.RESUMING) return c.link.onResumeAnswer(h, raw)
    if (c.role === 'client') {
      if (h.kind !== HelloKind.NEW) throw handshakeError(`unexpected HELLO kind ${h.kind} from the server`)
      if (zero) throw handshakeError('the server sent an all-zero session id')
      this.authenticateServer(h, raw)
      c.id = h.sessionId
      c.timers.sampleRtt(performance.now() - this.#sentAt)
    } else {
      // A RESUME or JOIN that reaches a fresh session is answered with NEW
      // (the registry hands the ones it can honour to their session).
      if (h.kind === HelloKind.NEW && !zero) throw handshakeError('a client NEW HELLO must carry a zero session id')
      if (h.kind !== HelloKind.NEW && c.refuseResume === 0) c.refuseResume = c.directory !== null ? ResumeRefused.UNKNOWN_ID : ResumeRefused.NOT_SUPPORTED
      if (c.opts.auth !== null) {
        if (!(h.capabilities & Capability.AUTH_PSK)) throw authError('the client offered no authentication')
        const nc = h.extensions.get(HelloExtension.AUTH_NONCE)
        if (nc === undefined || nc.length !== AUTH_SIZE) throw authError('the client sent no nonce')
        this.#peerNonce = nc
        c.authAwaitProof()
      }
      c.id = c.directory?._newId?.() ?? randomBytes(SESSION_ID_SIZE)
      c.helloPending()
    }
    c.peer = h
    c.peerInitialWindow = h.initialWindow
    c.sendFrameSize = Math.min(h.maxFrameSize, c.opts.maxFrameSize)
    this.#setupMessages(h)
    this.#setupResumption(h)
    if (!c.authPending) c.timers.clearHandshake()
    c.opened()
    const extra = h.initialWindow - MIN_INITIAL_WINDOW
    for (const s of c.streams.map.values()) {
      if (s.f & SF.PRE_HELLO) {
        s.f &= ~SF.PRE_HELLO
        s.scredit += extra
        c.output.scheduleStream(s)
      }
    }
    // The server's first RTT sample is its PING (it rides with its HELLO);
    // the client has one already (HELLO to HELLO), so it sends none: its
    // PING would cost the server a PONG write while a first request's
    // answer is on its way (PROTOCOL.md 8).
    if (c.role === 'server') c.timers.sendPing(null, null)
    c.timers.armKeepalive()
    if (c.streams.map.size === 0) c.timers.armIdle()
    c.output.scheduleFlush()
    if (!c.authPending) c.session.emit('handshake')
  }

  /**
   * After the NEW exchange: is MESSAGES in effect (PROTOCOL.md 15)? Then the
   * decoder accepts its flags and we learn the peer's MAX_MESSAGE. Message
   * streams opened before the HELLO that cannot go on fail here.
   */
  #setupMessages(h: Hello): void {
    const c = this.#c
    if (c.opts.maxMessage > 0 && (h.capabilities & Capability.MESSAGES)) {
      const max = readU32Ext(h, HelloExtension.MAX_MESSAGE)
      if (max === null || max < MIN_MAX_MESSAGE) throw handshakeError('MESSAGES without a valid MAX_MESSAGE')
      c.messagesOn = true
      c.peerMax = max
      c.input.enableMessages()
    }
    for (const s of [...c.streams.map.values()]) {
      if (!s.messages || s.opener !== 'local') continue
      let err: MuxError | null = null
      if (!c.messagesOn) {
        err = new MuxError('SYNMUX_MESSAGES_UNSUPPORTED', `stream ${s.id}: the peer does not offer message mode (no MESSAGES in its HELLO)`)
      } else {
        for (let i = s.sqHead; i < s.sq.length; i++) {
          const n = s.sq[i]!.length
          if (n > c.peerMax) {
            err = new MuxError('SYNMUX_MESSAGE_TOO_LARGE', `stream ${s.id}: a message of ${n} bytes written before the peer's HELLO is above its MAX_MESSAGE ${c.peerMax}`)
            break
          }
        }
      }
      if (err !== null) s.destroy(err)
    }
  }

  /** After the NEW exchange: is RESUME in effect? Sets up the replay buffer and the ACK rate. */
  #setupResumption(h: Hello): void {
    const c = this.#c
    const r = c.opts.resumption
    if (r === null || !(h.capabilities & Capability.RESUME)) {
      // A client that kept its first frames for a resumption the server does not offer: nothing to keep.
      c.replay = null
      return
    }
    if (c.role === 'server' && (c.directory === null || c.refuseResume !== 0)) return
    const peerReplay = readU32Ext(h, HelloExtension.REPLAY_BUFFER)
    if (peerReplay === null || peerReplay < MIN_INITIAL_WINDOW) throw handshakeError('RESUME without a valid REPLAY_BUFFER')
    c.resumable = true
    c.earlyReplay = (h.capabilities & Capability.EARLY_REPLAY) !== 0 && c.opts.auth === null && this.offersEarlyReplay()
    // Either side keeps at most the smaller REPLAY_BUFFER unacknowledged
    // (13.1), so no peer can make us buffer more than our own (a striped
    // receiver's reorder buffer, 14.3).
    if (c.replay === null) c.replay = new ReplayBuffer(Math.min(r.replayBuffer, peerReplay))
    else c.replay.limit = Math.min(c.replay.limit, peerReplay)
    // At least every quarter of that bound (13.1 requires half).
    c.input.ackEvery = Math.min(DEFAULTS.ackEvery, Math.floor(Math.min(r.replayBuffer, peerReplay) / 4))
    if (c.role === 'server') c.directory!._register(c.session)
  }
}
