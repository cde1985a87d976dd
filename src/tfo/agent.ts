/**
 * `FastOpenAgent` and `FastOpenHttpsAgent`: Node's own `http.Agent` /
 * `https.Agent` (pooling, keep-alive, `maxSockets`, TLS session reuse),
 * with every new connection opened by {@link createConnection}, so the
 * request (http) or the ClientHello (https) rides in the SYN.
 * @packageDocumentation
 */
import http from 'node:http'
import https from 'node:https'
import type { Duplex } from 'node:stream'
import type tls from 'node:tls'
import { createConnection } from './connect.js'
import type { FastOpenSocket } from './socket.js'
import { exposeFastOpen, type FastOpenTLSSocket } from './tls.js'
import type { FastOpenConnectOptions } from './types.js'

/** Options of {@link FastOpenAgent}: `http.AgentOptions` plus `fastOpen`. */
export interface FastOpenAgentOptions extends http.AgentOptions {
  /** `false` opens plain connections (`fastOpen.reason === 'opted-out'`); default `true`. Also per request. */
  fastOpen?: boolean
}

/** Options of {@link FastOpenHttpsAgent}: `https.AgentOptions` plus `fastOpen`. */
export interface FastOpenHttpsAgentOptions extends https.AgentOptions {
  /** `false` opens plain connections (`fastOpen.reason === 'opted-out'`); default `true`. Also per request. */
  fastOpen?: boolean
}

/** What an agent passes to `createConnection`: the request's options merged with the agent's. */
type AgentConnectArgs = http.ClientRequestArgs & {
  fastOpen?: boolean
  noDelay?: boolean
  keepAlive?: boolean
  keepAliveInitialDelay?: number
}

/** The callback Node's agents pass to `createConnection`. */
type AgentCallback = (err: Error | null, stream: Duplex) => void

/** Integer milliseconds for a number `http` accepted (it allows fractions; `net` truncates them too). */
const ms = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.trunc(v) : undefined)

/**
 * Picks the TCP options out of an agent's connection options (the rest is
 * HTTP or TLS). `socketPath` becomes `path`, which `createConnection`
 * rejects: TCP Fast Open has no Unix domain sockets.
 */
function tcpOptions(o: AgentConnectArgs): FastOpenConnectOptions {
  const tcp: Record<string, unknown> = { host: o.host || 'localhost', port: o.port }
  if (typeof o.socketPath === 'string') tcp.path = o.socketPath
  if (o.family !== undefined) tcp.family = o.family
  if (o.localAddress !== undefined) tcp.localAddress = o.localAddress
  if (o.localPort !== undefined) tcp.localPort = o.localPort
  if (o.lookup !== undefined) tcp.lookup = o.lookup
  if (ms(o.timeout) !== undefined) tcp.timeout = ms(o.timeout)
  if (o.noDelay !== undefined) tcp.noDelay = o.noDelay
  if (o.keepAlive !== undefined) tcp.keepAlive = o.keepAlive
  if (ms(o.keepAliveInitialDelay) !== undefined) tcp.keepAliveInitialDelay = ms(o.keepAliveInitialDelay)
  if (o.fastOpen !== undefined) tcp.fastOpen = o.fastOpen
  return tcp as unknown as FastOpenConnectOptions
}

/** Calls `create`; an invalid option goes to the agent's callback (the request's `'error'`), or is thrown without one. */
function guarded<T>(callback: AgentCallback | undefined, create: () => T): T | undefined {
  try {
    return create()
  } catch (err) {
    if (typeof callback !== 'function') throw err
    callback(err as Error, undefined as unknown as Duplex)
    return undefined
  }
}

/**
 * An `http.Agent` whose connections are opened with TCP Fast Open: each
 * new connection's first request rides in its SYN (from the second
 * connection to a server on; the first fetches the TFO cookie). Everything
 * else is Node's `http.Agent`: keep-alive, `maxSockets`, `timeout`, the
 * `'free'` pool. `req.socket` is a {@link FastOpenSocket}.
 *
 * Like {@link createConnection} it connects to one address of the host
 * (Node's `autoSelectFamily` would replace the TFO socket): pass `family`
 * or an IP literal to choose.
 *
 * @example
 * ```js
 * const http = require('node:http')
 * const { FastOpenAgent } = require('synmux')
 * const agent = new FastOpenAgent({ keepAlive: true })
 * http.get('http://127.0.0.1:8080/', { agent }, (res) => console.log(res.socket.fastOpen))
 * ```
 */
export class FastOpenAgent extends http.Agent {
  constructor(options?: FastOpenAgentOptions) {
    super(options)
  }

  /** Opens a connection for the agent with {@link createConnection} (Node's agent calls it; see `agent.createConnection()`). */
  override createConnection(options: AgentConnectArgs, callback?: AgentCallback): FastOpenSocket | undefined {
    return guarded(callback, () => createConnection(tcpOptions(options)))
  }
}

/**
 * An `https.Agent` whose connections are opened with TCP Fast Open: the
 * TLS ClientHello rides in the SYN (`tls.connect({ socket })` over
 * {@link createConnection}). Everything else is Node's `https.Agent`:
 * keep-alive, TLS options, session resumption, `servername`/SNI, ALPN.
 * `req.socket` is a {@link FastOpenTLSSocket}, whose `fastOpen` reports
 * the TCP connection under it.
 *
 * @example
 * ```js
 * const https = require('node:https')
 * const fs = require('node:fs')
 * const { FastOpenHttpsAgent } = require('synmux')
 * const agent = new FastOpenHttpsAgent({ keepAlive: true, ca: fs.readFileSync('cert.pem') })
 * https.get('https://localhost:8443/', { agent }, (res) => console.log(res.socket.fastOpen))
 * ```
 */
export class FastOpenHttpsAgent extends https.Agent {
  constructor(options?: FastOpenHttpsAgentOptions) {
    super(options)
  }

  /** Opens a TCP Fast Open connection and TLS over it, through Node's `https.Agent` (which calls it). */
  override createConnection(options: AgentConnectArgs & https.RequestOptions, callback?: AgentCallback): FastOpenTLSSocket | undefined {
    return guarded(callback, () => {
      const raw = createConnection(tcpOptions(options))
      try {
        // Node's own https createConnection: session cache, then tls.connect(options) on our socket
        const secure = super.createConnection({ ...options, socket: raw } as https.RequestOptions) as tls.TLSSocket
        return exposeFastOpen(secure, raw)
      } catch (err) {
        raw.destroy() // e.g. invalid TLS options: the connection has no owner
        throw err
      }
    })
  }
}
