/**
 * Joins a mux stream and a TCP socket: bytes both ways with backpressure,
 * half-close passed through (FIN <-> end()), and a reset on one side
 * becomes a reset on the other.
 * @packageDocumentation
 */
import type net from 'node:net'
import { ResetCode } from '../mux/wire/constants.js'
import type { MuxStream } from '../mux/stream/stream.js'

/** Byte counts of one relayed connection (updated as bytes pass), and how it ended. */
export interface RelayCounts {
  /** Socket -> stream. */
  up: number
  /** Stream -> socket. */
  down: number
  /**
   * How the relay ended, once it has: `'end'` (both sides finished), or the
   * first error: `'<socket> <code>'` (the socket failed, e.g. `target
   * ECONNRESET`) or `'stream <code>'` (the stream was reset or its session
   * lost, e.g. `stream SYNMUX_STREAM_RESET`). Empty while it runs.
   */
  reason: string
}

/**
 * Relays until both sides are done. The socket should have been created
 * with `allowHalfOpen: true`, so a FIN from one side does not end the other.
 * Resolves when both are closed. `counts` (optional) is updated while the
 * relay runs, so a caller can read live byte counts; `socketName` names
 * the socket in `reason` (default `'socket'`).
 */
export function relay(stream: MuxStream, socket: net.Socket, counts: RelayCounts = { up: 0, down: 0, reason: '' }, socketName = 'socket'): Promise<RelayCounts> {
  let reason = ''
  socket.on('data', (c: Buffer) => (counts.up += c.length))
  stream.on('data', (c: Buffer) => (counts.down += c.length))
  socket.pipe(stream)
  stream.pipe(socket)
  socket.on('error', (err: NodeJS.ErrnoException) => {
    reason ||= `${socketName} ${err.code ?? err.message}`
    if (!stream.destroyed) stream.reset(ResetCode.CONNECTION_RESET)
  })
  stream.on('error', (err: Error & { code?: string }) => {
    reason ||= `stream ${err.code ?? err.message}`
    // the peer reset the stream (or the session died): reset the socket too
    if (!socket.destroyed) socket.resetAndDestroy()
  })
  // A side that closed without error while the other still runs: finish it.
  socket.on('close', () => {
    if (!stream.destroyed && !stream.writableFinished) stream.end()
  })
  stream.on('close', () => {
    if (!socket.destroyed && socket.writableFinished) return
    if (!socket.destroyed && !socket.writableEnded) socket.end()
  })
  const closed = (s: NodeJS.EventEmitter & { destroyed: boolean }) =>
    s.destroyed ? Promise.resolve() : new Promise<void>((r) => s.once('close', () => r()))
  return Promise.all([closed(stream), closed(socket)]).then(() => {
    counts.reason = reason || 'end'
    return counts
  })
}
