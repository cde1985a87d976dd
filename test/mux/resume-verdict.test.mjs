// Resumption with AUTH_PSK (PROTOCOL.md 13.4): the server says nothing about
// a session before the client proved the key. RESUMED is the same for every
// id and carries no RECEIVED; after a valid AUTH the server's first frame is
// ACK(R) or a GOAWAY refusing the resume. Striped sessions learn R the same way.
import net from 'node:net'
import crypto from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { Capability, FrameType, GoawayCode, HelloExtension, HelloKind, ResumeRefused, Session, decodeFrame, decodeHello, encodeHello } from 'synmux'
import { Relay, ResumeServer, receiveHashed, sendHashed, until } from './resume-helpers.mjs'

const KEY = Buffer.alloc(32, 9)
const waitFor = (emitter, ev) => new Promise((r) => emitter.once(ev, (...a) => r(a)))
const closeOf = (s) => new Promise((r) => (s.destroyed ? r(s.error) : s.once('close', r)))
const u64 = (n) => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
// The proofs of PROTOCOL.md 16, computed here independently of the code under test.
const serverProof = (k, clientHello, ns) => crypto.createHmac('sha256', k).update('synmux server').update(clientHello).update(ns).digest()
const clientProof = (k, serverHello, nc) => crypto.createHmac('sha256', k).update('synmux client').update(serverHello).update(nc).digest()
const authFrame = (proof) => Buffer.concat([Buffer.from([0, 0, 32, FrameType.AUTH, 0, 0, 0, 0, 0]), proof])

/** A raw client: sends a RESUME for `id` (RECEIVED `received`), returns the server's answer and a way to send the AUTH. */
async function rawResume(port, id, received = 0, stripe = false) {
  const nonce = crypto.randomBytes(32)
  const hello = encodeHello({
    kind: HelloKind.RESUME,
    role: 'client',
    capabilities: Capability.AUTH_PSK | Capability.RESUME | (stripe ? Capability.STRIPE : 0),
    sessionId: id,
    initialWindow: 256 * 1024,
    maxFrameSize: 16 * 1024,
    maxStreams: 1024,
    extensions: [[HelloExtension.RECEIVED, u64(received)], [HelloExtension.AUTH_NONCE, nonce], [HelloExtension.REPLAY_BUFFER, u64(4 << 20).subarray(4)]],
  })
  const s = net.connect(port, '127.0.0.1')
  s.on('error', () => {})
  let got = Buffer.alloc(0)
  s.on('data', (d) => (got = Buffer.concat([got, d])))
  const closed = new Promise((r) => s.once('close', r))
  s.write(hello)
  await until(() => decodeHello(got) !== null, 'RESUMED')
  const { hello: h, size } = decodeHello(got)
  const raw = got.subarray(0, size)
  return { s, h, raw, hello, nonce, closed, after: () => got.subarray(size) }
}

/** A client session with auth and resumption on `srv`, one echoing stream open, `n` bytes exchanged. */
async function liveSession(srv, n = 100_000) {
  srv.registry.on('session', (s) => {
    s.on('error', () => {})
    s.on('stream', (st) => st.pipe(st))
  })
  const client = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client', auth: { key: KEY }, resumption: {} })
  client.on('error', () => {})
  await waitFor(client, 'handshake')
  const st = client.open({})
  st.on('error', () => {})
  const echoed = receiveHashed(st)
  await sendHashed(st, n)
  await until(() => client.stats().sessionBytesReceived > n, 'the echo')
  return { client, st, echoed }
}

