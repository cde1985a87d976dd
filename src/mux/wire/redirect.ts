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
  const v = net.isIP(host)
  if (v === 4) return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...host.split('.').map(Number)])
  if (v !== 6) throw invalidArgValue('host', 'must be an IPv4 or IPv6 address', host)
  const out = Buffer.alloc(16)
  const zone = host.indexOf('%')
  let h = zone >= 0 ? host.slice(0, zone) : host
  // An IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h)
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number]
    h = `${h.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head, tail] = h.includes('::') ? h.split('::') as [string, string] : [h, null]
  const hs = head ? head.split(':') : []
  const ts = tail ? tail.split(':') : []
  const groups = tail === null ? hs : [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts]
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

/** An IP address from its 16 bytes (IPv4-mapped ones in dotted form). */
export function ipText(b: Buffer): string {
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  // The longest run of two or more zero groups becomes '::' (RFC 5952).
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen) [best, bestLen] = [i, j - i]
    i = j
  }
  if (best < 0) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
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
