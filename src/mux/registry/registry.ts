/**
 * SessionRegistry: the server side of resumption (PROTOCOL.md 13). Every
 * transport a server accepts goes through {@link SessionRegistry.accept}:
 * it reads the client's HELLO, hands a RESUME for a session it knows to
 * that session (which moves onto the new transport; its streams never
 * notice), and starts a new {@link Session} for everything else.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { Capability, DEFAULTS, FrameType, GoawayCode, HelloExtension, HelloKind, ResumeRefused } from '../wire/constants.js'
import { encodeFrame } from '../wire/frames.js'
import { decodeHello, encodeHello, type Hello, u32, u64 } from '../wire/hello.js'
import { AUTH_SIZE, awaitAuth, clientProof, newNonce, serverProof } from '../wire/auth.js'
import { invalidArgType } from '../errors.js'
import { type ResolvedOptions, type SessionOptions, laneSetOptions, resolveOptions } from '../session/options.js'
import { Session } from '../session/session.js'
import type { SessionDirectory } from '../session/directory.js'
import { LaneSet } from '../lanes/lane-set.js'
import { SecureChannel } from '../../secure/channel.js'

/**
 * Options of a {@link SessionRegistry}: the options of every server session
 * it creates (`role` is `'server'`), and `identify`.
 */
export type SessionRegistryOptions = Omit<SessionOptions, 'role'> & {
  /**
   * The authenticated identity of a transport (e.g. the client's static
   * key on a secure channel, PROTOCOL.md 20), or `null`. A session belongs
   * to the identity of the transport that created it: a RESUME or JOIN is
   * honoured only on a transport of the same identity (any other is
   * answered as if the session id were unknown). Default: a
   * {@link SecureChannel}'s `remotePublicKey` (base64), else `null`.
   */
  identify?: (duplex: Duplex) => string | null
  /**
   * Where sessions live when several processes or servers share the load
   * (the tunnel's `--workers` and `--instance-id`): how new session ids are
   * made, and where a RESUME or JOIN goes. Default: random ids, every
   * session here.
   */
  placement?: SessionPlacement
}

/**
 * A registry's {@link SessionRegistryOptions.placement}: the hook through
 * which a cluster of servers routes resumptions and lanes to the process
 * (or the server) that holds their session.
 */
export interface SessionPlacement {
  /** A fresh session id (32 bytes, unguessable by a client). */
  newId(): Buffer
  /**
   * Called with a client's RESUME or JOIN HELLO before its session is
   * looked up. `'here'`: look it up here. `'taken'`: the callee took the
   * transport over, with `head` (every byte read from it so far); the
   * registry forgets it. A Buffer: a REDIRECT extension value (PROTOCOL.md
   * 13.10): the answer is `HELLO(NEW, RESUME_REFUSED 5, REDIRECT)`, and
   * nothing the client sent after its HELLO is processed.
   */
  locate(hello: Hello, head: Buffer, duplex: Duplex): 'here' | 'taken' | Buffer
}

/** The default identity of a transport: the peer's static key on a secure channel. */
function defaultIdentify(duplex: Duplex): string | null {
  return duplex instanceof SecureChannel ? (duplex.remotePublicKey?.toString('base64') ?? null) : null
}

/** Events of a {@link SessionRegistry}. */
export interface SessionRegistryEvents {
  /** A new session (answer to NEW, or to a RESUME that could not be honoured). */
  session: [session: Session]
  /** An existing session moved onto a new transport. */
  resumed: [session: Session]
  /** A striped session got a new lane (PROTOCOL.md 14). */
  lane: [session: Session, index: number]
  /** A RESUME was refused (`reason`: RESUME_REFUSED code; with `auth` after the client's AUTH, by GOAWAY, else by NEW) or dropped (`reason` 0: authentication failed). */
  refused: [info: { reason: number; why: string; duplex: Duplex }]
  /**
   * A transport proved the key (or, without `auth`, completed its HELLO
   * exchange): a new session's handshake, a resume, a lane. Every accepted
   * transport ends in exactly one of `'authenticated'` and `'failed'`,
   * unless it closes before sending a whole HELLO.
   */
  authenticated: [duplex: Duplex]
  /** A transport was closed before it proved the key: no HELLO in time, not synmux, a wrong key, no AUTH in time, closed after its HELLO. */
  failed: [info: { why: string; duplex: Duplex }]
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
  /** RESUMEs and JOINs answered with a REDIRECT (their session lives elsewhere). */
  redirected: number
}

