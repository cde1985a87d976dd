/**
 * A session's link to its transport (PROTOCOL.md 13): binding a transport
 * (a LaneSet when the client stripes), losing it — a resumable session
 * detaches, keeps its streams and its replay buffer, and a client
 * reconnects with backoff — resuming on a new one (RESUME HELLO, with
 * AUTH_PSK the verdict after our AUTH, with EARLY_REPLAY the replay right
 * after the HELLO), and the server side of a resume the registry hands
 * over.
 * @packageDocumentation
 */
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import { FrameType, GoawayCode, HelloExtension, HelloKind, ResumeRefused } from '../wire/constants.js'
import { type Frame, frameTypeName } from '../wire/frames.js'
import { type Hello, readU64Ext } from '../wire/hello.js'
import { handshakeError, protocolError } from '../wire/errors.js'
import { MuxError, invalidArgType, invalidState } from '../errors.js'
import { LaneSet } from '../lanes/lane-set.js'
import { LinkState, type LinkPart, type SessionCore } from './core.js'
import { laneSetOptions } from './options.js'
import { type RedirectAddress, decodeRedirect } from '../wire/redirect.js'

/** REDIRECTs a client follows in a row (without a resume between them) before it takes the session for lost. */
const MAX_REDIRECTS = 4

/** RESUME_REFUSED reasons as people read them (PROTOCOL.md 3.5). */
const LOST_REASONS: Record<number, string> = { 1: 'unknown session id', 2: 'session expired', 3: 'replay out of range', 4: 'resumption not supported' }

/** The `SYNMUX_SESSION_LOST` error for a RESUME_REFUSED reason (or a local reason). @internal */
export function sessionLost(reason: number | string, detail?: string): MuxError {
  const text = typeof reason === 'number' ? LOST_REASONS[reason] ?? `reason ${reason}` : reason
  return new MuxError('SYNMUX_SESSION_LOST', `the session could not be resumed: ${text}${detail ? ` (${detail})` : ''}`, typeof reason === 'number' ? { wireCode: reason, reason: text } : { reason: text })
}

/** The link of a session to its transport. @internal */
export class Link implements LinkPart {
  readonly #c: SessionCore
  #earlyFrom = -1
  /** When the transport was lost (the resume timeout counts from there). */
  #detachedAt = 0
  #reconnectTimer: NodeJS.Timeout | null = null
  #reconnectDelay = 0
  /** Client: where the server said the session lives (REDIRECT, PROTOCOL.md 13.10), once it did. */
  #redirectedTo: RedirectAddress | null = null
  /** Client: REDIRECTs followed since the last successful resume. */
  #redirects = 0
  /** Server: a detached session is freed when this fires. */
  #detachTimer: NodeJS.Timeout | null = null
  /** Client: the answer to a RESUME must come before this fires. */
  #attemptTimer: NodeJS.Timeout | null = null
  readonly #onData: (chunk: Buffer | string) => void
  readonly #onDrain: () => void
  readonly #onEnd: () => void
  readonly #onError: (err: Error) => void
  readonly #onClose: () => void

  constructor(core: SessionCore) {
    this.#c = core
    this.#onData = (chunk) => core.input.onData(chunk)
    this.#onDrain = () => core.output.drained()
    this.#onEnd = () => core.input.onEnd()
    this.#onError = (err) => this.lost(new MuxError('SYNMUX_CONNECTION_LOST', `transport error: ${err.message}`, { cause: err }))
    this.#onClose = () => {
      if (!core.isClosed()) {
        if (core.shutdown.ending) core.shutdown.destroy()
        else this.lost(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport closed'))
      }
    }
  }

  /** Client: where the server said this session lives (REDIRECT), `null` until one did. */
  get redirect(): RedirectAddress | null {
    return this.#redirectedTo
  }

  /** Client: a server said the session lives at `to`; `'redirect'` `(to)`. */
  #redirected(to: RedirectAddress): void {
    const same = this.#redirectedTo !== null && this.#redirectedTo.host === to.host && this.#redirectedTo.port === to.port
    this.#redirectedTo = to
    if (!same && this.#c.session.listenerCount('redirect') > 0) this.#c.session.emit('redirect', to)
  }

  get earlyFrom(): number {
    return this.#earlyFrom
  }

