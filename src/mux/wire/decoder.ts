/**
 * The streaming frame decoder: transport chunks in, one callback per
 * complete frame out (PROTOCOL.md 4).
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE, FrameType, MAX_MAX_FRAME_SIZE } from './constants.js'
import { ProtocolError, uintArg } from '../errors.js'
import { type Frame, checkFrameHeader, parseFrame } from './frames.js'

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
    if (this.error) throw this.error
    try {
      this.pushInner(chunk, onFrame)
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.error = err
        this.parts = []
      }
      throw err
    }
  }

  private pushInner(chunk: Buffer, onFrame: (frame: Frame, size: number) => void): void {
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
        const streamId = h.readUInt32BE(ho + 5)
        checkFrameHeader(length, type, flags, streamId, this.maxFrameSize, this.messages)
        if (length === 0) {
          onFrame(parseFrame(type, flags, streamId, EMPTY), FRAME_HEADER_SIZE)
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
      const piece = chunk.subarray(off, off + take)
      off += take
      this.remaining -= take
      if (this.remaining > 0) {
        this.parts.push(piece)
        continue
      }
      this.inPayload = false
      let frame: Frame
      if (this.parts.length === 0) {
        frame = parseFrame(this.type, this.flags, this.streamId, piece)
      } else {
        this.parts.push(piece)
        const parts = this.parts
        this.parts = []
        if (this.zeroCopy && this.type === FrameType.DATA) {
          frame = { type: FrameType.DATA, flags: this.flags, streamId: this.streamId, data: EMPTY, chunks: parts }
        } else {
          frame = parseFrame(this.type, this.flags, this.streamId, Buffer.concat(parts, this.length))
        }
      }
      onFrame(frame, FRAME_HEADER_SIZE + this.length)
    }
  }
}
