/**
 * Frames (PROTOCOL.md 4): their types, encoding ({@link encodeFrame}),
 * header checks and decoding. Pure functions; the streaming decoder is
 * {@link FrameDecoder} (decoder.ts).
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE, FrameFlag, FrameType, MAX_MAX_FRAME_SIZE, MAX_REASON_LENGTH, MAX_STREAM_ID, MAX_WINDOW } from './constants.js'
import { invalidArgType, invalidArgValue, outOfRange, uintArg } from '../errors.js'
import { flowError, frameSizeError, protocolError } from './errors.js'
import { type DecodedTarget, type Target, normalizeTarget, readTarget, targetSize, writeTarget } from './target.js'
import { writeFrameHeader, writeU64 } from './writer.js'

/** OPEN: a new stream with its target and first data. */
export interface OpenFrame {
  type: typeof FrameType.OPEN
  flags: number
  streamId: number
  target: DecodedTarget | null
  data: Buffer
}
/** OPENED: the acceptor accepts, with its first data. */
export interface OpenedFrame {
  type: typeof FrameType.OPENED
  flags: number
  streamId: number
  data: Buffer
}
/** REFUSED: the acceptor refuses the stream. */
export interface RefusedFrame {
  type: typeof FrameType.REFUSED
  flags: number
  streamId: number
  code: number
  reason: string
}
/** DATA: stream data (FIN flag: half-close). */
export interface DataFrame {
  type: typeof FrameType.DATA
  flags: number
  streamId: number
  /** The payload (empty when `chunks` is set). */
  data: Buffer
  /**
   * Set only by a {@link FrameDecoder} created with `zeroCopy: true` when the
   * payload spans several input chunks: the payload is their concatenation.
   */
  chunks?: Buffer[]
}
/** WINDOW: more send credit on a stream. */
export interface WindowFrame {
  type: typeof FrameType.WINDOW
  flags: number
  streamId: number
  increment: number
}
/** RST: abortive close of a stream. */
export interface RstFrame {
  type: typeof FrameType.RST
  flags: number
  streamId: number
  code: number
}
/** GOAWAY: no more streams above `lastStreamId`. */
export interface GoawayFrame {
  type: typeof FrameType.GOAWAY
  flags: number
  streamId: number
  lastStreamId: number
  code: number
  reason: string
}
/** PING (8 opaque bytes). */
export interface PingFrame {
  type: typeof FrameType.PING
  flags: number
  streamId: number
  opaque: Buffer
}
/** PONG (the PING's 8 bytes). */
export interface PongFrame {
  type: typeof FrameType.PONG
  flags: number
  streamId: number
  opaque: Buffer
}
/** ACK: session bytes received. */
export interface AckFrame {
  type: typeof FrameType.ACK
  flags: number
  streamId: number
  received: number
}
/** AUTH (reserved for PSK authentication): a 32-byte proof. */
export interface AuthFrame {
  type: typeof FrameType.AUTH
  flags: number
  streamId: number
  proof: Buffer
}
/** SEQ (reserved for striping): session offset of the next session frame on this lane. */
export interface SeqFrame {
  type: typeof FrameType.SEQ
  flags: number
  streamId: number
  offset: number
}

/** Any decoded frame. */
export type Frame =
  | OpenFrame
  | OpenedFrame
  | RefusedFrame
  | DataFrame
  | WindowFrame
  | RstFrame
  | GoawayFrame
  | PingFrame
  | PongFrame
  | AckFrame
  | AuthFrame
  | SeqFrame

/** Input of {@link encodeFrame}: a frame whose `flags` and `streamId` may be omitted (0) and whose OPEN target may be any {@link Target}. */
export type FrameInit =
  | (Omit<OpenFrame, 'flags' | 'target' | 'data'> & { flags?: number; target?: Target | null; data?: Buffer })
  | (Omit<OpenedFrame, 'flags' | 'data'> & { flags?: number; data?: Buffer })
  | (Omit<RefusedFrame, 'flags' | 'reason'> & { flags?: number; reason?: string })
  | (Omit<DataFrame, 'flags' | 'data' | 'chunks'> & { flags?: number; data?: Buffer })
  | (Omit<WindowFrame, 'flags'> & { flags?: number })
  | (Omit<RstFrame, 'flags'> & { flags?: number })
  | (Omit<GoawayFrame, 'flags' | 'streamId' | 'reason'> & { flags?: number; streamId?: number; reason?: string })
  | (Omit<PingFrame, 'flags' | 'streamId'> & { flags?: number; streamId?: number })
  | (Omit<PongFrame, 'flags' | 'streamId'> & { flags?: number; streamId?: number })
  | (Omit<AckFrame, 'flags' | 'streamId'> & { flags?: number; streamId?: number })
  | (Omit<AuthFrame, 'flags' | 'streamId'> & { flags?: number; streamId?: number })
  | (Omit<SeqFrame, 'flags' | 'streamId'> & { flags?: number; streamId?: number })

