import { describe, it, expect, afterEach } from 'vitest'
import net from 'node:net'
import { Session, MuxStream, MuxError, FrameType, GoawayCode, RefuseCode, ResetCode, encodeHello, encodeFrame, decodeHello, decodeFrame } from 'synmux'
import { sessionPair, tcpPair, collect, nextError, once, LockstepLink } from './helpers.mjs'

const cleanup = []
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn()
})
function track(...sessions) {
  for (const s of sessions) cleanup.push(() => s.destroy())
  return sessions
}
const clientHello = (over = {}) =>
  encodeHello({ kind: 1, role: 'client', capabilities: 0, sessionId: Buffer.alloc(32), initialWindow: 262144, maxFrameSize: 65536, maxStreams: 100, ...over })

/** Parses a byte stream from a synmux peer: its HELLO, then frames. */
function parsePeer(buf) {
  const h = decodeHello(buf)
  if (!h) return { hello: null, frames: [] }
  const frames = []
  let off = h.size
  for (;;) {
    const r = decodeFrame(buf, off)
    if (!r) break
    frames.push(r.frame)
    off += r.size
  }
  return { hello: h.hello, frames }
}
/** A raw TCP client of a server Session; resolves with everything the server sent until it closed. */
async function rawAgainstServer(bytes, serverOpts = {}) {
  const [a, b] = await tcpPair()
  const server = new Session(b, { role: 'server', ...serverOpts })
  track(server)
  server.on('stream', (s) => s.on('error', () => {}))
  const closed = once(server, 'close')
  const got = []
  a.on('data', (d) => got.push(d))
  a.on('error', () => {})
  const ended = new Promise((r) => a.once('close', r))
  a.write(bytes)
  const [err] = await closed
  await ended
  return { err, received: Buffer.concat(got), server }
}

