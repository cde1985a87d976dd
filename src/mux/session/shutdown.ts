/**
 * How a session ends (PROTOCOL.md 9, 12): GOAWAY both ways and the
 * graceful end once no stream is left; failing with a GOAWAY that says
 * why (or, to a peer that is not synmux or not authenticated, without a
 * word); and the teardown that every path ends in.
 * @packageDocumentation
 */
import { FrameType, GoawayCode, RefuseCode, ResumeRefused, isGracefulGoaway } from '../wire/constants.js'
import { encodeFrame, type GoawayFrame } from '../wire/frames.js'
import { protocolError } from '../wire/errors.js'
import { MuxError } from '../errors.js'
import { SF } from '../stream/flags.js'
import { HelloState, type SessionCore, type ShutdownPart } from './core.js'

/** A transport we ended is destroyed after this long if the peer does not finish it. */
const LINGER_MS = 5000

/** GOAWAY and teardown of a session. @internal */
export class Shutdown implements ShutdownPart {
  readonly #c: SessionCore
  #goawaySent = false
  #goawaySentLast = 0
  #goawayReceived = false
  #goawayRecvLast = 0
  /** GOAWAY went either way and no stream is left: the transport ends after the last flush. */
  #ending = false
  #endCalled = false
  #error: MuxError | undefined
  #closePromise: Promise<void> | null = null
  #closeEmitted = false

  constructor(core: SessionCore) {
    this.#c = core
  }

  get goawaySent(): boolean {
    return this.#goawaySent
  }

  get goawayReceived(): boolean {
    return this.#goawayReceived
  }

  get goawaySentLast(): number {
    return this.#goawaySentLast
  }

  get ending(): boolean {
    return this.#ending
  }

  get error(): MuxError | undefined {
    return this.#error
  }

  closed(): Promise<void> {
    if (this.#closePromise === null) {
      this.#closePromise = this.#closeEmitted ? Promise.resolve() : new Promise((resolve) => this.#c.session.once('close', () => resolve()))
    }
    return this.#closePromise
  }

  closeWith(code: number, reason: string): void {
    const c = this.#c
    if (c.isClosed()) return
    if (!c.attached) {
      // Detached: no transport to say goodbye on.
      this.destroy()
      return
    }
    if (c.role === 'server' && c.helloState === HelloState.UNSENT) {
      // Nothing said yet: nothing to say goodbye with.
      this.destroy()
      return
    }
    if (!this.#goawaySent) {
      const last = c.streams.highestPeerId
      this.#goawaySent = true
      this.#goawaySentLast = last
      c.output.queueControl(encodeFrame({ type: FrameType.GOAWAY, lastStreamId: last, code, reason }))
    }
    c.closing()
    c.timers.clearIdle()
    this.maybeEnd()
  }

  maybeEnd(): void {
    const c = this.#c
    if (!this.#ending && (this.#goawaySent || this.#goawayReceived) && c.streams.map.size === 0 && !c.isClosed()) {
      this.#ending = true
      c.closing()
      c.output.scheduleFlush()
    }
  }

  endTransport(): void {
    if (!this.#ending || this.#endCalled) return
    const c = this.#c
    this.#endCalled = true
    c.dx.end()
    const t = setTimeout(() => c.dx.destroy(), LINGER_MS)
    t.unref?.()
  }

  onGoaway(f: GoawayFrame): void {
    const c = this.#c
    const last = f.lastStreamId
    if (last !== 0 && !c.streams.isOwnId(last)) throw protocolError(`GOAWAY last stream id ${last} has the wrong parity`)
    if (this.#goawayReceived && last > this.#goawayRecvLast) throw protocolError('GOAWAY last stream id increased')
    this.#goawayReceived = true
    this.#goawayRecvLast = last
    if (!isGracefulGoaway(f.code)) {
      this.destroy(new MuxError('SYNMUX_REMOTE_GOAWAY', `the peer closed the session with GOAWAY code ${f.code}${f.reason ? `: ${f.reason}` : ''}`, { wireCode: f.code, reason: f.reason }))
      return
    }
    c.closing()
    c.timers.clearIdle()
    for (const s of [...c.streams.map.values()]) {
      if (s.opener === 'local' && s.id > last && !(s.f & SF.REMOTE_OPENED)) {
        c.streams.detach(s)
        s.destroy(new MuxError('SYNMUX_REFUSED', `stream ${s.id} not processed: the peer is going away`, { wireCode: RefuseCode.GOING_AWAY }))
      }
    }
    c.session.emit('goaway', { code: f.code, lastStreamId: last, reason: f.reason })
    this.maybeEnd()
  }

  fail(err: MuxError): void {
    const c = this.#c
    if (c.isClosed()) return
    const wire = err.wireCode ?? GoawayCode.PROTOCOL_ERROR
    // Not synmux, or not authenticated: close without saying why.
    let goaway = err.code !== 'SYNMUX_BAD_MAGIC' && err.code !== 'SYNMUX_AUTH_FAILED'
    // A server answers a version it does not speak with its own HELLO (then GOAWAY).
    if (err.code === 'SYNMUX_UNSUPPORTED_VERSION' && c.role === 'server' && c.helloState !== HelloState.SENT) c.helloPending()
    if (c.helloState === HelloState.UNSENT) goaway = false
    if (goaway && c.dx.writable) {
      const parts: Buffer[] = []
      if (c.helloState === HelloState.PENDING) parts.push(c.handshake.encodeOwnHello())
      c.helloSent()
      parts.push(encodeFrame({ type: FrameType.GOAWAY, lastStreamId: c.streams.highestPeerId, code: wire, reason: err.message }))
      const out = Buffer.concat(parts)
      c.bytesSent += out.length
      this.#teardown(err, true)
      c.dx.end(out)
      const t = setTimeout(() => c.dx.destroy(), LINGER_MS)
      t.unref?.()
      return
    }
    this.#teardown(err, false)
  }

  destroy(err?: MuxError): void {
    this.#teardown(err, false)
  }

  #teardown(err: MuxError | undefined, keepTransport: boolean): void {
    const c = this.#c
    if (c.isClosed()) return
    c.toClosed()
    this.#error = err
    c.timers.clear()
    c.link.clearTimers()
    c.directory?._forget(c.session, err?.code === 'SYNMUX_SESSION_LOST' && err.wireCode === ResumeRefused.EXPIRED)
    c.replay?.clear()
    c.input.stop()
    c.link.release()
    // Like http2: an error destroys the streams with it; a deliberate
    // destroy() closes them without an 'error' event.
    for (const s of [...c.streams.map.values()]) {
      c.streams.detach(s)
      s.destroy(err)
    }
    c.output.clear()
    if (!keepTransport) {
      if (this.#ending && !c.dx.destroyed) {
        // Graceful: our end() is done or under way; make sure it completes.
        if (!this.#endCalled) {
          this.#endCalled = true
          c.dx.end()
        }
        const t = setTimeout(() => c.dx.destroy(), LINGER_MS)
        t.unref?.()
      } else {
        c.dx.destroy()
      }
    }
    process.nextTick(() => {
      const s = c.session
      if (err && s.listenerCount('error') > 0) s.emit('error', err)
      this.#closeEmitted = true
      s.emit('close', err)
    })
  }
}
