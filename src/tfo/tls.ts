/**
 * TLS over a TCP Fast Open connection: the TLS socket reports what TFO did
 * for the TCP connection under it.
 * @packageDocumentation
 */
import type tls from 'node:tls'
import type { FastOpenSocket } from './socket.js'
import type { FastOpenReport } from './types.js'

/**
 * A `tls.TLSSocket` made by {@link FastOpenHttpsAgent} or
 * {@link fastOpenConnector} over a TCP Fast Open connection; `fastOpen`
 * reports that TCP connection (did the ClientHello ride in the SYN), as
 * {@link FastOpenSocket.fastOpen} does.
 */
export type FastOpenTLSSocket = tls.TLSSocket & { readonly fastOpen: FastOpenReport }

/** Gives `secure` a `fastOpen` getter that reports `raw`. @internal */
export function exposeFastOpen(secure: tls.TLSSocket, raw: FastOpenSocket): FastOpenTLSSocket {
  Object.defineProperty(secure, 'fastOpen', { configurable: true, enumerable: false, get: () => raw.fastOpen })
  return secure as FastOpenTLSSocket
}
