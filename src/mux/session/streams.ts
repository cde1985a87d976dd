/**
 * A session's streams: the table (ids, counts, pending opens) and the
 * {@link StreamHost} hooks every {@link MuxStream} calls — its writes
 * queued for the scheduler (within its high-water mark and the session's
 * send budget), FIN, reads that return credit, accept/refuse, and RST on
 * destroy.
 * @packageDocumentation
 */
import { FrameType, MAX_STREAM_ID } from '../wire/constants.js'
import { encodeFrame, frameTypeName } from '../wire/frames.js'
import { protocolError } from '../wire/errors.js'
import { rstFrame } from '../wire/writer.js'
import { MuxError, invalidState } from '../errors.js'
import { SF } from '../stream/flags.js'
import { messageTooLarge } from '../stream/message.js'
import type { MuxStream } from '../stream/stream.js'
import type { SessionCore, StreamsPart } from './core.js'

function emitOpen(s: MuxStream): void {
  if (!s.destroyed) s.emit('open')
}

/** The stream table and the stream hooks of a session. @internal */
export class Streams implements StreamsPart {
  readonly #c: SessionCore
  readonly map = new Map<number, MuxStream>()
  #nextId: number
  highestPeerId = 0
  #ownCount = 0
  #peerCount = 0
  #pendingCount = 0

  constructor(core: SessionCore) {
    this.#c = core
    this.#nextId = core.role === 'client' ? 1 : 2
  }

  get nextId(): number {
    return this.#nextId
  }

  /** Whether no stream id is left for us (then `open()` fails the stream and the session goes away). */
  get exhausted(): boolean {
    return this.#nextId > MAX_STREAM_ID
  }

  get ownCount(): number {
    return this.#ownCount
  }

  get peerCount(): number {
    return this.#peerCount
  }

  get pendingCount(): number {
    return this.#pendingCount
  }

  isOwnId(id: number): boolean {
    return (id & 1) === (this.#c.role === 'client' ? 1 : 0)
  }

  lookup(id: number, type: number): MuxStream | null {
    const s = this.map.get(id)
    if (s !== undefined) return s
    if (this.isOwnId(id) ? id >= this.#nextId : id > this.highestPeerId) {
      throw protocolError(`${frameTypeName(type)} frame for stream ${id}, which was never opened`)
    }
    return null
  }

  addLocal(s: MuxStream): void {
    const c = this.#c
    this.#nextId += 2
    s.scredit = c.peerInitialWindow
    if (c.peer === null) s.f |= SF.PRE_HELLO
    this.map.set(s.id, s)
    this.#ownCount++
    c.timers.clearIdle()
  }

  addRemote(s: MuxStream): void {
    s.scredit = this.#c.peerInitialWindow
    s.f |= SF.PENDING
    this.#pendingCount++
    this.map.set(s.id, s)
    this.#peerCount++
    this.#c.timers.clearIdle()
  }

  #unpend(s: MuxStream): void {
    if (s.f & SF.PENDING) {
      s.f &= ~SF.PENDING
      this.#pendingCount--
    }
  }

  detach(s: MuxStream): void {
    if (s.f & SF.DETACHED) return
    const c = this.#c
    const budget = c.flow.budget
    s.f |= SF.DETACHED
    this.map.delete(s.id)
    if (s.opener === 'local') this.#ownCount--
    else this.#peerCount--
    this.#unpend(s)
    if (s.inbox !== null) {
      budget.bufferedTotal -= s.inbox.partial
      s.inbox.clear()
    }
    budget.bufferedTotal -= s.rs.rbuffered
    s.rs.rbuffered = 0
    budget.windowExtra -= s.rs.rwin - c.opts.initialWindow
    if (this.map.size === 0 && !c.isClosed()) {
      c.timers.armIdle()
      c.shutdown.maybeEnd()
    }
  }

  // ---------------------------------------------------------------------------
  // StreamHost