const HELLO_READ_LIMIT = 10 + 1024
/** Why a RESUME was refused, by RESUME_REFUSED reason. */
const REFUSED_WHY = ['', 'unknown session id', 'session expired', 'replay out of range']

/** Server-side registry of resumable sessions. */
export class SessionRegistry extends EventEmitter<SessionRegistryEvents> implements SessionDirectory<Session> {
  readonly #options: SessionOptions
  readonly #resolved: ResolvedOptions
  readonly #sessions = new Map<string, Session>()
  /** Lane sets of striped sessions, by session id (where JOINs go). */
  readonly #laneSets = new Map<string, LaneSet>()
  readonly #expired = new Set<string>()
  readonly #identify: (duplex: Duplex) => string | null
  /** Each session's owner: the identity of the transport that created it. */
  readonly #owners = new WeakMap<Session, string | null>()
  readonly #stats = { resumed: 0, refused: 0, expired: 0, authFailures: 0, redirected: 0 }
  readonly #placement: SessionPlacement | null
  #closed = false

  /** `options`: session options; `resumption` defaults to `{}` (enabled with defaults). */
  constructor(options: SessionRegistryOptions = {}) {
    super()
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
    const { identify, placement, ...sessionOptions } = options
    if (identify !== undefined && typeof identify !== 'function') throw invalidArgType('options.identify', 'a function', identify)
    if (placement !== undefined && (typeof placement?.newId !== 'function' || typeof placement.locate !== 'function')) throw invalidArgType('options.placement', 'an object with newId() and locate()', placement)
    this.#placement = placement ?? null
    this.#identify = identify ?? defaultIdentify
    this.#options = { ...sessionOptions, role: 'server', resumption: options.resumption ?? {} }
    // Validate now (throws with stable codes) rather than on the first connection.
    this.#resolved = resolveOptions(this.#options)
  }

