// Flow control: per-stream credit, Node backpressure end to end, no
// head-of-line blocking between streams, fair scheduling, window
// auto-tuning towards the bandwidth-delay product, the session buffer cap.
import { describe, it, expect, afterEach } from 'vitest'
import crypto from 'node:crypto'
import { Session, RefuseCode } from 'synmux'
import { sessionPair, delayedPair, roundTrips, collect, nextError, once, sha256 } from './helpers.mjs'

const cleanup = []
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn()
})
const track = (...s) => s.forEach((x) => cleanup.push(() => x.destroy()))

/** Writes `total` bytes in `chunk`-sized pieces honouring backpressure; resolves with { hash, falses }. */
async function pump(stream, total, chunk = 65536, state = {}) {
  const h = crypto.createHash('sha256')
  let sent = 0
  let falses = 0
  while (sent < total && !state.stop) {
    const n = Math.min(chunk, total - sent)
    const buf = crypto.randomBytes(n)
    h.update(buf)
    sent += n
    state.sent = sent
    if (!stream.write(buf)) {
      falses++
      state.blocked = true
      await once(stream, 'drain')
      state.blocked = false
    }
  }
  stream.end()
  return { hash: h.digest('hex'), falses, sent }
}

function hashOf(stream) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256')
    let n = 0
    stream.on('data', (d) => {
      h.update(d)
      n += d.length
    })
    stream.once('end', () => resolve({ hash: h.digest('hex'), n }))
    stream.once('error', reject)
  })
}

