/**
 * One worker process of `synmux server --workers N`: the routing its
 * {@link TunnelServer} uses (session ids name this worker; RESUMEs and
 * JOINs for another worker's sessions are handed to it through the
 * primary, with the bytes already read), the replay guard the primary
 * holds for all workers, handshake failures counted by every worker, and
 * the primary's signals and stats requests.
 * @packageDocumentation
 */
import cluster from 'node:cluster'
import { EventEmitter } from 'node:events'
import type net from 'node:net'
import type { RedirectAddress } from '../../mux/wire/redirect.js'
import type { ReplayChecker, ReplayVerdict } from '../../secure/replay.js'
import { FailureLimiter } from '../ratelimit.js'
import type { TunnelServer } from '../server.js'
import type { AdmissionPeers } from '../handshakes.js'
import type { Session } from '../../mux/session/session.js'
import { Routing } from './routing.js'
import { WORKER_ENV, type PrimaryMessage, type WorkerMessage } from './messages.js'

/** How long a worker waits for the primary's verdict on a first flight before it takes it as `busy` (0-RTT rejected: safe). */
const REPLAY_ANSWER_MS = 2000

/** This process's place in a cluster (`{ index, workers }`), or `null` when it is not a synmux worker. */
export function workerPlace(): { index: number; workers: number } | null {
  const v = process.env[WORKER_ENV]
  if (!cluster.isWorker || v === undefined) return null
  const m = /^(\d+)\/(\d+)$/.exec(v)
  return m ? { index: Number(m[1]), workers: Number(m[2]) } : null
}

const send = (m: WorkerMessage, handle?: net.Socket, cb?: (err: Error | null) => void): void => {
  if (!process.connected) return cb?.(new Error('the primary is gone'))
  try {
    process.send!(m, handle, {}, cb)
  } catch (err) {
    cb?.(err as Error)
  }
}

/** The primary's replay guard, asked over IPC. */
class PrimaryReplayGuard implements ReplayChecker {
  #next = 0
  readonly #pending = new Map<number, { resolve: (v: ReplayVerdict) => void; timer: NodeJS.Timeout }>()

  check(serverKey: Uint8Array, clientKey: Uint8Array, ephemeral: Uint8Array, timestamp: number): Promise<ReplayVerdict> {
    const id = this.#next++
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.answer(id, { fresh: false, reason: 'busy' }), REPLAY_ANSWER_MS)
      timer.unref()
      this.#pending.set(id, { resolve, timer })
      const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64')
      send({ synmux: 'replay', id, server: b64(serverKey), client: b64(clientKey), ephemeral: b64(ephemeral), timestamp }, undefined, (err) => {
        if (err) this.answer(id, { fresh: false, reason: 'busy' })
      })
    })
  }

  answer(id: number, verdict: ReplayVerdict): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#pending.delete(id)
    clearTimeout(p.timer)
    p.resolve(verdict)
  }
}

/** Handshake failures of every worker, counted here (a source over the limit is refused by all). */
class SharedFailureLimiter extends FailureLimiter {
  override fail(source: string): void {
    super.fail(source)
    send({ synmux: 'failed', source })
  }

  /** Another worker counted a failure. */
  remoteFail(source: string): void {
    super.fail(source)
  }
}

/**
 * The unauthenticated connections the other workers hold, as they report
 * them (through the primary, within about a millisecond), and this
 * worker's own changes, sent in one message per event-loop turn.
 */
class SharedAdmission implements AdmissionPeers {
  /** worker → source → count */
  readonly #others = new Map<number, Map<string, number>>()
  #total = 0
  #pending = new Map<string, number>()
  #flush: NodeJS.Immediate | null = null

