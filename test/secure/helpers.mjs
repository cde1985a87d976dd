// Helpers for the secure channel tests: keys, a loopback server, a client,
// and a relay that understands the channel's framing (message 1, message 2,
// records) so a test can flip, drop, duplicate, reorder or cut records on
// real TCP connections.
import net from 'node:net'
import crypto from 'node:crypto'
import { secure, generateKeyPair, ReplayGuard } from 'synmux'

export const serverKeys = generateKeyPair()
export const clientKeys = generateKeyPair()
export const strangerKeys = generateKeyPair()

/** Resolves with the next `event` of `emitter`. */
export const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve))

/** Resolves with the error the channel is destroyed with (or null). */
export const closed = (ch) => new Promise((resolve) => {
  if (ch.closed) return resolve(ch.errored ?? null)
  let error = null
  ch.on('error', (e) => (error = e))
  ch.once('close', () => resolve(error))
})

/** Reads a channel to its end; resolves with the bytes (rejects on error). */
export const readAll = (stream) => new Promise((resolve, reject) => {
  const parts = []
  stream.on('data', (d) => parts.push(d))
  stream.once('end', () => resolve(Buffer.concat(parts)))
  stream.once('error', reject)
})

export const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex')

/**
 * A TCP server on 127.0.0.1 that wraps each socket with secure({ role: 'server' }).
 * `onChannel(ch, socket)` gets each channel. Returns { port, close, channels, guard }.
 */
export async function startServer(onChannel, options = {}) {
  const channels = []
  const guard = options.replayGuard ?? new ReplayGuard()
  // allowHalfOpen: the channel's half-close needs a transport that keeps
  // its write side open after the peer's FIN.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {})
    const ch = secure(socket, {
      role: 'server',
      staticKey: serverKeys.privateKey,
      authorize: (k) => (k.equals(clientKeys.publicKey) ? 'alice' : null),
      replayGuard: guard,
      ...options,
    })
    channels.push(ch)
    onChannel(ch, socket)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    channels,
    guard,
    server,
    close: () => new Promise((resolve) => {
      for (const ch of channels) ch.destroy()
      server.close(() => resolve())
    }),
  }
}

/** A client channel to `port` (options override the defaults). */
export function connectClient(port, options = {}) {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  socket.on('error', () => {})
  const ch = secure(socket, { role: 'client', staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey, ...options })
  // Tests assert errors through closed(); this keeps a test that ends with
  // the channel open (the server then resets it) from an unhandled 'error'.
  ch.on('error', () => {})
  return { ch, socket }
}

/**
 * Splits a byte stream into the channel's frames. `first` is the size of
 * the first frame's header: 3 (client→server: type + length) or 2.
 */
export class FrameSplitter {
  #buf = Buffer.alloc(0)
  #first
  constructor(first) {
    this.#first = first
  }
  /** Feeds bytes; returns the complete frames. */
  push(chunk) {
    this.#buf = Buffer.concat([this.#buf, chunk])
    const out = []
    for (;;) {
      const head = this.#first ?? 2
      if (this.#buf.length < head) break
      const len = this.#buf.readUInt16BE(head - 2)
      if (this.#buf.length < head + len) break
      out.push(this.#buf.subarray(0, head + len))
      this.#buf = this.#buf.subarray(head + len)
      this.#first = null
    }
    return out
  }
  /** Bytes of an incomplete frame held. */
  get pending() {
    return this.#buf
  }
}

/**
 * A relay on 127.0.0.1 in front of `targetPort`. For each direction
 * ('up': client→server, 'down': server→client) `hooks[dir](frame, index,
 * ctx)` returns the frames to forward instead (an array; [] drops it), or
 * undefined to forward it unchanged; `ctx.cut()` ends both connections
 * after what was forwarded, `ctx.hold` / `ctx.release()` help reorder.
 * Every forwarded byte is recorded in `relay.wire.up` / `.down`.
 */
export async function startRelay(targetPort, hooks = {}) {
  const relay = { wire: { up: [], down: [] }, frames: { up: [], down: [] }, connections: 0 }
  const server = net.createServer({ allowHalfOpen: true }, (a) => {
    relay.connections++
    const b = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true })
    a.on('error', () => {})
    b.on('error', () => {})
    const pipe = (from, to, dir, headerFirst) => {
      const split = new FrameSplitter(headerFirst)
      let index = 0
      const ctx = {
        held: [],
        cut: () => {
          ctx.cutDone = true
          to.end()
          from.destroy()
        },
        cutHard: () => {
          ctx.cutDone = true
          to.destroy()
          from.destroy()
        },
        rawWrite: (bytes) => to.write(bytes),
      }
      from.on('data', (chunk) => {
        if (ctx.cutDone) return
        for (const frame of split.push(chunk)) {
          relay.frames[dir].push(Buffer.from(frame))
          const hook = hooks[dir]
          const res = hook ? hook(Buffer.from(frame), index++, ctx) : undefined
          if (ctx.cutDone) return
          for (const f of res ?? [frame]) {
            relay.wire[dir].push(Buffer.from(f))
            to.write(f)
          }
        }
      })
      from.on('end', () => !ctx.cutDone && to.end())
      from.on('close', () => to.destroy())
    }
    pipe(a, b, 'up', 3)
    pipe(b, a, 'down', 2)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  relay.port = server.address().port
  relay.close = () => new Promise((resolve) => server.close(() => resolve()))
  relay.server = server
  return relay
}
