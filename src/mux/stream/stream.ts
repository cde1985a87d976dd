/**
 * MuxStream: one logical connection of a session, a Node `Duplex`.
 * The session owns all protocol logic; the stream holds per-stream state
 * and forwards Node's stream hooks to its {@link StreamHost} (the session,
 * which the stream does not import: session/session.ts adds the typed
 * `stream.session`).
 * @packageDocumentation
 */
import { Duplex } from 'node:stream'
import type { DecodedTarget } from '../wire/target.js'
import type { ReceiveState } from './flow.js'
import { ResetCode } from '../wire/constants.js'
import { invalidArgType, outOfRange } from '../errors.js'
import { MessageInbox, messageSize } from './message.js'
import { SF } from './flags.js'

/**
 * What a stream needs from its session: Node's stream hooks and the
 * application's answers, each with the stream. The session implements it
 * (session/streams.ts). @internal
 */
export interface StreamHost {
  /** Acceptor: `accept()` (and implicit accepts: a write, end(), the accept delay). */
  accept(s: MuxStream): void
  /** Acceptor: `refuse()`. */
  refuse(s: MuxStream, code: number, reason: string | undefined): void
  /** `_write` (`chunk`) or `_writev` (`chunks`). */
  write(s: MuxStream, chunk: Buffer | null, chunks: Array<{ chunk: Buffer }> | null, cb: (err?: Error | null) => void): void
  /** `_final`: FIN once the queue is sent. */
  final(s: MuxStream, cb: (err?: Error | null) => void): void
  /** `'data'`: the application consumed bytes (credit may go back). */
  read(s: MuxStream): void
  /** `_destroy`: RST if the peer knows the stream, and forget it. */
  destroy(s: MuxStream, err: Error | null): void
  /** Message streams: throws the `SYNMUX_MESSAGE_TOO_LARGE` RangeError for a message above the peer's MAX_MESSAGE. */
  checkMessage(size: number): void
}

function checkDrain(s: MuxStream): void {
  s.checkDrain()
}

/** Node's own `writableNeedDrain` (its buffer reached its mark), which MuxStream extends below. */
const nodeNeedDrain = Object.getOwnPropertyDescriptor(Duplex.prototype, 'writableNeedDrain')!.get! as (this: Duplex) => boolean

/**
 * A stream of a `Session`: a Node `Duplex` whose writable side is
 * framed into OPEN/OPENED/DATA frames (FIN on `end()`) and whose readable
 * side yields the peer's data. `destroy(err)` resets the stream (RST).
 *
 * Events besides the `Duplex` ones:
 * - `'open'`: the stream is established (opener: OPENED arrived, see
 *   {@link MuxStream.openedIn}; acceptor: it was accepted).
 * - `'message'` (message streams only): one whole message, a `Buffer`.
 * - `'error'` with a `MuxError` whose `code` is `SYNMUX_REFUSED` (refused;
 *   `wireCode` is the refuse code), `SYNMUX_STREAM_RESET` (RST by the peer;
 *   `wireCode` is the reset code) or a session error.
 *
 * **Message streams** (`session.open({ messages: true })` and the peer's
 * side of such a stream, {@link MuxStream.messages}; PROTOCOL.md 15)
 * preserve message boundaries in both directions:
 * - Writing: every `write(chunk)` (and `end(chunk)`, and `open()`'s
 *   `data`) is one message, possibly empty. A message larger than the
 *   peer's MAX_MESSAGE (its `maxMessage` option, known from its HELLO)
 *   makes that `write()`/`end()` throw a `RangeError` with `code`
 *   `SYNMUX_MESSAGE_TOO_LARGE`; nothing is queued, the stream stays usable
 *   and no other message is affected. (Only before the peer's HELLO, on a
 *   client's first flight, is the limit still unknown: a message above
 *   65,536 bytes written then waits for the HELLO, and if the peer's limit
 *   is smaller the stream fails with a `MuxError` of that code.) The
 *   writable side's `highWaterMark` is in bytes, as for byte streams.
 * - Reading: the readable side is in object mode, each chunk one whole
 *   message as a `Buffer` (`read()`, `'data'`, `for await` all yield
 *   messages). `'message'` is emitted with each message as the application
 *   consumes it (together with `'data'`); like `'data'`, adding a
 *   `'message'` listener starts the flow unless the stream was paused.
 * - Backpressure: credit is returned to the sender as messages are read,
 *   so a paused or slow reader stops the sender once its window is full
 *   (plus at most one incomplete message, which is always credited so a
 *   message larger than the window can complete).
 * - `end()` half-closes after the last message (FIN rides with its last
 *   frame); the peer sees `'end'` after its last `'message'`.
 *
 * Written Buffers are framed by reference, not copied: like most Node
 * writables that queue, a stream may still hold a chunk after its write
 * callback ran (up to the high-water mark), and a resumable session keeps
 * it in its replay buffer until the peer acknowledges it. Do not modify a
 * Buffer once it has been written.
 */
