// Helpers for the resumption tests: a loopback TCP server whose
// connections go through a SessionRegistry, and a client Session that
// reconnects by itself.
import net from 'node:net'
import crypto from 'node:crypto'
import { Session, SessionRegistry } from 'synmux'

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

/** A resumable client session to `port` that reconnects itself. */
export function resumableClient(port, opts = {}, resumption = {}) {
  const connect = () => net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  return new Session(connect(), { role: 'client', ...opts, resumption: { connect, reconnectDelay: { min: 10, max: 100 }, ...resumption } })
}

/**
 * Sends `bytes` pseudo-random bytes on `stream` (honouring backpressure)
 * and ends it; resolves with the sha256 of what was sent.
 */
export async function sendHashed(stream, bytes, chunk = 64 * 1024) {
  const h = crypto.createHash('sha256')
  const block = crypto.randomBytes(chunk * 4)
  let sent = 0
  let i = 0
  while (sent < bytes) {
    const n = Math.min(chunk, bytes - sent)
    // A fresh buffer per write (the session may keep it until sent).
    const off = (i++ * 7919) % (block.length - n)
    const b = Buffer.from(block.subarray(off, off + n))
    b.writeUInt32BE(i >>> 0, 0)
    h.update(b)
    sent += n
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
  return h.digest('hex')
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
