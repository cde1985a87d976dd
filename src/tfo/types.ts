/**
 * Public types of the TCP Fast Open API.
 * @packageDocumentation
 */
import type { LookupFunction } from 'node:net'

/**
 * Why data did not ride in the SYN (or why TFO was not tried):
 * - `no-cookie`: first connection to this server; the SYN asked for a cookie and the data followed the handshake.
 * - `not-acked`: the server did not accept the SYN's data (TFO off on the server?); it was sent again after the handshake.
 * - `syn-retransmitted`: the SYN with data was lost and retransmitted without data.
 * - `no-data`: there was nothing to send in the SYN.
 * - `disabled-by-os`: the OS has client TFO switched off (Linux `net.ipv4.tcp_fastopen` bit 1, macOS `net.inet.tcp.fastopen` bit 2 or its TFO heuristics backing off, Windows refused `TCP_FASTOPEN`; on Windows the data is still sent right after the handshake).
 * - `kernel-too-old`: the kernel lacks the needed socket option.
 * - `addon-unavailable`: the native addon did not load; plain `net` was used.
 * - `handle-unavailable`: this Node version does not let synmux hand a socket to `net`.
 * - `opted-out`: `fastOpen: false` was passed.
 * - `unsupported-platform`: this OS has no client TFO that synmux supports (also Windows `createConnection`: Windows puts data in the SYN only through `ConnectEx`, which needs the data when the connect starts; use `connectWithData`).
 * - `unknown`: the OS reported no data in the SYN and gave no reason.
 */
export type FastOpenReason =
  | 'no-cookie'
  | 'not-acked'
  | 'syn-retransmitted'
  | 'no-data'
  | 'disabled-by-os'
  | 'kernel-too-old'
  | 'addon-unavailable'
  | 'handle-unavailable'
  | 'opted-out'
  | 'unsupported-platform'
  | 'unknown'

/** What happened to a connection's first bytes. */
export interface FastOpenReport {
  /** TFO was requested from the OS for this connection. */
  readonly attempted: boolean
  /**
   * The SYN carried data and the peer acknowledged it: `true`/`false` once
   * the OS knows, `null` while the handshake is in progress or where the OS
   * cannot tell (Windows).
   */
  readonly accepted: boolean | null
  /** Set when `accepted` is not `true`. */
  readonly reason?: FastOpenReason
}

/** Options of {@link connectWithData} and {@link createConnection}: those of `net.connect` for TCP, plus TFO controls. */
export interface FastOpenConnectOptions {
  /** Host name or IP literal. Default `'localhost'`. */
  host?: string
  /** Port, 1–65535: a number or a decimal string (`'8080'`), as `net` accepts. */
  port: number | string
  /** Address family to resolve `host` to: 0 (any), 4 or 6. */
  family?: 0 | 4 | 6
  /** Local address to bind before connecting. */
  localAddress?: string
  /** Local port to bind before connecting. */
  localPort?: number
  /**
   * Milliseconds. As in `net`, sets the socket's idle timeout; for
   * {@link connectWithData} it is also the connect deadline (rejects with
   * `ETIMEDOUT`).
   */
  timeout?: number
  /** Disable Nagle's algorithm (`setNoDelay(true)`). */
  noDelay?: boolean
  /** Enable TCP keep-alive. */
  keepAlive?: boolean
  /** Initial keep-alive delay in milliseconds. */
  keepAliveInitialDelay?: number
  /** Abort the connect (and destroy the socket). */
  signal?: AbortSignal
  /** `false` opts out of TFO (plain `net`); default `true`. */
  fastOpen?: boolean
  /** Custom resolver with the signature of `dns.lookup`. */
  lookup?: LookupFunction
  /** As in `net`: keep the writable side open after the peer ends. */
  allowHalfOpen?: boolean
}

/** What {@link fastOpenSupport} reports about this machine. */
export interface FastOpenSupport {
  /** `process.platform`. */
  platform: NodeJS.Platform
  /** The native addon loaded. */
  addon: boolean
  /** Client TFO is available now (addon loaded and the OS allows it). */
  client: boolean
  /** Server TFO is available now. */
  server: boolean
  /** Why not, when `client` is false. */
  reason?: FastOpenReason
  /** Human-readable detail: the OS setting seen and how to change it. */
  detail: string
  /** Raw OS setting where there is one (Linux `net.ipv4.tcp_fastopen`). */
  setting?: number
}

/** What {@link fastOpenInfo} reports about one connected or accepted socket. */
export interface FastOpenInfo {
  /** The SYN carried data that was accepted; `null` when the OS cannot tell or the socket is gone. */
  synData: boolean | null
  /** An accepted (server-side) socket created by a TFO SYN. */
  fastOpenChild: boolean | null
  /** The connect is still in progress. */
  connecting: boolean
  /** Why not, for a client socket without SYN data (Linux >= 5.5). */
  reason?: FastOpenReason
}

/** Options of {@link createServer}: those of `net.createServer` plus the TFO queue. */
export interface FastOpenServerOptions {
  /** Pending TFO queue length (Linux), or `false` to disable TFO. Default 256. */
  fastOpen?: number | false
  allowHalfOpen?: boolean
  pauseOnConnect?: boolean
  noDelay?: boolean
  keepAlive?: boolean
  keepAliveInitialDelay?: number
}

/** TFO state of a server's listener. */
export interface FastOpenServerState {
  /** TFO was set on the listening socket. */
  readonly enabled: boolean
  /** The queue length requested. */
  readonly queue: number
  /** Why not, when not enabled; or a warning (server bit of the OS setting off). */
  readonly reason?: string
}
