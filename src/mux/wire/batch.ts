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
 * Scratch memory that output batches fill in turn: a batch continues where
 * the previous one stopped, so small frames of successive flushes share a
 * slab. A session whose frames are kept (the replay buffer, PROTOCOL.md
 * 13) frames into one such slab for its whole life: a kept frame pins its
 * own bytes, and at most two partly kept slabs exist, instead of a slab
 * per flush (a 31-byte reply must not pin 16 KiB). Bytes of a slab are
 * never written again once a batch has handed them out.
 * @internal
 */
export class Slab {
  buf: Buffer | null = null
  pos = 0
}

/**
 * One flush worth of output: a list of Buffers, where headers and small
 * payloads share scratch buffers and large payloads are passed by reference.
 * @internal
 */
export class OutputBatch {
  /** Buffers to hand to the transport, in order. */
  readonly chunks: Buffer[] = []
  /** Total bytes in the batch. */
  bytes = 0
  private readonly slab: Slab
  /** Start of the part of the slab not yet sealed into `chunks`. */
  private start: number

  /** `slab`: scratch shared with later batches (default: a fresh one of this batch's own). */
  constructor(slab: Slab = new Slab()) {
    this.slab = slab
    this.start = slab.pos
  }

  private ensure(n: number): Buffer {
    const slab = this.slab
    let s = slab.buf
    if (s === null || s.length - slab.pos < n) {
      this.seal()
      s = slab.buf = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n))
      this.start = slab.pos = 0
    }
    return s
  }

  private seal(): void {
    const slab = this.slab
    if (slab.buf !== null && slab.pos > this.start) {
      this.chunks.push(slab.buf.subarray(this.start, slab.pos))
      this.start = slab.pos
    }
  }

  /** Appends a frame header. */
  header(length: number, type: number, flags: number, streamId: number): void {
    const s = this.ensure(FRAME_HEADER_SIZE)
    writeFrameHeader(s, this.slab.pos, length, type, flags, streamId)
    this.slab.pos += FRAME_HEADER_SIZE
    this.bytes += FRAME_HEADER_SIZE
  }

  /** Reserves `n` bytes of scratch, returning the buffer and offset to fill. */
  reserve(n: number): [Buffer, number] {
    const s = this.ensure(n)
    const off = this.slab.pos
    this.slab.pos += n
    this.bytes += n
    return [s, off]
  }

  /** Appends bytes: copied if small, else by reference. */
  append(buf: Buffer): void {
    const n = buf.length
    if (n === 0) return
    if (n < COPY_BELOW) {
      const s = this.ensure(n)
      buf.copy(s, this.slab.pos)
      this.slab.pos += n
    } else {
      this.seal()
      this.chunks.push(buf)
    }
    this.bytes += n
  }

  /** Finishes the batch; returns the chunks (the slab's rest is left to the next batch on it). */
  finish(): Buffer[] {
    this.seal()
    return this.chunks
  }
}
