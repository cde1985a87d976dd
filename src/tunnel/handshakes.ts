/**
 * The tunnel server's guard over connections that have not authenticated
 * yet. Every accepted TCP connection (before TLS, before a byte is read)
 * goes through {@link HandshakeGuard.admit}:
 *
 * - a source address over its failed-handshake limit, over
 *   `maxPerSource` unauthenticated connections, or a server over `max`
 *   unauthenticated connections in all, is closed at once, unread;
 * - an admitted connection has `timeout` ms (default 10 s) to prove the key
 *   — TLS handshake, HELLO and AUTH together — or it is closed and counted
 *   as a failed handshake;
 * - every failure before authentication (TLS error, not synmux, wrong key,
 *   no HELLO or no AUTH in time, a HELLO and then nothing) counts once
 *   against the source's limit ({@link FailureLimiter}).
 *
 * A refused or failed connection learns nothing: it is closed without a
 * word (see README, "What a refused client sees").
 * @packageDocumentation
 */
import type net from 'node:net'
import type { FailureLimiter } from './ratelimit.js'
import type { Logger } from '../common/log.js'

/** Limits of a {@link HandshakeGuard}. */
export interface HandshakeGuardOptions {
  /** Failed handshakes per source (shared with whoever else reads it). */
  limiter: FailureLimiter
  /** From accept to authenticated, in ms. */
  timeout: number
  /** Unauthenticated connections at once, in all. */
  max: number
  /** Unauthenticated connections at once, per source. */
  maxPerSource: number
  /** The source a peer address counts as (`sourceOf`: an IPv6 address counts as its /64). */
  sourceOf: (address: string | undefined) => string
  logger: Logger
  /** Called for each failure counted, with its reason. */
  onFailure?: (why: string) => void
  /** Called for each connection refused unread. */
  onRefused?: () => void
  /**
   * The other processes of the same server (`synmux server --workers`):
   * the unauthenticated connections they hold count against the caps here
   * too, and this guard tells them of its own.
   */
  peers?: AdmissionPeers
}

/** What a {@link HandshakeGuard} shares with the guards of the server's other processes. */
export interface AdmissionPeers {
  /** Unauthenticated connections the other processes hold now: in all, and from `source`. */
  held(source: string): { total: number; source: number }
  /** This process holds one more (`+1`) or one fewer (`-1`) unauthenticated connection from `source`. */
  changed(source: string, delta: 1 | -1): void
}

type Outcome = 'pending' | 'authenticated' | 'failed'

interface Pending {
  /** What the limits count it as ({@link HandshakeGuardOptions.sourceOf}). */
  source: string
  /** The peer's address, for the log. */
  address: string
  raw: net.Socket
  outcome: Outcome
  /** Still counted as unauthenticated (released on authentication, failure or close). */
  counted: boolean
  timer: NodeJS.Timeout | null
  /** When the handshake deadline comes (ms, `Date.now()`); Infinity without one. */
  deadline: number
}

/**
 * A connection still unauthenticated that closes this close to its
 * deadline was closed by it (the secure channel keeps a timer of the same
 * length, which may fire first): a failure like any other timeout.
 */
const DEADLINE_SLACK_MS = 100

/** Log lines about refused connections: the first per source, then at most one per interval with the count. */
const REFUSAL_LOG_INTERVAL = 10_000

/** See the module comment. */
export class HandshakeGuard {
  readonly #o: HandshakeGuardOptions
  /** Each connection by the socket objects that stand for it (the TCP socket, then its TLS socket). */
  readonly #by = new WeakMap<object, Pending>()
  /** Pending connections by `address|port`, to find a TLS socket's record. */
  readonly #byPeer = new Map<string, Pending>()
  readonly #perSource = new Map<string, number>()
  #total = 0
  readonly #refusalLog = new Map<string, { at: number; suppressed: number }>()

  constructor(options: HandshakeGuardOptions) {
    this.#o = options
  }

  /** Unauthenticated connections open now. */
  get unauthenticated(): number {
    return this.#total
  }