  read(s: MuxStream): void {
    this.#c.flow.checkConsumed(s)
  }

  write(s: MuxStream, chunk: Buffer | null, chunks: Array<{ chunk: Buffer }> | null, cb: (err?: Error | null) => void): void {
    if (s.f & (SF.DETACHED | SF.FIN_SENT)) {
      cb(new MuxError('SYNMUX_SESSION_CLOSED', `stream ${s.id} is closed`))
      return
    }
    if (s.opener === 'remote' && !(s.f & SF.ANSWERED)) this.accept(s)
    // Message streams queue every chunk as one entry, even an empty one: an entry is a message.
    const keepEmpty = s.messages
    const before = s.sqBytes
    if (chunk !== null) {
      if (chunk.length > 0 || keepEmpty) {
        s.sq.push(chunk)
        s.sqBytes += chunk.length
      }
    } else if (chunks !== null) {
      for (let i = 0; i < chunks.length; i++) {
        const c = chunks[i]!.chunk
        if (c.length > 0 || keepEmpty) {
          s.sq.push(c)
          s.sqBytes += c.length
        }
      }
    }
    const flow = this.#c.flow
    if (s.sqBytes > 0 || (keepEmpty && s.sqHead < s.sq.length)) this.#c.output.scheduleStream(s)
    flow.queued(s.sqBytes - before)
    // Take writes synchronously while the queue is under the high-water mark
    // (so everything written in one tick can share one frame); beyond it,
    // or while the session's send queues are full (a peer that does not
    // read, whatever windows it grants), hold the callback: Node's
    // backpressure (write() false, 'drain') then follows the stream's
    // credit and the transport end to end.
    if (s.sqBytes <= s.writableHighWaterMark && !flow.sendFull) cb()
    else s.writeCb = cb
  }

  final(s: MuxStream, cb: (err?: Error | null) => void): void {
    if (s.f & (SF.FIN_SENT | SF.DETACHED)) {
      cb()
      return
    }
    if (s.opener === 'remote' && !(s.f & SF.ANSWERED)) this.accept(s)
    s.f |= SF.FIN_QUEUED
    s.finalCb = cb
    this.#c.output.scheduleStream(s)
  }

  destroy(s: MuxStream, _err: Error | null): void {
    const c = this.#c
    if (!(s.f & SF.DETACHED)) {
      if (!c.isClosed() && (s.opener === 'remote' || (s.f & SF.OPEN_SENT))) c.output.queueControl(rstFrame(s.id, s.resetCode))
      this.detach(s)
    }
    c.flow.queued(-s.sqBytes)
    if (c.flow.releasable) c.output.scheduleFlush() // releases the held writes
    s.sq = []
    s.sqHead = 0
    s.sqBytes = 0
    s.writeCb = null
    s.finalCb = null
  }

  accept(s: MuxStream): void {
    if (s.opener !== 'remote') throw invalidState('accept() is for streams the peer opened')
    if (s.f & (SF.ANSWERED | SF.DETACHED)) return
    s.f |= SF.ANSWERED
    this.#unpend(s)
    this.#c.output.queueOpen(s)
    process.nextTick(emitOpen, s)
  }

  refuse(s: MuxStream, code: number, reason: string | undefined): void {
    if (s.opener !== 'remote') throw invalidState('refuse() is for streams the peer opened')
    if (s.f & (SF.ANSWERED | SF.DETACHED)) throw invalidState(`stream ${s.id} was already answered`)
    s.f |= SF.ANSWERED
    this.#unpend(s)
    if (!this.#c.isClosed()) this.#c.output.queueControl(encodeFrame({ type: FrameType.REFUSED, streamId: s.id, code, reason: reason ?? '' }))
    this.detach(s)
    s.destroy()
  }

  checkMessage(size: number): void {
    const c = this.#c
    if (c.messagesOn && size > c.peerMax) throw messageTooLarge(size, c.peerMax)
  }
}