/** Flags each frame type may carry in version 1 (reserved flags excluded). */
const ALLOWED_FLAGS: Record<number, number> = {
  [FrameType.OPEN]: FrameFlag.FIN,
  [FrameType.OPENED]: FrameFlag.FIN,
  [FrameType.REFUSED]: 0,
  [FrameType.DATA]: FrameFlag.FIN,
  [FrameType.WINDOW]: 0,
  [FrameType.RST]: 0,
  [FrameType.GOAWAY]: 0,
  [FrameType.PING]: 0,
  [FrameType.PONG]: 0,
  [FrameType.ACK]: 0,
  [FrameType.AUTH]: 0,
  [FrameType.SEQ]: 0,
}
/** Flags allowed when the MESSAGES capability is in effect (PROTOCOL.md 15). */
const MESSAGE_FLAGS: Record<number, number> = {
  [FrameType.OPEN]: FrameFlag.FIN | FrameFlag.MESSAGES | FrameFlag.OPEN_EOM,
  [FrameType.OPENED]: FrameFlag.FIN | FrameFlag.EOM,
  [FrameType.DATA]: FrameFlag.FIN | FrameFlag.EOM,
}

/** Whether a frame type is a session frame (counted in the session sequence). */
export function isSessionFrameType(type: number): boolean {
  return type < 0x80
}

function reasonBytes(reason: unknown): Buffer {
  if (reason === undefined) return Buffer.alloc(0)
  if (typeof reason !== 'string') throw invalidArgType('frame.reason', 'of type string', reason)
  const b = Buffer.from(reason, 'utf8')
  // Truncate at a character boundary to 255 bytes.
  if (b.length <= MAX_REASON_LENGTH) return b
  let end = MAX_REASON_LENGTH
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--
  return b.subarray(0, end)
}

/**
 * Encodes one frame into a new Buffer (header + payload). Validates the
 * fields; throws `TypeError`/`RangeError` with stable codes.
 */
