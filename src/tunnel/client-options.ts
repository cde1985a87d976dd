/**
 * The options and counters of a {@link TunnelClient}.
 * @packageDocumentation
 */
import type net from 'node:net'
import type { Logger } from '../common/log.js'
import type { LaneInfo } from '../mux/lanes/lane.js'
import type { SessionOptions } from '../mux/session/options.js'
import type { TunnelClientSecureOptions } from './security.js'
import type { PoolStats } from './pool.js'

/** TLS settings of a {@link TunnelClient}. */
export interface TunnelClientTls {
  /** CA certificate(s) that sign the server's certificate. */
  ca?: string | Buffer
  /** Or: the server certificate's SHA-256 fingerprint (hex, colons allowed), pinned. */
  fingerprint?: string
  /** Server name for SNI and the certificate check. Default: the server host. */
  servername?: string
}

/** Options of {@link TunnelClient}. */
export interface TunnelClientOptions {
  /** The tunnel server. */
  server: { host: string; port: number }
  /**
   * The secure channel (PROTOCOL.md 20): this client's private key and the
   * server's public key. Every session is encrypted and authenticated; the
   * first request of a new session rides in the handshake's first flight.
   * The default: give this, or one of the two alternatives below.
   */
  secure?: TunnelClientSecureOptions
  /** Pre-shared key (at least 32 bytes), for `tls` or `insecurePlaintext` (PROTOCOL.md 16). */
  key?: Buffer
  /** Run the session over TLS (authenticated with `key`). */
  tls?: TunnelClientTls
  /** Run the session in clear text, authenticated only by `key`: for benchmarks, against a server that does the same. */
  insecurePlaintext?: boolean
  /**
   * Connect only when the first local connection needs a session (or
   * `open()` is called), instead of at `start()`: that connection's first
   * bytes then ride in the session's first flight (with the secure channel
   * and a warm TFO cookie: in the SYN), so it still takes one round trip.
   * Default false.
   */
  onDemand?: boolean
  /** Session limits (role and auth are set by the client). */
  session?: Omit<SessionOptions, 'role'>
  /** Reconnect backoff in ms: starts at `min`, doubles up to `max`. Default 100 / 10,000. */
  reconnect?: { min?: number; max?: number }
  /** How long to wait for an application's first bytes before opening its stream. Default 5 ms. */
  firstBytesWait?: number
  /**
   * How long a new local connection waits for a session (or, with every
   * session at its stream limit's pace, for room) before it is closed, and
   * logged. Default 10,000 ms.
   */
  sessionWait?: number
  /**
   * Opens sent on one session and not answered yet; more wait (in order)
   * until an answer comes back. The server keeps an unanswered open pending
   * while it connects onward and refuses opens past its own pending limit
   * (256 per session by default), so a burst of thousands of connections
   * is paced instead of refused. Default 128.
   */
  maxOpening?: number
  /**
   * Give up after this many handshakes in a row failed authentication: the
   * client closes and emits `'error'` with `code` `SYNMUX_AUTH_FAILED`.
   * With a pre-shared key, a failure is the server's proof not matching
   * this key. With the secure channel, a failure is a server that answers
   * the first flight with nothing (it closes, or stays silent until the
   * handshake timeout: `secure.serverKey` is not its key, or it does not
   * authorize this client's key) before any session was up; once a session
   * has been up, such failures are retried with backoff. 0: keep trying.
   * Default 3 (pre-shared key), 1 (secure channel: each attempt costs a
   * handshake timeout).
   */
  maxAuthFailures?: number
  /**
   * Run a {@link SessionPool} of this many sessions, each on its own
   * connection (new streams go to the best one). Default: one session.
   * Sessions are resumable either way: a lost connection is reconnected
   * and the session resumed without failing its streams.
   */
  pool?: number
  /**
   * Stripe each session over this many connections ("lanes", PROTOCOL.md
   * 14), each opened like the first (TFO, TLS, authenticated): frames go to
   * the lane that will deliver them first and are put back in order on the
   * far side, so per-connection rate caps add up. Default 1.
   */
  lanes?: number
  logger?: Logger
}

/** Live counters of a {@link TunnelClient}. */
export interface TunnelClientStats {
  /** `'connecting'`, `'up'` or `'closed'`. */
  state: 'connecting' | 'up' | 'closed'
  streams: number
  /** Bytes from applications to targets, and back. */
  bytesUp: number
  bytesDown: number
  /** Smoothed RTT of the session in ms. */
  rtt: number
  /** Sessions established after the first. */
  reconnects: number
  /** Times a session moved to a new connection without losing its streams. */
  resumes: number
  /** Local connections whose stream was refused (by the server, or no room for it). */
  refused: number
  /** The same by reason: the REFUSED code's name (`not_allowed`, `unreachable`, `connection_refused`, `timeout`, ...), or `too_many_streams`. */
  refusedBy: Record<string, number>
  /** Local connections carried (streams opened). */
  connects: number
  /** Connections to the server (sessions, resumes, lanes) that sent their first bytes in a TFO SYN (`attempted`), and whose SYN data the server accepted (`accepted`). */
  tfo: { attempted: number; accepted: number }
  /** SOCKS5 clients refused for wrong credentials (`socks({ auth })`). */
  socksAuthFailures: number
  /** With `pool`: every pool member's state. */
  pool?: PoolStats
  /** With `lanes`: the session's lanes (PROTOCOL.md 14). */
  lanes?: LaneInfo[]
}

/** A forward or SOCKS listener of a {@link TunnelClient}. */
export interface LocalListener {
  server: net.Server
  address(): net.AddressInfo
}
