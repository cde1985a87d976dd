/**
 * The lanes of a striped session as one collection: which are open, where
 * a frame goes ({@link pick}), writing with the byte counts the scheduler
 * needs, PING marks and stall detection, sending a dead lane's frames
 * again, and the PONGs the lanes owe the peer (all lanes together within
 * the control-queue cap, PROTOCOL.md 10).
 * @packageDocumentation
 */
import { performance } from 'node:perf_hooks'
import { DEFAULTS } from '../wire/constants.js'
import { writePongFor } from '../wire/writer.js'
import type { Lane, LaneInfo } from './lane.js'
import { markFrame, pick, stalled } from './schedule.js'
import type { FrameBytes } from './splitter.js'

/** The lanes of a LaneSet. @internal */
export class Lanes {
  /** Lane 0 first, then in the order they joined. */
  readonly list: Lane[] = []
  /** Striping is in effect (both HELLOs set STRIPE). */
  striped = false
  /** PONG bytes owed on all lanes, waiting for them to drain. */
  #owedTotal = 0

  /** The lane with this index. */
  find(index: number): Lane | undefined {
    return this.list.find((l) => l.index === index)
  }

  /** Lanes open for sending. */
  get open(): number {
    let n = 0
    for (const l of this.list) if (l.state === 'open') n++
    return n
  }

  /** Whether some open lane takes more bytes now (the set's writes go on). */
  get writable(): boolean {
    return this.list.some((l) => l.state === 'open' && !l.dx.writableNeedDrain)
  }

  infos(): LaneInfo[] {
    return this.list.map((l) => l.info())
  }

  /** The open lane expected to deliver `size` more bytes first. */
  pick(size: number): Lane | null {
    return pick(this.list, this.striped, size)
  }

  /** Writes `b` (a frame's bytes, one Buffer or its chunks) on `lane`. */
  write(lane: Lane, b: FrameBytes): void {
    if (lane.busySince === 0) lane.busySince = performance.now()
    if (!Array.isArray(b)) {
      lane.written += b.length
      if (!lane.dx.destroyed) lane.dx.write(b)
      return
    }
    for (let i = 0; i < b.length; i++) {
      lane.written += b[i]!.length
      if (!lane.dx.destroyed) lane.dx.write(b[i])
    }
  }

  /**
   * `lane` is gone: every session frame it carried that the peer has not
   * acknowledged (`acked`) goes again, each on the best lane left (`route`);
   * so do its session PINGs and the last ACK (`lastAck`: it may have died
   * with the lane). With no open lane left, nothing is sent: the session's
   * replay buffer has it all for the resume.
   */
  resend(lane: Lane, acked: number, lastAck: Buffer | null, route: (off: number, frame: FrameBytes) => void): void {
    const open = this.open > 0
    const pings = lane.sent.drain(
      acked,
      open
        ? (off, buf) => {
            lane.resent++
            route(off, buf)
          }
        : null,
    )
    if (!open) return
    for (const p of pings) {
      const l = this.pick(p.length)
      if (l !== null) {
        l.sent.pings.push(p)
        this.write(l, p)
      }
    }
    if (lastAck !== null) {
      const l = this.pick(lastAck.length)
      if (l !== null) this.write(l, lastAck)
    }
  }

  /** A PING mark on `lane`: its PONG says the lane delivered everything written before it. */
  sendMark(lane: Lane): void {
    if (!this.striped || lane.state !== 'open') return
    this.write(lane, markFrame(lane, performance.now()))
  }

  /** Every tick: a mark on every open lane that has none out; `dead(lane)` for each whose mark is overdue. */
  tick(dead: (lane: Lane) => void): void {
    const now = performance.now()
    let worst = 0
    for (const l of this.list) if (l.srtt > worst) worst = l.srtt
    for (const l of [...this.list]) {
      if (l.state !== 'open') continue
      if (l.mark === null) this.sendMark(l)
      else if (stalled(l, worst, now)) dead(l)
    }
  }

  /**
   * Answers the whole PING frame `ping` on its lane: at once if the lane
   * takes it, else queued (as bytes) until the lane drains. Returns false
   * when the lanes owe more than the control-queue cap (a peer that does
   * not read: it is cut off, as the session does for its own control
   * queue).
   */
  owe(lane: Lane, ping: Buffer): boolean {
    const n = ping.length
    if (lane.owedBytes === 0 && !lane.dx.writableNeedDrain) {
      const pong = Buffer.allocUnsafe(n)
      writePongFor(ping, pong, 0)
      this.write(lane, pong)
      return true
    }
    lane.owe(ping)
    this.#owedTotal += n
    return this.#owedTotal <= DEFAULTS.maxControlQueue
  }

  /** PONG bytes owed on all lanes. */
  get owedTotal(): number {
    return this.#owedTotal
  }

  /** Writes owed PONGs while the lane takes them. */
  payOwed(lane: Lane): void {
    for (let b; !lane.dx.writableNeedDrain && !lane.dx.destroyed && (b = lane.takeOwed()) !== undefined; ) {
      this.#owedTotal -= b.length
      this.write(lane, b)
    }
  }

  /** The lane is gone: what it owed is forgotten. */
  dropOwed(lane: Lane): void {
    this.#owedTotal -= lane.dropOwed()
  }
}
