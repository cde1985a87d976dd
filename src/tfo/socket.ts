/**
 * `FastOpenSocket`: a `net.Socket` that knows whether its first bytes rode
 * in the SYN.
 * @packageDocumentation
 */
import net from 'node:net'
import { fdOf } from './handle.js'
import { native, type NativeTcpInfo } from './native.js'
import type { FastOpenReason, FastOpenReport } from './types.js'

/** Maps Linux `tcpi_fastopen_client_fail` to a reason. @internal */
export function clientFailReason(info: NativeTcpInfo): FastOpenReason {
  switch (info.clientFail) {
    case 1:
      return 'no-cookie'
    case 2:
      return 'not-acked'
    case 3:
      return 'syn-retransmitted'
    case 4: // macOS: the kernel's TFO heuristics / blackhole detection turned it off
      return 'disabled-by-os'
    default:
      return info.synDataSent ? 'not-acked' : 'unknown'
  }
}

interface ReportState {
  attempted: boolean
  accepted: boolean | null
  reason?: FastOpenReason
  /** The SYN left without data (nothing was written before it). */
  noData: boolean
}

const state = new WeakMap<FastOpenSocket, ReportState>()

type Callback = (err?: Error | null) => void

/**
 * Holds a socket's writes while its deferred connect completes (see
 * `deferred.ts`): the first write goes out at once (it carries the SYN) but
 * its callback waits for the handshake, so Node's `Writable` issues nothing
 * more until then; `end()` waits too. Only the stream hooks every `Duplex`
 * implementer has (`_write`, `_writev`, `_final`, `_destroy`) are used.
 * @internal
 */
export interface WriteGate {
  write(io: (done: Callback) => void, cb: Callback): void
  final(io: (done: Callback) => void, cb: Callback): void
  /** The error to destroy the socket with (a read error before the handshake is the connect failing). */
  mapError(err: Error | null): Error | null
}

const gates = new WeakMap<FastOpenSocket, WriteGate>()
/** Descriptors synmux created and handed to `new net.Socket({ fd })`. */
const knownFds = new WeakMap<FastOpenSocket, number>()
/** Sockets connected to an IPv4 peer through an IPv6 socket (::ffff:a.b.c.d). */
const mapped = new WeakSet<FastOpenSocket>()

/** Installs (or, with null, removes) the socket's write gate. @internal */
export function setWriteGate(socket: FastOpenSocket, gate: WriteGate | null): void {
  if (gate) gates.set(socket, gate)
  else gates.delete(socket)
}

/** Records the descriptor synmux created for this socket, and whether its peer is IPv4 on an IPv6 socket. @internal */
export function setKnownFd(socket: FastOpenSocket, fd: number, v4mapped = false): void {
  knownFds.set(socket, fd)
  if (v4mapped) mapped.add(socket)
}

/** The socket's descriptor: the one synmux created, else Node's handle's; -1 when closed or unknown. @internal */
export function socketFd(socket: FastOpenSocket): number {
  const known = knownFds.get(socket)
  return known !== undefined ? known : fdOf(socket)
}


/**
 * A `net.Socket` returned by {@link connectWithData} and
 * {@link createConnection}. It behaves exactly like any `net.Socket`; the
 * extra {@link FastOpenSocket.fastOpen} says what TFO did.
 */
export class FastOpenSocket extends net.Socket {
  constructor(options?: net.SocketConstructorOpts) {
    super(options)
    state.set(this, { attempted: false, accepted: false, reason: 'opted-out', noData: false })
  }

  /**
   * What happened to this connection's first bytes. `accepted` is `null`
   * while the handshake is still in progress; read it again after the
   * first response byte (it is then final).
   */
  get fastOpen(): FastOpenReport {
    const s = refresh(this)
    const r: { attempted: boolean; accepted: boolean | null; reason?: FastOpenReason } = {
      attempted: s.attempted,
      accepted: s.accepted,
    }
    if (s.reason !== undefined && s.accepted !== true) r.reason = s.reason
    return r
  }

