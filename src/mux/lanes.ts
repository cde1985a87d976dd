/**
 * Striping (PROTOCOL.md 14): one session over several transports, "lanes".
 *
 * A {@link LaneSet} is the transport a striped session reads and writes. Its
 * writable side takes the session's byte stream (its HELLO, then frames) and
 * puts every session frame on exactly one lane (a `SEQ` first where that
 * lane's sequence jumps); its readable side gives the session the peer's
 * frames back in session order. Lanes join (HELLO JOIN / JOINED, each
 * authenticated), die (their unacknowledged frames are sent again on the
 * others) and leave while streams run; when the last lane is gone the
 * LaneSet closes and the session's resumption takes over.
 *
 * Scheduling: each lane tracks the bytes it was given and, through its own
 * PING/PONG marks (answered by the peer in lane order, so a PONG says how
 * many bytes the lane has delivered), its delivery rate and RTT. A frame
 * goes to the lane expected to deliver it first: (bytes in flight on the
 * lane + the frame) / its rate + half its RTT.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream'
import { Capability, DEFAULTS, FRAME_HEADER_SIZE, FrameType, GoawayCode, HELLO_PREAMBLE_SIZE, HelloExtension, HelloKind, ResumeRefused } from './constants.js'
import { type Hello, decodeHello, encodeFrame, encodeHello } from './codec.js'
import { AUTH_SIZE, awaitAuth, clientProof, newNonce, proofMatches, serverProof } from './auth.js'
import { MuxError, ProtocolError, invalidState } from './errors.js'
import { decodeRedirect } from './redirect.js'

/** First byte of the payload of the PINGs a LaneSet sends for itself (session PINGs start with 0). */
const MARK = 0xff
/** A lane whose PING mark is unanswered this long (plus twice the worst RTT) is dead (the pool's rule). */
const STALL_BASE_MS = 1000
/** Assumed delivery rate of a lane before it has been measured (bytes per ms; 8 Mbit/s). */
const INITIAL_RATE = 1000
/** Bytes a lane may have in flight before its rate is measured (more than a mark's 16 KiB sample). */
const UNMEASURED_INFLIGHT = 64 * 1024
/** A lane ended while its peer still had bytes to read from it is destroyed after this long. */
const LANE_LINGER_MS = 5000
/** Block size of a lane's queue of owed PONGs. */
const OWED_BLOCK = 4096

/** A lane as {@link LaneSet.lanes} reports it. */
export interface LaneInfo {
  /** Lane index (0: the transport the session started or resumed on). */
  index: number
  /** `'joining'` (JOIN handshake), `'open'`, `'closing'` (leaving), `'closed'`. */
  state: 'joining' | 'open' | 'closing' | 'closed'
  /** Smoothed RTT in ms from the lane's PING marks (0 until measured). */
  rtt: number
  /** Delivery rate in bytes/ms, measured from the PING marks. */
  rate: number
  /** Bytes written to the lane (frames, SEQs, PINGs). */
  bytesSent: number
  /** Bytes read from the lane. */
  bytesReceived: number
  /** Bytes given to the lane that the peer has not yet confirmed (in flight). */
  inflight: number
  /** Session frames sent on this lane that the peer has not acknowledged yet. */
  unacked: number
  /** Session frames sent again on other lanes after this one died. */
  resent: number
}

/** Options of a {@link LaneSet}. @internal */
export interface LaneSetOptions {
  role: 'client' | 'server'
  /** The PSK (AUTH_PSK) or null. */
  key: Buffer | null
  /** Largest frame payload we accept. */
  maxFrameSize: number
  /** Client: lanes wanted, lane 0 included. */
  lanes: number
  /** Server: most lanes a session may have. */
  maxLanes: number
  /** Client: opens the transport of a new lane. */
  connect: (() => Duplex | Promise<Duplex>) | null
  /** JOIN handshake time limit (ms). */
  handshakeTimeout: number
  /** A violation of PROTOCOL.md 14 by the peer, or a limit it broke: the session fails with it (set by {@link LaneSet._hooks}). */
  onProtocolError?: (err: MuxError) => void
  /** Lane events, for the session's `'lane'` event (set by {@link LaneSet._hooks}). */
  onLane?: (info: LaneInfo, err?: MuxError) => void
  /** Server: the peer's HELLO was already read off lane 0 (a RESUME): it, and the bytes after it. */
  peerHello?: { hello: Hello; raw: Buffer; rest: Buffer }
  /** Server: our HELLO (RESUMED) was already written on lane 0 by the registry; `received`: where the peer's session frames start (our R). */
  ownHello?: { hello: Hello; raw: Buffer; received: number }
  /** Server: called once the set knows its session id (routing of JOINs). */
  register?: (id: Buffer, set: LaneSet) => void
  /** Server: the set is gone. */
  unregister?: (id: Buffer, set: LaneSet) => void
}

/** Splits a byte stream into an optional HELLO and then whole frames, without copying. */
class Splitter {
  private parts: Buffer[] = []
  private bytes = 0
  hello: boolean

  constructor(
    hello: boolean,
    private readonly maxFrame: number,
  ) {
    this.hello = hello
  }

  push(b: Buffer): void {
    if (b.length === 0) return
    this.parts.push(b)
    this.bytes += b.length
  }

  private peek(n: number): Buffer {
    if (this.parts[0]!.length < n) {
      const all = Buffer.concat(this.parts, this.bytes)
      this.parts = [all]
    }
    return this.parts[0]!
  }

  private take(n: number): Buffer {
    const head = this.peek(n)
    let out: Buffer
    if (head.length === n) {
      this.parts.shift()
      out = head
    } else {
      out = head.subarray(0, n)
      this.parts[0] = head.subarray(n)
    }
    this.bytes -= n
    return out
  }

