/**
 * The streaming frame decoder: transport chunks in, one callback per
 * complete frame out (PROTOCOL.md 4).
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE, FrameFlag, FrameType, MAX_MAX_FRAME_SIZE, MAX_WINDOW } from './constants.js'
import { flowError } from './errors.js'
import { ProtocolError, uintArg } from '../errors.js'
import { type Frame, checkFrameHeader, parseFrame } from './frames.js'

/** The flags a DATA frame may carry in message mode. */
const DATA_FLAGS_MESSAGES = FrameFlag.FIN | FrameFlag.EOM

/** Options of a {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest payload accepted (default 16,777,215). */
  maxFrameSize?: number
  /**
   * Deliver DATA payloads that span input chunks as `chunks` (views into the
   * input) instead of copying them into one Buffer. Default false.
   */
  zeroCopy?: boolean
  /** Accept the message-mode flags (the MESSAGES capability is in effect). Default false. */
  messages?: boolean
}

const EMPTY = Buffer.alloc(0)

/**
 * Where {@link FrameDecoder.decode} hands the frames: the two frame types
 * of bulk transfer by their header fields (no object per frame), every
 * other type parsed into a {@link Frame}. `size` is header + payload bytes.
 * @internal
 */
export interface FrameSink {
  /**
   * A DATA frame: the payload is `payload`, or, when it spans several input
   * chunks and the decoder is zero-copy, the concatenation of `parts`
   * (views into the input; `payload` is then empty).
   */
  data(flags: number, streamId: number, payload: Buffer, parts: Buffer[] | null, size: number): void
  /** A WINDOW frame (its increment checked: 1 to MAX_WINDOW). */
  window(streamId: number, increment: number, size: number): void
  /** Any other frame. */
  frame(frame: Frame, size: number): void
}

/** Hands every frame to a `(frame, size)` callback as an object: {@link FrameDecoder.push}. */
class ObjectSink implements FrameSink {
  onFrame: (frame: Frame, size: number) => void = () => {}

  data(flags: number, streamId: number, payload: Buffer, parts: Buffer[] | null, size: number): void {
    this.onFrame(parts === null ? { type: FrameType.DATA, flags, streamId, data: payload } : { type: FrameType.DATA, flags, streamId, data: EMPTY, chunks: parts }, size)
  }

  window(streamId: number, increment: number, size: number): void {
    this.onFrame({ type: FrameType.WINDOW, flags: 0, streamId, increment }, size)
  }

  frame(frame: Frame, size: number): void {
    this.onFrame(frame, size)
  }
}

/**
 * Streaming frame decoder: feed it transport chunks of any size, it calls
 * back once per complete frame. A frame's length is checked from its header
 * before the payload is buffered, so it never holds more than one frame.
 * After it throws, it is dead (every later `push` throws the same error).
 */
export class FrameDecoder {
  /** Largest payload accepted. */
  readonly maxFrameSize: number
  /**
   * Whether the message-mode flags are accepted (PROTOCOL.md 15). A session
   * switches it on once the HELLOs show that MESSAGES is in effect.
   */
  messages: boolean
  private readonly zeroCopy: boolean
  private readonly hdr = Buffer.alloc(FRAME_HEADER_SIZE)
  private hdrFill = 0
  private inPayload = false
  private length = 0
  private type = 0
  private flags = 0
  private streamId = 0
  private remaining = 0
  private parts: Buffer[] = []
  private error: ProtocolError | null = null
  private stopped = false
  private objectSink: ObjectSink | null = null

  constructor(options: FrameDecoderOptions = {}) {
    const mf = options.maxFrameSize ?? MAX_MAX_FRAME_SIZE
    this.maxFrameSize = uintArg('options.maxFrameSize', mf, 0, MAX_MAX_FRAME_SIZE)
    this.zeroCopy = options.zeroCopy === true
    this.messages = options.messages === true
  }

  /** Bytes held for the frame being assembled. */
  get bufferedBytes(): number {
    let n = this.hdrFill
    for (const p of this.parts) n += p.length
    return n
  }

  /** Stops decoding: the rest of the current and every later chunk is ignored. */
  stop(): void {
    this.stopped = true
    this.parts = []
  }

