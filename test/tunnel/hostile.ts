/**
 * A hostile tunnel client for the memory tests: it speaks the wire format
 * itself (docs/PROTOCOL.md), authenticates with the pre-shared key as
 * section 16 says (its own HMACs over node:crypto, not the library's) — or
 * over the secure channel with an authorized client key (section 20) — and
 * then does whatever the test wants: never read, flood PINGs, never ACK,
 * announce huge windows. Also: the server process's resident set size, and a
 * well-behaved client to check that the server still serves others.
 */
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { Capability, FrameType, HelloExtension, HelloKind, Session, decodeFrame, decodeHello, encodeFrame, encodeHello, secure, type Frame, type Hello, type KeyPair } from 'synmux'

/** The key inside a key file made by `keyFile()`. */
export function keyOf(file: string): Buffer {
  const text = fs.readFileSync(file, 'utf8').trim()
  return Buffer.from(text.slice(text.indexOf(':') + 1), 'base64')
}

/**
 * Process `pid` and its descendants (Linux: /proc): a `synmux server` is
 * its primary process and the worker processes it forked (`--workers`,
 * default the number of cores), and what it holds is held by all of them.
 */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8')
    } catch {
      continue // gone meanwhile
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses; the fields after the last ')' do not.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    const list = children.get(ppid)
    if (list) list.push(Number(name))
    else children.set(ppid, [Number(name)])
  }
  const out = [pid]
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []))
  return out
}

/** Resident set size of process `pid` and its descendants ({@link processTree}), in bytes (Linux: /proc; elsewhere: ps, `pid` alone). */
export function rss(pid: number): number {
  if (fs.existsSync('/proc/self/status')) {
    let sum = 0
    for (const p of processTree(pid)) {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))
        if (m) sum += Number(m[1]) * 1024
      } catch {
        // (a worker that exited meanwhile)
      }
    }
    if (sum > 0) return sum
  }
  return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) * 1024
}

/** Open descriptors of process `pid` and its descendants (Linux). */
export function fdCount(pid: number): number {
  let n = 0
  for (const p of processTree(pid)) {
    try {
      n += fs.readdirSync(`/proc/${p}/fd`).length
    } catch {
      // (a worker that exited meanwhile)
    }
  }
  return n
}

export const MiB = 1024 * 1024
export const KiB = 1024

/** Samples the RSS of a process (and its descendants) every `ms` until stopped; `max` is the highest sample. */
export class RssMonitor {
  max = 0
  last = 0
  readonly #timer: NodeJS.Timeout
  constructor(
    readonly pid: number,
    ms = 50,
  ) {
    const sample = () => {
      try {
        this.last = rss(pid)
        if (this.last > this.max) this.max = this.last
      } catch {
        // the process is gone: the test sees it exit
      }
    }
    sample()
    this.#timer = setInterval(sample, ms)
  }
  stop(): number {
    clearInterval(this.#timer)
    return this.max
  }
}

/** Options of {@link HostilePeer.connect}. */
export interface HostileOptions {
  port: number
  /** The pre-shared key (PROTOCOL.md 16), for a server in --insecure-plaintext mode. */
  key?: Buffer
  /** Or the secure channel's keys: an authorized client key and the server's public key. */
  secure?: { clientKeys: KeyPair; serverKeys: KeyPair }
  /** Capabilities offered besides AUTH_PSK (RESUME, STRIPE). */
  capabilities?: number
  /** Initial window announced (default 262,144; up to 2^31 - 1). */
  initialWindow?: number
  /** REPLAY_BUFFER announced (with RESUME). Default 4 MiB. */
  replayBuffer?: number
  /** Send AUTH after the server's HELLO (default true). */
  authenticate?: boolean
}

/**
 * A client that authenticates like a real one and then misbehaves. Frames
 * the server sends are parsed (and counted) while `reading` is on; `stopReading()`
 * pauses the socket for good, so the server's writes pile up.
 */
export class HostilePeer {
  /** The TCP socket, or the secure channel over it. */
  readonly socket: Duplex
  serverHello: Hello | null = null
  serverHelloRaw: Buffer | null = null
  /** Frames received, by type. */
  readonly counts = new Map<number, number>()
  bytesIn = 0
  /** Data bytes received per stream (OPENED and DATA payloads). */
  readonly rx = new Map<number, number>()
  /** WINDOW increments received per stream (credit beyond the server's initial window). */
  readonly granted = new Map<number, number>()
  /** Streams the server reset or refused. */
  readonly ended = new Set<number>()
  closed = false
  #buf: Buffer = Buffer.alloc(0)
  #waiters: Array<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void }> = []
  #nextId = 1

