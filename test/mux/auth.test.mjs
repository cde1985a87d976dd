// PSK authentication (PROTOCOL.md 16): mutual HMAC proofs over fresh nonces;
// nothing of the session is processed or sent before both sides proved the key.
import { describe, it, expect, afterEach } from 'vitest'
import crypto from 'node:crypto'
import { Session, MuxError, FrameType, Capability, HelloExtension, encodeHello, encodeFrame, decodeHello, decodeFrame } from 'synmux'
import { sessionPair, tcpPair, LockstepLink, collect, once } from './helpers.mjs'

const cleanup = []
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn()
})
const track = (...s) => s.forEach((x) => cleanup.push(() => x.destroy()))
const key = crypto.randomBytes(32)
const other = crypto.randomBytes(32)

function parse(buf) {
  const h = decodeHello(buf)
  if (!h) return { hello: null, frames: [] }
  const frames = []
  for (let off = h.size; ; ) {
    const r = decodeFrame(buf, off)
    if (!r) break
    frames.push(r.frame)
    off += r.size
  }
  return { hello: h.hello, frames }
}

describe('PSK authentication', () => {
  it('both sides with the same key: authenticated, streams work', async () => {
    const { client, server } = await sessionPair({ auth: { key } }, { auth: { key: new Uint8Array(key) } })
    track(client, server)
    server.on('stream', (s) => s.pipe(s))
    const st = client.open({ data: 'secret hello', end: true })
    expect((await collect(st)).toString()).toBe('secret hello')
    expect(client.authenticated).toBe(true)
    expect(server.authenticated).toBe(true)
    expect(client.peerHello.capabilities & Capability.AUTH_PSK).toBe(Capability.AUTH_PSK)
    expect(client.peerHello.extensions.get(HelloExtension.AUTH_NONCE).length).toBe(32)
  })

  it('wrong key: the client detects it from the server proof; nothing is opened on the server', async () => {
    const { client, server } = await sessionPair({ auth: { key: other } }, { auth: { key } })
    track(client, server)
    let streams = 0
    server.on('stream', () => streams++)
    const st = client.open({ data: 'x' })
    const streamErr = new Promise((r) => st.once('error', r))
    const [cerr] = await once(client, 'close')
    expect(cerr).toBeInstanceOf(MuxError)
    expect(cerr.code).toBe('SYNMUX_AUTH_FAILED')
    expect((await streamErr).code).toBe('SYNMUX_AUTH_FAILED')
    await server.closed()
    expect(server.authenticated).toBe(false)
    expect(streams).toBe(0)
  })

  it('a key on one side only fails cleanly on both sides', async () => {
    // Server requires a key, the client has none: the server closes silently (it never sent its HELLO).
    const a = await sessionPair({}, { auth: { key } })
    track(a.client, a.server)
    const [[se], [ce]] = await Promise.all([once(a.server, 'close'), once(a.client, 'close')])
    expect(se.code).toBe('SYNMUX_AUTH_FAILED')
    expect(ce.code).toBe('SYNMUX_CONNECTION_LOST')
    // The client requires a key, the server does not authenticate: the client refuses.
    const b = await sessionPair({ auth: { key } }, {})
    track(b.client, b.server)
    const [cerr] = await once(b.client, 'close')
    expect(cerr.code).toBe('SYNMUX_AUTH_FAILED')
  })

  it('the server holds early frames and answers nothing but HELLO/PING to a bad AUTH', async () => {
    const [a, b] = await tcpPair()
    const server = new Session(b, { role: 'server', auth: { key } })
    track(server)
    let streams = 0
    server.on('stream', () => streams++)
    const out = []
    a.on('data', (d) => out.push(d))
    const closed = once(server, 'close')
    const hello = encodeHello({ kind: 1, role: 'client', capabilities: Capability.AUTH_PSK, sessionId: Buffer.alloc(32), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 10, extensions: [[HelloExtension.AUTH_NONCE, crypto.randomBytes(32)]] })
    a.write(Buffer.concat([hello, encodeFrame({ type: FrameType.OPEN, streamId: 1, data: Buffer.from('GET /') }), encodeFrame({ type: FrameType.PING, opaque: Buffer.alloc(8) })]))
    // Wait for the server's HELLO, then send a forged proof.
    while (!decodeHello(Buffer.concat(out))) await once(a, 'data')
    a.write(encodeFrame({ type: FrameType.AUTH, proof: crypto.randomBytes(32) }))
    const [err] = await closed
    expect(err.code).toBe('SYNMUX_AUTH_FAILED')
    expect(streams).toBe(0)
    await new Promise((r) => a.once('close', r))
    const { hello: sh, frames } = parse(Buffer.concat(out))
    expect(sh.capabilities & Capability.AUTH_PSK).toBe(Capability.AUTH_PSK)
    expect(frames.map((f) => f.type)).toEqual([FrameType.PING]) // no OPENED, no PONG, no GOAWAY
  })

  it('a recorded client flight cannot be replayed into a new session', async () => {
    const link = new LockstepLink()
    const c = new Session(link.a, { role: 'client', auth: { key }, keepAliveInterval: 0 })
    const s = new Session(link.b, { role: 'server', auth: { key }, keepAliveInterval: 0 })
    track(c, s)
    s.on('stream', (st) => st.end('ok'))
    c.open({ data: 'hi' }).resume()
    await link.settle()
    const flight1 = link.deliver('a')
    await link.settle()
    link.deliver('b')
    await link.settle()
    const flight3 = link.deliver('a') // AUTH + OPEN
    await link.settle()
    expect(s.authenticated).toBe(true)
    // Replay both client flights to a fresh server: its new nonce makes the old AUTH worthless.
    const [x, y] = await tcpPair()
    const victim = new Session(y, { role: 'server', auth: { key } })
    track(victim)
    let streams = 0
    victim.on('stream', () => streams++)
    x.on('data', () => {})
    x.on('error', () => {})
    const closed = once(victim, 'close')
    x.write(flight1)
    await new Promise((r) => setTimeout(r, 20))
    x.write(flight3)
    const [err] = await closed
    expect(err.code).toBe('SYNMUX_AUTH_FAILED')
    expect(streams).toBe(0)
  })

  it('more than 256 KiB before AUTH is refused', async () => {
    const d = new (await import('node:stream')).Duplex({ read() {}, write(_c, _e, cb) { cb() } })
    const server = new Session(d, { role: 'server', auth: { key }, handshakeTimeout: 0 })
    track(server)
    server.on('stream', () => {})
    await new Promise((r) => setImmediate(r))
    const closed = once(server, 'close')
    d.push(encodeHello({ kind: 1, role: 'client', capabilities: Capability.AUTH_PSK, sessionId: Buffer.alloc(32), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 10, extensions: [[HelloExtension.AUTH_NONCE, crypto.randomBytes(32)]] }))
    for (let i = 0; i < 40; i++) d.push(encodeFrame({ type: FrameType.PING, opaque: Buffer.alloc(8) }))
    expect(server.destroyed).toBe(false)
    for (let id = 1; id < 40; id += 2) d.push(encodeFrame({ type: FrameType.OPEN, streamId: id, data: Buffer.alloc(16000) }))
    const [err] = await closed
    expect(err.code).toBe('SYNMUX_AUTH_FAILED')
  })

  it('no AUTH within the handshake timeout', async () => {
    const [a, b] = await tcpPair()
    const server = new Session(b, { role: 'server', auth: { key }, handshakeTimeout: 50 })
    track(server)
    a.on('data', () => {})
    a.on('error', () => {})
    a.write(encodeHello({ kind: 1, role: 'client', capabilities: Capability.AUTH_PSK, sessionId: Buffer.alloc(32), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 10, extensions: [[HelloExtension.AUTH_NONCE, crypto.randomBytes(32)]] }))
    const [err] = await once(server, 'close')
    expect(err.code).toBe('SYNMUX_HANDSHAKE_TIMEOUT')
    a.destroy()
  })

  it('round trips: the first stream of an authenticated session takes two, later ones one', async () => {
    const link = new LockstepLink()
    const c = new Session(link.a, { role: 'client', auth: { key }, keepAliveInterval: 0 })
    const s = new Session(link.b, { role: 'server', auth: { key }, keepAliveInterval: 0, acceptDelay: Infinity })
    track(c, s)
    s.on('stream', (st) => st.once('data', (d) => st.write(`re:${d}`)))
    const ask = async (q) => {
      const st = c.open({ data: q })
      let got = null
      st.on('data', (d) => (got = d.toString()))
      const start = link.flights
      for (let i = 0; i < 10 && got === null; i++) {
        await link.settle()
        if (got !== null) break
        link.deliver(link.pending('a').length || i % 2 === 0 ? 'a' : 'b')
        await link.settle()
        if (got !== null) break
        link.deliver('b')
      }
      await link.settle()
      return { got, flights: link.flights - start }
    }
    expect(await ask('one')).toEqual({ got: 're:one', flights: 4 })
    for (let i = 0; i < 4; i++) {
      await link.settle()
      link.deliver('a')
      link.deliver('b')
    }
    await link.settle()
    expect(await ask('two')).toEqual({ got: 're:two', flights: 2 })
  })

  it('validates the key option', async () => {
    const [a] = await tcpPair()
    cleanup.push(() => a.destroy())
    expect(() => new Session(a, { role: 'client', auth: { key: 'secret' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new Session(a, { role: 'client', auth: { key: Buffer.alloc(8) } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new Session(a, { role: 'client', auth: 'k' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})
