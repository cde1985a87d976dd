/**
 * The replay buffer of a resumable session (PROTOCOL.md 13.1): every
 * session frame sent, from the peer's last ACK to the end of the session
 * sequence, so that it can be sent again on a new transport.
 * @packageDocumentation
 */

/** Session-frame bytes kept for replay, addressed by session offset. @internal */
export class ReplayBuffer {
  /** Session offset of the first byte kept (the peer's ACK). */
  start = 0
  /** Session offset just past the last byte kept (= session bytes sent). */
  end = 0
  /** Highest number of bytes ever held at once (stats; never above the limit). */
  maxBytes = 0
  private chunks: Buffer[] = []
  private offsets: number[] = []
  private head = 0

  /** @param limit the most bytes held (lowered to the peer's REPLAY_BUFFER once known). */
  constructor(public limit: number) {}

  /** Bytes held. */
  get bytes(): number {
    return this.end - this.start
  }

  /**
   * Appends the next bytes of the session sequence. The Buffer itself is
   * kept (no copy) until acknowledged, so its bytes must never change.
   */
  push(buf: Buffer): void {
    if (buf.length === 0) return
    this.chunks.push(buf)
    this.offsets.push(this.end)
    this.end += buf.length
    const n = this.end - this.start
    if (n > this.maxBytes) this.maxBytes = n
  }

  /** Appends several chunks, in order (the same Buffers are kept: they must never be modified). */
  pushAll(bufs: readonly Buffer[]): void {
    for (let i = 0; i < bufs.length; i++) this.push(bufs[i]!)
  }

  /** Forgets everything before `offset` (the peer has it). */
  ack(offset: number): void {
    if (offset <= this.start) return
    if (offset > this.end) offset = this.end
    this.start = offset
    while (this.head < this.chunks.length) {
      const o = this.offsets[this.head]!
      const c = this.chunks[this.head]!
      if (o + c.length <= offset) {
        this.chunks[this.head] = undefined as unknown as Buffer
        this.head++
        continue
      }
      if (o < offset) {
        // Keep only the unacknowledged tail (a view of the same memory).
        this.chunks[this.head] = c.subarray(offset - o)
        this.offsets[this.head] = offset
      }
      break
    }
    if (this.head > 256 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.offsets = this.offsets.slice(this.head)
      this.head = 0
    }
  }

  /** The bytes from `offset` to the end, as views (`start <= offset <= end`). */
  slice(offset: number): Buffer[] {
    const out: Buffer[] = []
    for (let i = this.head; i < this.chunks.length; i++) {
      const o = this.offsets[i]!
      const c = this.chunks[i]!
      if (o + c.length <= offset) continue
      out.push(o < offset ? c.subarray(offset - o) : c)
    }
    return out
  }

  /** Drops everything. */
  clear(): void {
    this.chunks = []
    this.offsets = []
    this.head = 0
    this.start = this.end
  }
}