  /** Takes a freshly accepted TCP connection: closes it at once (returns false) or starts its clock. */
  admit(raw: net.Socket): boolean {
    const o = this.#o
    const address = raw.remoteAddress ?? '?'
    const source = o.sourceOf(raw.remoteAddress)
    let refuse: string | null = null
    const others = o.peers?.held(source)
    if (!o.limiter.allowed(source)) refuse = 'too many failed handshakes'
    else if ((this.#perSource.get(source) ?? 0) + (others?.source ?? 0) >= o.maxPerSource) refuse = `${o.maxPerSource} unauthenticated connections from it already`
    else if (this.#total + (others?.total ?? 0) >= o.max) refuse = `${o.max} unauthenticated connections in all already`
    if (refuse !== null) {
      this.#refused(source, refuse)
      raw.on('error', () => {})
      raw.destroy()
      return false
    }
    const p: Pending = { source, address, raw, outcome: 'pending', counted: true, timer: null, deadline: o.timeout > 0 ? Date.now() + o.timeout : Infinity }
    this.#total++
    this.#perSource.set(source, (this.#perSource.get(source) ?? 0) + 1)
    o.peers?.changed(source, 1)
    this.#by.set(raw, p)
    const peer = `${source}|${raw.remotePort}`
    this.#byPeer.set(peer, p)
    if (o.timeout > 0) {
      p.timer = setTimeout(() => {
        p.timer = null
        if (p.outcome === 'failed') {
          // A failed connection drained until now: closed at the deadline.
          this.#release(p)
          p.raw.destroy()
          return
        }
        this.#fail(p, `no authenticated handshake within ${o.timeout} ms`)
      }, o.timeout)
      p.timer.unref?.()
    }
    raw.once('close', () => {
      if (this.#byPeer.get(peer) === p) this.#byPeer.delete(peer)
      if (p.outcome === 'pending' && Date.now() >= p.deadline - DEADLINE_SLACK_MS) this.#fail(p, `no authenticated handshake within ${o.timeout} ms`)
      this.#release(p)
    })
    return true
  }

  /**
   * `transport` (the TCP socket, its TLS socket, its secure channel) now
   * carries the handshake: remembered, so that later reports find it after
   * it closed. `raw`: the TCP socket it runs over, when known.
   */
  link(transport: object, raw?: object): void {
    const p = raw !== undefined ? this.#by.get(raw) : undefined
    if (p !== undefined) this.#by.set(transport, p)
    else this.#find(transport)
  }

  /** `transport` (the TCP socket or its TLS socket) proved the key. */
  authenticated(transport: object): void {
    const p = this.#find(transport)
    if (p === undefined || p.outcome !== 'pending') return
    p.outcome = 'authenticated'
    this.#release(p)
  }

  /**
   * `transport` failed before proving the key: counted once per
   * connection (a later report of the same connection is ignored), and
   * the connection is closed — or, with `drain`, left to whoever reads and
   * discards its bytes until the handshake deadline closes it (it stays
   * counted against the caps until it is closed). `address` is used when
   * the transport is not known (already gone).
   */
  failed(transport: object, address: string | undefined, why: string, drain = false): void {
    const p = this.#find(transport)
    if (p === undefined) return this.#count(this.#o.sourceOf(address), address ?? '?', why)
    this.#fail(p, why, drain)
  }

  #find(transport: object): Pending | undefined {
    let p = this.#by.get(transport)
    if (p === undefined) {
      // A TLS socket: its TCP connection's record, found by the peer address while it is open.
      const s = transport as { remoteAddress?: string; remotePort?: number }
      if (s.remoteAddress !== undefined && s.remotePort !== undefined) p = this.#byPeer.get(`${s.remoteAddress}|${s.remotePort}`)
      if (p !== undefined) this.#by.set(transport, p)
    }
    return p
  }

  #fail(p: Pending, why: string, drain = false): void {
    if (p.outcome !== 'pending') return
    p.outcome = 'failed'
    this.#count(p.source, p.address, why)
    if (drain && p.timer !== null && !p.raw.destroyed) return
    this.#release(p)
    p.raw.destroy()
  }

  #count(source: string, address: string, why: string): void {
    const was = this.#o.limiter.allowed(source)
    this.#o.limiter.fail(source)
    this.#o.onFailure?.(why)
    this.#o.logger.warn(`handshake from ${address} failed: ${why}`)
    if (was && !this.#o.limiter.allowed(source)) this.#o.logger.warn(`${source}: too many failed handshakes; its connections are closed unread until the window passes`)
  }

  #release(p: Pending): void {
    if (p.timer !== null) {
      clearTimeout(p.timer)
      p.timer = null
    }
    if (!p.counted) return
    p.counted = false
    this.#o.peers?.changed(p.source, -1)
    this.#total--
    const n = (this.#perSource.get(p.source) ?? 1) - 1
    if (n <= 0) this.#perSource.delete(p.source)
    else this.#perSource.set(p.source, n)
  }

  #refused(source: string, why: string): void {
    this.#o.onRefused?.()
    const now = Date.now()
    const e = this.#refusalLog.get(source)
    if (e !== undefined && now - e.at < REFUSAL_LOG_INTERVAL) {
      e.suppressed++
      return
    }
    if (this.#refusalLog.size >= 10_000) this.#refusalLog.clear()
    this.#refusalLog.set(source, { at: now, suppressed: 0 })
    const more = e !== undefined && e.suppressed > 0 ? ` (and ${e.suppressed} more since the last line)` : ''
    this.#o.logger.warn(`refusing ${source}: ${why}${more}`)
  }
}