describe('flow control', () => {
  it('a paused reader stops the sender after exactly one window; write() false, drain after resume', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    let srv
    server.on('stream', (s) => {
      srv = s
      s.pause()
    })
    const st = client.open()
    const state = {}
    const sending = pump(st, 8 * 1024 * 1024, 65536, state)
    // Let everything in flight land (the sender blocks on credit).
    await roundTrips(client, 3)
    expect(state.blocked).toBe(true)
    expect(server.stats().bufferedBytes).toBe(262144)
    expect(srv.readableLength).toBe(262144)
    expect(st.sendCredit).toBe(0)
    // The sender holds at most its high-water marks, not the 8 MiB.
    expect(st.writableLength).toBeLessThanOrEqual(2 * st.writableHighWaterMark + 65536)
    const sentWhileBlocked = state.sent
    await roundTrips(client, 2)
    expect(state.sent).toBe(sentWhileBlocked) // still blocked: no drain while paused
    srv.resume()
    const got = hashOf(srv)
    const sent = await sending
    expect(sent.falses).toBeGreaterThan(0)
    const r = await got
    expect(r.n).toBe(8 * 1024 * 1024)
    expect(r.hash).toBe(sent.hash)
  })

  it('a write the session holds while Node\'s buffer is below its mark: write() false, writableNeedDrain, exactly one drain once it and the writes behind it are taken', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const got = new Promise((resolve) => server.on('stream', (s) => collect(s).then(resolve)))
    const st = client.open()
    const hwm = st.writableHighWaterMark
    // Queued at once, within the mark: taken.
    expect(st.write(Buffer.alloc(hwm - 1024, 1))).toBe(true)
    expect(st.writableNeedDrain).toBe(false)
    // Over the mark in the stream's queue (Node's own buffer holds only this chunk): held.
    expect(st.write(Buffer.alloc(2048, 2))).toBe(false)
    expect(st.writableNeedDrain).toBe(true)
    // A write behind the held one waits in Node's buffer.
    expect(st.write(Buffer.alloc(10, 3))).toBe(false)
    let drains = 0
    st.on('drain', () => drains++)
    await once(st, 'drain')
    expect(st.writableNeedDrain).toBe(false)
    expect(st.writableLength).toBe(0)
    await roundTrips(client, 2)
    expect(drains).toBe(1)
    st.end()
    const all = await got
    expect(all.length).toBe(hwm - 1024 + 2048 + 10)
    expect(all[hwm - 1024]).toBe(2)
    expect(all[all.length - 1]).toBe(3)
  })

  it('a stuck stream does not block the others (no head-of-line blocking)', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const streams = []
    server.on('stream', (s, { target }) => {
      streams.push(s)
      if (target.host === 'stuck') s.pause()
      else hashOf(s).then((r) => s.end(r.hash))
    })
    const stuck = client.open({ target: { host: 'stuck', port: 1 } })
    const stuckState = {}
    pump(stuck, 4 * 1024 * 1024, 65536, stuckState)
    while (!stuckState.blocked) await new Promise((r) => setImmediate(r))
    const free = client.open({ target: { host: 'free', port: 1 } })
    const answer = collect(free)
    const sent = await pump(free, 5 * 1024 * 1024)
    expect((await answer).toString()).toBe(sent.hash)
    expect(stuckState.blocked).toBe(true)
    expect(server.stats().bufferedBytes).toBe(262144)
  })

  it('a bulk stream cannot starve an interactive one (round-robin scheduling)', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    server.on('stream', (s, { target }) => {
      if (target.host === 'bulk') s.resume()
      else s.on('data', (d) => s.write(d))
    })
    const bulk = client.open({ target: { host: 'bulk', port: 1 } })
    const state = {}
    const bulkDone = pump(bulk, 2 ** 40, 65536, state)
    while ((state.sent ?? 0) < 4 * 1024 * 1024) await new Promise((r) => setImmediate(r))
    const chat = client.open({ target: { host: 'chat', port: 1 } })
    const progress = []
    for (let i = 0; i < 30; i++) {
      const before = state.sent
      chat.write(`msg ${i}`)
      const [d] = await once(chat, 'data')
      expect(d.toString()).toBe(`msg ${i}`)
      progress.push(state.sent - before)
    }
    // The bulk stream kept moving the whole time and was still running.
    expect(progress.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    expect(state.sent).toBeLessThan(2 ** 40)
    state.stop = true
    chat.end()
    await bulkDone
  })

  it('the window grows towards the bandwidth-delay product on a delayed link, capped by maxWindow', async () => {
    const [a, b] = delayedPair(15)
    const client = new Session(a, { role: 'client', maxWindow: 2 * 1024 * 1024 })
    const server = new Session(b, { role: 'server', maxWindow: 2 * 1024 * 1024 })
    track(client, server)
    let srv
    const got = new Promise((resolve) =>
      server.on('stream', (s) => {
        srv = s
        resolve(hashOf(s))
      }),
    )
    const st = client.open()
    const sent = await pump(st, 12 * 1024 * 1024)
    const r = await (await got)
    expect(r.hash).toBe(sent.hash)
    expect(srv.receiveWindow).toBeGreaterThan(262144)
    expect(srv.receiveWindow).toBeLessThanOrEqual(2 * 1024 * 1024)
    expect(st.receiveWindow).toBe(262144) // nothing flowed the other way
  })

  it('window growth stays within maxSessionBuffer', async () => {
    const [a, b] = delayedPair(15)
    const client = new Session(a, { role: 'client' })
    const server = new Session(b, { role: 'server', maxSessionBuffer: 128 * 1024 })
    track(client, server)
    const windows = []
    const got = new Promise((resolve) =>
      server.on('stream', (s) => {
        windows.push(s)
        resolve(hashOf(s))
      }),
    )
    const st = client.open()
    const sent = await pump(st, 6 * 1024 * 1024)
    expect((await (await got)).hash).toBe(sent.hash)
    expect(windows[0].receiveWindow).toBeLessThanOrEqual(262144 + 128 * 1024)
  })

  it('when buffered bytes reach maxSessionBuffer new opens are refused with BUSY', async () => {
    const { client, server } = await sessionPair({}, { maxSessionBuffer: 600 * 1024 })
    track(client, server)
    const held = []
    server.on('stream', (s) => {
      held.push(s)
      s.pause()
    })
    const fillers = [0, 1, 2].map(() => client.open({ data: crypto.randomBytes(262144) }))
    for (const f of fillers) f.on('error', () => {})
    while (server.stats().bufferedBytes < 3 * 262144) await roundTrips(client, 1)
    expect(server.stats().bufferedBytes).toBe(3 * 262144)
    const err = await nextError(client.open({ data: 'one more' }))
    expect(err.code).toBe('SYNMUX_REFUSED')
    expect(err.wireCode).toBe(RefuseCode.BUSY)
    // Reading frees the buffer: opens are accepted again.
    for (const s of held) s.resume()
    await roundTrips(client, 2)
    expect(server.stats().bufferedBytes).toBe(0)
    const ok = client.open({ data: 'now' })
    await once(ok, 'open')
  })

  it('backpressure reaches the peer application: a piped slow consumer bounds memory on both sides', async () => {
    const fixed = { initialWindow: 65536, maxWindow: 65536 }
    const { client, server } = await sessionPair(fixed, fixed)
    track(client, server)
    let maxBuffered = 0
    server.on('stream', (s) => {
      // Echo, but the echo's reader (the client) is slow.
      s.pipe(s)
    })
    const st = client.open()
    const received = []
    let n = 0
    st.on('data', (d) => {
      received.push(sha256(d))
      n += d.length
      maxBuffered = Math.max(maxBuffered, server.stats().bufferedBytes, client.stats().bufferedBytes)
      st.pause()
      setTimeout(() => st.resume(), 1)
    })
    const total = 3 * 1024 * 1024
    const sending = pump(st, total, 16384)
    await once(st, 'end')
    await sending
    expect(n).toBe(total)
    // Each side's buffers never exceed its one stream window.
    expect(maxBuffered).toBeLessThanOrEqual(65536)
  })
})
