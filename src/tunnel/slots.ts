/**
 * Connect slots: how many onward connects of one session run at once. A
 * slot is held while a stream's target is resolved and connected, and
 * released as soon as that connect succeeds or fails (the relay that
 * follows holds none); the streams beyond the limit wait in order, and a
 * stream that closes while it waits leaves the queue at once.
 * @packageDocumentation
 */

/** What waits for a slot: anything that says when it closes (a `MuxStream`). */
export interface SlotHolder {
  readonly destroyed: boolean
  once(event: 'close', listener: () => void): unknown
  off(event: 'close', listener: () => void): unknown
}

/** At most `max` tasks at once; the rest wait first come, first served. */
export class ConnectSlots {
  readonly max: number
  #running = 0
  /** Waiting starts, in arrival order (a Set keeps insertion order and deletes in O(1)). */
  readonly #waiting = new Set<() => void>()

  constructor(max: number) {
    this.max = max
  }

  /** Tasks running now. */
  get running(): number {
    return this.#running
  }

  /** Holders waiting for a slot. */
  get waiting(): number {
    return this.#waiting.size
  }

  /**
   * Runs `task` for `holder` once a slot is free and releases the slot when
   * the task settles. Resolves with the task's result, or `null` without
   * running it if the holder closed before its turn.
   */
  run<T>(holder: SlotHolder, task: () => Promise<T>): Promise<T | null> {
    return new Promise<T | null>((resolve, reject) => {
      const onClose = (): void => {
        if (this.#waiting.delete(start)) resolve(null)
      }
      const start = (): void => {
        this.#waiting.delete(start)
        holder.off('close', onClose)
        if (holder.destroyed) return resolve(null)
        this.#running++
        let p: Promise<T>
        try {
          p = task()
        } catch (err) {
          p = Promise.reject(err)
        }
        p.then(resolve, reject).finally(() => {
          this.#running--
          this.#next()
        })
      }
      if (this.#running < this.max && this.#waiting.size === 0) return start()
      this.#waiting.add(start)
      holder.once('close', onClose)
    })
  }

  /** Starts waiting tasks while slots are free (a holder found closed takes none). */
  #next(): void {
    while (this.#running < this.max) {
      const start = this.#waiting.values().next()
      if (start.done) return
      start.value()
    }
  }
}
