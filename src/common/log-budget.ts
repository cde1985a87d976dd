/**
 * A budget of log lines per subject (a session, say): at most `lines` in
 * any `intervalMs`; what goes past it is counted, not written, and the
 * next line written says how many were left out. A peer that can make the
 * server log a line per message (an authenticated client opening refused
 * streams as fast as it can send OPENs) then costs a bounded number of
 * lines, while the counters (`stats()`, `--metrics`) still count every
 * event.
 * @packageDocumentation
 */

interface Entry {
  since: number
  used: number
  skipped: number
}

/** Lines per subject per interval; subjects are objects, held weakly. */
export class LineBudget {
  readonly #lines: number
  readonly #interval: number
  readonly #now: () => number
  readonly #by = new WeakMap<object, Entry>()

  /** `lines` per `intervalMs` for each subject (defaults: 20 per 10 s). */
  constructor(lines = 20, intervalMs = 10_000, now: () => number = Date.now) {
    this.#lines = lines
    this.#interval = intervalMs
    this.#now = now
  }

  /**
   * Whether a line about `subject` may be written now: `null` if not (it is
   * counted); else the text to append to it — `''`, or
   * ` (N more not logged)` after lines were left out.
   */
  take(subject: object): string | null {
    const now = this.#now()
    let e = this.#by.get(subject)
    if (e === undefined) this.#by.set(subject, (e = { since: now, used: 0, skipped: 0 }))
    else if (now - e.since >= this.#interval) {
      e.since = now
      e.used = 0
    }
    if (e.used >= this.#lines) {
      e.skipped++
      return null
    }
    e.used++
    const skipped = e.skipped
    e.skipped = 0
    return skipped > 0 ? ` (${skipped} more not logged)` : ''
  }

  /** Lines about `subject` counted and not written since its last line written (for a closing line). */
  skipped(subject: object): number {
    return this.#by.get(subject)?.skipped ?? 0
  }
}
