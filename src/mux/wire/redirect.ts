/**
 * The REDIRECT HELLO extension (PROTOCOL.md 13.10): a server that is not
 * where a session lives answers its RESUME or JOIN with `HELLO(NEW,
 * RESUME_REFUSED 5)` carrying the address of the server that has it.
 * Value: `port u16, address 16 bytes` (IPv6; an IPv4 address as
 * `::ffff:a.b.c.d`), 18 bytes.
 * @packageDocumentation
 */
import net from 'node:net'
import { invalidArgValue, outOfRange } from '../../common/arg-errors.js'
import { bytesToIpv6, ipv4ToBytes, ipv6ToBytes } from './target.js'

/** Where a session lives (a REDIRECT's address). */
export interface RedirectAddress {
  /** An IP address (IPv4 in dotted form, IPv6 otherwise). */
  host: string
  port: number
}

/** The length of a REDIRECT value. */
export const REDIRECT_SIZE = 18

/** The 16 bytes of an IP address (IPv4 mapped into IPv6). Throws `ERR_INVALID_ARG_VALUE` for anything but an IP literal. */
export function ipBytes(host: string): Buffer {
  const out = Buffer.alloc(16)
  const v = net.isIP(host)
  if (v === 4) {
    out[10] = out[11] = 0xff
    ipv4ToBytes(host, out, 12)
  } else if (v === 6) {
    const zone = host.indexOf('%')
    ipv6ToBytes(zone >= 0 ? host.slice(0, zone) : host, out, 0)
  } else throw invalidArgValue('host', 'must be an IPv4 or IPv6 address', host)
  return out
}

/** An IP address from its 16 bytes (IPv4-mapped ones in dotted form). */
export function ipText(b: Buffer): string {
  const text = bytesToIpv6(b, 0)
  return text.startsWith('::ffff:') && text.includes('.') ? text.slice(7) : text
}

/** A REDIRECT value. Throws for a host that is not an IP address or a port outside 1–65535. */
export function encodeRedirect(to: RedirectAddress): Buffer {
  if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) throw outOfRange('port', '1 ... 65535', to.port)
  const out = Buffer.alloc(REDIRECT_SIZE)
  out.writeUInt16BE(to.port, 0)
  ipBytes(to.host).copy(out, 2)
  return out
}

/**
 * The address in a REDIRECT value, or `null` when it is not one a client
 * may follow: another length, port 0, or an unspecified or multicast
 * address.
 */
export function decodeRedirect(v: Buffer | undefined): RedirectAddress | null {
  if (v === undefined || v.length !== REDIRECT_SIZE) return null
  const port = v.readUInt16BE(0)
  const a = v.subarray(2)
  if (port === 0 || a.every((x) => x === 0) || a[0] === 0xff) return null
  const host = ipText(a)
  if (host === '0.0.0.0' || /^(22[4-9]|23\d|24\d|25[0-5])\./.test(host)) return null
  return { host, port }
}