  /** The next unit: `{ hello }` (raw HELLO bytes and the decoded HELLO), `{ frame }`, or null (need more). Throws ProtocolError. */
  next(): { hello: Hello; raw: Buffer } | { type: number; frame: Buffer } | null {
    if (this.hello) {
      if (this.bytes < HELLO_PREAMBLE_SIZE) {
        if (this.bytes > 0) decodeHello(this.peek(this.bytes)) // checks the magic early
        return null
      }
      const r = decodeHello(this.peek(this.bytes))
      if (r === null) return null
      this.hello = false
      return { hello: r.hello, raw: this.take(r.size) }
    }
    if (this.bytes < FRAME_HEADER_SIZE) return null
    const h = this.peek(FRAME_HEADER_SIZE)
    const len = (h[0]! << 16) | (h[1]! << 8) | h[2]!
    if (len > this.maxFrame) throw new ProtocolError('SYNMUX_FRAME_SIZE_ERROR', `frame of ${len} bytes exceeds max frame size ${this.maxFrame}`, GoawayCode.FRAME_SIZE_ERROR)
    if (this.bytes < FRAME_HEADER_SIZE + len) return null
    const type = h[3]!
    return { type, frame: this.take(FRAME_HEADER_SIZE + len) }
  }

  get buffered(): number {
    return this.bytes
  }

  /** Everything buffered and not yet returned (the splitter is left empty). */
  rest(): Buffer {
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.bytes)
    this.parts = []
    this.bytes = 0
    return out ?? Buffer.alloc(0)
  }
}

function readU64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 0x1_0000_0000 + b.readUInt32BE(off + 4)
}

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(n)
  return b
}

function protocolError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_PROTOCOL_ERROR', message, GoawayCode.PROTOCOL_ERROR)
}

/** A HELLO's RECEIVED, or `absent` (a RESUMED with AUTH_PSK has none: R comes in the server's first ACK, PROTOCOL.md 13.4). */
function received(h: Hello, absent = 0): number {
  const v = h.extensions.get(HelloExtension.RECEIVED)
  return v !== undefined && v.length === 8 ? readU64(v, 0) : absent
}

/** One transport of a striped session. */
class Lane {
  state: LaneInfo['state'] = 'joining'
  readonly splitter: Splitter
  /** Session offset of the next session frame the peer sends on this lane (-1: needs a SEQ). */
  recvNext = -1
  /** Session offset following the last session frame we sent on this lane (-1: none yet). */
  sendNext = -1
  written = 0
  delivered = 0
  bytesReceived = 0
  rate = INITIAL_RATE
  /** The rate has been measured at least once. */
  measured = false
  srtt = 0
  /** Outstanding PING mark: when it was sent and the lane byte count it marks. */
  mark: { at: number; written: number } | null = null
  lastMark = 0
  /** Bytes of frames (not PING/PONG) written since the last mark. */
  dataSinceMark = 0
  /** When the lane got data to deliver after being idle (0: idle). */
  busySince = 0
  /** Unacknowledged session frames sent on this lane: offsets and bytes, oldest first. */
  sentOff: number[] = []
  sentBuf: Buffer[] = []
  sentHead = 0
  /** Payloads of session PINGs sent on this lane (sent again if it dies). */
  pings: Buffer[] = []
  resent = 0
  ended = false
  /** The peer's AUTH on this lane is verified (or none is needed): PINGs are answered here. */
  authed = false
  /** PONGs owed on this lane that wait for it to drain, packed in blocks (bytes, not one Buffer each). */
  owed: Array<{ buf: Buffer; used: number }> = []
  owedBytes = 0
  linger: NodeJS.Timeout | null = null
  onData: (b: Buffer) => void = () => {}
  onEnd: () => void = () => {}
  onClose: () => void = () => {}
  onDrain: () => void = () => {}

  constructor(
    readonly index: number,
    readonly dx: Duplex,
    hello: boolean,
    maxFrame: number,
  ) {
    this.splitter = new Splitter(hello, maxFrame)
  }

  get inflight(): number {
    return this.written - this.delivered
  }

  info(): LaneInfo {
    return {
      index: this.index,
      state: this.state,
      rtt: +this.srtt.toFixed(3),
      rate: +this.rate.toFixed(1),
      bytesSent: this.written,
      bytesReceived: this.bytesReceived,
      inflight: this.inflight,
      unacked: this.sentBuf.length - this.sentHead,
      resent: this.resent,
    }
  }
}

/**
 * The transport of a striped session (PROTOCOL.md 14): a Duplex over one or
 * more lanes. Created by the session (client, `lanes` option) or by the
 * {@link SessionRegistry} (server); applications use the session's
 * `addLane()`, `removeLane()` and `stats().lanes`.
 */
export class LaneSet extends Duplex {
  #o: LaneSetOptions
  readonly #lanes: Lane[] = []
  #nextIndex = 1
  /** Own HELLO seen (outgoing), peer HELLO seen (incoming). */
  #own: Hello | null = null
  #ownRaw: Buffer | null = null
  #peer: Hello | null = null
  #peerRaw: Buffer | null = null
  #striped = false
  #authSent: boolean
  readonly #out: Splitter
  /** Session offset of the next session frame the session writes (-1: not known yet). */
  #sendOff = -1
  /** Frames written by the session before `#sendOff` was known. */
  #early: Array<[number, Buffer]> = []
  /** Received count R: offset of the next session frame to hand to the session (-1: not known yet). */
  #recvR = -1
  readonly #held = new Map<number, Buffer>()
  #heldBytes = 0
  #heldLimit = 0
  /** The peer's cumulative ACK (frames before it are delivered). */
  #acked = 0
  #timer: NodeJS.Timeout | null = null
  #pendingCb: ((err?: Error | null) => void) | null = null
  #joinDelay = 0
  #joinTimer: NodeJS.Timeout | null = null
  #failed = false
  /** The last ACK the session sent: sent again when a lane dies (it may have died with it). */
  #lastAck: Buffer | null = null
  /** PONG bytes owed on all lanes, waiting for them to drain: within the control-queue cap (PROTOCOL.md 10). */
  #owedTotal = 0

