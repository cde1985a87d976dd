/**
 * Which lane a frame goes on (PROTOCOL.md 14.4): each lane's delivery rate
 * and RTT are measured with its own PING marks (the peer answers them in
 * lane order, so a mark's PONG says how many bytes the lane delivered);
 * a frame goes to the lane expected to deliver it first, (bytes in flight
 * + the frame) / rate + RTT / 2. A lane whose mark is long overdue is
 * dead.
 * @packageDocumentation
 */
import { FRAME_HEADER_SIZE, FrameType } from '../wire/constants.js'
import { encodeFrame } from '../wire/frames.js'
import type { Lane } from './lane.js'

/** First byte of the payload of the PINGs a LaneSet sends for itself (session PINGs start with 0). */
const MARK = 0xff
/** A lane whose PING mark is unanswered this long (plus twice the worst RTT) is dead (the pool's rule). */
const STALL_BASE_MS = 1000
/** Bytes a lane may have in flight before its rate is measured (more than a mark's 16 KiB sample). */
const UNMEASURED_INFLIGHT = 64 * 1024
/** Bytes between two marks, and the least a rate sample covers. */
const MARK_EVERY = 16 * 1024

/** The open lane expected to deliver `size` more bytes first (without striping: the first open one). @internal */
export function pick(lanes: readonly Lane[], striped: boolean, size: number): Lane | null {
  let best: Lane | null = null
  let bestT = Infinity
  // Until a lane's rate is measured it gets at most a probe's worth in flight
  // (unless no other lane can take the frame).
  let others = false
  for (const l of lanes) if (l.state === 'open' && (l.measured || l.inflight <= UNMEASURED_INFLIGHT)) others = true
  for (const l of lanes) {
    if (l.state !== 'open') continue
    if (!striped) return l
    if (others && !l.measured && l.inflight > UNMEASURED_INFLIGHT) continue
    const t = (l.inflight + l.dx.writableLength + size) / l.rate + l.srtt / 2
    if (t < bestT) {
      bestT = t
      best = l
    }
  }
  return best
}

/** Whether enough went on `lane` since its last mark for a new one. @internal */
export function markDue(lane: Lane): boolean {
  return lane.mark === null && lane.written - lane.lastMark >= MARK_EVERY
}

/** A PING mark for `lane` (to be written next): its PONG will say the lane delivered everything written before it. @internal */
export function markFrame(lane: Lane, now: number): Buffer {
  const p = Buffer.alloc(8)
  p[0] = MARK
  const w = lane.written + FRAME_HEADER_SIZE + 8
  p.writeUIntBE(w, 2, 6)
  lane.mark = { at: now, written: w }
  lane.lastMark = w
  lane.dataSinceMark = 0
  return encodeFrame({ type: FrameType.PING, opaque: p })
}

/** The lane byte count a PONG answers if it answers one of our marks, else -1. @internal */
export function markOf(pong: Buffer): number {
  return pong.length === FRAME_HEADER_SIZE + 8 && pong[FRAME_HEADER_SIZE] === MARK ? pong.readUIntBE(FRAME_HEADER_SIZE + 2, 6) : -1
}

/**
 * The PONG of a mark of `lane` came back: the lane delivered `written`
 * bytes; its RTT and delivery rate are updated. Returns whether a new mark
 * is due (data went on the lane since). @internal
 */
export function onMark(lane: Lane, written: number, now: number): boolean {
  const m = lane.mark
  if (m === null || m.written !== written) return false
  const dt = now - m.at
  const bytes = written - lane.delivered
  lane.delivered = written
  lane.mark = null
  // RTT: only from marks that did not wait behind much data.
  if (bytes < MARK_EVERY || lane.srtt === 0) lane.srtt = lane.srtt === 0 ? dt : lane.srtt * 0.875 + dt * 0.125
  // Delivery rate: the bytes confirmed over the time since the lane got busy.
  const busy = now - lane.busySince
  if (bytes >= MARK_EVERY && busy > 0) {
    const r = bytes / busy
    lane.rate = lane.measured ? lane.rate * 0.75 + r * 0.25 : r
    lane.measured = true
  }
  lane.busySince = lane.written > written ? now : 0
  return lane.dataSinceMark > 0
}

/** Whether `lane`'s outstanding mark is overdue: dead (`worst`: the worst RTT of all lanes). @internal */
export function stalled(lane: Lane, worst: number, now: number): boolean {
  return lane.mark !== null && now - lane.mark.at > STALL_BASE_MS + 2 * worst + lane.inflight / lane.rate
}
