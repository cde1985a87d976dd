/**
 * `createConnection()` by a deferred connect and `new net.Socket({ fd })`:
 * the macOS path (tokio-tfo's), and on Linux the same code under
 * `SYNMUX_LINUX_TFO_METHOD=adopt`, so it is tested here.
 *
 * synmux creates the socket, resolves the host if it has to, and calls
 * `connectResume()`: macOS `connectx(CONNECT_RESUME_ON_READ_WRITE |
 * CONNECT_DATA_IDEMPOTENT)` with no data (Linux: `TCP_FASTOPEN_CONNECT` +
 * `connect()`), which sends nothing yet. The descriptor is a
 * `FastOpenSocket` from the start (`new net.Socket({ fd })`, public API), so
 * `createConnection` still returns at once; writes made before the connect
 * is issued are held (the socket is corked until `'connect'`, so everything
 * written by then leaves in one `writev`). The first write carries SYN +
 * data. No Node internal is touched: no handle method is replaced, no
 * request callback faked.
 *
 * XNU answers `ENOTCONN` to any write made after that first one while the
 * handshake is still in progress (bsd/kern/uipc_socket.c `sosendcheck()`),
 * and `shutdown()` in SYN-SENT drops the connection, so the first write's
 * callback is held until the socket is writable (a `WriteGate`, through the
 * `Duplex` hooks `_write`/`_writev`/`_final`): Node's `Writable` issues no
 * further write and no `end()` before it. A refused or failed handshake
 * destroys the socket with a Node-style `connect` error.
 *
 * Host names: the socket's family must be chosen before the lookup
 * answers, so a name (without `family` or `localAddress`) gets a dual-stack
 * IPv6 socket and an IPv4 answer is connected as `::ffff:a.b.c.d`;
 * `remoteAddress`/`remoteFamily` still say IPv4. While the lookup runs the
 * socket is not yet connected: XNU does not report such a socket readable
 * (`soreadable()`), but Linux reports it hung up, so under the Linux test
 * hook a name needs a lookup that answers synchronously (the tests' do).
 * @internal
 * @packageDocumentation
 */
import dns from 'node:dns'
import net from 'node:net'
import { systemError } from './errors.js'
import { native, type NativeWaitHandle } from './native.js'
import { FastOpenSocket, markAttempted, markNoData, setKnownFd, setWriteGate, type WriteGate } from './socket.js'
import type { FastOpenReason } from './types.js'
import type { ConnectPlan } from './validate.js'

type Callback = (err?: Error | null) => void

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTCONN'])

/**
 * The gate's states: `resolving` (no connect issued yet: hold everything),
 * `deferred` (connect issued, nothing sent: the next write carries the SYN),
 * `handshake` (the SYN left: hold), `open` (gate removed).
 */
type Phase = 'resolving' | 'deferred' | 'handshake' | 'open' | 'gone'

class DeferredConnect implements WriteGate {
  private phaseNow: 'resolving' | 'connecting' | 'open' = 'resolving'
  private readonly held: Array<() => void> = []
  private waiter: NativeWaitHandle | undefined
  private retry: NodeJS.Timeout | undefined
  peer = { address: '', port: 0 }

  constructor(
    private readonly socket: FastOpenSocket,
    private readonly fd: number,
  ) {
    socket.once('close', () => {
      this.waiter?.cancel()
      this.waiter = undefined
      if (this.retry) clearTimeout(this.retry)
      this.held.length = 0
    })
  }

  /** The connect has been issued (nothing sent yet, or the SYN already left). */
  issued(): void {
    this.phaseNow = 'connecting'
    for (const f of this.held.splice(0)) f()
  }

  private phase(): Phase {
    if (this.socket.destroyed) return 'gone'
    if (this.phaseNow !== 'connecting') return this.phaseNow
    try {
      const info = native!.tcpInfo(this.fd)
      if (info.established || !info.connecting) return 'open'
      return (info.segsOut ?? 0) > 0 ? 'handshake' : 'deferred'
    } catch {
      return 'open' // let Node's own I/O report what went wrong
    }
  }