  /** A client's transport, wrapped in a LaneSet when the session stripes. */
  wrap(d: Duplex): Duplex {
    const o = this.#c.opts
    if (o.role !== 'client' || o.lanes <= 1 || o.resumption === null) return d
    return new LaneSet(d, laneSetOptions(o))
  }

  bind(d: Duplex): void {
    const c = this.#c
    c.dx = d
    if (d instanceof LaneSet) {
      d._hooks(
        (err) => c.shutdown.fail(err),
        (info, err) => {
          // A JOIN answered with a REDIRECT: this session's next lanes (and resumes) go there.
          const to = (err as { redirect?: RedirectAddress | null } | undefined)?.redirect
          if (to) this.#redirected(to)
          if (c.session.listenerCount('lane') > 0) c.session.emit('lane', info, err)
        },
      )
    }
    const sock = d as Duplex & { setNoDelay?: (v: boolean) => unknown }
    if (c.opts.noDelay && typeof sock.setNoDelay === 'function') sock.setNoDelay(true)
    d.on('data', this.#onData)
    d.on('drain', this.#onDrain)
    d.on('end', this.#onEnd)
    d.on('error', this.#onError)
    d.on('close', this.#onClose)
  }

  release(): void {
    const d = this.#c.dx
    d.removeListener('data', this.#onData)
    d.removeListener('drain', this.#onDrain)
    d.removeListener('end', this.#onEnd)
    d.removeListener('close', this.#onClose)
    // Keep an 'error' listener: a late transport error must not crash the process.
    d.removeListener('error', this.#onError)
    d.on('error', () => {})
  }

  lost(err: MuxError): void {
    const c = this.#c
    if (c.isClosed()) return
    // A session is resumable only once both sides are authenticated.
    if (c.resumable && !c.shutdown.ending && c.attached && !c.authPending && (!c.authHold || c.linkState === LinkState.RESUMING)) {
      this.#detach(err, true)
      return
    }
    if (c.resumable && !c.attached) return
    c.shutdown.destroy(err)
  }

  /** Resumable session: drops the transport as if it had died. Returns false if not resumable or not attached. */
  reconnect(reason: string): boolean {
    const c = this.#c
    if (!c.resumable || !c.attached || c.isClosed()) return false
    this.lost(new MuxError('SYNMUX_CONNECTION_LOST', reason))
    return true
  }

  /** Forgets the transport and everything that belonged to it (link state); streams are kept. */
  #detach(err: MuxError, reconnect: boolean): void {
    const c = this.#c
    // A failed resume attempt keeps the clock and the backoff of the outage.
    const failedAttempt = c.resumePending
    this.release()
    c.dx.destroy()
    c.linkDown()
    this.#earlyFrom = -1
    if (!failedAttempt) this.#detachedAt = performance.now()
    this.#clearAttemptTimer()
    c.timers.dropLink()
    c.input.dropLink()
    c.output.dropLink()
    if (c.session.listenerCount('detached') > 0) c.session.emit('detached', err)
    if (!reconnect) return
    if (c.role === 'client') {
      if (!failedAttempt) this.#reconnectDelay = 0
      this.#scheduleReconnect()
    } else {
      const t = c.opts.resumption!.detachTimeout
      if (this.#detachTimer) clearTimeout(this.#detachTimer)
      this.#detachTimer = setTimeout(() => {
        this.#detachTimer = null
        if (!c.attached) c.shutdown.destroy(sessionLost(ResumeRefused.EXPIRED, `detached for more than ${t} ms`))
      }, t)
      this.#detachTimer.unref?.()
    }
  }

  #scheduleReconnect(): void {
    const c = this.#c
    const r = c.opts.resumption!
    if (c.isClosed() || c.attached) return
    if (r.connect === null) {
      // The application resumes by hand; still give up after resumeTimeout.
      if (this.#reconnectTimer === null) {
        this.#reconnectTimer = setTimeout(() => {
          this.#reconnectTimer = null
          if (!c.attached) c.shutdown.destroy(sessionLost('no transport', `not resumed within ${r.resumeTimeout} ms`))
        }, r.resumeTimeout)
        this.#reconnectTimer.unref?.()
      }
      return
    }
    const left = r.resumeTimeout - (performance.now() - this.#detachedAt)
    if (left <= 0) {
      c.shutdown.destroy(sessionLost('reconnect failed', `no new transport within ${r.resumeTimeout} ms`))
      return
    }
    const delay = Math.min(this.#reconnectDelay, left)
    this.#reconnectDelay = Math.min(Math.max(r.minDelay, this.#reconnectDelay * 2), r.maxDelay)
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null
      if (c.isClosed() || c.attached) return
      let res: Duplex | Promise<Duplex>
      try {
        res = r.connect!()
      } catch {
        this.#scheduleReconnect()
        return
      }
      Promise.resolve(res).then(
        (d) => {
          if (c.isClosed() || c.attached) {
            d.destroy()
            return
          }
          this.resume(d)
        },
        () => this.#scheduleReconnect(),
      )
    }, delay)
    // Not unref'd: streams are waiting for this reconnect (the transport
    // that kept the process alive is gone).
  }

  resume(duplex: Duplex): void {
    const c = this.#c
    if (c.role !== 'client' || !c.resumable) throw invalidState('resume() is for a resumable client session')
    if (c.isClosed()) throw invalidState('the session is closed')
    if (typeof duplex !== 'object' || duplex === null || typeof duplex.write !== 'function') throw invalidArgType('duplex', 'a Duplex stream', duplex)
    if (c.attached) this.#detach(new MuxError('SYNMUX_CONNECTION_LOST', 'replaced by resume()'), false)
    if (this.#reconnectTimer) {
      clearTimeout(this.#reconnectTimer)
      this.#reconnectTimer = null
    }
    const bound = this.wrap(duplex)
    this.bind(bound)
    c.linkResuming()
    c.input.expectHello()
    c.handshake.restart()
    c.output.clearDrainWait()
    // EARLY_REPLAY: everything not acknowledged goes right after the HELLO,
    // in the same flight (0-RTT on a secure channel); the server drops what
    // it already has (PROTOCOL.md 13.9).
    this.#earlyFrom = c.earlyReplay && !(bound instanceof LaneSet) ? c.replay!.start : -1
    if (this.#earlyFrom >= 0) c.output.replayFrom(this.#earlyFrom)
    const t = c.opts.handshakeTimeout
    if (t > 0) {
      this.#attemptTimer = setTimeout(() => {
        this.#attemptTimer = null
        if (c.resumePending && c.dx === bound) this.lost(new MuxError('SYNMUX_HANDSHAKE_TIMEOUT', `no answer to RESUME within ${t} ms`))
      }, t)
      this.#attemptTimer.unref?.()
    }
    if (duplex.destroyed) {
      process.nextTick(() => {
        if (c.dx === bound) this.lost(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport is already destroyed'))
      })
      return
    }
    c.output.scheduleFlush()
  }

  onResumeAnswer(h: Hello, raw: Buffer): void {
    const c = this.#c
    c.linkUp()
    if (h.kind === HelloKind.NEW) {
      this.#clearAttemptTimer()
      const why = h.extensions.get(HelloExtension.RESUME_REFUSED)
      const to = why !== undefined && why.length === 1 && why[0] === ResumeRefused.ELSEWHERE ? decodeRedirect(h.extensions.get(HelloExtension.REDIRECT)) : null
      // The session lives on another server: resume there at once (a few hops at most, PROTOCOL.md 13.10).
      if (to !== null && this.#redirects < MAX_REDIRECTS) {
        this.#redirects++
        this.#redirected(to)
        c.linkResuming()
        this.#reconnectDelay = 0
        this.lost(new MuxError('SYNMUX_CONNECTION_LOST', `the session lives at ${to.host}:${to.port} (REDIRECT)`))
        return
      }
      c.shutdown.destroy(sessionLost(why !== undefined && why.length === 1 ? why[0]! : ResumeRefused.NOT_SUPPORTED))
      return
    }
    if (h.kind !== HelloKind.RESUME) throw handshakeError(`unexpected HELLO kind ${h.kind} in answer to RESUME`)
    if (!h.sessionId.equals(c.id!)) throw handshakeError('RESUMED names another session')
    c.handshake.authenticateServer(h, raw)
    c.timers.sampleRtt(performance.now() - c.handshake.sentAt)
    if (c.opts.auth !== null) {
      // The server says where to replay from only after our AUTH: its first frame (13.4).
      if (h.extensions.has(HelloExtension.RECEIVED)) throw handshakeError('RESUMED carries RECEIVED before the client proved its key')
      c.linkVerdict()
      c.output.scheduleFlush()
      return
    }
    this.#clearAttemptTimer()
    const r = readU64Ext(h, HelloExtension.RECEIVED)
    if (r === null) throw handshakeError('RESUMED without RECEIVED')
    if (this.#earlyFrom >= 0) {
      // Our replay already left after the HELLO, from earlyFrom; the server dropped what it had (13.9).
      const from = this.#earlyFrom
      this.#earlyFrom = -1
      if (r < from || r > c.sessionBytesSent) {
        const e = sessionLost(ResumeRefused.OUT_OF_RANGE, `the server received ${r}, our replay started at ${from} and we sent ${c.sessionBytesSent}`)
        c.shutdown.fail(new MuxError('SYNMUX_SESSION_LOST', e.message, { wireCode: GoawayCode.RESUME_OUT_OF_RANGE, reason: 'replay out of range' }))
        return
      }
      this.#attached(r, 0, false)
      return
    }
    this.#resumeFrom(r)
  }

  onResumeVerdict(frame: Frame): void {
    const c = this.#c
    c.linkUp()
    this.#clearAttemptTimer()
    c.framesReceived++
    if (frame.type === FrameType.ACK) return this.#resumeFrom(frame.received)
    if (frame.type === FrameType.GOAWAY) {
      const reason = frame.code === GoawayCode.RESUME_UNKNOWN_ID ? ResumeRefused.UNKNOWN_ID : frame.code === GoawayCode.RESUME_EXPIRED ? ResumeRefused.EXPIRED : frame.code === GoawayCode.RESUME_OUT_OF_RANGE ? ResumeRefused.OUT_OF_RANGE : null
      c.shutdown.destroy(reason !== null ? sessionLost(reason) : sessionLost(`refused (GOAWAY ${frame.code}${frame.reason ? `: ${frame.reason}` : ''})`))
      return
    }
    throw protocolError(`${frameTypeName(frame.type)} frame before the answer to RESUME (ACK or GOAWAY)`)
  }

  /** Client: the server received `r` of our session bytes; replay from there. */
  #resumeFrom(r: number): void {
    const c = this.#c
    if (r < c.replay!.start || r > c.sessionBytesSent) {
      const e = sessionLost(ResumeRefused.OUT_OF_RANGE, `the server received ${r}, replay holds ${c.replay!.start}..${c.sessionBytesSent}`)
      c.shutdown.fail(new MuxError('SYNMUX_SESSION_LOST', e.message, { wireCode: GoawayCode.RESUME_OUT_OF_RANGE, reason: 'replay out of range' }))
      return
    }
    this.#attached(r, 0)
  }

  #clearAttemptTimer(): void {
    if (this.#attemptTimer) {
      clearTimeout(this.#attemptTimer)
      this.#attemptTimer = null
    }
  }

  /** Both sides: a new transport carries the session; replay from `peerReceived` (unless it already went: `replay` false), drop `skip` duplicate bytes. */
  #attached(peerReceived: number, skip: number, replay = true): void {
    const c = this.#c
    if (peerReceived > c.peerAcked) c.peerAcked = peerReceived
    c.replay!.ack(peerReceived)
    if (replay) c.output.replayFrom(peerReceived)
    c.input.skip(skip)
    c.resumes++
    this.#redirects = 0
    if (this.#detachTimer) {
      clearTimeout(this.#detachTimer)
      this.#detachTimer = null
    }
    c.timers.sendPing(null, null)
    c.timers.armKeepalive()
    c.output.scheduleFlush()
    c.session.emit('resumed')
  }

  resumeOn(d: Duplex, peerRaw: Buffer, ownHello: Buffer, leftover: Buffer, received: number, ack: boolean, skip: number): void {
    const c = this.#c
    if (c.attached) this.#detach(new MuxError('SYNMUX_CONNECTION_LOST', 'replaced by a resumed transport'), false)
    this.bind(d)
    c.bytesSent += ownHello.length
    c.linkUp()
    c.input.helloRead()
    c.handshake.adopt(peerRaw, ownHello)
    if (ack) c.output.unshiftAck()
    this.#attached(received, skip)
    if (leftover.length > 0) c.input.onData(leftover)
  }

  clearTimers(): void {
    for (const t of [this.#reconnectTimer, this.#detachTimer, this.#attemptTimer]) if (t) clearTimeout(t)
    this.#reconnectTimer = this.#detachTimer = this.#attemptTimer = null
  }
}
