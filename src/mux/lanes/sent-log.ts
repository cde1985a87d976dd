/**
 * What a lane carried that the peer has not confirmed (PROTOCOL.md 14.5):
 * the session frames sent on it (by session offset) and the session PINGs.
 * When the lane dies they are sent again on the others
 * ({@link Lanes.resend}); the peer's cumulative ACK lets them go.
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE } from '../wire/constants.js'

/** The unacknowledged session frames and session PINGs sent on one lane. @internal */
export class SentLog {
  /** Offsets and frames, oldest first, from `head`. */
  #offs: number[] = []
  #bufs: Buffer[] = []
  #head = 0
  /** Session PINGs sent on the lane (whole frames), until their PONG comes. */
  pings: Buffer[] = []

  /** Session frames not acknowledged yet. */
  get unacked(): number {
    return this.#bufs.length - this.#head
  }

  /** The session frame `frame` at offset `off` went on the lane. */
  push(off: number, frame: Buffer): void {
    this.#offs.push(off)
    this.#bufs.push(frame)
  }

  /** The peer acknowledged everything before `ack`: those frames are let go. */
  ack(ack: number): void {
    const offs = this.#offs
    const bufs = this.#bufs
    let i = this.#head
    while (i < bufs.length && offs[i]! + bufs[i]!.length <= ack) {
      bufs[i] = undefined as unknown as Buffer
      i++
    }
    this.#head = i
    if (i > 1024 && i * 2 > bufs.length) {
      this.#bufs = bufs.slice(i)
      this.#offs = offs.slice(i)
      this.#head = 0
    }
  }

  /** The PONG answering a session PING (its payload `payload`) came: that PING need not be sent again. */
  ponged(payload: Buffer): void {
    const i = this.pings.findIndex((p) => p.subarray(FRAME_HEADER_SIZE).equals(payload))
    if (i >= 0) this.pings.splice(i, 1)
  }

  /**
   * Empties the log, calling `frame(off, buf)` (if given) for every session
   * frame not acknowledged before `acked` (oldest first), and returns the
   * PINGs.
   */
  drain(acked: number, frame: ((off: number, buf: Buffer) => void) | null): Buffer[] {
    const offs = this.#offs
    const bufs = this.#bufs
    const from = this.#head
    const pings = this.pings
    this.#offs = []
    this.#bufs = []
    this.#head = 0
    this.pings = []
    if (frame === null) return pings
    for (let i = from; i < bufs.length; i++) {
      const off = offs[i]!
      if (off + bufs[i]!.length <= acked) continue
      frame(off, bufs[i]!)
    }
    return pings
  }
}
