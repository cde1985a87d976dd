// The secure channel against an on-path attacker, over real TCP through a
// relay that understands the framing: tampered, truncated, reordered,
// replayed and dropped records; replayed first flights; clock skew; wrong
// keys; probes. Every failure closes the transport with a stable code and
// delivers nothing it should not.
import { describe, it, expect, afterEach } from 'vitest'
import crypto from 'node:crypto'
import net from 'node:net'
import { ReplayGuard } from 'synmux'
import { startServer, connectClient, startRelay, closed, once, sha256, serverKeys, clientKeys, strangerKeys } from './helpers.mjs'

const cleanups = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()()
})
const track = (x) => (cleanups.push(x.close), x)

/** A server that records what each channel delivered and how it ended. */
async function recordingServer(options) {
  const seen = []
  const srv = track(
    await startServer((ch) => {
      const entry = { ch, data: [], error: undefined, ended: false, refused: null }
      seen.push(entry)
      ch.on('data', (d) => entry.data.push(d))
      ch.on('end', () => {
        entry.ended = true
        ch.end()
      })
      ch.on('refused', (r) => (entry.refused = r))
      ch.on('error', (e) => (entry.error = e))
      entry.closed = closed(ch)
    }, options),
  )
  return { srv, seen }
}

/** 40 records of 1,000 bytes (maxRecordSize 1000, written one per tick). */
async function sendRecords(ch, count = 40) {
  const blocks = []
  await once(ch, 'secure')
  for (let i = 0; i < count; i++) {
    const b = crypto.randomBytes(1000)
    blocks.push(b)
    ch.write(b)
    await new Promise((r) => setImmediate(r))
  }
  ch.end()
  return blocks
}

const RECORD_OPTS = { maxRecordSize: 1000, maxEarlyData: 0 }

describe('records under attack (client → server through a relay)', () => {
  const cases = [
    ['a bit flipped in record 20 (ciphertext)', (f, i) => (i === 21 ? [flip(f, 500)] : undefined), 'SYNMUX_SECURE_DECRYPT_FAILED'],
    ['a bit flipped in record 20 (tag)', (f, i) => (i === 21 ? [flip(f, f.length - 1)] : undefined), 'SYNMUX_SECURE_DECRYPT_FAILED'],
    ['record 20 length field changed', (f, i) => (i === 21 ? [flip(f, 1)] : undefined), 'SYNMUX_SECURE_DECRYPT_FAILED'],
    ['records 20 and 21 swapped (reordered)', swap(21), 'SYNMUX_SECURE_DECRYPT_FAILED'],
    ['record 20 sent twice (replayed)', (f, i) => (i === 21 ? [f, f] : undefined), 'SYNMUX_SECURE_DECRYPT_FAILED'],
    ['record 19 replayed later, after record 25', replayLater(20, 26), 'SYNMUX_SECURE_DECRYPT_FAILED', 26],
    ['record 20 dropped', (f, i) => (i === 21 ? [] : undefined), 'SYNMUX_SECURE_DECRYPT_FAILED'],
    ['cut inside record 20 (truncated)', (f, i, ctx) => (i === 21 ? (ctx.rawWrite(f.subarray(0, 300)), ctx.cut(), []) : undefined), 'SYNMUX_SECURE_TRUNCATED'],
    ['cut after record 20, a clean FIN without the end record (truncated)', (f, i, ctx) => (i === 21 ? (ctx.rawWrite(f), ctx.cut(), []) : undefined), 'SYNMUX_SECURE_TRUNCATED', 21],
  ]
  for (const [name, hook, code, delivered = 20] of cases) {
    it(`${name}: the server closes with ${code} and delivered exactly the ${delivered} records before it`, async () => {
      const { srv, seen } = await recordingServer()
      const relay = track(await startRelay(srv.port, { up: hook }))
      const { ch } = connectClient(relay.port, RECORD_OPTS)
      const clientClosed = closed(ch)
      const blocks = await sendRecords(ch)
      const entry = seen[0]
      const err = await entry.closed
      expect(err?.code).toBe(code)
      // Frame 0 is message 1; record k is frame k + 1. Only records before
      // the attack were delivered (each write is one record), in order, and
      // nothing after it; authenticated records the application had not
      // read yet when the channel failed are discarded with it.
      const got = Buffer.concat(entry.data)
      const before = Buffer.concat(blocks.slice(0, delivered))
      expect(got.length).toBeLessThanOrEqual(before.length)
      expect(got.length % 1000).toBe(0)
      expect(sha256(got)).toBe(sha256(before.subarray(0, got.length)))
      expect(entry.ended).toBe(false)
      // The server closed the transport: the client's channel ends too.
      await clientClosed
      expect(ch.destroyed).toBe(true)
    })
  }

  it('server → client: a flipped bit closes the client with SYNMUX_SECURE_DECRYPT_FAILED', async () => {
    const srv = track(
      await startServer((ch) => {
        ch.on('error', () => {})
        ch.once('data', async () => {
          for (let i = 0; i < 10; i++) {
            ch.write(Buffer.alloc(500, i))
            await new Promise((r) => setImmediate(r))
          }
        })
      }),
    )
    const relay = track(await startRelay(srv.port, { down: (f, i) => (i === 5 ? [flip(f, 10)] : undefined) }))
    const { ch } = connectClient(relay.port)
    const got = []
    ch.on('data', (d) => got.push(d))
    ch.write('go')
    const err = await closed(ch)
    expect(err.code).toBe('SYNMUX_SECURE_DECRYPT_FAILED')
    // Frame 0 is message 2 (with the first reply, possibly); frames 1..4 came through.
    expect(Buffer.concat(got).length).toBeLessThan(10 * 500)
    expect(Buffer.concat(got).length % 500).toBe(0)
  })

  it('a flipped bit in message 1 gets no reply at all (decrypt-failed), and in message 2 fails the client', async () => {
    const { srv, seen } = await recordingServer({ onAuthFailure: 'close' })
    const relay = track(await startRelay(srv.port, { up: (f, i) => (i === 0 ? [flip(f, 60)] : undefined) }))
    const { ch } = connectClient(relay.port)
    ch.write('hello')
    const err = await closed(ch)
    expect(err.code).toBe('SYNMUX_SECURE_REFUSED')
    expect(seen[0].refused.reason).toBe('decrypt-failed')
    expect(relay.wire.down.length).toBe(0)

    const relay2 = track(await startRelay(srv.port, { down: (f, i) => (i === 0 ? [flip(f, 40)] : undefined) }))
    const c2 = connectClient(relay2.port)
    c2.ch.write('hello')
    const err2 = await closed(c2.ch)
    expect(err2.code).toBe('SYNMUX_SECURE_DECRYPT_FAILED')
  })
})