  private open(): void {
    this.phaseNow = 'open'
    setWriteGate(this.socket, null)
    for (const f of this.held.splice(0)) f()
  }

  /**
   * The phase an I/O meets; `resolving` holds it (`again` runs once the
   * connect is issued) and `open`/`gone` run it (`now`), returning null.
   */
  private settle(again: () => void, now: () => void): 'deferred' | 'handshake' | null {
    const p = this.phase()
    if (p === 'resolving') {
      this.held.push(again)
      return null
    }
    if (p === 'open' || p === 'gone') {
      if (p === 'open' && this.phaseNow !== 'open') this.open()
      now()
      return null
    }
    return p
  }

  write(io: (done: Callback) => void, cb: Callback): void {
    const p = this.settle(() => this.write(io, cb), () => io(cb))
    if (p === null) return
    if (p === 'deferred') {
      // This write carries the SYN.
      io((err) => (err || this.phaseNow === 'open' ? cb(err) : this.held.push(() => cb())))
      this.waitOpen()
      return
    }
    // The SYN left without data: a write now would fail on macOS.
    this.held.push(() => io(cb))
    this.waitOpen()
  }

  final(io: (done: Callback) => void, cb: Callback): void {
    const p = this.settle(() => this.final(io, cb), () => io(cb))
    if (p === null) return
    if (p === 'deferred') {
      // end() with nothing written: start the handshake, then shut down.
      try {
        native!.triggerConnect(this.fd)
        markNoData(this.socket)
      } catch {
        // reported by Node's own shutdown
      }
    }
    this.held.push(() => io(cb))
    this.waitOpen()
  }

  mapError(err: Error | null): Error | null {
    const e = err as NodeJS.ErrnoException | null
    if (this.phaseNow !== 'open' && e && e.syscall !== 'connect' && CONNECT_FAILURES.has(e.code ?? '')) {
      return systemError(e, 'connect', this.peer.address || undefined, this.peer.port || undefined)
    }
    return err
  }

  fail(err: NodeJS.ErrnoException): void {
    this.socket.destroy(systemError(err, 'connect', this.peer.address || undefined, this.peer.port || undefined))
  }

  private waitOpen(delay = 1): void {
    if (this.phaseNow === 'open' || this.waiter || this.retry || this.socket.destroyed) return
    try {
      this.waiter = native!.waitWritable(this.fd, (err) => {
        this.waiter = undefined
        if (err) return this.fail(err)
        const p = this.phase()
        if (p === 'open') return this.open()
        if (p === 'gone') return
        // Writable before the handshake finished (XNU reports a deferred
        // socket writable): look again shortly rather than risk ENOTCONN.
        this.retry = setTimeout(() => {
          this.retry = undefined
          try {
            if (this.phase() === 'deferred') native!.triggerConnect(this.fd)
          } catch (e) {
            return this.fail(e as NodeJS.ErrnoException)
          }
          this.waitOpen(Math.min(delay * 2, 50))
        }, delay)
      })
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException)
    }
  }
}

/** What {@link deferredConnection} needs from connect.ts. */
export interface DeferredOptions {
  plan: ConnectPlan
  socketOptions: net.SocketConstructorOpts
  /** macOS: set the private TCP_FASTOPEN_FORCE_ENABLE first. */
  force: boolean
  connectListener?: () => void
}

/**
 * A `FastOpenSocket` on a natively created, deferred-connect descriptor, or
 * the reason it could not be made (the caller then uses plain `net`).
 */
