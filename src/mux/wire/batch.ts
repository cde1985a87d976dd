/**
 * Output batches: one flush worth of frames, small ones coalesced into
 * shared scratch memory, large payloads passed through without copying.
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE } from './constants.js'
import { writeFrameHeader } from './writer.js'

/** Payloads shorter than this are copied into the batch's scratch buffer. */
const COPY_BELOW = 1024
/** Size of a scratch slab. */
export const SLAB_SIZE = 16 * 1024

/**
 * Scratch memory that output batches fill in turn, as Node's own `Buffer`
 * pool is filled: a batch continues where the previous one stopped, and a
 * new slab is allocated only when this one is full, not once per flush.
 * Bytes of a slab are never written again once a batch has handed them
 * out, so a transport that still holds them (a pending `writev`, a lane's
 * resend buffer) and a replay buffer, which keeps the very Buffers written,
 * see them unchanged.
 *
 * Every batch shares {@link sharedSlab}, except the session frames of a
 * resumable session (kept for replay until acknowledged, PROTOCOL.md 13):
 * those go into a slab of the session's own, so that what its kept frames
 * pin is their own bytes plus at most two partly kept slabs, never slabs
 * full of other sessions' frames (a peer that does not acknowledge must not
 * make one small kept frame hold 16 KiB of memory).
 * @internal
 */
export class Slab {
  buf: Buffer | null = null
  pos = 0
}

/** The slab of every batch that is not given one. @internal */
export const sharedSlab = new Slab()

/**
 * One flush worth of output: a list of Buffers, where headers and small
 * payloads share scratch memory and large payloads are passed by
 * reference. A batch is reused from flush to flush ({@link OutputBatch.reset}).
 * @internal
 */
export class OutputBatch {
  /** Buffers to hand to the transport, in order. */
  readonly chunks: Buffer[] = []
  /** Total bytes in the batch. */
  bytes = 0
  readonly #slab: Slab
  /** The slab buffer holding the batch's scratch bytes not yet sealed into `chunks` (from `start` to `end`). */
  #buf: Buffer | null = null
  #start = 0
  #end = 0

  /** `slab`: where headers and small payloads are copied (default {@link sharedSlab}). */
  constructor(slab: Slab = sharedSlab) {
    this.#slab = slab
  }

  /** The scratch buffer {@link OutputBatch.reserve} returned an offset into. */
  get scratch(): Buffer {
    return this.#buf!
  }

  /** Empties the batch for the next flush (its chunks must have been handed on). */
  reset(): void {
    this.chunks.length = 0
    this.bytes = 0
    this.#buf = null
  }

  /** Makes `n` bytes of scratch available at `this.#end` of `this.#buf`. */
  #ensure(n: number): Buffer {
    const pool = this.#slab
    let s = pool.buf
    if (s === null || s.length - pool.pos < n) {
      s = pool.buf = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n))
      pool.pos = 0
    }
    if (s !== this.#buf || pool.pos !== this.#end) {
      // A new slab, or another batch wrote after our bytes: what we have is one chunk.
      this.#seal()
      this.#buf = s
      this.#start = this.#end = pool.pos
    }
    return s
  }

  #seal(): void {
    if (this.#buf !== null && this.#end > this.#start) {
      this.chunks.push(this.#buf.subarray(this.#start, this.#end))
      this.#start = this.#end
    }
  }

  /** Appends a frame header. */
  header(length: number, type: number, flags: number, streamId: number): void {
    const s = this.#ensure(FRAME_HEADER_SIZE)
    writeFrameHeader(s, this.#end, length, type, flags, streamId)
    this.#slab.pos = this.#end += FRAME_HEADER_SIZE
    this.bytes += FRAME_HEADER_SIZE
  }

  /** Reserves `n` bytes of scratch; returns their offset in {@link OutputBatch.scratch}. */
  reserve(n: number): number {
    this.#ensure(n)
    const off = this.#end
    this.#slab.pos = this.#end += n
    this.bytes += n
    return off
  }

  /** Appends bytes: copied if small, else by reference. */
  append(buf: Buffer): void {
    const n = buf.length
    if (n === 0) return
    if (n < COPY_BELOW) {
      const s = this.#ensure(n)
      buf.copy(s, this.#end)
      this.#slab.pos = this.#end += n
    } else {
      this.#seal()
      this.chunks.push(buf)
    }
    this.bytes += n
  }

  /** Finishes the batch; returns its chunks (the slab's rest is left to the next batch). */
  finish(): Buffer[] {
    this.#seal()
    return this.chunks
  }
}