describe('first flights (0-RTT) under replay', () => {
  it('a captured message 1 replayed byte for byte completes a handshake but its payload is not acted on again; a fresh one is', async () => {
    const { srv, seen } = await recordingServer()
    const relay = track(await startRelay(srv.port))
    const { ch } = connectClient(relay.port)
    ch.end('POST /transfer amount=100')
    await closed(ch)
    expect(ch.earlyData).toBe('accepted')
    await seen[0].closed
    expect(Buffer.concat(seen[0].data).toString()).toBe('POST /transfer amount=100')
    const captured = relay.frames.up[0]

    // The attacker replays it on a new connection, byte for byte.
    const raw = net.connect(srv.port, '127.0.0.1')
    raw.on('error', () => {})
    const answer = []
    raw.on('data', (d) => answer.push(d))
    raw.write(captured)
    while (seen.length < 2 || !seen[1].ch.secured) await new Promise((r) => setTimeout(r, 5))
    const replayed = seen[1]
    expect(replayed.ch.earlyData).toBe('rejected')
    expect(replayed.ch.info.earlyDataRejectReason).toBe('replayed')
    expect(replayed.ch.peerName).toBe('alice') // the handshake itself completes
    await new Promise((r) => setTimeout(r, 50))
    expect(Buffer.concat(answer).length).toBeGreaterThan(0) // message 2: the attacker cannot read it
    expect(replayed.data.length).toBe(0) // the payload was not delivered again
    raw.destroy()

    // A fresh flight from the real client is accepted.
    const c2 = connectClient(srv.port)
    c2.ch.end('GET /balance')
    await closed(c2.ch)
    expect(c2.ch.earlyData).toBe('accepted')
    const fresh = seen[2]
    await fresh.closed
    expect(Buffer.concat(fresh.data).toString()).toBe('GET /balance')
    // The target saw the transfer exactly once.
    expect(seen.filter((e) => Buffer.concat(e.data).toString().includes('transfer')).length).toBe(1)
  })

  it('a first flight the server never saw is refused once a newer one from the same client was accepted (not-newer)', async () => {
    const { srv, seen } = await recordingServer()
    // The relay swallows the first connection's message 1 (the attacker keeps it).
    let stolen = null
    const relay = track(await startRelay(srv.port, { up: (f, i, ctx) => (i === 0 && !stolen ? ((stolen = f), ctx.cutHard(), []) : undefined) }))
    const a = connectClient(relay.port, { handshakeTimeout: 2000 })
    a.ch.write('older request')
    await closed(a.ch)
    expect(stolen).not.toBe(null)
    const b = connectClient(srv.port)
    b.ch.end('newer request')
    await closed(b.ch)
    expect(b.ch.earlyData).toBe('accepted')
    const before = seen.length
    const raw = net.connect(srv.port, '127.0.0.1')
    raw.on('error', () => {})
    raw.write(stolen)
    while (seen.length === before || !seen.at(-1).ch.secured) await new Promise((r) => setTimeout(r, 5))
    expect(seen.at(-1).ch.info.earlyDataRejectReason).toBe('not-newer')
    expect(seen.at(-1).data.length).toBe(0)
    // Nothing anywhere delivered the older request.
    expect(seen.some((e) => Buffer.concat(e.data).toString().includes('older'))).toBe(false)
    raw.destroy()
  })

  it('clock skew beyond the window: 0-RTT rejected (clock), the client resends, the data arrives exactly once', async () => {
    const { srv, seen } = await recordingServer({ replayGuard: new ReplayGuard({ window: 30_000, notBefore: Date.now() - 60_000 }) })
    for (const skew of [-60_000, +45_000]) {
      const { ch } = connectClient(srv.port, { clock: () => Date.now() + skew })
      const payload = `request with clock ${skew}`
      ch.end(payload)
      const info = await once(ch, 'secure')
      expect(info.earlyData).toBe('rejected')
      expect(info.earlyDataRejectReason).toBe('clock')
      expect(Math.abs(info.clockSkew + skew)).toBeLessThan(5_000)
      await closed(ch)
      const entry = seen.at(-1)
      await entry.closed
      expect(Buffer.concat(entry.data).toString()).toBe(payload)
    }
    // Inside the window it is accepted.
    const { ch } = connectClient(srv.port, { clock: () => Date.now() - 20_000 })
    ch.end('inside the window')
    expect((await once(ch, 'secure')).earlyData).toBe('accepted')
    await closed(ch)
    expect(Buffer.concat(seen.at(-1).data).toString()).toBe('inside the window')
  })

  it('acceptEarlyData: the hook sees the fresh flight, may take its time, and a declined flight arrives exactly once', async () => {
    const flights = []
    const { srv, seen } = await recordingServer({
      acceptEarlyData: async (flight) => {
        flights.push(flight)
        await new Promise((r) => setTimeout(r, 30))
        return !flight.data.toString().startsWith('RESUME')
      },
    })
    const a = connectClient(srv.port)
    a.ch.end('RESUME session 7')
    expect((await once(a.ch, 'secure')).earlyDataRejectReason).toBe('declined')
    await closed(a.ch)
    await seen[0].closed
    expect(Buffer.concat(seen[0].data).toString()).toBe('RESUME session 7')
    const b = connectClient(srv.port)
    b.ch.end('NEW')
    expect((await once(b.ch, 'secure')).earlyData).toBe('accepted')
    expect(flights.map((f) => f.data.toString())).toEqual(['RESUME session 7', 'NEW'])
    expect(flights[0].peerName).toBe('alice')
    expect(flights[0].peerKey.equals(clientKeys.publicKey)).toBe(true)
    expect(Math.abs(flights[0].timestamp - Date.now())).toBeLessThan(5_000)
  })

  it('acceptEarlyData: false rejects every flight (disabled); data still arrives once', async () => {
    const { srv, seen } = await recordingServer({ acceptEarlyData: false })
    const { ch } = connectClient(srv.port)
    ch.end('x')
    expect((await once(ch, 'secure')).earlyDataRejectReason).toBe('disabled')
    await closed(ch)
    await seen[0].closed
    expect(Buffer.concat(seen[0].data).toString()).toBe('x')
  })
})

