/**
 * A session's flow control (PROTOCOL.md 6): received bytes handed to the
 * streams and counted against the session's buffer, credit returned as the
 * application reads (window auto-tuning: stream/flow.ts), and the send
 * budget: what all streams together may queue to send (`maxSessionBuffer`,
 * at least one batch) before their writes are held.
 * @packageDocumentation
 */
import { performance } from 'node:perf_hooks'
import { DEFAULTS } from '../wire/constants.js'
import { SF } from '../stream/flags.js'
import { type WindowBudget, creditDue, onConsumed } from '../stream/flow.js'
import { checkMessageFrame } from '../stream/message.js'
import type { MuxStream } from '../stream/stream.js'
import type { FlowPart, SessionCore } from './core.js'

const now = (): number => performance.now()

/** Receive credit and the send budget of a session. @internal */
export class Flow implements FlowPart {
  readonly #c: SessionCore
  readonly budget: WindowBudget
  /** Bytes in all streams' send queues; above the budget, writes wait until it is half that (PROTOCOL.md 6.4). */
  #sendQueued = 0
  #sendFull = false
  /** What the streams may queue to send in all: maxSessionBuffer, at least one batch of output. */
  readonly #sendBudget: number

  constructor(core: SessionCore) {
    this.#c = core
    const o = core.opts
    this.budget = { windowExtra: 0, maxSessionBuffer: o.maxSessionBuffer, bufferedTotal: 0, maxWindow: o.maxWindow }
    this.#sendBudget = Math.max(o.maxSessionBuffer, DEFAULTS.writeBatch)
  }

  get sendQueued(): number {
    return this.#sendQueued
  }

  get sendFull(): boolean {
    return this.#sendFull
  }

  get releasable(): boolean {
    return this.#sendFull && this.#sendQueued <= this.#sendBudget / 2
  }

  queued(n: number): void {
    this.#sendQueued += n
    if (this.#sendQueued > this.#sendBudget) this.#sendFull = true
  }

  releaseWrites(cbs: Array<(err?: Error | null) => void>): void {
    this.#sendFull = false
    for (const s of this.#c.streams.map.values()) {
      if (s.writeCb !== null && s.sqBytes <= s.writableHighWaterMark) {
        cbs.push(s.writeCb)
        s.writeCb = null
      }
    }
  }

  /**
   * Hands received bytes to a stream. A view of less than a quarter of its
   * memory (a small frame of a big transport read) is copied, so that bytes
   * the application holds do not pin the whole read; a frame that is most
   * of its read is handed over as it is.
   */
  deliver(s: MuxStream, buf: Buffer): void {
    const n = buf.length
    if (n === 0) return
    if (n * 4 < buf.buffer.byteLength) buf = Buffer.from(buf)
    s.rs.rbuffered += n
    this.budget.bufferedTotal += n
    s.push(buf)
  }

  /**
   * Message streams (PROTOCOL.md 15): adds a frame's bytes to the message
   * being assembled (a protocol error if it would exceed our MAX_MESSAGE:
   * checked before the bytes are kept); on EOM hands the whole message to
   * the readable side. Bytes of the incomplete message are credited back
   * as they arrive (15.6), complete ones as the application reads them.
   */
  messageIn(s: MuxStream, data: Buffer, chunks: Buffer[] | undefined, len: number, eom: boolean): void {
    const box = s.inbox!
    checkMessageFrame(this.#c.opts.maxMessage, s.id, box.partial, len, eom, false)
    if (chunks === undefined) box.add(data)
    else for (let i = 0; i < chunks.length; i++) box.add(chunks[i]!)
    this.budget.bufferedTotal += len
    if (eom) {
      const msg = box.finish()
      s.rs.rbuffered += msg.length
      s.push(msg)
    } else if (len > 0 && !(s.f & SF.IN_WINDOW_QUEUE) && creditDue(s.rs) > 0) {
      this.#c.output.queueWindow(s)
    }
  }

  checkConsumed(s: MuxStream): void {
    if (s.f & SF.DETACHED) return
    // Message streams: the readable side counts messages; credit counts bytes.
    const len = s.inbox !== null ? s.inbox.unread(s.readableLength) : s.readableLength
    const consumed = s.rs.rbuffered - len
    if (consumed <= 0) return
    s.rs.rbuffered = len
    this.budget.bufferedTotal -= consumed
    if (s.f & SF.FIN_RECEIVED) return
    const inc = onConsumed(s.rs, consumed, now, this.#c.timers.srtt, this.budget)
    if (inc > 0) this.#c.output.queueWindow(s)
  }
}