  /**
   * Decodes `chunk`, calling `onFrame(frame, size)` for every complete frame
   * (`size` = header + payload bytes). Throws a {@link ProtocolError}.
   */
  push(chunk: Buffer, onFrame: (frame: Frame, size: number) => void): void {
    const sink = (this.objectSink ??= new ObjectSink())
    sink.onFrame = onFrame
    this.decode(chunk, sink)
  }

  /**
   * Decodes `chunk` into `sink` (see {@link FrameSink}): the session's path,
   * without an object per DATA or WINDOW frame. Throws a {@link ProtocolError}.
   * @internal
   */
  decode(chunk: Buffer, sink: FrameSink): void {
    if (this.error) throw this.error
    try {
      this.decodeInner(chunk, sink)
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.error = err
        this.parts = []
      }
      throw err
    }
  }

  private decodeInner(chunk: Buffer, sink: FrameSink): void {
    let off = 0
    const len = chunk.length
    while (off < len && !this.stopped) {
      if (!this.inPayload) {
        let h: Buffer
        let ho: number
        if (this.hdrFill === 0 && len - off >= FRAME_HEADER_SIZE) {
          h = chunk
          ho = off
          off += FRAME_HEADER_SIZE
        } else {
          const take = Math.min(FRAME_HEADER_SIZE - this.hdrFill, len - off)
          chunk.copy(this.hdr, this.hdrFill, off, off + take)
          this.hdrFill += take
          off += take
          if (this.hdrFill < FRAME_HEADER_SIZE) return
          this.hdrFill = 0
          h = this.hdr
          ho = 0
        }
        const length = (h[ho]! << 16) | (h[ho + 1]! << 8) | h[ho + 2]!
        const type = h[ho + 3]!
        const flags = h[ho + 4]!
        const streamId = ((h[ho + 5]! << 24) | (h[ho + 6]! << 16) | (h[ho + 7]! << 8) | h[ho + 8]!) >>> 0
        // DATA with FIN (and EOM in message mode) on a stream, within the size: valid, no table lookups.
        if (type !== FrameType.DATA || (flags & ~(this.messages ? DATA_FLAGS_MESSAGES : FrameFlag.FIN)) !== 0 || streamId === 0 || length > this.maxFrameSize) {
          checkFrameHeader(length, type, flags, streamId, this.maxFrameSize, this.messages)
        }
        if (length === 0) {
          this.emit(sink, type, flags, streamId, EMPTY, FRAME_HEADER_SIZE)
          continue
        }
        this.length = length
        this.type = type
        this.flags = flags
        this.streamId = streamId
        this.remaining = length
        this.inPayload = true
      }
      const take = Math.min(this.remaining, len - off)
      const piece = take === len && off === 0 ? chunk : chunk.subarray(off, off + take)
      off += take
      this.remaining -= take
      if (this.remaining > 0) {
        this.parts.push(piece)
        continue
      }
      this.inPayload = false
      const size = FRAME_HEADER_SIZE + this.length
      if (this.parts.length === 0) {
        this.emit(sink, this.type, this.flags, this.streamId, piece, size)
      } else {
        this.parts.push(piece)
        const parts = this.parts
        this.parts = []
        if (this.type === FrameType.DATA && this.zeroCopy) sink.data(this.flags, this.streamId, EMPTY, parts, size)
        else this.emit(sink, this.type, this.flags, this.streamId, Buffer.concat(parts, this.length), size)
      }
    }
  }

  /** Hands a frame with its whole payload to `sink`. */
  private emit(sink: FrameSink, type: number, flags: number, streamId: number, payload: Buffer, size: number): void {
    if (type === FrameType.DATA) {
      sink.data(flags, streamId, payload, null, size)
    } else if (type === FrameType.WINDOW) {
      const increment = payload.readUInt32BE(0)
      if (increment === 0 || increment > MAX_WINDOW) throw flowError(`WINDOW increment ${increment} out of range`)
      sink.window(streamId, increment, size)
    } else {
      sink.frame(parseFrame(type, flags, streamId, payload), size)
    }
  }
}
