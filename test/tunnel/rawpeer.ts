/**
 * Hand-made peers for the hostile-path tests of the tunnel server: a raw
 * client that authenticates — over the secure channel (PROTOCOL.md 20,
 * the default), or with the pre-shared key exactly as section 16 says
 * (HELLO with a nonce, the server's proof checked, AUTH) — and then writes
 * whatever frames a test wants, however malformed; a
 * target whose connects hang (its accept queue is full), so that streams
 * stay in the tunnel server's connect phase for as long as a test needs;
 * and an echo target.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { Capability, decodeHello, encodeFrame, encodeHello, FrameDecoder, HelloExtension, HelloKind, secure, type Frame, type FrameInit, type KeyPair } from 'synmux'

const hmac = (key: Buffer, ...parts: Buffer[]): Buffer => {
  const h = crypto.createHmac('sha256', key)
  for (const p of parts) h.update(p)
  return h.digest()
}

/** The keys a raw peer needs for the secure channel. */
export interface PeerKeys {
  clientKeys: KeyPair
  serverKeys: KeyPair
}

/** An authenticated connection speaking raw frames. */
export interface RawPeer {
  /** The TCP socket, or the secure channel over it. */
  socket: Duplex
  /** The TCP socket. */
  tcp: net.Socket
  /** Every frame received after the server's HELLO. */
  frames: Frame[]
  /** Writes these frames in one write (one TCP segment train, read by the server in one go). */
  send(...frames: Array<FrameInit | Buffer>): void
  /** Resolves when `count` frames matching `pred` have arrived. */
  waitFrames(pred: (f: Frame) => boolean, count?: number, ms?: number): Promise<Frame[]>
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>
}

/**
 * Connects to a tunnel server on 127.0.0.1:`port` and authenticates: with
 * `keys`, over the secure channel (its HELLO has no AUTH_PSK); with a
 * pre-shared `key`, by PROTOCOL.md 16 in clear text.
 */
export async function rawPeer(port: number, key: Buffer | PeerKeys, opts: { initialWindow?: number } = {}): Promise<RawPeer> {
  const tcp = net.connect({ host: '127.0.0.1', port, noDelay: true })
  tcp.on('error', () => {})
  const psk = Buffer.isBuffer(key) ? key : null
  const socket: Duplex = psk !== null ? tcp : secure(tcp, { role: 'client', staticKey: (key as PeerKeys).clientKeys.privateKey, serverKey: (key as PeerKeys).serverKeys.publicKey })
  socket.on('error', () => {})
  const nonce = crypto.randomBytes(32)
  const hello = encodeHello({
    kind: HelloKind.NEW,
    role: 'client',
    capabilities: psk !== null ? Capability.AUTH_PSK : 0,
    sessionId: Buffer.alloc(32),
    initialWindow: opts.initialWindow ?? 262_144,
    maxFrameSize: 65_536,
    maxStreams: 1024,
    extensions: psk !== null ? [[HelloExtension.AUTH_NONCE, nonce]] : [],
  })
  socket.write(hello)
  const frames: Frame[] = []
  const waiters: Array<() => void> = []
  const decoder = new FrameDecoder({ maxFrameSize: 16_777_215 })
  let buf = Buffer.alloc(0)
  let serverHello: Buffer | null = null
  const authed = new Promise<void>((resolve, reject) => {
    socket.once('close', () => reject(new Error('closed before the handshake')))
    socket.on('data', (d: Buffer) => {
      if (serverHello === null) {
        buf = Buffer.concat([buf, d])
        const r = decodeHello(buf)
        if (r === null) return
        serverHello = Buffer.from(buf.subarray(0, r.size))
        if (psk !== null) {
          const ns = r.hello.extensions.get(HelloExtension.AUTH_NONCE)!
          const proof = r.hello.extensions.get(HelloExtension.AUTH_PROOF)!
          if (!proof.equals(hmac(psk, Buffer.from('synmux server'), hello, ns))) return reject(new Error('server proof mismatch'))
          socket.write(encodeFrame({ type: 0x83, proof: hmac(psk, Buffer.from('synmux client'), serverHello, nonce) } as FrameInit))
        }
        d = buf.subarray(r.size)
        resolve()
      }
      decoder.push(d, (f) => {
        frames.push(f)
        for (const w of [...waiters]) w()
      })
    })
  })
  await authed
  const closed = new Promise<void>((r) => (tcp.destroyed ? r() : tcp.once('close', () => r())))
  return {
    socket,
    tcp,
    frames,
    closed,
    send(...fs) {
      socket.write(Buffer.concat(fs.map((f) => (Buffer.isBuffer(f) ? f : encodeFrame(f)))))
    },
    waitFrames(pred, count = 1, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const got = frames.filter(pred)
          if (got.length < count) return false
          clearTimeout(t)
          waiters.splice(waiters.indexOf(check), 1)
          resolve(got)
          return true
        }
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1)
          reject(new Error(`timed out waiting for ${count} frames; have ${frames.filter(pred).length}`))
        }, ms)
        waiters.push(check)
        check()
      })
    },
  }
}

/** A TCP target on 127.0.0.1 whose connects never complete. */
export interface StuckTarget {
  port: number
  close(): void
}

/**
 * A listener with a backlog of 1 in a child process that never accepts
 * (its event loop is blocked): once two connections fill its accept queue,
 * the kernel drops every further SYN, so connects to it stay in progress
 * until the connecting side's timeout.
 */
export async function stuckTarget(): Promise<StuckTarget> {
  const code = `const s = require('net').createServer(); s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => { process.stdout.write(s.address().port + '\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0) })`
  const child: ChildProcess = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`stuck target exited ${c}`)))
    child.stdout!.once('data', (d) => resolve(Number(String(d).trim())))
  })
  // Fill the accept queue (a backlog of 1 holds two connections).
  const fillers: net.Socket[] = []
  for (let i = 0; i < 2; i++) {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    fillers.push(s)
  }
  await Promise.all(fillers.map((f) => new Promise<void>((r) => f.once('connect', () => r()))))
  // Check: a new connect must not complete.
  const probe = net.connect(port, '127.0.0.1')
  probe.on('error', () => {})
  const completed = await new Promise<boolean>((r) => {
    const t = setTimeout(() => r(false), 300)
    probe.once('connect', () => (clearTimeout(t), r(true)))
  })
  probe.destroy()
  if (completed) {
    for (const s of fillers) s.destroy()
    child.kill('SIGKILL')
    throw new Error('the stuck target accepted a connection')
  }
  return {
    port,
    close() {
      for (const s of fillers) s.destroy()
      child.kill('SIGKILL')
    },
  }
}

/** An echo server on 127.0.0.1 (half-close passed through). */
export async function echoTarget(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {})
    s.pipe(s)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, port: (server.address() as net.AddressInfo).port }
}