export class MuxStream extends Duplex {
  /** Stream id (odd: opened by the client, even: by the server). */
  readonly id: number
  /** The target named in OPEN, or `null`. */
  readonly target: DecodedTarget | null
  /** Which side opened the stream. */
  readonly opener: 'local' | 'remote'
  /** Opener only: milliseconds from `open()` to OPENED; `null` before. */
  openedIn: number | null = null
  /** Whether this is a message stream (PROTOCOL.md 15): each write is one message, each read one whole message. */
  readonly messages: boolean

  readonly #host: StreamHost
  /** @internal */ f: number = 0
  /** @internal */ scredit = 0
  /** @internal */ sq: Buffer[] = []
  /** @internal */ sqHead = 0
  /** @internal */ sqBytes = 0
  /** @internal */ writeCb: ((err?: Error | null) => void) | null = null
  /** @internal */ finalCb: ((err?: Error | null) => void) | null = null
  /** @internal */ rs: ReceiveState
  /** @internal */ openAt: number
  /** @internal */ acceptDeadline = 0
  /** @internal */ resetCode: number = ResetCode.CANCEL
  /** @internal Message streams: the receive side's message assembly. */ inbox: MessageInbox | null
  /** write() returned false for a held write although Node's buffer was below its mark: 'drain' is ours to emit. */
  #drainOwed = false
  /** The wrapper installed on the held write's callback (see #watchHeld). */
  #heldWrap: ((err?: Error | null) => void) | null = null
  /** Reading is held (holdReading): resume() leaves the stream paused. */
  #readHold = false

  /** @internal `session`: what `stream.session` is (typed by session/session.ts); `host`: where the stream's hooks go. */
  constructor(host: StreamHost, session: object, id: number, opener: 'local' | 'remote', target: DecodedTarget | null, rwin: number, now: number, hwm: number, messages = false) {
    super({ allowHalfOpen: true, writableHighWaterMark: hwm, decodeStrings: true, readableObjectMode: messages })
    this.#host = host
    ;(this as { session?: object }).session = session
    this.id = id
    this.opener = opener
    this.target = target
    this.messages = messages
    this.inbox = messages ? new MessageInbox() : null
    this.openAt = now
    this.rs = { rwin, rcredit: rwin, rbuffered: 0, epochStart: now, epochBytes: 0 }
  }

  /** Current receive window in bytes (starts at the initial window, auto-tuned up to `maxWindow`). */
  get receiveWindow(): number {
    return this.rs.rwin
  }

  /** Bytes this side may still send before the peer grants more credit. */
  get sendCredit(): number {
    return this.scredit
  }

  /** Acceptor only: whether the stream still waits for `accept()`/`refuse()`. */
  get pending(): boolean {
    return this.opener === 'remote' && (this.f & SF.ANSWERED) === 0 && (this.f & SF.DETACHED) === 0
  }

  /**
   * Acceptor: accepts the stream now (OPENED goes out with whatever has been
   * written by the end of this tick). Writing or ending accepts implicitly;
   * an unanswered stream is accepted after the session's `acceptDelay`.
   * Throws `ERR_INVALID_STATE` on a locally opened stream.
   */
  accept(): this {
    this.#host.accept(this)
    return this
  }

