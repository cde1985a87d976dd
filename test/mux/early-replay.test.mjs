// EARLY_REPLAY (PROTOCOL.md 13.9): a resuming client sends its RESUME HELLO
// with REPLAY_FROM and, in the same write, every session frame the server has
// not acknowledged; the server drops the ones it already has. So the
// client's data reaches the server half a round trip after the reconnect
// instead of one and a half. Also: the first OPENs of a session, sent before
// the server's HELLO, are kept for replay; a RESUME with REPLAY_FROM that
// cannot be honoured gets NEW + RESUME_REFUSED and no session.
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { Capability, HelloExtension, HelloKind, ResumeRefused, Session, decodeFrame, decodeHello, encodeHello } from 'synmux'
import { ResumeServer, nextEvent, until } from './resume-helpers.mjs'


describe('EARLY_REPLAY', () => {
  it('the RESUME HELLO carries REPLAY_FROM and the unacknowledged frames follow it in the first flight; every byte arrives once', async () => {
    const server = await new ResumeServer({}).listen()
    const firstFlights = []
    // A relay that records each connection's client bytes up to the server's first answer.
    const relay = net.createServer({ allowHalfOpen: true }, (c) => {
      const up = net.connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true })
      const rec = { bytes: Buffer.alloc(0), answered: false }
      firstFlights.push(rec)
      c.on('data', (d) => {
        if (!rec.answered) rec.bytes = Buffer.concat([rec.bytes, d])
        up.write(d)
      })
      up.on('data', (d) => {
        rec.answered = true
        c.write(d)
      })
      for (const [a, b] of [[c, up], [up, c]]) {
        a.on('error', () => b.destroy())
        a.on('close', () => b.destroy())
      }
    })
    await new Promise((r) => relay.listen(0, '127.0.0.1', r))
    const connect = () => net.connect({ port: relay.address().port, host: '127.0.0.1', allowHalfOpen: true })
    let received = ''
    server.registry.on('session', (s) => s.on('stream', (st) => st.on('data', (d) => (received += d)).on('end', () => st.end())))
    const client = new Session(connect(), { role: 'client', resumption: { connect, reconnectDelay: { min: 0, max: 0 } } })
    client.on('error', () => {})
    // Opened before the server's HELLO: this OPEN rides in the first flight and must be replayable too.
    const st = client.open({ data: 'a' })
    await nextEvent(client, 'handshake')
    expect(client.peerHello.capabilities & Capability.EARLY_REPLAY).toBeTruthy()
    let sent = 'a'
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 5; i++) {
        const chunk = `${round}.${i};`
        st.write(chunk)
        sent += chunk
      }
      // Kill the connection while those writes may still be in flight (unacknowledged).
      await new Promise((r) => setImmediate(r))
      const resumed = nextEvent(client, 'resumed')
      client.duplex.resetAndDestroy()
      await resumed
    }
    await until(() => received === sent, 'every byte, once, in order')
    expect(received).toBe(sent)
    // Some of what was replayed at once had arrived before: the server dropped it (13.9), and processed the rest once.
    const [srv] = [...server.registry.sessions()]
    expect(srv.stats().duplicateBytes).toBeGreaterThan(0)
    // Every resume's first flight: RESUME HELLO (REPLAY_FROM), then frames, sent before the server answered.
    const resumes = firstFlights.slice(1).filter((f) => f.bytes.length > 0)
    expect(resumes.length).toBe(10)
    let withFrames = 0
    for (const f of resumes) {
      const r = decodeHello(f.bytes)
      expect(r.hello.kind).toBe(HelloKind.RESUME)
      const from = r.hello.extensions.get(HelloExtension.REPLAY_FROM)
      expect(from?.length).toBe(8)
      if (f.bytes.length > r.size) {
        // What follows the HELLO decodes as frames.
        expect(decodeFrame(f.bytes, r.size)).not.toBe(null)
        withFrames++
      }
    }
    expect(withFrames).toBeGreaterThan(0)
    st.end()
    await client.close()
    relay.close()
    await server.close()
  })

  it('a RESUME with REPLAY_FROM for an unknown session: NEW with RESUME_REFUSED, the transport ends, no session is made of the frames after it', async () => {
    const server = await new ResumeServer({}).listen()
    let sessions = 0
    server.registry.on('session', () => sessions++)
    const sock = net.connect(server.port, '127.0.0.1')
    const hello = encodeHello({
      kind: HelloKind.RESUME,
      role: 'client',
      capabilities: Capability.RESUME | Capability.EARLY_REPLAY,
      sessionId: Buffer.alloc(32, 7),
      initialWindow: 262_144,
      maxFrameSize: 65_536,
      maxStreams: 1024,
      extensions: [[HelloExtension.RECEIVED, Buffer.alloc(8)], [HelloExtension.REPLAY_BUFFER, Buffer.from([0, 0x40, 0, 0])], [HelloExtension.REPLAY_FROM, Buffer.alloc(8)]],
    })
    // Garbage where the replayed frames would be: never processed.
    sock.write(Buffer.concat([hello, Buffer.from('definitely not frames')]))
    let got = Buffer.alloc(0)
    sock.on('data', (d) => (got = Buffer.concat([got, d])))
    await new Promise((r) => sock.once('end', r))
    const r = decodeHello(got)
    expect(r.hello.kind).toBe(HelloKind.NEW)
    expect(r.hello.extensions.get(HelloExtension.RESUME_REFUSED)).toEqual(Buffer.from([ResumeRefused.UNKNOWN_ID]))
    expect(got.length).toBe(r.size) // nothing after the HELLO: no GOAWAY, no session
    expect(sessions).toBe(0)
    sock.destroy()
    await server.close()
  })
})
