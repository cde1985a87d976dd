/**
 * The frame writer: every frame header of the package is written by
 * {@link writeFrameHeader} (through {@link encodeFrame}, an output batch, or
 * the encoders of the small control frames below, which skip
 * `encodeFrame`'s argument checks on the paths that run per frame).
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE, FrameType } from './constants.js'

/** Writes a 9-byte frame header at `offset` (PROTOCOL.md 4). @internal */
export function writeFrameHeader(out: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): void {
  out[offset] = length >>> 16
  out[offset + 1] = (length >>> 8) & 0xff
  out[offset + 2] = length & 0xff
  out[offset + 3] = type
  out[offset + 4] = flags
  out.writeUInt32BE(streamId, offset + 5)
}

/** Writes a u64 (below 2^53) big-endian at `offset`. @internal */
export function writeU64(out: Buffer, offset: number, value: number): void {
  out.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset)
  out.writeUInt32BE(value >>> 0, offset + 4)
}

/** The type of the frame whose header starts at `offset` of `buf`. @internal */
export function frameTypeAt(buf: Buffer, offset = 0): number {
  return buf[offset + 3]!
}

/** Whether the encoded frame `frame` is a link frame (type 0x80 and above: not in the session sequence, PROTOCOL.md 7). @internal */
export function isLinkFrame(frame: Buffer): boolean {
  return frame[3]! >= 0x80
}

/** A PING whose 8 opaque bytes are the u64 `id` (a session's own PINGs; lane marks write their own payload). @internal */
export function pingFrame(id: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 8)
  writeFrameHeader(b, 0, 8, FrameType.PING, 0, 0)
  writeU64(b, FRAME_HEADER_SIZE, id)
  return b
}

/** The PONG answering a PING with payload `opaque` (8 bytes). @internal */
export function pongFrame(opaque: Buffer): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 8)
  writeFrameHeader(b, 0, 8, FrameType.PONG, 0, 0)
  opaque.copy(b, FRAME_HEADER_SIZE, 0, 8)
  return b
}

/**
 * Writes, at `offset` of `out`, the PONG answering the whole encoded PING
 * frame `ping`: the same frame with its type changed (`out` must have
 * `ping.length` bytes from `offset`). Returns the bytes written. @internal
 */
export function writePongFor(ping: Buffer, out: Buffer, offset: number): number {
  writeFrameHeader(out, offset, ping.length - FRAME_HEADER_SIZE, FrameType.PONG, ping[4]!, ping.readUInt32BE(5))
  ping.copy(out, offset + FRAME_HEADER_SIZE, FRAME_HEADER_SIZE)
  return ping.length
}

/** An RST of stream `streamId` with `code`. @internal */
export function rstFrame(streamId: number, code: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 2)
  writeFrameHeader(b, 0, 2, FrameType.RST, 0, streamId)
  b.writeUInt16BE(code, FRAME_HEADER_SIZE)
  return b
}