describe('Session basics over loopback TCP', () => {
  it('end() on an ended stream: a no-op without a callback (no error built), ERR_STREAM_ALREADY_FINISHED to a callback', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    server.on('stream', (s) => s.pipe(s))
    const st = client.open({ data: 'x' })
    const body = collect(st)
    st.end()
    expect((await body).toString()).toBe('x')
    await new Promise((r) => (st.writableFinished ? r() : st.once('finish', r)))
    // Node's HTTP server calls socket.end() like this on every request end.
    const errors = []
    st.on('error', (e) => errors.push(e))
    expect(st.end()).toBe(st)
    expect(st.end(null)).toBe(st)
    const viaCb = await new Promise((r) => st.end(r))
    expect(viaCb?.code).toBe('ERR_STREAM_ALREADY_FINISHED')
    expect(errors).toEqual([])
    // Writing after the end still fails as a Writable does.
    const writeErr = await new Promise((r) => st.write('late', r))
    expect(writeErr?.code).toBe('ERR_STREAM_WRITE_AFTER_END')
  })

  it('opens a stream with target and data, echoes, closes both ways', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const seen = []
    server.on('stream', (s, info) => {
      seen.push([s.id, info.target, s.opener, s.target])
      s.pipe(s)
    })
    const st = client.open({ target: { host: 'example.com', port: 8080 }, data: 'ping!' })
    expect(st).toBeInstanceOf(MuxStream)
    expect(st.id).toBe(1)
    expect(st.opener).toBe('local')
    const opened = once(st, 'open')
    const body = collect(st)
    st.end(' and more')
    await opened
    expect(typeof st.openedIn).toBe('number')
    expect(st.openedIn).toBeGreaterThanOrEqual(0)
    expect((await body).toString()).toBe('ping! and more')
    expect(seen).toEqual([[1, { kind: 'hostname', host: 'example.com', port: 8080 }, 'remote', { kind: 'hostname', host: 'example.com', port: 8080 }]])
    expect(client.id.length).toBe(32)
    expect(client.id.equals(server.id)).toBe(true)
    expect(client.rtt).toBeGreaterThan(0)
    expect(client.state).toBe('open')
    await Promise.all([client.close(), server.closed()])
    expect(client.state).toBe('closed')
    expect(server.destroyed).toBe(true)
    expect(client.error).toBe(undefined)
  })

  it('works over IPv6 loopback (::1) when available', async (ctx) => {
    let pair
    try {
      pair = await tcpPair('::1')
    } catch {
      ctx.skip()
      return
    }
    const client = new Session(pair[0], { role: 'client' })
    const server = new Session(pair[1], { role: 'server' })
    track(client, server)
    server.on('stream', (s) => s.pipe(s))
    const st = client.open({ target: { host: '::1', port: 1 }, data: 'v6', end: true })
    expect((await collect(st)).toString()).toBe('v6')
  })

  it('both sides open at once without id collisions (client odd, server even)', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const echo = (s) => s.pipe(s)
    client.on('stream', echo)
    server.on('stream', echo)
    const fromClient = [1, 2, 3].map((i) => client.open({ data: `c${i}`, end: true }))
    const fromServer = [1, 2, 3].map((i) => server.open({ data: `s${i}`, end: true }))
    expect(fromClient.map((s) => s.id)).toEqual([1, 3, 5])
    expect(fromServer.map((s) => s.id)).toEqual([2, 4, 6])
    const out = await Promise.all([...fromClient, ...fromServer].map(collect))
    expect(out.map(String)).toEqual(['c1', 'c2', 'c3', 's1', 's2', 's3'])
  })

  it('auto-accepts an unanswered open after acceptDelay', async () => {
    const { client, server } = await sessionPair({}, { acceptDelay: 5 })
    track(client, server)
    const pending = []
    server.on('stream', (s) => pending.push(s))
    const st = client.open({ data: 'x' })
    await once(st, 'open')
    expect(pending.length).toBe(1)
    expect(pending[0].pending).toBe(false)
  })

  it('with acceptDelay Infinity the open waits for accept()', async () => {
    const { client, server } = await sessionPair({}, { acceptDelay: Infinity })
    track(client, server)
    let srv
    server.on('stream', (s) => (srv = s))
    const st = client.open({ data: 'x' })
    let opened = false
    st.on('open', () => (opened = true))
    await client.ping()
    await client.ping()
    expect(srv.pending).toBe(true)
    expect(opened).toBe(false)
    expect(server.stats().pendingOpens).toBe(1)
    srv.accept()
    expect(srv.pending).toBe(false)
    await once(st, 'open')
    expect(server.stats().pendingOpens).toBe(0)
    expect(() => st.accept()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
    expect(() => srv.refuse()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
  })

  it('refuse(code, reason) fails the opener with SYNMUX_REFUSED; later bytes are discarded', async () => {
    const { client, server } = await sessionPair({}, { acceptDelay: Infinity })
    track(client, server)
    const got = []
    server.on('stream', (s, { target }) => {
      // Inspect the first bytes, then refuse.
      s.once('data', (d) => {
        got.push(d.toString())
        if (target.port === 25) s.refuse(RefuseCode.NOT_ALLOWED, 'port 25 is not allowed')
      })
    })
    const st = client.open({ target: { host: '10.0.0.1', port: 25 }, data: 'EHLO' })
    const errP = nextError(st)
    // The server has the OPEN before it answers this PING; these bytes cross the REFUSED.
    await client.ping()
    if (!st.destroyed) st.write('more bytes that must be discarded')
    const err = await errP
    expect(err).toBeInstanceOf(MuxError)
    expect(err.code).toBe('SYNMUX_REFUSED')
    expect(err.wireCode).toBe(RefuseCode.NOT_ALLOWED)
    expect(err.reason).toBe('port 25 is not allowed')
    expect(st.destroyed).toBe(true)
    await client.ping()
    expect(got.join('')).toBe('EHLO')
    expect(server.streamCount).toBe(0)
    expect(client.streamCount).toBe(0)
  })

  it('refuses with NO_LISTENER when nobody listens for streams', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const err = await nextError(client.open({ data: 'x' }))
    expect(err.code).toBe('SYNMUX_REFUSED')
    expect(err.wireCode).toBe(RefuseCode.NO_LISTENER)
  })

  it('half-close: each direction ends independently', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    server.on('stream', async (s) => {
      // Read to EOF first, then answer: the opener's FIN must not close our side.
      const req = await collect(s)
      s.write('got ' + req.length)
      setImmediate(() => s.end(' bytes'))
    })
    const st = client.open({ data: 'abc' })
    st.end('def')
    expect((await collect(st)).toString()).toBe('got 6 bytes')
    // And the other way round: the acceptor ends first, the opener keeps writing.
    const { client: c2, server: s2 } = await sessionPair()
    track(c2, s2)
    const received = new Promise((resolve) =>
      s2.on('stream', (s) => {
        s.end('bye early')
        collect(s).then(resolve)
      }),
    )
    const st2 = c2.open({ data: 'hi' })
    expect((await collect(st2)).toString()).toBe('bye early')
    st2.write(' still writing')
    st2.end()
    expect((await received).toString()).toBe('hi still writing')
  })

  it('destroy(err) sends RST: the peer fails with SYNMUX_STREAM_RESET; reset(code) carries the code', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const serverStreams = []
    server.on('stream', (s) => {
      serverStreams.push(s)
      s.write('hello')
    })
    const a = client.open({ data: 'a' })
    await once(a, 'data')
    const errP = nextError(serverStreams[0])
    a.on('error', () => {})
    a.destroy(new Error('local failure'))
    const err = await errP
    expect(err.code).toBe('SYNMUX_STREAM_RESET')
    expect(err.wireCode).toBe(ResetCode.CANCEL)

    const b = client.open({ data: 'b' })
    await once(b, 'data')
    const errB = nextError(b)
    serverStreams[1].reset(0x1234)
    const eb = await errB
    expect(eb.code).toBe('SYNMUX_STREAM_RESET')
    expect(eb.wireCode).toBe(0x1234)
    expect(() => serverStreams[1].reset(70000)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    await client.ping()
    expect(client.streamCount).toBe(0)
    expect(server.streamCount).toBe(0)
  })

  it("an acceptor that destroys a stream before answering resets it; accept() emits 'open' on the acceptor", async () => {
    const { client, server } = await sessionPair({}, { acceptDelay: Infinity })
    track(client, server)
    const acceptorOpened = []
    server.on('stream', (s, { target }) => {
      if (target.port === 1) s.destroy()
      else {
        s.on('open', () => acceptorOpened.push(s.id))
        s.accept()
      }
    })
    const a = client.open({ target: { host: 'x', port: 1 }, data: 'x' })
    const err = await nextError(a)
    expect(err.code).toBe('SYNMUX_STREAM_RESET')
    expect(err.wireCode).toBe(ResetCode.CANCEL)
    const b = client.open({ target: { host: 'x', port: 2 } })
    await once(b, 'open')
    expect(acceptorOpened).toEqual([b.id])
  })

  it('close(): GOAWAY, no new streams, existing streams finish, then both sessions close', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    let srv
    server.on('stream', (s) => (srv = s))
    const st = client.open({ data: 'req' })
    await once(st, 'open')
    const goaway = once(server, 'goaway')
    const closing = client.close()
    const [info] = await goaway
    expect(info).toEqual({ code: GoawayCode.NORMAL, lastStreamId: 0, reason: '' })
    expect(client.state).toBe('closing')
    const late = client.open({ data: 'late' })
    expect((await nextError(late)).code).toBe('SYNMUX_SESSION_CLOSED')
    const fromServer = server.open({ data: 'late' })
    const e2 = await nextError(fromServer)
    expect(e2.code).toBe('SYNMUX_REFUSED')
    expect(e2.wireCode).toBe(RefuseCode.GOING_AWAY)
    // The existing stream still works both ways.
    const body = collect(st)
    srv.write('response')
    srv.end()
    st.end()
    expect((await body).toString()).toBe('response')
    await closing
    await server.closed()
    expect(client.error).toBe(undefined)
    expect(server.error).toBe(undefined)
  })

  it('GOAWAY crossing an OPEN: the stream above last is refused with GOING_AWAY, the one below finishes', async () => {
    const link = new LockstepLink()
    const client = new Session(link.a, { role: 'client', keepAliveInterval: 0 })
    const server = new Session(link.b, { role: 'server', keepAliveInterval: 0 })
    track(client, server)
    const srvStreams = []
    server.on('stream', (s) => srvStreams.push(s))
    const s1 = client.open({ data: 'one' })
    await link.settle()
    link.deliver('a')
    await link.settle()
    expect(srvStreams.length).toBe(1)
    // The server says goodbye while the client, not knowing yet, opens stream 3.
    server.close()
    const s3 = client.open({ data: 'three' })
    await link.settle()
    link.deliver('a')
    link.deliver('b')
    const err = await nextError(s3)
    expect(err.code).toBe('SYNMUX_REFUSED')
    expect(err.wireCode).toBe(RefuseCode.GOING_AWAY)
    expect(srvStreams.length).toBe(1) // stream 3 was never surfaced
    srvStreams[0].end('done')
    s1.end()
    const body = collect(s1)
    for (let i = 0; i < 6; i++) {
      await link.settle()
      link.deliver('a')
      link.deliver('b')
    }
    expect((await body).toString()).toBe('done')
    await Promise.all([client.closed(), server.closed()])
    expect(client.error).toBe(undefined)
    expect(server.error).toBe(undefined)
  })

  it('ping() measures the RTT', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const rtt = await client.ping()
    expect(rtt).toBeGreaterThan(0)
    expect(client.rtt).toBeGreaterThan(0)
    const rtt2 = await server.ping()
    expect(rtt2).toBeGreaterThan(0)
    client.destroy()
    await expect(client.ping()).rejects.toMatchObject({ code: 'SYNMUX_SESSION_CLOSED' })
  })

  it('losing the transport fails streams with SYNMUX_CONNECTION_LOST', async () => {
    const { client, server, a } = await sessionPair()
    track(client, server)
    const serverStreamErr = new Promise((resolve) => server.on('stream', (s) => s.on('error', resolve)))
    const st = client.open({ data: 'x' })
    await once(st, 'open')
    const errP = nextError(st)
    const closeP = once(client, 'close')
    a.destroy()
    expect((await errP).code).toBe('SYNMUX_CONNECTION_LOST')
    const [err] = await closeP
    expect(err.code).toBe('SYNMUX_CONNECTION_LOST')
    const [serr] = await once(server, 'close')
    expect(serr.code).toBe('SYNMUX_CONNECTION_LOST')
    expect((await serverStreamErr).code).toBe('SYNMUX_CONNECTION_LOST')
  })

  it("emits 'error' only to listeners and always passes the error to 'close'", async () => {
    const { client, server, b } = await sessionPair()
    track(client, server)
    const errs = []
    client.on('error', (e) => errs.push(e.code))
    const closed = once(client, 'close')
    b.destroy()
    const [err] = await closed
    expect(errs).toEqual(['SYNMUX_CONNECTION_LOST'])
    expect(err.code).toBe('SYNMUX_CONNECTION_LOST')
    // The server had no 'error' listener: no crash, error on 'close'.
    await server.closed()
    expect(server.error.code).toBe('SYNMUX_CONNECTION_LOST')
  })
})

