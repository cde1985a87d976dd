/**
 * The HTTP gateway as the tunnel server sees it: the reserved target name
 * that routes a stream to it (docs/PROTOCOL.md, "Tunnel conventions"), its
 * limits and counters (the `httpGateway` option and `stats().http` of
 * {@link TunnelServer}), and what serves its streams. The gateway itself
 * is the HTTP proxy's far half (src/proxy/gateway.ts, a layer above): it
 * is handed to the server (option `gateway`, or the default the package's
 * entry point sets), so the tunnel never imports the proxy.
 * @packageDocumentation
 */
import type { Logger } from '../common/log.js'
import type { MuxStream } from '../mux/stream/stream.js'
import type { DecodedTarget } from '../mux/wire/target.js'
import type { AllowedAddress } from '../net/onward.js'

export type { AllowedAddress } from '../net/onward.js'

/**
 * The reserved host name of the HTTP gateway (docs/PROTOCOL.md, "Tunnel
 * conventions"). `.invalid` never resolves (RFC 6761), so the name can
 * never collide with a real host.
 */
export const GATEWAY_HOST = 'gateway.synmux.invalid'
/** The port that goes with {@link GATEWAY_HOST} in an OPEN. */
export const GATEWAY_PORT = 80

/** Whether a stream's target names the HTTP gateway (the name decides; any port). */
export function isGatewayTarget(target: { host: string; port: number } | null | undefined): boolean {
  return !!target && target.host.toLowerCase().replace(/\.$/, '') === GATEWAY_HOST
}

/** Limits of an {@link HttpGateway} (what {@link TunnelServer}'s `httpGateway` option takes). */
export interface HttpGatewayLimits {
  /** Onward connections per origin (host:port), busy and idle. Default 32. */
  maxSocketsPerOrigin?: number
  /** Idle onward connections kept per origin. Default 32. */
  maxFreeSocketsPerOrigin?: number
  /** Onward connections in all. Default 512. */
  maxTotalSockets?: number
  /** An idle pooled onward connection is closed after this many ms (or earlier, as the origin's `Keep-Alive: timeout` says). Default 30,000. */
  idleSocketTimeout?: number
  /** Onward connect timeout in ms. Default 10,000. */
  connectTimeout?: number
  /** A stream's request head must arrive within this many ms. Default 30,000. */
  headersTimeout?: number
  /** A stream idle between requests is ended after this many ms. Default 60,000. */
  keepAliveTimeout?: number
  /** How long an allow-list decision (the resolved, allowed addresses of a host:port) is reused, ms. Default 1,000. */
  resolveCacheMs?: number
  /** Request bodies up to this size are kept so an idempotent request can be retried on a new connection. Default 65,536. */
  retryBodyLimit?: number
  /**
   * Requests in progress on one gateway stream (pipelining depth). At this
   * many the gateway stops reading the stream (flow control then stops the
   * client); a stream found with more than four times as many (they arrived
   * at once, before the stop) is reset. Default 16.
   */
  maxPipelinedRequests?: number
  /**
   * Requests in progress on the gateway streams of one session. At this
   * many the gateway stops reading all of them, and refuses new gateway
   * streams of that session with BUSY (the HTTP proxy answers 503). Default 128.
   */
  maxRequestsPerSession?: number
  /** The pseudonym in `Via`. Default `synmux`. */
  pseudonym?: string
  /**
   * Header fields a request head may have; a head with more (or with two
   * `Host` fields) is refused (or answered 431/400). Default 1,024: a
   * little above the HTTP proxy's 1,000, for the fields a proxy adds.
   */
  maxHeaderFields?: number
}

/** Options of an {@link HttpGateway}. */
export interface HttpGatewayOptions extends HttpGatewayLimits {
  /**
   * Resolves an origin and returns the addresses the allow list permits
   * (empty: not allowed; rejects: not resolvable). {@link TunnelServer}
   * passes its own allow-list check.
   */
  resolve: (target: DecodedTarget) => Promise<AllowedAddress[]>
  logger?: Logger
}

/** Counters of an {@link HttpGateway}. */
export interface HttpGatewayStats {
  /** Gateway streams handled. */
  streams: number
  /** Of those, streams whose OPEN already carried request bytes (the request head: one round trip). */
  headsInOpen: number
  /** Requests received (upgrades included). */
  requests: number
  /** Requests in progress. */
  active: number
  /** Requests refused (stream refused, or answered 4xx/5xx by the gateway). */
  refused: number
  /** Idempotent requests retried because a pooled connection was closed before the origin answered. */
  retries: number
  /** Upgrades (WebSocket) relayed. */
  upgrades: number
  /** Onward connections opened (each then serves many requests). */
  originConnections: number
  /** Requests sent on a pooled connection that had served an earlier request. */
  reusedConnections: number
}

/** What serves the gateway's streams for a {@link TunnelServer} (an `HttpGateway`). @internal */
export interface StreamGateway {
  /** Serves one stream whose target names the gateway. */
  handle(stream: MuxStream): void
  /** Counters, for the server's `stats().http`. */
  stats(): HttpGatewayStats
  /** Frees what it holds (pooled onward connections); later streams are refused. */
  close(): Promise<void>
}

/** Makes the {@link StreamGateway} of a server. @internal */
export type GatewayFactory = (options: HttpGatewayOptions) => StreamGateway

let defaultGateway: GatewayFactory | null = null

/**
 * Sets the gateway a {@link TunnelServer} runs when its options name none
 * (the package's entry point sets synmux's `HttpGateway`). @internal
 */
export function setDefaultGateway(factory: GatewayFactory): void {
  defaultGateway = factory
}

/** The gateway a server runs when its options name none, if one was set. @internal */
export function getDefaultGateway(): GatewayFactory | null {
  return defaultGateway
}
