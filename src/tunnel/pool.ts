/**
 * SessionPool: N resumable client sessions, each over its own connection
 * (issue 7). New streams go to the best session (lowest RTT, least
 * queued); a monitor pings every session, declares a connection dead after
 * `1 s + the worst RTT seen in the last 5 minutes` without a PONG and makes
 * it reconnect (the session resumes; a false death costs one reconnect),
 * replaces sessions that could not be resumed, and periodically retires the
 * connection with the worst recent RTT so the pool keeps finding better
 * paths.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { MuxError } from '../mux/errors.js'
import type { SessionOptions } from '../mux/session/options.js'
import { Session } from '../mux/session/session.js'
import type { OpenOptions } from '../mux/session/types.js'
import type { MuxStream } from '../mux/stream/stream.js'
import type { RedirectAddress } from '../mux/wire/redirect.js'
import { streamRoom } from './room.js'

/** Options of a {@link SessionPool}. */
export interface SessionPoolOptions {
  /** Number of sessions (connections). Default 3. */
  size?: number
  /**
   * Makes a new connection to the server (use TFO). `index` is the pool
   * slot the connection is for (first connection, reconnects and
   * replacements alike), so a caller can route slots differently. `to`:
   * where the server said the slot's session lives (a REDIRECT,
   * PROTOCOL.md 13.10), for its resumes and lanes.
   */
  connect: (index: number, to?: RedirectAddress) => Duplex | Promise<Duplex>
  /** Options of every session (`role` and `resumption.connect` are set by the pool). */
  session?: Omit<SessionOptions, 'role'>
  /** Monitor period (ping every session) in ms. Default 250. */
  monitorInterval?: number
  /** Base of the dead-connection deadline in ms. Default 1,000. */
  deadBase?: number
  /** Window of the worst-RTT memory in ms. Default 300,000 (5 minutes). */
  rttWindow?: number
  /** Retire the worst-RTT connection this often (ms); 0: never. Default 60,000. */
  retireInterval?: number
}

/** One session of a {@link SessionPool}, as seen by {@link SessionPool.stats}. */
export interface PoolMemberStats {
  index: number
  state: 'connecting' | 'up' | 'detached' | 'closed'
  rtt: number
  worstRtt: number
  streams: number
  bytesSent: number
  bytesReceived: number
  resumes: number
  /** Monitor PINGs answered (RTT samples taken). */
  pongs: number
  /** Connections declared dead by the monitor. */
  deaths: number
  /** Sessions this slot has had (1 + replacements). */
  sessions: number
}

/** Counters of a {@link SessionPool}. */
export interface PoolStats {
  size: number
  up: number
  members: PoolMemberStats[]
  /** Connections declared dead by the monitor. */
  deaths: number
  /** Worst-RTT connections retired. */
  retired: number
  /** Sessions replaced because they could not be resumed. */
  replaced: number
}

interface Member {
  index: number
  session: Session
  /** The session completed its first handshake. */
  up: boolean
  /** Its transport is established: handshake or resume done, not detached since (a resume in progress is not linked). */
  linked: boolean
  samples: Array<[number, number]>
  pingAt: number
  pongs: number
  deaths: number
  sessions: number
  resumesBefore: number
  bytesBefore: [number, number]
}

/** What the monitor saw when it declared a connection dead (the `'dead'` event). */
export interface PoolDeathInfo {
  /** Time since the unanswered PING was sent, ms. */
  waited: number
  /** The deadline it passed: `deadBase` + `worstRtt`, ms. */
  deadline: number
  /** Worst RTT of this slot in the last `rttWindow` ms (PONGs, handshakes and resumes), ms. */
  worstRtt: number
}

/**
 * A self-healing pool of resumable sessions to one server.
 *
 * Events:
 * - `'up'` `(session, index)`: a slot's session completed its handshake.
 * - `'resumed'` `(index)`: a slot's session resumed on a new connection.
 * - `'dead'` `(index, info: PoolDeathInfo)`: no PONG within the deadline; the connection is dropped and the session resumes.
 * - `'retire'` `(index, worstRtt)`: the connection with the worst recent RTT is dropped (it resumes on a new one).
 * - `'down'` `(index, err)`: a slot's session closed (it could not be resumed); a new session replaces it.
 */
export class SessionPool extends EventEmitter {
  readonly #opts: Required<Omit<SessionPoolOptions, 'session'>> & { session: Omit<SessionOptions, 'role'> }
  readonly #members: Member[] = []
  /** `open()` calls waiting for a session to come up (not one 'up' listener each on this emitter). */
  readonly #upWaiters = new Set<(s: Session) => void>()
  #timer: NodeJS.Timeout | null = null
  #lastRetire = Date.now()
  #closed = false
  readonly #stats = { deaths: 0, retired: 0, replaced: 0 }

