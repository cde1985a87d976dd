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
 * LaneSet closes and the session's resumption takes over. Which lane a
 * frame goes on: schedule.ts.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream'
import { performance } from 'node:perf_hooks'
import { Capability, FRAME_HEADER_SIZE, FrameType, GoawayCode, HelloExtension, HelloKind } from '../wire/constants.js'
import { encodeFrame } from '../wire/frames.js'
import type { Hello } from '../wire/hello.js'
import { protocolError } from '../wire/errors.js'
import { MuxError, type ProtocolError, invalidState } from '../errors.js'
import { Lane, type LaneInfo, closedLaneInfo } from './lane.js'
import { Lanes } from './lanes.js'
import { type LaneSetOptions, readU64, received } from './options.js'
import { type FrameBytes, Splitter, frameSize, pushBytes } from './splitter.js'
import { Reorder } from './reorder.js'
import { answerJoin, authProves, clientJoin, type JoinSpec } from './join.js'
import { markDue, markOf, onMark } from './schedule.js'

export type { LaneInfo } from './lane.js'
export type { LaneSetOptions } from './options.js'

/**
 * The transport of a striped session (PROTOCOL.md 14): a Duplex over one or
 * more lanes. Created by the session (client, `lanes` option) or by the
 * {@link SessionRegistry} (server); applications use the session's
 * `addLane()`, `removeLane()` and `stats().lanes`.
 */