describe('Session handshake and protocol errors', () => {
  it('answers a non-synmux peer by closing without writing anything (SYNMUX_BAD_MAGIC)', async () => {
    const { err, received } = await rawAgainstServer(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    expect(err.code).toBe('SYNMUX_BAD_MAGIC')
    expect(received.length).toBe(0)
  })

  it('answers another version with its HELLO and GOAWAY(UNSUPPORTED_VERSION)', async () => {
    const { err, received } = await rawAgainstServer(clientHello({ version: 9 }))
    expect(err.code).toBe('SYNMUX_UNSUPPORTED_VERSION')
    expect(err.version).toBe(9)
    const { hello, frames } = parsePeer(received)
    expect(hello.version).toBe(1)
    expect(frames.at(-1)).toMatchObject({ type: FrameType.GOAWAY, code: GoawayCode.UNSUPPORTED_VERSION })
  })

  it('rejects a client NEW with a non-zero session id and a role conflict', async () => {
    const r1 = await rawAgainstServer(clientHello({ sessionId: Buffer.alloc(32, 1) }))
    expect(r1.err.code).toBe('SYNMUX_HANDSHAKE_FAILED')
    const r2 = await rawAgainstServer(clientHello({ role: 'server' }))
    expect(r2.err.code).toBe('SYNMUX_HANDSHAKE_FAILED')
    // Two clients: each sees the other's role.
    const [a, b] = await tcpPair()
    const c1 = new Session(a, { role: 'client' })
    const c2 = new Session(b, { role: 'client' })
    track(c1, c2)
    const [[e1], [e2]] = await Promise.all([once(c1, 'close'), once(c2, 'close')])
    expect([e1.code, e2.code]).toContain('SYNMUX_HANDSHAKE_FAILED')
  })

  it('a malformed frame after the handshake: GOAWAY(PROTOCOL_ERROR) and SYNMUX_PROTOCOL_ERROR', async () => {
    const bad = Buffer.concat([clientHello(), Buffer.from([0, 0, 0, 0x42, 0, 0, 0, 0, 0])])
    const { err, received } = await rawAgainstServer(bad)
    expect(err.code).toBe('SYNMUX_PROTOCOL_ERROR')
    expect(err.wireCode).toBe(GoawayCode.PROTOCOL_ERROR)
    const { frames } = parsePeer(received)
    const ga = frames.find((f) => f.type === FrameType.GOAWAY)
    expect(ga).toMatchObject({ code: GoawayCode.PROTOCOL_ERROR, lastStreamId: 0 })
    expect(ga.reason).toMatch(/unknown frame type 0x42/)
  })

  it('session-level violations are protocol errors', async () => {
    const f = (x) => encodeFrame(x)
    const cases = [
      ['DATA on a stream never opened', [f({ type: FrameType.DATA, streamId: 7, data: Buffer.from('x') })], 'SYNMUX_PROTOCOL_ERROR'],
      ['OPEN with the server parity', [f({ type: FrameType.OPEN, streamId: 2 })], 'SYNMUX_PROTOCOL_ERROR'],
      ['OPEN ids not increasing', [f({ type: FrameType.OPEN, streamId: 5 }), f({ type: FrameType.OPEN, streamId: 3 })], 'SYNMUX_PROTOCOL_ERROR'],
      ['OPENED for a stream the server never opened', [f({ type: FrameType.OPENED, streamId: 2 })], 'SYNMUX_PROTOCOL_ERROR'],
      ['DATA after FIN', [f({ type: FrameType.OPEN, streamId: 1, flags: 1 }), f({ type: FrameType.DATA, streamId: 1, data: Buffer.from('x') })], 'SYNMUX_PROTOCOL_ERROR'],
      ['data beyond the window', [f({ type: FrameType.OPEN, streamId: 1, data: Buffer.alloc(16000) }), ...Array.from({ length: 17 }, () => f({ type: FrameType.DATA, streamId: 1, data: Buffer.alloc(16000) }))], 'SYNMUX_FLOW_CONTROL_ERROR'],
      ['WINDOW overflow', [f({ type: FrameType.OPEN, streamId: 1 }), f({ type: FrameType.WINDOW, streamId: 1, increment: 2 ** 31 - 1 })], 'SYNMUX_FLOW_CONTROL_ERROR'],
      ['ACK beyond what was sent', [f({ type: FrameType.ACK, received: 1e9 })], 'SYNMUX_PROTOCOL_ERROR'],
      ['GOAWAY with a client-parity last id', [f({ type: FrameType.GOAWAY, lastStreamId: 3, code: 0 })], 'SYNMUX_PROTOCOL_ERROR'],
      ['AUTH without its capability', [f({ type: FrameType.AUTH, proof: Buffer.alloc(32) })], 'SYNMUX_PROTOCOL_ERROR'],
      ['SEQ without its capability', [f({ type: FrameType.SEQ, offset: 0 })], 'SYNMUX_PROTOCOL_ERROR'],
      ['a frame above the max frame size', [Buffer.from([0, 0x40, 1, 4, 0, 0, 0, 0, 1])], 'SYNMUX_FRAME_SIZE_ERROR'],
    ]
    for (const [name, frames, code] of cases) {
      if (process.env.DEBUG_CASES) console.log(name)
      const { err, received } = await rawAgainstServer(Buffer.concat([clientHello(), ...frames]), { maxFrameSize: 16384 })
      expect(err?.code, name).toBe(code)
      const ga = parsePeer(received).frames.find((x) => x.type === FrameType.GOAWAY)
      expect(ga?.code, name).toBe(err.wireCode)
    }
  })

  it('an error GOAWAY from the peer fails streams with SYNMUX_REMOTE_GOAWAY', async () => {
    const [a, b] = await tcpPair()
    const client = new Session(a, { role: 'client' })
    track(client)
    const st = client.open({ data: 'x' })
    const errP = nextError(st)
    b.write(
      Buffer.concat([
        encodeHello({ kind: 1, role: 'server', capabilities: 0, sessionId: Buffer.alloc(32, 9), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 10 }),
        encodeFrame({ type: FrameType.GOAWAY, lastStreamId: 0, code: GoawayCode.INTERNAL_ERROR, reason: 'broken' }),
      ]),
    )
    const err = await errP
    expect(err.code).toBe('SYNMUX_REMOTE_GOAWAY')
    expect(err.wireCode).toBe(GoawayCode.INTERNAL_ERROR)
    expect(err.reason).toBe('broken')
    b.destroy()
  })
})

describe('argument validation', () => {
  it('constructor', async () => {
    const [a] = await tcpPair()
    cleanup.push(() => a.destroy())
    const c = (fn) => {
      try {
        fn()
      } catch (e) {
        return [e.constructor.name, e.code]
      }
      return null
    }
    expect(c(() => new Session(null, { role: 'client' }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => new Session({}, { role: 'client' }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => new Session(a))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => new Session(a, { role: 'peer' }))).toEqual(['TypeError', 'ERR_INVALID_ARG_VALUE'])
    expect(c(() => new Session(a, { role: 'client', initialWindow: 1000 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(c(() => new Session(a, { role: 'client', maxFrameSize: 2 ** 24 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(c(() => new Session(a, { role: 'client', maxStreams: -1 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(c(() => new Session(a, { role: 'client', acceptDelay: 1.5 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(c(() => new Session(a, { role: 'client', maxTargetLength: 256 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(c(() => new Session(a, { role: 'client', idleTimeout: '5' }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => new Session(a, { role: 'client', noDelay: 1 }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => new Session(a, { role: 'client', maxWindow: 70000, initialWindow: 80000 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
  })
  it('open()', async () => {
    const { client, server } = await sessionPair()
    track(client, server)
    const c = (fn) => {
      try {
        fn()
      } catch (e) {
        return [e.constructor.name, e.code]
      }
      return null
    }
    expect(c(() => client.open('x'))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => client.open({ data: 5 }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => client.open({ end: 'yes' }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => client.open({ target: { host: 'x' } }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(c(() => client.open({ target: { host: 'x', port: 1.5 } }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(c(() => client.open({ target: { host: 'bad host', port: 1 } }))).toEqual(['TypeError', 'ERR_INVALID_ARG_VALUE'])
    expect(client.streamCount).toBe(0)
  })
})
