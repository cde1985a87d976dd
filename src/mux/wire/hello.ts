/**
 * The HELLO (PROTOCOL.md 3): its encoding and decoding, and the encoders
 * and readers of the extension values the session uses.
 * @packageDocumentation
 */
import {
  GoawayCode,
  HELLO_FIXED_BODY_SIZE,
  HELLO_MAX_BODY_SIZE,
  HELLO_PREAMBLE_SIZE,
  MAGIC,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW,
  MIN_INITIAL_WINDOW,
  MIN_MAX_FRAME_SIZE,
  PROTOCOL_VERSION,
  Role,
  SESSION_ID_SIZE,
} from './constants.js'
import { ProtocolError, invalidArgType, invalidArgValue, outOfRange, uintArg } from '../errors.js'
import { handshakeError } from './errors.js'

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

/** Encodes a HELLO. Throws `TypeError`/`RangeError` on invalid fields. */
export function encodeHello(hello: HelloInit): Buffer {
  if (typeof hello !== 'object' || hello === null) throw invalidArgType('hello', 'an object', hello)
  const version = uintArg('hello.version', hello.version ?? PROTOCOL_VERSION, 0, 255)
  const kind = uintArg('hello.kind', hello.kind, 0, 255)
  if (hello.role !== 'client' && hello.role !== 'server') throw invalidArgValue('hello.role', "must be 'client' or 'server'", hello.role)
  const caps = uintArg('hello.capabilities', hello.capabilities, 0, 0xffff_ffff)
  if (!Buffer.isBuffer(hello.sessionId)) throw invalidArgType('hello.sessionId', 'a Buffer', hello.sessionId)
  if (hello.sessionId.length !== SESSION_ID_SIZE) throw outOfRange('hello.sessionId.length', '32', hello.sessionId.length)
  const iw = uintArg('hello.initialWindow', hello.initialWindow, MIN_INITIAL_WINDOW, MAX_WINDOW)
  const mf = uintArg('hello.maxFrameSize', hello.maxFrameSize, MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE)
  const ms = uintArg('hello.maxStreams', hello.maxStreams, 0, 0xffff_ffff)
  const exts: Array<readonly [number, Buffer]> = hello.extensions
    ? hello.extensions instanceof Map
      ? [...hello.extensions.entries()]
      : [...hello.extensions]
    : []
  let extBytes = 0
  for (const [type, value] of exts) {
    uintArg('extension type', type, 0, 255)
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
// Extension values

/** A u32 extension value (big-endian). @internal */
export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n >>> 0, 0)
  return b
}

/** A u64 extension value (big-endian; `n` below 2^53). @internal */
export function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0)
  b.writeUInt32BE(n >>> 0, 4)
  return b
}

/** A u16 extension value (big-endian). @internal */
export function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(n)
  return b
}

/** The u64 extension `type` of `h`, or `null` when absent, of another size or above 2^53. @internal */
export function readU64Ext(h: Hello, type: number): number | null {
  const v = h.extensions.get(type)
  if (v === undefined || v.length !== 8) return null
  const n = v.readUInt32BE(0) * 0x1_0000_0000 + v.readUInt32BE(4)
  return n > Number.MAX_SAFE_INTEGER ? null : n
}

/** The u32 extension `type` of `h`, or `null` when absent or of another size. @internal */
export function readU32Ext(h: Hello, type: number): number | null {
  const v = h.extensions.get(type)
  return v === undefined || v.length !== 4 ? null : v.readUInt32BE(0)
}