describe('RESUME with AUTH_PSK: nothing about the session before the AUTH', () => {
  it('a live id and an unknown id get the same RESUMED (no RECEIVED), with the server proof; nothing else before the AUTH', async () => {
    const srv = await new ResumeServer({ auth: { key: KEY } }).listen()
    const { client } = await liveSession(srv)
    const live = await rawResume(srv.port, client.id, 0)
    const unknown = await rawResume(srv.port, crypto.randomBytes(32), 0)
    for (const x of [live, unknown]) {
      expect(x.h.kind).toBe(HelloKind.RESUME)
      expect(x.h.extensions.has(HelloExtension.RECEIVED)).toBe(false)
      expect(x.h.extensions.get(HelloExtension.AUTH_PROOF)).toEqual(serverProof(KEY, x.hello, x.h.extensions.get(HelloExtension.AUTH_NONCE)))
    }
    const shape = (x) => ({ ...x.h, sessionId: null, extensions: [...x.h.extensions.keys()].sort(), size: x.raw.length })
    expect(shape(live)).toEqual(shape(unknown))
    await new Promise((r) => setTimeout(r, 100))
    expect(live.after().length).toBe(0)
    // a wrong AUTH: closed, nothing more said, the live session untouched
    live.s.write(authFrame(crypto.randomBytes(32)))
    await live.closed
    expect(live.after().length).toBe(0)
    expect(srv.registry.stats().authFailures).toBe(1)
    expect(client.stats().attached).toBe(true)
    unknown.s.destroy()
    client.destroy()
    await srv.close()
  })

  it('after a valid AUTH: ACK(R) first for a live id (R = what the server received); GOAWAY 12 for an unknown id, 11 for a RECEIVED out of range', async () => {
    const srv = await new ResumeServer({ auth: { key: KEY } }).listen()
    const { client } = await liveSession(srv)
    const server = [...srv.registry.sessions()][0]
    const R = server.stats().sessionBytesReceived
    const ok = await rawResume(srv.port, client.id, 0)
    ok.s.write(authFrame(clientProof(KEY, ok.raw, ok.nonce)))
    await until(() => ok.after().length >= 17, 'ACK')
    const first = decodeFrame(ok.after())
    expect(first.frame).toMatchObject({ type: FrameType.ACK, received: R })
    ok.s.destroy()
    for (const [id, received, code] of [[crypto.randomBytes(32), 0, GoawayCode.RESUME_UNKNOWN_ID], [client.id, 1 << 30, GoawayCode.RESUME_OUT_OF_RANGE]]) {
      const x = await rawResume(srv.port, id, received)
      x.s.write(authFrame(clientProof(KEY, x.raw, x.nonce)))
      await x.closed
      expect(decodeFrame(x.after()).frame).toMatchObject({ type: FrameType.GOAWAY, code })
    }
    client.destroy()
    await srv.close()
  })

  it('a session client resumes through the verdict: streams go on, every byte once', async () => {
    const srv = await new ResumeServer({ auth: { key: KEY } }).listen()
    const relay = await new Relay(srv.port).listen()
    srv.registry.on('session', (s) => {
      s.on('error', () => {})
      s.on('stream', (st) => st.pipe(st))
    })
    const client = new Session(relay.connect(), { role: 'client', auth: { key: KEY }, resumption: { connect: () => relay.connect(), reconnectDelay: { min: 10, max: 50 } } })
    client.on('error', () => {})
    await waitFor(client, 'handshake')
    const st = client.open({})
    const got = receiveHashed(st)
    const sending = sendHashed(st, 16 << 20)
    await until(() => client.stats().sessionBytesReceived > 4 << 20, 'progress')
    const resumed = waitFor(client, 'resumed')
    for (const p of relay.pairs) p.client.resetAndDestroy()
    await resumed
    expect((await got).sha).toBe(await sending)
    expect(client.stats().resumes).toBe(1)
    client.destroy()
    await relay.close()
    await srv.close()
  })

  it('refusals after the AUTH reach the client as before: unknown id → SYNMUX_SESSION_LOST wireCode 1, expired → 2', async () => {
    const a = await new ResumeServer({ auth: { key: KEY } }).listen()
    const b = await new ResumeServer({ auth: { key: KEY } }).listen()
    const { client } = await liveSession(a)
    client.duplex.resetAndDestroy()
    await waitFor(client, 'detached')
    client.resume(net.connect(b.port, '127.0.0.1'))
    const err = await closeOf(client)
    expect(err).toMatchObject({ code: 'SYNMUX_SESSION_LOST', wireCode: ResumeRefused.UNKNOWN_ID })
    expect(b.registry.stats().authFailures).toBe(0)
    await a.close()
    await b.close()

    const srv = await new ResumeServer({ auth: { key: KEY }, resumption: { detachTimeout: 100 } }).listen()
    const c2 = (await liveSession(srv)).client
    c2.duplex.resetAndDestroy()
    await waitFor(c2, 'detached')
    await until(() => srv.registry.stats().expired === 1, 'expiry')
    c2.resume(net.connect(srv.port, '127.0.0.1'))
    expect(await closeOf(c2)).toMatchObject({ code: 'SYNMUX_SESSION_LOST', wireCode: ResumeRefused.EXPIRED })
    await srv.close()
  })

  it('a striped session (3 lanes, AUTH_PSK) whose every lane dies resumes: R arrives in the ACK, the lanes join again, every byte once', async () => {
    const srv = await new ResumeServer({ auth: { key: KEY } }).listen()
    srv.registry.on('session', (s) => {
      s.on('error', () => {})
      s.on('stream', (st) => st.pipe(st))
    })
    const relay = await new Relay(srv.port).listen()
    const connect = () => relay.connect()
    const c = new Session(connect(), { role: 'client', lanes: 3, auth: { key: KEY }, resumption: { connect, reconnectDelay: { min: 10, max: 100 } } })
    c.on('error', () => {})
    await until(() => c.stats().lanes.length === 3, '3 lanes')
    const st = c.open({})
    const got = receiveHashed(st)
    const sending = sendHashed(st, 8 << 20)
    await until(() => c.stats().sessionBytesSent > 2 << 20, 'progress')
    const resumed = waitFor(c, 'resumed')
    for (const p of relay.pairs) p.client.resetAndDestroy()
    await resumed
    expect((await got).sha).toBe(await sending)
    expect(c.stats().resumes).toBe(1)
    await until(() => c.stats().lanes.filter((l) => l.state === 'open').length === 3, 'lanes rejoined after the resume')
    c.destroy()
    await relay.close()
    await srv.close()
  })
})
