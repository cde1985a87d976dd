/**
 * Message mode (PROTOCOL.md 15): the receive side's message assembly and
 * accounting, and the send side's view of a queue whose entries are whole
 * messages. The session calls these from its OPEN/OPENED/DATA paths.
 * @packageDocumentation
 */
import { MIN_MAX_MESSAGE } from '../wire/constants.js'
import { outOfRange } from '../errors.js'
import { protocolError } from '../wire/errors.js'

/**
 * Receive state of a message stream: the bytes of the message being
 * assembled (not yet complete), and the sizes of the complete messages
 * handed to the readable side that the application has not read yet
 * (oldest first), so consumed bytes can be credited back (PROTOCOL.md 15.6).
 * @internal
 */
export class MessageInbox {
  /** Bytes of the incomplete message. */
  partial = 0
  /** Bytes of complete messages handed to the readable side and not yet read. */
  unreadBytes = 0
  private parts: Buffer[] = []
  private sizes: number[] = []
  private head = 0

  /** Adds bytes of the incomplete message (a view of under a quarter of its memory is copied: it would pin a big transport read). */
  add(buf: Buffer): void {
    const n = buf.length
    if (n === 0) return
    if (n * 4 < buf.buffer.byteLength) buf = Buffer.from(buf)
    this.parts.push(buf)
    this.partial += n
  }

  /** Completes the message (EOM): returns it whole and counts it as unread. */
  finish(): Buffer {
    const parts = this.parts
    const msg = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.partial)
    this.parts = []
    this.partial = 0
    this.sizes.push(msg.length)
    this.unreadBytes += msg.length
    return msg
  }

  /**
   * The application has `remaining` messages left unread (the readable
   * side's object count): forgets the older ones and returns the bytes of
   * complete messages still unread.
   */
  unread(remaining: number): number {
    while (this.sizes.length - this.head > remaining) this.unreadBytes -= this.sizes[this.head++]!
    if (this.head > 1024 && this.head * 2 > this.sizes.length) {
      this.sizes = this.sizes.slice(this.head)
      this.head = 0
    }
    return this.unreadBytes
  }

  /** Drops everything (the stream is gone); returns the bytes it held. */
  clear(): number {
    const n = this.partial + this.unreadBytes
    this.parts = []
    this.sizes = []
    this.head = 0
    this.partial = 0
    this.unreadBytes = 0
    return n
  }
}

/** What the head of a message stream's send queue allows. @internal */
export const enum Head {
  /** Nothing queued. */
  NONE = -1,
  /** A message above {@link MIN_MAX_MESSAGE} waits for the peer's HELLO (PROTOCOL.md 15.5). */
  HELD = -2,
}

/**
 * Bytes left of the message at the head of a send queue whose entries are
 * whole messages (the head may be partly sent): ≥ 0, or {@link Head.NONE},
 * or {@link Head.HELD} when `preHello` and the message is too large to
 * start before the peer's HELLO. @internal
 */
export function headMessage(sq: Buffer[], sqHead: number, preHello: boolean): number {
  if (sqHead >= sq.length) return Head.NONE
  const n = sq[sqHead]!.length
  return preHello && n > MIN_MAX_MESSAGE ? Head.HELD : n
}

/** Byte length of a chunk `write()` will turn into one message (`-1`: not a chunk; Node's own checks report it). @internal */
export function messageSize(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
  if (chunk instanceof Uint8Array) return chunk.byteLength
  return -1
}

/**
 * The `RangeError` (`code` `SYNMUX_MESSAGE_TOO_LARGE`) for a message of
 * `size` bytes when the peer accepts at most `max`. @internal
 */
export function messageTooLarge(size: number, max: number): RangeError {
  return outOfRange('message size', `<= ${max} (the peer's MAX_MESSAGE)`, size, 'SYNMUX_MESSAGE_TOO_LARGE')
}

/**
 * Message streams: a frame adding `len` bytes to a message of `partial`
 * bytes must stay within our MAX_MESSAGE `max`, and FIN must not cut a
 * message (PROTOCOL.md 15.5, 15.7). Throws a `ProtocolError`. @internal
 */
export function checkMessageFrame(max: number, id: number, partial: number, len: number, eom: boolean, fin: boolean): void {
  if (partial + len > max) throw protocolError(`a message of more than ${max} bytes (our MAX_MESSAGE) on stream ${id}`)
  if (fin && !eom && partial + len > 0) throw protocolError(`FIN on stream ${id} in the middle of a message (${partial + len} bytes without EOM)`)
}
