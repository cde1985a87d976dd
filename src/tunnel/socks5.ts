/**
 * The local SOCKS5 acceptor (RFC 1928, CONNECT only; no authentication, or
 * username/password per RFC 1929): reads the greeting, the credentials and
 * the request from an application's connection and answers. An explicit
 * state machine over the bytes received so far; it never reads more than a
 * request can hold.
 * @packageDocumentation
 */
import crypto from 'node:crypto'
import net from 'node:net'
import { TunnelError } from './errors.js'

/** SOCKS5 reply codes (RFC 1928 section 6). */
export const SocksReply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const

/** What the application asked to connect to. */
export interface SocksRequest {
  host: string
  port: number
  /** How the address was given. */
  addressType: 'ipv4' | 'ipv6' | 'domain'
}

/** A SOCKS5 reply with an all-zero IPv4 bound address. */
export function socksReply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
}

/** Options of {@link Socks5Parser}. */
export interface Socks5ParserOptions {
  /**
   * Require username/password authentication (RFC 1929) with these
   * credentials: a client that does not offer method 0x02 is refused
   * (`05 FF`), wrong credentials get `01 01` and the close.
   */
  auth?: { user: string; pass: string }
}

type State = 'greeting' | 'auth' | 'request' | 'done'

/** The method replies: no authentication; username/password. */
const METHOD_NO_AUTH = Buffer.from([0x05, 0x00])
const METHOD_USER_PASS = Buffer.from([0x05, 0x02])
/** RFC 1929 status replies. */
const AUTH_OK = Buffer.from([0x01, 0x00])
const AUTH_FAILED = Buffer.from([0x01, 0x01])

const digest = (s: Buffer): Buffer => crypto.createHash('sha256').update(s).digest()

/**
 * Parses SOCKS5 bytes incrementally. `push()` returns the bytes to send back
 * and, once the request is complete, the request and any bytes that followed
 * it (an application that did not wait for the reply).
 * @throws TunnelError `SYNMUX_SOCKS_PROTOCOL` (with `reply`, the code to send before closing, when there is one).
 */
export class Socks5Parser {
  #state: State = 'greeting'
  #buf: Buffer = Buffer.alloc(0)
  /** SHA-256 of the expected `user` and `pass` (compared in constant time). */
  readonly #auth: { user: Buffer; pass: Buffer } | null
  /** Replies owed and not returned yet (a pipelined greeting's method reply before an error reply). */
  #owed: Buffer[] = []

  constructor(options: Socks5ParserOptions = {}) {
    const a = options.auth
    this.#auth = a ? { user: digest(Buffer.from(a.user, 'utf8')), pass: digest(Buffer.from(a.pass, 'utf8')) } : null
  }

  /** Whether the client has authenticated (or no authentication is required) and the request stage was reached. */
  get authenticated(): boolean {
    return this.#state === 'request' || this.#state === 'done'
  }

