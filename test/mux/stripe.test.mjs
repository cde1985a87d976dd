// Striping (PROTOCOL.md 14): one session over several TCP connections
// ("lanes") on loopback, through relays that delay and kill lanes.
import { describe, it, expect, afterEach } from 'vitest'
import net from 'node:net'
import crypto from 'node:crypto'
import { Session, SessionRegistry, encodeHello, encodeFrame, decodeHello, HelloKind, Capability, HelloExtension, FrameType, GoawayCode } from 'synmux'
import { prng } from './helpers.mjs'
import { sendHashed, receiveHashed } from './resume-helpers.mjs'

const cleanups = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()()
})

/** Waits for `pred()` to hold, checking on every event-loop turn, up to `ms`. */
async function until(pred, ms = 10_000, what = 'condition') {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A loopback server whose connections go through a SessionRegistry; streams are echoed. */
async function stripeServer(opts = {}) {
  const registry = new SessionRegistry(opts)
  const sessions = []
  const used = new Set()
  registry.on('session', (s) => {
    sessions.push(s)
    s.on('error', () => {})
    s.on('stream', (st) => {
      used.add(s)
      st.on('error', () => {})
      st.pipe(st)
    })
  })
  const sockets = new Set()
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    registry.accept(sock)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const close = async () => {
    await registry.close()
    for (const s of sockets) s.destroy()
    await new Promise((r) => server.close(r))
  }
  cleanups.push(close)
  return { registry, sessions, used, port: server.address().port }
}

/**
 * A loopback relay in front of `port`: every connection through it is a
 * lane; each gets its own delay (ms, from `delayOf()`), kept in order, and
 * can be killed (both sockets reset).
 */
async function laneRelay(port, delayOf = () => 0) {
  const conns = []
  const server = net.createServer({ allowHalfOpen: true }, (a) => {
    const b = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    const delay = delayOf()
    const conn = { a, b, delay, dead: false, frozen: false }
    conns.push(conn)
    const pipe = (from, to) => {
      // One FIFO per direction, pumped by one timer: bytes keep their order.
      const q = []
      let timer = null
      const pump = () => {
        timer = null
        while (q.length > 0 && q[0].at <= Date.now()) {
          const { d } = q.shift()
          if (to.destroyed) continue
          if (d === null) to.end()
          else to.write(d)
        }
        if (q.length > 0) timer = setTimeout(pump, q[0].at - Date.now())
      }
      const add = (d) => {
        if (delay === 0 && q.length === 0) {
          if (!to.destroyed) d === null ? to.end() : to.write(d)
          return
        }
        q.push({ at: Date.now() + delay, d })
        if (timer === null) timer = setTimeout(pump, delay)
      }
      from.on('data', (d) => {
        if (!conn.frozen) add(d)
      })
      from.on('end', () => !conn.frozen && add(null))
      from.on('error', () => {})
      from.on('close', () => !conn.frozen && setTimeout(() => to.destroy(), delay + 1))
    }
    pipe(a, b)
    pipe(b, a)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(async () => {
    for (const c of conns) {
      c.a.destroy()
      c.b.destroy()
    }
    await new Promise((r) => server.close(r))
  })
  return {
    port: server.address().port,
    conns,
    live: () => conns.filter((c) => !c.dead && !c.a.destroyed),
    /** The lane goes silent: nothing is forwarded any more, nothing is closed. */
    freeze(c) {
      c.frozen = true
      c.dead = true
    },
    kill(c) {
      c.dead = true
      c.a.resetAndDestroy()
      c.b.resetAndDestroy()
    },
  }
}

function stripedClient(port, opts = {}) {
  const connect = () => net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  const s = new Session(connect(), { role: 'client', lanes: 4, ...opts, resumption: { connect, reconnectDelay: { min: 10, max: 100 }, ...opts.resumption } })
  cleanups.push(async () => s.destroy())
  return s
}

describe('striping over 4 lanes', () => {
  it('opens the lanes, reports them, and carries 8 streams × 2 MiB both ways byte-exact', async () => {
    const srv = await stripeServer({ auth: { key: Buffer.alloc(32, 7) } })
    const c = stripedClient(srv.port, { auth: { key: Buffer.alloc(32, 7) } })
    const events = []
    c.on('lane', (info) => events.push(`${info.index}:${info.state}`))
    await until(() => c.stats().lanes.filter((l) => l.state === 'open').length === 4, 10_000, '4 lanes')
    expect(c.stats().striped).toBe(true)
    expect(events.sort()).toEqual(['1:open', '2:open', '3:open'])
    const runs = []
    for (let i = 0; i < 8; i++) {
      const st = c.open({})
      runs.push(Promise.all([sendHashed(st, 2 * 1024 * 1024), receiveHashed(st)]))
    }
    for (const [sent, got] of await Promise.all(runs)) {
      expect(got.bytes).toBe(2 * 1024 * 1024)
      expect(got.sha).toBe(sent)
    }
    const lanes = c.stats().lanes
    // Every lane carried a share of the data.
    for (const l of lanes) expect(l.bytesSent).toBeGreaterThan(64 * 1024)
    expect(c.stats().resumes).toBe(0)
    expect(srv.sessions).toHaveLength(1)
  })

  it('survives random lane kills under random per-lane delays: sha256 of every stream, no stream error', async () => {
    const seed = Number(process.env.SYNMUX_SEED ?? crypto.randomInt(2 ** 31))
    const rand = prng(seed)
    try {
      const srv = await stripeServer()
      const relay = await laneRelay(srv.port, () => Math.floor(rand() * 15))
      const c = stripedClient(relay.port)
      let resentTotal = 0
      c.on('lane', (info) => {
        if (info.state === 'closed') resentTotal += info.resent
      })
      const resent = () => resentTotal
      await until(() => c.stats().lanes.filter((l) => l.state === 'open').length === 4, 10_000, '4 lanes')
      let kills = 0
      let stop = false
      const killer = (async () => {
        while (!stop) {
          // A kill every 1–3 MiB of progress (so the count does not depend on the machine's speed).
          const at = c.stats().sessionBytesReceived + (1 + rand() * 2) * 1024 * 1024
          while (!stop && c.stats().sessionBytesReceived < at) await new Promise((r) => setTimeout(r, 2))
          const live = relay.live()
          // Keep at least one lane: a kill of the last one is a resume, tested elsewhere.
          if (stop || live.length < 2) continue
          relay.kill(live[Math.floor(rand() * live.length)])
          kills++
        }
      })()
      const errors = []
      const runs = []
      for (let i = 0; i < 6; i++) {
        const st = c.open({})
        st.on('error', (e) => errors.push(e))
        runs.push(Promise.all([sendHashed(st, 4 * 1024 * 1024), receiveHashed(st)]))
      }
      const results = await Promise.all(runs)
      stop = true
      await killer
      expect(errors).toEqual([])
      for (const [sent, got] of results) expect(got.sha).toBe(sent)
      expect(kills).toBeGreaterThanOrEqual(5)
      // The killed lanes' unacknowledged frames were sent again on the others.
      expect(resent()).toBeGreaterThan(0)
      // Killed lanes were replaced (the client keeps 4).
      await until(() => c.stats().lanes.filter((l) => l.state === "open").length === 4, 10_000, () => `lanes replaced (${JSON.stringify(c.stats().lanes)} resumes ${c.stats().resumes})`)
      expect(relay.conns.length).toBeGreaterThan(4)
      // One session carried everything (a JOIN that raced a resume may have been answered NEW and dropped).
      expect(srv.used.size).toBe(1)
    } catch (err) {
      err.message += ` (seed ${seed}; rerun with SYNMUX_SEED=${seed})`
      throw err
    }
  })

  it('streams opened at once (before the lanes join) carry on over the lanes as they join', async () => {
    const srv = await stripeServer()
    const c = stripedClient(srv.port)
    const runs = []
    for (let i = 0; i < 3; i++) {
      // Opened and written before the server's HELLO: these frames go on lane 0 before striping is known.
      const st = c.open({})
      runs.push(Promise.all([sendHashed(st, 4 * 1024 * 1024), receiveHashed(st)]))
    }
    expect(c.stats().striped).toBe(false)
    for (const [sent, got] of await Promise.all(runs)) expect(got.sha).toBe(sent)
    await until(() => c.stats().lanes.length === 4, 10_000, '4 lanes')
    expect(c.stats().lanes.filter((l) => l.index > 0).every((l) => l.bytesSent > 0)).toBe(true)
  })

  it('a lane that goes silent (no RST, no FIN) is declared stalled; the stream completes without a resume', async () => {
    const srv = await stripeServer()
    const relay = await laneRelay(srv.port)
    const c = stripedClient(relay.port, { lanes: 3 })
    await until(() => c.stats().lanes.length === 3, 10_000, '3 lanes')
    const died = []
    c.on('lane', (info, err) => {
      if (info.state === 'closed') died.push({ index: info.index, code: err?.code, resent: info.resent })
    })
    const st = c.open({})
    const got = receiveHashed(st)
    const sending = sendHashed(st, 16 * 1024 * 1024)
    await until(() => c.stats().sessionBytesSent > 2 * 1024 * 1024, 10_000, 'progress')
    const t0 = Date.now()
    relay.freeze(relay.live()[1])
    expect((await got).sha).toBe(await sending)
    // The silent lane (the relay passes nothing, not even a close) can only be found by the stall rule.
    const stalled = died.filter((d) => d.code === 'SYNMUX_PEER_TIMEOUT')
    expect(stalled).toHaveLength(1)
    // (Whether it still held unacknowledged frames depends on the scheduler having
    // avoided it already; the re-send itself is asserted in the lane-kill test.)
    // Declared after the rule's 1 s (plus twice the worst lane RTT and its queue), not at once.
    expect(Date.now() - t0).toBeGreaterThan(900)
    expect(c.stats().resumes).toBe(0)
  })

  it('keeps FIN (half-close) and RST meaning across lanes', async () => {
    const srv = await stripeServer()
    const c = stripedClient(srv.port)
    await until(() => c.stats().lanes.length === 4, 10_000, '4 lanes')
    // Half-close: the client ends, the echo still flows back, then ends.
    const st = c.open({})
    const got = receiveHashed(st)
    const sent = await sendHashed(st, 512 * 1024, 1000)
    expect((await got).sha).toBe(sent)
    // RST: the server sees the reset, with its code.
    const seen = new Promise((resolve) => srv.sessions[0].once('stream', (s) => s.once('error', resolve)))
    const r = c.open({ data: 'x' })
    r.on('error', () => {})
    await new Promise((res) => r.once('open', res))
    r.destroy()
    const err = await seen
    expect(err.code).toBe('SYNMUX_STREAM_RESET')
  })

  it('adds and removes lanes while a transfer runs', async () => {
    const srv = await stripeServer()
    const c = stripedClient(srv.port, { lanes: 2 })
    await until(() => c.stats().lanes.length === 2, 10_000, '2 lanes')
    const st = c.open({})
    const got = receiveHashed(st)
    const sending = sendHashed(st, 12 * 1024 * 1024)
    await until(() => c.stats().sessionBytesSent > 2 * 1024 * 1024, 10_000, 'progress')
    expect(await c.addLane()).toBe(2)
    expect(c.stats().lanes.map((l) => l.index)).toEqual([0, 1, 2])
    expect(c.removeLane(0)).toBe(true)
    expect(c.removeLane(99)).toBe(false)
    const sent = await sending
    expect((await got).sha).toBe(sent)
    await until(() => !c.stats().lanes.some((l) => l.index === 0), 10_000, 'lane 0 gone')
    expect(c.stats().lanes.every((l) => l.state === 'open')).toBe(true)
  })

  it('a session whose every lane dies resumes (the replay buffer has it all)', async () => {
    const srv = await stripeServer()
    const relay = await laneRelay(srv.port)
    const c = stripedClient(relay.port, { lanes: 3 })
    await until(() => c.stats().lanes.length === 3, 10_000, '3 lanes')
    const st = c.open({})
    const got = receiveHashed(st)
    const sending = sendHashed(st, 8 * 1024 * 1024)
    await until(() => c.stats().sessionBytesSent > 2 * 1024 * 1024, 10_000, 'progress')
    const resumed = new Promise((r) => c.once('resumed', r))
    for (const conn of relay.live()) relay.kill(conn)
    await resumed
    expect((await got).sha).toBe(await sending)
    expect(c.stats().resumes).toBe(1)
    await until(() => c.stats().lanes.length === 3, 10_000, 'lanes rejoined after the resume')
  })
})

describe('striping: refusals, limits and protocol errors', () => {
  it('option validation and addLane() without striping', async () => {
    const sock = new net.Socket()
    expect(() => new Session(sock, { role: 'client', lanes: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new Session(sock, { role: 'client', lanes: 65 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new Session(sock, { role: 'client', lanes: '2' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new Session(sock, { role: 'client', lanes: 2 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    const srv = await stripeServer()
    const plain = new Session(net.connect(srv.port, '127.0.0.1'), { role: 'client' })
    cleanups.push(async () => plain.destroy())
    await new Promise((r) => plain.once('handshake', r))
    await expect(plain.addLane()).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' })
    expect(plain.stats().striped).toBe(false)
    // A server with maxLanes 0 does not stripe: the client runs on one connection.
    const noStripe = await stripeServer({ maxLanes: 0 })
    const c = stripedClient(noStripe.port)
    await new Promise((r) => c.once('handshake', r))
    expect(c.stats().striped).toBe(false)
    const st = c.open({})
    const got = receiveHashed(st)
    const sent = await sendHashed(st, 300_000)
    expect((await got).sha).toBe(sent)
    expect(c.stats().lanes).toEqual([])
  })

  it('a JOIN for an unknown session gets NEW with RESUME_REFUSED 1', async () => {
    const srv = await stripeServer()
    const sock = net.connect(srv.port, '127.0.0.1')
    cleanups.push(async () => sock.destroy())
    const rb = Buffer.alloc(4)
    rb.writeUInt32BE(1 << 20)
    sock.write(encodeHello({ kind: HelloKind.JOIN, role: 'client', capabilities: Capability.STRIPE | Capability.RESUME, sessionId: crypto.randomBytes(32), initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.LANE, Buffer.from([0, 1])], [HelloExtension.REPLAY_BUFFER, rb]] }))
    const h = await readHello(sock)
    expect(h.kind).toBe(HelloKind.NEW)
    expect(h.extensions.get(HelloExtension.RESUME_REFUSED)).toEqual(Buffer.from([1]))
  })

  it('a JOIN with a wrong proof is dropped silently; the session and its lanes are untouched', async () => {
    const key = Buffer.alloc(32, 9)
    const srv = await stripeServer({ auth: { key } })
    const c = stripedClient(srv.port, { lanes: 2, auth: { key } })
    await until(() => c.stats().lanes.length === 2, 10_000, '2 lanes')
    const refused = new Promise((r) => srv.registry.once('refused', r))
    const sock = net.connect(srv.port, '127.0.0.1')
    cleanups.push(async () => sock.destroy())
    const rb = Buffer.alloc(4)
    rb.writeUInt32BE(1 << 20)
    sock.write(encodeHello({ kind: HelloKind.JOIN, role: 'client', capabilities: Capability.STRIPE | Capability.RESUME | Capability.AUTH_PSK, sessionId: c.id, initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.LANE, Buffer.from([0, 7])], [HelloExtension.REPLAY_BUFFER, rb], [HelloExtension.AUTH_NONCE, crypto.randomBytes(32)]] }))
    const h = await readHello(sock)
    expect(h.kind).toBe(HelloKind.JOIN)
    sock.write(encodeFrame({ type: FrameType.AUTH, proof: crypto.randomBytes(32) }))
    const info = await refused
    expect(info.reason).toBe(0)
    await new Promise((r) => sock.once('close', r))
    expect(c.stats().lanes.map((l) => l.index)).toEqual([0, 1])
    const st = c.open({})
    const got = receiveHashed(st)
    const sent = await sendHashed(st, 100_000)
    expect((await got).sha).toBe(sent)
  })

  it('a lane joined with another key fails with SYNMUX_AUTH_FAILED and changes nothing', async () => {
    const srv = await stripeServer({ auth: { key: Buffer.alloc(32, 1) } })
    const other = await stripeServer({ auth: { key: Buffer.alloc(32, 2) } })
    const c = stripedClient(srv.port, { lanes: 2, auth: { key: Buffer.alloc(32, 1) } })
    await until(() => c.stats().lanes.length === 2, 10_000, '2 lanes')
    // The other server does not know the session: refused.
    await expect(c.addLane(net.connect(other.port, '127.0.0.1'))).rejects.toMatchObject({ code: 'SYNMUX_LANE_REFUSED' })
    expect(c.stats().lanes.length).toBe(2)
  })

  it('out-of-order session frames beyond the smaller REPLAY_BUFFER are a protocol error (GOAWAY PROTOCOL_ERROR), however large the peer says its own is', async () => {
    const srv = await stripeServer({ resumption: { replayBuffer: 65536 } })
    const sock = net.connect(srv.port, '127.0.0.1')
    cleanups.push(async () => sock.destroy())
    const rb = Buffer.alloc(4)
    rb.writeUInt32BE(0xffff_ffff)
    sock.write(encodeHello({ kind: HelloKind.NEW, role: 'client', capabilities: Capability.STRIPE | Capability.RESUME, sessionId: Buffer.alloc(32), initialWindow: 65536, maxFrameSize: 65536, maxStreams: 10, extensions: [[HelloExtension.REPLAY_BUFFER, rb]] }))
    const chunks = []
    sock.on('data', (d) => chunks.push(d))
    const closed = new Promise((r) => sock.once('close', r))
    // Frames far ahead of the sequence, each on its own SEQ: held, until over 65,536 bytes.
    const frame = encodeFrame({ type: FrameType.WINDOW, streamId: 1, increment: 1 })
    for (let i = 0; i < 6000; i++) {
      sock.write(encodeFrame({ type: FrameType.SEQ, offset: 1_000_000 + i * 100 }))
      sock.write(frame)
    }
    await closed
    const all = Buffer.concat(chunks)
    const h = decodeHello(all)
    expect(h.hello.capabilities & Capability.STRIPE).toBeTruthy()
    const rest = all.subarray(h.size)
    // Somewhere after the server's first frames: GOAWAY with PROTOCOL_ERROR.
    let off = 0
    let goaway = null
    while (off + 9 <= rest.length) {
      const len = rest.readUIntBE(off, 3)
      if (rest[off + 3] === FrameType.GOAWAY) goaway = rest.readUInt16BE(off + 9 + 4)
      off += 9 + len
    }
    expect(goaway).toBe(GoawayCode.PROTOCOL_ERROR)
  })
})

function readHello(sock) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const on = (d) => {
      buf = Buffer.concat([buf, d])
      const r = decodeHello(buf)
      if (r) {
        sock.off('data', on)
        resolve(r.hello)
      }
    }
    sock.on('data', on)
    sock.once('error', reject)
    sock.once('close', () => reject(new Error('closed before a HELLO')))
  })
}
