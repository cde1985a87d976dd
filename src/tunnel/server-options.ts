/**
 * The options and counters of a {@link TunnelServer}.
 * @packageDocumentation
 */
import type dns from 'node:dns'
import type { Logger } from '../common/log.js'
import type { SessionOptions } from '../mux/session/options.js'
import type { AllowList } from './allow.js'
import type { GatewayFactory, HttpGatewayLimits, HttpGatewayStats } from './gateway.js'
import type { FailureLimiterOptions } from './ratelimit.js'
import type { TunnelServerSecureOptions } from './security.js'
import type { ServerRouting } from './routing.js'

/** Options of {@link TunnelServer}. */
export interface TunnelServerOptions {
  /**
   * The secure channel (PROTOCOL.md 20): the server's private key and the
   * client keys it accepts. Every session is encrypted and authenticated;
   * a client's first request rides in the handshake's first flight. The
   * default: give this, or one of the two alternatives below.
   */
  secure?: TunnelServerSecureOptions
  /**
   * Pre-shared key (at least 32 bytes, {@link readKeyFile}), for `tls` or
   * `insecurePlaintext`: clients prove it with PROTOCOL.md 16.
   */
  key?: Buffer
  /** Serve sessions over TLS with this certificate and key (clients authenticate with `key`). */
  tls?: { cert: string | Buffer; key: string | Buffer }
  /**
   * Serve sessions in clear text, authenticated only by `key`
   * (PROTOCOL.md 16): anyone on the path reads everything and can inject
   * frames. For benchmarks; never on a network you do not control.
   */
  insecurePlaintext?: boolean
  /** Targets clients may reach: an {@link AllowList} or its entries. Default deny. */
  allow: AllowList | string | readonly string[]
  /**
   * Session limits (role and auth are set by the server). `maxStreams`,
   * the streams a client may keep open at once in one session, defaults to
   * {@link TUNNEL_MAX_STREAMS} (16,384) here; an OPEN past it is refused
   * (`REFUSED(TOO_MANY_STREAMS)`) and logged.
   */
  session?: Omit<SessionOptions, 'role'>
  /**
   * Onward connects in progress per session (resolving and connecting; a
   * stream holds no slot once its connect has completed or failed); more
   * wait, unanswered, for a slot. Default 64.
   */
  maxConnectsPerSession?: number
  /** Onward connect timeout in ms. Default 10,000. */
  connectTimeout?: number
  /** After the onward connect, how long to wait for the target's first bytes to send them in OPENED. Default 10 ms. */
  firstResponseWait?: number
  /** Per-source limit on failed handshakes (every failure before the key is proved counts; see README). */
  handshakeLimit?: FailureLimiterOptions
  /** Connections that have not proved the key yet, at once, in all; more are closed unread. Default 1,024. */
  maxUnauthenticated?: number
  /** The same, per source. Default 64. */
  maxUnauthenticatedPerSource?: number
  /**
   * What the per-source limits (failed handshakes, unauthenticated
   * connections) count as one source: an IPv4 address, and an IPv6
   * address's network of this many bits (1-128; 128: each address).
   * Default 64: an IPv6 host usually holds a whole /64 and could take a new
   * address in it for every connection.
   */
  ipv6SourcePrefix?: number
  /** Resolver (default `dns.lookup`). */
  lookup?: typeof dns.lookup
  /**
   * The HTTP gateway (the far half of `synmux client --http-proxy`): streams
   * whose target is the reserved name `gateway.synmux.invalid` carry HTTP
   * requests, forwarded to allowed origins over pooled keep-alive
   * connections. `false` refuses such streams. Default on, with these limits.
   */
  httpGateway?: boolean | HttpGatewayLimits
  /**
   * What serves the HTTP gateway's streams (the CLI and the package's
   * entry point hand in synmux's `HttpGateway`).
   * @internal
   */
  gateway?: GatewayFactory
  /**
   * Sessions shared with other processes or servers (`synmux server
   * --workers`, `--instance-id`; `src/tunnel/cluster/`): session ids,
   * where RESUMEs and JOINs go, the shared replay guard. Default: every
   * session here.
   */
  routing?: ServerRouting
  logger?: Logger
}

/**
 * Default streams per session of a tunnel server (the session's
 * `maxStreams`, announced in its HELLO): enough for 10,000 concurrent
 * connections through one `synmux client` with defaults.
 */
export const TUNNEL_MAX_STREAMS = 16_384

/** One authorized client of a {@link TunnelServer} with sessions (secure channel). */
export interface TunnelClientInfo {
  /** Its name in the authorized keys. */
  name: string
  /** Its public key (base64). */
  key: string
  sessions: number
  streams: number
  bytesUp: number
  bytesDown: number
}

/** Live counters of a {@link TunnelServer}. */
export interface TunnelServerStats {
  /** Sessions (established, and resumable ones waiting for their client). */
  sessions: number
  /** Of those, resumable sessions whose client's connection is lost, waiting to be resumed. */
  detached: number
  streams: number
  connectsInProgress: number
  /** Onward connects that succeeded (relayed streams). */
  connects: number
  /**
   * Of those, connects whose first bytes went in a TCP Fast Open SYN
   * (`attempted`: the stream's OPEN carried bytes and TFO was asked of the
   * OS) and whose SYN data the target accepted (`accepted`).
   */
  tfo: { attempted: number; accepted: number }
  /** Opens refused (by the allow list, a failed connect or a limit). */
  refused: number
  /** The same by reason: the REFUSED code's name (`not_allowed`, `unreachable`, `connection_refused`, `timeout`, `too_many_streams`, ...). */
  refusedBy: Record<string, number>
  /** Sessions resumed on a new connection. */
  resumes: number
  /** Open lanes of striped sessions (PROTOCOL.md 14). */
  lanes: number
  handshakeFailures: number
  /** The same by reason: `tls`, `protocol` (not synmux), `auth` (a wrong key), `timeout` (no HELLO or AUTH in time), `closed` (closed before proving the key). */
  handshakeFailuresBy: Record<string, number>
  /** Connections that have not proved the key yet. */
  unauthenticated: number
  /** Connections closed unread (a source over its failure limit, or a cap on unauthenticated connections). */
  handshakeRefusals: number
  /** Bytes relayed from clients to targets (connections still open included), and back. */
  bytesUp: number
  bytesDown: number
  /** The HTTP gateway's counters (absent when it is off). */
  http?: HttpGatewayStats
  /** Secure channel: per client key with a session, its name and counters. */
  clients?: TunnelClientInfo[]
}