  /**
   * Acceptor: refuses the stream (REFUSED with `code`, default 1 REFUSED, and
   * an optional reason of at most 255 bytes). The stream is destroyed
   * without error; what the opener sent is discarded. Throws
   * `ERR_INVALID_STATE` if the stream was already answered.
   */
  refuse(code = 1, reason?: string): void {
    if (typeof code !== 'number') throw invalidArgType('code', 'of type number', code)
    if (!Number.isInteger(code) || code < 0 || code > 0xffff) throw outOfRange('code', 'an integer >= 0 && <= 65535', code)
    if (reason !== undefined && typeof reason !== 'string') throw invalidArgType('reason', 'of type string', reason)
    this.#host.refuse(this, code, reason)
  }

  /**
   * Resets the stream with an RST carrying `code` (default 0 CANCEL) and
   * destroys it locally (with `err` if given).
   */
  reset(code: number = ResetCode.CANCEL, err?: Error): void {
    if (typeof code !== 'number') throw invalidArgType('code', 'of type number', code)
    if (!Number.isInteger(code) || code < 0 || code > 0xffff) throw outOfRange('code', 'an integer >= 0 && <= 65535', code)
    this.resetCode = code
    this.destroy(err)
  }

  /**
   * As `Duplex.write()`. Returns false (wait for `'drain'`) once the
   * stream's queue passes its high-water mark, or while the session's send
   * queues together hold more than its `maxSessionBuffer` (at least 1 MiB;
   * until they are down to half of it), whatever credit the peer grants. On a message
   * stream the chunk is one message; throws a `RangeError` with `code`
   * `SYNMUX_MESSAGE_TOO_LARGE` (and queues nothing) if it is larger than
   * the peer's MAX_MESSAGE.
   */
  override write(chunk: any, encoding?: any, cb?: any): boolean {
    if (this.messages) this.#host.checkMessage(messageSize(chunk, encoding))
    const ok = super.write(chunk, encoding, cb)
    if (!ok || this.writeCb === null) return ok
    // The session holds this write (the stream's queue is above its
    // high-water mark, or the session's send queues are full): ask the
    // writer to wait now rather than buffer up to another high-water mark.
    // Node's own buffer is below its mark, so Node will not emit 'drain':
    // the stream owes it, once the held write and all behind it are done.
    this.#drainOwed = true
    this.#watchHeld()
    return false
  }

  /** @internal Whether a 'drain' is owed for a held write (the other half of `writableNeedDrain`). */
  get drainOwed(): boolean {
    return this.#drainOwed
  }

