/**
 * Output side helpers: a FIFO queue (the round-robin ring of streams with
 * something to send) and an output batch that coalesces small frames into
 * one buffer while passing large payloads through without copying.
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE } from './constants.js'
import { writeFrameHeader } from './codec.js'

/** A FIFO queue with O(1) push/shift. @internal */
export class Queue<T> {
  private items: Array<T | undefined> = []
  private head = 0

  /** Number of queued items. */
  get length(): number {
    return this.items.length - this.head
  }

  /** Appends an item. */
  push(item: T): void {
    this.items.push(item)
  }

  /** Removes and returns the first item. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** The first item, without removing it. */
  peek(): T | undefined {
    return this.items[this.head]
  }

  /** Keeps only the items for which `keep` is true (in order). */
  retain(keep: (item: T) => boolean): void {
    const kept: T[] = []
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i] as T
      if (keep(item)) kept.push(item)
    }
    this.items = kept
    this.head = 0
  }

  /** Removes everything. */
  clear(): void {
    this.items = []
    this.head = 0
  }
}

/** Payloads shorter than this are copied into the batch's scratch buffer. */
const COPY_BELOW = 1024
const SCRATCH_SIZE = 16 * 1024

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
  private scratch: Buffer | null = null
  private start = 0
  private pos = 0

  private ensure(n: number): Buffer {
    let s = this.scratch
    if (s === null || s.length - this.pos < n) {
      this.seal()
      s = this.scratch = Buffer.allocUnsafeSlow(Math.max(SCRATCH_SIZE, n))
      this.start = this.pos = 0
    }
    return s
  }

  private seal(): void {
    if (this.scratch !== null && this.pos > this.start) {
      this.chunks.push(this.scratch.subarray(this.start, this.pos))
      this.start = this.pos
    }
  }

  /** Appends a frame header. */
  header(length: number, type: number, flags: number, streamId: number): void {
    const s = this.ensure(FRAME_HEADER_SIZE)
    writeFrameHeader(s, this.pos, length, type, flags, streamId)
    this.pos += FRAME_HEADER_SIZE
    this.bytes += FRAME_HEADER_SIZE
  }

  /** Reserves `n` bytes of scratch, returning the buffer and offset to fill. */
  reserve(n: number): [Buffer, number] {
    const s = this.ensure(n)
    const off = this.pos
    this.pos += n
    this.bytes += n
    return [s, off]
  }

  /** Appends bytes: copied if small, else by reference. */
  append(buf: Buffer): void {
    const n = buf.length
    if (n === 0) return
    if (n < COPY_BELOW) {
      const s = this.ensure(n)
      buf.copy(s, this.pos)
      this.pos += n
    } else {
      this.seal()
      this.chunks.push(buf)
    }
    this.bytes += n
  }

  /** Finishes the batch; returns the chunks. */
  finish(): Buffer[] {
    this.seal()
    this.scratch = null
    return this.chunks
  }
}
