/**
 * Where a tunnel client may open its next stream: a session has room when
 * it holds fewer streams than the server accepts per session (the
 * `maxStreams` of the server's HELLO) and has fewer than `maxOpening` opens
 * still unanswered. The second limit paces a burst (10,000 connections
 * arriving at once): the server keeps an unanswered OPEN pending while it
 * connects onward and refuses OPENs past its pending limit (256 by
 * default), so the client sends no more than it will take and lets the
 * rest wait for an answer to come back.
 * @packageDocumentation
 */
import type { Session } from '../mux/session/session.js'
import type { MuxStream } from '../mux/stream/stream.js'

/** What a session offers a new stream now. */
export type Room = 'yes' | 'opening' | 'full'

/** Streams a session can still open under the peer's limit (`Infinity` before its HELLO). */
export function streamRoom(session: Session): number {
  const max = session.peerHello?.maxStreams
  return max === undefined ? Infinity : max - session.streamCount
}

/**
 * Counts unanswered opens per session. Callers that find no room wait in
 * line: each answer (and each stream that closes) wakes the first waiter
 * only, so a burst of thousands of waiters costs one wake-up per freed
 * place, not one per waiter.
 */
export class OpenPacer {
  readonly maxOpening: number
  readonly #opening = new WeakMap<Session, number>()
  readonly #waiters: Array<() => void> = []

  constructor(maxOpening: number) {
    this.maxOpening = maxOpening
  }

  /** Opens sent on `session` and not answered yet. */
  opening(session: Session): number {
    return this.#opening.get(session) ?? 0
  }

  /** Whether `session` can take a new stream now, later (`'opening'`: its opens are in flight), or not (`'full'`). */
  room(session: Session): Room {
    if (streamRoom(session) <= 0) return 'full'
    return this.opening(session) < this.maxOpening ? 'yes' : 'opening'
  }

  /** Waiters in line. */
  get waiting(): number {
    return this.#waiters.length
  }

  /** Counts `stream`'s open on `session` until it is answered (or closes). */
  track(session: Session, stream: MuxStream): void {
    this.#opening.set(session, this.opening(session) + 1)
    let answered = false
    stream.once('open', () => {
      answered = true
      this.#opening.set(session, this.opening(session) - 1)
      this.wake()
    })
    stream.once('close', () => {
      if (!answered) this.#opening.set(session, this.opening(session) - 1)
      this.wake()
    })
  }

  /**
   * Waits in line for a place (resolves `true`), or `ms` (resolves
   * `false`). `first`: a waiter that was woken and still found no room
   * keeps its place at the head of the line.
   */
  wait(ms: number, first = false): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (woken: boolean): void => {
        clearTimeout(t)
        const i = this.#waiters.indexOf(wake)
        if (i >= 0) this.#waiters.splice(i, 1)
        resolve(woken)
      }
      const wake = (): void => done(true)
      const t = setTimeout(() => done(false), ms)
      if (first) this.#waiters.unshift(wake)
      else this.#waiters.push(wake)
    })
  }

  /** Wakes the first waiter (`all`: every waiter, e.g. when a session comes up). */
  wake(all = false): void {
    if (all) for (const w of [...this.#waiters]) w()
    else this.#waiters[0]?.()
  }
}
