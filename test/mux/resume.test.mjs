// Session resumption (PROTOCOL.md 13): transfers that survive killed
// transports, every refusal case, and the replay buffer bound.
import net from 'node:net'
import crypto from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { Capability, FrameType, GoawayCode, HelloExtension, HelloKind, ResumeRefused, Session, SessionRegistry, decodeHello, encodeFrame, encodeHello } from 'synmux'
import { ResumeServer, receiveHashed, resumableClient, sendHashed, sleep } from './resume-helpers.mjs'
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
  it('200 MiB both ways over 4 streams survive repeated RSTs on both sides and server socket-layer restarts (PSK auth, 256 KiB replay)', async () => {
    const replayBuffer = 256 * 1024
    const srv = await new ResumeServer({ auth: { key: KEY }, resumption: { replayBuffer, detachTimeout: 10_000 } }).listen()
    const serverResults = []
    hashingServer(srv, serverResults)
    const client = resumableClient(srv.port, { auth: { key: KEY } }, { replayBuffer })
    const errors = []
    client.on('error', (e) => errors.push(e))
    await waitFor(client, 'handshake')
    expect(client.stats().resumable).toBe(true)
    const PER = 25 // MiB per stream per direction: 4 × 25 × 2 = 200 MiB
    const streams = [0, 1, 2, 3].map(() => client.open({ target: { host: 'x', port: PER } }))
    for (const st of streams) st.on('error', (e) => errors.push(e))
    const clientSide = Promise.all(streams.map(async (st) => {
      const [sent, received] = await Promise.all([sendHashed(st, PER << 20), receiveHashed(st)])
      return { id: st.id, sent, received }
    }))
    const rand = prng(7)
    let kills = { clientRst: 0, serverRst: 0, restart: 0 }
    let done = false
    clientSide.finally(() => { done = true })
    const killer = (async () => {
      let i = 0
      while (!done) {
        await sleep(10 + Math.floor(rand() * 30))
        if (done) break
        const r = rand()
        i++
        if (i % 7 === 0) {
          await srv.restartSockets(20)
          kills.restart++
        } else if (r < 0.5) {
          if (client.stats().attached && !client.duplex.destroyed) {
            client.duplex.resetAndDestroy()
            kills.clientRst++
          }
        } else {
          for (const s of srv.registry.sessions()) {
            if (s.stats().attached && !s.duplex.destroyed) {
              s.duplex.resetAndDestroy()
              kills.serverRst++
            }
          }
        }
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
    expect(kills.clientRst + kills.serverRst + kills.restart).toBeGreaterThanOrEqual(5)
    expect(cst.resumes).toBeGreaterThanOrEqual(3)
    expect(cst.replayMax).toBeLessThanOrEqual(replayBuffer)
    expect(sst.replayMax).toBeLessThanOrEqual(replayBuffer)
    expect(cst.replayLimit).toBe(replayBuffer)
    expect(cst.replayedBytes + sst.replayedBytes).toBeGreaterThan(0)
    console.log('kills', kills, 'client resumes', cst.resumes, 'replayed', cst.replayedBytes, sst.replayedBytes, 'dups', cst.duplicateBytes, sst.duplicateBytes)
    await client.close()
    await srv.close()
  }, 90_000)

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
    await sleep(200)
    const before = client.stats()
    expect(before.sessionBytesSent).toBeLessThanOrEqual(65536)
    expect(before.sessionBytesSent).toBeGreaterThan(60000)
    expect(before.replayBytes).toBe(before.sessionBytesSent)
    expect(before.replayMax).toBeLessThanOrEqual(65536)
    // An ACK frees space and the rest flows.
    sock.write(encodeFrame({ type: FrameType.ACK, received: before.sessionBytesSent }))
    await sleep(200)
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
    await sleep(50)
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
    let goaway = null
    const fake = net.createServer((s) => {
      s.once('data', (d) => {
        const ch = decodeHello(d).hello
        s.write(encodeHello({ kind: HelloKind.RESUME, role: 'server', capabilities: Capability.RESUME, sessionId: ch.sessionId, initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.RECEIVED, u64(1_000_000)], [HelloExtension.REPLAY_BUFFER, u32(65536)]] }))
        s.on('data', (more) => { goaway = more })
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
    await sleep(50)
    expect(goaway?.[3]).toBe(FrameType.GOAWAY)
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

describe.skipIf(!nsCap.ok)('resumption over a namespace link that silently drops everything', () => {
  it('2 × 8 MiB both ways survive three blackholes (keepalive detects, client reconnects and resumes)', async () => {
    // 2 MB/s each way: the transfer outlasts all three blackholes
    const link = await netns.createDelayedLink({ rttMs: 10, rateBps: 2_000_000 })
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/resume-peer.mjs')
    try {
      const server = link.spawnNode('server', script, ['server', '9500'])
      const serverLines = []
      server.stdout.on('data', (d) => serverLines.push(...d.toString().split('\n').filter(Boolean)))
      await sleep(500)
      const bytes = 8 << 20
      const run = link.run('client', process.execPath, [script, 'client', link.server.address, '9500', String(bytes)], { timeoutMs: 60_000 })
      await sleep(1000) // let the client start, handshake and get the transfer going
      for (let i = 0; i < 3; i++) {
        await sleep(300)
        await link.setBlackhole(true)
        await sleep(1200)
        await link.setBlackhole(false)
      }
      const r = await run
      if (!r.stdout.trim()) throw new Error(`client printed nothing: ${r.stderr}`)
      const out = JSON.parse(r.stdout.trim().split('\n').pop())
      await sleep(200)
      const views = serverLines.map((l) => JSON.parse(l)).filter((v) => v.server)
      expect(out.ok).toBe(true)
      // Three blackholes during the transfer give 1-3 resumes: a reconnect
      // cycle can span more than one blackhole. Every byte must still arrive.
      expect(out.resumes).toBeGreaterThanOrEqual(1)
      expect(views.length).toBe(2)
      const sentByServer = new Set(views.map((v) => v.sent))
      const receivedByServer = new Set(views.map((v) => v.received.sha))
      for (const st of out.streams) {
        expect(st.received.bytes).toBe(bytes)
        expect(sentByServer.has(st.received.sha)).toBe(true)
        expect(receivedByServer.has(st.sent)).toBe(true)
      }
      expect(out.stats.replayMax).toBeLessThanOrEqual(out.stats.replayLimit)
      for (const v of views) expect(v.stats.replayMax).toBeLessThanOrEqual(v.stats.replayLimit)
      console.log('silent drop: client resumes', out.resumes, 'replayed', out.stats.replayedBytes)
    } finally {
      await link.close()
    }
  }, 90_000)
})
