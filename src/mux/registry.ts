/**
 * SessionRegistry: the server side of resumption (PROTOCOL.md 13). Every
 * transport a server accepts goes through {@link SessionRegistry.accept}:
 * it reads the client's HELLO, hands a RESUME for a session it knows to
 * that session (which moves onto the new transport; its streams never
 * notice), and starts a new {@link Session} for everything else.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { Capability, DEFAULTS, HelloExtension, HelloKind, ResumeRefused } from './constants.js'
import { decodeHello, type Hello } from './codec.js'
import { invalidArgType } from './errors.js'
import { type ResolvedOptions, type SessionOptions, resolveOptions } from './options.js'
import { Session, laneSetOptions } from './session.js'
import { LaneSet } from './lanes.js'

/** Options of a {@link SessionRegistry}: the options of every server session it creates (`role` is `'server'`). */
export type SessionRegistryOptions = Omit<SessionOptions, 'role'>

/** Events of a {@link SessionRegistry}. */
export interface SessionRegistryEvents {
  /** A new session (answer to NEW, or to a RESUME that could not be honoured). */
  session: [session: Session]
  /** An existing session moved onto a new transport. */
  resumed: [session: Session]
  /** A striped session got a new lane (PROTOCOL.md 14). */
  lane: [session: Session, index: number]
  /** A RESUME was refused with NEW (`reason`: RESUME_REFUSED code) or dropped (`reason` 0: authentication failed). */
  refused: [info: { reason: number; why: string; duplex: Duplex }]
}

/** Counters of a {@link SessionRegistry}. */
export interface SessionRegistryStats {
  /** Resumable sessions known (attached or detached). */
  sessions: number
  /** Of those, waiting for their client. */
  detached: number
  resumed: number
  refused: number
  expired: number
  authFailures: number
}

const HELLO_READ_LIMIT = 10 + 1024

/** Server-side registry of resumable sessions. */
export class SessionRegistry extends EventEmitter<SessionRegistryEvents> {
  readonly #options: SessionOptions
  readonly #resolved: ResolvedOptions
  readonly #sessions = new Map<string, Session>()
  /** Lane sets of striped sessions, by session id (where JOINs go). */
  readonly #laneSets = new Map<string, LaneSet>()
  readonly #expired = new Set<string>()
  readonly #stats = { resumed: 0, refused: 0, expired: 0, authFailures: 0 }
  #closed = false

  /** `options`: session options; `resumption` defaults to `{}` (enabled with defaults). */
  constructor(options: SessionRegistryOptions = {}) {
    super()
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
    this.#options = { ...options, role: 'server', resumption: options.resumption ?? {} }
    // Validate now (throws with stable codes) rather than on the first connection.
    this.#resolved = resolveOptions(this.#options)
  }