  held(source: string): { total: number; source: number } {
    let n = 0
    for (const m of this.#others.values()) n += m.get(source) ?? 0
    return { total: this.#total, source: n }
  }

  changed(source: string, delta: 1 | -1): void {
    this.#pending.set(source, (this.#pending.get(source) ?? 0) + delta)
    this.#flush ??= setImmediate(() => {
      this.#flush = null
      const deltas = [...this.#pending].filter(([, d]) => d !== 0)
      this.#pending = new Map()
      if (deltas.length > 0) send({ synmux: 'held', deltas })
    })
  }

  /** Another worker's changes. */
  apply(worker: number, deltas: Array<[string, number]>): void {
    let m = this.#others.get(worker)
    if (m === undefined) this.#others.set(worker, (m = new Map()))
    for (const [source, d] of deltas) {
      const n = (m.get(source) ?? 0) + d
      if (n > 0) m.set(source, n)
      else m.delete(source)
      this.#total += d
    }
  }

  /** A worker died: what it held is gone. */
  forget(worker: number): void {
    const m = this.#others.get(worker)
    if (m === undefined) return
    for (const n of m.values()) this.#total -= n
    this.#others.delete(worker)
  }
}

/** How long a placement counts against a worker before its session shows in the worker's own count. */
const RECENT_MS = 2000

/**
 * Sessions per worker, as each reports them, for placing new sessions on
 * the worker with the fewest. Sessions placed in the last 2 s count too
 * (a worker's report comes after the session is up), so a burst of new
 * sessions spreads instead of all going to the one that looked emptiest.
 */
class Placement {
  readonly #me: number
  #mine = 0
  readonly #others = new Map<number, number>()
  readonly #recent = new Map<number, number>()
  #report: NodeJS.Immediate | null = null

  constructor(me: number) {
    this.#me = me
  }