  private constructor(socket: Duplex) {
    this.socket = socket
  }

  /**
   * Connects, sends a NEW HELLO (with AUTH_PSK and a nonce, or over the
   * secure channel), checks nothing of the answer but its form, and (by
   * default, with the pre-shared key) sends AUTH.
   */
  static async connect(o: HostileOptions): Promise<HostilePeer> {
    const tcp = net.connect({ port: o.port, host: '127.0.0.1', noDelay: true })
    tcp.on('error', () => {})
    const socket: Duplex = o.secure ? secure(tcp, { role: 'client', staticKey: o.secure.clientKeys.privateKey, serverKey: o.secure.serverKeys.publicKey }) : tcp
    socket.on('error', () => {})
    const peer = new HostilePeer(socket)
    socket.once('close', () => (peer.closed = true))
    await new Promise<void>((resolve, reject) => {
      tcp.once('connect', resolve)
      tcp.once('error', reject)
    })
    const nonce = crypto.randomBytes(32)
    const caps = (o.secure ? 0 : Capability.AUTH_PSK) | (o.capabilities ?? 0)
    const ext: Array<[number, Buffer]> = o.secure ? [] : [[HelloExtension.AUTH_NONCE, nonce]]
    if (caps & Capability.RESUME) {
      const rb = Buffer.alloc(4)
      rb.writeUInt32BE(o.replayBuffer ?? 4 * MiB)
      ext.push([HelloExtension.REPLAY_BUFFER, rb])
    }
    const hello = encodeHello({
      kind: HelloKind.NEW,
      role: 'client',
      capabilities: caps,
      sessionId: Buffer.alloc(32),
      initialWindow: o.initialWindow ?? 262_144,
      maxFrameSize: 65_536,
      maxStreams: 1024,
      extensions: ext,
    })
    const got = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        peer.#buf = Buffer.concat([peer.#buf, d])
        const r = decodeHello(peer.#buf)
        if (r === null) return
        socket.off('data', onData)
        peer.serverHello = r.hello
        peer.serverHelloRaw = Buffer.from(peer.#buf.subarray(0, r.size))
        peer.#buf = peer.#buf.subarray(r.size)
        resolve()
      }
      socket.on('data', onData)
      socket.once('close', () => reject(new Error('the server closed before its HELLO')))
    })
    socket.write(hello)
    await got
    if (o.authenticate !== false && !o.secure) {
      // PROTOCOL.md 16: AUTH = HMAC(K, "synmux client" || server HELLO || Nc).
      const proof = crypto.createHmac('sha256', o.key!).update('synmux client', 'latin1').update(peer.serverHelloRaw!).update(nonce).digest()
      socket.write(encodeFrame({ type: FrameType.AUTH, proof }))
    }
    socket.on('data', (d: Buffer) => peer.#onData(d))
    if (peer.#buf.length > 0) {
      const rest = peer.#buf
      peer.#buf = Buffer.alloc(0)
      peer.#onData(rest)
    }
    return peer
  }

