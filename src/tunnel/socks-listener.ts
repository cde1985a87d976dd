/**
 * The tunnel client's SOCKS5 listener (RFC 1928 CONNECT, RFC 1929
 * username/password): each connection's greeting, authentication and
 * request are read within a deadline, sources that keep failing to
 * authenticate are shut out for a while, and a complete request is handed
 * to the client to carry; and the replies a carried connection gets.
 * @packageDocumentation
 */
import net from 'node:net'
import type { Logger } from '../common/log.js'
import { RefuseCode } from '../mux/wire/constants.js'
import type { Target } from '../mux/wire/target.js'
import { sourceOf } from '../net/address.js'
import { isRefusal } from '../net/refusal.js'
import { FailureLimiter } from './ratelimit.js'
import { Socks5Parser, SocksReply, socksReply } from './socks5.js'

/** Options of {@link TunnelClient.socks}. */
export interface SocksOptions {
  /**
   * Require username/password authentication (RFC 1929): clients that do
   * not offer it are refused (`05 FF`). After 10 failures from a source
   * (an IPv4 address, an IPv6 /64) within a minute, its connections are
   * closed unread until the minute has passed.
   */
  auth?: { user: string; pass: string }
  /**
   * Answer a CONNECT only once the far side has connected (OPENED), with
   * the real reply code when it did not (`0x02` not allowed, `0x04` host
   * unreachable, `0x05` connection refused, `0x06` timeout, `0x01` other).
   * Costs a round trip: the application sends its first bytes only after
   * the reply. Default false: success at once, the first bytes ride in the
   * OPEN, a refusal closes the connection.
   */
  wait?: boolean
  /** Time for a client to complete the greeting, authentication and request, in ms. Default 10,000. */
  timeout?: number
}

/** SOCKS5 reply codes for REFUSED codes (PROTOCOL.md 11.2; RFC 1928 section 6). */
const SOCKS_REPLY_FOR: Record<number, number> = {
  [RefuseCode.NOT_ALLOWED]: SocksReply.NOT_ALLOWED,
  [RefuseCode.UNREACHABLE]: SocksReply.HOST_UNREACHABLE,
  [RefuseCode.CONNECTION_REFUSED]: SocksReply.CONNECTION_REFUSED,
  [RefuseCode.TIMEOUT]: SocksReply.TTL_EXPIRED,
}


/** What a {@link socksServer} hands on. */
export interface SocksHooks {
  /**
   * A request is complete: carry `socket` to `target` (`rest`: the bytes
   * after the request). With `wait`, the CONNECT is answered only once the
   * far side has (`wait.prefix`: replies to write before it).
   */
  carry(socket: net.Socket, target: Target, rest: Buffer | undefined, wait?: { prefix: Buffer | undefined }): void
  /** A client failed authentication (counted). */
  authFailed(): void
}

/** The listener's name in logs: `SOCKS5 (username/password) (replies wait for the far side)`. */
export function socksName(options: SocksOptions): string {
  return `SOCKS5${options.auth ? ' (username/password)' : ''}${options.wait ? ' (replies wait for the far side)' : ''}`
}

/** The reply to a carried CONNECT (`code`, after the replies `prefix` still owed). */
export function socksAnswer(prefix: Buffer | undefined, code: number): Buffer {
  return Buffer.concat([prefix ?? Buffer.alloc(0), socksReply(code)])
}

/** The reply code for a stream that ended before OPENED with `err`: the refusal's, else general failure. */
export function socksReplyFor(err: Error | null): number {
  return (isRefusal(err) ? SOCKS_REPLY_FOR[err.wireCode ?? -1] : undefined) ?? SocksReply.GENERAL_FAILURE
}

/**
 * A SOCKS5 server (not listening yet) for {@link TunnelClient.socks}.
 * Throws on bad `options`.
 */
export function socksServer(options: SocksOptions, log: Logger, hooks: SocksHooks): net.Server {
  const auth = options.auth
  if (auth !== undefined && (typeof auth !== 'object' || auth === null || typeof auth.user !== 'string' || typeof auth.pass !== 'string' || auth.user === '' || Buffer.byteLength(auth.user) > 255 || Buffer.byteLength(auth.pass) > 255)) {
    throw Object.assign(new TypeError('options.auth must be { user, pass }: strings of 1-255 bytes (the password may be empty)'), { code: 'ERR_INVALID_ARG_VALUE' })
  }
  const timeout = options.timeout ?? 10_000
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1) throw Object.assign(new RangeError('options.timeout must be a positive integer'), { code: 'ERR_OUT_OF_RANGE' })
  // Guessing the password: after 10 failures from an address within a minute, its connections are closed unread.
  const limiter = auth ? new FailureLimiter({ maxFailures: 10, windowMs: 60_000 }) : null
  let refusedLogAt = 0
  return net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    socket.on('error', () => {})
    const address = socket.remoteAddress ?? '?'
    // what the guessing limit counts (an IPv6 address: its /64); the log names the address itself
    const source = limiter === null ? address : sourceOf(socket.remoteAddress)
    if (limiter !== null && !limiter.allowed(source)) {
      if (Date.now() - refusedLogAt > 10_000) {
        refusedLogAt = Date.now()
        log.warn(`SOCKS5: refusing ${source}: too many failed authentications (for up to a minute)`)
      }
      socket.destroy()
      return
    }
    const parser = new Socks5Parser(auth ? { auth } : {})
    const timer = setTimeout(() => {
      log.info(`SOCKS5: ${address}: no request within ${timeout} ms${parser.authenticated ? '' : auth ? ' (not authenticated)' : ''}; closed`)
      socket.destroy()
    }, timeout)
    const onData = (chunk: Buffer) => {
      let r: ReturnType<Socks5Parser['push']>
      try {
        r = parser.push(chunk)
      } catch (err) {
        clearTimeout(timer)
        socket.off('data', onData)
        const e = err as Error & { reply?: Buffer; authFailed?: boolean }
        if (e.authFailed && limiter !== null) {
          hooks.authFailed()
          limiter.fail(source)
          log.warn(`${e.message} from ${address}`)
        } else log.info(e.message)
        if (e.reply) socket.end(e.reply)
        else socket.destroy()
        return
      }
      if (r.send && !r.request) socket.write(r.send)
      if (!r.request) return
      clearTimeout(timer)
      socket.off('data', onData)
      socket.pause()
      const target = { host: r.request.host, port: r.request.port }
      if (options.wait) return hooks.carry(socket, target, r.rest, { prefix: r.send })
      socket.write(socksAnswer(r.send, SocksReply.SUCCEEDED))
      hooks.carry(socket, target, r.rest)
    }
    socket.on('data', onData)
  })
}
