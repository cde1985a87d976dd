/**
 * The primary process of `synmux server --workers N`: it runs no sessions
 * itself. It forks N workers (`node:cluster`, each a whole tunnel server
 * sharing one listening socket that the kernel hands connections from),
 * replaces a worker that dies, passes connections between workers (a
 * RESUME or JOIN that reached a worker other than its session's: the
 * socket and the bytes already read), holds the replay guard every worker
 * asks about first flights, relays handshake failures so every worker
 * counts them, relays its signals, and gathers the workers' stats.
 * @packageDocumentation
 */
import cluster, { type Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import type net from 'node:net'
import { ReplayGuard } from '../../secure/replay.js'
import { FailureLimiter, type FailureLimiterOptions } from '../ratelimit.js'
import type { Logger } from '../../common/log.js'
import type { TunnelServerStats } from '../server-options.js'
import { WORKER_ENV, type PrimaryMessage, type WorkerMessage } from './messages.js'
import { sumStats } from './stats.js'

/** Options of a {@link ClusterPrimary}. */
export interface ClusterPrimaryOptions {
  /** Worker processes (2 ... 255). */
  workers: number
  logger: Logger
  /** The replay guard's window in ms (PROTOCOL.md 20.7). Default 30,000. */
  replayWindow?: number
  /** Restarting a worker that died waits this long at first (ms), doubling while workers die within 10 s of starting, up to 10 s. Default 100. */
  restartDelay?: number
  /** The server's limit on failed handshakes per source (counted here too, for workers that start later). */
  handshakeLimit?: FailureLimiterOptions
}

/** One worker slot. */
interface Slot {
  index: number
  worker: Worker | null
  ready: boolean
  /** Draining: it closed its listener. */
  unlistened: boolean
  startedAt: number
  restarts: number
}

/** The cluster's combined stats: the server's and the workers'. */
export interface ClusterStats {
  stats: TunnelServerStats | null
  /** Workers answering now, of `workers`. */
  up: number
  workers: number
  /** Workers restarted after dying. */
  restarts: number
  /** Connections handed from one worker to another (RESUMEs and JOINs that reached another worker), and RESUMEs/JOINs redirected to another instance. */
  handedOff: number
  redirected: number
  /** New sessions handed to the worker with the fewest. */
  balanced: number
}

const STATS_WAIT_MS = 1000

/** See the module comment. */
export class ClusterPrimary extends EventEmitter {
  readonly #o: Required<Omit<ClusterPrimaryOptions, 'replayWindow' | 'handshakeLimit'>>
  /** Failed handshakes by source, as the workers report them. */
  readonly #failures: FailureLimiter
  /** Each worker's unauthenticated connections by source, as it reports them. */
  readonly #held = new Map<number, Map<string, number>>()
  /** Sessions each worker holds, as it reports them. */
  readonly #loads = new Map<number, number>()
  readonly #slots: Slot[] = []
  readonly #guard: ReplayGuard
  #stopping = false
  #started = false
  /** A worker exited before all listened: the start failed. */
  #failed = false
  #codes: number[] = []
  #restarts = 0
  #nextId = 0
  readonly #statsWaits = new Map<number, { got: Array<WorkerMessage & { synmux: 'stats' }>; want: number; done: () => void }>()
  #exited: Promise<number> | null = null
  #resolveExited: ((code: number) => void) | null = null

  constructor(o: ClusterPrimaryOptions) {
    super()
    this.#o = { workers: o.workers, logger: o.logger, restartDelay: o.restartDelay ?? 100 }
    this.#guard = new ReplayGuard(o.replayWindow !== undefined ? { window: o.replayWindow } : {})
    this.#failures = new FailureLimiter(o.handshakeLimit)
  }

  /**
   * Forks the workers; resolves when every one listens, with the first
   * one's listening line; rejects (with the exit code as `code`) if one
   * exits before — a port in use, a key it cannot read — after stopping
   * the others.
   */
  start(): Promise<{ address: string; port: number; line: string }> {
    // The kernel hands each connection to one of the workers that share the listening socket
    // (not the primary round-robin: no accept() here, and TFO is set on that very socket).
    cluster.schedulingPolicy = cluster.SCHED_NONE
    this.#exited = new Promise((resolve) => (this.#resolveExited = resolve))
    return new Promise((resolve, reject) => {
      let first: { address: string; port: number; line: string } | null = null
      const onReady = (slot: Slot, m: { address: string; port: number; line: string }): void => {
        first ??= m
        // Worker 0 first: what stops one worker (a port in use, a key it cannot read) is said once, by it.
        if (slot.index === 0 && !this.#started) for (const s of this.#slots.slice(1)) if (s.worker === null) this.#fork(s)
        if (this.#started || !this.#slots.every((s) => s.ready)) return
        this.#started = true
        resolve(first)
      }
      const onEarlyExit = (slot: Slot, code: number): void => {
        if (this.#started || this.#failed) return
        this.#failed = true
        this.#stopping = true
        for (const s of this.#slots) s.worker?.process.kill('SIGKILL')
        reject(Object.assign(new Error(`worker ${slot.index} exited with code ${code} while starting`), { code }))
      }
      this.on('ready', onReady)
      this.on('early-exit', onEarlyExit)
      for (let i = 0; i < this.#o.workers; i++) this.#slots.push({ index: i, worker: null, ready: false, unlistened: false, startedAt: 0, restarts: 0 })
      this.#fork(this.#slots[0]!)
    })
  }

  /** The workers' process ids (`null` for a slot being restarted). */
  pids(): Array<number | null> {
    return this.#slots.map((s) => s.worker?.process.pid ?? null)
  }

  /** Relays a signal to every worker: SIGTERM and SIGINT drain (a second SIGINT closes at once), SIGHUP reloads. */
  signal(signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP'): void {
    if (signal !== 'SIGHUP') this.#stopping = true
    for (const s of this.#slots) this.#send(s, { synmux: 'signal', signal })
    if (this.#stopping) this.#maybeDone()
  }

  /** Ends every worker at once (SIGKILL). */
  kill(): void {
    this.#stopping = true
    for (const s of this.#slots) s.worker?.process.kill('SIGKILL')
  }

  /** Resolves when every worker has exited after a stop, with the highest exit code. */
  exited(): Promise<number> {
    return this.#exited ?? Promise.resolve(0)
  }

  /** Asks every worker for its stats (those that answer within a second count). */
  async stats(): Promise<ClusterStats> {
    const live = this.#slots.filter((s) => s.ready && s.worker?.isConnected())
    const id = this.#nextId++
    const got: Array<WorkerMessage & { synmux: 'stats' }> = []
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, STATS_WAIT_MS)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#statsWaits.set(id, { got, want: live.length, done })
      if (live.length === 0) done()
      for (const s of live) this.#send(s, { synmux: 'stats?', id })
    })
    this.#statsWaits.delete(id)
    return {
      stats: sumStats(got.map((g) => g.stats)),
      up: got.length,
      workers: this.#o.workers,
      restarts: this.#restarts,
      handedOff: got.reduce((n, g) => n + g.handedOff, 0),
      redirected: got.reduce((n, g) => n + g.redirected, 0),
      balanced: got.reduce((n, g) => n + g.balanced, 0),
    }
  }

  #fork(slot: Slot): void {
    const worker = cluster.fork({ [WORKER_ENV]: `${slot.index}/${this.#o.workers}` })
    slot.worker = worker
    slot.ready = false
    slot.startedAt = Date.now()
    worker.on('message', (m: WorkerMessage, handle?: net.Socket) => this.#onMessage(slot, worker, m, handle))
    worker.on('error', () => {})
    worker.on('exit', (code, signal) => this.#onExit(slot, worker, code, signal))
  }

  #onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return
    const wasReady = slot.ready
    slot.worker = null
    slot.ready = false
    // What it held (unauthenticated connections) is gone with it; it no longer holds the listening socket.
    this.#held.delete(slot.index)
    this.#loads.delete(slot.index)
    for (const s of this.#slots) this.#send(s, { synmux: 'gone', worker: slot.index })
    this.#checkUnlistened()
    const exitCode = code ?? 1
    if (!this.#started || this.#stopping) {
      this.#codes.push(exitCode)
      if (!this.#started) this.emit('early-exit', slot, exitCode)
      this.#maybeDone()
      return
    }
    // A worker died while serving: its sessions are gone (their clients start new ones); the others go on.
    const quick = Date.now() - slot.startedAt < 10_000
    slot.restarts = quick ? slot.restarts + 1 : 0
    const delay = Math.min(this.#o.restartDelay * 2 ** Math.max(0, slot.restarts - 1), 10_000)
    this.#restarts++
    this.#o.logger.error(`worker ${slot.index} (pid ${worker.process.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}${wasReady ? '' : ' before listening'}; its sessions are lost; starting a new worker ${slot.index} in ${delay} ms`)
    setTimeout(() => {
      if (!this.#stopping && slot.worker === null) this.#fork(slot)
    }, delay).unref()
  }

  /**
   * Once every worker has closed its listener (its message comes after
   * the cluster's own, on which this process closes the listening socket
   * when no worker uses it), they all learn that new connections are
   * refused now.
   */
  #checkUnlistened(): void {
    const live = this.#slots.filter((s) => s.worker !== null)
    if (live.length === 0 || !live.every((s) => s.unlistened)) return
    for (const s of live) {
      s.unlistened = false
      this.#send(s, { synmux: 'unlistened' })
    }
  }

  #maybeDone(): void {
    if (this.#slots.some((s) => s.worker !== null)) return
    this.#resolveExited?.(this.#codes.reduce((a, b) => Math.max(a, b), 0))
  }

  #send(slot: Slot, m: PrimaryMessage, handle?: net.Socket, cb?: (err: Error | null) => void): boolean {
    const w = slot.worker
    if (w === null || !w.isConnected()) return false
    try {
      w.send(m, handle, cb)
      return true
    } catch {
      return false
    }
  }

  #onMessage(slot: Slot, worker: Worker, m: WorkerMessage, handle?: net.Socket): void {
    if (m === null || typeof m !== 'object' || typeof (m as { synmux?: unknown }).synmux !== 'string' || slot.worker !== worker) {
      // (prom-client's own messages, or a worker already replaced)
      if (handle !== undefined && (m as { synmux?: unknown })?.synmux === 'handoff') handle.destroy()
      return
    }
    switch (m.synmux) {
      case 'ready':
        slot.ready = true
        if (this.#started) this.#o.logger.info(`worker ${slot.index} (pid ${worker.process.pid}) is up again`)
        this.emit('ready', slot, m)
        return
      case 'handoff': {
        if (handle === undefined) return
        // Not read here either: the bytes wait in the kernel for the worker that owns the session.
        ;(handle as net.Socket & { _handle?: { readStop?: () => number } })._handle?.readStop?.()
        const to = this.#slots[m.to]
        const ok = to !== undefined && to.ready && this.#send(to, { synmux: 'handoff', head: m.head }, handle, () => handle.destroy())
        if (!ok) handle.destroy() // its worker is gone (and with it the session): the client tries again
        return
      }
      case 'replay': {
        const b = (s: string) => Buffer.from(s, 'base64')
        let verdict
        try {
          verdict = this.#guard.check(b(m.server), b(m.client), b(m.ephemeral), m.timestamp)
        } catch {
          verdict = { fresh: false as const, reason: 'busy' as const }
        }
        this.#send(slot, { synmux: 'replay', id: m.id, verdict })
        return
      }
      case 'failed':
        this.#failures.fail(m.source)
        for (const s of this.#slots) if (s !== slot) this.#send(s, { synmux: 'failed', source: m.source })
        return
      case 'held': {
        let counts = this.#held.get(slot.index)
        if (counts === undefined) this.#held.set(slot.index, (counts = new Map()))
        for (const [source, d] of m.deltas) {
          const n = (counts.get(source) ?? 0) + d
          if (n > 0) counts.set(source, n)
          else counts.delete(source)
        }
        for (const s of this.#slots) if (s !== slot) this.#send(s, { synmux: 'held', worker: slot.index, deltas: m.deltas })
        return
      }
      case 'load':
        this.#loads.set(slot.index, m.sessions)
        for (const s of this.#slots) if (s !== slot) this.#send(s, { synmux: 'load', worker: slot.index, sessions: m.sessions })
        return
      case 'sync?': {
        // A worker about to listen learns what the others count; what changes after this reaches it as it happens.
        const held = [...this.#held].filter(([i]) => i !== slot.index).map(([i, c]) => [i, [...c]] as [number, Array<[string, number]>])
        this.#send(slot, { synmux: 'sync', failures: this.#failures.snapshot(), held, loads: [...this.#loads].filter(([i]) => i !== slot.index) })
        return
      }
      case 'unlistened':
        slot.unlistened = true
        this.#checkUnlistened()
        return
      case 'stats': {
        const w = this.#statsWaits.get(m.id)
        if (w === undefined) return
        w.got.push(m)
        if (w.got.length >= w.want) w.done()
        return
      }
    }
  }
}