  #onData(d: Buffer): void {
    this.bytesIn += d.length
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d])
    let off = 0
    for (;;) {
      const r = decodeFrame(this.#buf, off)
      if (r === null) break
      off += r.size
      const f = r.frame
      this.counts.set(f.type, (this.counts.get(f.type) ?? 0) + 1)
      if (f.type === FrameType.DATA || f.type === FrameType.OPENED) this.rx.set(f.streamId, (this.rx.get(f.streamId) ?? 0) + f.data.length)
      else if (f.type === FrameType.WINDOW) this.granted.set(f.streamId, (this.granted.get(f.streamId) ?? 0) + f.increment)
      else if (f.type === FrameType.RST || f.type === FrameType.REFUSED) this.ended.add(f.streamId)
      for (const w of [...this.#waiters]) {
        if (w.match(f)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1)
          w.resolve(f)
        }
      }
    }
    this.#buf = this.#buf.subarray(off)
  }

  /** Resolves with the next frame received that matches. */
  next(match: (f: Frame) => boolean, ms = 5000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no matching frame within ${ms} ms (closed: ${this.closed})`)), ms)
      this.#waiters.push({ match, resolve: (f) => (clearTimeout(t), resolve(f)) })
    })
  }

  /** Resolves once stream `id` has received at least `n` data bytes. */
  received(id: number, n: number, ms = 5000): Promise<void> {
    if ((this.rx.get(id) ?? 0) >= n) return Promise.resolve()
    return this.next(() => (this.rx.get(id) ?? 0) >= n, ms).then(() => {})
  }

  /** Credit the server granted stream `id` in all (its initial window plus WINDOW increments). */
  credit(id: number): number {
    return this.serverHello!.initialWindow + (this.granted.get(id) ?? 0)
  }

  /** Resolves once stream `id` has credit beyond `used` bytes (or rejects after `ms`). */
  creditAbove(id: number, used: number, ms: number): Promise<void> {
    if (this.credit(id) > used) return Promise.resolve()
    return this.next(() => this.credit(id) > used || this.ended.has(id), ms).then(() => {})
  }

  /** The next client stream id (odd, increasing). */
  nextId(): number {
    const id = this.#nextId
    this.#nextId += 2
    return id
  }

  /** Stops reading from the socket for good (the kernel's buffers fill, then the server's). */
  stopReading(): void {
    this.socket.pause()
    this.socket.removeAllListeners('data')
  }

  /** Writes raw bytes; resolves when the socket took them (or at once if it is gone). */
  write(b: Buffer): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve()
    return new Promise((resolve) => {
      if (this.socket.write(b)) resolve()
      else {
        const done = () => (this.socket.off('close', done), this.socket.off('drain', done), resolve())
        this.socket.once('drain', done)
        this.socket.once('close', done)
      }
    })
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/**
 * A well-behaved client (the library's own Session, same key): opens a
 * stream to `target`, sends `data`, and resolves with everything the
 * target answered before it closed.
 */
export async function wellBehaved(port: number, key: Buffer | { clientKeys: KeyPair; serverKeys: KeyPair }, target: { host: string; port: number }, data: Buffer, ms = 10_000): Promise<Buffer> {
  const socket = net.connect({ port, host: '127.0.0.1' })
  const session = Buffer.isBuffer(key)
    ? new Session(socket, { role: 'client', auth: { key } })
    : new Session(secure(socket, { role: 'client', staticKey: key.clientKeys.privateKey, serverKey: key.serverKeys.publicKey }), { role: 'client' })
  session.on('error', () => {})
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the well-behaved client got no answer within ${ms} ms`)), ms)
      const st = session.open({ target, data, end: true })
      const c: Buffer[] = []
      st.on('data', (d: Buffer) => c.push(d))
      st.on('end', () => (clearTimeout(t), resolve(Buffer.concat(c))))
      st.on('error', (e) => (clearTimeout(t), reject(e)))
    })
  } finally {
    session.destroy()
  }
}
