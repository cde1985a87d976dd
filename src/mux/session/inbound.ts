/**
 * Bytes in: the transport's chunks → the peer's HELLO (once per transport)
 * → {@link FrameDecoder} → one handler per frame type. Session frames are
 * counted in the session sequence (PROTOCOL.md 7; after a resume, the
 * duplicates the peer replayed are dropped first), and a malformed or
 * forbidden frame fails the session with its protocol error.
 *
 * The decoder hands DATA and WINDOW frames — the frames of bulk transfer —
 * by their header fields ({@link FrameSink}: no object per frame), every
 * other type as a parsed frame to {@link Inbound.onFrame}.
 * @packageDocumentation
 */
import { performance } from 'node:perf_hooks'
import { Capability, DEFAULTS, FrameFlag, FrameType, MAX_WINDOW, RefuseCode } from '../wire/constants.js'
import { type AckFrame, type Frame, type OpenFrame, type OpenedFrame, type RefusedFrame, type RstFrame, encodeFrame, frameTypeName } from '../wire/frames.js'
import { FrameDecoder, type FrameSink } from '../wire/decoder.js'
import { decodeHello } from '../wire/hello.js'
import { flowError, protocolError } from '../wire/errors.js'
import { pongFrame } from '../wire/writer.js'
import { isPrintableHost } from '../wire/target.js'
import { MuxError } from '../errors.js'
import { SF } from '../stream/flags.js'
import { checkMessageFrame } from '../stream/message.js'
import { MuxStream } from '../stream/stream.js'
import { type InboundPart, Life, LinkState, type SessionCore } from './core.js'