  // The outcome is settled from the kernel while the descriptor exists: at
  // the first received chunk (the handshake is complete by then) and just
  // before the handle closes. No 'data' listener: stream mode is untouched.
  /** @internal */
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null) refresh(this)
    return super.push(chunk, encoding)
  }

  /** @internal */
  override _write(chunk: any, encoding: BufferEncoding, cb: Callback): void {
    const g = gates.get(this)
    if (!g) return super._write(chunk, encoding, cb)
    g.write((done) => super._write(chunk, encoding, done), cb)
  }

  /** @internal */
  override _writev(chunks: Array<{ chunk: any; encoding: BufferEncoding }>, cb: Callback): void {
    const g = gates.get(this)
    if (!g) return super._writev!(chunks, cb)
    g.write((done) => super._writev!(chunks, done), cb)
  }

  /** @internal */
  override _final(cb: Callback): void {
    const g = gates.get(this)
    if (!g) return super._final(cb)
    g.final((done) => super._final(done), cb)
  }

  /** @internal */
  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    refresh(this)
    const g = gates.get(this)
    super._destroy(g ? g.mapError(err) : err, cb)
    // The descriptor is closed now; its number may be reused.
    knownFds.delete(this)
  }
}

// An IPv4 peer reached through an IPv6 socket is reported as IPv4, as a
// plain net.Socket connected to it would report it.
const MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i
const getter = (name: string) => Object.getOwnPropertyDescriptor(net.Socket.prototype, name)?.get
const remoteAddressOf = getter('remoteAddress')
function override(name: string, map: (this: FastOpenSocket, v: unknown) => unknown): void {
  const base = getter(name)
  if (!base) return
  Object.defineProperty(FastOpenSocket.prototype, name, {
    configurable: true,
    enumerable: true,
    get(this: FastOpenSocket) {
      const v = base.call(this)
      return mapped.has(this) ? map.call(this, v) : v
    },
  })
}
override('remoteAddress', (v) => (typeof v === 'string' ? (MAPPED.exec(v)?.[1] ?? v) : v))
override('localAddress', (v) => (typeof v === 'string' ? (MAPPED.exec(v)?.[1] ?? v) : v))
override('remoteFamily', function (v) {
  const a = remoteAddressOf?.call(this)
  return typeof a === 'string' && MAPPED.test(a) ? 'IPv4' : v
})
/** Records that TFO was not used, and why. @internal */
export function markNotAttempted(socket: FastOpenSocket, reason: FastOpenReason): void {
  state.set(socket, { attempted: false, accepted: false, reason, noData: false })
}

/** Records that TFO was requested from the OS; the outcome is read later. @internal */
export function markAttempted(socket: FastOpenSocket): void {
  state.set(socket, { attempted: true, accepted: null, noData: false })
}

/** Records that the SYN was sent with no data. @internal */
export function markNoData(socket: FastOpenSocket): void {
  const s = state.get(socket)
  if (s) s.noData = true
}

/** Records a definite outcome (e.g. where the OS cannot be asked later). @internal */
export function markOutcome(socket: FastOpenSocket, accepted: boolean | null, reason?: FastOpenReason): void {
  const s = state.get(socket)
  if (!s) return
  s.accepted = accepted
  if (reason !== undefined) s.reason = reason
  else delete s.reason
}

/** Whether TFO was requested from the OS for this socket (without asking the kernel for the outcome). @internal */
export function fastOpenAttempted(socket: FastOpenSocket): boolean {
  return state.get(socket)?.attempted === true
}

/**
 * Asks the kernel for the outcome while it is undecided (or reads it from
 * `known`, a TCP_INFO the caller has just taken); caches it once final.
 * @internal
 */
export function refresh(socket: FastOpenSocket, known?: NativeTcpInfo): ReportState {
  const s = state.get(socket)!
  if (!s.attempted || s.accepted !== null || !native) return s
  let info: NativeTcpInfo
  if (known !== undefined) info = known
  else {
    const fd = socketFd(socket)
    if (fd < 0) return s
    try {
      info = native.tcpInfo(fd)
    } catch {
      return s
    }
  }
  if (info.connecting) return s
  s.accepted = info.synData
  if (!info.synData) s.reason = s.noData ? 'no-data' : clientFailReason(info)
  return s
}