  /** A LaneSet over lane 0 of a striped session (the client's HELLO asked for STRIPE; a resume: both HELLOs already exchanged). */
  #laneSet(duplex: Duplex, peerHello?: { hello: Hello; raw: Buffer; rest: Buffer }, ownHello?: { raw: Buffer; received: number }): LaneSet {
    return new LaneSet(duplex, laneSetOptions(this.#resolved, {
      ...(peerHello ? { peerHello } : {}),
      ...(ownHello ? { ownHello: { hello: decodeHello(ownHello.raw)!.hello, raw: ownHello.raw, received: ownHello.received } } : {}),
      register: (id, set) => this.#laneSets.set(id.toString('hex'), set as LaneSet),
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
      this.emit('failed', { why: `no HELLO within ${timeout} ms`, duplex })
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
      if (r !== null && this.#placement !== null && (r.hello.kind === HelloKind.RESUME || r.hello.kind === HelloKind.JOIN) && r.hello.role === 'client') {
        const at = this.#placement.locate(r.hello, buf, duplex)
        if (at === 'taken') return
        if (at !== 'here') return this.#redirect(duplex, at)
      }
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
    this.#owners.set(session, this.#identify(duplex))
    if (this.#closed) {
      session.destroy()
      return
    }
    let up = false
    session.once('handshake', () => {
      up = true
      this.emit('authenticated', duplex)
    })
    session.once('close', (err?: Error & { code?: string }) => {
      if (up) return
      // A client whose key differs finds out from our proof and leaves
      // without sending its own (PROTOCOL.md 16): its connection ends after
      // our HELLO, before its AUTH.
      const leftAtProof = session.peerHello !== null && (err === undefined || err.code === 'SYNMUX_CONNECTION_LOST')
      const why = leftAtProof
        ? 'authentication failed: the client closed the connection instead of proving the key (a client with a different key does this)'
        : err ? `${err.code}: ${err.message}` : 'closed before the handshake'
      this.emit('failed', { why, duplex })
    })
    this.emit('session', session)
    if (set !== null) set._input(buf)
    else session._input(buf)
  }

  /**
   * A RESUME (PROTOCOL.md 13). With authentication, the answer before the
   * client's AUTH is the same whatever the session id names (a live,
   * expired or unknown session): a RESUMED HELLO with our nonce and proof,
   * without RECEIVED. Only after a valid AUTH does the server say anything
   * about the session: ACK(its received count) and the replay, or a
   * GOAWAY refusing the resume. Without authentication there is nothing to
   * prove: RESUMED with RECEIVED, or NEW with RESUME_REFUSED, at once.
   */
  #resume(duplex: Duplex, h: Hello, raw: Buffer, rest: Buffer, all: Buffer): void {
    const key = h.sessionId.toString('hex')
    const v = h.extensions.get(HelloExtension.RECEIVED)
    const received = v !== undefined && v.length === 8 ? v.readUInt32BE(0) * 0x1_0000_0000 + v.readUInt32BE(4) : -1
    const verdict = (): { s: Session; refuse: 0 } | { s: undefined; refuse: number } => {
      const s = this.#sessions.get(key)
      if (this.#closed) return { s: undefined, refuse: ResumeRefused.UNKNOWN_ID }
      if (s === undefined || s.destroyed) return { s: undefined, refuse: this.#expired.has(key) ? ResumeRefused.EXPIRED : ResumeRefused.UNKNOWN_ID }
      // Another identity's session: answered exactly as an unknown id.
      if (this.#owners.get(s) !== this.#identify(duplex)) return { s: undefined, refuse: ResumeRefused.UNKNOWN_ID }
      if (!s._canReplayFrom(received)) return { s: undefined, refuse: ResumeRefused.OUT_OF_RANGE }
      return { s, refuse: 0 }
    }
    const refused = (reason: number): void => {
      this.#stats.refused++
      this.emit('refused', { reason, why: REFUSED_WHY[reason]!, duplex })
    }
    const striped = this.#wantsLanes(h)
    const auth = this.#resolved.auth
    if (auth === null) {
      // EARLY_REPLAY (13.9): the client's replay, from offset `from`, follows its HELLO at once.
      const fv = h.extensions.get(HelloExtension.REPLAY_FROM)
      const from = fv !== undefined && fv.length === 8 ? fv.readUInt32BE(0) * 0x1_0000_0000 + fv.readUInt32BE(4) : -1
      let r = received < 0 ? { s: undefined, refuse: ResumeRefused.UNKNOWN_ID } : verdict()
      if (r.s !== undefined && fv !== undefined && (from < 0 || !r.s._earlyReplay || striped || from > r.s._received)) r = { s: undefined, refuse: ResumeRefused.OUT_OF_RANGE }
      if (r.s === undefined) {
        refused(r.refuse)
        if (fv !== undefined) this.#refuseEarly(duplex, r.refuse)
        else this.#newSession(duplex, all, r.refuse)
        return
      }
      const R = r.s._received
      const hello = this.#resumedHello(h, striped, [[HelloExtension.RECEIVED, u64(R)]])
      duplex.write(hello)
      this.emit('authenticated', duplex)
      this.#attach(r.s, duplex, h, raw, hello, rest, received, R, striped, false, from >= 0 ? R - from : 0)
      return
    }
    const fail = (why: string): void => {
      duplex.destroy()
      this.#stats.authFailures++
      this.emit('refused', { reason: 0, why, duplex })
      this.emit('failed', { why: `resume: ${why}`, duplex })
    }
    const nc = h.extensions.get(HelloExtension.AUTH_NONCE)
    if (received < 0) return fail('RESUME without RECEIVED')
    if (!(h.capabilities & Capability.AUTH_PSK) || nc === undefined || nc.length !== AUTH_SIZE) return fail('RESUME without authentication')
    const ns = newNonce()
    const hello = this.#resumedHello(h, striped, [[HelloExtension.AUTH_NONCE, ns], [HelloExtension.AUTH_PROOF, serverProof(auth.key, raw, ns)]])
    duplex.write(hello)
    awaitAuth(duplex, rest, clientProof(auth.key, hello, nc), this.#resolved.handshakeTimeout, (leftover) => {
      this.emit('authenticated', duplex)
      const r = verdict()
      if (r.s === undefined) {
        refused(r.refuse)
        const code = r.refuse === ResumeRefused.EXPIRED ? GoawayCode.RESUME_EXPIRED : r.refuse === ResumeRefused.OUT_OF_RANGE ? GoawayCode.RESUME_OUT_OF_RANGE : GoawayCode.RESUME_UNKNOWN_ID
        duplex.end(encodeFrame({ type: FrameType.GOAWAY, lastStreamId: 0, code, reason: REFUSED_WHY[r.refuse]! }))
        setTimeout(() => duplex.destroy(), 5000).unref()
        return
      }
      this.#attach(r.s, duplex, h, raw, hello, leftover, received, r.s._received, striped, true)
    }, fail)
  }

  /**
   * A RESUME with REPLAY_FROM that cannot be honoured: its replayed frames
   * follow the HELLO and belong to no session here, so no new session is
   * started on this transport (13.9): `HELLO(NEW, a random id,
   * RESUME_REFUSED)`, then the transport ends; nothing the client sent is
   * processed.
   */
  #refuseEarly(duplex: Duplex, reason: number, extra: Array<[number, Buffer]> = []): void {
    const o = this.#resolved
    const hello = encodeHello({
      kind: HelloKind.NEW,
      role: 'server',
      capabilities: 0,
      sessionId: randomBytes(32),
      initialWindow: o.initialWindow,
      maxFrameSize: o.maxFrameSize,
      maxStreams: o.maxStreams,
      extensions: [[HelloExtension.RESUME_REFUSED, Buffer.from([reason])], ...extra],
    })
    this.emit('authenticated', duplex)
    duplex.on('data', () => {}) // read and drop
    duplex.end(hello)
    setTimeout(() => duplex.destroy(), 5000).unref()
  }

  /**
   * A RESUME or JOIN for a session that lives elsewhere (PROTOCOL.md
   * 13.10): `HELLO(NEW, a random id, RESUME_REFUSED 5, REDIRECT)`, then the
   * transport ends; nothing the client sent is processed.
   */
  #redirect(duplex: Duplex, to: Buffer): void {
    this.#stats.redirected++
    this.emit('refused', { reason: ResumeRefused.ELSEWHERE, why: 'the session lives elsewhere (redirected)', duplex })
    this.#refuseEarly(duplex, ResumeRefused.ELSEWHERE, [[HelloExtension.REDIRECT, to]])
  }

