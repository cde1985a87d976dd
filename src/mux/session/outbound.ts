/**
 * The output scheduler: everything a session sends is queued and written
 * once per turn of the event loop by {@link Outbound.flush}, in one batch: our HELLO, link
 * frames (PING, PONG, ACK, AUTH), control frames (REFUSED, RST, GOAWAY),
 * WINDOWs, OPEN/OPENED in id order, then DATA round-robin across streams,
 * one frame per stream per turn, batched into one `writev`. A resumable
 * session keeps its session frames for replay and sends them only while
 * the replay buffer has room (PROTOCOL.md 13).
 * @packageDocumentation
 */
import { performance } from 'node:perf_hooks'
import { DEFAULTS, FRAME_HEADER_SIZE, FrameFlag, FrameType, GoawayCode } from '../wire/constants.js'
import { OutputBatch, Slab } from '../wire/batch.js'
import { targetSize, writeTarget } from '../wire/target.js'
import { encodeFrame } from '../wire/frames.js'
import { isLinkFrame, writeU64 } from '../wire/writer.js'
import { MuxError } from '../errors.js'
import { SF } from '../stream/flags.js'
import { Head, headMessage } from '../stream/message.js'
import type { MuxStream } from '../stream/stream.js'
import { HelloState, LinkState, type OutboundPart, type SessionCore } from './core.js'
import { Queue } from './queue.js'

/** A resumable session's flush of session frames carries an ACK of new data at most this often (ms). */
const ACK_PIGGYBACK_MS = 10
/** Session frames are emitted only while the replay buffer has this much room (a target plus some data). */
const MIN_ROOM = 1024

type Callbacks = Array<(err?: Error | null) => void>

/**
 * A flush runs once per turn of the event loop, after the turn's I/O
 * callbacks (`setImmediate`, as Node's own HTTP/2 session schedules its
 * writes): whatever the application and every other callback queued
 * meanwhile (a pipe's end(), a stream's 'end' handler, the replies to all
 * the frames one read brought, many streams' writes) rides in one batch,
 * one `writev`.
 */
function flushTick(o: Outbound): void {
  o.flush()
}

/**
 * The first flight is different: from the flush that carries our HELLO to
 * the end of that turn, flushes run on the nextTick queue, the first one
 * once more at its back (so that work other nextTick callbacks queue
 * meanwhile still rides in the same write), because the transport may send
 * what was written in this turn as one message at its end — a secure
 * channel's first handshake message (the 0-RTT data) and its reply leave in
 * a `setImmediate` of their own (PROTOCOL.md 20.8).
 */
function flushHop(o: Outbound): void {
  process.nextTick(flushTick, o)
}

function endFirstTurn(o: Outbound): void {
  o.firstTurn = false
}

/** The output scheduler of a session. @internal */
export class Outbound implements OutboundPart {
  readonly #c: SessionCore
  /** Control and link frames, encoded, in order. */
  #control: Buffer[] = []
  #controlBytes = 0
  readonly #windowQueue = new Queue<MuxStream>()
  readonly #openQueue = new Queue<MuxStream>()
  /** Streams with something to send, round-robin. */
  readonly #ring = new Queue<MuxStream>()
  #flushScheduled = false
  #waitingDrain = false
  /** The link frames of a flush (and its session frames, unless the session is resumable); reused by every flush. */
  readonly #lb = new OutputBatch()
  /** A resumable session's session frames of a flush (kept for replay: in a slab of the session's own). */
  readonly #sb = new OutputBatch(new Slab())
  /** The callbacks a flush calls once its batch is written; reused. */
  readonly #cbs: Callbacks = []
  #ackPending = false
  #ackReported = 0
  /** When we last sent an ACK (resumable sessions piggyback one on session frames at most this often). */
  #lastAckAt = 0
  /** Replay from this session offset at the next flush (-1: nothing to replay). */
  #replayFrom = -1
  /** Only session frames are left and the replay buffer is full: the next ACK schedules the flush. */
  #replayBlocked = false
  /** Our HELLO went out in this turn of the event loop: flushes still run on the nextTick (see flushHop). */
  firstTurn = false

