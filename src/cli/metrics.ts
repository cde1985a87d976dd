/**
 * `--metrics [host:]port`: Prometheus text format at `/metrics`, made with
 * prom-client (loaded only when the flag is given). Values are read from
 * the server's or client's `stats()` when scraped, and RTT samples from the
 * sessions' `'rtt'` events; nothing is counted on the data path for it.
 *
 * The endpoint is for a scraper on a trusted network: it has no
 * authentication. It cannot be used to wear the process down: at most
 * {@link MAX_CONNECTIONS} connections (more are closed at once), 5 s to
 * send a request's head, 100 requests per connection, at most
 * {@link MAX_PIPELINED} of them unanswered (a connection that pipelines
 * more is closed: its answers would pile up unread), no request body, and
 * the page is rendered at most every {@link RENDER_EVERY_MS} ms whatever
 * the request rate (a flood gets the cached text).
 * @internal
 * @packageDocumentation
 */
import http from 'node:http'
import type net from 'node:net'
import type { Session } from '../mux/session/session.js'
import type { TunnelServer } from '../tunnel/server.js'
import type { TunnelClient } from '../tunnel/client.js'
import type { HttpProxy } from '../proxy/client.js'
import type { Logger } from '../common/log.js'
import { listenError } from '../tunnel/errors.js'

/** Connections to the metrics endpoint at once; more are closed on accept. */
export const MAX_CONNECTIONS = 32
/** The metrics page is rendered at most this often; scrapes in between get the same text. */
export const RENDER_EVERY_MS = 250
/** Requests a connection may have unanswered (pipelined); past it the connection is closed. A scraper sends one at a time. */
export const MAX_PIPELINED = 4

/** What the metrics are read from. */
export interface MetricsSource {
  server?: TunnelServer
  client?: TunnelClient
  /** The client's HTTP proxy, when it runs one. */
  proxy?: () => HttpProxy | null
  version: string
}

/** A running metrics endpoint. */
export interface MetricsEndpoint {
  address(): net.AddressInfo
  close(): Promise<void>
}

type PromClient = typeof import('prom-client')

/** RTT buckets in seconds: 0.5 ms to 5 s. */
const RTT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/** One stats() per scrape: every collector of a scrape reads the same snapshot (taken again after 50 ms). */
function snapshot<T>(read: () => T): () => T {
  let snap: T | undefined
  let at = -Infinity
  return () => {
    const now = performance.now()
    if (snap === undefined || now - at > 50) {
      snap = read()
      at = now
    }
    return snap
  }
}

