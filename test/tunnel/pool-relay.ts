/**
 * Test helpers for the SessionPool tests: a loopback TCP relay that can
 * delay every byte (a slower path) and silence its current connections (a
 * middlebox that loses its state: nothing more is forwarded either way, no
 * FIN or RST is passed on; new connections are forwarded again), plus
 * deadline-bounded waits.
 */
import crypto from 'node:crypto'
import net from 'node:net'
import type { EventEmitter } from 'node:events'
import type { MuxStream } from 'synmux'

interface Pair {
  client: net.Socket
  upstream: net.Socket
  silent: boolean
}

/** A TCP relay 127.0.0.1:port → 127.0.0.1:target with a one-way delay. */
export class Relay {
  port = 0
  connections = 0
  readonly #pairs = new Set<Pair>()
  readonly #server: net.Server

  constructor(
    readonly target: number,
    readonly oneWayMs = 0,
  ) {
    this.#server = net.createServer({ allowHalfOpen: true }, (client) => this.#relay(client))
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()))
    this.port = (this.#server.address() as net.AddressInfo).port
    return this
  }

  /** A connection through the relay. */
  connect(): net.Socket {
    return net.connect({ port: this.port, host: '127.0.0.1', allowHalfOpen: true })
  }

  #relay(client: net.Socket): void {
    this.connections++
    const upstream = net.connect({ port: this.target, host: '127.0.0.1', allowHalfOpen: true })
    const pair: Pair = { client, upstream, silent: false }
    this.#pairs.add(pair)
    const pipe = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (d: Buffer) => {
        if (pair.silent) return
        if (this.oneWayMs === 0) to.write(d)
        else setTimeout(() => pair.silent || to.destroyed || to.write(d), this.oneWayMs)
      })
      from.on('end', () => {
        if (pair.silent) return
        if (this.oneWayMs === 0) to.end()
        else setTimeout(() => pair.silent || to.end(), this.oneWayMs)
      })
      from.on('close', () => {
        if (!pair.silent) to.destroy()
        if (from.destroyed && to.destroyed) this.#pairs.delete(pair)
      })
      from.on('error', () => {})
    }
    pipe(client, upstream)
    pipe(upstream, client)
  }

  /** Stops forwarding on every current connection (silently); returns how many. */
  silence(): number {
    let n = 0
    for (const p of this.#pairs) {
      if (!p.silent) n++
      p.silent = true
    }
    return n
  }

  async close(): Promise<void> {
    for (const p of this.#pairs) {
      p.client.destroy()
      p.upstream.destroy()
    }
    this.#pairs.clear()
    await new Promise((r) => this.#server.close(r))
  }
}

/** Resolves when `pred()` holds, checking every 10 ms; rejects after `timeoutMs` naming `what`. */
export async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now()
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** The next `event` on `emitter` whose arguments satisfy `pred`; rejects after `timeoutMs`. */
export function nextEvent<T extends unknown[]>(emitter: EventEmitter, event: string, pred: (...a: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on)
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`))
    }, timeoutMs)
    const on = (...a: unknown[]): void => {
      if (!pred(...(a as T))) return
      clearTimeout(t)
      emitter.off(event, on)
      resolve(a as T)
    }
    emitter.on(event, on)
  })
}

/**
 * Echo traffic on a stream until `stop()`: writes pseudo-random blocks
 * (fresh Buffers) with backpressure; `received` counts the echo. `stop()`
 * ends the stream and resolves with the sha256 of what was sent and of
 * what came back.
 */
export function pump(st: MuxStream): { received: () => number; stop: () => Promise<{ sent: number; received: number; sentSha: string; receivedSha: string }> } {
  let sent = 0
  let received = 0
  let running = true
  const hs = crypto.createHash('sha256')
  const hr = crypto.createHash('sha256')
  const got = new Promise<void>((resolve, reject) => {
    st.on('data', (d: Buffer) => {
      received += d.length
      hr.update(d)
    })
    st.once('end', () => resolve())
    st.once('error', reject)
  })
  got.catch(() => {})
  const loop = (async () => {
    const seed = crypto.randomBytes(64 * 1024)
    let i = 0
    while (running) {
      const off = (i++ * 7919) % (seed.length - 16 * 1024)
      const b = Buffer.from(seed.subarray(off, off + 16 * 1024))
      b.writeUInt32BE(i, 0)
      hs.update(b)
      sent += b.length
      if (!st.write(b)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            st.off('drain', done)
            st.off('close', done)
            resolve()
          }
          st.on('drain', done)
          st.on('close', done)
        })
      }
      if (st.destroyed) break
    }
    st.end()
  })()
  return {
    received: () => received,
    stop: async () => {
      running = false
      await loop
      await got
      return { sent, received, sentSha: hs.digest('hex'), receivedSha: hr.digest('hex') }
    },
  }
}
