/**
 * Test helpers for the SessionPool tests: the loopback relay of the
 * resumption tests (a delay per byte for a slower path, `silence()` for a
 * silent death), deadline-bounded waits, and echo pumps.
 */
import crypto from 'node:crypto'
import type { MuxStream } from 'synmux'

export { Relay, nextEvent, until } from '../mux/resume-helpers.mjs'

/**
 * Echo traffic on a stream until `stop()`: writes pseudo-random blocks
 * (fresh Buffers) with backpressure; `received` counts the echo. `stop()`
 * ends the stream and resolves with the sha256 of what was sent and of
 * what came back.
 */
export function pump(st: MuxStream): { received: () => number; stop: () => Promise<{ sent: number; received: number; sentSha: string; receivedSha: string }> } {
  let sent = 0
  let received = 0
  let running = true
  const hs = crypto.createHash('sha256')
  const hr = crypto.createHash('sha256')
  const got = new Promise<void>((resolve, reject) => {
    st.on('data', (d: Buffer) => {
      received += d.length
      hr.update(d)
    })
    st.once('end', () => resolve())
    st.once('error', reject)
  })
  got.catch(() => {})
  const loop = (async () => {
    const seed = crypto.randomBytes(64 * 1024)
    let i = 0
    while (running) {
      const off = (i++ * 7919) % (seed.length - 16 * 1024)
      const b = Buffer.from(seed.subarray(off, off + 16 * 1024))
      b.writeUInt32BE(i, 0)
      hs.update(b)
      sent += b.length
      if (!st.write(b)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            st.off('drain', done)
            st.off('close', done)
            resolve()
          }
          st.on('drain', done)
          st.on('close', done)
        })
      }
      if (st.destroyed) break
    }
    st.end()
  })()
  return {
    received: () => received,
    stop: async () => {
      running = false
      await loop
      await got
      return { sent, received, sentSha: hs.digest('hex'), receivedSha: hr.digest('hex') }
    },
  }
}
