/**
 * A FIFO queue with O(1) push and shift: the scheduler's queues of streams
 * (opens, windows, the round-robin ring) and the accept queue.
 * @packageDocumentation
 */

/** A FIFO queue with O(1) push/shift. @internal */
export class Queue<T> {
  #items: Array<T | undefined> = []
  #head = 0

  /** Number of queued items. */
  get length(): number {
    return this.#items.length - this.#head
  }

  /** Appends an item. */
  push(item: T): void {
    this.#items.push(item)
  }

  /** Removes and returns the first item. */
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head++] = undefined
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return item
  }

  /** The first item, without removing it. */
  peek(): T | undefined {
    return this.#items[this.#head]
  }

  /** Keeps only the items for which `keep` is true (in order). */
  retain(keep: (item: T) => boolean): void {
    const kept: T[] = []
    for (let i = this.#head; i < this.#items.length; i++) {
      const item = this.#items[i] as T
      if (keep(item)) kept.push(item)
    }
    this.#items = kept
    this.#head = 0
  }

  /** Removes everything. */
  clear(): void {
    this.#items = []
    this.#head = 0
  }
}