export function encodeFrame(frame: FrameInit): Buffer {
  if (typeof frame !== 'object' || frame === null) throw invalidArgType('frame', 'an object', frame)
  const type = frame.type
  if (!(type in ALLOWED_FLAGS)) throw invalidArgValue('frame.type', 'must be a known frame type', type)
  const flags = uintArg('frame.flags', frame.flags ?? 0, 0, 255)
  const streamId = uintArg('frame.streamId', frame.streamId ?? 0, 0, MAX_STREAM_ID)
  let payload: Buffer
  switch (frame.type) {
    case FrameType.OPEN: {
      const t = frame.target == null ? null : normalizeTarget(frame.target, 'frame.target')
      const data = frame.data ?? Buffer.alloc(0)
      if (!Buffer.isBuffer(data)) throw invalidArgType('frame.data', 'a Buffer', data)
      payload = Buffer.allocUnsafe(targetSize(t) + data.length)
      const off = writeTarget(t, payload, 0)
      data.copy(payload, off)
      break
    }
    case FrameType.OPENED:
    case FrameType.DATA: {
      const data = frame.data ?? Buffer.alloc(0)
      if (!Buffer.isBuffer(data)) throw invalidArgType('frame.data', 'a Buffer', data)
      payload = data
      break
    }
    case FrameType.REFUSED: {
      const code = uintArg('frame.code', frame.code, 0, 0xffff)
      const r = reasonBytes(frame.reason)
      payload = Buffer.allocUnsafe(2 + r.length)
      payload.writeUInt16BE(code, 0)
      r.copy(payload, 2)
      break
    }
    case FrameType.WINDOW: {
      const inc = uintArg('frame.increment', frame.increment, 0, 0xffff_ffff)
      payload = Buffer.allocUnsafe(4)
      payload.writeUInt32BE(inc, 0)
      break
    }
    case FrameType.RST: {
      const code = uintArg('frame.code', frame.code, 0, 0xffff)
      payload = Buffer.allocUnsafe(2)
      payload.writeUInt16BE(code, 0)
      break
    }
    case FrameType.GOAWAY: {
      const last = uintArg('frame.lastStreamId', frame.lastStreamId, 0, MAX_STREAM_ID)
      const code = uintArg('frame.code', frame.code, 0, 0xffff)
      const r = reasonBytes(frame.reason)
      payload = Buffer.allocUnsafe(6 + r.length)
      payload.writeUInt32BE(last, 0)
      payload.writeUInt16BE(code, 4)
      r.copy(payload, 6)
      break
    }
    case FrameType.PING:
    case FrameType.PONG: {
      if (!Buffer.isBuffer(frame.opaque)) throw invalidArgType('frame.opaque', 'a Buffer', frame.opaque)
      if (frame.opaque.length !== 8) throw outOfRange('frame.opaque.length', '8', frame.opaque.length)
      payload = frame.opaque
      break
    }
    case FrameType.ACK: {
      const v = uintArg('frame.received', frame.received, 0, Number.MAX_SAFE_INTEGER)
      payload = Buffer.allocUnsafe(8)
      writeU64(payload, 0, v)
      break
    }
    case FrameType.SEQ: {
      const v = uintArg('frame.offset', frame.offset, 0, Number.MAX_SAFE_INTEGER)
      payload = Buffer.allocUnsafe(8)
      writeU64(payload, 0, v)
      break
    }
    case FrameType.AUTH: {
      if (!Buffer.isBuffer(frame.proof)) throw invalidArgType('frame.proof', 'a Buffer', frame.proof)
      payload = frame.proof
      break
    }
    default:
      throw invalidArgValue('frame.type', 'must be a known frame type', type)
  }
  if (payload.length > MAX_MAX_FRAME_SIZE) throw outOfRange('frame payload length', `<= ${MAX_MAX_FRAME_SIZE}`, payload.length)
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length)
  writeFrameHeader(out, 0, payload.length, type, flags, streamId)
  payload.copy(out, FRAME_HEADER_SIZE)
  return out
}

const TYPE_NAMES: Record<number, string> = {
  1: 'OPEN', 2: 'OPENED', 3: 'REFUSED', 4: 'DATA', 5: 'WINDOW', 6: 'RST', 7: 'GOAWAY',
  0x80: 'PING', 0x81: 'PONG', 0x82: 'ACK', 0x83: 'AUTH', 0x84: 'SEQ',
}

/** The name of a frame type (`'DATA'`), or `'0x..'` if unknown. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `0x${type.toString(16).padStart(2, '0')}`
}

/**
 * Validates a frame header on its own (before any payload is buffered).
 * `messages`: the MESSAGES capability is in effect (its flags are allowed).
 * Throws a {@link ProtocolError}. @internal
 */
export function checkFrameHeader(length: number, type: number, flags: number, streamId: number, maxFrameSize: number, messages = false): void {
  let allowed = ALLOWED_FLAGS[type]
  if (allowed === undefined) throw protocolError(`unknown frame type 0x${type.toString(16).padStart(2, '0')}`)
  if (length > maxFrameSize) {
    throw frameSizeError(`${TYPE_NAMES[type]} frame of ${length} bytes exceeds the max frame size ${maxFrameSize}`)
  }
  if (messages) allowed = MESSAGE_FLAGS[type] ?? allowed
  if ((flags & ~allowed) !== 0) {
    const msgBits = messages ? 0 : (MESSAGE_FLAGS[type] ?? 0) & ~allowed
    const hint = (flags & msgBits) !== 0 ? ' (a message-mode flag, but MESSAGES is not in effect)' : ''
    throw protocolError(`${TYPE_NAMES[type]} frame with invalid flags 0x${flags.toString(16)}${hint}`)
  }
  if (type === FrameType.OPEN && (flags & FrameFlag.OPEN_EOM) !== 0 && (flags & FrameFlag.MESSAGES) === 0) throw protocolError('OPEN frame with EOM but without MESSAGES')
  const onStream = type <= FrameType.RST
  if (onStream && streamId === 0) throw protocolError(`${TYPE_NAMES[type]} frame on stream 0`)
  if (!onStream && streamId !== 0) throw protocolError(`${TYPE_NAMES[type]} frame with stream id ${streamId} (must be 0)`)
  let ok: boolean
  switch (type) {
    case FrameType.OPEN: ok = length >= 1; break
    case FrameType.REFUSED: ok = length >= 2 && length <= 2 + MAX_REASON_LENGTH; break
    case FrameType.WINDOW: ok = length === 4; break
    case FrameType.RST: ok = length === 2; break
    case FrameType.GOAWAY: ok = length >= 6 && length <= 6 + MAX_REASON_LENGTH; break
    case FrameType.PING: case FrameType.PONG: case FrameType.ACK: case FrameType.SEQ: ok = length === 8; break
    case FrameType.AUTH: ok = length === 32; break
    default: ok = true
  }
  if (!ok) throw protocolError(`${TYPE_NAMES[type]} frame with bad payload length ${length}`)
}

