/**
 * What the secure channel puts on the stream around and inside the two
 * Noise handshake messages (docs/PROTOCOL.md 20.3–20.5): the framing of
 * message 1 and 2, and the payload of each (version, timestamp, rekey
 * interval, 0-RTT status, extensions, early data).
 * @packageDocumentation
 */
import { SecureError } from './errors.js'
import { MAX_REKEY_INTERVAL, MIN_REKEY_INTERVAL } from './record.js'

/** The Noise protocol of the secure channel, version 1. */
export const SECURE_PROTOCOL = 'Noise_IKpsk1_25519_ChaChaPoly_BLAKE2s'
/** The prologue both sides mix in (binds the framing version). */
export const SECURE_PROLOGUE = Buffer.from('synmux/secure/1', 'ascii')
/** The byte before message 1 on the stream (type: handshake initiation, version 1). */
export const MESSAGE1_TYPE = 0x01
/** Payload format version inside the handshake messages. */
export const PAYLOAD_VERSION = 0x01

/** Noise overhead of message 1 of IKpsk1: e (32) + encrypted s (48) + payload tag (16). */
export const MESSAGE1_OVERHEAD = 32 + 48 + 16
/** Noise overhead of message 2: e (32) + payload tag (16). */
export const MESSAGE2_OVERHEAD = 32 + 16
/** Fixed part of message 1's payload. */
export const PAYLOAD1_HEADER = 16
/** Fixed part of message 2's payload. */
export const PAYLOAD2_HEADER = 18
/** Smallest possible Noise message 1 / message 2. */
export const MIN_MESSAGE1 = MESSAGE1_OVERHEAD + PAYLOAD1_HEADER
export const MIN_MESSAGE2 = MESSAGE2_OVERHEAD + PAYLOAD2_HEADER
/** The most early data message 1 can carry (no extensions). */
export const MAX_EARLY_DATA = 65535 - MIN_MESSAGE1
/** The most first-reply bytes message 2 can carry (no extensions). */
export const MAX_REPLY_DATA = 65535 - MIN_MESSAGE2

/** What the server did with message 1's early data. */
export const EarlyStatus = { NONE: 0, ACCEPTED: 1, REJECTED: 2 } as const
/** Why the server refused to act on message 1's early data (message 2, byte 2). */
export const EarlyRejectCode = { NONE: 0, CLOCK: 1, REPLAYED: 2, NOT_NEWER: 3, BUSY: 4, DECLINED: 5, DISABLED: 6 } as const

/** Why early data was rejected, as a name. */
export type EarlyRejectReason = 'clock' | 'replayed' | 'not-newer' | 'busy' | 'declined' | 'disabled'

const REASON_NAMES: Record<number, EarlyRejectReason> = { 1: 'clock', 2: 'replayed', 3: 'not-newer', 4: 'busy', 5: 'declined', 6: 'disabled' }
const REASON_CODES: Record<EarlyRejectReason, number> = { clock: 1, replayed: 2, 'not-newer': 3, busy: 4, declined: 5, disabled: 6 }

/** The reject reason's wire code. */
export const rejectCode = (r: EarlyRejectReason): number => REASON_CODES[r]
/** The reject reason of a wire code (unknown codes read as 'declined'). */
export const rejectReason = (code: number): EarlyRejectReason => REASON_NAMES[code] ?? 'declined'

/** Message 1's payload. */
export interface InitPayload {
  /** Client clock, microseconds since the Unix epoch. */
  timestamp: number
  /** Bytes of client→server records between rekeys. */
  rekeyInterval: number
  /** Extension TLVs (none defined; unknown ones are ignored). */
  extensions: Buffer
  /** 0-RTT application bytes. */
  earlyData: Buffer
}

/** Message 2's payload. */
export interface ReplyPayload {
  earlyStatus: 0 | 1 | 2
  rejectCode: number
  /** Server clock, microseconds since the Unix epoch. */
  serverTime: number
  /** Bytes of server→client records between rekeys. */
  rekeyInterval: number
  extensions: Buffer
  /** The server's first bytes. */
  data: Buffer
}

const bad = (message: string) => new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', message)

function writeU64(b: Buffer, value: number, off: number): void {
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(value))), off)
}

function readU64(b: Buffer, off: number): number {
  const v = b.readBigUInt64BE(off)
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('Timestamp out of range')
  return Number(v)
}

