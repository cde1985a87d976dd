// Session resumption (PROTOCOL.md 13): transfers that survive killed
// transports, every refusal case, and the replay buffer bound.
import { EventEmitter } from 'node:events'
import net from 'node:net'
import crypto from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { Capability, FrameType, GoawayCode, HelloExtension, HelloKind, ResumeRefused, Session, SessionRegistry, decodeHello, encodeFrame, encodeHello } from 'synmux'
import { Relay, ResumeServer, nextEvent, receiveHashed, sendHashed, until } from './resume-helpers.mjs'
import { prng } from './helpers.mjs'

const KEY = Buffer.alloc(32, 1)
const u64 = (n) => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
const u32 = (n) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
const waitFor = (emitter, ev) => new Promise((r) => emitter.once(ev, (...a) => r(a)))
const closeOf = (s) => new Promise((r) => (s.destroyed ? r(s.error) : s.once('close', r)))

/** Server side of a test: every stream hashes what it gets and sends `bytes` back. */
function hashingServer(srv, results) {
  srv.registry.on('session', (s) => {
    s.on('error', () => {})
    s.on('stream', (st) => {
      const bytes = st.target.port * 1024 * 1024
      results.push(Promise.all([receiveHashed(st), sendHashed(st, bytes)]).then(([received, sent]) => ({ id: st.id, received, sent })))
    })
  })
}