  constructor(core: SessionCore) {
    this.#c = core
  }

  get controlBytes(): number {
    return this.#controlBytes
  }

  get ackReported(): number {
    return this.#ackReported
  }

  queueControl(buf: Buffer): void {
    const c = this.#c
    if (c.isClosed()) return
    this.#control.push(buf)
    this.#controlBytes += buf.length
    if (this.#controlBytes > DEFAULTS.maxControlQueue) {
      c.shutdown.fail(new MuxError('SYNMUX_RESOURCE_EXHAUSTED', `the peer made ${this.#controlBytes} bytes of control frames pile up unread`, { wireCode: GoawayCode.RESOURCE_EXHAUSTED }))
      return
    }
    this.scheduleFlush()
  }

  unshiftControl(b: Buffer): void {
    this.#control.unshift(b)
    this.#controlBytes += b.length
  }

  unshiftAck(): void {
    const received = this.#c.sessionBytesReceived
    this.unshiftControl(encodeFrame({ type: FrameType.ACK, received }))
    this.#ackReported = received
  }

  requestAck(): void {
    this.#ackPending = true
  }

  ackIfDue(ackEvery: number): void {
    if (this.#c.sessionBytesReceived - this.#ackReported >= ackEvery && !this.#ackPending) {
      this.#ackPending = true
      this.scheduleFlush()
    }
  }

  replayRoom(): void {
    if (this.#replayBlocked) {
      this.#replayBlocked = false
      this.scheduleFlush()
    }
  }

  replayFrom(offset: number): void {
    this.#replayFrom = offset
  }

  drained(): void {
    this.#waitingDrain = false
    this.scheduleFlush()
  }

  clearDrainWait(): void {
    this.#waitingDrain = false
  }

  dropLink(): void {
    this.#flushScheduled = false
    this.#waitingDrain = false
    this.#replayBlocked = false
    this.#replayFrom = -1
    this.#ackPending = false
    // Link frames were for the dead transport; unsent session frames stay.
    const keep: Buffer[] = []
    let keepBytes = 0
    for (const b of this.#control) {
      if (!isLinkFrame(b)) {
        keep.push(b)
        keepBytes += b.length
      }
    }
    this.#control = keep
    this.#controlBytes = keepBytes
  }

  clear(): void {
    this.#control = []
    this.#controlBytes = 0
    this.#windowQueue.clear()
    this.#openQueue.clear()
    this.#ring.clear()
  }

  queueOpen(s: MuxStream): void {
    s.f |= SF.IN_OPEN_QUEUE
    this.#openQueue.push(s)
    this.scheduleFlush()
  }

  queueWindow(s: MuxStream): void {
    if (s.f & SF.IN_WINDOW_QUEUE) return
    s.f |= SF.IN_WINDOW_QUEUE
    this.#windowQueue.push(s)
    this.scheduleFlush()
  }

  scheduleStream(s: MuxStream): void {
    if (!(s.f & SF.OPEN_SENT)) {
      if (s.f & SF.IN_OPEN_QUEUE) this.scheduleFlush()
      return
    }
    if (!(s.f & SF.IN_RING) && this.#sendable(s)) {
      s.f |= SF.IN_RING
      this.#ring.push(s)
      this.scheduleFlush()
    }
  }

  #sendable(s: MuxStream): boolean {
    if (s.f & (SF.DETACHED | SF.FIN_SENT)) return false
    if (s.messages) {
      const h = headMessage(s.sq, s.sqHead, this.#c.peer === null)
      if (h > 0) return s.scredit > 0
      if (h === 0) return true
      if (h === Head.HELD) return false
    } else if (s.sqBytes > 0) return s.scredit > 0
    return (s.f & SF.FIN_QUEUED) !== 0
  }

