/**
 * The lanes' framer: splits a byte stream into an optional HELLO and then
 * whole frames, without copying a session frame (PROTOCOL.md 14).
 *
 * A session frame that spans input chunks is returned as the views of
 * those chunks ({@link FrameBytes}): the lanes route, log, reorder and hand
 * it up as they are; only a link frame (ACK, SEQ, PING, PONG, AUTH: a few
 * bytes, read by the lane layer) is made one Buffer, by copying exactly its
 * bytes. Nothing else buffered is ever concatenated.
 * @packageDocumentation
 */
import type { Readable } from 'node:stream'
import { FRAME_HEADER_SIZE, HELLO_PREAMBLE_SIZE } from '../wire/constants.js'
import { type Hello, decodeHello } from '../wire/hello.js'
import { frameSizeError } from '../wire/errors.js'
import { takeViews } from '../../common/bytes.js'

/** A frame's bytes: one Buffer, or the views of the chunks a session frame spans, in order. @internal */
export type FrameBytes = Buffer | Buffer[]

/** Bytes in `f`. @internal */
export function frameSize(f: FrameBytes): number {
  if (!Array.isArray(f)) return f.length
  let n = 0
  for (let i = 0; i < f.length; i++) n += f[i]!.length
  return n
}

/** Pushes a frame's bytes (its chunks, in order) into `r`. @internal */
export function pushBytes(r: Readable, f: FrameBytes): void {
  if (!Array.isArray(f)) r.push(f)
  else for (let i = 0; i < f.length; i++) r.push(f[i])
}

/** Splits a byte stream into an optional HELLO and then whole frames. @internal */
export class Splitter {
  #parts: Buffer[] = []
  #bytes = 0
  /** A HELLO comes first. */
  hello: boolean
  readonly #maxFrame: number
  /** A frame header that spans chunks, copied together. */
  readonly #hdr = Buffer.alloc(FRAME_HEADER_SIZE)

  constructor(hello: boolean, maxFrame: number) {
    this.hello = hello
    this.#maxFrame = maxFrame
  }

  push(b: Buffer): void {
    if (b.length === 0) return
    this.#parts.push(b)
    this.#bytes += b.length
  }

  /** Everything buffered as one Buffer (only while a HELLO is read: once per transport). */
  #all(): Buffer {
    if (this.#parts.length > 1) this.#parts = [Buffer.concat(this.#parts, this.#bytes)]
    return this.#parts[0]!
  }

  /** The first `FRAME_HEADER_SIZE` bytes (buffered), without taking them. */
  #header(): Buffer {
    const first = this.#parts[0]!
    if (first.length >= FRAME_HEADER_SIZE) return first
    let at = 0
    for (let i = 0; at < FRAME_HEADER_SIZE; i++) {
      const p = this.#parts[i]!
      const n = Math.min(p.length, FRAME_HEADER_SIZE - at)
      p.copy(this.#hdr, at, 0, n)
      at += n
    }
    return this.#hdr
  }

  /** Takes the next `n` bytes (buffered) as views of the chunks they lie in. */
  #takeParts(n: number): Buffer[] {
    this.#bytes -= n
    return takeViews(this.#parts, n)
  }

  /** Takes the next `n` bytes (buffered) as one Buffer: a view if they lie in one chunk, else a copy of exactly them. */
  #takeOne(n: number): Buffer {
    const p = this.#parts[0]!
    if (p.length >= n) {
      if (p.length === n) this.#parts.shift()
      else this.#parts[0] = p.subarray(n)
      this.#bytes -= n
      return p.length === n ? p : p.subarray(0, n)
    }
    return Buffer.concat(this.#takeParts(n), n)
  }

  /** The next unit: `{ hello }` (raw HELLO bytes and the decoded HELLO), `{ frame }` (a link frame always one Buffer), or null (need more). Throws ProtocolError. */
  next(): { hello: Hello; raw: Buffer } | { type: number; frame: FrameBytes } | null {
    if (this.hello) {
      if (this.#bytes < HELLO_PREAMBLE_SIZE) {
        if (this.#bytes > 0) decodeHello(this.#all()) // checks the magic early
        return null
      }
      const r = decodeHello(this.#all())
      if (r === null) return null
      this.hello = false
      return { hello: r.hello, raw: this.#takeOne(r.size) }
    }
    if (this.#bytes < FRAME_HEADER_SIZE) return null
    const h = this.#header()
    const len = (h[0]! << 16) | (h[1]! << 8) | h[2]!
    if (len > this.#maxFrame) throw frameSizeError(`frame of ${len} bytes exceeds max frame size ${this.#maxFrame}`)
    const size = FRAME_HEADER_SIZE + len
    if (this.#bytes < size) return null
    const type = h[3]!
    return { type, frame: type < 0x80 && this.#parts[0]!.length < size ? this.#takeParts(size) : this.#takeOne(size) }
  }

  get buffered(): number {
    return this.#bytes
  }

  /** Everything buffered and not yet returned (the splitter is left empty). */
  rest(): Buffer {
    const out = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#bytes)
    this.#parts = []
    this.#bytes = 0
    return out ?? Buffer.alloc(0)
  }
}