  constructor(options: SessionPoolOptions) {
    super()
    if (typeof options?.connect !== 'function') throw Object.assign(new TypeError('options.connect must be a function'), { code: 'ERR_INVALID_ARG_TYPE' })
    const size = options.size ?? 3
    if (!Number.isInteger(size) || size < 1 || size > 64) throw Object.assign(new RangeError('options.size must be an integer from 1 to 64'), { code: 'ERR_OUT_OF_RANGE' })
    this.#opts = {
      size,
      connect: options.connect,
      session: options.session ?? {},
      monitorInterval: options.monitorInterval ?? 250,
      deadBase: options.deadBase ?? 1000,
      rttWindow: options.rttWindow ?? 300_000,
      retireInterval: options.retireInterval ?? 60_000,
    }
  }

  /** Opens the connections and starts the monitor. */
  start(): this {
    if (this.#timer !== null || this.#closed) return this
    for (let i = 0; i < this.#opts.size; i++) this.#members.push(this.#spawn(i, null))
    this.#timer = setInterval(() => this.#monitor(), this.#opts.monitorInterval)
    this.#timer.unref?.()
    return this
  }

  #spawn(index: number, prev: Member | null): Member {
    const connect = (to?: RedirectAddress): Duplex | Promise<Duplex> => this.#opts.connect(index, to)
    const first = connect()
    const r = this.#opts.session.resumption
    const resumption = { ...(typeof r === 'object' && r !== null ? r : {}), connect }
    const make = (d: Duplex): Session => new Session(d, { ...this.#opts.session, role: 'client', resumption })
    // connect() may be async: wrap in a placeholder-free way by awaiting before creating.
    const m: Member = {
      index,
      session: null as unknown as Session,
      up: false,
      linked: false,
      samples: [],
      pingAt: 0,
      pongs: prev?.pongs ?? 0,
      deaths: prev?.deaths ?? 0,
      sessions: (prev?.sessions ?? 0) + 1,
      resumesBefore: prev ? prev.resumesBefore + prev.session.stats().resumes : 0,
      bytesBefore: prev ? [prev.bytesBefore[0] + prev.session.stats().bytesSent, prev.bytesBefore[1] + prev.session.stats().bytesReceived] : [0, 0],
    }
    const attach = (s: Session): void => {
      m.session = s
      s.on('error', () => {})
      // The handshake and every resume measure one RTT: they seed the worst
      // RTT, so the first PING on a slow path is not declared dead early
      // (and a false death cannot repeat forever for want of a sample).
      s.once('handshake', () => {
        m.up = true
        m.linked = true
        this.#sample(m, s.stats().rtt)
        this.emit('up', s, index)
        for (const w of [...this.#upWaiters]) w(s)
      })
      s.on('resumed', () => {
        m.linked = true
        this.#sample(m, s.stats().rtt)
        this.emit('resumed', index)
      })
      // Until the resume completes, a PING would wait for it: no PING, no
      // deadline (the session's own handshake timeout covers the attempt).
      s.on('detached', () => {
        m.linked = false
        m.pingAt = 0
      })
      s.once('close', (err?: MuxError) => {
        m.up = false
        m.linked = false
        if (this.#closed) return
        this.emit('down', index, err)
        if (this.#closed) return
        this.#stats.replaced++
        const i = this.#members.indexOf(m)
        if (i >= 0) this.#members[i] = this.#spawn(index, m)
      })
    }
    if (first instanceof Promise) {
      // Until the first connection exists, a closed stand-in keeps stats() simple.
      const standIn = { stats: () => ({ resumes: 0, bytesSent: 0, bytesReceived: 0, attached: false, rtt: 0 }), streamCount: 0, destroyed: false } as unknown as Session
      m.session = standIn
      first.then(
        (d) => (this.#closed ? d.destroy() : attach(make(d))),
        () => {
          if (this.#closed) return
          setTimeout(() => {
            const i = this.#members.indexOf(m)
            if (i >= 0 && !this.#closed) this.#members[i] = this.#spawn(index, m)
          }, 200).unref?.()
        },
      )
    } else {
      attach(make(first))
    }
    return m
  }

  #sample(m: Member, rtt: number): void {
    if (!(rtt > 0)) return
    m.samples.push([Date.now(), rtt])
    if (m.samples.length > 4096) m.samples.shift()
  }

  #worst(m: Member, now: number): number {
    const cut = now - this.#opts.rttWindow
    while (m.samples.length > 0 && m.samples[0]![0] < cut) m.samples.shift()
    let w = 0
    for (const [, r] of m.samples) if (r > w) w = r
    return w
  }

  #monitor(): void {
    const now = Date.now()
    for (const m of this.#members) {
      const s = m.session
      if (!m.linked || s.destroyed) continue
      if (m.pingAt !== 0) {
        // A PING is outstanding: dead after 1 s + the worst recent RTT.
        const worstRtt = this.#worst(m, now)
        const deadline = this.#opts.deadBase + worstRtt
        const at = m.pingAt
        if (now - at > deadline) {
          // Decide after this turn's poll phase: if our own event loop was
          // blocked, the PONG may be waiting in the socket right now.
          setImmediate(() => {
            if (this.#closed || m.pingAt !== at || !m.linked || m.session !== s || s.destroyed) return
            m.pingAt = 0
            m.deaths++
            this.#stats.deaths++
            const info: PoolDeathInfo = { waited: Date.now() - at, deadline, worstRtt }
            this.emit('dead', m.index, info)
            s.reconnect('no PONG within the pool deadline')
          })
        }
        continue
      }
      const at = now
      m.pingAt = at
      s.ping().then(
        (rtt) => {
          if (m.pingAt === at) m.pingAt = 0
          m.pongs++
          this.#sample(m, rtt)
        },
        () => {
          if (m.pingAt === at) m.pingAt = 0
        },
      )
    }
    const ri = this.#opts.retireInterval
    if (ri > 0 && now - this.#lastRetire >= ri && this.#members.length > 1) {
      this.#lastRetire = now
      const up = this.#members.filter((m) => m.linked && !m.session.destroyed)
      if (up.length === this.#members.length) {
        let worst = up[0]!
        for (const m of up) if (this.#worst(m, now) > this.#worst(worst, now)) worst = m
        const worstRtt = this.#worst(worst, now)
        this.#stats.retired++
        // The slot gets a new connection (maybe a new path): its RTT history starts over.
        worst.samples = []
        this.emit('retire', worst.index, worstRtt)
        worst.session.reconnect('retired: worst recent RTT in the pool')
      }
    }
  }

  /**
   * The best session now: attached, with room for a new stream (fewer
   * streams than the server accepts per session), lowest RTT weighted by
   * what is queued on it; `null` if none is up with room. `accept`, if
   * given, must also accept it.
   */
  pick(accept?: (session: Session) => boolean): Session | null {
    let best: Session | null = null
    let bestScore = Infinity
    for (const m of this.#members) {
      const s = m.session
      if (!m.up || s.destroyed || s.state !== 'open' || streamRoom(s) <= 0) continue
      if (accept !== undefined && !accept(s)) continue
      const st = s.stats()
      const queued = (s.duplex.writableLength ?? 0) + st.controlQueueBytes
      const score = (m.linked ? 0 : 1e6) + (Math.max(st.rtt, 0.1) + 1) * (1 + queued / 262_144 + st.streams / 16)
      if (score < bestScore) {
        bestScore = score
        best = s
      }
    }
    return best
  }

  /**
   * Opens a stream on the best session with room; waits (up to `wait` ms)
   * for one to come up. When every session is up and full, the stream
   * fails like `Session.open()` past the limit (`SYNMUX_TOO_MANY_STREAMS`).
   */
  async open(options: OpenOptions = {}, wait = 10_000): Promise<MuxStream> {
    let s = this.pick()
    if (s === null) s = this.#full()
    if (s === null) {
      this.start()
      s = await new Promise<Session>((resolve, reject) => {
        const t = setTimeout(() => {
          this.#upWaiters.delete(onUp)
          reject(new MuxError('SYNMUX_SESSION_CLOSED', 'no pool session came up in time'))
        }, wait)
        const onUp = (x: Session): void => {
          clearTimeout(t)
          this.#upWaiters.delete(onUp)
          resolve(x)
        }
        this.#upWaiters.add(onUp)
      })
    }
    return s.open(options)
  }

  /** When every slot has an open session and all are full: one of them (its `open()` reports the limit). */
  #full(): Session | null {
    const open = this.#members.filter((m) => m.up && !m.session.destroyed && m.session.state === 'open')
    return open.length === this.#members.length && open.length > 0 ? open[0]!.session : null
  }

  /** The sessions (one per slot; a slot's session changes when it is replaced). */
  get sessions(): Session[] {
    return this.#members.map((m) => m.session)
  }

  /** Live state of every member. */
  stats(): PoolStats {
    const now = Date.now()
    const members = this.#members.map((m): PoolMemberStats => {
      const s = m.session
      const st = s.stats()
      return {
        index: m.index,
        state: s.destroyed ? 'closed' : !m.up ? 'connecting' : m.linked ? 'up' : 'detached',
        rtt: Math.round(st.rtt * 100) / 100,
        worstRtt: Math.round(this.#worst(m, now) * 100) / 100,
        streams: s.streamCount,
        bytesSent: m.bytesBefore[0] + st.bytesSent,
        bytesReceived: m.bytesBefore[1] + st.bytesReceived,
        resumes: m.resumesBefore + st.resumes,
        pongs: m.pongs,
        deaths: m.deaths,
        sessions: m.sessions,
      }
    })
    return { size: this.#opts.size, up: members.filter((m) => m.state === 'up').length, members, ...this.#stats }
  }

  /** Stops the monitor and closes every session gracefully. */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await Promise.all(this.#members.map((m) => (m.session.destroyed || typeof m.session.close !== 'function' ? undefined : m.session.close())))
  }
}
