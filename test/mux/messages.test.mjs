// Message mode (PROTOCOL.md 15): boundaries survive any chunking, the first
// message rides in OPEN/OPENED, backpressure stops the sender, size limits
// fail clearly on both sides, malformed flag usage is a protocol error.
import { describe, it, expect, afterEach } from 'vitest'
import net from 'node:net'
import { Duplex } from 'node:stream'
import fc from 'fast-check'
import { Session, MuxError, FrameType, FrameFlag, Capability, HelloExtension, GoawayCode, encodeFrame, encodeHello, decodeHello, decodeFrame } from 'synmux'
import { LockstepLink, tcpPair, sessionPair, prng, randomBytes, sha256, roundTrips } from './helpers.mjs'

const cleanup = []
afterEach(() => {
  for (const f of cleanup.splice(0)) f()
})
function track(...things) {
  for (const t of things) cleanup.push(() => t.destroy())
  return things
}

/** A seed for this run; printed with the failure so it reproduces (SYNMUX_SEED=... to force one). */
function seedFor(name) {
  const seed = process.env.SYNMUX_SEED ? Number(process.env.SYNMUX_SEED) : (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0
  return { seed, tag: `${name} (seed ${seed}; rerun with SYNMUX_SEED=${seed})` }
}
async function withSeed(name, fn) {
  const { seed, tag } = seedFor(name)
  try {
    await fn(seed)
  } catch (err) {
    console.error(`FAILED: ${tag}`)
    err.message = `${tag}: ${err.message}`
    throw err
  }
}

/**
 * A loopback TCP relay in front of `port` that cuts every byte stream it
 * forwards (both ways) into random pieces (1..maxPiece bytes) and writes
 * each piece on its own turn of the event loop, so the far side reads the
 * bytes in chunks unrelated to the frames.
 */
async function chunkingRelay(port, rand, maxPiece = 700) {
  const pipe = (from, to) => {
    const queue = []
    let busy = false
    const pump = () => {
      const piece = queue.shift()
      if (piece === undefined) {
        busy = false
        return
      }
      if (piece === null) to.end()
      else if (!to.destroyed) to.write(piece)
      setImmediate(pump)
    }
    from.on('data', (chunk) => {
      for (let off = 0; off < chunk.length; ) {
        const n = Math.min(chunk.length - off, 1 + Math.floor(rand() * maxPiece))
        queue.push(chunk.subarray(off, off + n))
        off += n
      }
      if (!busy) {
        busy = true
        setImmediate(pump)
      }
    })
    from.on('end', () => {
      queue.push(null)
      if (!busy) {
        busy = true
        setImmediate(pump)
      }
    })
    from.on('error', () => to.destroy())
    from.on('close', () => setTimeout(() => to.destroy(), 50).unref())
  }
  const relay = net.createServer((inbound) => {
    inbound.setNoDelay(true)
    const outbound = net.connect(port, '127.0.0.1')
    outbound.setNoDelay(true)
    pipe(inbound, outbound)
    pipe(outbound, inbound)
  })
  await new Promise((r) => relay.listen(0, '127.0.0.1', r))
  return relay
}

/** A client and a server session over loopback TCP, optionally through a chunking relay. */
async function pairOver(transport, rand, clientOpts = {}, serverOpts = {}) {
  if (transport === 'tcp') return sessionPair(clientOpts, serverOpts)
  const srv = net.createServer()
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  const relay = await chunkingRelay(srv.address().port, rand)
  cleanup.push(() => relay.close())
  const accepted = new Promise((r) => srv.once('connection', r))
  const a = net.connect(relay.address().port, '127.0.0.1')
  const b = await accepted
  srv.close()
  return { client: new Session(a, { role: 'client', ...clientOpts }), server: new Session(b, { role: 'server', ...serverOpts }) }
}

/** Message sizes: random, with 0 and exactly `max` among them. */
function sizes(rand, count, max) {
  const out = [0, max, 1]
  while (out.length < count) {
    const r = rand()
    out.push(r < 0.1 ? 0 : r < 0.15 ? max : r < 0.6 ? Math.floor(rand() * 200) : Math.floor(rand() * max))
  }
  // Shuffle so the special sizes land anywhere.
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** Writes the messages honouring backpressure, then ends. */
async function writeAll(stream, msgs) {
  for (const m of msgs) {
    if (!stream.write(m)) await new Promise((r) => stream.once('drain', r))
  }
  stream.end()
}

/** Collects a message stream's messages until 'end'. */
function messagesOf(stream) {
  return new Promise((resolve, reject) => {
    const got = []
    stream.on('message', (m) => got.push(m))
    stream.once('end', () => resolve(got))
    stream.once('error', reject)
  })
}

const u32 = (n) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
const clientHello = (caps = Capability.MESSAGES, maxMessage = 65536) =>
  encodeHello({
    kind: 1,
    role: 'client',
    capabilities: caps,
    sessionId: Buffer.alloc(32),
    initialWindow: 262144,
    maxFrameSize: 65536,
    maxStreams: 64,
    extensions: caps & Capability.MESSAGES ? [[HelloExtension.MAX_MESSAGE, u32(maxMessage)]] : [],
  })
/** A raw frame (bypasses encodeFrame's validation of nothing but lets any flags through). */
const raw = (type, flags, streamId, payload = Buffer.alloc(0)) => {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(streamId, 5)
  return Buffer.concat([h, payload])
}
const OPEN_NONE = (data = Buffer.alloc(0)) => Buffer.concat([Buffer.from([0]), data]) // OPEN payload: target none + data

/**
 * Feeds raw client bytes to a server session over loopback TCP; resolves
 * with the server's error, the GOAWAY it sent (if any), the messages the
 * application got and the largest `bufferedBytes` seen.
 */
async function rawToServer(serverOpts, parts) {
  const [a, b] = await tcpPair()
  track(a, b)
  const server = new Session(b, { role: 'server', keepAliveInterval: 0, ...serverOpts })
  const got = []
  server.on('stream', (s) => {
    s.on('message', (m) => got.push(m))
    s.on('error', () => {})
  })
  const fromServer = []
  a.on('data', (d) => fromServer.push(d))
  a.on('error', () => {})
  let maxBuffered = 0
  for (const p of parts) {
    if (server.destroyed) break
    a.write(p)
    // Let the server process this part before the next one (a PING round trip through the server would need a session here).
    for (let i = 0; i < 20 && server.stats().bytesReceived < totalLen(parts, p); i++) await new Promise((r) => setTimeout(r, 5))
    maxBuffered = Math.max(maxBuffered, server.stats().bufferedBytes)
  }
  await new Promise((r) => setTimeout(r, 20))
  if (!server.destroyed) {
    // Give it a moment more; a failing session closes at once.
    await new Promise((r) => setTimeout(r, 30))
  }
  const bytes = Buffer.concat(fromServer)
  let goaway = null
  try {
    const h = decodeHello(bytes)
    if (h) {
      let off = h.size
      while (off < bytes.length) {
        const r = decodeFrame(bytes, off, undefined, true)
        if (!r) break
        if (r.frame.type === FrameType.GOAWAY) goaway = r.frame
        off += r.size
      }
    }
  } catch {}
  const result = { error: server.error, destroyed: server.destroyed, goaway, got, maxBuffered }
  server.destroy()
  return result
}
const totalLen = (parts, upTo) => {
  let n = 0
  for (const p of parts) {
    n += p.length
    if (p === upTo) break
  }
  return n
}

describe('message mode: boundaries', () => {
  for (const transport of ['tcp', 'relay']) {
    it(`each write arrives as one message, both ways, over ${transport === 'tcp' ? 'loopback TCP' : 'a randomly re-chunking relay'} (sizes incl. 0 and exactly MAX_MESSAGE)`, async () => {
      await withSeed(`boundaries over ${transport}`, async (seed) => {
        const rand = prng(seed)
        const max = 65536
        const opts = { maxMessage: max, maxFrameSize: 16384, initialWindow: 65536, keepAliveInterval: 0 }
        const { client, server } = await pairOver(transport, rand, opts, opts)
        track(client, server)
        const serverGot = []
        server.on('stream', (s, info) => {
          expect(info.messages).toBe(true)
          expect(s.messages).toBe(true)
          s.on('message', (m) => {
            serverGot.push(m)
            s.write(m) // echo
          })
          s.on('end', () => s.end())
        })
        const msgs = sizes(rand, transport === 'tcp' ? 300 : 150, max).map((n) => randomBytes(rand, n))
        const s = client.open({ messages: true, target: { host: 'echo', port: 7 } })
        const echoed = messagesOf(s)
        await writeAll(s, msgs)
        const back = await echoed
        expect(serverGot.map((m) => m.length)).toEqual(msgs.map((m) => m.length))
        expect(back.map((m) => m.length)).toEqual(msgs.map((m) => m.length))
        for (let i = 0; i < msgs.length; i++) {
          expect(Buffer.isBuffer(back[i])).toBe(true)
          expect(sha256(serverGot[i]), `message ${i} at the server`).toBe(sha256(msgs[i]))
          expect(sha256(back[i]), `message ${i} echoed`).toBe(sha256(msgs[i]))
        }
        expect(client.error).toBe(undefined)
        expect(server.error).toBe(undefined)
      })
    })
  }

  it('3, 123 and 4 bytes arrive as 3, 123 and 4 bytes; for await yields messages; strings are messages too', async () => {
    const { client, server } = await sessionPair({ keepAliveInterval: 0 }, { keepAliveInterval: 0 })
    track(client, server)
    const streams = []
    server.on('stream', (s) => streams.push(s))
    const s = client.open({ messages: true })
    s.write(Buffer.alloc(3, 1))
    s.write(Buffer.alloc(123, 2))
    s.write(Buffer.alloc(4, 3))
    s.write('é') // 2 bytes in UTF-8
    s.end()
    while (streams.length === 0) await new Promise((r) => setImmediate(r))
    const got = []
    for await (const m of streams[0]) got.push(m)
    expect(got.map((m) => m.length)).toEqual([3, 123, 4, 2])
    expect(got[3].toString()).toBe('é')
    expect(got[1].equals(Buffer.alloc(123, 2))).toBe(true)
  })

  it('property: any message sizes through any chunking of the transport keep their boundaries (fast-check)', async () => {
    /** Two in-memory Duplexes whose writes reach the other side cut at random points, one piece per turn. */
    function chunkingPair(rand) {
      const mk = () =>
        new Duplex({
          read() {},
          write(chunk, _enc, cb) {
            const peer = this._peer
            const pieces = []
            for (let off = 0; off < chunk.length; ) {
              const n = Math.min(chunk.length - off, 1 + Math.floor(rand() * 300))
              pieces.push(Buffer.from(chunk.subarray(off, off + n)))
              off += n
            }
            const next = () => {
              const p = pieces.shift()
              if (p === undefined) return cb()
              if (!peer.destroyed) peer.push(p)
              setImmediate(next)
            }
            next()
          },
          final(cb) {
            const peer = this._peer
            setImmediate(() => {
              if (!peer.destroyed) peer.push(null)
              cb()
            })
          },
        })
      const a = mk()
      const b = mk()
      a._peer = b
      b._peer = a
      return [a, b]
    }
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 70000 }), fc.constant(0), fc.constant(65536)), { maxLength: 25 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.boolean(),
        async (lens, seed, endWithLast) => {
          const rand = prng(seed)
          const [a, b] = chunkingPair(rand)
          const opts = { keepAliveInterval: 0, maxFrameSize: 16384, initialWindow: 65536, maxMessage: 70000 }
          const client = new Session(a, { role: 'client', ...opts })
          const server = new Session(b, { role: 'server', ...opts })
          try {
            const got = new Promise((resolve) => server.on('stream', (s) => resolve(messagesOf(s))))
            const msgs = lens.map((n) => randomBytes(rand, n))
            const s = client.open({ messages: true })
            if (endWithLast && msgs.length > 0) {
              for (const m of msgs.slice(0, -1)) s.write(m)
              s.end(msgs[msgs.length - 1]) // the last message and FIN in one frame
            } else await writeAll(s, msgs)
            const recv = await got
            expect(recv.map((m) => m.length)).toEqual(lens)
            for (let i = 0; i < msgs.length; i++) expect(recv[i].equals(msgs[i])).toBe(true)
          } finally {
            client.destroy()
            server.destroy()
          }
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe('message mode: one round trip', () => {
  /** Frames (after the HELLO, if any) in a flight. */
  function framesOf(bytes, withHello) {
    let off = withHello ? decodeHello(bytes).size : 0
    const out = []
    while (off < bytes.length) {
      const r = decodeFrame(bytes, off, undefined, true)
      out.push(r.frame)
      off += r.size
    }
    return out
  }

  it('the first message rides in OPEN (EOM), the answer in OPENED (EOM): one round trip; FIN rides with EOM', async () => {
    const link = new LockstepLink()
    const client = new Session(link.a, { role: 'client', keepAliveInterval: 0 })
    const server = new Session(link.b, { role: 'server', keepAliveInterval: 0 })
    track(client, server)
    const serverGot = []
    server.on('stream', (s) => {
      s.on('message', (m) => {
        serverGot.push(m)
        s.end(Buffer.from(`answer to ${m}`)) // rides in OPENED with EOM and FIN
      })
    })
    const s = client.open({ messages: true, data: 'question', end: true })
    const got = []
    s.on('message', (m) => got.push(String(m)))
    await link.settle()
    const f1 = framesOf(link.deliver('a'), true)
    const open = f1.find((f) => f.type === FrameType.OPEN)
    expect(open.flags).toBe(FrameFlag.FIN | FrameFlag.MESSAGES | FrameFlag.OPEN_EOM)
    expect(String(open.data)).toBe('question')
    await link.settle()
    const f2 = framesOf(link.deliver('b'), true)
    const opened = f2.find((f) => f.type === FrameType.OPENED)
    expect(opened.flags).toBe(FrameFlag.FIN | FrameFlag.EOM)
    expect(String(opened.data)).toBe('answer to question')
    await link.settle()
    expect(got).toEqual(['answer to question'])
    expect(serverGot.map(String)).toEqual(['question'])
    expect(link.flights).toBe(2)
  })

  it('a first message larger than the pre-HELLO frame size starts in OPEN and ends in DATA, still in the first flight', async () => {
    const link = new LockstepLink()
    const client = new Session(link.a, { role: 'client', keepAliveInterval: 0 })
    const server = new Session(link.b, { role: 'server', keepAliveInterval: 0 })
    track(client, server)
    server.on('stream', (s) => s.on('message', (m) => s.write(Buffer.from(String(m.length)))))
    const first = randomBytes(prng(7), 40000)
    const s = client.open({ messages: true, data: first, target: { host: 'example.com', port: 80 } })
    const got = []
    s.on('message', (m) => got.push(String(m)))
    await link.settle()
    const f1 = framesOf(link.deliver('a'), true)
    const open = f1.find((f) => f.type === FrameType.OPEN)
    expect(open.flags).toBe(FrameFlag.MESSAGES) // no EOM: the message goes on
    const data = f1.filter((f) => f.type === FrameType.DATA)
    expect(data.length).toBeGreaterThan(0)
    expect(data.map((f) => f.flags & FrameFlag.EOM)).toEqual([...data.slice(1).map(() => 0), FrameFlag.EOM])
    expect(Buffer.concat([open.data, ...data.map((f) => f.data)]).equals(first)).toBe(true)
    await link.settle()
    link.deliver('b')
    await link.settle()
    expect(got).toEqual(['40000'])
  })
})

describe('message mode: flow control', () => {
  it('a paused reader stops the sender: no credit comes back, bytes in flight stay within window + MAX_MESSAGE; resuming delivers everything in order', async () => {
    const window = 65536
    const max = 65536
    const { client, server } = await sessionPair({ keepAliveInterval: 0 }, { keepAliveInterval: 0, initialWindow: window, maxWindow: window, maxMessage: max })
    track(client, server)
    let serverStream
    server.on('stream', (s) => (serverStream = s)) // no reader: the readable stays paused
    const s = client.open({ messages: true })
    const total = 2000
    let written = 0
    const writer = (async () => {
      for (; written < total; written++) {
        const m = Buffer.alloc(1000 + (written % 7) * 100)
        m.writeUInt32BE(written)
        if (!s.write(m)) await new Promise((r) => s.once('drain', r))
      }
      s.end()
    })()
    await roundTrips(client, 3)
    const buffered1 = server.stats().bufferedBytes
    const credit1 = s.sendCredit
    const written1 = written
    await roundTrips(client, 5)
    // Nothing moved: the sender has no credit and the receiver returned none.
    expect(s.sendCredit).toBe(0)
    expect(credit1).toBe(0)
    expect(server.stats().bufferedBytes).toBe(buffered1)
    expect(written).toBe(written1)
    expect(buffered1).toBeGreaterThan(window / 2)
    expect(buffered1).toBeLessThanOrEqual(window + max)
    expect(written1).toBeLessThan(total)
    expect(s.writableNeedDrain).toBe(true)
    // Resume: every message arrives, in order, whole.
    const got = await messagesOf(serverStream)
    await writer
    expect(got.length).toBe(total)
    for (let i = 0; i < total; i++) {
      expect(got[i].readUInt32BE(0)).toBe(i)
      expect(got[i].length).toBe(1000 + (i % 7) * 100)
    }
  })

  it('a message larger than the receive window completes (credit for incomplete messages), then a paused reader holds the rest back', async () => {
    const { client, server } = await sessionPair({ keepAliveInterval: 0 }, { keepAliveInterval: 0, initialWindow: 65536, maxWindow: 65536, maxMessage: 1 << 20 })
    track(client, server)
    let serverStream
    server.on('stream', (st) => (serverStream = st))
    const s = client.open({ messages: true })
    const big = randomBytes(prng(3), 1 << 20)
    s.write(big)
    s.write(big)
    s.end()
    await roundTrips(client, 3)
    while (server.stats().bufferedBytes < (1 << 20)) await roundTrips(client, 1)
    await roundTrips(client, 3)
    // One whole message is waiting; the second is held back by the window (no more than window + MAX_MESSAGE in all).
    expect(server.stats().bufferedBytes).toBeLessThanOrEqual(65536 + (1 << 20))
    expect(serverStream.readableLength).toBe(1)
    const got = await messagesOf(serverStream)
    expect(got.length).toBe(2)
    expect(got[0].equals(big)).toBe(true)
    expect(got[1].equals(big)).toBe(true)
  })
})

describe('message mode: limits', () => {
  it('a write above the peer MAX_MESSAGE throws RangeError SYNMUX_MESSAGE_TOO_LARGE, queues nothing, and loses nothing else', async () => {
    const { client, server } = await sessionPair({ keepAliveInterval: 0 }, { keepAliveInterval: 0, maxMessage: 65536 })
    track(client, server)
    await roundTrips(client, 1) // the server's HELLO (and its MAX_MESSAGE) is in
    expect(client.peerMaxMessage).toBe(65536)
    const got = new Promise((resolve) => server.on('stream', (st) => resolve(messagesOf(st))))
    const s = client.open({ messages: true, data: 'first' })
    s.write(Buffer.alloc(65536, 1)) // exactly the limit: fine
    const tooBig = (fn) => {
      let err
      try {
        fn()
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(RangeError)
      expect(err.code).toBe('SYNMUX_MESSAGE_TOO_LARGE')
      expect(err.message).toMatch(/65536/)
    }
    tooBig(() => s.write(Buffer.alloc(65537)))
    tooBig(() => s.write('x'.repeat(65537)))
    tooBig(() => s.write('é'.repeat(32769))) // 65,538 bytes in UTF-8
    s.write('second')
    tooBig(() => s.end(Buffer.alloc(70000)))
    expect(s.writableEnded).toBe(false)
    s.end('last')
    const msgs = await got
    expect(msgs.map((m) => m.length)).toEqual([5, 65536, 6, 4])
    expect(String(msgs[3])).toBe('last')
    const before = client.streamCount
    tooBig(() => client.open({ messages: true, data: Buffer.alloc(65537) }))
    expect(client.streamCount).toBe(before)
    expect(client.error).toBe(undefined)
    expect(server.error).toBe(undefined)
  })

  it('a message written before the peer HELLO waits for it above 65,536 bytes: sent if the peer takes it, else that stream fails (the session lives)', async () => {
    for (const peerMax of [262144, 65536]) {
      const { client, server } = await sessionPair({ keepAliveInterval: 0 }, { keepAliveInterval: 0, maxMessage: peerMax })
      track(client, server)
      const recs = []
      server.on('stream', (st) => {
        const rec = { msgs: [], ended: false, err: null }
        recs.push(rec)
        st.on('message', (m) => rec.msgs.push(m))
        st.on('end', () => (rec.ended = true))
        st.on('error', (e) => (rec.err = e))
      })
      const s = client.open({ messages: true, data: Buffer.alloc(100000, 5) }) // before any HELLO
      expect(client.peerHello).toBe(null)
      const other = client.open({ messages: true, data: 'small', end: true })
      other.on('error', () => {})
      const until = async (cond) => {
        while (!cond()) await new Promise((r) => setTimeout(r, 5))
      }
      if (peerMax === 262144) {
        s.end()
        await until(() => recs.length === 2 && recs.every((r) => r.ended))
        expect(recs[0].msgs.map((m) => m.length)).toEqual([100000])
        expect(recs[0].msgs[0].equals(Buffer.alloc(100000, 5))).toBe(true)
      } else {
        const err = await new Promise((r) => s.once('error', r))
        expect(err).toBeInstanceOf(MuxError)
        expect(err.code).toBe('SYNMUX_MESSAGE_TOO_LARGE')
        // Its OPEN went out before the HELLO, empty: the server sees a reset, never a message.
        await until(() => recs.length === 2 && recs[1].ended && recs[0].err !== null)
        expect(recs[0].msgs).toEqual([])
        expect(recs[0].err.code).toBe('SYNMUX_STREAM_RESET')
      }
      // The other stream is unaffected either way, and so is the session.
      expect(recs[1].msgs.map(String)).toEqual(['small'])
      expect(client.error).toBe(undefined)
      expect(server.error).toBe(undefined)
    }
  })

  it('a received message above our MAX_MESSAGE is a protocol error, detected before more than MAX_MESSAGE is buffered; exactly MAX_MESSAGE passes', async () => {
    const max = 65536
    const parts = [
      clientHello(),
      raw(FrameType.OPEN, FrameFlag.MESSAGES, 1, OPEN_NONE(Buffer.alloc(16384, 1))),
      raw(FrameType.DATA, 0, 1, Buffer.alloc(16384, 2)),
      raw(FrameType.DATA, 0, 1, Buffer.alloc(16384, 3)),
      raw(FrameType.DATA, 0, 1, Buffer.alloc(16384, 4)), // exactly max so far: fine
      raw(FrameType.DATA, FrameFlag.EOM, 1, Buffer.alloc(1, 5)), // one byte too many
    ]
    const r = await rawToServer({ maxMessage: max }, parts)
    expect(r.error?.code).toBe('SYNMUX_PROTOCOL_ERROR')
    expect(r.error.message).toMatch(/MAX_MESSAGE/)
    expect(r.goaway?.code).toBe(GoawayCode.PROTOCOL_ERROR)
    expect(r.maxBuffered).toBe(max)
    expect(r.got).toEqual([])
    // The same bytes with EOM on the fourth DATA: one message of exactly max, no error.
    const ok = await rawToServer({ maxMessage: max }, [...parts.slice(0, 4), raw(FrameType.DATA, FrameFlag.EOM, 1, Buffer.alloc(16384, 4))])
    expect(ok.error).toBe(undefined)
    expect(ok.got.map((m) => m.length)).toEqual([max])
  })

  it('options and open() arguments are validated; message streams on a session without message mode fail at open()', async () => {
    const d = () => new Duplex({ read() {}, write(_c, _e, cb) { cb() } })
    const bad = (opts, code, Type) => {
      let err
      try {
        new Session(d(), { role: 'client', ...opts }).destroy()
      } catch (e) {
        err = e
      }
      expect(err, JSON.stringify(opts)).toBeInstanceOf(Type)
      expect(err.code).toBe(code)
    }
    bad({ maxMessage: '1' }, 'ERR_INVALID_ARG_TYPE', TypeError)
    bad({ maxMessage: 1000 }, 'ERR_OUT_OF_RANGE', RangeError)
    bad({ maxMessage: 65535 }, 'ERR_OUT_OF_RANGE', RangeError)
    bad({ maxMessage: 2 ** 31 }, 'ERR_OUT_OF_RANGE', RangeError)
    bad({ maxMessage: 1.5e5 + 0.5 }, 'ERR_OUT_OF_RANGE', RangeError)
    new Session(d(), { role: 'client', maxMessage: 65536 }).destroy()
    new Session(d(), { role: 'client', maxMessage: 0 }).destroy()
    const c = new Session(d(), { role: 'client' })
    expect(() => c.open({ messages: 'yes' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    c.destroy()
    // Off here: throws at once.
    const off = new Session(d(), { role: 'client', maxMessage: 0 })
    expect(off.messages).toBe(false)
    expect(() => off.open({ messages: true })).toThrow(expect.objectContaining({ code: 'SYNMUX_MESSAGES_UNSUPPORTED' }))
    off.destroy()
    // Off at the peer: known from its HELLO, throws at open(); byte streams still work.
    const { client, server } = await sessionPair({ keepAliveInterval: 0 }, { keepAliveInterval: 0, maxMessage: 0 })
    track(client, server)
    expect(client.messages).toBe(null)
    await roundTrips(client, 1)
    expect(client.messages).toBe(false)
    expect(client.peerMaxMessage).toBe(null)
    expect(() => client.open({ messages: true })).toThrow(expect.objectContaining({ code: 'SYNMUX_MESSAGES_UNSUPPORTED' }))
    server.on('stream', (st) => st.pipe(st))
    const plain = client.open({ data: 'bytes', end: true })
    const chunks = []
    for await (const c2 of plain) chunks.push(c2)
    expect(Buffer.concat(chunks).toString()).toBe('bytes')
  })
})

describe('message mode: half-close and protocol errors', () => {
  it('half-close after messages: each side gets every message, then end; the stream closes on both sides', async () => {
    const { client, server } = await sessionPair({ keepAliveInterval: 0 }, { keepAliveInterval: 0 })
    track(client, server)
    server.on('stream', async (st) => {
      const msgs = await messagesOf(st) // the client's FIN comes first
      for (const m of msgs) st.write(Buffer.concat([Buffer.from('re:'), m]))
      st.end()
    })
    const s = client.open({ messages: true })
    s.write('a')
    s.write('')
    s.end('ccc')
    const got = await messagesOf(s)
    expect(got.map(String)).toEqual(['re:a', 're:', 're:ccc'])
    if (!s.closed) await new Promise((r) => s.once('close', r))
    await roundTrips(client, 1)
    expect(client.streamCount).toBe(0)
    expect(server.streamCount).toBe(0)
  })

  const cases = [
    ['FIN in the middle of a message', { }, [clientHello(), raw(FrameType.OPEN, FrameFlag.MESSAGES, 1, OPEN_NONE(Buffer.from('par'))), raw(FrameType.DATA, FrameFlag.FIN, 1, Buffer.from('tial'))], /middle of a message/],
    ['FIN on OPEN with data but no EOM', {}, [clientHello(), raw(FrameType.OPEN, FrameFlag.MESSAGES | FrameFlag.FIN, 1, OPEN_NONE(Buffer.from('x')))], /middle of a message/],
    ['EOM on a byte stream', {}, [clientHello(), raw(FrameType.OPEN, 0, 1, OPEN_NONE(Buffer.from('x'))), raw(FrameType.DATA, FrameFlag.EOM, 1, Buffer.from('y'))], /not a message stream/],
    ['OPEN EOM without MESSAGES', {}, [clientHello(), raw(FrameType.OPEN, FrameFlag.OPEN_EOM, 1, OPEN_NONE(Buffer.from('x')))], /EOM but without MESSAGES/],
    ['MESSAGES when the server has message mode off', { maxMessage: 0 }, [clientHello(), raw(FrameType.OPEN, FrameFlag.MESSAGES | FrameFlag.OPEN_EOM, 1, OPEN_NONE(Buffer.from('x')))], /MESSAGES is not in effect/],
    ['MESSAGES when the client did not offer it', {}, [clientHello(0), raw(FrameType.OPEN, FrameFlag.MESSAGES, 1, OPEN_NONE())], /MESSAGES is not in effect/],
    ['EOM on DATA when MESSAGES is not in effect', {}, [clientHello(0), raw(FrameType.OPEN, 0, 1, OPEN_NONE()), raw(FrameType.DATA, FrameFlag.EOM, 1, Buffer.from('y'))], /MESSAGES is not in effect/],
  ]
  for (const [name, opts, parts, re] of cases) {
    it(`protocol error: ${name}`, async () => {
      const r = await rawToServer(opts, parts)
      expect(r.error?.code).toBe('SYNMUX_PROTOCOL_ERROR')
      expect(r.error.message).toMatch(re)
      expect(r.goaway?.code).toBe(GoawayCode.PROTOCOL_ERROR)
      expect(r.got).toEqual([]) // no truncated (or any) message delivered
    })
  }

  it('a HELLO with MESSAGES but no valid MAX_MESSAGE fails the handshake', async () => {
    const hello = encodeHello({ kind: 1, role: 'client', capabilities: Capability.MESSAGES, sessionId: Buffer.alloc(32), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 8, extensions: [[HelloExtension.MAX_MESSAGE, u32(1000)]] })
    const r = await rawToServer({}, [hello])
    expect(r.error?.code).toBe('SYNMUX_HANDSHAKE_FAILED')
    const r2 = await rawToServer({}, [encodeHello({ kind: 1, role: 'client', capabilities: Capability.MESSAGES, sessionId: Buffer.alloc(32), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 8 })])
    expect(r2.error?.code).toBe('SYNMUX_HANDSHAKE_FAILED')
  })
})

describe('fuzz: message-mode flags', () => {
  const LIMITS = { keepAliveInterval: 0, handshakeTimeout: 0, acceptDelay: Infinity, initialWindow: 65536, maxFrameSize: 16384, maxMessage: 65536 }
  const tick = () => new Promise((r) => setImmediate(r))
  /** Feeds bytes (one chunk per frame) into a server session over an in-memory pipe. */
  async function feed(bytes, opts = {}) {
    const d = new Duplex({ read() {}, write(_c, _e, cb) { cb() } })
    const session = new Session(d, { role: 'server', ...LIMITS, ...opts })
    const seen = new Map()
    session.on('stream', (s) => {
      const rec = { msgs: [], ended: false, messages: s.messages }
      seen.set(s.id, rec)
      s.on('data', (m) => rec.msgs.push(m))
      s.on('end', () => (rec.ended = true))
      s.on('error', () => {})
    })
    await tick()
    for (const b of bytes) {
      if (session.destroyed) break
      d.push(b)
      await tick()
    }
    for (let i = 0; i < 3; i++) await tick()
    const r = { error: session.error, seen, destroyed: session.destroyed }
    session.destroy()
    return r
  }

  const frameArb = fc.record({
    type: fc.constantFrom(FrameType.DATA, FrameType.DATA, FrameType.DATA, FrameType.OPENED),
    flags: fc.constantFrom(0, 0, FrameFlag.EOM, FrameFlag.EOM, FrameFlag.FIN, FrameFlag.FIN | FrameFlag.EOM, 0x04, 0x08),
    data: fc.uint8Array({ maxLength: 300 }),
  })

  it('without the capability, any message-mode flag ends the session with a protocol error; with it, EOMs delimit exactly the messages delivered', async () => {
    let errored = 0
    let clean = 0
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(0, FrameFlag.OPEN_EOM, FrameFlag.FIN, FrameFlag.FIN | FrameFlag.OPEN_EOM),
        fc.uint8Array({ maxLength: 200 }),
        fc.array(frameArb, { maxLength: 12 }),
        async (capOn, msgStream, openFlags, openData, frames) => {
          const openF = (msgStream ? FrameFlag.MESSAGES : 0) | openFlags
          const bytes = [clientHello(capOn ? Capability.MESSAGES : 0), raw(FrameType.OPEN, openF, 1, OPEN_NONE(Buffer.from(openData))), ...frames.map((f) => raw(f.type, f.flags, 1, Buffer.from(f.data)))]
          const r = await feed(bytes)
          // Reference: walk the frames as the spec says.
          const all = [{ type: FrameType.OPEN, flags: openF, data: Buffer.from(openData) }, ...frames.map((f) => ({ ...f, data: Buffer.from(f.data) }))]
          let want = null // expected error pattern, or null
          const msgs = []
          let partial = []
          let finSeen = false
          for (const f of all) {
            const eomBit = f.type === FrameType.OPEN ? FrameFlag.OPEN_EOM : FrameFlag.EOM
            const allowed = f.type === FrameType.OPEN ? (capOn ? 0x07 : 0x01) : capOn ? 0x03 : 0x01
            if (f.flags & ~allowed) { want = 'PROTOCOL'; break }
            if (f.type === FrameType.OPEN && f.flags & FrameFlag.OPEN_EOM && !(f.flags & FrameFlag.MESSAGES)) { want = 'PROTOCOL'; break }
            if (f.type === FrameType.OPENED) { want = 'PROTOCOL'; break } // an OPENED from the opener is never valid
            if (finSeen) { want = 'PROTOCOL'; break } // DATA after FIN
            if (!(msgStream && capOn) && f.flags & eomBit) { want = 'PROTOCOL'; break }
            if (msgStream && capOn) {
              partial.push(f.data)
              if (f.flags & eomBit) {
                msgs.push(Buffer.concat(partial))
                partial = []
              } else if (f.flags & FrameFlag.FIN && Buffer.concat(partial).length > 0) { want = 'PROTOCOL'; break }
            } else msgs.push(f.data)
            if (f.flags & FrameFlag.FIN) finSeen = true
          }
          if (want) {
            errored++
            expect(r.error?.code).toBe('SYNMUX_PROTOCOL_ERROR')
          } else {
            clean++
            expect(r.error).toBe(undefined)
          }
          const rec = r.seen.get(1)
          if (msgStream && capOn && rec) {
            // Every delivered message is one the EOMs delimit, in order, never a partial one.
            expect(rec.messages).toBe(true)
            expect(rec.msgs.length).toBeLessThanOrEqual(msgs.length)
            rec.msgs.forEach((m, i) => expect(m.equals(msgs[i])).toBe(true))
            if (!want) expect(rec.msgs.length).toBe(msgs.length)
          }
        },
      ),
      { numRuns: 600 },
    )
    expect(errored).toBeGreaterThan(0)
    expect(clean).toBeGreaterThan(0)
  })
})
