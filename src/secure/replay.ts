/**
 * The server's guard against replayed first flights (docs/PROTOCOL.md
 * 20.7): a timestamp window, a bounded cache of ephemeral keys seen in it,
 * and per client key the newest timestamp accepted (as WireGuard does).
 * @packageDocumentation
 */
import { invalidArgType, outOfRange } from '../common/arg-errors.js'
import type { EarlyRejectReason } from './payload.js'

/** Options of a {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /**
   * How far (ms) a first flight's timestamp may be from the server's clock,
   * either way, for its early data to be acted on. Default 30,000.
   */
  window?: number
  /**
   * The most first flights remembered (their ephemeral keys; the newest
   * timestamp per client key never needs more entries); when the cache is
   * full of entries still inside the window, further first flights are
   * refused (0-RTT rejected, not the handshake). Default 65,536.
   */
  maxEntries?: number
  /**
   * Flights timestamped at or before this time (ms since the Unix epoch) are
   * never fresh. Default: when this process started, so a flight recorded
   * before a restart of the server cannot be replayed into the new process.
   */
  notBefore?: number
  /** The clock, ms since the Unix epoch (default `Date.now`). For tests. */
  clock?: () => number
}

/** The verdict on a first flight. */
export type ReplayVerdict = { fresh: true } | { fresh: false; reason: Extract<EarlyRejectReason, 'clock' | 'replayed' | 'not-newer' | 'busy'> }

/**
 * What a server asks about each first flight: {@link ReplayGuard}, or a
 * stand-in for one that another process holds (the answer may then be a
 * promise). `check()` must judge and record as {@link ReplayGuard.check}.
 */
export interface ReplayChecker {
  check(serverKey: Uint8Array, clientKey: Uint8Array, ephemeral: Uint8Array, timestamp: number): ReplayVerdict | Promise<ReplayVerdict>
}

/**
 * Decides, at most once per first flight, whether its early data may be
 * acted on. `check()` both decides and, when the flight is fresh, records
 * it, so the same flight is never fresh twice. One guard serves every
 * connection of a server (a process-wide default serves servers that pass
 * none). Memory: at most `maxEntries` ephemeral keys and as many client
 * keys (about 200 bytes each).
 *
 * Rules (all must hold for "fresh"):
 * 1. `|timestamp - now| <= window`;
 * 2. the timestamp is after `notBefore` (default: when the process
 *    started, so a flight recorded before a restart of the server cannot
 *    be replayed into the new process);
 * 3. the ephemeral key was not seen in a fresh flight before;
 * 4. the timestamp is newer than the newest fresh one from the same client
 *    key (and server key).
 * Entries leave the caches once their timestamp is outside the window
 * (rule 1 then refuses any replay of them). A client's entry holds the
 * timestamp of one of the ephemeral entries, so the client map never holds
 * more entries than the ephemeral cache.
 */
export class ReplayGuard implements ReplayChecker {
  readonly #windowUs: number
  readonly #max: number
  readonly #clock: () => number
  readonly #floorUs: number
  #lastSweep = 0
  /** ephemeral key (latin1 of 32 bytes) → timestamp µs */
  readonly #ephemerals = new Map<string, number>()
  /** server key + client key (latin1) → newest accepted timestamp µs */
  readonly #clients = new Map<string, number>()

  constructor(options: ReplayGuardOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options)
    const window = options.window ?? 30_000
    if (typeof window !== 'number' || !Number.isFinite(window) || window < 0 || window > 86_400_000) throw outOfRange('options.window', '0 ... 86,400,000 ms', window)
    const max = options.maxEntries ?? 65_536
    if (!Number.isSafeInteger(max) || max < 1) throw outOfRange('options.maxEntries', 'a positive integer', max)
    if (options.clock !== undefined && typeof options.clock !== 'function') throw invalidArgType('options.clock', 'a function', options.clock)
    const notBefore = options.notBefore ?? performance.timeOrigin
    if (typeof notBefore !== 'number' || !Number.isFinite(notBefore)) throw outOfRange('options.notBefore', 'a time in ms since the Unix epoch', notBefore)
    this.#windowUs = window * 1000
    this.#max = max
    this.#clock = options.clock ?? Date.now
    this.#floorUs = notBefore * 1000
  }

  /** The window in ms. */
  get window(): number {
    return this.#windowUs / 1000
  }

  /** Entries held: `[ephemeral keys, client keys]`. */
  get size(): [number, number] {
    return [this.#ephemerals.size, this.#clients.size]
  }

  /**
   * Judges a first flight and records it when fresh.
   * @param serverKey the server's static public key.
   * @param clientKey the client's static public key (authenticated).
   * @param ephemeral the client's ephemeral public key of message 1.
   * @param timestamp message 1's timestamp, µs since the Unix epoch.
   */
  check(serverKey: Uint8Array, clientKey: Uint8Array, ephemeral: Uint8Array, timestamp: number): ReplayVerdict {
    const now = this.#clock() * 1000
    if (Math.abs(timestamp - now) > this.#windowUs) return { fresh: false, reason: 'clock' }
    if (timestamp <= this.#floorUs) return { fresh: false, reason: 'not-newer' }
    const eKey = Buffer.from(ephemeral).toString('latin1')
    if (this.#ephemerals.has(eKey)) return { fresh: false, reason: 'replayed' }
    const cKey = Buffer.concat([serverKey, clientKey]).toString('latin1')
    const newest = this.#clients.get(cKey)
    if (newest !== undefined && timestamp <= newest) return { fresh: false, reason: 'not-newer' }
    this.#expire(now)
    if (this.#ephemerals.size >= this.#max) return { fresh: false, reason: 'busy' }
    this.#ephemerals.set(eKey, timestamp)
    this.#clients.set(cKey, timestamp)
    return { fresh: true }
  }

  /**
   * Drops entries whose timestamps are outside the window (rule 1 refuses
   * their replays): a full sweep at most every quarter window, or when the
   * ephemeral cache is full (then at most once a second).
   */
  #expire(now: number): void {
    const due = now - this.#lastSweep >= this.#windowUs / 4
    const full = this.#ephemerals.size >= this.#max && now - this.#lastSweep >= 1_000_000
    if (!due && !full) return
    this.#lastSweep = now
    const horizon = now - this.#windowUs
    for (const map of [this.#ephemerals, this.#clients]) {
      for (const [k, ts] of map) {
        if (ts < horizon) map.delete(k)
      }
    }
  }
}

let shared: ReplayGuard | null = null

/** The process-wide guard used by servers that pass none. @internal */
export function sharedReplayGuard(): ReplayGuard {
  shared ??= new ReplayGuard()
  return shared
}