function checkExtensions(ext: Buffer): void {
  for (let off = 0; off < ext.length; ) {
    if (off + 3 > ext.length) throw bad('Truncated extension')
    off += 3 + ext.readUInt16BE(off + 1)
    if (off > ext.length) throw bad('Extension overruns the extensions field')
  }
}

function checkRekey(v: number): void {
  if (v < MIN_REKEY_INTERVAL || v > MAX_REKEY_INTERVAL) throw bad(`Rekey interval ${v} outside ${MIN_REKEY_INTERVAL} ... ${MAX_REKEY_INTERVAL}`)
}

/**
 * Both payloads end their header the same way, at offset `at`: a time u64,
 * the rekey interval u32 and the extensions length u16; then the
 * extensions, then the application bytes.
 */
function encodeCommon(head: number[], time: number, rekeyInterval: number, extensions: Buffer, data: Buffer): Buffer {
  const at = head.length
  const b = Buffer.alloc(at + 14 + extensions.length + data.length)
  head.forEach((v, i) => (b[i] = v))
  writeU64(b, time, at)
  b.writeUInt32BE(rekeyInterval, at + 8)
  b.writeUInt16BE(extensions.length, at + 12)
  extensions.copy(b, at + 14)
  data.copy(b, at + 14 + extensions.length)
  return b
}

function decodeCommon(b: Buffer, at: number, what: string): { time: number; rekeyInterval: number; extensions: Buffer; data: Buffer } {
  if (b.length < at + 14) throw bad(`${what} payload too short`)
  if (b[0] !== PAYLOAD_VERSION) throw bad(`${what} payload version ${b[0]} (expected ${PAYLOAD_VERSION})`)
  const time = readU64(b, at)
  const rekeyInterval = b.readUInt32BE(at + 8)
  checkRekey(rekeyInterval)
  const start = at + 14
  const end = start + b.readUInt16BE(at + 12)
  if (end > b.length) throw bad(`${what} extensions overrun the payload`)
  const extensions = b.subarray(start, end)
  checkExtensions(extensions)
  return { time, rekeyInterval, extensions, data: b.subarray(end) }
}

/** Encodes message 1's payload. */
export function encodeInitPayload(p: InitPayload): Buffer {
  return encodeCommon([PAYLOAD_VERSION, 0], p.timestamp, p.rekeyInterval, p.extensions, p.earlyData)
}

/** Decodes message 1's payload. Throws `SYNMUX_SECURE_BAD_HANDSHAKE`. */
export function decodeInitPayload(b: Buffer): InitPayload {
  const c = decodeCommon(b, 2, 'Message 1')
  return { timestamp: c.time, rekeyInterval: c.rekeyInterval, extensions: c.extensions, earlyData: c.data }
}

/** Encodes message 2's payload. */
export function encodeReplyPayload(p: ReplyPayload): Buffer {
  return encodeCommon([PAYLOAD_VERSION, p.earlyStatus, p.rejectCode, 0], p.serverTime, p.rekeyInterval, p.extensions, p.data)
}

/** Decodes message 2's payload. Throws `SYNMUX_SECURE_BAD_HANDSHAKE`. */
export function decodeReplyPayload(b: Buffer): ReplyPayload {
  const c = decodeCommon(b, 4, 'Message 2')
  const earlyStatus = b[1]!
  if (earlyStatus > 2) throw bad(`Unknown early data status ${earlyStatus}`)
  return { earlyStatus: earlyStatus as 0 | 1 | 2, rejectCode: b[2]!, serverTime: c.time, rekeyInterval: c.rekeyInterval, extensions: c.extensions, data: c.data }
}

/** Frames message 1 for the stream: type, u16 length, the Noise message. */
export function frameMessage1(noise: Buffer): Buffer {
  const head = Buffer.allocUnsafe(3)
  head[0] = MESSAGE1_TYPE
  head.writeUInt16BE(noise.length, 1)
  return Buffer.concat([head, noise])
}

/** Frames message 2 for the stream: u16 length, the Noise message. */
export function frameMessage2(noise: Buffer): Buffer {
  const head = Buffer.allocUnsafe(2)
  head.writeUInt16BE(noise.length, 0)
  return Buffer.concat([head, noise])
}