  /** The worker for a new session (`null`: here). */
  place(): number | null {
    const load = (w: number): number => (w === this.#me ? this.#mine : this.#others.get(w)!) + (this.#recent.get(w) ?? 0)
    let best = this.#me
    for (const w of this.#others.keys()) if (load(w) < load(best)) best = w
    this.#recent.set(best, (this.#recent.get(best) ?? 0) + 1)
    setTimeout(() => {
      const n = (this.#recent.get(best) ?? 1) - 1
      if (n > 0) this.#recent.set(best, n)
      else this.#recent.delete(best)
    }, RECENT_MS).unref()
    return best === this.#me ? null : best
  }

  /** This worker's sessions changed: the others learn it (one message per event-loop turn). */
  mine(n: number): void {
    this.#mine = n
    this.#report ??= setImmediate(() => {
      this.#report = null
      send({ synmux: 'load', sessions: this.#mine })
    })
  }

  other(worker: number, sessions: number): void {
    this.#others.set(worker, sessions)
  }

  gone(worker: number): void {
    this.#others.delete(worker)
    this.#recent.delete(worker)
  }
}

/** Options of a {@link ClusterWorker}. */
export interface ClusterWorkerOptions {
  index: number
  workers: number
  /** `--instance-id` (0: none) and `--advertise`. */
  instance?: number
  advertise?: RedirectAddress | null
}

/** See the module comment. */
export class ClusterWorker {
  readonly index: number
  readonly routing: Routing
  /** The primary's signals (`'SIGTERM'`, `'SIGINT'`, `'SIGHUP'`), for `runUntilStopped`. */
  readonly signals = new EventEmitter()
  readonly #guard = new PrimaryReplayGuard()
  readonly #admission = new SharedAdmission()
  readonly #placement: Placement
  #unlistened: (() => void) | null = null
  #limiter: SharedFailureLimiter | null = null
  /** Failed handshakes other workers counted before this one's limiter existed. */
  #early: { snapshot: Array<[string, number, number]>; failures: string[] } = { snapshot: [], failures: [] }
  #synced: (() => void) | null = null
  #server: TunnelServer | null = null

  constructor(o: ClusterWorkerOptions) {
    this.index = o.index
    this.#placement = new Placement(o.index)
    this.routing = new Routing({
      placeNew: () => this.#placement.place(),
      worker: o.index,
      workers: o.workers,
      instance: o.instance ?? 0,
      advertise: o.advertise ?? null,
      replayGuard: this.#guard,
      handoff: (socket, head, to) => this.#handOff(socket, head, to),
      failureLimiter: (options) => {
        if (this.#limiter !== null) return this.#limiter
        const limiter = (this.#limiter = new SharedFailureLimiter(options))
        limiter.load(this.#early.snapshot)
        for (const source of this.#early.failures) limiter.remoteFail(source)
        this.#early = { snapshot: [], failures: [] }
        return limiter
      },
      admission: this.#admission,
    })
    process.on('message', (m: PrimaryMessage, handle?: net.Socket) => this.#onMessage(m, handle))
    // Signals come from the primary (which relays what it gets); a terminal's Ctrl-C reaches every process of the group, and must count once.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => {})
    // Without its primary a worker is out of reach of signals, handoffs and the replay guard: it ends.
    process.once('disconnect', () => {
      process.stderr.write(`${new Date().toISOString()} error server: worker ${o.index}: the primary process is gone; exiting\n`, () => process.exit(1))
    })
  }

  /** Serves handoffs and stats requests for `server`, and tells the primary it listens. */
  ready(server: TunnelServer, line: string): void {
    this.#server = server
    let sessions = 0
    this.#placement.mine(0) // (the others learn that this one is up)
    server.on('session', (s: Session) => {
      this.#placement.mine(++sessions)
      s.once('close', () => this.#placement.mine(--sessions))
    })
    const a = server.address()
    send({ synmux: 'ready', address: a.address, port: a.port, line })
  }

  /**
   * Before listening: learns what the other workers count (failed
   * handshakes per source, unauthenticated connections), so that a worker
   * that starts later — or again, after one died — enforces the same
   * limits from its first connection. Resolves after 2 s at most.
   */
  sync(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, 2000)
      timer.unref()
      const self = this
      function done(): void {
        clearTimeout(timer)
        self.#synced = null
        resolve()
      }
      this.#synced = done
      send({ synmux: 'sync?' }, undefined, (err) => err && done())
    })
  }

  /**
   * Draining: `server` stops listening; resolves once every worker has
   * (the listening socket they share is closed only then: before, the
   * kernel still queues connections on it), or after 2 s.
   */
  stopAccepting(server: TunnelServer): { closed: Promise<void>; refusing: Promise<void> } {
    const closed = server.close()
    const refusing = new Promise<void>((resolve) => {
      const timer = setTimeout(done, 2000)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#unlistened = done
    })
    // (sent after the cluster's own message that this worker's listener closed)
    send({ synmux: 'unlistened' }, undefined, (err) => err && this.#unlistened?.())
    return { closed, refusing }
  }

  #onMessage(m: PrimaryMessage, handle?: net.Socket): void {
    if (m === null || typeof m !== 'object' || typeof (m as { synmux?: unknown }).synmux !== 'string') return
    switch (m.synmux) {
      case 'handoff': {
        if (handle === undefined) return
        const server = this.#server
        if (server === null) return void handle.destroy()
        this.routing.adopted(handle)
        server.adopt(handle, Buffer.from(m.head, 'base64'))
        return
      }
      case 'replay':
        return this.#guard.answer(m.id, m.verdict)
      case 'failed':
        if (this.#limiter !== null) this.#limiter.remoteFail(m.source)
        else this.#early.failures.push(m.source)
        return
      case 'sync':
        // (The counts in it include what was relayed here before it: they replace it.)
        if (this.#synced === null || this.#limiter !== null) return
        this.#early = { snapshot: m.failures, failures: [] }
        for (const [worker, counts] of m.held) {
          this.#admission.forget(worker)
          this.#admission.apply(worker, counts)
        }
        for (const [worker, sessions] of m.loads) if (worker !== this.index) this.#placement.other(worker, sessions)
        this.#synced()
        return
      case 'held':
        return this.#admission.apply(m.worker, m.deltas)
      case 'gone':
        this.#placement.gone(m.worker)
        return this.#admission.forget(m.worker)
      case 'load':
        return this.#placement.other(m.worker, m.sessions)
      case 'unlistened':
        this.#unlistened?.()
        return
      case 'stats?': {
        const stats = this.#server?.stats()
        if (stats !== undefined) send({ synmux: 'stats', id: m.id, stats, ...this.routing.counts })
        return
      }
      case 'signal':
        this.signals.emit(m.signal)
        return
    }
  }

  /**
   * Sends `socket` to worker `to` through the primary, with every byte read
   * from it: reading stops first (what arrives later waits in the kernel
   * for the new owner), and this process lets go of it once it is sent.
   */
  #handOff(socket: net.Socket, head: Buffer, to: number): void {
    socket.pause()
    const chunks = [head]
    for (let c: Buffer | null; (c = socket.read() as Buffer | null) !== null; ) chunks.push(c)
    ;(socket as net.Socket & { _handle?: { readStop?: () => number } })._handle?.readStop?.()
    const all = chunks.length === 1 ? head : Buffer.concat(chunks)
    send({ synmux: 'handoff', to, head: all.toString('base64') }, socket, () => socket.destroy())
  }
}