  scheduleFlush(): void {
    if (this.#flushScheduled || this.#waitingDrain || this.#c.isClosed() || !this.#c.attached) return
    this.#flushScheduled = true
    if (this.firstTurn || this.#c.helloState === HelloState.PENDING) process.nextTick(flushHop, this)
    else setImmediate(flushTick, this)
  }

  #hasWork(): boolean {
    return this.#control.length > 0 || this.#ackPending || this.#windowQueue.length > 0 || this.#openQueue.length > 0 || this.#ring.length > 0 || this.#c.helloState === HelloState.PENDING
  }

  /** Bytes of session frames the replay buffer can still take (Infinity when not resumable). */
  #room(): number {
    const c = this.#c
    return c.replay === null ? Infinity : c.replay.limit - (c.sessionBytesSent - c.peerAcked)
  }

  flush(): void {
    const c = this.#c
    this.#flushScheduled = false
    if (c.isClosed() || this.#waitingDrain || !c.attached) return
    if (c.helloState === HelloState.UNSENT) return
    if (c.dx.writableNeedDrain) {
      this.#waitingDrain = true
      return
    }
    // Link frames go in `lb`; session frames in `sb`, which is the same
    // batch unless the session is resumable (then its bytes are also kept
    // for replay).
    const lb = this.#lb
    const sb = c.replay !== null ? this.#sb : lb
    lb.reset()
    sb.reset()
    const cbs = this.#cbs
    const limit = DEFAULTS.writeBatch
    if (c.helloState === HelloState.PENDING) {
      lb.append(c.handshake.takeHello())
      this.firstTurn = true
      setImmediate(endFirstTurn, this)
    }
    if (c.authHold || (c.linkState === LinkState.RESUMING && c.link.earlyFrom < 0) || c.linkState === LinkState.VERDICT) {
      // Until the peer is authenticated (or, resuming, has said where to
      // replay from), only the HELLO and link frames leave (our AUTH).
      const keep: Buffer[] = []
      let keepBytes = 0
      for (const b of this.#control) {
        if (isLinkFrame(b) && c.linkState !== LinkState.RESUMING) {
          lb.append(b)
          c.framesSent++
        } else {
          keep.push(b)
          keepBytes += b.length
        }
      }
      this.#control = keep
      this.#controlBytes = keepBytes
      const chunks = lb.finish()
      if (chunks.length > 0) this.#writeChunks(chunks, lb.bytes)
      return
    }
    let replayed: Buffer[] | null = null
    let replayedBytes = 0
    if (this.#replayFrom >= 0 && c.replay !== null) {
      replayed = c.replay.slice(this.#replayFrom)
      replayedBytes = c.sessionBytesSent - this.#replayFrom
      c.replayedBytes += replayedBytes
      this.#replayFrom = -1
    }
    if (this.#control.length > 0) {
      const control = this.#control
      this.#control = []
      this.#controlBytes = 0
      let held = false
      for (let i = 0; i < control.length; i++) {
        const b = control[i]!
        if (isLinkFrame(b)) {
          lb.append(b)
        } else if (!held && b.length <= this.#room()) {
          c.sessionBytesSent += b.length
          sb.append(b)
        } else {
          // Replay buffer full: session frames wait for an ACK, in order.
          held = true
          this.#control.push(b)
          this.#controlBytes += b.length
          continue
        }
        c.framesSent++
      }
    }
    if (this.#ackPending) {
      this.#ackPending = false
      this.#writeAck(lb, performance.now())
    }
    let s: MuxStream | undefined
    while (this.#room() >= MIN_ROOM && (s = this.#windowQueue.shift()) !== undefined) {
      s.f &= ~SF.IN_WINDOW_QUEUE
      if (s.f & (SF.DETACHED | SF.FIN_RECEIVED)) continue
      const rs = s.rs
      const inc = rs.rwin - rs.rcredit - rs.rbuffered
      if (inc <= 0) continue
      rs.rcredit += inc
      sb.header(4, FrameType.WINDOW, 0, s.id)
      const o = sb.reserve(4)
      sb.scratch.writeUInt32BE(inc, o)
      c.sessionBytesSent += FRAME_HEADER_SIZE + 4
      c.framesSent++
    }
    while (sb.bytes < limit && this.#room() >= MIN_ROOM && (s = this.#openQueue.shift()) !== undefined) {
      s.f &= ~SF.IN_OPEN_QUEUE
      if (s.f & SF.DETACHED) continue
      this.#emitFirst(s, sb, cbs)
    }
    while (sb.bytes < limit && this.#room() >= MIN_ROOM && (s = this.#ring.shift()) !== undefined) {
      s.f &= ~SF.IN_RING
      if (!this.#sendable(s)) continue
      this.#emitData(s, sb, cbs)
      if (this.#sendable(s)) {
        s.f |= SF.IN_RING
        this.#ring.push(s)
      }
    }
    if (c.flow.releasable) c.flow.releaseWrites(cbs)
    if (c.earlyReplay && sb.bytes > 0 && c.sessionBytesReceived > this.#ackReported) {
      // EARLY_REPLAY: session frames carry an ACK of what arrived since the
      // last one (at most every ACK_PIGGYBACK_MS), so the peer's replay
      // buffer — what it sends again at once after a resume (13.9) — stays
      // about one RTT of data instead of up to ackEvery bytes.
      const now = performance.now()
      if (now - this.#lastAckAt >= ACK_PIGGYBACK_MS) this.#writeAck(lb, now)
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
        c.replay!.pushAll(schunks)
        for (let i = 0; i < schunks.length; i++) chunks.push(schunks[i]!)
        bytes += sb.bytes
      }
    }
    if (chunks.length > 0) this.#writeChunks(chunks, bytes)
    lb.reset()
    sb.reset()
    if (cbs.length > 0) {
      // (A callback cannot flush again synchronously: flushes are scheduled.)
      try {
        for (let i = 0; i < cbs.length; i++) cbs[i]!()
      } finally {
        cbs.length = 0
      }
    }
    if (c.isClosed() || !c.attached) return
    if (this.#hasWork()) {
      if (this.#room() < MIN_ROOM && this.#control.every((b) => !isLinkFrame(b)) && !this.#ackPending && c.helloState !== HelloState.PENDING) {
        // Only session frames left and the replay buffer is full: the next
        // ACK schedules the flush.
        this.#replayBlocked = true
      } else if (c.dx.writableNeedDrain) this.#waitingDrain = true
      else this.scheduleFlush()
    } else c.shutdown.endTransport()
  }

  /** An ACK of everything received, into the link batch. */
  #writeAck(lb: OutputBatch, now: number): void {
    const c = this.#c
    this.#ackReported = c.sessionBytesReceived
    this.#lastAckAt = now
    lb.header(8, FrameType.ACK, 0, 0)
    const o = lb.reserve(8)
    writeU64(lb.scratch, o, c.sessionBytesReceived)
    c.framesSent++
  }

  #writeChunks(chunks: Buffer[], bytes: number): void {
    const d = this.#c.dx
    if (!d.writable) return
    this.#c.bytesSent += bytes
    if (chunks.length === 1) {
      d.write(chunks[0])
      return
    }
    d.cork()
    for (let i = 0; i < chunks.length; i++) d.write(chunks[i])
    d.uncork()
  }

  /** Whether the stream's writable side has nothing beyond what is queued here and has ended: FIN can ride with the last bytes. */
  #finReady(s: MuxStream, n: number, eom: boolean): boolean {
    if (s.sqBytes !== n) return false
    // Message streams: FIN rides only with the end of the last queued message.
    if (s.messages && s.sq.length - s.sqHead > (eom ? 1 : 0)) return false
    if (s.f & SF.FIN_QUEUED) return true
    return s.writableEnded && s.writableLength === s.sqBytes
  }

