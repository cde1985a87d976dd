/**
 * Windows `connectWithData()`: `ConnectEx` with the first bytes as its send
 * buffer (in the SYN when `TCP_FASTOPEN` was accepted, otherwise right after
 * the handshake), then the connected SOCKET is handed to Node
 * (`win-handle.ts`) and the rest is written through the `net.Socket`.
 * @internal
 * @packageDocumentation
 */
import os from 'node:os'
import type net from 'node:net'
import type { CancelSignal } from './cancel.js'
import { systemError } from './errors.js'
import { native } from './native.js'
import { FastOpenSocket, markAttempted, markNotAttempted } from './socket.js'
import type { FastOpenReason } from './types.js'
import type { ConnectPlan } from './validate.js'
import { connectedHandle } from './win-handle.js'

/**
 * At most this many bytes go through ConnectEx, which completes only once
 * its whole buffer is sent; a SYN holds about one MSS anyway. The rest is
 * written by Node, with backpressure.
 */
export const CONNECTEX_MAX_DATA = 16 * 1024

/** Windows build number from `os.release()` ("10.0.19045" -> 19045), or 0. */
export function windowsBuild(): number {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(os.release())
  if (!m) return 0
  const [major, minor, build] = [Number(m[1]), Number(m[2]), Number(m[3])]
  if (major > 10) return Number.MAX_SAFE_INTEGER
  return major === 10 && minor === 0 ? build : 0
}

/** Client TFO needs Windows 10 1607 (build 14393); listeners need 1703 (15063). */
export const WINDOWS_CLIENT_BUILD = 14393
export const WINDOWS_SERVER_BUILD = 15063

/** Why the OS refused `TCP_FASTOPEN` on a client socket. */
export function refusedReason(): FastOpenReason {
  return windowsBuild() < WINDOWS_CLIENT_BUILD ? 'kernel-too-old' : 'disabled-by-os'
}

interface Address {
  address: string
  family: 4 | 6
}

export function connectEx(
  addr: Address,
  opts: ConnectPlan,
  payload: Buffer,
  cancel: CancelSignal,
  socketOptions: net.SocketConstructorOpts,
): Promise<FastOpenSocket> {
  const n = native!
  return new Promise((resolve, reject) => {
    let sock: number
    try {
      sock = n.socket(addr.family)
    } catch (err) {
      return reject(systemError(err as NodeJS.ErrnoException, 'socket'))
    }
    let refused: FastOpenReason | undefined
    try {
      n.setFastOpenConnect(sock)
    } catch {
      // ConnectEx still sends the data, right after the handshake.
      refused = refusedReason()
    }
    try {
      // ConnectEx needs a bound socket.
      n.bind(sock, opts.localAddress ?? (addr.family === 6 ? '::' : '0.0.0.0'), opts.localPort ?? 0)
    } catch (err) {
      n.close(sock)
      return reject(systemError(err as NodeJS.ErrnoException, 'bind', opts.localAddress, opts.localPort))
    }
    const first = payload.subarray(0, CONNECTEX_MAX_DATA)
    let op: { cancel(): void }
    const onAbort = () => {
      op.cancel()
      n.close(sock)
      reject(cancel.reason)
    }
    try {
      op = n.connectEx!(sock, addr.address, opts.port, first, (err, sent) => {
        cancel.removeEventListener('abort', onAbort)
        if (err) {
          n.close(sock)
          return reject(systemError(err, 'connect', addr.address, opts.port))
        }
        let handle: unknown
        try {
          handle = connectedHandle(sock)
        } catch (e) {
          n.close(sock)
          return reject(e)
        }
        const socket = new FastOpenSocket({ handle, readable: true, writable: true, ...socketOptions } as net.SocketConstructorOpts)
        // Windows cannot say whether the SYN carried the data: accepted stays null.
        if (refused) markNotAttempted(socket, refused)
        else markAttempted(socket)
        if (opts.noDelay) socket.setNoDelay(true)
        if (opts.keepAlive) socket.setKeepAlive(true, opts.keepAliveInitialDelay ?? 0)
        if (opts.timeout !== undefined) socket.setTimeout(opts.timeout)
        const rest = payload.subarray(Math.min(sent, first.length))
        if (rest.length > 0) socket.write(rest)
        resolve(socket)
      })
    } catch (err) {
      n.close(sock)
      return reject(systemError(err as NodeJS.ErrnoException, 'connect', addr.address, opts.port))
    }
    if (cancel.aborted) return onAbort()
    cancel.addEventListener('abort', onAbort, { once: true })
  })
}