function readU64(buf: Buffer, offset: number, what: string): number {
  const hi = buf.readUInt32BE(offset)
  if (hi >= 0x20_0000) throw protocolError(`${what} value above 2^53`)
  return hi * 0x1_0000_0000 + buf.readUInt32BE(offset + 4)
}

/**
 * Builds a frame from a checked header and its complete payload. Throws a
 * {@link ProtocolError}. @internal
 */
export function parseFrame(type: number, flags: number, streamId: number, payload: Buffer): Frame {
  switch (type) {
    case FrameType.OPEN: {
      const { target, size } = readTarget(payload)
      return { type, flags, streamId, target, data: payload.subarray(size) }
    }
    case FrameType.OPENED:
      return { type, flags, streamId, data: payload }
    case FrameType.DATA:
      return { type, flags, streamId, data: payload }
    case FrameType.REFUSED:
      return { type, flags, streamId, code: payload.readUInt16BE(0), reason: payload.toString('utf8', 2) }
    case FrameType.WINDOW: {
      const increment = payload.readUInt32BE(0)
      if (increment === 0 || increment > MAX_WINDOW) {
        throw flowError(`WINDOW increment ${increment} out of range`)
      }
      return { type, flags, streamId, increment }
    }
    case FrameType.RST:
      return { type, flags, streamId, code: payload.readUInt16BE(0) }
    case FrameType.GOAWAY:
      return { type, flags, streamId, lastStreamId: payload.readUInt32BE(0), code: payload.readUInt16BE(4), reason: payload.toString('utf8', 6) }
    case FrameType.PING:
      return { type, flags, streamId, opaque: payload }
    case FrameType.PONG:
      return { type, flags, streamId, opaque: payload }
    case FrameType.ACK:
      return { type, flags, streamId, received: readU64(payload, 0, 'ACK') }
    case FrameType.SEQ:
      return { type, flags, streamId, offset: readU64(payload, 0, 'SEQ') }
    case FrameType.AUTH:
      return { type, flags, streamId, proof: payload }
    default:
      throw protocolError(`unknown frame type 0x${type.toString(16)}`)
  }
}

/**
 * Decodes one frame at `offset` of `buf`. Returns `null` if the buffer ends
 * before the frame does, else the frame and its size (header + payload).
 * Payload buffers are views into `buf` (no copy). Throws a
 * {@link ProtocolError} for malformed frames. `messages`: the MESSAGES
 * capability is in effect, so the message-mode flags (OPEN MESSAGES and
 * EOM, OPENED/DATA EOM) are allowed; default false (they are errors).
 */
export function decodeFrame(buf: Buffer, offset = 0, maxFrameSize: number = MAX_MAX_FRAME_SIZE, messages = false): { frame: Frame; size: number } | null {
  if (buf.length - offset < FRAME_HEADER_SIZE) return null
  const length = (buf[offset]! << 16) | (buf[offset + 1]! << 8) | buf[offset + 2]!
  const type = buf[offset + 3]!
  const flags = buf[offset + 4]!
  const streamId = buf.readUInt32BE(offset + 5)
  checkFrameHeader(length, type, flags, streamId, maxFrameSize, messages)
  const end = offset + FRAME_HEADER_SIZE + length
  if (buf.length < end) return null
  return { frame: parseFrame(type, flags, streamId, buf.subarray(offset + FRAME_HEADER_SIZE, end)), size: FRAME_HEADER_SIZE + length }
}
