/**
 * The local SOCKS5 acceptor (RFC 1928, CONNECT only, no authentication):
 * reads the greeting and the request from an application's connection and
 * answers. An explicit state machine over the bytes received so far; it
 * never reads more than a request can hold.
 * @packageDocumentation
 */
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

type State = 'greeting' | 'request' | 'done'

/** The method reply: no authentication. */
const METHOD_NO_AUTH = Buffer.from([0x05, 0x00])

/**
 * Parses SOCKS5 bytes incrementally. `push()` returns the bytes to send back
 * and, once the request is complete, the request and any bytes that followed
 * it (an application that did not wait for the reply).
 * @throws TunnelError `SYNMUX_SOCKS_PROTOCOL` (with `reply`, the code to send before closing, when there is one).
 */
export class Socks5Parser {
  #state: State = 'greeting'
  #buf: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): { send?: Buffer; request?: SocksRequest; rest?: Buffer } {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk
    const answered = this.#state
    try {
      return this.#step()
    } catch (err) {
      // A client may send its greeting and its request in one write (to save
      // a round trip): the method reply `05 00` is owed before whatever the
      // request gets, an error reply included.
      const e = err as TunnelError & { reply?: Buffer }
      if (answered === 'greeting' && this.#state !== 'greeting') e.reply = e.reply ? Buffer.concat([METHOD_NO_AUTH, e.reply]) : METHOD_NO_AUTH
      throw e
    }
  }

  #step(): { send?: Buffer; request?: SocksRequest; rest?: Buffer } {
    let send: Buffer | undefined
    if (this.#state === 'greeting') {
      const b = this.#buf
      if (b.length < 2) return {}
      if (b[0] !== 0x05) throw fail(`not SOCKS5 (version byte ${b[0]})`)
      const n = b[1]!
      if (n === 0) throw fail('no authentication methods offered')
      if (b.length < 2 + n) return {}
      if (!b.subarray(2, 2 + n).includes(0x00)) {
        throw fail('the client requires authentication', Buffer.from([0x05, 0xff]))
      }
      send = METHOD_NO_AUTH
      this.#buf = b.subarray(2 + n)
      this.#state = 'request'
    }
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

function fail(message: string, reply?: Buffer): TunnelError & { reply?: Buffer } {
  const e = new TunnelError('SYNMUX_SOCKS_PROTOCOL', `SOCKS5: ${message}`) as TunnelError & { reply?: Buffer }
  if (reply) e.reply = reply
  return e
}
