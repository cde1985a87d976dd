/**
 * Small pieces the tunnel and the HTTP proxy share: waiting briefly for a
 * local connection's first bytes (they ride in the OPEN), and mapping an
 * onward connect error to a REFUSED code (PROTOCOL.md 11.2).
 * @packageDocumentation
 */
import type net from 'node:net'
import { RefuseCode } from '../mux/wire/constants.js'

/**
 * Resolves with what `socket` has sent within `waitMs` ms (resolving early
 * at its first bytes, its end or its close); an empty Buffer if nothing.
 */
export function readFirstBytes(socket: net.Socket, waitMs: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      socket.off('readable', done)
      socket.off('end', done)
      socket.off('close', done)
      const chunks: Buffer[] = []
      for (let c: Buffer | null; (c = socket.read()) !== null; ) chunks.push(c)
      resolve(Buffer.concat(chunks))
    }
    const timer = setTimeout(done, waitMs)
    socket.once('readable', done)
    socket.once('end', done)
    socket.once('close', done)
  })
}

/** Maps an onward connect error to a REFUSED code. */
export function refuseCodeFor(err: NodeJS.ErrnoException): number {
  switch (err.code) {
    case 'ECONNREFUSED':
      return RefuseCode.CONNECTION_REFUSED
    case 'ETIMEDOUT':
      return RefuseCode.TIMEOUT
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
    case 'EADDRNOTAVAIL':
      return RefuseCode.UNREACHABLE
    default:
      return RefuseCode.REFUSED
  }
}
