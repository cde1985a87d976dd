/**
 * One transport of a striped session (PROTOCOL.md 14): its state, what it
 * carried (bytes, marks, unacknowledged frames) and the PONGs it owes.
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream'
import { writePongFor } from '../wire/writer.js'
import { Splitter } from './splitter.js'
import { SentLog } from './sent-log.js'

/** A lane as {@link LaneSet.lanes} reports it. */
export interface LaneInfo {
  /** Lane index (0: the transport the session started or resumed on). */
  index: number
  /** `'joining'` (JOIN handshake), `'open'`, `'closing'` (leaving), `'closed'`. */
  state: 'joining' | 'open' | 'closing' | 'closed'
  /** Smoothed RTT in ms from the lane's PING marks (0 until measured). */
  rtt: number
  /** Delivery rate in bytes/ms, measured from the PING marks. */
  rate: number
  /** Bytes written to the lane (frames, SEQs, PINGs). */
  bytesSent: number
  /** Bytes read from the lane. */
  bytesReceived: number
  /** Bytes given to the lane that the peer has not yet confirmed (in flight). */
  inflight: number
  /** Session frames sent on this lane that the peer has not acknowledged yet. */
  unacked: number
  /** Session frames sent again on other lanes after this one died. */
  resent: number
}

/** Assumed delivery rate of a lane before it has been measured (bytes per ms; 8 Mbit/s). @internal */
export const INITIAL_RATE = 1000
/** A lane ended while its peer still had bytes to read from it is destroyed after this long. */
const LANE_LINGER_MS = 5000
/** Block size of a lane's queue of owed PONGs. */
const OWED_BLOCK = 4096

/** The info of lane `index` that never carried anything (a JOIN that failed). @internal */
export function closedLaneInfo(index: number): LaneInfo {
  return { index, state: 'closed', rtt: 0, rate: INITIAL_RATE, bytesSent: 0, bytesReceived: 0, inflight: 0, unacked: 0, resent: 0 }
}

/** One transport of a striped session. @internal */
export class Lane {
  state: LaneInfo['state'] = 'joining'
  readonly splitter: Splitter
  /** Session offset of the next session frame the peer sends on this lane (-1: needs a SEQ). */
  recvNext = -1
  /** Session offset following the last session frame we sent on this lane (-1: none yet). */
  sendNext = -1
  written = 0
  delivered = 0
  bytesReceived = 0
  rate = INITIAL_RATE
  /** The rate has been measured at least once. */
  measured = false
  srtt = 0
  /** Outstanding PING mark: when it was sent and the lane byte count it marks. */
  mark: { at: number; written: number } | null = null
  lastMark = 0
  /** Bytes of frames (not PING/PONG) written since the last mark. */
  dataSinceMark = 0
  /** When the lane got data to deliver after being idle (0: idle). */
  busySince = 0
  /** Unacknowledged session frames and session PINGs sent on this lane. */
  readonly sent = new SentLog()
  resent = 0
  ended = false
  /** The peer's AUTH on this lane is verified (or none is needed): PINGs are answered here. */
  authed = false
  /** PONGs owed on this lane that wait for it to drain, packed in blocks (bytes, not one Buffer each). */
  #owed: Array<{ buf: Buffer; used: number }> = []
  #owedBytes = 0
  #linger: NodeJS.Timeout | null = null
  onData: (b: Buffer) => void = () => {}
  onEnd: () => void = () => {}
  onClose: () => void = () => {}
  onDrain: () => void = () => {}

  readonly index: number
  readonly dx: Duplex

  constructor(index: number, dx: Duplex, hello: boolean, maxFrame: number) {
    this.index = index
    this.dx = dx
    this.splitter = new Splitter(hello, maxFrame)
  }

  get inflight(): number {
    return this.written - this.delivered
  }

  info(): LaneInfo {
    return {
      index: this.index,
      state: this.state,
      rtt: +this.srtt.toFixed(3),
      rate: +this.rate.toFixed(1),
      bytesSent: this.written,
      bytesReceived: this.bytesReceived,
      inflight: this.inflight,
      unacked: this.sent.unacked,
      resent: this.resent,
    }
  }

  /** A lane we ended: if its peer does not read what is still queued on it, it is destroyed (and its memory freed) after a while. */
  linger(): void {
    if (this.#linger !== null || this.dx.destroyed) return
    const t = (this.#linger = setTimeout(() => this.dx.destroy(), LANE_LINGER_MS))
    t.unref?.()
    this.dx.once('close', () => clearTimeout(t))
  }

  /** Bytes of PONGs owed and not written yet. */
  get owedBytes(): number {
    return this.#owedBytes
  }

  /** Queues the PONG answering the whole PING frame `ping` (as bytes, in blocks) until the lane drains. */
  owe(ping: Buffer): void {
    const n = ping.length
    let blk = this.#owed[this.#owed.length - 1]
    if (blk === undefined || blk.used + n > blk.buf.length) {
      blk = { buf: Buffer.allocUnsafe(Math.max(OWED_BLOCK, n)), used: 0 }
      this.#owed.push(blk)
    }
    blk.used += writePongFor(ping, blk.buf, blk.used)
    this.#owedBytes += n
  }

  /** The next block of owed PONGs, taken off the queue, or undefined. */
  takeOwed(): Buffer | undefined {
    const blk = this.#owed.shift()
    if (blk === undefined) return undefined
    this.#owedBytes -= blk.used
    return blk.buf.subarray(0, blk.used)
  }

  /** Forgets the owed PONGs (the lane is gone); returns their bytes. */
  dropOwed(): number {
    const n = this.#owedBytes
    this.#owedBytes = 0
    this.#owed = []
    return n
  }
}
