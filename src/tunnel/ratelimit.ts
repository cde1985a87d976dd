/**
 * Per-source limit on failed handshakes: after `maxFailures` failures within
 * `windowMs`, a source is refused (closed at once) until the window passes.
 * Memory is bounded: at most `maxSources` sources are tracked, the oldest
 * forgotten first.
 * @packageDocumentation
 */

/** Options of {@link FailureLimiter}. */
export interface FailureLimiterOptions {
  /** Failures allowed per window. Default 10. */
  maxFailures?: number
  /** Window length in ms. Default 60,000. */
  windowMs?: number
  /** Sources tracked at most. Default 10,000. */
  maxSources?: number
  /** Clock (for tests). */
  now?: () => number
}

interface Entry {
  since: number
  failures: number
}

/** Counts handshake failures per source address. */
export class FailureLimiter {
  readonly #max: number
  readonly #window: number
  readonly #maxSources: number
  readonly #now: () => number
  readonly #sources = new Map<string, Entry>()

  constructor(options: FailureLimiterOptions = {}) {
    this.#max = options.maxFailures ?? 10
    this.#window = options.windowMs ?? 60_000
    this.#maxSources = options.maxSources ?? 10_000
    this.#now = options.now ?? Date.now
  }

  #entry(source: string): Entry | undefined {
    const e = this.#sources.get(source)
    if (e && this.#now() - e.since >= this.#window) {
      this.#sources.delete(source)
      return undefined
    }
    return e
  }

  /** Whether a new connection from `source` may try to handshake. */
  allowed(source: string): boolean {
    const e = this.#entry(source)
    return !e || e.failures < this.#max
  }

  /** Records a failed handshake from `source`. */
  fail(source: string): void {
    const e = this.#entry(source)
    if (e) {
      e.failures++
      return
    }
    if (this.#sources.size >= this.#maxSources) {
      // Map iterates in insertion order: drop the oldest
      this.#sources.delete(this.#sources.keys().next().value!)
    }
    this.#sources.set(source, { since: this.#now(), failures: 1 })
  }

  /** The sources counted now, as `[source, ms since its window began, failures]` (for {@link FailureLimiter.load}). */
  snapshot(): Array<[source: string, age: number, failures: number]> {
    const now = this.#now()
    const out: Array<[string, number, number]> = []
    for (const [source, e] of this.#sources) if (now - e.since < this.#window) out.push([source, now - e.since, e.failures])
    return out
  }

  /** Adds counts taken elsewhere (another process of the same server, {@link FailureLimiter.snapshot}). */
  load(entries: Array<[source: string, age: number, failures: number]>): void {
    const now = this.#now()
    for (const [source, age, failures] of entries) {
      const e = this.#entry(source)
      if (e) {
        e.failures += failures
        e.since = Math.min(e.since, now - age)
      } else {
        for (let i = 0; i < failures; i++) this.fail(source)
        const n = this.#sources.get(source)
        if (n) n.since = now - age
      }
    }
  }

  /** Sources currently tracked. */
  get size(): number {
    return this.#sources.size
  }
}
