/**
 * A session's clocks (PROTOCOL.md 8): the handshake deadline, keepalive
 * PINGs and the dead-peer timeout, the idle timeout, the accept delay of
 * peer-opened streams, and PINGs with the smoothed RTT they measure.
 * @packageDocumentation
 */
import { performance } from 'node:perf_hooks'
import { GoawayCode } from '../wire/constants.js'
import type { PongFrame } from '../wire/frames.js'
import { pingFrame } from '../wire/writer.js'
import { MuxError } from '../errors.js'
import type { MuxStream } from '../stream/stream.js'
import { Life, type SessionCore, type TimersPart } from './core.js'
import { Queue } from './queue.js'

/** A PING waiting for its PONG. */
interface Ping {
  at: number
  resolve: ((rtt: number) => void) | null
  reject: ((err: Error) => void) | null
}

/** Unanswered PINGs kept at most (the oldest is given up). */
const MAX_PINGS = 64

/** The timers of a session. @internal */
export class Timers implements TimersPart {
  readonly #c: SessionCore
  #srtt = 0
  #pingSeq = 0
  readonly #pings = new Map<number, Ping>()
  /** Something arrived since the keepalive timer was armed. */
  #rx = false
  #ka: NodeJS.Timeout | null = null
  #handshake: NodeJS.Timeout | null = null
  #idle: NodeJS.Timeout | null = null
  #accept: NodeJS.Timeout | null = null
  /** Peer-opened streams in accept-deadline order (answered ones leave lazily). */
  readonly #acceptQueue = new Queue<MuxStream>()

  constructor(core: SessionCore) {
    this.#c = core
  }

  get srtt(): number {
    return this.#srtt
  }

  heard(): void {
    this.#rx = true
  }

  /** Starts the handshake deadline: the peer's HELLO (and, server with a key, its AUTH) must come within `handshakeTimeout`. */
  armHandshake(): void {
    const c = this.#c
    const t = c.opts.handshakeTimeout
    if (t <= 0) return
    this.#handshake = setTimeout(() => {
      this.#handshake = null
      if (c.peer === null || c.authPending) {
        const what = c.peer === null ? 'HELLO' : 'AUTH'
        c.shutdown.destroy(new MuxError('SYNMUX_HANDSHAKE_TIMEOUT', `no ${what} from the peer within ${t} ms`))
      }
    }, t)
    this.#handshake.unref?.()
  }

  clearHandshake(): void {
    if (this.#handshake) {
      clearTimeout(this.#handshake)
      this.#handshake = null
    }
  }

  armKeepalive(): void {
    const c = this.#c
    if (c.opts.keepAliveInterval <= 0 || c.isClosed()) return
    this.#rx = false
    this.#ka = setTimeout(() => this.#keepaliveFire(), c.opts.keepAliveInterval)
    this.#ka.unref?.()
  }

  #keepaliveFire(): void {
    const c = this.#c
    this.#ka = null
    if (c.isClosed()) return
    if (this.#rx) {
      this.armKeepalive()
      return
    }
    this.sendPing(null, null)
    this.#ka = setTimeout(() => {
      // Decide after this turn's poll phase: if our own event loop was
      // blocked, the peer's answer may be waiting in the socket right now.
      setImmediate(() => {
        this.#ka = null
        if (c.isClosed()) return
        if (this.#rx) this.armKeepalive()
        else c.link.lost(new MuxError('SYNMUX_PEER_TIMEOUT', `the peer did not answer a keepalive PING within ${c.opts.keepAliveTimeout} ms`))
      })
    }, c.opts.keepAliveTimeout)
    this.#ka.unref?.()
  }

  dropLink(): void {
    if (this.#ka) clearTimeout(this.#ka)
    this.#ka = null
    if (!this.#c.authPending) this.clearHandshake()
    this.#rejectPings(new MuxError('SYNMUX_CONNECTION_LOST', 'the transport was lost before the PONG'))
  }

  armIdle(): void {
    const c = this.#c
    if (c.opts.idleTimeout <= 0 || c.life !== Life.OPEN || this.#idle) return
    this.#idle = setTimeout(() => {
      this.#idle = null
      if (c.life === Life.OPEN && c.streams.map.size === 0) c.shutdown.closeWith(GoawayCode.IDLE_TIMEOUT, 'idle')
    }, c.opts.idleTimeout)
    this.#idle.unref?.()
  }

  clearIdle(): void {
    if (this.#idle) {
      clearTimeout(this.#idle)
      this.#idle = null
    }
  }

  queueAccept(s: MuxStream, now: number): void {
    const c = this.#c
    s.acceptDeadline = now + c.opts.acceptDelay
    this.#acceptQueue.push(s)
    // Answered streams leave the queue lazily; keep it proportional to the pending ones.
    if (this.#acceptQueue.length > 2 * c.streams.pendingCount + 64) this.#acceptQueue.retain((x) => x.pending)
    this.#armAccept()
  }

  #armAccept(): void {
    if (this.#accept !== null) return
    const q = this.#acceptQueue
    let head = q.peek()
    while (head !== undefined && !head.pending) {
      q.shift()
      head = q.peek()
    }
    if (head === undefined) return
    const delay = Math.max(0, Math.ceil(head.acceptDeadline - performance.now()))
    this.#accept = setTimeout(() => {
      this.#accept = null
      if (this.#c.isClosed()) return
      const now = performance.now() + 1
      let s = q.peek()
      while (s !== undefined && (s.acceptDeadline <= now || !s.pending)) {
        q.shift()
        if (s.pending) this.#c.streams.accept(s)
        s = q.peek()
      }
      this.#armAccept()
    }, delay)
    this.#accept.unref?.()
  }

  sendPing(resolve: ((rtt: number) => void) | null, reject: ((err: Error) => void) | null): void {
    const id = ++this.#pingSeq
    this.#pings.set(id, { at: performance.now(), resolve, reject })
    if (this.#pings.size > MAX_PINGS) {
      // Forget the oldest unanswered PINGs (bounded state).
      const oldest = this.#pings.keys().next().value as number
      const p = this.#pings.get(oldest)
      this.#pings.delete(oldest)
      p?.reject?.(new MuxError('SYNMUX_PEER_TIMEOUT', 'too many unanswered PINGs'))
    }
    this.#c.output.queueControl(pingFrame(id))
  }

  onPong(f: PongFrame): void {
    const hi = f.opaque.readUInt32BE(0)
    const id = hi * 0x1_0000_0000 + f.opaque.readUInt32BE(4)
    const p = this.#pings.get(id)
    if (p === undefined) return
    this.#pings.delete(id)
    const sample = performance.now() - p.at
    this.sampleRtt(sample)
    p.resolve?.(sample)
  }

  sampleRtt(sample: number): void {
    this.#srtt = this.#srtt === 0 ? sample : this.#srtt * 0.875 + sample * 0.125
    const s = this.#c.session
    if (s.listenerCount('rtt') > 0) s.emit('rtt', sample)
  }

  #rejectPings(err: MuxError): void {
    for (const p of this.#pings.values()) p.reject?.(err)
    this.#pings.clear()
  }

  clear(): void {
    for (const t of [this.#ka, this.#handshake, this.#idle, this.#accept]) if (t) clearTimeout(t)
    this.#ka = this.#handshake = this.#idle = this.#accept = null
    this.#acceptQueue.clear()
    this.#rejectPings(new MuxError('SYNMUX_SESSION_CLOSED', 'the session closed before the PONG'))
  }
}
