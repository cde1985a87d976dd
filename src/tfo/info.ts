/**
 * `fastOpenInfo()`: did this connection's SYN carry data?
 * @packageDocumentation
 */
import net from 'node:net'
import { invalidArgType } from './errors.js'
import { fdOf } from './handle.js'
import { native } from './native.js'
import { clientFailReason } from './socket.js'
import type { FastOpenInfo } from './types.js'

/**
 * Reports whether a connected or accepted socket's SYN carried data that
 * the other side accepted (Linux `TCP_INFO`: `TCPI_OPT_SYN_DATA`, on both
 * ends). Works on any `net.Socket`, including the sockets a server accepts.
 * `synData` is `null` where the OS cannot tell or the socket has closed.
 *
 * @example
 * ```js
 * server.on('connection', (socket) => console.log(fastOpenInfo(socket).synData))
 * ```
 */
export function fastOpenInfo(socket: net.Socket): FastOpenInfo {
  if (!(socket instanceof net.Socket)) throw invalidArgType('socket', 'an instance of net.Socket', socket)
  const fd = fdOf(socket)
  if (!native || fd < 0) return { synData: null, fastOpenChild: null, connecting: socket.connecting }
  try {
    const info = native.tcpInfo(fd)
    const out: FastOpenInfo = {
      synData: info.connecting ? null : info.synData,
      fastOpenChild: info.tfoChild,
      connecting: info.connecting,
    }
    if (!info.connecting && !info.synData && !info.tfoChild && info.clientFail !== undefined && info.clientFail !== 0) {
      out.reason = clientFailReason(info)
    }
    return out
  } catch {
    return { synData: null, fastOpenChild: null, connecting: socket.connecting }
  }
}
