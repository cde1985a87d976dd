/**
 * Per-stream receive-window accounting and auto-tuning (PROTOCOL.md 6).
 * The receiver keeps `credit outstanding + bytes buffered <= window` and
 * returns credit in steps of at least a quarter window (no silly-window updates); the window doubles
 * when a whole window is consumed in under two RTTs (the window, not the
 * reader, is the bottleneck), within a session-wide growth budget.
 * @packageDocumentation
 */

/** Receive-side flow-control state of one stream. @internal */
export interface ReceiveState {
  /** Current window size (target of credit + buffered). */
  rwin: number
  /** Credit the peer still has (granted − received). */
  rcredit: number
  /** Bytes received and not yet consumed by the application. */
  rbuffered: number
  /** Start of the current auto-tune epoch (ms). */
  epochStart: number
  /** Bytes consumed in the current epoch. */
  epochBytes: number
}

/** Session-wide budget for window growth. @internal */
export interface WindowBudget {
  /** Sum over streams of (window − initial window). */
  windowExtra: number
  /** Cap on `windowExtra` (and on bytes buffered, for growth). */
  maxSessionBuffer: number
  /** Bytes buffered for the application across the session. */
  bufferedTotal: number
  /** Auto-tune cap per stream. */
  maxWindow: number
}

/**
 * Records `consumed` bytes read by the application, maybe grows the window
 * (reading `clock`, in ms, once a window has been consumed), and returns the
 * WINDOW increment to send now (0: none yet).
 * @internal
 */
export function onConsumed(st: ReceiveState, consumed: number, clock: () => number, rtt: number, budget: WindowBudget): number {
  st.epochBytes += consumed
  if (st.epochBytes >= st.rwin) {
    const now = clock()
    const elapsed = now - st.epochStart
    if (rtt > 0 && elapsed < 2 * rtt && st.rwin < budget.maxWindow && budget.bufferedTotal < budget.maxSessionBuffer) {
      const grow = Math.min(st.rwin, budget.maxWindow - st.rwin, budget.maxSessionBuffer - budget.windowExtra)
      if (grow > 0) {
        st.rwin += grow
        budget.windowExtra += grow
      }
    }
    st.epochStart = now
    st.epochBytes = 0
  }
  return creditDue(st)
}

/** The increment worth sending now (0 if below the quarter-window threshold). @internal */
export function creditDue(st: ReceiveState): number {
  const can = st.rwin - st.rcredit - st.rbuffered
  if (can <= 0) return 0
  return can >= st.rwin / 4 ? can : 0
}
