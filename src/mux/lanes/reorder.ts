/**
 * The receiver's reorder buffer of a striped session (PROTOCOL.md 14.3):
 * session frames arrive on several lanes, each at its session offset; they
 * go up in session order, at most the smaller REPLAY_BUFFER held out of
 * order, duplicates (frames sent again after a lane died) dropped.
 * @packageDocumentation
 */
import { protocolError } from '../wire/errors.js'
import { type FrameBytes, frameSize } from './splitter.js'

/** Whether `b` is at least a quarter of the memory it lies in (holding it does not pin a much bigger read). */
const dense = (b: Buffer): boolean => b.length * 4 >= b.buffer.byteLength

/** Session frames put back in order. @internal */
export class Reorder {
  /** Received count R: offset of the next session frame to hand to the session (-1: not known yet). */
  r = -1
  /** Most bytes held out of order (the peer's REPLAY_BUFFER and ours, the smaller). */
  limit = 0
  readonly #held = new Map<number, FrameBytes>()
  #heldBytes = 0

  /**
   * The session frame `f` (`size` bytes) at offset `off` arrived: true if
   * it is the next in order (hand it up, then every {@link Reorder.next});
   * otherwise it is held (or dropped: a duplicate). Throws a
   * `ProtocolError` past the limit.
   */
  arrive(off: number, f: FrameBytes, size: number): boolean {
    const r = this.r
    if (off === r) {
      this.r += size
      return true
    }
    if (off > r) {
      if (this.#held.has(off)) return false
      if (this.#heldBytes + size > this.limit) throw protocolError(`reorder buffer over the peer's REPLAY_BUFFER (${this.limit} bytes)`)
      // Held as it came (views of the reads it lies in), unless a view is a
      // small part of a big read, which it would pin: then as a copy.
      const keep = Array.isArray(f) ? (f.every(dense) ? f : Buffer.concat(f, size)) : dense(f) ? f : Buffer.from(f)
      this.#held.set(off, keep)
      this.#heldBytes += size
    }
    // off < r: a duplicate (sent again after a lane died); dropped.
    return false
  }

  /** The held frame that is now in order, if any (it leaves the buffer). */
  next(): FrameBytes | undefined {
    if (this.#held.size === 0) return undefined
    const n = this.#held.get(this.r)
    if (n === undefined) return undefined
    this.#held.delete(this.r)
    const size = frameSize(n)
    this.#heldBytes -= size
    this.r += size
    return n
  }
}