  /** @internal */
  constructor(lane0: Duplex, options: LaneSetOptions) {
    super({ allowHalfOpen: true, writableHighWaterMark: 64 * 1024 })
    this.#o = { ...options }
    this.#authSent = options.key === null
    const own = options.ownHello
    this.#out = new Splitter(own === undefined, 0xffffff)
    const p = options.peerHello
    const lane = this.#addLane(lane0, 0, p === undefined)
    if (p !== undefined) {
      this.#peer = p.hello
      this.#peerRaw = p.raw
      this.#sendOff = received(p.hello)
      if (p.rest.length > 0) process.nextTick(() => lane.onData(p.rest))
    }
    lane.state = 'open'
    if (own !== undefined) {
      this.#own = own.hello
      this.#ownRaw = own.raw
      this.#recvR = own.received
      lane.written += own.raw.length
      this.#setup()
    }
  }

  /** @internal The session that reads this set: where protocol errors and lane events go. */
  _hooks(onProtocolError: (err: MuxError) => void, onLane: (info: LaneInfo, err?: MuxError) => void): void {
    this.#o.onProtocolError = onProtocolError
    this.#o.onLane = onLane
  }

  /** @internal Bytes read off lane 0 before the set took it over (the registry read the HELLO). */
  _input(buf: Buffer): void {
    const l0 = this.#lanes[0]
    if (l0 !== undefined && buf.length > 0) l0.onData(buf)
  }