/** Builds the registry: every family is present from the start (labelled ones with their known labels at 0). */
export function buildRegistry(src: MetricsSource, prom: PromClient = require('prom-client') as PromClient): import('prom-client').Registry {
  const register = new prom.Registry()
  const { Counter, Gauge, Histogram } = prom
  const r = [register]
  const role = src.server ? 'server' : 'client'
  prom.collectDefaultMetrics({ register })

  new Gauge({ name: 'synmux_build_info', help: 'synmux version and role (always 1)', labelNames: ['version', 'role'], registers: r, aggregator: 'first' }).set({ version: src.version, role }, 1)

  // A counter whose value is read from stats() at scrape time.
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: r,
      collect() {
        this.reset()
        this.inc(read())
      },
    })
  }
  const labelledCounter = (name: string, help: string, label: string, known: string[], read: () => Record<string, number>): void => {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: r,
      collect() {
        this.reset()
        const v = read()
        for (const k of new Set([...known, ...Object.keys(v)])) this.inc({ [label]: k }, v[k] ?? 0)
      },
    })
  }
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: r,
      collect() {
        this.set(read())
      },
    })
  }
  const labelledGauge = (name: string, help: string, label: string, read: () => Record<string, number>): void => {
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: r,
      collect() {
        this.reset()
        for (const [k, v] of Object.entries(read())) this.set({ [label]: k }, v)
      },
    })
  }
  const rtt = new Histogram({ name: 'synmux_rtt_seconds', help: 'Session round-trip times (each PING answered, and the handshake)', buckets: RTT_BUCKETS, registers: r })
  const watched = new WeakSet<Session>()
  const watch = (s: Session): void => {
    if (watched.has(s)) return
    watched.add(s)
    s.on('rtt', (ms: number) => rtt.observe(ms / 1000))
  }
  const refuseReasons = ['not_allowed', 'unreachable', 'connection_refused', 'timeout', 'too_many_streams', 'too_many_pending', 'busy', 'refused']

  if (src.server) {
    const server = src.server
    server.on('session', watch)
    const st = snapshot(() => server.stats())
    labelledGauge('synmux_sessions', 'Sessions by state: established (a client attached), detached (waiting to be resumed), handshaking (connections that have not proved the key)', 'state', () => {
      const s = st()
      return { established: s.sessions - s.detached, detached: s.detached, handshaking: s.unauthenticated }
    })
    gauge('synmux_streams', 'Open streams, all sessions', () => st().streams)
    gauge('synmux_connects_in_progress', 'Onward connects in progress (resolving or connecting)', () => st().connectsInProgress)
    labelledCounter('synmux_bytes_total', 'Bytes relayed: up = from clients toward targets, down = back (open connections included)', 'direction', ['up', 'down'], () => ({ up: st().bytesUp, down: st().bytesDown }))
    counter('synmux_connects_total', 'Onward connects that succeeded', () => st().connects)
    labelledCounter('synmux_refusals_total', 'Streams refused, by reason (the REFUSED code)', 'reason', refuseReasons, () => st().refusedBy)
    labelledCounter('synmux_handshake_failures_total', 'Connections that failed before proving the key, by reason', 'reason', ['tls', 'protocol', 'auth', 'timeout', 'closed'], () => st().handshakeFailuresBy)
    counter('synmux_handshake_refusals_total', 'Connections closed unread (a source over its failure limit, or a cap on unauthenticated connections)', () => st().handshakeRefusals)
    counter('synmux_resumes_total', 'Sessions resumed on a new connection', () => st().resumes)
    gauge('synmux_lanes', 'Open lanes of striped sessions', () => st().lanes)
    counter('synmux_tfo_attempted_total', 'Onward connects whose first bytes were sent in a TCP Fast Open SYN', () => st().tfo.attempted)
    counter('synmux_tfo_accepted_total', 'Onward connects whose SYN data the target accepted', () => st().tfo.accepted)
    const http0 = { streams: 0, requests: 0, active: 0, refused: 0, retries: 0, upgrades: 0, originConnections: 0, reusedConnections: 0, headsInOpen: 0 }
    const h = () => st().http ?? http0
    counter('synmux_http_gateway_requests_total', 'HTTP gateway: requests received', () => h().requests)
    gauge('synmux_http_gateway_active_requests', 'HTTP gateway: requests in progress', () => h().active)
    counter('synmux_http_gateway_refused_total', 'HTTP gateway: requests refused or answered with an error by the gateway', () => h().refused)
    counter('synmux_http_gateway_origin_connections_total', 'HTTP gateway: pooled connections opened to origins', () => h().originConnections)
    counter('synmux_http_gateway_reused_connections_total', 'HTTP gateway: requests sent on a pooled connection that had served an earlier one', () => h().reusedConnections)
    counter('synmux_http_gateway_retries_total', 'HTTP gateway: idempotent requests retried on a fresh connection', () => h().retries)
    counter('synmux_http_gateway_upgrades_total', 'HTTP gateway: upgrades (WebSocket) relayed', () => h().upgrades)
  }

  if (src.client) {
    const client = src.client
    client.on('up', watch)
    const st = snapshot(() => client.stats())
    labelledGauge('synmux_sessions', 'Sessions to the server by state: up, connecting (with --pool, each member)', 'state', () => {
      const s = st()
      if (!s.pool) return { up: s.state === 'up' ? 1 : 0, connecting: s.state === 'connecting' ? 1 : 0 }
      const out: Record<string, number> = { up: 0, connecting: 0 }
      for (const m of s.pool.members) out[m.state] = (out[m.state] ?? 0) + 1
      return out
    })
    gauge('synmux_streams', 'Open streams, all sessions', () => st().streams)
    gauge('synmux_connections', 'Local connections being carried', () => client.connections)
    labelledCounter('synmux_bytes_total', 'Bytes relayed: up = from applications toward targets, down = back (open connections included)', 'direction', ['up', 'down'], () => ({ up: st().bytesUp, down: st().bytesDown }))
    counter('synmux_connects_total', 'Local connections carried (streams opened)', () => st().connects)
    labelledCounter('synmux_refusals_total', 'Local connections whose stream was refused, by reason', 'reason', refuseReasons, () => st().refusedBy)
    counter('synmux_resumes_total', 'Sessions resumed on a new connection', () => st().resumes)
    counter('synmux_reconnects_total', 'Sessions established after the first (a session that could not be resumed)', () => st().reconnects)
    gauge('synmux_lanes', 'Open lanes of the striped session (--lanes)', () => (st().lanes ?? []).filter((l) => l.state === 'open').length)
    counter('synmux_tfo_attempted_total', 'Connections to the server whose first bytes were sent in a TCP Fast Open SYN', () => st().tfo.attempted)
    counter('synmux_tfo_accepted_total', 'Connections to the server whose SYN data the server accepted', () => st().tfo.accepted)
    counter('synmux_socks_auth_failures_total', 'SOCKS5 clients refused for wrong credentials', () => st().socksAuthFailures)
    const p0 = { connections: 0, requests: 0, active: 0, tunnels: 0, upgrades: 0, refused: 0, authFailures: 0 }
    const p = () => src.proxy?.()?.stats() ?? p0
    counter('synmux_http_proxy_requests_total', 'HTTP proxy: requests received', () => p().requests)
    gauge('synmux_http_proxy_active_requests', 'HTTP proxy: requests in progress', () => p().active)
    gauge('synmux_http_proxy_connections', 'HTTP proxy: browser connections open', () => p().connections)
    counter('synmux_http_proxy_refused_total', 'HTTP proxy: requests whose stream the far side refused', () => p().refused)
    counter('synmux_http_proxy_auth_failures_total', 'HTTP proxy: requests answered 407', () => p().authFailures)
  }
  return register
}