describe('resumption', () => {
  it('200 MiB both ways over 4 streams survive repeated kills — RST by either side, silent drop, server socket-layer restart — each giving exactly one resume (PSK auth, 256 KiB replay)', async () => {
    const replayBuffer = 256 * 1024
    // Short keepalive: a silent drop is noticed by the PING deadline.
    const timing = { keepAliveInterval: 100, keepAliveTimeout: 300 }
    const srv = await new ResumeServer({ auth: { key: KEY }, ...timing, resumption: { replayBuffer, detachTimeout: 10_000 } }).listen()
    const serverResults = []
    hashingServer(srv, serverResults)
    // The client reaches the server through a relay that can go silent.
    const relay = await new Relay(srv.port).listen()
    const client = new Session(relay.connect(), { role: 'client', auth: { key: KEY }, ...timing, resumption: { connect: () => relay.connect(), reconnectDelay: { min: 10, max: 100 }, replayBuffer } })
    const errors = []
    client.on('error', (e) => errors.push(e))
    await waitFor(client, 'handshake')
    expect(client.stats().resumable).toBe(true)
    const PER = 25 // MiB per stream per direction: 4 × 25 × 2 = 200 MiB
    const streams = [0, 1, 2, 3].map(() => client.open({ target: { host: 'x', port: PER } }))
    for (const st of streams) st.on('error', (e) => errors.push(e))
    let done = false
    const clientSide = Promise.all(streams.map(async (st) => {
      const [sent, received] = await Promise.all([sendHashed(st, PER << 20), receiveHashed(st)])
      return { id: st.id, sent, received }
    })).finally(() => { done = true })
    // Kill, wait for the resume, let 8 MiB more flow, kill again: the kinds in turn.
    const kinds = ['clientRst', 'serverRst', 'silentDrop', 'restart']
    const kills = { clientRst: 0, serverRst: 0, silentDrop: 0, restart: 0 }
    const moved = () => client.stats().sessionBytesSent + client.stats().sessionBytesReceived
    const killer = (async () => {
      for (let i = 0; ; i++) {
        const from = moved()
        await until(() => done || moved() >= from + (8 << 20), 'the transfer to move 8 MiB', 30_000)
        if (done) return
        const kind = kinds[i % kinds.length]
        const resumed = nextEvent(client, 'resumed', () => true, 20_000)
        if (kind === 'clientRst') client.duplex.resetAndDestroy()
        else if (kind === 'serverRst') [...srv.registry.sessions()][0].duplex.resetAndDestroy()
        else if (kind === 'silentDrop') expect(relay.silence()).toBe(1)
        else await srv.restartSockets(20)
        kills[kind]++
        await resumed
      }
    })()
    const cs = await clientSide
    await killer
    const ss = await Promise.all(serverResults)
    expect(errors).toEqual([])
    for (const c of cs) {
      const s = ss.find((x) => x.id === c.id)
      expect(s.received.bytes).toBe(PER << 20)
      expect(s.received.sha).toBe(c.sent)
      expect(c.received.bytes).toBe(PER << 20)
      expect(c.received.sha).toBe(s.sent)
    }
    const cst = client.stats()
    const sst = [...srv.registry.sessions()][0].stats()
    const total = kills.clientRst + kills.serverRst + kills.silentDrop + kills.restart
    for (const k of kinds) expect(kills[k]).toBeGreaterThanOrEqual(2)
    expect(cst.resumes).toBe(total)
    expect(sst.resumes).toBe(total)
    expect(cst.replayMax).toBeLessThanOrEqual(replayBuffer)
    expect(sst.replayMax).toBeLessThanOrEqual(replayBuffer)
    expect(cst.replayLimit).toBe(replayBuffer)
    expect(cst.replayedBytes + sst.replayedBytes).toBeGreaterThan(0)
    console.log('kills', kills, 'resumes', cst.resumes, 'replayed', cst.replayedBytes, sst.replayedBytes, 'dups', cst.duplicateBytes, sst.duplicateBytes)
    await client.close()
    await srv.close()
    await relay.close()
  }, 120_000)

  it('a sender stops at the replay bound until the peer ACKs', async () => {
    // A hand-made server that accepts RESUME but never ACKs.
    const got = []
    let sock
    const server = net.createServer((s) => {
      sock = s
      let hello = false
      s.on('data', (d) => {
        if (!hello) {
          hello = true
          s.write(encodeHello({ kind: HelloKind.NEW, role: 'server', capabilities: Capability.RESUME, sessionId: crypto.randomBytes(32), initialWindow: 16 << 20, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.REPLAY_BUFFER, u32(1 << 20)]] }))
        }
        got.push(d)
      })
    })
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    const client = new Session(net.connect(server.address().port, '127.0.0.1'), { role: 'client', resumption: { replayBuffer: 65536 } })
    client.on('error', () => {})
    await waitFor(client, 'handshake')
    const st = client.open({ data: Buffer.alloc(1 << 20, 1) })
    st.on('error', () => {})
    const received = () => got.reduce((n, d) => n + d.length, 0)
    // The server got (nearly) a replay buffer's worth: the client is at its bound.
    await until(() => client.stats().sessionBytesSent > 60000 && received() >= client.stats().bytesSent, 'the client to reach its replay bound')
    const before = client.stats()
    expect(before.sessionBytesSent).toBeLessThanOrEqual(65536)
    expect(before.sessionBytesSent).toBeGreaterThan(60000)
    expect(before.replayBytes).toBe(before.sessionBytesSent)
    expect(before.replayMax).toBeLessThanOrEqual(65536)
    // An ACK frees space and the rest flows.
    sock.write(encodeFrame({ type: FrameType.ACK, received: before.sessionBytesSent }))
    await until(() => client.stats().sessionBytesSent > before.sessionBytesSent + 60000, 'more session bytes after the ACK')
    const after = client.stats()
    expect(after.sessionBytesSent).toBeGreaterThan(before.sessionBytesSent)
    expect(after.sessionBytesSent - after.peerAcked).toBeLessThanOrEqual(65536)
    expect(after.replayMax).toBeLessThanOrEqual(65536)
    client.destroy()
    server.close()
    sock.destroy()
  })

  it('streams pause, not fail, while detached; the client resumes by hand with resume(duplex)', async () => {
    const srv = await new ResumeServer().listen()
    srv.registry.on('session', (s) => s.on('stream', (st) => st.pipe(st)))
    const client = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client', resumption: {} })
    await waitFor(client, 'handshake')
    const st = client.open()
    st.write('one ')
    const chunks = []
    st.on('data', (d) => chunks.push(d))
    await nextEvent(st, 'data')
    const detached = waitFor(client, 'detached')
    client.duplex.resetAndDestroy()
    await detached
    st.write('two ') // queued while detached
    expect(st.destroyed).toBe(false)
    const resumed = waitFor(client, 'resumed')
    client.resume(net.connect(srv.port, '127.0.0.1'))
    await resumed
    st.end('three')
    await new Promise((r) => st.once('end', r))
    expect(Buffer.concat(chunks).toString()).toBe('one two three')
    await client.close()
    await srv.close()
  })

  it('refused: unknown id (another server) → SYNMUX_SESSION_LOST, wireCode 1', async () => {
    const a = await new ResumeServer().listen()
    a.registry.on('session', (s) => s.on('stream', (st) => st.accept()))
    const b = await new ResumeServer().listen()
    const client = new Session(net.connect(a.port, '127.0.0.1'), { role: 'client', resumption: {} })
    await waitFor(client, 'handshake')
    const st = client.open()
    const stErr = waitFor(st, 'error')
    await waitFor(st, 'open')
    client.duplex.resetAndDestroy()
    await waitFor(client, 'detached')
    client.resume(net.connect(b.port, '127.0.0.1'))
    const err = await closeOf(client)
    expect(err.code).toBe('SYNMUX_SESSION_LOST')
    expect(err.wireCode).toBe(ResumeRefused.UNKNOWN_ID)
    expect((await stErr)[0].code).toBe('SYNMUX_SESSION_LOST')
    await a.close()
    await b.close()
  })

  it('refused: expired (detachTimeout) → SYNMUX_SESSION_LOST, wireCode 2, on both sides', async () => {
    const srv = await new ResumeServer({ resumption: { detachTimeout: 100 } }).listen()
    const serverClosed = new Promise((r) => srv.registry.once('session', (s) => s.once('close', r)))
    const client = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client', resumption: {} })
    client.on('error', () => {})
    await waitFor(client, 'handshake')
    client.duplex.resetAndDestroy()
    await waitFor(client, 'detached')
    const serr = await serverClosed
    expect(serr.code).toBe('SYNMUX_SESSION_LOST')
    expect(srv.registry.stats().expired).toBe(1)
    client.resume(net.connect(srv.port, '127.0.0.1'))
    const err = await closeOf(client)
    expect(err.code).toBe('SYNMUX_SESSION_LOST')
    expect(err.wireCode).toBe(ResumeRefused.EXPIRED)
    await srv.close()
  })

  it('refused: a client can no longer reconnect within resumeTimeout → SYNMUX_SESSION_LOST', async () => {
    const srv = await new ResumeServer().listen()
    const connect = () => net.connect({ port: 1, host: '127.0.0.1' }) // refused every time
    const client = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client', resumption: { connect, resumeTimeout: 300, reconnectDelay: { min: 10, max: 50 } } })
    client.on('error', () => {})
    await waitFor(client, 'handshake')
    client.duplex.resetAndDestroy()
    const err = await closeOf(client)
    expect(err.code).toBe('SYNMUX_SESSION_LOST')
    await srv.close()
  })

  it('refused: wrong key — a stolen id resumes nothing; the owner still resumes', async () => {
    const srv = await new ResumeServer({ auth: { key: KEY } }).listen()
    const refused = []
    srv.registry.on('refused', (r) => refused.push(r))
    const client = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client', auth: { key: KEY }, resumption: {} })
    await waitFor(client, 'handshake')
    const id = client.id
    // The attacker knows the id but not the key.
    const atk = net.connect(srv.port, '127.0.0.1')
    const nonce = crypto.randomBytes(32)
    atk.write(encodeHello({ kind: HelloKind.RESUME, role: 'client', capabilities: Capability.RESUME | Capability.AUTH_PSK, sessionId: id, initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.AUTH_NONCE, nonce], [HelloExtension.RECEIVED, u64(0)], [HelloExtension.REPLAY_BUFFER, u32(65536)]] }))
    atk.write(encodeFrame({ type: FrameType.AUTH, proof: crypto.randomBytes(32) }))
    atk.on('data', () => {})
    atk.on('error', () => {})
    await new Promise((r) => atk.once('close', r))
    expect(refused.map((r) => r.reason)).toEqual([0])
    expect(srv.registry.stats().authFailures).toBe(1)
    // The real session was not touched.
    expect(client.stats().attached).toBe(true)
    // The owner resumes fine after that.
    client.duplex.resetAndDestroy()
    await waitFor(client, 'detached')
    client.resume(net.connect(srv.port, '127.0.0.1'))
    await waitFor(client, 'resumed')
    // A server that answers RESUMED without holding the key: SYNMUX_AUTH_FAILED on the client.
    const impostor = net.createServer((s) => {
      s.once('data', (d) => {
        const ch = decodeHello(d).hello
        s.write(encodeHello({ kind: HelloKind.RESUME, role: 'server', capabilities: Capability.RESUME | Capability.AUTH_PSK, sessionId: ch.sessionId, initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.AUTH_NONCE, crypto.randomBytes(32)], [HelloExtension.AUTH_PROOF, crypto.randomBytes(32)], [HelloExtension.RECEIVED, u64(0)], [HelloExtension.REPLAY_BUFFER, u32(65536)]] }))
      })
      s.on('error', () => {})
    })
    await new Promise((r) => impostor.listen(0, '127.0.0.1', r))
    client.on('error', () => {})
    client.duplex.resetAndDestroy()
    await waitFor(client, 'detached')
    client.resume(net.connect(impostor.address().port, '127.0.0.1'))
    const err = await closeOf(client)
    expect(err.code).toBe('SYNMUX_AUTH_FAILED')
    impostor.close()
    await srv.close()
  })

  it('refused: replay out of range — server answers NEW with RESUME_REFUSED 3; a client answers GOAWAY(RESUME_OUT_OF_RANGE)', async () => {
    const srv = await new ResumeServer().listen()
    const client = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client', resumption: {} })
    await waitFor(client, 'handshake')
    // A RESUME claiming more than the server ever sent.
    const raw = net.connect(srv.port, '127.0.0.1')
    raw.write(encodeHello({ kind: HelloKind.RESUME, role: 'client', capabilities: Capability.RESUME, sessionId: client.id, initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.RECEIVED, u64(1_000_000)], [HelloExtension.REPLAY_BUFFER, u32(65536)]] }))
    const answer = await waitFor(raw, 'data')
    const h = decodeHello(answer[0]).hello
    expect(h.kind).toBe(HelloKind.NEW)
    expect([...h.extensions.get(HelloExtension.RESUME_REFUSED)]).toEqual([ResumeRefused.OUT_OF_RANGE])
    raw.destroy()
    // A fake server whose RESUMED claims more than the client sent.
    let gotGoaway
    const goawayArrived = new Promise((r) => (gotGoaway = r))
    const fake = net.createServer((s) => {
      s.once('data', (d) => {
        const ch = decodeHello(d).hello
        s.write(encodeHello({ kind: HelloKind.RESUME, role: 'server', capabilities: Capability.RESUME, sessionId: ch.sessionId, initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.RECEIVED, u64(1_000_000)], [HelloExtension.REPLAY_BUFFER, u32(65536)]] }))
        s.on('data', (more) => gotGoaway(more))
        s.on('error', () => {})
      })
    })
    await new Promise((r) => fake.listen(0, '127.0.0.1', r))
    client.on('error', () => {})
    client.duplex.resetAndDestroy()
    await waitFor(client, 'detached')
    client.resume(net.connect(fake.address().port, '127.0.0.1'))
    const err = await closeOf(client)
    expect(err.code).toBe('SYNMUX_SESSION_LOST')
    expect(err.wireCode).toBe(GoawayCode.RESUME_OUT_OF_RANGE)
    const goaway = await goawayArrived
    expect(goaway[3]).toBe(FrameType.GOAWAY)
    expect(goaway.readUInt16BE(9 + 4)).toBe(GoawayCode.RESUME_OUT_OF_RANGE)
    fake.close()
    await srv.close()
  })

  it('a server without a registry answers RESUME with NEW (RESUME_REFUSED 4): SYNMUX_SESSION_LOST', async () => {
    const srv = await new ResumeServer().listen()
    const client = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client', resumption: {} })
    client.on('error', () => {})
    await waitFor(client, 'handshake')
    const plain = net.createServer((s) => new Session(s, { role: 'server' }).on('error', () => {}))
    await new Promise((r) => plain.listen(0, '127.0.0.1', r))
    client.duplex.resetAndDestroy()
    await waitFor(client, 'detached')
    client.resume(net.connect(plain.address().port, '127.0.0.1'))
    const err = await closeOf(client)
    expect(err.code).toBe('SYNMUX_SESSION_LOST')
    expect(err.wireCode).toBe(ResumeRefused.NOT_SUPPORTED)
    plain.close()
    await srv.close()
  })

  it('options are validated', () => {
    expect(() => new SessionRegistry({ resumption: { replayBuffer: 100 } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new Session(new net.Socket(), { role: 'client', resumption: { connect: 5 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

const netns = await import('../../bench/lib/netns.mjs')
const nsCap = netns.canCreateNamespaces()
if (!nsCap.ok) console.warn(`[skip] silent-drop resumption: ${nsCap.reason}`)

/** JSON lines of a child process as events on an emitter (`event` field, or 'server'/'line'). */
function jsonLines(child) {
  const ee = new EventEmitter()
  let buf = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (!l.trim()) continue
      const o = JSON.parse(l)
      ee.emit('line', o)
      ee.emit(o.event ?? (o.server ? 'server' : 'other'), o)
    }
  })
  return ee
}

describe.skipIf(!nsCap.ok)('resumption over a namespace link that silently drops everything', () => {
  it('three blackholes during a two-way transfer: each gives exactly one outage and one resume; every byte arrives once', async () => {
    // Event-driven: blackhole on, wait for the client to notice (keepalive),
    // blackhole off, wait for the resume and for data to flow again, repeat.
    // (With fixed windows — 1.2 s blackholes 0.3 s apart — detection, up to
    // 0.6 s, plus a reconnect attempt lost in the blackhole, which waits for
    // the 1 s SYN retransmission, outlasted the gap: two blackholes fell in
    // one outage, and the test saw 1-3 resumes.)
    const link = await netns.createDelayedLink({ rttMs: 10, rateBps: 2_000_000, queueBytes: 256 * 1024 })
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/resume-peer.mjs')
    try {
      const server = link.spawnNode('server', script, ['server', '9500'], { stdio: ['ignore', 'pipe', 'inherit'] })
      const sEvents = jsonLines(server)
      const views = []
      sEvents.on('server', (v) => views.push(v))
      await nextEvent(sEvents, 'listening', () => true, 10_000)
      const client = link.spawnNode('client', script, ['client', link.server.address, '9500'], { stdio: ['pipe', 'pipe', 'inherit'] })
      const cEvents = jsonLines(client)
      const errors = []
      cEvents.on('error', (e) => errors.push(e))
      const log = []
      cEvents.on('line', (o) => o.event && log.push(o.event))
      await nextEvent(cEvents, 'flowing', () => true, 15_000)
      for (let i = 0; i < 3; i++) {
        const outage = nextEvent(cEvents, 'outage', () => true, 10_000)
        await link.setBlackhole(true)
        await outage
        const resumed = nextEvent(cEvents, 'resumed', () => true, 15_000)
        const flowing = nextEvent(cEvents, 'flowing', () => true, 20_000)
        await link.setBlackhole(false)
        await resumed
        await flowing
      }
      const result = nextEvent(cEvents, 'result', () => true, 30_000)
      const serverViews = until(() => views.length === 2, 'the server views', 30_000)
      client.stdin.write('finish\n')
      const [out] = await result
      await serverViews
      expect(errors).toEqual([])
      expect(out.outages).toBe(3)
      expect(out.resumes).toBe(3)
      expect(out.stats.resumes).toBe(3)
      expect(log.filter((e) => e === 'outage' || e === 'resumed')).toEqual(['outage', 'resumed', 'outage', 'resumed', 'outage', 'resumed'])
      for (const v of views) expect(v.error).toBeUndefined()
      for (const st of out.streams) {
        expect(st.sent.bytes).toBeGreaterThan(0)
        expect(st.received.bytes).toBeGreaterThan(0)
        const v = views.find((x) => x.received.sha === st.sent.sha)
        expect(v, 'the server received exactly what a client stream sent').toBeDefined()
        expect(v.received.bytes).toBe(st.sent.bytes)
        expect(st.received.sha).toBe(v.sent.sha)
        expect(st.received.bytes).toBe(v.sent.bytes)
      }
      expect(out.stats.replayMax).toBeLessThanOrEqual(out.stats.replayLimit)
      for (const v of views) expect(v.stats.replayMax).toBeLessThanOrEqual(v.stats.replayLimit)
      for (const v of views) expect(v.stats.resumes).toBe(3)
      console.log('silent drop: outages', out.outages, 'resumes', out.resumes, 'failed attempts', out.failedAttempts, 'replayed', out.stats.replayedBytes, views.map((v) => v.stats.replayedBytes))
    } finally {
      await link.close()
    }
  }, 120_000)
})
