/**
 * Routing of one server process: the {@link ServerRouting} a worker of
 * `synmux server --workers N`, or a server with `--instance-id`, gives its
 * {@link TunnelServer}. Decides from a session id (in a RESUME or JOIN
 * HELLO) where the session lives:
 *
 * - another instance (`--instance-id`): answered with a REDIRECT to the
 *   address that instance advertises (PROTOCOL.md 13.10);
 * - another worker of this instance: the connection is handed to it
 *   (`handoff`), with every byte read so far, and that worker processes it
 *   as if it had accepted it (a secure channel's first flight included:
 *   it is judged by the replay guard only there);
 * - here: looked up here (an unknown id is refused as unknown).
 *
 * A new session's first flight may be handed on too, to the worker that
 * holds the fewest sessions (`placeNew`): the kernel hands connections to
 * the workers unevenly.
 *
 * With `--instance-id`, only first flights that name this instance (a
 * RESUME or JOIN of one of its sessions) get 0-RTT: the replay guard is
 * shared by the workers of one instance, not between instances, so a new
 * session's first flight, which names no instance, could otherwise be
 * replayed to another instance and acted on twice.
 * @packageDocumentation
 */
import net from 'node:net'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import { decodeHello, type Hello } from '../../mux/wire/hello.js'
import { HelloKind } from '../../mux/wire/constants.js'
import { decodeRedirect } from '../../mux/wire/redirect.js'
import type { SessionPlacement } from '../../mux/registry/registry.js'
import type { ReplayChecker } from '../../secure/replay.js'
import type { ServerRouting } from '../routing.js'
import type { FailureLimiter, FailureLimiterOptions } from '../ratelimit.js'
import type { AdmissionPeers } from '../handshakes.js'
import { makeSessionId, readSessionId, type IdOwner } from './ids.js'

/** Options of a {@link Routing}. */
export interface RoutingOptions extends IdOwner {
  /** Worker processes of this instance. */
  workers: number
  /** Hands `socket` (paused), with `head`, to worker `to`. Needed when `workers` > 1. */
  handoff?: (socket: net.Socket, head: Buffer, to: number) => void
  /** The replay guard the workers share. */
  replayGuard?: ReplayChecker
  /** The failed-handshake limiter the workers share. */
  failureLimiter?: (options?: FailureLimiterOptions) => FailureLimiter
  /** The other workers' unauthenticated connections. */
  admission?: AdmissionPeers
  /**
   * Where a new session should live: a worker index, or `null` for here
   * (called for each first flight that starts a session, before the
   * replay guard; the worker with the fewest sessions takes it).
   */
  placeNew?: () => number | null
}

/** Where a session lives, decided from its id. */
export type Whereabouts = { at: 'here' } | { at: 'worker'; worker: number } | { at: 'instance'; redirect: Buffer }

/** A client's HELLO at the start of `data`, or `null`. */
function clientHello(data: Buffer): Hello | null {
  let r: { hello: Hello } | null
  try {
    r = decodeHello(data)
  } catch {
    return null
  }
  return r === null || r.hello.role !== 'client' ? null : r.hello
}

/** A client's RESUME or JOIN HELLO at the start of `data`, or `null`. */
function resumeHello(data: Buffer): Hello | null {
  const h = clientHello(data)
  return h !== null && (h.kind === HelloKind.RESUME || h.kind === HelloKind.JOIN) ? h : null
}

/** See the module comment. */
export class Routing implements ServerRouting {
  readonly #o: RoutingOptions
  /** Connections another worker handed here: processed here, whatever their id says (no ping-pong). */
  readonly #adopted = new WeakSet<object>()
  readonly placement: SessionPlacement
  readonly replayGuard?: ReplayChecker
  readonly acceptEarlyData?: (earlyData: Buffer) => boolean
  readonly failureLimiter?: (options?: FailureLimiterOptions) => FailureLimiter
  readonly admission?: AdmissionPeers
  /** Counters: connections handed to other workers, RESUMEs/JOINs redirected to other instances. */
  readonly counts = { handedOff: 0, adopted: 0, redirected: 0, balanced: 0 }

  constructor(o: RoutingOptions) {
    this.#o = o
    if (o.replayGuard !== undefined) this.replayGuard = o.replayGuard
    if (o.failureLimiter !== undefined) this.failureLimiter = o.failureLimiter
    if (o.admission !== undefined) this.admission = o.admission
    this.placement = {
      newId: () => makeSessionId(o),
      locate: (hello, head, duplex) => this.#locate(hello, head, duplex),
    }
    if (o.instance !== 0) {
      this.acceptEarlyData = (data) => {
        const h = resumeHello(data)
        const r = h === null ? null : readSessionId(h.sessionId)
        return r !== null && r.instance === o.instance
      }
    }
  }

  /** Where the session named `id` lives. */
  where(id: Buffer): Whereabouts {
    const r = readSessionId(id)
    if (r === null) return { at: 'here' }
    if (r.instance !== this.#o.instance) {
      // Another instance's session: go there, if it said where it is (and the address is one to follow).
      return this.#o.instance !== 0 && r.instance !== 0 && decodeRedirect(r.redirect ?? undefined) !== null ? { at: 'instance', redirect: r.redirect! } : { at: 'here' }
    }
    if (r.worker !== this.#o.worker && r.worker < this.#o.workers && this.#o.handoff !== undefined) return { at: 'worker', worker: r.worker }
    return { at: 'here' }
  }

  /** A connection handed here by another worker (it is processed here). */
  adopted(socket: object): void {
    this.#adopted.add(socket)
    this.counts.adopted++
  }

  divert(earlyData: Buffer, socket: net.Socket): ((head: Buffer) => void) | null {
    if (this.#adopted.has(socket)) return null
    const h = clientHello(earlyData)
    if (h === null) return null
    if (h.kind === HelloKind.NEW) {
      // A new session goes to the worker with the fewest (the kernel spreads connections unevenly).
      const to = this.#o.placeNew?.() ?? null
      if (to === null || to === this.#o.worker) return null
      this.counts.balanced++
      return (head) => this.#handOff(socket, head, to)
    }
    if (h.kind !== HelloKind.RESUME && h.kind !== HelloKind.JOIN) return null
    const w = this.where(h.sessionId)
    if (w.at !== 'worker') return null
    this.counts.handedOff++
    return (head) => this.#handOff(socket, head, w.worker)
  }

  #locate(hello: Hello, head: Buffer, duplex: Duplex): 'here' | 'taken' | Buffer {
    const w = this.where(hello.sessionId)
    if (w.at === 'instance') {
      this.counts.redirected++
      return w.redirect
    }
    // A HELLO read in clear (--insecure-plaintext) can go with its connection; one read from a
    // secure channel's records (a client that sent no early data) or TLS cannot: its keys are here.
    if (w.at === 'worker' && duplex instanceof net.Socket && !(duplex instanceof tls.TLSSocket) && !this.#adopted.has(duplex)) {
      this.counts.handedOff++
      this.#handOff(duplex, head, w.worker)
      return 'taken'
    }
    return 'here'
  }

  #handOff(socket: net.Socket, head: Buffer, to: number): void {
    this.#o.handoff!(socket, head, to)
  }
}
