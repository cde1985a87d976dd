/**
 * Encoding and decoding of the HELLO and of frames (PROTOCOL.md 3, 4).
 * Pure functions and a streaming decoder; no I/O.
 * @packageDocumentation
 */
import {
  FRAME_HEADER_SIZE,
  FrameFlag,
  FrameType,
  GoawayCode,
  HELLO_FIXED_BODY_SIZE,
  HELLO_MAX_BODY_SIZE,
  HELLO_PREAMBLE_SIZE,
  MAGIC,
  MAX_MAX_FRAME_SIZE,
  MAX_REASON_LENGTH,
  MAX_STREAM_ID,
  MAX_WINDOW,
  MIN_INITIAL_WINDOW,
  MIN_MAX_FRAME_SIZE,
  PROTOCOL_VERSION,
  Role,
  SESSION_ID_SIZE,
  TargetType,
} from './constants.js'
import { ProtocolError, invalidArgType, invalidArgValue, outOfRange } from './errors.js'
import { type DecodedTarget, type Target, bytesToIpv6, normalizeTarget, targetSize, writeTarget } from './target.js'

// ---------------------------------------------------------------------------
// HELLO

/** A decoded HELLO (PROTOCOL.md 3.1). */
export interface Hello {
  /** Protocol version (1). */
  version: number
  /** HELLO kind (`HelloKind`). */
  kind: number
  /** The sender's role. */
  role: 'client' | 'server'
  /** Capability bits (`Capability`). */
  capabilities: number
  /** 32-byte session id. */
  sessionId: Buffer
  /** Credit the sender grants per stream. */
  initialWindow: number
  /** Largest frame payload the sender accepts. */
  maxFrameSize: number
  /** Peer-opened streams the sender keeps open at once. */
  maxStreams: number
  /** Extensions by type (`HelloExtension`); unknown types included. */
  extensions: Map<number, Buffer>
}

/** Input of {@link encodeHello}: a {@link Hello} whose `version` and `extensions` are optional. */
export type HelloInit = Omit<Hello, 'version' | 'extensions'> & {
  version?: number
  extensions?: Map<number, Buffer> | ReadonlyArray<readonly [number, Buffer]>
}

