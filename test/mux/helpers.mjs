// Shared helpers for the multiplexer tests: in-memory and loopback TCP
// transports, a lock-step link that counts flights, stream collectors.
import net from 'node:net'
import crypto from 'node:crypto'
import { Duplex } from 'node:stream'
import { Session } from 'synmux'

/** Two connected in-memory Duplexes; bytes written to one are read from the other (asynchronously). */
export function duplexPair() {
  const mk = () =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        const peer = this._peer
        setImmediate(() => {
          if (!peer.destroyed) peer.push(Buffer.from(chunk))
          cb()
        })
      },
      final(cb) {
        const peer = this._peer
        setImmediate(() => {
          if (!peer.destroyed) peer.push(null)
          cb()
        })
      },
      destroy(err, cb) {
        const peer = this._peer
        if (!peer.destroyed) setImmediate(() => peer.destroy())
        cb(err)
      },
    })
  const a = mk()
  const b = mk()
  a._peer = b
  b._peer = a
  return [a, b]
}

/**
 * A link whose ends buffer everything written until the test delivers it
 * as one "flight" to the other end; `flights` counts deliveries.
 */
export class LockstepLink {
  constructor() {
    this.flights = 0
    this.log = []
    const mk = (name) => {
      const d = new Duplex({
        read() {},
        write: (chunk, _enc, cb) => {
          this.outbox[name].push(Buffer.from(chunk))
          cb()
        },
        final: (cb) => {
          this.ended[name] = true
          cb()
        },
      })
      return d
    }
    this.outbox = { a: [], b: [] }
    this.ended = { a: false, b: false }
    this.a = mk('a')
    this.b = mk('b')
  }

  /** Bytes waiting in an end's outbox. */
  pending(name) {
    return Buffer.concat(this.outbox[name])
  }

  /** Delivers everything `from` wrote as one flight; returns the bytes. */
  deliver(from) {
    const bytes = Buffer.concat(this.outbox[from])
    this.outbox[from] = []
    const to = from === 'a' ? this.b : this.a
    this.flights++
    this.log.push({ from, bytes })
    if (bytes.length > 0) to.push(bytes)
    if (this.ended[from]) to.push(null)
    return bytes
  }

  /** Waits until both sides stop producing output (event-loop turns only, no timing). */
  async settle() {
    let stable = 0
    let last = -1
    while (stable < 5) {
      await new Promise((r) => setImmediate(r))
      const n = this.outbox.a.length + this.outbox.b.length
      if (n === last) stable++
      else stable = 0
      last = n
    }
  }
}

/** A connected loopback TCP socket pair. */
export async function tcpPair(host = '127.0.0.1') {
  const server = net.createServer()
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, resolve)
  })
  const accepted = new Promise((resolve) => server.once('connection', resolve))
  const client = net.connect(server.address().port, host)
  await new Promise((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  })
  const serverSock = await accepted
  server.close()
  return [client, serverSock]
}

/** A client and a server session over loopback TCP (or `transport: 'memory'`). */
export async function sessionPair(clientOpts = {}, serverOpts = {}, transport = 'tcp') {
  const [a, b] = transport === 'tcp' ? await tcpPair() : duplexPair()
  const client = new Session(a, { role: 'client', ...clientOpts })
  const server = new Session(b, { role: 'server', ...serverOpts })
  return { client, server, a, b }
}

/** Reads a stream to its end; resolves with the bytes. */
export function collect(stream) {
  return new Promise((resolve, reject) => {
    const bufs = []
    stream.on('data', (d) => bufs.push(d))
    stream.once('end', () => resolve(Buffer.concat(bufs)))
    stream.once('error', reject)
  })
}

/** Resolves with the first 'error' of an emitter. */
export function nextError(emitter) {
  return new Promise((resolve) => emitter.once('error', resolve))
}

export function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

/** A seeded PRNG (mulberry32), so failures reproduce. */
export function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Random bytes from a seeded PRNG. */
export function randomBytes(rand, n) {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i += 4) {
    const v = (rand() * 4294967296) >>> 0
    b[i] = v & 0xff
    if (i + 1 < n) b[i + 1] = (v >>> 8) & 0xff
    if (i + 2 < n) b[i + 2] = (v >>> 16) & 0xff
    if (i + 3 < n) b[i + 3] = v >>> 24
  }
  return b
}

/** Writes `data` to a stream in random-size chunks honouring backpressure, then ends it. */
export async function writeChunked(stream, data, rand, maxChunk = 20_000) {
  let off = 0
  while (off < data.length) {
    const n = Math.min(data.length - off, 1 + Math.floor(rand() * maxChunk))
    const ok = stream.write(data.subarray(off, off + n))
    off += n
    if (!ok) await new Promise((r) => stream.once('drain', r))
  }
  stream.end()
}

/** Waits for an event. */
export function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)))
}

/** Like duplexPair, but each direction delivers bytes `delayMs` after they were written (in order). */
export function delayedPair(delayMs) {
  const mk = () =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        const peer = this._peer
        const copy = Buffer.from(chunk)
        setTimeout(() => {
          if (!peer.destroyed) peer.push(copy)
        }, delayMs)
        cb()
      },
      final(cb) {
        const peer = this._peer
        setTimeout(() => {
          if (!peer.destroyed) peer.push(null)
        }, delayMs)
        cb()
      },
      destroy(err, cb) {
        const peer = this._peer
        if (!peer.destroyed) setTimeout(() => peer.destroy(), delayMs)
        cb(err)
      },
    })
  const a = mk()
  const b = mk()
  a._peer = b
  b._peer = a
  return [a, b]
}

/** Resolves after `n` PING round trips on a session (lets in-flight frames land without timing). */
export async function roundTrips(session, n = 2) {
  for (let i = 0; i < n; i++) await session.ping()
}
