/**
 * The HTTP gateway's streams: each one's timers (a request head must come
 * in time; a stream idle between requests is ended) and the limits on the
 * requests in progress — per stream (the pipelining depth) and per session
 * (all its gateway streams together). At a limit the gateway stops reading
 * (flow control then stops the client, PROTOCOL.md 19.2); a stream found
 * with far more requests at once than the limit is reset.
 * @packageDocumentation
 */
import type { Logger } from '../common/log.js'
import type { MuxStream } from '../mux/stream/stream.js'
import { RefuseCode } from '../mux/wire/constants.js'
import { refuseOr } from '../net/onward.js'

/** One gateway stream. @internal */
export interface StreamState {
  timer: NodeJS.Timeout | null
  inFlight: number
  /** Called (and cleared) when inFlight drops to 0. */
  idle: (() => void)[]
  /** Requests of this stream counted in its session's `active`. */
  counted: number
  /** Reading is stopped by the pipelining limits. */
  gated: boolean
  /** Upgraded (raw from now on): no longer limited. */
  upgraded: boolean
  session: SessionRequests
}

/** The requests in progress on the gateway streams of one session. */
interface SessionRequests {
  active: number
  streams: Map<MuxStream, StreamState>
}

/** The limits and timers of a {@link GatewayStreams}. @internal */
export interface GatewayStreamLimits {
  maxPipelined: number
  maxPerSession: number
  headersTimeout: number
  keepAliveTimeout: number
  log: Logger
}

/** The gateway's streams, their timers and their request limits. @internal */
export class GatewayStreams {
  readonly #o: GatewayStreamLimits
  readonly #states = new WeakMap<object, StreamState>()
  readonly #sessions = new WeakMap<object, SessionRequests>()

  constructor(limits: GatewayStreamLimits) {
    this.#o = limits
  }

  /** Requests in progress on the gateway streams of `stream`'s session. */
  active(stream: MuxStream): number {
    return this.#sessions.get(stream.session)?.active ?? 0
  }

  /**
   * Takes `stream` in (its request head must come within the headers
   * timeout), or returns false when its session is at its limit of
   * requests in progress (the caller refuses it).
   */
  admit(stream: MuxStream): boolean {
    let session = this.#sessions.get(stream.session)
    if (session === undefined) this.#sessions.set(stream.session, (session = { active: 0, streams: new Map() }))
    if (session.active >= this.#o.maxPerSession) return false
    stream.on('error', () => {})
    const state: StreamState = { timer: null, inFlight: 0, idle: [], counted: 0, gated: false, upgraded: false, session }
    this.#states.set(stream, state)
    session.streams.set(stream, state)
    this.#arm(stream, state, this.#o.headersTimeout, 'no request head')
    stream.once('close', () => {
      this.#disarm(state)
      session.streams.delete(stream)
      this.#uncount(stream, state, state.counted)
    })
    return true
  }

  /** A request (or upgrade) started on `socket`: no head timeout, no idle timeout while it runs; counted against the limits. */
  begin(socket: object): StreamState | undefined {
    const state = this.#states.get(socket)
    if (state) {
      this.#disarm(state)
      state.inFlight++
      const stream = socket as MuxStream
      if (!stream.destroyed) {
        state.counted++
        state.session.active++
        if (state.counted > 4 * this.#o.maxPipelined) {
          // Far more requests at once than the gateway reads: bounded by a reset, not by parsing on.
          this.#o.log.info(`gateway: stream ${stream.id}: more than ${4 * this.#o.maxPipelined} pipelined requests at once, reset`)
          stream.destroy()
        } else if (state.session.active === this.#o.maxPerSession) this.#regateAll(state.session)
        else this.#regate(stream, state)
      }
    }
    return state
  }

  /** A request of `stream` finished: reading may go on; with none left, the idle timer runs. */
  end(stream: MuxStream, state: StreamState | undefined): void {
    if (!state) return
    state.inFlight--
    this.#uncount(stream, state, 1)
    if (state.inFlight === 0) for (const f of state.idle.splice(0)) f()
    if (state.inFlight === 0 && !stream.destroyed && !stream.writableEnded) this.#arm(stream, state, this.#o.keepAliveTimeout, 'idle')
  }

  /** Resolves once every request of `stream` in progress has finished. */
  async idle(stream: MuxStream): Promise<void> {
    const state = this.#states.get(stream)
    if (state && state.inFlight > 0) await new Promise<void>((r) => state.idle.push(r))
  }

  /** `stream` was upgraded: a raw relay from now on, not a request in progress any more. */
  upgraded(stream: MuxStream, state: StreamState | undefined): void {
    if (!state) return
    state.upgraded = true
    this.#uncount(stream, state, state.counted)
  }

  /** Reads and discards what is left of `stream` (it is being answered and closed): the limits no longer apply. */
  discard(stream: MuxStream): void {
    const state = this.#states.get(stream)
    if (state) state.gated = false
    stream.holdReading(false)
  }

  #arm(stream: MuxStream, state: StreamState, ms: number, why: string): void {
    this.#disarm(state)
    if (ms <= 0) return
    state.timer = setTimeout(() => {
      this.#o.log.debug(`gateway: stream ${stream.id}: ${why} in ${ms} ms, closing`)
      refuseOr(stream, RefuseCode.TIMEOUT, why, () => stream.end())
    }, ms)
    state.timer.unref?.()
  }

  #disarm(state: StreamState): void {
    if (state.timer) clearTimeout(state.timer)
    state.timer = null
  }

  /** `n` requests of `stream` are no longer in progress (or the stream is gone): reading may go on. */
  #uncount(stream: MuxStream, state: StreamState, n: number): void {
    n = Math.min(n, state.counted)
    if (n === 0) return
    const session = state.session
    const wasFull = session.active >= this.#o.maxPerSession
    state.counted -= n
    session.active -= n
    if (wasFull && session.active < this.#o.maxPerSession) this.#regateAll(session)
    else this.#regate(stream, state)
  }

  #regateAll(session: SessionRequests): void {
    for (const [stream, state] of session.streams) this.#regate(stream, state)
  }

  /** Stops or restarts reading `stream` as the limits say (PROTOCOL.md 19.2: flow control then pushes back). */
  #regate(stream: MuxStream, state: StreamState): void {
    const stop = !state.upgraded && (state.counted >= this.#o.maxPipelined || state.session.active >= this.#o.maxPerSession)
    if (stop === state.gated || stream.destroyed) return
    state.gated = stop
    // Held, not just paused: the HTTP server resumes its socket whenever a
    // request body is read or a response finishes, and that must not let
    // the next requests in.
    stream.holdReading(stop)
  }
}
