/**
 * The tunnel client's connections to its server: TCP Fast Open, then the
 * secure channel (PROTOCOL.md 20; or TLS, or nothing in clear-text mode);
 * and what a failed secure handshake says about the keys.
 * @packageDocumentation
 */
import crypto from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import type { MuxError } from '../mux/errors.js'
import type { SecureChannel } from '../secure/channel.js'
import { derivePublicKey } from '../secure/keys.js'
import { secure } from '../secure/secure.js'
import { createConnection } from '../tfo/connect.js'
import type { Logger } from '../common/log.js'
import { TUNNEL_RECORD_SIZE, type Security, type TunnelClientSecureOptions } from './security.js'

/** What the connections need of the client's options. @internal */
export interface TransportOptions {
  server: { host: string; port: number }
  tls?: { ca?: string | Buffer; fingerprint?: string; servername?: string }
  session?: { handshakeTimeout?: number }
}

/** A server that held the connection this long (ms) and closed it without a byte refused the handshake (see `refusal`). */
const REFUSAL_HOLD_MS = 1000

function pinCheck(fingerprint: string): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  const want = fingerprint.replace(/:/g, '').toLowerCase()
  return (_host, cert) => {
    const got = crypto.createHash('sha256').update(cert.raw).digest('hex')
    return crypto.timingSafeEqual(Buffer.from(got), Buffer.from(want.padEnd(64, '0').slice(0, 64))) && want.length === 64
      ? undefined
      : new Error(`server certificate fingerprint ${got} does not match the pinned one`)
  }
}

/** Makes the client's connections to its server. @internal */
export class ClientTransports {
  /** Secure channel: what was seen of a failed channel's connection, by the error it failed with. */
  readonly #ends = new WeakMap<Error, { heldMs: number; bytesRead: number }>()

  readonly #opts: TransportOptions
  readonly #security: Security<TunnelClientSecureOptions>
  readonly #log: Logger

  constructor(opts: TransportOptions, security: Security<TunnelClientSecureOptions>, log: Logger) {
    this.#opts = opts
    this.#security = security
    this.#log = log
  }

  /** A new connection to the server: TFO, then the secure channel (or TLS) if configured. */
  make(to?: { host: string; port: number }): { raw: ReturnType<typeof createConnection>; transport: net.Socket | SecureChannel } {
    // `to`: where a REDIRECT said the session lives (PROTOCOL.md 13.10); the TLS server name stays the configured one.
    const { host, port } = to ?? this.#opts.server
    // TFO for the session's own connection: the handshake's first message
    // (the secure channel's message 1, the TLS ClientHello, or the HELLO)
    // is the first write, so it rides in the SYN.
    const raw = createConnection({ host, port, noDelay: true, allowHalfOpen: true })
    const sec = this.#security.secure
    if (sec !== null) {
      let connectedAt = -1
      raw.once('connect', () => (connectedAt = performance.now()))
      const ch = secure(raw, {
        role: 'client',
        staticKey: sec.staticKey,
        serverKey: sec.serverKey,
        maxRecordSize: sec.maxRecordSize ?? TUNNEL_RECORD_SIZE,
        handshakeTimeout: this.#opts.session?.handshakeTimeout ?? 10_000,
        ...(sec.psk !== undefined ? { psk: sec.psk } : {}),
        ...(sec.maxEarlyData !== undefined ? { maxEarlyData: sec.maxEarlyData } : {}),
        ...(sec.rekeyInterval !== undefined ? { rekeyInterval: sec.rekeyInterval } : {}),
        ...(sec.clock !== undefined ? { clock: sec.clock } : {}),
      })
      ch.on('error', (err) => {
        if (!ch.secured) this.#ends.set(err, { heldMs: connectedAt < 0 ? -1 : performance.now() - connectedAt, bytesRead: raw.bytesRead })
        this.#log.debug(`secure channel: ${err.message}`)
      })
      return { raw, transport: ch }
    }
    let transport: net.Socket = raw
    const t = this.#opts.tls
    if (t) {
      transport = tls.connect({
        socket: raw,
        servername: t.servername ?? (net.isIP(this.#opts.server.host) ? undefined : this.#opts.server.host),
        ...(t.fingerprint ? { rejectUnauthorized: false } : { ca: t.ca }),
      } as tls.ConnectionOptions)
      if (t.fingerprint) {
        const check = pinCheck(t.fingerprint)
        ;(transport as tls.TLSSocket).once('secureConnect', () => {
          const err = check(host, (transport as tls.TLSSocket).getPeerCertificate())
          if (err) transport.destroy(err)
        })
      }
    }
    transport.on('error', (err) => this.#log.debug(`transport: ${err.message}`))
    return { raw, transport }
  }

  /**
   * Secure channel: whether a session attempt failed because the server
   * held the connection and answered its first flight with nothing — it
   * stayed silent until the handshake timeout, or closed the connection
   * after holding it for a second or more — which is all a synmux server
   * says to a key it does not accept (PROTOCOL.md 20.9: it drains until
   * its handshake timeout). A connection closed sooner without a byte is
   * not taken for a refusal: that is what a server's limits on
   * unauthenticated connections and failed handshakes do (closed unread),
   * and what a restart looks like; those are retried. Returns the line to
   * log, or `null`.
   */
  refusal(err: MuxError | undefined): string | null {
    if (this.#security.secure === null || err === undefined) return null
    const cause = (err as { cause?: unknown }).cause
    const end = cause instanceof Error ? this.#ends.get(cause) : undefined
    const code = (cause as { code?: string } | undefined)?.code
    if (end === undefined || end.heldMs < 0 || end.bytesRead !== 0) return null
    if (code !== 'SYNMUX_SECURE_HANDSHAKE_TIMEOUT' && !(code === 'SYNMUX_SECURE_REFUSED' && end.heldMs >= REFUSAL_HOLD_MS)) return null
    const { host, port } = this.#opts.server
    const mine = derivePublicKey(this.#security.secure.staticKey).toString('base64')
    const how = code === 'SYNMUX_SECURE_REFUSED' ? 'closed the connection' : 'stayed silent'
    return `the server ${host}:${port} refused the handshake (it ${how} without a byte): --server-key is not that server's key, or the server does not authorize this client's key ${mine}`
  }
}