  /** The peer's address as lane 0's socket reports it (for logs), if it is a socket. */
  get remoteAddress(): string | undefined {
    return (this.#lanes[0]?.dx as { remoteAddress?: string } | undefined)?.remoteAddress
  }

  /** Whether striping is in effect (both HELLOs set STRIPE). */
  get striped(): boolean {
    return this.#striped
  }

  /** The lanes, lane 0 first. */
  lanes(): LaneInfo[] {
    return this.#lanes.map((l) => l.info())
  }

  /** Lanes open for sending. */
  get openLanes(): number {
    let n = 0
    for (const l of this.#lanes) if (l.state === 'open') n++
    return n
  }

  // ---------------------------------------------------------------------------
  // Lanes

  #addLane(dx: Duplex, index: number, hello: boolean): Lane {
    const lane = new Lane(index, dx, hello, this.#o.maxFrameSize)
    lane.authed = this.#o.key === null
    lane.onData = (b) => this.#onLaneData(lane, typeof b === 'string' ? Buffer.from(b) : b)
    lane.onEnd = () => {
      lane.ended = true
      this.#laneGone(lane, null)
    }
    lane.onClose = () => this.#laneGone(lane, new MuxError('SYNMUX_CONNECTION_LOST', `lane ${lane.index} closed`))
    lane.onDrain = () => {
      this.#payOwed(lane)
      this.#drained()
    }
    dx.on('data', lane.onData)
    dx.on('end', lane.onEnd)
    dx.on('close', lane.onClose)
    dx.on('error', () => {})
    dx.on('drain', lane.onDrain)
    const sock = dx as Duplex & { setNoDelay?: (v: boolean) => unknown }
    if (typeof sock.setNoDelay === 'function') sock.setNoDelay(true)
    this.#lanes.push(lane)
    if (dx.destroyed) process.nextTick(lane.onClose)
    return lane
  }

  #lane(index: number): Lane | undefined {
    return this.#lanes.find((l) => l.index === index)
  }

  /**
   * Adds a lane over `dx` (client): runs the JOIN handshake on it. Without
   * `dx`, opens one with the `connect` function. Resolves with the lane
   * index once the lane carries frames; rejects (`SYNMUX_LANE_REFUSED`,
   * `SYNMUX_AUTH_FAILED`, `SYNMUX_HANDSHAKE_TIMEOUT`) if it cannot join,
   * with `ERR_INVALID_STATE` if striping is not in effect.
   */
  async join(dx?: Duplex): Promise<number> {
    if (this.#o.role !== 'client') throw invalidState('only a client adds lanes (a server accepts JOINs)')
    if (!this.#striped || this.#own === null || this.#peer === null) throw invalidState('striping is not in effect on this session')
    if (this.destroyed) throw new MuxError('SYNMUX_SESSION_CLOSED', 'the session has no transport')
    if (dx === undefined) {
      if (this.#o.connect === null) throw invalidState('no connect function to open a lane with')
      dx = await this.#o.connect()
    }
    const index = this.#nextIndex++
    return await this.#clientJoin(dx, index)
  }

  #clientJoin(dx: Duplex, index: number): Promise<number> {
    const own = this.#own!
    const key = this.#o.key
    const nonce = key !== null ? newNonce() : null
    const ext: Array<[number, Buffer]> = [[HelloExtension.LANE, u16(index)]]
    const rb = own.extensions.get(HelloExtension.REPLAY_BUFFER)
    if (rb !== undefined) ext.push([HelloExtension.REPLAY_BUFFER, rb])
    if (nonce !== null) ext.push([HelloExtension.AUTH_NONCE, nonce])
    const hello = encodeHello({
      kind: HelloKind.JOIN,
      role: 'client',
      capabilities: own.capabilities & (Capability.STRIPE | Capability.RESUME | Capability.AUTH_PSK),
      sessionId: this.#peer!.sessionId,
      initialWindow: own.initialWindow,
      maxFrameSize: own.maxFrameSize,
      maxStreams: own.maxStreams,
      extensions: ext,
    })
    return new Promise((resolve, reject) => {
      const sp = new Splitter(true, this.#o.maxFrameSize)
      const fail = (err: MuxError): void => {
        cleanup()
        dx.on('error', () => {})
        dx.destroy()
        this.#o.onLane?.({ ...new Lane(index, dx, false, 0).info(), state: 'closed' }, err)
        reject(err)
      }
      const onData = (b: Buffer): void => {
        sp.push(b)
        let u
        try {
          u = sp.next()
        } catch (e) {
          return fail(e as MuxError)
        }
        if (u === null) return
        if (!('hello' in u)) return fail(new MuxError('SYNMUX_HANDSHAKE_FAILED', 'lane: a frame before the JOINED HELLO'))
        const h = u.hello
        if (h.kind === HelloKind.NEW) {
          const why = h.extensions.get(HelloExtension.RESUME_REFUSED)
          const e = new MuxError('SYNMUX_LANE_REFUSED', `the server refused lane ${index} (RESUME_REFUSED ${why?.[0] ?? '?'})`, { wireCode: why?.[0] ?? 0 })
          // The session lives on another server (PROTOCOL.md 13.10): the session sends its next lanes there.
          if (why?.[0] === ResumeRefused.ELSEWHERE) Object.assign(e, { redirect: decodeRedirect(h.extensions.get(HelloExtension.REDIRECT)) })
          return fail(e)
        }
        if (h.kind !== HelloKind.JOIN || h.role !== 'server' || !h.sessionId.equals(this.#peer!.sessionId)) {
          return fail(new MuxError('SYNMUX_HANDSHAKE_FAILED', 'lane: unexpected answer to JOIN'))
        }
        const lv = h.extensions.get(HelloExtension.LANE)
        if (lv === undefined || lv.length !== 2 || lv.readUInt16BE(0) !== index) return fail(new MuxError('SYNMUX_HANDSHAKE_FAILED', 'lane: JOINED names another lane'))
        let auth: Buffer | null = null
        if (key !== null) {
          const ns = h.extensions.get(HelloExtension.AUTH_NONCE)
          const proof = h.extensions.get(HelloExtension.AUTH_PROOF)
          if (ns === undefined || ns.length !== AUTH_SIZE || !proofMatches(proof, serverProof(key, hello, ns))) {
            return fail(new MuxError('SYNMUX_AUTH_FAILED', `authentication failed: the server of lane ${index} does not hold our key`))
          }
          auth = encodeFrame({ type: FrameType.AUTH, proof: clientProof(key, u.raw, nonce!) })
        }
        cleanup()
        if (this.destroyed) {
          dx.destroy()
          return reject(new MuxError('SYNMUX_SESSION_CLOSED', 'the session has no transport'))
        }
        if (auth !== null) dx.write(auth)
        const lane = this.#addLane(dx, index, false)
        lane.state = 'open'
        lane.authed = true
        this.#joinDelay = 0
        const rest = sp.rest()
        if (rest.length > 0) lane.onData(rest)
        this.#o.onLane?.(lane.info())
        this.#sendMark(lane)
        this.#drained()
        resolve(index)
      }
      const onClose = (): void => fail(new MuxError('SYNMUX_LANE_REFUSED', `lane ${index}: the transport closed during JOIN`))
      const timer = this.#o.handshakeTimeout > 0 ? setTimeout(() => fail(new MuxError('SYNMUX_HANDSHAKE_TIMEOUT', `lane ${index}: no JOINED within ${this.#o.handshakeTimeout} ms`)), this.#o.handshakeTimeout) : null
      timer?.unref?.()
      const cleanup = (): void => {
        if (timer) clearTimeout(timer)
        dx.off('data', onData)
        dx.off('close', onClose)
      }
      dx.on('data', onData)
      dx.on('close', onClose)
      dx.on('error', () => {})
      const sock = dx as Duplex & { setNoDelay?: (v: boolean) => unknown }
      if (typeof sock.setNoDelay === 'function') sock.setNoDelay(true)
      dx.write(hello)
    })
  }

  /**
   * Server: a JOIN for this session arrived on `dx` (HELLO `h`/`raw` read,
   * `rest` after it). Answers JOINED, checks the client's AUTH, then adds
   * the lane (then `onJoined`). Returns a RESUME_REFUSED code (the
   * registry answers NEW) or 0.
   * @internal
   */
  _acceptJoin(dx: Duplex, h: Hello, raw: Buffer, rest: Buffer, onAuthFailed: (why: string) => void, onJoined?: () => void): number {
    const lv = h.extensions.get(HelloExtension.LANE)
    if (!this.#striped || this.destroyed || lv === undefined || lv.length !== 2) return 4
    const index = lv.readUInt16BE(0)
    if (index === 0 || this.#lane(index) !== undefined || this.#lanes.length >= this.#o.maxLanes) return 3
    const key = this.#o.key
    const ext: Array<[number, Buffer]> = [[HelloExtension.LANE, u16(index)]]
    let peerNonce: Buffer | undefined
    if (key !== null) {
      peerNonce = h.extensions.get(HelloExtension.AUTH_NONCE)
      if (!(h.capabilities & Capability.AUTH_PSK) || peerNonce === undefined || peerNonce.length !== AUTH_SIZE) {
        dx.destroy()
        onAuthFailed('JOIN without authentication')
        return 0
      }
      const ns = newNonce()
      ext.push([HelloExtension.AUTH_NONCE, ns], [HelloExtension.AUTH_PROOF, serverProof(key, raw, ns)])
    }
    const own = this.#own!
    const rb = own.extensions.get(HelloExtension.REPLAY_BUFFER)
    if (rb !== undefined) ext.unshift([HelloExtension.REPLAY_BUFFER, rb])
    const hello = encodeHello({
      kind: HelloKind.JOIN,
      role: 'server',
      capabilities: own.capabilities & (Capability.STRIPE | Capability.RESUME | Capability.AUTH_PSK),
      sessionId: own.sessionId,
      initialWindow: own.initialWindow,
      maxFrameSize: own.maxFrameSize,
      maxStreams: own.maxStreams,
      extensions: ext,
    })
    dx.on('error', () => {})
    dx.write(hello)
    const attach = (leftover: Buffer): void => {
      if (this.destroyed || this.#lane(index) !== undefined) {
        dx.destroy()
        return
      }
      onJoined?.()
      const lane = this.#addLane(dx, index, false)
      lane.state = 'open'
      lane.authed = true // its AUTH was checked above
      this.#o.onLane?.(lane.info())
      if (leftover.length > 0) lane.onData(leftover)
      this.#sendMark(lane)
      this.#drained()
    }
    if (key === null) {
      attach(rest)
      return 0
    }
    awaitAuth(dx, rest, clientProof(key, hello, peerNonce!), this.#o.handshakeTimeout, attach, (why) => {
      dx.destroy()
      onAuthFailed(`lane ${index}: ${why}`)
    })
    return 0
  }

  /** Takes lane `index` out of service gracefully: nothing new goes on it, what it carries is confirmed or sent again, then it ends. */
  remove(index: number): boolean {
    const lane = this.#lane(index)
    if (lane === undefined || lane.state !== 'open') return false
    if (this.openLanes <= 1) return false
    lane.state = 'closing'
    this.#resend(lane)
    lane.dx.end()
    this.#linger(lane)
    this.#o.onLane?.(lane.info())
    return true
  }

  /** A lane ended (`err` null) or closed: send its unacknowledged frames on the others; close the set when none is left. */
  #laneGone(lane: Lane, err: MuxError | null): void {
    if (lane.state === 'closed') return
    if (err === null && lane.state === 'closing') {
      // Both directions done.
      lane.state = 'closed'
      lane.dx.destroy()
    } else {
      const was = lane.state
      lane.state = 'closed'
      if (was !== 'closing') this.#resend(lane)
      if (err === null && !lane.dx.writableEnded) {
        lane.dx.end()
        this.#linger(lane)
      } else lane.dx.destroy()
    }
    this.#dropOwed(lane)
    lane.dx.off('data', lane.onData)
    lane.dx.off('drain', lane.onDrain)
    const i = this.#lanes.indexOf(lane)
    if (i >= 0) this.#lanes.splice(i, 1)
    this.#o.onLane?.(lane.info(), err ?? undefined)
    if (this.#lanes.length === 0) {
      // Every lane is gone: the session ends (the last lane ended: EOF, and
      // the set closes itself once the session has ended its side too) or
      // detaches and resumes.
      if (err === null && lane.ended) this.push(null)
      else this.destroy()
      return
    }
    this.#drained()
    if (this.#o.role === 'client' && err !== null && !this.destroyed && !this.writableEnded) this.#scheduleJoin()
  }

  /** A lane we ended: if its peer does not read what is still queued on it, it is destroyed (and its memory freed) after a while. */
  #linger(lane: Lane): void {
    if (lane.linger !== null || lane.dx.destroyed) return
    lane.linger = setTimeout(() => lane.dx.destroy(), LANE_LINGER_MS)
    lane.linger.unref?.()
    lane.dx.once('close', () => clearTimeout(lane.linger!))
  }

  /** Client: keep `lanes` lanes (reopen lost ones with backoff). */
  #scheduleJoin(): void {
    if (this.#joinTimer !== null || this.#o.connect === null || !this.#striped || this.destroyed) return
    if (this.#lanes.length >= this.#o.lanes) return
    const delay = this.#joinDelay
    this.#joinDelay = Math.min(Math.max(50, this.#joinDelay * 2), 2000)
    this.#joinTimer = setTimeout(() => {
      this.#joinTimer = null
      if (this.destroyed || this.writableEnded || this.#lanes.length >= this.#o.lanes) return
      this.join().then(
        () => this.#scheduleJoin(),
        () => this.#scheduleJoin(),
      )
    }, delay)
    this.#joinTimer.unref?.()
  }

  /** Sends every unacknowledged session frame of `lane` again on the other lanes. */
  #resend(lane: Lane): void {
    const offs = lane.sentOff
    const bufs = lane.sentBuf
    const pings = lane.pings
    const from = lane.sentHead
    lane.sentOff = []
    lane.sentBuf = []
    lane.sentHead = 0
    lane.pings = []
    if (this.openLanes === 0) {
      // Nothing to send them on: the session's replay buffer has them.
      return
    }
    for (let i = from; i < bufs.length; i++) {
      const off = offs[i]!
      if (off + bufs[i]!.length <= this.#acked) continue
      lane.resent++
      this.#route(off, bufs[i]!)
    }
    for (const p of pings) {
      const l = this.#pick(p.length)
      if (l !== null) {
        l.pings.push(p)
        this.#write(l, p)
      }
    }
    if (this.#lastAck !== null) {
      const l = this.#pick(this.#lastAck.length)
      if (l !== null) this.#write(l, this.#lastAck)
    }
  }

  // ---------------------------------------------------------------------------
  // Sending

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    for (const l of this.#lanes) l.dx.cork()
    try {
      for (const c of chunks) this.#out.push(c.chunk)
      this.#drainOut()
    } catch (err) {
      for (const l of this.#lanes) l.dx.uncork()
      cb(err as Error)
      return
    }
    for (const l of this.#lanes) l.dx.uncork()
    if (this.#lanes.some((l) => l.state === 'open' && !l.dx.writableNeedDrain)) cb()
    else this.#pendingCb = cb
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._writev([{ chunk }], cb)
  }

  #drained(): void {
    const cb = this.#pendingCb
    if (cb !== null && (this.#lanes.length === 0 || this.#lanes.some((l) => l.state === 'open' && !l.dx.writableNeedDrain))) {
      this.#pendingCb = null
      cb()
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    for (const l of this.#lanes) {
      if (l.state === 'open') l.state = 'closing'
      l.dx.end()
    }
    cb()
  }

  override _read(): void {}

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#timer) clearInterval(this.#timer)
    if (this.#joinTimer) clearTimeout(this.#joinTimer)
    for (const l of this.#lanes.splice(0)) {
      l.state = 'closed'
      this.#dropOwed(l)
      l.dx.off('close', l.onClose)
      l.dx.off('end', l.onEnd)
      l.dx.destroy()
    }
    if (this.#own !== null && this.#o.unregister) this.#o.unregister(this.#own.sessionId, this)
    const pcb = this.#pendingCb
    this.#pendingCb = null
    pcb?.()
    cb(err)
  }

  #drainOut(): void {
    for (let u; (u = this.#out.next()) !== null; ) {
      if ('hello' in u) {
        this.#ownHello(u.hello, u.raw)
        continue
      }
      this.#outFrame(u.type, u.frame)
    }
  }

  #ownHello(h: Hello, raw: Buffer): void {
    this.#own = h
    this.#ownRaw = raw
    if (h.kind !== HelloKind.NEW || this.#recvR < 0) this.#recvR = received(h)
    if (h.kind === HelloKind.NEW && h.role === 'client') this.#sendOff = 0
    this.#write(this.#lanes[0]!, raw)
    this.#setup()
  }

  #outFrame(type: number, frame: Buffer): void {
    if (type < 0x80) {
      if (this.#sendOff < 0) {
        this.#early.push([type, frame])
        return
      }
      const off = this.#sendOff
      this.#sendOff += frame.length
      this.#route(off, frame)
      return
    }
    if (type === FrameType.AUTH) this.#authSent = true
    if (!this.#striped || type === FrameType.AUTH) {
      // Before striping (or without it) everything follows the HELLO on lane 0.
      const l0 = this.#lanes.find((l) => l.state === 'open') ?? this.#lanes[0]
      if (l0) {
        this.#write(l0, frame)
        // Client: our AUTH follows a server proof the session checked: this lane's peer is authenticated.
        if (type === FrameType.AUTH) l0.authed = true
      }
      if (type === FrameType.AUTH) this.#startJoins()
      return
    }
    const lane = this.#pick(frame.length)
    // Kept link frames are copied: `frame` is a view of a whole output batch.
    if (type === FrameType.ACK) this.#lastAck = Buffer.from(frame)
    if (lane === null) return
    if (type === FrameType.PING) lane.pings.push(Buffer.from(frame))
    this.#write(lane, frame)
  }

  /** Puts the session frame at `off` on the best lane, with a SEQ if that lane's sequence jumps. */
  #route(off: number, frame: Buffer): void {
    const lane = this.#pick(frame.length)
    if (lane === null) return // no lane: the replay buffer has it for the resume
    if (this.#striped && lane.sendNext !== off) this.#write(lane, encodeFrame({ type: FrameType.SEQ, offset: off }))
    lane.sendNext = off + frame.length
    lane.sentOff.push(off)
    lane.sentBuf.push(frame)
    lane.dataSinceMark += frame.length
    this.#write(lane, frame)
    if (this.#striped && lane.mark === null && lane.written - lane.lastMark >= 16 * 1024) this.#sendMark(lane)
  }

  /** The open lane expected to deliver `size` more bytes first. */
  #pick(size: number): Lane | null {
    let best: Lane | null = null
    let bestT = Infinity
    // Until a lane's rate is measured it gets at most a probe's worth in flight
    // (unless no other lane can take the frame).
    let others = false
    for (const l of this.#lanes) if (l.state === 'open' && (l.measured || l.inflight <= UNMEASURED_INFLIGHT)) others = true
    for (const l of this.#lanes) {
      if (l.state !== 'open') continue
      if (!this.#striped) return l
      if (others && !l.measured && l.inflight > UNMEASURED_INFLIGHT) continue
      const t = (l.inflight + l.dx.writableLength + size) / l.rate + l.srtt / 2
      if (t < bestT) {
        bestT = t
        best = l
      }
    }
    return best
  }

  #write(lane: Lane, b: Buffer): void {
    if (lane.busySince === 0) lane.busySince = performance.now()
    lane.written += b.length
    if (!lane.dx.destroyed) lane.dx.write(b)
  }

  /** A PING mark on `lane`: its PONG says the lane delivered everything written before it. */
  #sendMark(lane: Lane): void {
    if (!this.#striped || lane.state !== 'open') return
    const p = Buffer.alloc(8)
    p[0] = MARK
    const w = lane.written + FRAME_HEADER_SIZE + 8
    p.writeUIntBE(w, 2, 6)
    lane.mark = { at: performance.now(), written: w }
    lane.lastMark = w
    lane.dataSinceMark = 0
    this.#write(lane, encodeFrame({ type: FrameType.PING, opaque: p }))
  }

  /** Both HELLOs seen: is striping in effect? Then start the lane timer (and, client, the JOINs). */
  #setup(): void {
    if (this.#own === null || this.#peer === null) return
    const on = (this.#own.capabilities & this.#peer.capabilities & Capability.STRIPE) !== 0
    this.#striped = on
    if (this.#o.role === 'server' && this.#o.register && on) this.#o.register(this.#own.sessionId, this)
    if (this.#sendOff < 0) this.#sendOff = received(this.#peer, this.#peer.kind === HelloKind.NEW ? 0 : -1)
    this.#flushEarly()
    if (!on) return
    const rb = this.#peer.extensions.get(HelloExtension.REPLAY_BUFFER)
    // The peer keeps at most the smaller REPLAY_BUFFER unacknowledged (13.1): held bytes never exceed it.
    const own = this.#own.extensions.get(HelloExtension.REPLAY_BUFFER)
    this.#heldLimit = Math.min(rb !== undefined && rb.length === 4 ? rb.readUInt32BE(0) : 0, own !== undefined && own.length === 4 ? own.readUInt32BE(0) : 0)
    this.#timer = setInterval(() => this.#tick(), 250)
    this.#timer.unref?.()
    for (const l of this.#lanes) if (l.sendNext < 0) l.sendNext = this.#sendOff
    this.#startJoins()
  }

  /** Session frames written before their offset was known go out once it is. */
  #flushEarly(): void {
    if (this.#sendOff < 0) return
    const early = this.#early
    this.#early = []
    for (const [type, f] of early) this.#outFrame(type, f)
  }

  #startJoins(): void {
    if (this.#o.role !== 'client' || !this.#striped || !this.#authSent) return
    for (let i = this.#lanes.length; i < this.#o.lanes; i++) {
      if (this.#o.connect === null) break
      this.join().catch(() => this.#scheduleJoin())
    }
  }

  /** Every 250 ms: PING marks on lanes that have none out; a lane whose mark is overdue is dead. */
  #tick(): void {
    const now = performance.now()
    let worst = 0
    for (const l of this.#lanes) if (l.srtt > worst) worst = l.srtt
    for (const l of [...this.#lanes]) {
      if (l.state !== 'open') continue
      if (l.mark === null) this.#sendMark(l)
      else if (now - l.mark.at > STALL_BASE_MS + 2 * worst + l.inflight / l.rate) {
        if (this.openLanes > 1 || this.#o.role === 'client') {
          l.dx.destroy()
          this.#laneGone(l, new MuxError('SYNMUX_PEER_TIMEOUT', `lane ${l.index} stalled`))
        }
      }
    }
  }

  // ---------------------------------------------------------------------------
  // Receiving

  #onLaneData(lane: Lane, b: Buffer): void {
    // After a failure the session is going: nothing more is read (or answered).
    if (this.destroyed || this.#failed) return
    lane.bytesReceived += b.length
    lane.splitter.push(b)
    try {
      for (let u; (u = lane.splitter.next()) !== null; ) {
        if ('hello' in u) {
          this.#peer = u.hello
          this.#peerRaw = u.raw
          // After a NEW the peer's session frames start at offset 0.
          if (u.hello.kind === HelloKind.NEW && this.#recvR < 0) this.#recvR = 0
          this.push(u.raw)
          if (this.#o.role === 'client' && this.#sendOff < 0) this.#sendOff = received(u.hello, u.hello.kind === HelloKind.NEW ? 0 : -1)
          this.#setup()
          continue
        }
        this.#inFrame(lane, u.type, u.frame)
        if (this.destroyed || this.#failed) return
      }
    } catch (err) {
      this.#fail(err as ProtocolError)
    }
  }

  #fail(err: MuxError): void {
    if (this.#failed) return
    this.#failed = true
    if (this.#o.onProtocolError) this.#o.onProtocolError(err)
    else this.destroy(err)
  }

  #inFrame(lane: Lane, type: number, f: Buffer): void {
    if (type === FrameType.ACK && this.#sendOff < 0 && this.#o.role === 'client') {
      // After a RESUME with AUTH_PSK the server's first frame, ACK(R), says
      // where our session frames continue (13.4).
      if (f.length !== FRAME_HEADER_SIZE + 8) throw protocolError('ACK payload must be 8 bytes')
      const r = readU64(f, FRAME_HEADER_SIZE)
      this.#sendOff = r
      for (const l of this.#lanes) if (l.sendNext < 0) l.sendNext = r
      if (r > this.#acked) this.#onAck(r)
      this.push(f)
      this.#flushEarly()
      return
    }
    if (type === FrameType.AUTH && !lane.authed) this.#checkAuth(lane, f)
    if (!this.#striped) {
      // Before the HELLOs are both known (or without striping): lane 0 in order; keep count.
      if (type < 0x80 && this.#recvR >= 0) this.#recvR += f.length
      this.push(f)
      return
    }
    if (type < 0x80) {
      if (lane.recvNext < 0) {
        if (lane.index !== 0 || this.#recvR < 0) throw protocolError(`lane ${lane.index}: a session frame before SEQ`)
        lane.recvNext = this.#recvR
      }
      const off = lane.recvNext
      lane.recvNext += f.length
      const r = this.#recvR
      if (off === r) {
        this.#recvR += f.length
        this.push(f)
        while (this.#held.size > 0) {
          const n = this.#held.get(this.#recvR)
          if (n === undefined) break
          this.#held.delete(this.#recvR)
          this.#heldBytes -= n.length
          this.#recvR += n.length
          this.push(n)
        }
      } else if (off > r) {
        if (this.#held.has(off)) return
        if (this.#heldBytes + f.length > this.#heldLimit) throw protocolError(`reorder buffer over the peer's REPLAY_BUFFER (${this.#heldLimit} bytes)`)
        this.#held.set(off, f.length === f.buffer.byteLength ? f : Buffer.from(f))
        this.#heldBytes += f.length
      }
      // off < r: a duplicate (sent again after a lane died); dropped.
      return
    }
    switch (type) {
      case FrameType.SEQ: {
        if (f.length !== FRAME_HEADER_SIZE + 8) throw protocolError('SEQ payload must be 8 bytes')
        const off = readU64(f, FRAME_HEADER_SIZE)
        lane.recvNext = off
        return
      }
      case FrameType.PING: {
        // Before the peer has proved the key nothing is answered: the
        // session holds the PING with everything else (16.4) and answers it
        // after AUTH. After that, PINGs are answered on their lane (14.4),
        // by the lane layer, within the control-queue cap.
        if (!lane.authed) this.push(f)
        else this.#owe(lane, f)
        return
      }
      case FrameType.PONG: {
        if (f.length === FRAME_HEADER_SIZE + 8 && f[FRAME_HEADER_SIZE] === MARK) {
          this.#onMark(lane, f.readUIntBE(FRAME_HEADER_SIZE + 2, 6))
          return
        }
        // The answer to a session PING: it need not be sent again.
        const i = lane.pings.findIndex((p) => p.subarray(FRAME_HEADER_SIZE).equals(f.subarray(FRAME_HEADER_SIZE)))
        if (i >= 0) lane.pings.splice(i, 1)
        this.push(f)
        return
      }
      case FrameType.ACK: {
        // ACKs cross on different lanes: only a newer one goes up (14.4).
        if (f.length !== FRAME_HEADER_SIZE + 8) throw protocolError('ACK payload must be 8 bytes')
        const ack = readU64(f, FRAME_HEADER_SIZE)
        if (ack <= this.#acked) return
        this.#onAck(ack)
        this.push(f)
        return
      }
      default:
        this.push(f)
    }
  }

  /** Server: the client's AUTH on `lane` (the session checks it too, and fails on a wrong one). */
  #checkAuth(lane: Lane, f: Buffer): void {
    const key = this.#o.key
    if (this.#o.role !== 'server' || key === null || this.#ownRaw === null || this.#peer === null) return
    const nonce = this.#peer.extensions.get(HelloExtension.AUTH_NONCE)
    if (nonce === undefined || nonce.length !== AUTH_SIZE || f.length !== FRAME_HEADER_SIZE + AUTH_SIZE) return
    if (proofMatches(f.subarray(FRAME_HEADER_SIZE), clientProof(key, this.#ownRaw, nonce))) lane.authed = true
  }

  /**
   * Answers `ping` on its lane: at once if the lane takes it, else queued
   * (as bytes, in blocks) until the lane drains. A peer that makes the lanes
   * owe more than the control-queue cap without reading is cut off, as
   * the session does for its own control queue (PROTOCOL.md 10).
   */
  #owe(lane: Lane, ping: Buffer): void {
    const n = ping.length
    if (lane.owedBytes === 0 && !lane.dx.writableNeedDrain) {
      const pong = Buffer.from(ping)
      pong[3] = FrameType.PONG
      this.#write(lane, pong)
      return
    }
    let blk = lane.owed[lane.owed.length - 1]
    if (blk === undefined || blk.used + n > blk.buf.length) {
      blk = { buf: Buffer.allocUnsafe(Math.max(OWED_BLOCK, n)), used: 0 }
      lane.owed.push(blk)
    }
    ping.copy(blk.buf, blk.used)
    blk.buf[blk.used + 3] = FrameType.PONG
    blk.used += n
    lane.owedBytes += n
    this.#owedTotal += n
    if (this.#owedTotal > DEFAULTS.maxControlQueue) {
      this.#fail(new MuxError('SYNMUX_RESOURCE_EXHAUSTED', `the peer made the lanes owe it ${this.#owedTotal} bytes of PONGs, unread`, { wireCode: GoawayCode.RESOURCE_EXHAUSTED }))
    }
  }

  /** Writes owed PONGs while the lane takes them. */
  #payOwed(lane: Lane): void {
    while (lane.owed.length > 0 && !lane.dx.writableNeedDrain && !lane.dx.destroyed) {
      const blk = lane.owed.shift()!
      lane.owedBytes -= blk.used
      this.#owedTotal -= blk.used
      this.#write(lane, blk.buf.subarray(0, blk.used))
    }
  }

  #dropOwed(lane: Lane): void {
    this.#owedTotal -= lane.owedBytes
    lane.owedBytes = 0
    lane.owed = []
  }

  #onMark(lane: Lane, written: number): void {
    const m = lane.mark
    if (m === null || m.written !== written) return
    const now = performance.now()
    const dt = now - m.at
    const bytes = written - lane.delivered
    lane.delivered = written
    lane.mark = null
    // RTT: only from marks that did not wait behind much data.
    if (bytes < 16 * 1024 || lane.srtt === 0) lane.srtt = lane.srtt === 0 ? dt : lane.srtt * 0.875 + dt * 0.125
    // Delivery rate: the bytes confirmed over the time since the lane got busy.
    const busy = now - lane.busySince
    if (bytes >= 16 * 1024 && busy > 0) {
      const r = bytes / busy
      lane.rate = lane.measured ? lane.rate * 0.75 + r * 0.25 : r
      lane.measured = true
    }
    lane.busySince = lane.written > written ? now : 0
    if (lane.dataSinceMark > 0) this.#sendMark(lane)
  }

  #onAck(ack: number): void {
    this.#acked = ack
    for (const l of this.#lanes) {
      let i = l.sentHead
      while (i < l.sentBuf.length && l.sentOff[i]! + l.sentBuf[i]!.length <= ack) {
        l.sentBuf[i] = undefined as unknown as Buffer
        i++
      }
      l.sentHead = i
      if (i > 1024 && i * 2 > l.sentBuf.length) {
        l.sentBuf = l.sentBuf.slice(i)
        l.sentOff = l.sentOff.slice(i)
        l.sentHead = 0
      }
    }
  }
}