  /** OPEN (with the target) or OPENED, with as much of the queue as the credit and the frame allow. */
  #emitFirst(s: MuxStream, batch: OutputBatch, cbs: Callbacks): void {
    const c = this.#c
    const isOpen = s.opener === 'local'
    const tsize = isOpen ? targetSize(s.target) : 0
    const head = s.messages ? headMessage(s.sq, s.sqHead, c.peer === null) : s.sqBytes
    const n = Math.max(0, Math.min(head, s.scredit, c.sendFrameSize - tsize, this.#room() - FRAME_HEADER_SIZE - tsize))
    const eom = s.messages && n === head
    const fin = this.#finReady(s, n, eom)
    let flags = fin ? FrameFlag.FIN : 0
    if (s.messages) {
      if (isOpen) flags |= FrameFlag.MESSAGES | (eom ? FrameFlag.OPEN_EOM : 0)
      else if (eom) flags |= FrameFlag.EOM
    }
    batch.header(tsize + n, isOpen ? FrameType.OPEN : FrameType.OPENED, flags, s.id)
    if (isOpen) {
      const o = batch.reserve(tsize)
      writeTarget(s.target, batch.scratch, o)
    }
    if (n > 0 || eom) this.#take(s, n, batch)
    s.f |= SF.OPEN_SENT
    c.sessionBytesSent += FRAME_HEADER_SIZE + tsize + n
    c.framesSent++
    this.#afterEmit(s, fin, cbs)
    if (this.#sendable(s) && !(s.f & SF.IN_RING)) {
      s.f |= SF.IN_RING
      this.#ring.push(s)
    }
  }

  /** One DATA frame of the stream's queue. */
  #emitData(s: MuxStream, batch: OutputBatch, cbs: Callbacks): void {
    const c = this.#c
    const head = s.messages ? headMessage(s.sq, s.sqHead, c.peer === null) : s.sqBytes
    const n = Math.max(0, Math.min(head, s.scredit, c.sendFrameSize, this.#room() - FRAME_HEADER_SIZE))
    const eom = s.messages && n === head
    const fin = this.#finReady(s, n, eom)
    if (n === 0 && !fin && !eom) return
    batch.header(n, FrameType.DATA, (fin ? FrameFlag.FIN : 0) | (eom ? FrameFlag.EOM : 0), s.id)
    if (n > 0 || eom) this.#take(s, n, batch)
    c.sessionBytesSent += FRAME_HEADER_SIZE + n
    c.framesSent++
    this.#afterEmit(s, fin, cbs)
  }

  /** Moves `n` bytes of the send queue into the batch; `n` = 0 takes an empty message (message streams). */
  #take(s: MuxStream, n: number, batch: OutputBatch): void {
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
    this.#c.flow.queued(-n)
    s.scredit -= n
    if (s.sqHead === sq.length) {
      sq.length = 0
      s.sqHead = 0
    } else if (s.sqHead >= 64 && s.sqHead * 2 >= sq.length) {
      // A writer that keeps the queue from emptying: drop what was taken
      // (the array must not grow with every chunk ever written).
      s.sq = sq.slice(s.sqHead)
      s.sqHead = 0
    }
  }

  /** After a frame of `s`: its held write may go on; FIN sent. */
  #afterEmit(s: MuxStream, fin: boolean, cbs: Callbacks): void {
    if (s.writeCb !== null && s.sqBytes <= s.writableHighWaterMark && !this.#c.flow.sendFull) {
      cbs.push(s.writeCb)
      s.writeCb = null
    }
    if (fin) {
      s.f |= SF.FIN_SENT
      if (s.finalCb !== null) {
        cbs.push(s.finalCb)
        s.finalCb = null
      }
      if (s.f & SF.FIN_RECEIVED) this.#c.streams.detach(s)
    }
  }
}
