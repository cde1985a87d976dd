/**
 * The lanes' framer: splits a byte stream into an optional HELLO and then
 * whole frames, without copying where it can (PROTOCOL.md 14).
 *
 * Seam for the hot path: frames split here are parsed again by the
 * session's decoder; handing the decoded frames up instead (no second
 * parse, no concatenation in {@link Splitter.peek}) plugs in here.
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE, HELLO_PREAMBLE_SIZE } from '../wire/constants.js'
import { type Hello, decodeHello } from '../wire/hello.js'
import { frameSizeError } from '../wire/errors.js'

/** Splits a byte stream into an optional HELLO and then whole frames. @internal */
export class Splitter {
  #parts: Buffer[] = []
  #bytes = 0
  /** A HELLO comes first. */
  hello: boolean
  readonly #maxFrame: number

  constructor(hello: boolean, maxFrame: number) {
    this.hello = hello
    this.#maxFrame = maxFrame
  }

  push(b: Buffer): void {
    if (b.length === 0) return
    this.#parts.push(b)
    this.#bytes += b.length
  }

  #peek(n: number): Buffer {
    if (this.#parts[0]!.length < n) {
      const all = Buffer.concat(this.#parts, this.#bytes)
      this.#parts = [all]
    }
    return this.#parts[0]!
  }

  #take(n: number): Buffer {
    const head = this.#peek(n)
    let out: Buffer
    if (head.length === n) {
      this.#parts.shift()
      out = head
    } else {
      out = head.subarray(0, n)
      this.#parts[0] = head.subarray(n)
    }
    this.#bytes -= n
    return out
  }

  /** The next unit: `{ hello }` (raw HELLO bytes and the decoded HELLO), `{ frame }`, or null (need more). Throws ProtocolError. */
  next(): { hello: Hello; raw: Buffer } | { type: number; frame: Buffer } | null {
    if (this.hello) {
      if (this.#bytes < HELLO_PREAMBLE_SIZE) {
        if (this.#bytes > 0) decodeHello(this.#peek(this.#bytes)) // checks the magic early
        return null
      }
      const r = decodeHello(this.#peek(this.#bytes))
      if (r === null) return null
      this.hello = false
      return { hello: r.hello, raw: this.#take(r.size) }
    }
    if (this.#bytes < FRAME_HEADER_SIZE) return null
    const h = this.#peek(FRAME_HEADER_SIZE)
    const len = (h[0]! << 16) | (h[1]! << 8) | h[2]!
    if (len > this.#maxFrame) throw frameSizeError(`frame of ${len} bytes exceeds max frame size ${this.#maxFrame}`)
    if (this.#bytes < FRAME_HEADER_SIZE + len) return null
    const type = h[3]!
    return { type, frame: this.#take(FRAME_HEADER_SIZE + len) }
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