  push(chunk: Buffer): { send?: Buffer; request?: SocksRequest; rest?: Buffer } {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk
    this.#owed = []
    try {
      return this.#step()
    } catch (err) {
      // A client may send its greeting (and credentials) and its request in
      // one write (to save a round trip): the replies to the stages passed
      // (`05 00`, `05 02` `01 00`) are owed before whatever the request gets,
      // an error reply included.
      const e = err as TunnelError & { reply?: Buffer }
      if (this.#owed.length) e.reply = Buffer.concat([...this.#owed, ...(e.reply ? [e.reply] : [])])
      throw e
    }
  }

  #step(): { send?: Buffer; request?: SocksRequest; rest?: Buffer } {
    const owed = this.#owed
    const sent = () => (owed.length ? { send: Buffer.concat(owed) } : {})
    if (this.#state === 'greeting') {
      const b = this.#buf
      if (b.length < 2) return {}
      if (b[0] !== 0x05) throw fail(`not SOCKS5 (version byte ${b[0]})`)
      const n = b[1]!
      if (n === 0) throw fail('no authentication methods offered')
      if (b.length < 2 + n) return {}
      const methods = b.subarray(2, 2 + n)
      if (this.#auth !== null) {
        if (!methods.includes(0x02)) throw fail('the client does not offer username/password authentication, which is required', Buffer.from([0x05, 0xff]))
        owed.push(METHOD_USER_PASS)
        this.#state = 'auth'
      } else {
        if (!methods.includes(0x00)) throw fail('the client requires authentication', Buffer.from([0x05, 0xff]))
        owed.push(METHOD_NO_AUTH)
        this.#state = 'request'
      }
      this.#buf = b.subarray(2 + n)
    }
    if (this.#state === 'auth') {
      // RFC 1929: VER(1) ULEN(1) UNAME(1-255) PLEN(1) PASSWD(1-255)
      const b = this.#buf
      if (b.length < 2) return sent()
      if (b[0] !== 0x01) throw fail(`bad username/password version ${b[0]}`, AUTH_FAILED, 'auth')
      const ulen = b[1]!
      if (b.length < 2 + ulen + 1) return sent()
      const plen = b[2 + ulen]!
      const end = 3 + ulen + plen
      if (b.length < end) return sent()
      const user = b.subarray(2, 2 + ulen)
      const pass = b.subarray(3 + ulen, end)
      const a = this.#auth!
      // Both compared (no early exit on the user name), each as a fixed-size digest.
      const userOk = crypto.timingSafeEqual(digest(user), a.user)
      const passOk = crypto.timingSafeEqual(digest(pass), a.pass)
      if (!(userOk && passOk) || ulen === 0) throw fail('wrong username or password', AUTH_FAILED, 'auth')
      owed.push(AUTH_OK)
      this.#buf = b.subarray(end)
      this.#state = 'request'
    }
    const send = owed.length ? Buffer.concat(owed) : undefined
    if (this.#state === 'request') {
      const b = this.#buf
      if (b.length < 5) return send ? { send } : {}
      if (b[0] !== 0x05) throw fail('bad request version', socksReply(SocksReply.GENERAL_FAILURE))
      if (b[1] !== 0x01) throw fail(`command ${b[1]} not supported (CONNECT only)`, socksReply(SocksReply.COMMAND_NOT_SUPPORTED))
      let host: string
      let addressType: SocksRequest['addressType']
      let end: number
      switch (b[3]) {
        case 0x01:
          end = 4 + 4 + 2
          if (b.length < end) return send ? { send } : {}
          host = Array.from(b.subarray(4, 8)).join('.')
          addressType = 'ipv4'
          break
        case 0x04:
          end = 4 + 16 + 2
          if (b.length < end) return send ? { send } : {}
          host = ipv6(b.subarray(4, 20))
          addressType = 'ipv6'
          break
        case 0x03: {
          const len = b[4]!
          if (len === 0) throw fail('empty domain name', socksReply(SocksReply.GENERAL_FAILURE))
          end = 5 + len + 2
          if (b.length < end) return send ? { send } : {}
          host = b.subarray(5, 5 + len).toString('latin1')
          addressType = 'domain'
          break
        }
        default:
          throw fail(`address type ${b[3]} not supported`, socksReply(SocksReply.ADDRESS_TYPE_NOT_SUPPORTED))
      }
      const port = b.readUInt16BE(end - 2)
      if (port === 0) throw fail('port 0', socksReply(SocksReply.GENERAL_FAILURE))
      this.#state = 'done'
      const rest = b.subarray(end)
      this.#buf = Buffer.alloc(0)
      return { ...(send ? { send } : {}), request: { host, port, addressType }, rest }
    }
    throw fail('data after the request was handled')
  }
}

function ipv6(b: Buffer): string {
  const parts: string[] = []
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16))
  // let net normalise (compress zeros)
  const s = parts.join(':')
  return new net.SocketAddress({ address: s, family: 'ipv6' }).address
}

function fail(message: string, reply?: Buffer, stage?: 'auth'): TunnelError & { reply?: Buffer; authFailed?: boolean } {
  const e = new TunnelError('SYNMUX_SOCKS_PROTOCOL', `SOCKS5: ${message}`) as TunnelError & { reply?: Buffer; authFailed?: boolean }
  if (reply) e.reply = reply
  if (stage === 'auth') e.authFailed = true
  return e
}
