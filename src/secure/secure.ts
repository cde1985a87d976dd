/**
 * `secure(transport, options)`: the entry point of the secure channel.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream'
import { invalidArgType } from '../common/arg-errors.js'
import type { SecureChannel } from './channel.js'
import { ClientChannel } from './client.js'
import { resolveOptions, type SecureClientOptions, type SecureOptions, type SecureServerOptions } from './options.js'
import { refillEphemeral } from './precompute.js'
import { ServerChannel } from './server.js'

/**
 * Runs the secure channel (docs/PROTOCOL.md 20) over `transport` and
 * returns the Duplex to use instead of it. Write to it at once: what a
 * client writes in the first tick (up to `maxEarlyData`) rides in
 * handshake message 1 as 0-RTT data — over a TCP Fast Open socket in the
 * SYN — and what a server writes before its handshake answer rides in
 * that answer. The channel owns the transport: destroying one destroys the
 * other. For half-close (`end()` while still reading) give it a transport
 * that keeps writing after the peer's FIN (`allowHalfOpen: true`).
 *
 * @example
 * ```js
 * const { secure, generateKeyPair } = require('synmux')
 * const server = generateKeyPair(), client = generateKeyPair()
 * // server side, per accepted socket:
 * const s = secure(socket, { role: 'server', staticKey: server.privateKey, authorize: (k) => (k.equals(client.publicKey) ? 'alice' : null) })
 * // client side:
 * const c = secure(net.connect(port), { role: 'client', staticKey: client.privateKey, serverKey: server.publicKey })
 * c.write('hello') // 0-RTT
 * ```
 * @throws TypeError / RangeError (with `code`) for invalid arguments.
 */
export function secure(transport: Duplex, options: SecureClientOptions): SecureChannel
export function secure(transport: Duplex, options: SecureServerOptions): SecureChannel
export function secure(transport: Duplex, options: SecureOptions): SecureChannel
export function secure(transport: Duplex, options: SecureOptions): SecureChannel {
  if (!(transport instanceof Duplex)) throw invalidArgType('transport', 'a stream.Duplex (e.g. a net.Socket)', transport)
  const opts = resolveOptions(options)
  refillEphemeral()
  return opts.role === 'client' ? new ClientChannel(transport, opts) : new ServerChannel(transport, opts)
}