  /** A LaneSet over lane 0 of a striped session (the client's HELLO asked for STRIPE). */
  #laneSet(duplex: Duplex, peerHello?: { hello: Hello; raw: Buffer; rest: Buffer }): LaneSet {
    return new LaneSet(duplex, laneSetOptions(this.#resolved, {
      ...(peerHello ? { peerHello } : {}),
      register: (id, set) => this.#laneSets.set(id.toString('hex'), set),
      unregister: (id, set) => {
        const k = id.toString('hex')
        if (this.#laneSets.get(k) === set) this.#laneSets.delete(k)
      },
    }))
  }

  #wantsLanes(h: Hello | undefined): boolean {
    return h !== undefined && this.#resolved.maxLanes > 0 && (h.capabilities & (Capability.STRIPE | Capability.RESUME)) === (Capability.STRIPE | Capability.RESUME)
  }

  /**
   * Takes over a freshly accepted transport. Either a `'session'` event
   * follows (a new session on it) or a `'resumed'` one (it now carries an
   * existing session), or the transport is closed (no HELLO in time,
   * authentication failed).
   */
  accept(duplex: Duplex): void {
    let buf: Buffer = Buffer.alloc(0)
    const timeout = this.#options.handshakeTimeout ?? DEFAULTS.handshakeTimeout
    const timer = timeout > 0 ? setTimeout(() => {
      cleanup()
      duplex.destroy()
    }, timeout) : null
    timer?.unref?.()
    const cleanup = (): void => {
      if (timer) clearTimeout(timer)
      duplex.removeListener('data', onData)
      duplex.removeListener('close', onClose)
    }
    const onClose = (): void => cleanup()
    const onData = (chunk: Buffer | string): void => {
      const c = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      buf = buf.length === 0 ? c : Buffer.concat([buf, c])
      let r: { hello: Hello; size: number } | null = null
      let bad = false
      try {
        r = decodeHello(buf)
      } catch {
        bad = true // not a valid HELLO: a new session reports it the standard way
      }
      if (!bad && r === null && buf.length < HELLO_READ_LIMIT) return
      cleanup()
      if (r !== null && r.hello.kind === HelloKind.RESUME && r.hello.role === 'client') {
        this.#resume(duplex, r.hello, buf.subarray(0, r.size), buf.subarray(r.size), buf)
        return
      }
      if (r !== null && r.hello.kind === HelloKind.JOIN && r.hello.role === 'client') {
        this.#join(duplex, r.hello, buf.subarray(0, r.size), buf.subarray(r.size), buf)
        return
      }
      this.#newSession(duplex, buf, 0, r !== null && r.hello.kind === HelloKind.NEW && this.#wantsLanes(r.hello))
    }
    duplex.on('error', () => {})
    duplex.on('data', onData)
    duplex.on('close', onClose)
  }

  #newSession(duplex: Duplex, buf: Buffer, refuse: number, striped = false): void {
    const set = striped ? this.#laneSet(duplex) : null
    const session = new Session(set ?? duplex, this.#options)
    session._setRegistry(this, refuse)
    if (this.#closed) {
      session.destroy()
      return
    }
    this.emit('session', session)
    if (set !== null) set._input(buf)
    else session._input(buf)
  }

  #resume(duplex: Duplex, h: Hello, raw: Buffer, rest: Buffer, all: Buffer): void {
    const key = h.sessionId.toString('hex')
    const s = this.#sessions.get(key)
    const v = h.extensions.get(HelloExtension.RECEIVED)
    const received = v !== undefined && v.length === 8 ? v.readUInt32BE(0) * 0x1_0000_0000 + v.readUInt32BE(4) : -1
    let refuse = 0
    if (this.#closed) refuse = ResumeRefused.UNKNOWN_ID
    else if (s === undefined || s.destroyed) refuse = this.#expired.has(key) ? ResumeRefused.EXPIRED : ResumeRefused.UNKNOWN_ID
    else if (!s._canReplayFrom(received)) refuse = ResumeRefused.OUT_OF_RANGE
    if (refuse !== 0) {
      this.#stats.refused++
      this.emit('refused', { reason: refuse, why: ['', 'unknown session id', 'session expired', 'replay out of range'][refuse]!, duplex })
      this.#newSession(duplex, all, refuse)
      return
    }
    // _acceptResume emits 'resumed' on the session when the swap happens (maybe at once).
    const onResumed = (): void => {
      this.#stats.resumed++
      this.emit('resumed', s!)
    }
    s!.once('resumed', onResumed)
    duplex.once('close', () => s!.off('resumed', onResumed))
    // A striped session resumes onto a new LaneSet (lane 0: this transport).
    let d: Duplex = duplex
    if (this.#wantsLanes(h)) {
      d = this.#laneSet(duplex, { hello: h, raw, rest })
      rest = Buffer.alloc(0)
    }
    s!._acceptResume(d, h, raw, rest, (why) => {
      this.#stats.authFailures++
      this.emit('refused', { reason: 0, why, duplex })
    })
  }

  #join(duplex: Duplex, h: Hello, raw: Buffer, rest: Buffer, all: Buffer): void {
    const key = h.sessionId.toString('hex')
    const set = this.#closed ? undefined : this.#laneSets.get(key)
    const s = this.#sessions.get(key)
    let refuse: number = set === undefined ? (this.#expired.has(key) ? ResumeRefused.EXPIRED : ResumeRefused.UNKNOWN_ID) : 0
    if (set !== undefined) {
      refuse = set._acceptJoin(duplex, h, raw, rest, (why) => {
        this.#stats.authFailures++
        this.emit('refused', { reason: 0, why, duplex })
      })
      if (refuse === 0 && s !== undefined) {
        const v = h.extensions.get(HelloExtension.LANE)
        if (v !== undefined && v.length === 2) this.emit('lane', s, v.readUInt16BE(0))
      }
    }
    if (refuse !== 0) {
      this.#stats.refused++
      this.emit('refused', { reason: refuse, why: ['', 'unknown session id', 'session expired', 'lane not accepted', 'striping not in effect'][refuse]!, duplex })
      this.#newSession(duplex, all, refuse)
    }
  }

  /** @internal A session became resumable (its id is known). */
  _register(s: Session): void {
    this.#sessions.set(s.id!.toString('hex'), s)
  }

  /** @internal A session closed. */
  _forget(s: Session, expired: boolean): void {
    const id = s.id
    if (id === null) return
    const key = id.toString('hex')
    if (this.#sessions.get(key) !== s) return
    this.#sessions.delete(key)
    if (expired) {
      this.#stats.expired++
      this.#expired.add(key)
      if (this.#expired.size > DEFAULTS.expiredIds) this.#expired.delete(this.#expired.values().next().value as string)
    }
  }

  /** The session with this id, if known. */
  get(id: Buffer): Session | undefined {
    return this.#sessions.get(id.toString('hex'))
  }

  /** Resumable sessions known. */
  get size(): number {
    return this.#sessions.size
  }

  /** Sessions known (attached or detached). */
  sessions(): IterableIterator<Session> {
    return this.#sessions.values()
  }

  /** Counters. */
  stats(): SessionRegistryStats {
    let detached = 0
    for (const s of this.#sessions.values()) if (!s.stats().attached) detached++
    return { sessions: this.#sessions.size, detached, ...this.#stats }
  }

  /** Refuses further resumes and closes every known session gracefully. Resolves when they are closed. */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#sessions.values()].map((s) => (s.stats().attached ? s.close() : (s.destroy(), s.closed()))))
  }
}