  /** @internal A fresh session id for a new session. */
  _newId(): Buffer {
    if (this.#placement === null) return randomBytes(32)
    // Never one that names a session known here (ids carry fewer random bytes when they route).
    for (;;) {
      const id = this.#placement.newId()
      if (!this.#sessions.has(id.toString('hex'))) return id
    }
  }

  /** The server's RESUMED HELLO: the same for every session but for the id the client named (and `extensions`). */
  #resumedHello(h: Hello, striped: boolean, extensions: Array<[number, Buffer]>): Buffer {
    const o = this.#resolved
    let capabilities = Capability.RESUME
    if (striped) capabilities |= Capability.STRIPE
    if (o.auth !== null) capabilities |= Capability.AUTH_PSK
    return encodeHello({
      kind: HelloKind.RESUME,
      role: 'server',
      capabilities,
      sessionId: h.sessionId,
      initialWindow: o.initialWindow,
      maxFrameSize: o.maxFrameSize,
      maxStreams: o.maxStreams,
      extensions: [...extensions, [HelloExtension.REPLAY_BUFFER, u32(o.resumption!.replayBuffer)]],
    })
  }

  /** Moves session `s` onto `duplex` (a striped one onto a new LaneSet over it), replaying from the client's RECEIVED; `ack`: announce `R` in an ACK. */
  #attach(s: Session, duplex: Duplex, h: Hello, raw: Buffer, hello: Buffer, rest: Buffer, received: number, R: number, striped: boolean, ack: boolean, skip = 0): void {
    const onResumed = (): void => {
      this.#stats.resumed++
      this.emit('resumed', s)
    }
    s.once('resumed', onResumed)
    const d = striped ? this.#laneSet(duplex, { hello: h, raw, rest }, { raw: hello, received: R }) : duplex
    s._resumeOn(d, raw, hello, striped ? Buffer.alloc(0) : rest, received, ack, skip)
    s.off('resumed', onResumed)
  }

  #join(duplex: Duplex, h: Hello, raw: Buffer, rest: Buffer, all: Buffer): void {
    const key = h.sessionId.toString('hex')
    const s = this.#sessions.get(key)
    // A lane of another identity's session: answered exactly as an unknown id.
    const own = s !== undefined && this.#owners.get(s) === this.#identify(duplex)
    const set = this.#closed || !own ? undefined : this.#laneSets.get(key)
    let refuse: number = set === undefined ? (this.#expired.has(key) && s === undefined ? ResumeRefused.EXPIRED : ResumeRefused.UNKNOWN_ID) : 0
    if (set !== undefined) {
      refuse = set._acceptJoin(duplex, h, raw, rest, (why) => {
        this.#stats.authFailures++
        this.emit('refused', { reason: 0, why, duplex })
        this.emit('failed', { why: `join: ${why}`, duplex })
      }, () => this.emit('authenticated', duplex))
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

  /** The identity of the transport that created `session` (see `identify`), `null` if none or unknown. */
  identity(session: Session): string | null {
    return this.#owners.get(session) ?? null
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
