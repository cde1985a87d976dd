/**
 * The near side of a stream — what the tunnel client (forwards, SOCKS5)
 * and the HTTP proxy (CONNECT) share when they carry a local connection:
 * its first bytes, read briefly, ride in the stream's OPEN; a stream the
 * far side refuses closes the connection (nothing it sent goes anywhere
 * else); otherwise bytes are relayed both ways until both sides are done.
 * @packageDocumentation
 */
import type net from 'node:net'
import { ResetCode } from '../mux/wire/constants.js'
import type { MuxError } from '../mux/errors.js'
import type { MuxStream } from '../mux/stream/stream.js'
import { relay, type RelayCounts } from './relay.js'
import { isRefusal } from './refusal.js'

/**
 * Resolves with what `socket` has sent within `waitMs` ms (resolving early
 * at its first bytes, its end or its close); an empty Buffer if nothing.
 */
export function readFirstBytes(socket: net.Socket, waitMs: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      socket.off('readable', done)
      socket.off('end', done)
      socket.off('close', done)
      const chunks: Buffer[] = []
      for (let c: Buffer | null; (c = socket.read()) !== null; ) chunks.push(c)
      resolve(Buffer.concat(chunks))
    }
    const timer = setTimeout(done, waitMs)
    socket.once('readable', done)
    socket.once('end', done)
    socket.once('close', done)
  })
}

/** How {@link carry} carries one local connection. */
export interface CarryOptions {
  /** Bytes already read from the connection: they ride in the OPEN. */
  head?: Buffer | undefined
  /** Without `head`, how long to wait (ms) for the connection's first bytes to send them in the OPEN; `null`: open at once, with none. */
  firstBytesWait: number | null
  /** Opens the stream, carrying `first` in its OPEN. */
  open(first: Buffer): Promise<MuxStream>
  /** `open()` failed (no session, no room): the caller closes the connection, its own way. */
  failed(err: Error): void
  /** The stream is open and the connection still there (it is carried from now on). */
  opened?(stream: MuxStream): void
  /** The far side refused the stream ({@link isRefusal}): the connection closes with it. */
  refused?(err: MuxError, stream: MuxStream): void
  /**
   * Before the relay (e.g. to answer SOCKS or an HTTP CONNECT only once the
   * far side has answered: `answered()` resolves `null` at OPENED, or the
   * error the stream ended with). `false`: no relay (the caller has
   * answered the connection and closed it).
   */
  ready?(stream: MuxStream, answered: () => Promise<Error | null>): Promise<boolean> | boolean
  /** Byte counts, updated while the relay runs (`up` starts at the first bytes' length). */
  counts?: RelayCounts
  /** The connection's name in the relay's `reason` (default `'socket'`). */
  socketName?: string
}

/**
 * Carries the local connection `socket` through a stream: its first bytes
 * in the OPEN, a refusal counted and closing it, then the relay. Resolves
 * when the relay has ended (with the stream and the counts), or `null` if
 * there was no relay (the open failed, the connection went away while it
 * waited — its stream is then reset — or `ready` declined).
 */
export async function carry(socket: net.Socket, o: CarryOptions): Promise<{ stream: MuxStream; first: Buffer; counts: RelayCounts } | null> {
  const first = o.head !== undefined && o.head.length > 0 ? o.head : o.firstBytesWait === null ? Buffer.alloc(0) : await readFirstBytes(socket, o.firstBytesWait)
  let stream: MuxStream
  try {
    stream = await o.open(first)
  } catch (err) {
    o.failed(err as Error)
    return null
  }
  if (socket.destroyed) {
    // The application gave up while its stream waited for a session or for room.
    stream.on('error', () => {})
    stream.reset(ResetCode.CANCEL)
    return null
  }
  o.opened?.(stream)
  let error: Error | null = null
  stream.once('error', (err: Error) => {
    error = err
    if (isRefusal(err)) o.refused?.(err, stream)
  })
  if (o.ready !== undefined) {
    if (!(await o.ready(stream, () => answered(stream, () => error)))) return null
  } else {
    // The session writes the OPEN from the nextTick queue, after this
    // microtask: let it leave first, and set the relay up after it (off
    // the connection's critical path; the socket stays paused meanwhile).
    await new Promise<void>((resolve) => process.nextTick(resolve))
  }
  const counts = o.counts ?? { up: first.length, down: 0, reason: '' }
  await relay(stream, socket, counts, o.socketName)
  return { stream, first, counts }
}

/** Resolves `null` once `stream` is answered (OPENED), or with the error it ended with first. */
function answered(stream: MuxStream, error: () => Error | null): Promise<Error | null> {
  const ended = (): Error => error() ?? new Error('the stream closed before it was answered')
  return new Promise((resolve) => {
    if (stream.destroyed) return resolve(ended())
    const onOpen = (): void => {
      stream.off('close', onClose)
      resolve(null)
    }
    const onClose = (): void => {
      stream.off('open', onOpen)
      resolve(ended())
    }
    stream.once('open', onOpen)
    stream.once('close', onClose)
  })
}