/** Serves the registry at http://host:port/metrics. */
export async function startMetrics(at: { host: string; port: number }, src: MetricsSource, log: Logger): Promise<MetricsEndpoint> {
  const register = buildRegistry(src)
  return serveMetrics(at, { render: () => register.metrics(), contentType: register.contentType }, log)
}

/** Serves what `page.render()` makes at http://host:port/metrics (with the limits above). */
export async function serveMetrics(at: { host: string; port: number }, page: { render(): Promise<string>; contentType: string }, log: Logger): Promise<MetricsEndpoint> {
  const register = page
  let cached: { text: string; at: number } | null = null
  let rendering: Promise<string> | null = null
  const render = (): Promise<string> => {
    const now = performance.now()
    if (cached !== null && now - cached.at < RENDER_EVERY_MS) return Promise.resolve(cached.text)
    rendering ??= page.render().then(
      (text) => {
        cached = { text, at: performance.now() }
        rendering = null
        return text
      },
      (err: Error) => {
        rendering = null
        throw err
      },
    )
    return rendering
  }
  const unanswered = new WeakMap<object, number>()
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, connectionsCheckingInterval: 1_000, maxHeaderSize: 8192 }, (req, res) => {
    const socket = req.socket
    const n = (unanswered.get(socket) ?? 0) + 1
    if (n > MAX_PIPELINED) {
      socket.destroy()
      return
    }
    unanswered.set(socket, n)
    res.once('close', () => unanswered.set(socket, (unanswered.get(socket) ?? 1) - 1))
    const path = (req.url ?? '').split('?')[0]
    const bodyless = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !bodyless) {
      res.writeHead(405, { allow: 'GET, HEAD', connection: 'close' }).end()
      return
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('synmux: metrics are at /metrics\n')
      return
    }
    render().then(
      (text) => {
        res.writeHead(200, { 'content-type': register.contentType, 'content-length': Buffer.byteLength(text) })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      (err: Error) => {
        log.error(`metrics: ${err.message}`)
        res.writeHead(500).end()
      },
    )
  })
  server.maxConnections = MAX_CONNECTIONS
  server.maxRequestsPerSocket = 100
  server.keepAliveTimeout = 5_000
  server.on('clientError', (_err, socket) => socket.destroy())
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(listenError(err, at.host, at.port, 'metrics'))
    server.once('error', onError)
    server.listen(at.port, at.host, () => {
      server.off('error', onError)
      server.on('error', (err) => log.error(`metrics: ${err.message}`))
      resolve()
    })
  })
  const a = server.address() as net.AddressInfo
  log.info(`metrics on http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`)
  return {
    address: () => server.address() as net.AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
