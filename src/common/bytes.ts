/**
 * Byte queues: a list of Buffers read from the front, as the frame
 * splitters of the lanes and the secure channel's records keep them.
 * @packageDocumentation
 */

/**
 * Removes the first `n` bytes of `queue` (which holds at least `n`) and
 * returns them as views of the Buffers they lie in, in order: no copy.
 * @internal
 */
export function takeViews(queue: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = []
  let left = n
  while (left > 0) {
    const c = queue[0]!
    if (c.length <= left) {
      out.push(c)
      queue.shift()
      left -= c.length
    } else {
      out.push(c.subarray(0, left))
      queue[0] = c.subarray(left)
      left = 0
    }
  }
  return out
}
