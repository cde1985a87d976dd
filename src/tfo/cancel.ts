/**
 * `Cancel`: how one `connectWithData` call is called off (its timeout, the
 * caller's signal), shared by every step of the connect. The subset of
 * `AbortSignal` those steps use, without an `AbortController` and an
 * `EventTarget` per connect (a forwarded connection's critical path pays
 * for both).
 * @internal
 * @packageDocumentation
 */

/** What a connect step sees of its cancellation (an `AbortSignal` fits too). @internal */
export interface CancelSignal {
  readonly aborted: boolean
  readonly reason: unknown
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: () => void): void
}

/** A one-shot cancellation: `abort(reason)` runs each listener once. @internal */
export class Cancel implements CancelSignal {
  aborted = false
  reason: unknown = undefined
  #listeners: Array<() => void> = []

  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    const listeners = this.#listeners
    this.#listeners = []
    for (const l of listeners) l()
  }

  /** Listeners run once (as with `{ once: true }`). */
  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) this.#listeners.push(listener)
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.#listeners.indexOf(listener)
    if (i >= 0) this.#listeners.splice(i, 1)
  }
}