export function deferredConnection(o: DeferredOptions): FastOpenSocket | { reason: FastOpenReason } {
  const n = native!
  if (!n.connectResume) return { reason: 'addon-unavailable' }
  const { plan } = o
  const literal = net.isIP(plan.host)
  const local = plan.localAddress !== undefined ? net.isIP(plan.localAddress) : 0
  const family: 4 | 6 = (literal || local || (plan.family === 4 ? 4 : 6)) as 4 | 6
  const dual = literal === 0 && local === 0 && plan.family !== 4 && plan.family !== 6
  let fd: number
  try {
    fd = n.socket(family)
  } catch {
    return { reason: 'unknown' } // Node's own socket() will fail the same way and report it
  }
  let socket: FastOpenSocket
  try {
    if (dual) n.setV6Only(fd, false)
    if (plan.localAddress !== undefined || plan.localPort !== undefined) {
      n.bind(fd, plan.localAddress ?? (family === 6 ? '::' : '0.0.0.0'), plan.localPort ?? 0)
    }
    if (o.force) {
      try {
        n.setFastOpenConnect(fd)
      } catch {
        // private option gone: the heuristics decide
      }
    }
    socket = new FastOpenSocket({ ...o.socketOptions, fd, readable: true, writable: true })
  } catch {
    n.close(fd)
    return { reason: 'handle-unavailable' } // Node's own path reports bind errors itself
  }
  setKnownFd(socket, fd)
  const gate = new DeferredConnect(socket, fd)
  setWriteGate(socket, gate)
  markAttempted(socket)
  if (plan.noDelay) socket.setNoDelay(true)
  if (plan.keepAlive) socket.setKeepAlive(true, plan.keepAliveInitialDelay ?? 0)
  if (plan.timeout !== undefined) socket.setTimeout(plan.timeout)
  if (o.connectListener) socket.once('connect', o.connectListener)
  // Everything written before 'connect' (and by its listeners) leaves in one writev.
  socket.cork()

  const start = (address: string, fam: 4 | 6) => {
    gate.peer = { address, port: plan.port }
    const target = fam === 4 && family === 6 ? `::ffff:${address}` : address
    if (fam === 4 && family === 6) setKnownFd(socket, fd, true)
    try {
      n.connectResume!(fd, target, plan.port)
    } catch (err) {
      return gate.fail(err as NodeJS.ErrnoException)
    }
    gate.issued()
    process.nextTick(() => {
      if (socket.destroyed) return
      socket.emit('connect')
      socket.emit('ready')
      socket.uncork()
      // A socket that wrote nothing (a server-speaks-first protocol) would
      // wait forever: send the SYN empty after this turn of the loop.
      setImmediate(() => sendSynIfIdle(socket, fd))
    })
  }

  if (literal !== 0) {
    start(plan.host, literal as 4 | 6)
  } else {
    const lookup = (plan.lookup ?? dns.lookup) as (
      host: string,
      opts: dns.LookupOptions,
      cb: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void,
    ) => void
    const lookupFamily = family === 4 ? 4 : plan.family === 6 ? 6 : 0
    // After this tick, so 'lookup' listeners added by the caller see the event.
    process.nextTick(lookup, plan.host, { family: lookupFamily, all: false }, (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], fam?: number) => {
      if (socket.destroyed) return
      const addr = typeof address === 'string' ? address : address?.[0]?.address
      const f = (addr ? net.isIP(addr) : 0) || fam
      socket.emit('lookup', err, addr, f, plan.host)
      if (err) return void socket.destroy(err)
      if (!addr || (f !== 4 && f !== 6) || (family === 4 && f === 6)) {
        return void socket.destroy(systemError('ENOTFOUND', 'getaddrinfo', plan.host))
      }
      start(addr, f)
    })
  }
  return socket
}

/**
 * Sends the SYN of a deferred TFO connect that has nothing to carry (a
 * server-speaks-first protocol), so it does not wait forever. @internal
 */
export function sendSynIfIdle(socket: FastOpenSocket, fd: number): void {
  if (socket.destroyed || fd < 0) return
  try {
    const info = native!.tcpInfo(fd)
    if (info.connecting && (info.segsOut ?? 0) === 0) {
      native!.triggerConnect(fd)
      markNoData(socket)
    }
  } catch {
    // the socket failed meanwhile; Node reports that itself
  }
}