function checkUint(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} && <= ${max}`, value)
  return value
}

/** Encodes a HELLO. Throws `TypeError`/`RangeError` on invalid fields. */
export function encodeHello(hello: HelloInit): Buffer {
  if (typeof hello !== 'object' || hello === null) throw invalidArgType('hello', 'an object', hello)
  const version = checkUint('hello.version', hello.version ?? PROTOCOL_VERSION, 0, 255)
  const kind = checkUint('hello.kind', hello.kind, 0, 255)
  if (hello.role !== 'client' && hello.role !== 'server') throw invalidArgValue('hello.role', "must be 'client' or 'server'", hello.role)
  const caps = checkUint('hello.capabilities', hello.capabilities, 0, 0xffff_ffff)
  if (!Buffer.isBuffer(hello.sessionId)) throw invalidArgType('hello.sessionId', 'a Buffer', hello.sessionId)
  if (hello.sessionId.length !== SESSION_ID_SIZE) throw outOfRange('hello.sessionId.length', '32', hello.sessionId.length)
  const iw = checkUint('hello.initialWindow', hello.initialWindow, MIN_INITIAL_WINDOW, MAX_WINDOW)
  const mf = checkUint('hello.maxFrameSize', hello.maxFrameSize, MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE)
  const ms = checkUint('hello.maxStreams', hello.maxStreams, 0, 0xffff_ffff)
  const exts: Array<readonly [number, Buffer]> = hello.extensions
    ? hello.extensions instanceof Map
      ? [...hello.extensions.entries()]
      : [...hello.extensions]
    : []
  let extBytes = 0
  for (const [type, value] of exts) {
    checkUint('extension type', type, 0, 255)
    if (!Buffer.isBuffer(value)) throw invalidArgType('extension value', 'a Buffer', value)
    extBytes += 3 + value.length
  }
  const bodyLen = HELLO_FIXED_BODY_SIZE + extBytes
  if (bodyLen > HELLO_MAX_BODY_SIZE) throw outOfRange('HELLO body length', `<= ${HELLO_MAX_BODY_SIZE}`, bodyLen)
  const out = Buffer.allocUnsafe(HELLO_PREAMBLE_SIZE + bodyLen)
  MAGIC.copy(out, 0)
  out[6] = version
  out[7] = kind
  out.writeUInt16BE(bodyLen, 8)
  out[10] = hello.role === 'client' ? Role.CLIENT : Role.SERVER
  out.writeUInt32BE(caps, 11)
  hello.sessionId.copy(out, 15)
  out.writeUInt32BE(iw, 47)
  out.writeUInt32BE(mf, 51)
  out.writeUInt32BE(ms, 55)
  let off = 59
  for (const [type, value] of exts) {
    out[off] = type
    out.writeUInt16BE(value.length, off + 1)
    value.copy(out, off + 3)
    off += 3 + value.length
  }
  return out
}

function handshakeError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_HANDSHAKE_FAILED', message, GoawayCode.HANDSHAKE_FAILED)
}

/**
 * Decodes a HELLO from the start of `buf`. Returns `null` if more bytes are
 * needed, else the HELLO and its size. Throws a {@link ProtocolError}
 * (`SYNMUX_BAD_MAGIC` as soon as a byte of the magic is wrong,
 * `SYNMUX_UNSUPPORTED_VERSION`, `SYNMUX_HANDSHAKE_FAILED`).
 */
export function decodeHello(buf: Buffer): { hello: Hello; size: number } | null {
  const n = Math.min(buf.length, MAGIC.length)
  for (let i = 0; i < n; i++) {
    if (buf[i] !== MAGIC[i]) throw new ProtocolError('SYNMUX_BAD_MAGIC', 'the peer does not speak synmux (bad magic)', GoawayCode.PROTOCOL_ERROR)
  }
  if (buf.length < 7) return null
  const version = buf[6]!
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError('SYNMUX_UNSUPPORTED_VERSION', `the peer speaks synmux version ${version}, this is version ${PROTOCOL_VERSION}`, GoawayCode.UNSUPPORTED_VERSION, version)
  }
  if (buf.length < HELLO_PREAMBLE_SIZE) return null
  const kind = buf[7]!
  const bodyLen = buf.readUInt16BE(8)
  if (bodyLen < HELLO_FIXED_BODY_SIZE || bodyLen > HELLO_MAX_BODY_SIZE) throw handshakeError(`HELLO body length ${bodyLen} out of range`)
  if (buf.length < HELLO_PREAMBLE_SIZE + bodyLen) return null
  if (kind < 1 || kind > 3) throw handshakeError(`unknown HELLO kind ${kind}`)
  const roleByte = buf[10]!
  if (roleByte !== Role.CLIENT && roleByte !== Role.SERVER) throw handshakeError(`bad HELLO role ${roleByte}`)
  const capabilities = buf.readUInt32BE(11)
  const sessionId = Buffer.from(buf.subarray(15, 47))
  const initialWindow = buf.readUInt32BE(47)
  if (initialWindow < MIN_INITIAL_WINDOW || initialWindow > MAX_WINDOW) throw handshakeError(`HELLO initial window ${initialWindow} out of range`)
  const maxFrameSize = buf.readUInt32BE(51)
  if (maxFrameSize < MIN_MAX_FRAME_SIZE || maxFrameSize > MAX_MAX_FRAME_SIZE) throw handshakeError(`HELLO max frame size ${maxFrameSize} out of range`)
  const maxStreams = buf.readUInt32BE(55)
  const extensions = new Map<number, Buffer>()
  const end = HELLO_PREAMBLE_SIZE + bodyLen
  let off = 59
  while (off < end) {
    if (off + 3 > end) throw handshakeError('truncated HELLO extension')
    const type = buf[off]!
    const len = buf.readUInt16BE(off + 1)
    if (off + 3 + len > end) throw handshakeError('HELLO extension overruns the body')
    if (extensions.has(type)) throw handshakeError(`duplicate HELLO extension ${type}`)
    extensions.set(type, Buffer.from(buf.subarray(off + 3, off + 3 + len)))
    off += 3 + len
  }
  return {
    hello: {
      version,
      kind,
      role: roleByte === Role.CLIENT ? 'client' : 'server',
      capabilities,
      sessionId,
      initialWindow,
      maxFrameSize,
      maxStreams,
      extensions,
    },
    size: end,
  }
}

// ---------------------------------------------------------------------------
// Frames

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

/** Writes a 9-byte frame header at `offset`. @internal */
export function writeFrameHeader(out: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): void {
  out[offset] = length >>> 16
  out[offset + 1] = (length >>> 8) & 0xff
  out[offset + 2] = length & 0xff
  out[offset + 3] = type
  out[offset + 4] = flags
  out.writeUInt32BE(streamId, offset + 5)
}

function writeU64(out: Buffer, offset: number, value: number): void {
  out.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset)
  out.writeUInt32BE(value >>> 0, offset + 4)
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

/** Truncates a reason text to the 255 bytes the wire allows. @internal */
export function encodeReason(reason: string | undefined): Buffer {
  return reasonBytes(reason)
}

/**
 * Encodes one frame into a new Buffer (header + payload). Validates the
 * fields; throws `TypeError`/`RangeError` with stable codes.
 */
export function encodeFrame(frame: FrameInit): Buffer {
  if (typeof frame !== 'object' || frame === null) throw invalidArgType('frame', 'an object', frame)
  const type = frame.type
  if (!(type in ALLOWED_FLAGS)) throw invalidArgValue('frame.type', 'must be a known frame type', type)
  const flags = checkUint('frame.flags', frame.flags ?? 0, 0, 255)
  const streamId = checkUint('frame.streamId', frame.streamId ?? 0, 0, MAX_STREAM_ID)
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
      const code = checkUint('frame.code', frame.code, 0, 0xffff)
      const r = reasonBytes(frame.reason)
      payload = Buffer.allocUnsafe(2 + r.length)
      payload.writeUInt16BE(code, 0)
      r.copy(payload, 2)
      break
    }
    case FrameType.WINDOW: {
      const inc = checkUint('frame.increment', frame.increment, 0, 0xffff_ffff)
      payload = Buffer.allocUnsafe(4)
      payload.writeUInt32BE(inc, 0)
      break
    }
    case FrameType.RST: {
      const code = checkUint('frame.code', frame.code, 0, 0xffff)
      payload = Buffer.allocUnsafe(2)
      payload.writeUInt16BE(code, 0)
      break
    }
    case FrameType.GOAWAY: {
      const last = checkUint('frame.lastStreamId', frame.lastStreamId, 0, MAX_STREAM_ID)
      const code = checkUint('frame.code', frame.code, 0, 0xffff)
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
      const v = checkUint('frame.received', frame.received, 0, Number.MAX_SAFE_INTEGER)
      payload = Buffer.allocUnsafe(8)
      writeU64(payload, 0, v)
      break
    }
    case FrameType.SEQ: {
      const v = checkUint('frame.offset', frame.offset, 0, Number.MAX_SAFE_INTEGER)
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

function protocolError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_PROTOCOL_ERROR', message, GoawayCode.PROTOCOL_ERROR)
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
    throw new ProtocolError('SYNMUX_FRAME_SIZE_ERROR', `${TYPE_NAMES[type]} frame of ${length} bytes exceeds the max frame size ${maxFrameSize}`, GoawayCode.FRAME_SIZE_ERROR)
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

function decodeTarget(p: Buffer): { target: DecodedTarget | null; size: number } {
  const t = p[0]!
  switch (t) {
    case TargetType.NONE:
      return { target: null, size: 1 }
    case TargetType.HOSTNAME: {
      if (p.length < 2) throw protocolError('OPEN target truncated')
      const len = p[1]!
      if (len === 0) throw protocolError('OPEN host name of length 0')
      if (p.length < 4 + len) throw protocolError('OPEN target truncated')
      return { target: { kind: 'hostname', host: p.toString('latin1', 2, 2 + len), port: p.readUInt16BE(2 + len) }, size: 4 + len }
    }
    case TargetType.IPV4:
      if (p.length < 7) throw protocolError('OPEN target truncated')
      return { target: { kind: 'ipv4', host: `${p[1]}.${p[2]}.${p[3]}.${p[4]}`, port: p.readUInt16BE(5) }, size: 7 }
    case TargetType.IPV6:
      if (p.length < 19) throw protocolError('OPEN target truncated')
      return { target: { kind: 'ipv6', host: bytesToIpv6(p, 1), port: p.readUInt16BE(17) }, size: 19 }
    default:
      throw protocolError(`OPEN target type ${t} unknown`)
  }
}

/**
 * Builds a frame from a checked header and its complete payload. Throws a
 * {@link ProtocolError}. @internal
 */
export function parseFrame(type: number, flags: number, streamId: number, payload: Buffer): Frame {
  switch (type) {
    case FrameType.OPEN: {
      const { target, size } = decodeTarget(payload)
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
        throw new ProtocolError('SYNMUX_FLOW_CONTROL_ERROR', `WINDOW increment ${increment} out of range`, GoawayCode.FLOW_CONTROL_ERROR)
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
    this.maxFrameSize = checkUint('options.maxFrameSize', mf, 0, MAX_MAX_FRAME_SIZE)
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
