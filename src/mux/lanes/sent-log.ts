/**
 * What a lane carried that the peer has not confirmed (PROTOCOL.md 14.5):
 * the session frames sent on it (by session offset) and the session PINGs.
 * When the lane dies they are sent again on the others
 * ({@link Lanes.resend}); the peer's cumulative ACK lets them go.
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE } from '../wire/constants.js'
import type { FrameBytes } from './splitter.js'

/** The unacknowledged session frames and session PINGs sent on one lane. @internal */
export class SentLog {
  /** Offsets, sizes and frames, oldest first, from `head`. */
  #offs: number[] = []
  #sizes: number[] = []
  #bufs: FrameBytes[] = []
  #head = 0
  /** Session PINGs sent on the lane (whole frames), until their PONG comes. */
  pings: Buffer[] = []

  /** Session frames not acknowledged yet. */
  get unacked(): number {
    return this.#bufs.length - this.#head
  }

  /** The session frame `frame` (`size` bytes) at offset `off` went on the lane. */
  push(off: number, frame: FrameBytes, size: number): void {
    this.#offs.push(off)
    this.#sizes.push(size)
    this.#bufs.push(frame)
  }

  /** The peer acknowledged everything before `ack`: those frames are let go. */
  ack(ack: number): void {
    const offs = this.#offs
    const sizes = this.#sizes
    const bufs = this.#bufs
    let i = this.#head
    while (i < bufs.length && offs[i]! + sizes[i]! <= ack) {
      bufs[i] = undefined as unknown as Buffer
      i++
    }
    this.#head = i
    if (i > 1024 && i * 2 > bufs.length) {
      this.#bufs = bufs.slice(i)
      this.#offs = offs.slice(i)
      this.#sizes = sizes.slice(i)
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
  drain(acked: number, frame: ((off: number, buf: FrameBytes) => void) | null): Buffer[] {
    const offs = this.#offs
    const sizes = this.#sizes
    const bufs = this.#bufs
    const from = this.#head
    const pings = this.pings
    this.#offs = []
    this.#sizes = []
    this.#bufs = []
    this.#head = 0
    this.pings = []
    if (frame === null) return pings
    for (let i = from; i < bufs.length; i++) {
      const off = offs[i]!
      if (off + sizes[i]! <= acked) continue
      frame(off, bufs[i]!)
    }
    return pings
  }
}
