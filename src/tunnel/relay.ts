/**
 * Joins a mux stream and a TCP socket: bytes both ways with backpressure,
 * half-close passed through (FIN <-> end()), and a reset on one side
 * becomes a reset on the other.
 * @packageDocumentation
 */
import type net from 'node:net'
import { ResetCode } from '../mux/constants.js'
import type { MuxStream } from '../mux/stream.js'

/** Byte counts of one relayed connection. */
export interface RelayCounts {
  /** Socket -> stream. */
  up: number
  /** Stream -> socket. */
  down: number
}

/**
 * Relays until both sides are done. The socket should have been created
 * with `allowHalfOpen: true`, so a FIN from one side does not end the other.
 * Resolves when both are closed.
 */
export function relay(stream: MuxStream, socket: net.Socket): Promise<RelayCounts> {
  const counts: RelayCounts = { up: 0, down: 0 }
  socket.on('data', (c: Buffer) => (counts.up += c.length))
  stream.on('data', (c: Buffer) => (counts.down += c.length))
  socket.pipe(stream)
  stream.pipe(socket)
  socket.on('error', () => {
    if (!stream.destroyed) stream.reset(ResetCode.CONNECTION_RESET)
  })
  stream.on('error', () => {
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
  return Promise.all([closed(stream), closed(socket)]).then(() => counts)
}
