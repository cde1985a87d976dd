/**
 * The receiver's reorder buffer of a striped session (PROTOCOL.md 14.3):
 * session frames arrive on several lanes, each at its session offset; they
 * go up in session order, at most the smaller REPLAY_BUFFER held out of
 * order, duplicates (frames sent again after a lane died) dropped.
 * @packageDocumentation
 */
import { protocolError } from '../wire/errors.js'

/** Session frames put back in order. @internal */
export class Reorder {
  /** Received count R: offset of the next session frame to hand to the session (-1: not known yet). */
  r = -1
  /** Most bytes held out of order (the peer's REPLAY_BUFFER and ours, the smaller). */
  limit = 0
  readonly #held = new Map<number, Buffer>()
  #heldBytes = 0

  /**
   * The session frame `f` at offset `off` arrived: true if it is the next
   * in order (hand it up, then every {@link Reorder.next}); otherwise it is
   * held (or dropped: a duplicate). Throws a `ProtocolError` past the limit.
   */
  arrive(off: number, f: Buffer): boolean {
    const r = this.r
    if (off === r) {
      this.r += f.length
      return true
    }
    if (off > r) {
      if (this.#held.has(off)) return false
      if (this.#heldBytes + f.length > this.limit) throw protocolError(`reorder buffer over the peer's REPLAY_BUFFER (${this.limit} bytes)`)
      this.#held.set(off, f.length === f.buffer.byteLength ? f : Buffer.from(f))
      this.#heldBytes += f.length
    }
    // off < r: a duplicate (sent again after a lane died); dropped.
    return false
  }

  /** The held frame that is now in order, if any (it leaves the buffer). */
  next(): Buffer | undefined {
    if (this.#held.size === 0) return undefined
    const n = this.#held.get(this.r)
    if (n === undefined) return undefined
    this.#held.delete(this.r)
    this.#heldBytes -= n.length
    this.r += n.length
    return n
  }
}