export class LaneSet extends Duplex {
  #o: LaneSetOptions
  readonly #lanes = new Lanes()
  /** The lanes, lane 0 first (the collection's list). */
  readonly #all: Lane[] = this.#lanes.list
  #nextIndex = 1
  /** Own HELLO seen (outgoing), peer HELLO seen (incoming). */
  #own: Hello | null = null
  #ownRaw: Buffer | null = null
  #peer: Hello | null = null
  #authSent: boolean
  readonly #out: Splitter
  /** Session offset of the next session frame the session writes (-1: not known yet). */
  #sendOff = -1
  /** Frames written by the session before `#sendOff` was known. */
  #early: Array<[number, FrameBytes]> = []
  /** Session frames back in session order; its `r` is the received count R (-1: not known yet). */
  readonly #reorder = new Reorder()
  /** The peer's cumulative ACK (frames before it are delivered). */
  #acked = 0
  #timer: NodeJS.Timeout | null = null
  #pendingCb: ((err?: Error | null) => void) | null = null
  #joinDelay = 0
  #joinTimer: NodeJS.Timeout | null = null
  #joining = 0
  #failed = false
  /** The last ACK the session sent: sent again when a lane dies (it may have died with it). */
  #lastAck: Buffer | null = null

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
      this.#sendOff = received(p.hello)
      if (p.rest.length > 0) process.nextTick(() => lane.onData(p.rest))
    }
    lane.state = 'open'
    if (own !== undefined) {
      this.#own = own.hello
      this.#ownRaw = own.raw
      this.#reorder.r = own.received
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
    const l0 = this.#all[0]
    if (l0 !== undefined && buf.length > 0) l0.onData(buf)
  }

  /** The peer's address as lane 0's socket reports it (for logs), if it is a socket. */
  get remoteAddress(): string | undefined {
    return (this.#all[0]?.dx as { remoteAddress?: string } | undefined)?.remoteAddress
  }

  /** Whether striping is in effect (both HELLOs set STRIPE). */
  get striped(): boolean {
    return this.#lanes.striped
  }

  /** The lanes, lane 0 first. */
  lanes(): LaneInfo[] {
    return this.#lanes.infos()
  }

  /** Lanes open for sending. */
  get openLanes(): number {
    return this.#lanes.open
  }

  // --- Lanes ---
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
      this.#lanes.payOwed(lane)
      this.#drained()
    }
    dx.on('data', lane.onData)
    dx.on('end', lane.onEnd)
    dx.on('close', lane.onClose)
    dx.on('error', () => {})
    dx.on('drain', lane.onDrain)
    const sock = dx as Duplex & { setNoDelay?: (v: boolean) => unknown }
    if (typeof sock.setNoDelay === 'function') sock.setNoDelay(true)
    this.#all.push(lane)
    if (dx.destroyed) process.nextTick(lane.onClose)
    return lane
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
    if (!this.#lanes.striped || this.#own === null || this.#peer === null) throw invalidState('striping is not in effect on this session')
    if (this.destroyed) throw new MuxError('SYNMUX_SESSION_CLOSED', 'the session has no transport')
    if (dx === undefined) {
      if (this.#o.connect === null) throw invalidState('no connect function to open a lane with')
      dx = await this.#o.connect()
    }
    const index = this.#nextIndex++
    return await this.#clientJoin(dx, index)
  }

  /** What a JOIN of lane `index` repeats of our HELLO, and its limits. */
  #joinSpec(index: number): JoinSpec {
    return { index, own: this.#own!, key: this.#o.key, maxFrameSize: this.#o.maxFrameSize, handshakeTimeout: this.#o.handshakeTimeout }
  }

  #clientJoin(dx: Duplex, index: number): Promise<number> {
    return new Promise((resolve, reject) => {
      clientJoin(dx, this.#joinSpec(index), this.#peer!.sessionId, {
        failed: (err) => {
          this.#o.onLane?.(closedLaneInfo(index), err)
          reject(err)
        },
        joined: (rest, auth) => {
          if (this.destroyed) {
            dx.destroy()
            return reject(new MuxError('SYNMUX_SESSION_CLOSED', 'the session has no transport'))
          }
          if (auth !== null) dx.write(auth)
          const lane = this.#addLane(dx, index, false)
          lane.state = 'open'
          lane.authed = true
          this.#joinDelay = 0
          if (rest.length > 0) lane.onData(rest)
          this.#o.onLane?.(lane.info())
          this.#lanes.sendMark(lane)
          this.#drained()
          resolve(index)
        },
      })
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
    if (!this.#lanes.striped || this.destroyed || lv === undefined || lv.length !== 2) return 4
    const index = lv.readUInt16BE(0)
    if (index === 0 || this.#lanes.find(index) !== undefined || this.#all.length >= this.#o.maxLanes) return 3
    answerJoin(dx, h, raw, rest, this.#joinSpec(index), {
      authFailed: onAuthFailed,
      joined: (leftover) => {
        if (this.destroyed || this.#lanes.find(index) !== undefined) {
          dx.destroy()
          return
        }
        onJoined?.()
        const lane = this.#addLane(dx, index, false)
        lane.state = 'open'
        lane.authed = true // its AUTH was checked
        this.#o.onLane?.(lane.info())
        if (leftover.length > 0) lane.onData(leftover)
        this.#lanes.sendMark(lane)
        this.#drained()
      },
    })
    return 0
  }

  /** Takes lane `index` out of service gracefully: nothing new goes on it, what it carries is confirmed or sent again, then it ends. */
  remove(index: number): boolean {
    const lane = this.#lanes.find(index)
    if (lane === undefined || lane.state !== 'open') return false
    if (this.#lanes.open <= 1) return false
    lane.state = 'closing'
    this.#resend(lane)
    lane.dx.end()
    lane.linger()
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
        lane.linger()
      } else lane.dx.destroy()
    }
    this.#lanes.dropOwed(lane)
    lane.dx.off('data', lane.onData)
    lane.dx.off('drain', lane.onDrain)
    const i = this.#all.indexOf(lane)
    if (i >= 0) this.#all.splice(i, 1)
    this.#o.onLane?.(lane.info(), err ?? undefined)
    if (this.#all.length === 0) {
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

  /** Sends every unacknowledged session frame of `lane` again on the other lanes. */
  #resend(lane: Lane): void {
    this.#lanes.resend(lane, this.#acked, this.#lastAck, (off, buf) => this.#route(off, buf))
  }

  /** Client: a lane this set opens itself; it counts toward `lanes` while it joins (two joins must not fill one gap). */
  #autoJoin(): Promise<number> {
    this.#joining++
    return this.join().finally(() => this.#joining--)
  }

  /** Client: keep `lanes` lanes (reopen lost ones with backoff). */
  #scheduleJoin(): void {
    if (this.#joinTimer !== null || this.#o.connect === null || !this.#lanes.striped || this.destroyed) return
    if (this.#all.length + this.#joining >= this.#o.lanes) return
    const delay = this.#joinDelay
    this.#joinDelay = Math.min(Math.max(50, this.#joinDelay * 2), 2000)
    this.#joinTimer = setTimeout(() => {
      this.#joinTimer = null
      if (this.destroyed || this.writableEnded || this.#all.length + this.#joining >= this.#o.lanes) return
      this.#autoJoin().then(
        () => this.#scheduleJoin(),
        () => this.#scheduleJoin(),
      )
    }, delay)
    this.#joinTimer.unref?.()
  }

  // --- Sending ---
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    for (const l of this.#all) l.dx.cork()
    try {
      for (const c of chunks) this.#out.push(c.chunk)
      this.#drainOut()
    } catch (err) {
      for (const l of this.#all) l.dx.uncork()
      cb(err as Error)
      return
    }
    for (const l of this.#all) l.dx.uncork()
    if (this.#lanes.writable) cb()
    else this.#pendingCb = cb
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._writev([{ chunk }], cb)
  }

  #drained(): void {
    const cb = this.#pendingCb
    if (cb !== null && (this.#all.length === 0 || this.#lanes.writable)) {
      this.#pendingCb = null
      cb()
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    for (const l of this.#all) {
      if (l.state === 'open') l.state = 'closing'
      l.dx.end()
    }
    cb()
  }

  override _read(): void {}

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#timer) clearInterval(this.#timer)
    if (this.#joinTimer) clearTimeout(this.#joinTimer)
    for (const l of this.#all.splice(0)) {
      l.state = 'closed'
      this.#lanes.dropOwed(l)
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
    if (h.kind !== HelloKind.NEW || this.#reorder.r < 0) this.#reorder.r = received(h)
    if (h.kind === HelloKind.NEW && h.role === 'client') this.#sendOff = 0
    this.#lanes.write(this.#all[0]!, raw)
    this.#setup()
  }

  #outFrame(type: number, bytes: FrameBytes): void {
    if (type < 0x80) {
      if (this.#sendOff < 0) {
        this.#early.push([type, bytes])
        return
      }
      const off = this.#sendOff
      this.#sendOff += frameSize(bytes)
      this.#route(off, bytes)
      return
    }
    const frame = bytes as Buffer // a link frame: always one Buffer (Splitter)
    if (type === FrameType.AUTH) this.#authSent = true
    if (!this.#lanes.striped || type === FrameType.AUTH) {
      // Before striping (or without it) everything follows the HELLO on lane 0.
      const l0 = this.#all.find((l) => l.state === 'open') ?? this.#all[0]
      if (l0) {
        this.#lanes.write(l0, frame)
        // Client: our AUTH follows a server proof the session checked: this lane's peer is authenticated.
        if (type === FrameType.AUTH) l0.authed = true
      }
      if (type === FrameType.AUTH) this.#startJoins()
      return
    }
    const lane = this.#lanes.pick(frame.length)
    // Kept link frames are copied: `frame` is a view of a whole output batch.
    if (type === FrameType.ACK) this.#lastAck = Buffer.from(frame)
    if (lane === null) return
    if (type === FrameType.PING) lane.sent.pings.push(Buffer.from(frame))
    this.#lanes.write(lane, frame)
  }

  /** Puts the session frame at `off` on the best lane, with a SEQ if that lane's sequence jumps. */
  #route(off: number, frame: FrameBytes): void {
    const size = frameSize(frame)
    const lane = this.#lanes.pick(size)
    if (lane === null) return // no lane: the replay buffer has it for the resume
    if (this.#lanes.striped && lane.sendNext !== off) this.#lanes.write(lane, encodeFrame({ type: FrameType.SEQ, offset: off }))
    lane.sendNext = off + size
    lane.sent.push(off, frame, size)
    lane.dataSinceMark += size
    this.#lanes.write(lane, frame)
    if (this.#lanes.striped && markDue(lane)) this.#lanes.sendMark(lane)
  }

  /** Both HELLOs seen: is striping in effect? Then start the lane timer (and, client, the JOINs). */
  #setup(): void {
    if (this.#own === null || this.#peer === null) return
    const on = (this.#own.capabilities & this.#peer.capabilities & Capability.STRIPE) !== 0
    this.#lanes.striped = on
    if (this.#o.role === 'server' && this.#o.register && on) this.#o.register(this.#own.sessionId, this)
    if (this.#sendOff < 0) this.#sendOff = received(this.#peer, this.#peer.kind === HelloKind.NEW ? 0 : -1)
    this.#flushEarly()
    if (!on) return
    const rb = this.#peer.extensions.get(HelloExtension.REPLAY_BUFFER)
    // The peer keeps at most the smaller REPLAY_BUFFER unacknowledged (13.1): held bytes never exceed it.
    const own = this.#own.extensions.get(HelloExtension.REPLAY_BUFFER)
    this.#reorder.limit = Math.min(rb !== undefined && rb.length === 4 ? rb.readUInt32BE(0) : 0, own !== undefined && own.length === 4 ? own.readUInt32BE(0) : 0)
    this.#timer = setInterval(() => this.#tick(), 250)
    this.#timer.unref?.()
    for (const l of this.#all) if (l.sendNext < 0) l.sendNext = this.#sendOff
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
    if (this.#o.role !== 'client' || !this.#lanes.striped || !this.#authSent) return
    for (let i = this.#all.length + this.#joining; i < this.#o.lanes; i++) {
      if (this.#o.connect === null) break
      this.#autoJoin().catch(() => this.#scheduleJoin())
    }
  }

  /** Every 250 ms: PING marks on lanes that have none out; a lane whose mark is overdue is dead. */
  #tick(): void {
    this.#lanes.tick((l) => {
      if (this.#lanes.open > 1 || this.#o.role === 'client') {
        l.dx.destroy()
        this.#laneGone(l, new MuxError('SYNMUX_PEER_TIMEOUT', `lane ${l.index} stalled`))
      }
    })
  }

  // --- Receiving ---
  #onLaneData(lane: Lane, b: Buffer): void {
    // After a failure the session is going: nothing more is read (or answered).
    if (this.destroyed || this.#failed) return
    lane.bytesReceived += b.length
    lane.splitter.push(b)
    try {
      for (let u; (u = lane.splitter.next()) !== null; ) {
        if ('hello' in u) {
          this.#peer = u.hello
          // After a NEW the peer's session frames start at offset 0.
          if (u.hello.kind === HelloKind.NEW && this.#reorder.r < 0) this.#reorder.r = 0
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

  #inFrame(lane: Lane, type: number, bytes: FrameBytes): void {
    if (type < 0x80) return this.#inSessionFrame(lane, bytes)
    const f = bytes as Buffer // a link frame: always one Buffer (Splitter)
    if (type === FrameType.ACK && this.#sendOff < 0 && this.#o.role === 'client') {
      // After a RESUME with AUTH_PSK the server's first frame, ACK(R), says
      // where our session frames continue (13.4).
      if (f.length !== FRAME_HEADER_SIZE + 8) throw protocolError('ACK payload must be 8 bytes')
      const r = readU64(f, FRAME_HEADER_SIZE)
      this.#sendOff = r
      for (const l of this.#all) if (l.sendNext < 0) l.sendNext = r
      if (r > this.#acked) this.#onAck(r)
      this.push(f)
      this.#flushEarly()
      return
    }
    if (type === FrameType.AUTH && !lane.authed) this.#checkAuth(lane, f)
    if (!this.#lanes.striped) {
      // Before the HELLOs are both known (or without striping): lane 0 in order.
      this.push(f)
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
        const written = markOf(f)
        if (written >= 0) {
          if (onMark(lane, written, performance.now())) this.#lanes.sendMark(lane)
          return
        }
        // The answer to a session PING: it need not be sent again.
        lane.sent.ponged(f.subarray(FRAME_HEADER_SIZE))
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

  /** A session frame: in order (lane 0 before striping: counted once R is known), or through the reorder buffer. */
  #inSessionFrame(lane: Lane, f: FrameBytes): void {
    const size = frameSize(f)
    let off = this.#reorder.r
    if (this.#lanes.striped) {
      if (lane.recvNext < 0) {
        if (lane.index !== 0 || off < 0) throw protocolError(`lane ${lane.index}: a session frame before SEQ`)
        lane.recvNext = off
      }
      off = lane.recvNext
      lane.recvNext += size
    } else if (off < 0) return pushBytes(this, f)
    if (this.#reorder.arrive(off, f, size)) {
      pushBytes(this, f)
      for (let n; (n = this.#reorder.next()) !== undefined; ) pushBytes(this, n)
    }
  }

  /** Server: the client's AUTH on `lane` (the session checks it too, and fails on a wrong one). */
  #checkAuth(lane: Lane, f: Buffer): void {
    if (this.#o.role === 'server' && authProves(this.#o.key, this.#ownRaw, this.#peer, f)) lane.authed = true
  }

  /** Answers `ping` on its lane (PROTOCOL.md 14.4); a peer that makes the lanes owe more than the control-queue cap without reading is cut off. */
  #owe(lane: Lane, ping: Buffer): void {
    if (!this.#lanes.owe(lane, ping)) {
      this.#fail(new MuxError('SYNMUX_RESOURCE_EXHAUSTED', `the peer made the lanes owe it ${this.#lanes.owedTotal} bytes of PONGs, unread`, { wireCode: GoawayCode.RESOURCE_EXHAUSTED }))
    }
  }

  #onAck(ack: number): void {
    this.#acked = ack
    for (const l of this.#all) l.sent.ack(ack)
  }
}
