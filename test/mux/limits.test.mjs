// Every limit of PROTOCOL.md section 10, enforced: streams, frame size,
// target length, pending opens, session buffer (flow.test), handshake time,
// idle time, keepalive, control queue.
import { describe, it, expect, afterEach } from 'vitest'
import { Duplex } from 'node:stream'
import crypto from 'node:crypto'
import { Session, MuxError, FrameType, GoawayCode, RefuseCode, encodeHello, encodeFrame } from 'synmux'
import { sessionPair, tcpPair, LockstepLink, collect, nextError, once, roundTrips } from './helpers.mjs'

const cleanup = []
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn()
})
const track = (...s) => s.forEach((x) => cleanup.push(() => x.destroy()))
const clientHello = (over = {}) =>
  encodeHello({ kind: 1, role: 'client', capabilities: 0, sessionId: Buffer.alloc(32), initialWindow: 262144, maxFrameSize: 65536, maxStreams: 100, ...over })

/** A transport that accepts writes but never completes them (a peer that stopped reading). */
function stuckDuplex() {
  const d = new Duplex({ read() {}, write() {} })
  return d
}

describe('limits', () => {
  it('max streams: the peer refuses extra OPENs; after the handshake open() knows the limit', async () => {
    const { client, server } = await sessionPair({}, { maxStreams: 3 })
    track(client, server)
    const srv = []
    server.on('stream', (s) => srv.push(s))
    // Before the server's HELLO the client cannot know the limit: the server refuses.
    const early = [0, 1, 2, 3, 4].map(() => client.open({ data: 'x' }))
    const opened = Promise.all(early.slice(0, 3).map((s) => once(s, 'open')))
    const errs = await Promise.all(early.slice(3).map(nextError))
    expect(errs.map((e) => [e.code, e.wireCode])).toEqual([
      ['SYNMUX_REFUSED', RefuseCode.TOO_MANY_STREAMS],
      ['SYNMUX_REFUSED', RefuseCode.TOO_MANY_STREAMS],
    ])
    await opened
    expect(server.streamCount).toBe(3)
    // Now the client knows: the 4th fails locally.
    const local = client.open({ data: 'y' })
    expect((await nextError(local)).code).toBe('SYNMUX_TOO_MANY_STREAMS')
    // Closing one frees a slot.
    const done = collect(early[0])
    srv[0].end()
    early[0].end()
    await done
    await roundTrips(client, 2)
    const again = client.open({ data: 'z' })
    await once(again, 'open')
    expect(server.streamCount).toBe(3)
  })

  it('max frame size: a sender never exceeds the peer limit', async () => {
    const { client, server } = await sessionPair({ maxFrameSize: 16384 }, { maxFrameSize: 1 << 20 })
    track(client, server)
    const payload = crypto.randomBytes(3 << 20)
    server.on('stream', (s) => s.end(payload))
    const got = await collect(client.open({ data: 'give' }))
    expect(got.equals(payload)).toBe(true)
    expect(client.error).toBe(undefined)
    expect(client.stats().framesReceived).toBeGreaterThanOrEqual((3 << 20) / 16384)
  })

  it('max target length and target syntax are refused per stream, not per session', async () => {
    const { client, server } = await sessionPair({}, { maxTargetLength: 12 })
    track(client, server)
    server.on('stream', (s) => s.end('ok'))
    const long = client.open({ target: { host: 'a-much-longer-host.example', port: 80 } })
    const e = await nextError(long)
    expect(e.code).toBe('SYNMUX_REFUSED')
    expect(e.wireCode).toBe(RefuseCode.TARGET_TOO_LONG)
    expect((await collect(client.open({ target: { host: 'short.test', port: 80 } }))).toString()).toBe('ok')
    expect((await collect(client.open({ target: { host: 'twelve.chars', port: 80 } }))).toString()).toBe('ok')
    // A non-printable host name (only a raw peer can send one) is refused with BAD_TARGET.
    const [a, b] = await tcpPair()
    const srv = new Session(b, { role: 'server' })
    track(srv)
    srv.on('stream', (st) => st.on('error', () => {}))
    const out = []
    const refusedHeader = Buffer.from([FrameType.REFUSED, 0, 0, 0, 0, 3])
    const gotRefused = new Promise((resolve) =>
      a.on('data', (d) => {
        out.push(d)
        if (Buffer.concat(out).includes(refusedHeader)) resolve()
      }),
    )
    // OPEN 1 (no target), then OPEN 3 naming host "\nA" (not printable ASCII).
    const badOpen = Buffer.from([0, 0, 6, FrameType.OPEN, 0, 0, 0, 0, 3, 1, 2, 0x0a, 0x41, 0, 80])
    a.write(Buffer.concat([clientHello(), encodeFrame({ type: FrameType.OPEN, streamId: 1, target: null }), badOpen]))
    await gotRefused
    const all = Buffer.concat(out)
    const refusedAt = all.indexOf(refusedHeader)
    expect(all.readUInt16BE(refusedAt + 6)).toBe(RefuseCode.BAD_TARGET)
    expect(srv.state).toBe('open')
    expect(srv.streamCount).toBe(1)
    a.destroy()
  })

  it('max pending opens: unanswered opens beyond the limit are refused', async () => {
    const { client, server } = await sessionPair({}, { acceptDelay: Infinity, maxPendingOpens: 2 })
    track(client, server)
    const pending = []
    server.on('stream', (s) => pending.push(s))
    const s1 = client.open({ data: '1' })
    const s2 = client.open({ data: '2' })
    const s3 = client.open({ data: '3' })
    const e = await nextError(s3)
    expect(e.wireCode).toBe(RefuseCode.TOO_MANY_PENDING)
    expect(server.stats().pendingOpens).toBe(2)
    pending[0].accept()
    await once(s1, 'open')
    const s4 = client.open({ data: '4' })
    await roundTrips(client, 2)
    expect(pending.length).toBe(3)
    expect(server.stats().pendingOpens).toBe(2)
    pending[1].refuse()
    pending[2].accept()
    await Promise.all([once(s4, 'open'), nextError(s2)])
  })

  it('handshake timeout: a silent or slow (partial HELLO) peer is dropped', async () => {
    for (const bytes of [null, Buffer.from('SYNMU')]) {
      const [a, b] = await tcpPair()
      const server = new Session(b, { role: 'server', handshakeTimeout: 50 })
      track(server)
      if (bytes) a.write(bytes)
      const [err] = await once(server, 'close')
      expect(err.code).toBe('SYNMUX_HANDSHAKE_TIMEOUT')
      a.destroy()
    }
  })

  it('idle timeout: closes gracefully (GOAWAY IDLE_TIMEOUT) only when no stream is open', async () => {
    const { client, server } = await sessionPair({ idleTimeout: 40 }, {})
    track(client, server)
    server.on('stream', (s) => {
      s.resume()
      s.on('end', () => s.end())
    })
    const st = client.open({ data: 'keep me' })
    await once(st, 'open')
    // Longer than the idle timeout, but a stream is open: the session stays.
    await new Promise((r) => setTimeout(r, 120))
    expect(client.state).toBe('open')
    const goaway = once(server, 'goaway')
    st.end()
    st.resume()
    const [info] = await goaway
    expect(info.code).toBe(GoawayCode.IDLE_TIMEOUT)
    await Promise.all([client.closed(), server.closed()])
    expect(client.error).toBe(undefined)
    expect(server.error).toBe(undefined)
  })

  it('keepalive: a live peer keeps the session, a silent one is declared dead', async () => {
    const ka = { keepAliveInterval: 20, keepAliveTimeout: 150 }
    const { client, server } = await sessionPair(ka, ka)
    track(client, server)
    await new Promise((r) => setTimeout(r, 200))
    expect(client.state).toBe('open')
    expect(server.state).toBe('open')
    // A peer that answered the handshake and then went silent (no FIN, no RST).
    const link = new LockstepLink()
    const c = new Session(link.a, { role: 'client', ...ka })
    const s = new Session(link.b, { role: 'server' })
    track(c, s)
    await link.settle()
    link.deliver('a')
    await link.settle()
    const handshake = once(c, 'handshake')
    const closed = once(c, 'close')
    link.deliver('b')
    await handshake
    const [err] = await closed
    expect(err).toBeInstanceOf(MuxError)
    expect(err.code).toBe('SYNMUX_PEER_TIMEOUT')
  })

  it('control queue: a peer that makes us owe it more than 1 MiB of replies without reading is cut off', async () => {
    for (const flood of ['ping', 'open']) {
      const d = stuckDuplex()
      const server = new Session(d, { role: 'server', maxStreams: 0 })
      track(server)
      server.on('stream', () => {})
      const frames = []
      if (flood === 'ping') for (let i = 0; i < 70_000; i++) frames.push(encodeFrame({ type: FrameType.PING, opaque: Buffer.alloc(8) }))
      else for (let i = 0; i < 60_000; i++) frames.push(encodeFrame({ type: FrameType.OPEN, streamId: 2 * i + 1 }))
      const closed = once(server, 'close')
      d.push(clientHello())
      const all = Buffer.concat(frames)
      for (let off = 0; off < all.length && !server.destroyed; off += 65536) {
        d.push(all.subarray(off, off + 65536))
        await new Promise((r) => setImmediate(r))
      }
      const [err] = await closed
      expect(err.code).toBe('SYNMUX_RESOURCE_EXHAUSTED')
      expect(err.wireCode).toBe(GoawayCode.RESOURCE_EXHAUSTED)
      expect(server.stats().controlQueueBytes).toBe(0)
    }
  })
})