  /** After the session took or held a write while a 'drain' is owed. */
  #afterHostWrite(): void {
    if (nodeNeedDrain.call(this)) {
      // Node's buffer reached its mark meanwhile: Node emits 'drain' itself.
      this.#drainOwed = false
      return
    }
    if (this.writeCb !== null) this.#watchHeld()
    else process.nextTick(checkDrain, this) // after Node's own afterWrite tick
  }

  /** Wraps the held write's callback: the owed 'drain' is checked when the session releases it. */
  #watchHeld(): void {
    const cb = this.writeCb!
    if (cb === this.#heldWrap) return
    const wrap = (err?: Error | null): void => {
      this.#heldWrap = null
      const nodeDrains = nodeNeedDrain.call(this)
      cb(err)
      if (nodeDrains) this.#drainOwed = false
      else this.checkDrain()
    }
    this.#heldWrap = wrap
    this.writeCb = wrap
  }

  /** @internal Emits the owed 'drain' once nothing of the writer's is buffered or held any more. */
  checkDrain(): void {
    if (!this.#drainOwed || this.writeCb !== null || this.writableLength > 0) return
    this.#drainOwed = false
    if (nodeNeedDrain.call(this) || this.writableEnded || this.destroyed) return
    this.emit('drain')
  }

  /**
   * As `Duplex.end()`. On a message stream a `chunk` is the last message;
   * throws like {@link MuxStream.write} (the stream is then not ended).
   */
  override end(chunk?: any, encoding?: any, cb?: any): this {
    // Ending an ended (or destroyed) stream with no data and no callback
    // does nothing, but Writable.end() still builds the error it would hand
    // a callback (a stack capture): Node's HTTP server ends its socket so on
    // every request of the gateway's streams.
    if (chunk == null && encoding === undefined && cb === undefined && (this.writableEnded || this.destroyed) && this.writableCorked === 0) return this
    if (this.messages && chunk != null && typeof chunk !== 'function') this.#host.checkMessage(messageSize(chunk, encoding))
    return super.end(chunk, encoding, cb)
  }

  /** Message streams also emit each `'data'` chunk (one message) as `'message'`. */
  override emit(event: string | symbol, ...args: any[]): boolean
  override emit(event: string | symbol): boolean {
    // (No rest parameter: `arguments` is passed on as it is, so that an
    // emit allocates nothing of ours.)
    if (event === 'data') {
      // 'data' is when bytes or a message are consumed (flowing, read(),
      // for await, pipe): the chunk has left the readable buffer (or never
      // entered it), so the session credits it back now. (Node calls
      // _read() only while the buffer is below its high-water mark and no
      // _read() is pending, so _read() is not a consumption signal: on
      // Node 22 and later a reader that pauses in 'data' would otherwise
      // never return the last window's credit.)
      const chunk: unknown = arguments[1]
      this.#host.read(this)
      if (this.messages) {
        const d = super.emit('data', chunk)
        return super.emit('message', chunk) || d
      }
      return super.emit('data', chunk)
    }
    return Reflect.apply(super.emit, this, arguments) as boolean
  }

  /**
   * @internal Holds reading (`true`: pauses the stream, and a `resume()` by
   * whoever calls it — a pipe, an HTTP server reading a body — leaves it
   * paused) or lets it go on again (`false`: resumes). The HTTP gateway
   * stops reading pipelined requests with it while its limits are reached.
   */
  holdReading(hold: boolean): void {
    this.#readHold = hold
    if (hold) this.pause()
    else this.resume()
  }

  /** As `Duplex.resume()`, except while reading is held (see holdReading). */
  override resume(): this {
    return this.#readHold ? this : super.resume()
  }

  /** As `Duplex.on()`; like `'data'`, a `'message'` listener starts the flow (unless the stream was paused). */
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener)
    if (event === 'message' && this.messages && this.readableFlowing !== false) this.resume()
    return this
  }

  /** Same as {@link MuxStream.on}. */
  override addListener(event: string | symbol, listener: (...args: any[]) => void): this {
    return this.on(event, listener)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#host.write(this, chunk, null, cb)
    if (this.#drainOwed) this.#afterHostWrite()
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, cb: (err?: Error | null) => void): void {
    this.#host.write(this, null, chunks, cb)
    if (this.#drainOwed) this.#afterHostWrite()
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#host.final(this, cb)
  }

  /** Nothing to do: the session pushes what arrives, and a consumed chunk is seen by its `'data'` (see emit). */
  override _read(): void {}

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#host.destroy(this, err)
    cb(err)
  }
}

// `writableNeedDrain` is true while Node's buffer is over its mark (Node's
// own getter) or while a write the session holds made write() return false
// (the stream then emits 'drain' itself): the writer and pipe() see the
// same wait either way. (An accessor over the Duplex property: defined here,
// as TypeScript does not let a class override a property with an accessor.)
Object.defineProperty(MuxStream.prototype, 'writableNeedDrain', {
  configurable: true,
  enumerable: false,
  get(this: MuxStream): boolean {
    return this.drainOwed || nodeNeedDrain.call(this)
  },
})

/** Typed events of a {@link MuxStream} (besides the `Duplex` ones). */
export interface MuxStream {
  /** `'open'`: the stream is established (opener: OPENED arrived; acceptor: accepted). */
  on(event: 'open', listener: () => void): this
  /** `'message'` (message streams): one whole message. */
  on(event: 'message', listener: (message: Buffer) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  /** `'open'`: the stream is established (opener: OPENED arrived; acceptor: accepted). */
  once(event: 'open', listener: () => void): this
  /** `'message'` (message streams): one whole message. */
  once(event: 'message', listener: (message: Buffer) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}