describe('a flood of half-open handshakes', () => {
  it('100 connections each holding an incomplete 64 KiB message 1: bounded per connection, and a real client is still served', async () => {
    const { srv, seen } = await recordingServer({ handshakeTimeout: 5000 })
    const raws = []
    for (let i = 0; i < 100; i++) {
      const raw = net.connect(srv.port, '127.0.0.1')
      raw.on('error', () => {})
      raw.write(Buffer.concat([Buffer.from([1, 0xff, 0x00]), crypto.randomBytes(60_000)])) // 65,280 claimed, 60,000 sent
      raws.push(raw)
    }
    while (seen.length < 100 || seen.reduce((n, e) => n + e.ch.handshakeBuffered, 0) < 100 * 60_000) await new Promise((r) => setTimeout(r, 10))
    for (const e of seen) expect(e.ch.handshakeBuffered).toBeLessThanOrEqual(3 + 65_535)
    const { ch } = connectClient(srv.port)
    ch.end('still served')
    expect((await once(ch, 'secure')).earlyData).toBe('accepted')
    await closed(ch)
    expect(Buffer.concat(seen.at(-1).data).toString()).toBe('still served')
    for (const r of raws) r.destroy()
  })
})

describe('authentication failures: no byte in reply', () => {
  async function probe(options, clientOpts, write = 'secret request') {
    const { srv, seen } = await recordingServer(options)
    const relay = track(await startRelay(srv.port))
    const { ch } = connectClient(relay.port, clientOpts)
    ch.write(write)
    const err = await closed(ch)
    const entry = seen[0]
    await entry.closed
    return { err, entry, relay }
  }

  it('unknown client key: zero bytes sent, reason reported with the source address, client told it was refused', async () => {
    const { err, entry, relay } = await probe({ onAuthFailure: 'close' }, { staticKey: strangerKeys.privateKey })
    expect(relay.wire.down.length).toBe(0)
    expect(entry.refused.reason).toBe('unauthorized')
    expect(entry.refused.code).toBe('SYNMUX_SECURE_UNAUTHORIZED')
    expect(entry.refused.peerKey.equals(strangerKeys.publicKey)).toBe(true)
    expect(entry.refused.remoteAddress).toBe('127.0.0.1')
    expect(typeof entry.refused.remotePort).toBe('number')
    expect(entry.error.code).toBe('SYNMUX_SECURE_UNAUTHORIZED')
    expect(entry.data.length).toBe(0)
    expect(err.code).toBe('SYNMUX_SECURE_REFUSED')
  })

  it('wrong server key: the server cannot even decrypt message 1 (decrypt-failed); the client gets SYNMUX_SECURE_REFUSED', async () => {
    const { err, entry, relay } = await probe({ onAuthFailure: 'close' }, { serverKey: strangerKeys.publicKey })
    expect(relay.wire.down.length).toBe(0)
    expect(entry.refused.reason).toBe('decrypt-failed')
    expect(entry.refused.peerKey).toBe(null)
    expect(err.code).toBe('SYNMUX_SECURE_REFUSED')
    expect(err.message).toMatch(/wrong server key/)
  })

  it('a different PSK (psk1): message 1 fails on the server; no reply', async () => {
    const { err, entry, relay } = await probe({ onAuthFailure: 'close', psk: Buffer.alloc(32, 1) }, { psk: Buffer.alloc(32, 2) })
    expect(relay.wire.down.length).toBe(0)
    expect(entry.refused.reason).toBe('decrypt-failed')
    expect(err.code).toBe('SYNMUX_SECURE_REFUSED')
  })

  it('the same PSK on both sides works', async () => {
    const { srv } = await recordingServer({ psk: Buffer.alloc(32, 7) })
    const { ch } = connectClient(srv.port, { psk: Buffer.alloc(32, 7) })
    ch.end('ok')
    expect((await once(ch, 'secure')).earlyData).toBe('accepted')
  })

  it('drain (default): after a failure the server reads and discards until its handshake timeout, then closes; still zero bytes', async () => {
    const t0 = Date.now()
    const { err, entry, relay } = await probe({ handshakeTimeout: 400 }, { staticKey: strangerKeys.privateKey, handshakeTimeout: 5000 })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350)
    expect(relay.wire.down.length).toBe(0)
    expect(entry.refused.reason).toBe('unauthorized')
    expect(entry.error.code).toBe('SYNMUX_SECURE_UNAUTHORIZED')
    expect(err.code).toBe('SYNMUX_SECURE_REFUSED')
  })

  for (const [name, bytes, reason] of [
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'bad-type'],
    ['a plaintext synmux HELLO', Buffer.from('SYNMUX\x01\x01\x00\x38'), 'bad-type'],
    ['a type byte and a short length', Buffer.from([1, 0, 10, 1, 2, 3]), 'bad-length'],
    ['a type byte and a huge length', Buffer.from([1, 0xff, 0xff]), 'too-large'],
    ['random bytes of a plausible message 1', Buffer.concat([Buffer.from([1, 0, 200]), crypto.randomBytes(200)]), 'decrypt-failed'],
  ]) {
    it(`a probe with ${name}: no reply, reason ${reason}`, async () => {
      const { srv, seen } = await recordingServer({ onAuthFailure: 'close', maxEarlyData: 4096 })
      const raw = net.connect(srv.port, '127.0.0.1')
      raw.on('error', () => {})
      const answer = []
      raw.on('data', (d) => answer.push(d))
      raw.write(bytes)
      const gone = once(raw, 'close')
      while (!seen[0]?.refused) await new Promise((r) => setTimeout(r, 5))
      expect(seen[0].refused.reason).toBe(reason)
      await gone
      expect(answer.length).toBe(0)
    })
  }
})

function flip(frame, pos) {
  const f = Buffer.from(frame)
  f[pos] ^= 0x10
  return f
}
function swap(k) {
  let held = null
  return (f, i) => {
    if (i === k) {
      held = f
      return []
    }
    if (i === k + 1) return [f, held]
    return undefined
  }
}
function replayLater(k, after) {
  let copy = null
  return (f, i) => {
    if (i === k) copy = f
    if (i === after) return [f, copy]
    return undefined
  }
}
