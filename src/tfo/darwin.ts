/**
 * macOS `createConnection()`: the first write rides in the SYN.
 *
 * XNU defers a connect only through `connectx(CONNECT_RESUME_ON_READ_WRITE)`,
 * and a plain `connect()` on such a socket fails, so Node must not run its
 * own connect on the descriptor. Node creates the socket's `TCP` handle and
 * calls `handle.connect(req, address, port)`; synmux has already put its own
 * descriptor under that handle (`handle.ts`), and replaces `connect` on that
 * one handle object with `connectx(RESUME_ON_READ_WRITE)` followed by Node's
 * own completion callback (`req.oncomplete`, as libuv would call it). Node
 * then emits `'connect'`, and its first write (one `writev`) leaves with the
 * SYN.
 *
 * XNU answers `ENOTCONN` to any later write while the handshake is still in
 * progress (bsd/kern/uipc_socket.c `sosendcheck()`), so until the socket is
 * writable the stream's write callback is held: Node's `Writable` issues no
 * further write before it, and `end()` waits too. A refused or failed
 * handshake destroys the socket with a Node-style `connect` error.
 * @internal
 * @packageDocumentation
 */
import type net from 'node:net'
import { systemError } from './errors.js'
import { native, type NativeWaitHandle } from './native.js'

type Callback = (err?: Error | null) => void

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTCONN'])
interface StreamInternals {
  _write: (chunk: unknown, encoding: BufferEncoding, cb: Callback) => void
  _writev?: (chunks: unknown[], cb: Callback) => void
  _final: (cb: Callback) => void
  _handle?: HandleInternals | null
  connecting: boolean
}
interface HandleInternals {
  connect?: unknown
  connect6?: unknown
}
interface ConnectReq {
  oncomplete: (status: number, handle: unknown, req: unknown, readable: boolean, writable: boolean) => void
}

/** Whether this Node/addon lets {@link deferConnect} work. */
export function canDeferConnect(socket: net.Socket): boolean {
  const h = (socket as unknown as StreamInternals)._handle
  return !!native?.connectResume && !!h && typeof h.connect === 'function'
}

/**
 * Makes the socket's pending Node connect a deferred `connectx()` on `fd`
 * (already opened under the socket's handle) and holds writes until the
 * handshake completes.
 */
export function deferConnect(socket: net.Socket, fd: number): void {
  const n = native!
  const s = socket as unknown as StreamInternals
  const handle = s._handle!
  let peer = { address: '', port: 0 }
  const connect = (req: ConnectReq, address: string, port: number): number => {
    peer = { address, port }
    try {
      n.connectResume!(fd, address, port)
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).errno
      return typeof errno === 'number' ? errno : -22
    }
    // libuv completes a connect from the event loop; so does this.
    setImmediate(() => req.oncomplete(0, handle, req, true, true))
    return 0
  }
  handle.connect = connect
  handle.connect6 = connect

  // --- write gate ---------------------------------------------------------
  const write = s._write
  const writev = s._writev
  const final = s._final
  let open = false
  let waiter: NativeWaitHandle | undefined
  let retry: NodeJS.Timeout | undefined
  const held: Array<() => void> = []

  // Until the handshake is done, a failure Node sees on a read or write is
  // the connect failing (Node believes it connected): report it as such.
  const destroy = socket.destroy
  socket.destroy = function (this: net.Socket, err?: Error) {
    const e = err as NodeJS.ErrnoException | undefined
    if (!open && e && e.syscall !== 'connect' && CONNECT_FAILURES.has(e.code ?? '')) {
      err = systemError(e, 'connect', peer.address, peer.port)
    }
    return destroy.call(this, err)
  }

  const restore = () => {
    open = true
    delete (socket as Partial<net.Socket>).destroy
    delete (s as Partial<StreamInternals>)._write
    delete (s as Partial<StreamInternals>)._writev
    delete (s as Partial<StreamInternals>)._final
    for (const f of held.splice(0)) f()
  }
  const phase = (): 'deferred' | 'handshake' | 'open' | 'gone' => {
    if (socket.destroyed) return 'gone'
    try {
      const info = n.tcpInfo(fd)
      if (info.established || !info.connecting) return 'open'
      return (info.segsOut ?? 0) > 0 ? 'handshake' : 'deferred'
    } catch {
      return 'open' // let Node's own I/O report what went wrong
    }
  }
  const waitOpen = (delay = 1) => {
    if (open || waiter || retry || socket.destroyed) return
    if (s.connecting) {
      socket.once('connect', () => setImmediate(waitOpen))
      return
    }
    waiter = n.waitWritable(fd, (err) => {
      waiter = undefined
      if (err) return void socket.destroy(systemError(err, 'connect', peer.address, peer.port))
      const p = phase()
      if (p === 'open') return restore()
      if (p === 'gone') return
      // Writable before the handshake finished (possible while deferred):
      // look again shortly rather than risk ENOTCONN.
      retry = setTimeout(() => {
        retry = undefined
        if (phase() === 'deferred') n.triggerConnect(fd)
        waitOpen(Math.min(delay * 2, 50))
      }, delay)
    })
  }
  socket.once('close', () => {
    waiter?.cancel()
    waiter = undefined
    if (retry) clearTimeout(retry)
    held.length = 0
  })

  /** Runs `io` now, holding `cb` until the handshake is done; or holds `io` itself. */
  const gated = (io: (cb: Callback) => void, cb: Callback) => {
    if (open) return io(cb)
    const p = s.connecting ? 'deferred' : phase()
    if (p === 'open' || p === 'gone') {
      if (p === 'open') restore()
      return io(cb)
    }
    if (p === 'deferred') {
      // This write carries the SYN (Node sends it once 'connect' is out).
      io((err) => (err || open ? cb(err) : held.push(() => cb())))
      waitOpen()
      return
    }
    // The SYN left without data (triggerConnect): a write now would fail.
    held.push(() => io(cb))
    waitOpen()
  }
  s._write = function (this: unknown, chunk, encoding, cb) {
    gated((done) => write.call(this, chunk, encoding, done), cb)
  }
  if (writev) {
    s._writev = function (this: unknown, chunks, cb) {
      gated((done) => writev.call(this, chunks, done), cb)
    }
  }
  s._final = function (this: unknown, cb) {
    if (open) return final.call(this, cb)
    if (!s.connecting && phase() === 'deferred') {
      try {
        n.triggerConnect(fd)
      } catch {
        // reported by Node's own shutdown
      }
    }
    held.push(() => final.call(this, cb))
    waitOpen()
  }
}
