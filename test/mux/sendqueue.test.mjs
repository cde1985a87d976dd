// A session's send queues (PROTOCOL.md 6.4): whatever credit the peer
// grants, the bytes the streams queue stay within maxSessionBuffer plus one
// write per stream while the peer does not read; the writers wait
// (write() false) and carry on, byte-exact, once it reads.
import { describe, it, expect, afterEach } from 'vitest'
import crypto from 'node:crypto'
import { Duplex } from 'node:stream'
import { Session, MUX_DEFAULTS } from 'synmux'
import { sessionPair } from './helpers.mjs'

/**
 * Two connected in-memory ends. While `a`'s peer is "not reading", what `a`
 * writes stays unacknowledged (its write callbacks wait, as with full socket
 * buffers), so everything a side holds is in its own queues.
 */
function memoryPair() {
  let blocked = false
  const held = []
  const mk = () =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk, _enc, cb) {
        if (blocked && this === a) held.push([chunk, cb])
        else {
          this.other.push(chunk)
          cb()
        }
      },
      final(cb) {
        this.other.push(null)
        cb()
      },
    })
  const a = mk()
  const b = mk()
  a.other = b
  b.other = a
  return {
    a,
    b,
    block: () => (blocked = true),
    unblock: () => {
      blocked = false
      for (const [chunk, cb] of held.splice(0)) {
        b.push(chunk)
        cb()
      }
    },
  }
}

const cleanup = []
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn()
})

describe('send queues', () => {
  it('a peer that grants a 2 GiB window and does not read: writers are held within maxSessionBuffer, then finish intact', async () => {
    const { a, b, block, unblock } = memoryPair()
    const budget = 1 << 20
    const client = new Session(a, { role: 'client', maxSessionBuffer: budget })
    const server = new Session(b, { role: 'server', initialWindow: 2 ** 31 - 1 })
    cleanup.push(() => client.destroy(), () => server.destroy())
    const got = new Map()
    server.on('stream', (st) => {
      const h = crypto.createHash('sha256')
      let n = 0
      st.on('data', (d) => (h.update(d), (n += d.length)))
      st.on('end', () => got.set(st.id, { n, sha: h.digest('hex') }))
    })
    await new Promise((r) => client.once('handshake', r))
    await new Promise((r) => setTimeout(r, 50))
    block() // the server stops reading: nothing the client writes is taken any more

    const STREAMS = 16
    const CHUNK = 64 * 1024
    const TOTAL = 2 * 1024 * 1024
    const streams = Array.from({ length: STREAMS }, () => client.open())
    const sent = streams.map(() => ({ n: 0, h: crypto.createHash('sha256') }))
    const chunk = (i, n) => crypto.createHash('sha256').update(`${i}:${n}`).digest().toString('hex').repeat(CHUNK / 64).slice(0, CHUNK)
    // Write until every writer is told to wait.
    let falses = 0
    let maxQueued = 0
    await new Promise((resolve) => {
      streams.forEach((st, i) => {
        const pump = () => {
          while (sent[i].n < TOTAL) {
            const c = Buffer.from(chunk(i, sent[i].n))
            sent[i].n += c.length
            sent[i].h.update(c)
            const ok = st.write(c)
            maxQueued = Math.max(maxQueued, client.stats().sendQueueBytes)
            if (!ok) {
              if (++falses === STREAMS) resolve()
              st.once('drain', pump)
              return
            }
          }
          st.end()
        }
        pump()
      })
    })
    // Give the flush loop time to hand everything it can to the (full) transport.
    await new Promise((r) => setTimeout(r, 200))
    const written = sent.reduce((s, x) => s + x.n, 0)
    // What the writers could hand over before all were told to wait: the session's budget, one write per
    // stream past it, one batch of output and the transport's own buffer; not a window's worth per stream
    // (16 × 2 GiB of credit), nor a high-water mark or two per stream.
    expect(written).toBeLessThanOrEqual(budget + STREAMS * CHUNK + MUX_DEFAULTS.writeBatch + a.writableHighWaterMark + 64 * 1024)
    expect(maxQueued).toBeLessThanOrEqual(budget + STREAMS * CHUNK)

    unblock() // the server reads again: every writer gets 'drain' and finishes
    const deadline = Date.now() + 20_000
    while (got.size < STREAMS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(got.size).toBe(STREAMS)
    streams.forEach((st, i) => expect(got.get(st.id)).toEqual({ n: TOTAL, sha: sent[i].h.digest('hex') }))
    expect(client.stats().sendQueueBytes).toBe(0)
  })
})

describe('send queue entries', () => {
  it('writers that keep their queues from emptying: what was taken is let go, the queue does not grow with every write', async () => {
    const { client, server } = await sessionPair()
    cleanup.push(() => client.destroy(), () => server.destroy())
    server.on('stream', (st) => st.resume())
    const STREAMS = 32
    const SIZE = 128
    const WRITES = 8192 // 1 MiB per stream
    const msg = Buffer.alloc(SIZE, 7)
    let maxEntries = 0
    await Promise.all(
      Array.from({ length: STREAMS }, () => {
        const st = client.open()
        return new Promise((resolve) => {
          let n = 0
          const pump = () => {
            while (n < WRITES) {
              n++
              const ok = st.write(msg)
              maxEntries = Math.max(maxEntries, st.sq.length)
              if (!ok) return st.once('drain', pump)
            }
            st.end()
            st.once('finish', resolve)
          }
          pump()
        })
      }),
    )
    // At most a high-water mark of live entries, and as many taken ones before they are dropped.
    const live = Math.ceil(MUX_DEFAULTS.streamHighWaterMark / SIZE) + 1
    expect(maxEntries).toBeLessThanOrEqual(2 * live + 64)
  })
})
