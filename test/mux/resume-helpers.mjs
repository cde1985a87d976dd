// Helpers for the resumption tests: a loopback TCP server whose
// connections go through a SessionRegistry, a relay that can silently
// drop its connections, hashed senders/receivers and deadline-bounded waits.
import net from 'node:net'
import crypto from 'node:crypto'
import { SessionRegistry } from 'synmux'

/** A restartable loopback listener feeding `registry.accept`. */
export class ResumeServer {
  constructor(registryOpts = {}) {
    this.registry = new SessionRegistry(registryOpts)
    this.sockets = new Set()
    this.port = 0
    this.net = null
    this.connections = 0
  }

  async listen() {
    this.net = net.createServer({ allowHalfOpen: true }, (sock) => {
      this.connections++
      this.sockets.add(sock)
      sock.on('close', () => this.sockets.delete(sock))
      this.registry.accept(sock)
    })
    await new Promise((resolve, reject) => {
      this.net.once('error', reject)
      this.net.listen(this.port, '127.0.0.1', resolve)
    })
    this.port = this.net.address().port
    return this
  }

  /** Stops the socket layer only (listener and every socket); sessions stay in the registry. */
  async restartSockets(downMs = 0) {
    const srv = this.net
    const closed = new Promise((r) => srv.close(r))
    for (const s of this.sockets) s.resetAndDestroy()
    await closed
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs))
    await this.listen()
  }

  async close() {
    await this.registry.close()
    for (const s of this.sockets) s.destroy()
    await new Promise((r) => this.net.close(r))
  }
}

/**
 * Writes pseudo-random blocks on `stream` (each a fresh Buffer: the session
 * may keep it until sent; honouring backpressure) while `nextSize(sent)`
 * returns more than 0, then ends it; resolves with { sha, bytes } sent.
 */
async function sendBlocks(stream, nextSize, chunk) {
  const h = crypto.createHash('sha256')
  const block = crypto.randomBytes(chunk * 4)
  let bytes = 0
  let i = 0
  for (let n; (n = nextSize(bytes)) > 0; ) {
    const off = (i++ * 7919) % (block.length - n)
    const b = Buffer.from(block.subarray(off, off + n))
    b.writeUInt32BE(i >>> 0, 0)
    h.update(b)
    bytes += n
    if (!stream.write(b)) {
      await new Promise((resolve, reject) => {
        const done = (err) => {
          stream.off('drain', done)
          stream.off('error', done)
          stream.off('close', done)
          if (err) reject(err)
          else if (stream.destroyed) reject(new Error('stream closed'))
          else resolve()
        }
        stream.on('drain', done)
        stream.on('error', done)
        stream.on('close', done)
      })
    }
  }
  stream.end()
  return { sha: h.digest('hex'), bytes }
}

/**
 * Sends `bytes` pseudo-random bytes on `stream` (honouring backpressure)
 * and ends it; resolves with the sha256 of what was sent.
 */
export async function sendHashed(stream, bytes, chunk = 64 * 1024) {
  return (await sendBlocks(stream, (sent) => Math.min(chunk, bytes - sent), chunk)).sha
}

/** Reads a stream to its end; resolves with { sha, bytes }. */
export function receiveHashed(stream) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256')
    let bytes = 0
    stream.on('data', (d) => {
      h.update(d)
      bytes += d.length
    })
    stream.once('end', () => resolve({ sha: h.digest('hex'), bytes }))
    stream.once('error', reject)
  })
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Sends pseudo-random bytes on `stream` (honouring backpressure) until
 * `stop()` returns true, then ends it; resolves with { sha, bytes } sent.
 */
export function sendUntil(stream, stop, chunk = 16 * 1024) {
  return sendBlocks(stream, () => (stop() ? 0 : chunk), chunk)
}

/**
 * A loopback TCP relay 127.0.0.1:port → 127.0.0.1:target, optionally
 * delaying every byte by `oneWayMs`. `silence()` turns its current
 * connections into silent ones (a middlebox that lost its state: nothing is
 * forwarded either way any more, and no FIN or RST is passed on); new
 * connections are forwarded again. An RST on one side is passed on as an RST.
 */
export class Relay {
  constructor(target, oneWayMs = 0) {
    this.target = target
    this.oneWayMs = oneWayMs
    this.port = 0
    this.connections = 0
    this.pairs = new Set()
    this.server = net.createServer({ allowHalfOpen: true }, (client) => this.#relay(client))
  }

  async listen() {
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r))
    this.port = this.server.address().port
    return this
  }

  /** A connection through the relay. */
  connect() {
    return net.connect({ port: this.port, host: '127.0.0.1', allowHalfOpen: true })
  }

  #relay(client) {
    this.connections++
    const upstream = net.connect({ port: this.target, host: '127.0.0.1', allowHalfOpen: true })
    const pair = { client, upstream, silent: false }
    this.pairs.add(pair)
    const later = (fn) => (this.oneWayMs === 0 ? fn() : setTimeout(fn, this.oneWayMs))
    const pipe = (from, to) => {
      let reset = false
      from.on('data', (d) => {
        if (!pair.silent) later(() => pair.silent || to.destroyed || to.write(d))
      })
      from.on('end', () => {
        if (!pair.silent) later(() => pair.silent || to.destroyed || to.end())
      })
      from.on('error', (e) => {
        reset = e.code === 'ECONNRESET'
      })
      from.on('close', () => {
        if (!pair.silent && !to.destroyed) later(() => (reset ? to.resetAndDestroy() : to.destroy()))
        if (client.destroyed && upstream.destroyed) this.pairs.delete(pair)
      })
    }
    pipe(client, upstream)
    pipe(upstream, client)
  }

  /** Stops forwarding on every current connection, silently; returns how many were live. */
  silence() {
    let n = 0
    for (const p of this.pairs) {
      if (!p.silent && !p.client.destroyed) n++
      p.silent = true
    }
    return n
  }

  async close() {
    for (const p of this.pairs) {
      p.client.destroy()
      p.upstream.destroy()
    }
    this.pairs.clear()
    await new Promise((r) => this.server.close(r))
  }
}

/** Resolves when `pred()` holds, checking every 10 ms; rejects after `timeoutMs` naming `what`. */
export async function until(pred, what, timeoutMs = 10_000) {
  const t0 = Date.now()
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** The next `event` on `emitter` whose arguments satisfy `pred`; rejects after `timeoutMs`. */
export function nextEvent(emitter, event, pred = () => true, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on)
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`))
    }, timeoutMs)
    const on = (...a) => {
      if (!pred(...a)) return
      clearTimeout(t)
      emitter.off(event, on)
      resolve(a)
    }
    emitter.on(event, on)
  })
}