/** The reason text of each REFUSED code (PROTOCOL.md 11.2). @internal */
export const REFUSE_REASONS: Record<number, string> = {
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

const EMPTY = Buffer.alloc(0)

/** What a session does with what it reads. @internal */
export class Inbound implements InboundPart, FrameSink {
  readonly #c: SessionCore
  #decoder: FrameDecoder
  /** No HELLO from the peer yet on the current transport. */
  #helloWait = true
  /** The start of the peer's HELLO, while it is incomplete. */
  #helloBuf: Buffer | null = null
  /** Duplicate session bytes to drop at the start of a resumed transport. */
  #rxSkip = 0
  ackEvery: number = DEFAULTS.ackEvery

  constructor(core: SessionCore) {
    this.#c = core
    this.#decoder = this.#newDecoder()
  }

  #newDecoder(): FrameDecoder {
    return new FrameDecoder({ maxFrameSize: this.#c.opts.maxFrameSize, zeroCopy: true, messages: this.#c.messagesOn })
  }

  expectHello(): void {
    this.#helloWait = true
    this.#helloBuf = null
  }

  helloRead(): void {
    this.#helloWait = false
  }

  skip(n: number): void {
    this.#rxSkip = n
  }

  enableMessages(): void {
    this.#decoder.messages = true
  }

  dropLink(): void {
    this.#decoder.stop()
    this.#decoder = this.#newDecoder()
    this.#helloBuf = null
    this.#rxSkip = 0
  }

  stop(): void {
    this.#decoder.stop()
    this.#helloBuf = null
  }

  onData(chunk: Buffer | string): void {
    const c = this.#c
    if (c.isClosed()) return
    if (typeof chunk === 'string') chunk = Buffer.from(chunk)
    c.bytesReceived += chunk.length
    c.timers.heard()
    try {
      if (this.#helloWait) {
        const buf: Buffer = this.#helloBuf === null ? chunk : Buffer.concat([this.#helloBuf, chunk])
        const r = decodeHello(buf)
        if (r === null) {
          this.#helloBuf = buf
          return
        }
        this.#helloBuf = null
        this.#helloWait = false
        c.handshake.onHello(r.hello, buf.subarray(0, r.size))
        if (c.isClosed()) return
        if (buf.length > r.size) this.#decoder.decode(buf.subarray(r.size), this)
      } else {
        this.#decoder.decode(chunk, this)
      }
    } catch (err) {
      if (err instanceof MuxError) c.shutdown.fail(err)
      else throw err
    }
  }

  onEnd(): void {
    const c = this.#c
    if (c.isClosed()) return
    const sd = c.shutdown
    if (sd.ending || ((sd.goawaySent || sd.goawayReceived) && c.streams.map.size === 0)) {
      sd.maybeEnd()
      return
    }
    c.link.lost(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport ended without GOAWAY'))
  }

  // FrameSink: what the decoder hands over.

  data(flags: number, streamId: number, payload: Buffer, parts: Buffer[] | null, size: number): void {
    if (this.#held()) {
      this.onFrame(parts === null ? { type: FrameType.DATA, flags, streamId, data: payload } : { type: FrameType.DATA, flags, streamId, data: EMPTY, chunks: parts }, size)
    } else if (this.#counted(FrameType.DATA, size)) {
      this.#onDataFrame(flags, streamId, payload, parts)
    }
  }

  window(streamId: number, increment: number, size: number): void {
    if (this.#held()) this.onFrame({ type: FrameType.WINDOW, flags: 0, streamId, increment }, size)
    else if (this.#counted(FrameType.WINDOW, size)) this.#onWindow(streamId, increment)
  }

  frame(frame: Frame, size: number): void {
    this.onFrame(frame, size)
  }

  /** Frames that go elsewhere for now: held until the peer's AUTH, or the answer to our RESUME. */
  #held(): boolean {
    return this.#c.authPending || this.#c.linkState === LinkState.VERDICT
  }

  /** Counts a frame (session frames in the session sequence); false: a duplicate of a resume, dropped. */
  #counted(type: number, size: number): boolean {
    const c = this.#c
    c.framesReceived++
    if (type < 0x80) {
      if (this.#rxSkip > 0) {
        // Replayed by the peer, but already received on the old transport.
        this.#rxSkip -= size
        c.duplicateBytes += size
        if (this.#rxSkip < 0) throw protocolError('replayed session frames do not end on the resume offset')
        return false
      }
      c.sessionBytesReceived += size
      c.output.ackIfDue(this.ackEvery)
    }
    return true
  }

  onFrame(frame: Frame, size: number): void {
    const c = this.#c
    if (c.authPending) return c.handshake.holdUntilAuth(frame, size)
    if (c.linkState === LinkState.VERDICT) return c.link.onResumeVerdict(frame)
    if (!this.#counted(frame.type, size)) return
    switch (frame.type) {
      case FrameType.DATA:
        return this.#onDataFrame(frame.flags, frame.streamId, frame.data, frame.chunks ?? null)
      case FrameType.WINDOW:
        return this.#onWindow(frame.streamId, frame.increment)
      case FrameType.OPEN:
        return this.#onOpen(frame)
      case FrameType.OPENED:
        return this.#onOpened(frame)
      case FrameType.REFUSED:
        return this.#onRefused(frame)
      case FrameType.RST:
        return this.#onRst(frame)
      case FrameType.GOAWAY:
        return c.shutdown.onGoaway(frame)
      case FrameType.PING:
        c.output.requestAck()
        c.output.queueControl(pongFrame(frame.opaque))
        return
      case FrameType.PONG:
        return c.timers.onPong(frame)
      case FrameType.ACK:
        return this.#onAck(frame)
      case FrameType.AUTH:
        if (c.opts.auth !== null && c.peer !== null && (c.peer.capabilities & Capability.AUTH_PSK)) throw protocolError('unexpected AUTH frame')
        throw protocolError('AUTH frame, but AUTH_PSK is not in effect')
      default:
        throw protocolError(`${frameTypeName(frame.type)} frame, but its capability is not in effect`)
    }
  }

  #onOpen(f: OpenFrame): void {
    const c = this.#c
    const o = c.opts
    const streams = c.streams
    const id = f.streamId
    if (streams.isOwnId(id) || id <= streams.highestPeerId) throw protocolError(`OPEN with stream id ${id}: wrong parity or not increasing`)
    streams.highestPeerId = id
    const len = f.data.length
    if (len > o.initialWindow) throw flowError(`OPEN with ${len} bytes of data exceeds the initial window`)
    if (c.shutdown.goawaySent && id > c.shutdown.goawaySentLast) return // crossed our GOAWAY: ignored
    let refuse = 0
    if (c.life !== Life.OPEN) refuse = RefuseCode.GOING_AWAY
    else if (c.session.listenerCount('stream') === 0) refuse = RefuseCode.NO_LISTENER
    else if (streams.peerCount >= o.maxStreams) refuse = RefuseCode.TOO_MANY_STREAMS
    else if (streams.pendingCount >= o.maxPendingOpens) refuse = RefuseCode.TOO_MANY_PENDING
    else if (c.flow.budget.bufferedTotal >= o.maxSessionBuffer) refuse = RefuseCode.BUSY
    else if (f.target !== null && f.target.kind === 'hostname') {
      if (f.target.host.length > o.maxTargetLength) refuse = RefuseCode.TARGET_TOO_LONG
      else if (!isPrintableHost(f.target.host)) refuse = RefuseCode.BAD_TARGET
    }
    if (refuse !== 0) {
      const reason = REFUSE_REASONS[refuse] ?? ''
      c.output.queueControl(encodeFrame({ type: FrameType.REFUSED, streamId: id, code: refuse, reason }))
      if (c.session.listenerCount('refused') > 0) c.session.emit('refused', { streamId: id, code: refuse, reason, target: f.target })
      return
    }
    const messages = (f.flags & FrameFlag.MESSAGES) !== 0
    // Message-mode violations in the OPEN itself fail the session before a stream exists.
    if (messages) checkMessageFrame(o.maxMessage, id, 0, len, (f.flags & FrameFlag.OPEN_EOM) !== 0, (f.flags & FrameFlag.FIN) !== 0)
    const now = performance.now()
    const s = new MuxStream(streams, c.session, id, 'remote', f.target, o.initialWindow, now, o.streamHighWaterMark, messages)
    streams.addRemote(s)
    s.rs.rcredit -= len
    if (messages) c.flow.messageIn(s, f.data, undefined, len, (f.flags & FrameFlag.OPEN_EOM) !== 0)
    else if (len > 0) c.flow.deliver(s, f.data)
    if (f.flags & FrameFlag.FIN) this.#remoteFin(s)
    if (o.acceptDelay !== Infinity) c.timers.queueAccept(s, now)
    c.session.emit('stream', s, { target: f.target, messages })
  }

  #onOpened(f: OpenedFrame): void {
    const c = this.#c
    const s = c.streams.lookup(f.streamId, f.type)
    if (s === null) return
    if (s.opener !== 'local' || (s.f & SF.REMOTE_OPENED) || !(s.f & SF.OPEN_SENT)) throw protocolError(`unexpected OPENED for stream ${s.id}`)
    const len = f.data.length
    if (len > s.rs.rcredit) throw flowError(`OPENED with ${len} bytes exceeds the credit of stream ${s.id}`)
    if (s.inbox === null && (f.flags & FrameFlag.EOM)) throw protocolError(`OPENED with EOM on stream ${s.id}, which is not a message stream`)
    if (s.inbox !== null) checkMessageFrame(c.opts.maxMessage, s.id, s.inbox.partial, len, (f.flags & FrameFlag.EOM) !== 0, (f.flags & FrameFlag.FIN) !== 0)
    s.f |= SF.REMOTE_OPENED
    s.openedIn = performance.now() - s.openAt
    s.rs.rcredit -= len
    // 'open' before the OPENED's bytes reach 'data' (a listener may end the stream: then they are moot)
    s.emit('open')
    if (s.f & SF.DETACHED) return
    if (s.inbox !== null) c.flow.messageIn(s, f.data, undefined, len, (f.flags & FrameFlag.EOM) !== 0)
    else if (len > 0) c.flow.deliver(s, f.data)
    if (f.flags & FrameFlag.FIN) this.#remoteFin(s)
    if (len > 0) c.flow.checkConsumed(s)
  }

  #onRefused(f: RefusedFrame): void {
    const c = this.#c
    const s = c.streams.lookup(f.streamId, f.type)
    if (s === null) return
    if (s.opener !== 'local' || (s.f & SF.REMOTE_OPENED) || !(s.f & SF.OPEN_SENT)) throw protocolError(`unexpected REFUSED for stream ${s.id}`)
    c.streams.detach(s)
    const name = REFUSE_REASONS[f.code] ?? `code ${f.code}`
    s.destroy(new MuxError('SYNMUX_REFUSED', `stream ${s.id} refused (${name})${f.reason ? `: ${f.reason}` : ''}`, { wireCode: f.code, reason: f.reason }))
  }

  #onDataFrame(flags: number, streamId: number, data: Buffer, chunks: Buffer[] | null): void {
    const c = this.#c
    const s = c.streams.lookup(streamId, FrameType.DATA)
    if (s === null) return
    if (s.opener === 'local' && !(s.f & SF.REMOTE_OPENED)) throw protocolError(`DATA before OPENED on stream ${s.id}`)
    if (s.f & SF.FIN_RECEIVED) throw protocolError(`DATA after FIN on stream ${s.id}`)
    let len = 0
    if (chunks === null) len = data.length
    else for (let i = 0; i < chunks.length; i++) len += chunks[i]!.length
    if (len > s.rs.rcredit) throw flowError(`DATA of ${len} bytes exceeds the credit (${s.rs.rcredit}) of stream ${s.id}`)
    s.rs.rcredit -= len
    const flow = c.flow
    if (s.inbox !== null) {
      flow.messageIn(s, data, chunks ?? undefined, len, (flags & FrameFlag.EOM) !== 0)
    } else if (flags & FrameFlag.EOM) {
      throw protocolError(`DATA with EOM on stream ${s.id}, which is not a message stream`)
    } else if (chunks === null) {
      if (len > 0) flow.deliver(s, data)
    } else {
      for (let i = 0; i < chunks.length; i++) flow.deliver(s, chunks[i]!)
    }
    if (flags & FrameFlag.FIN) this.#remoteFin(s)
    if (len > 0) flow.checkConsumed(s)
  }

  #onWindow(streamId: number, increment: number): void {
    const c = this.#c
    const s = c.streams.lookup(streamId, FrameType.WINDOW)
    if (s === null) return
    s.scredit += increment
    if (s.scredit > MAX_WINDOW) throw flowError(`WINDOW overflows the credit of stream ${s.id}`)
    c.output.scheduleStream(s)
  }

  #onRst(f: RstFrame): void {
    const c = this.#c
    const s = c.streams.lookup(f.streamId, f.type)
    if (s === null) return
    c.streams.detach(s)
    s.destroy(new MuxError('SYNMUX_STREAM_RESET', `stream ${s.id} reset by the peer (code ${f.code})`, { wireCode: f.code }))
  }

  #onAck(f: AckFrame): void {
    const c = this.#c
    if (f.received < c.peerAcked) throw protocolError('ACK went backwards')
    if (f.received > c.sessionBytesSent) throw protocolError('ACK of more session bytes than were sent')
    c.peerAcked = f.received
    if (c.replay !== null) {
      c.replay.ack(f.received)
      c.output.replayRoom()
    }
  }

  #remoteFin(s: MuxStream): void {
    if (s.inbox !== null) checkMessageFrame(this.#c.opts.maxMessage, s.id, s.inbox.partial, 0, false, true)
    s.f |= SF.FIN_RECEIVED
    s.push(null)
    if (s.f & SF.FIN_SENT) this.#c.streams.detach(s)
  }
}
