/**
 * IP addresses as bytes, and the *source* a peer's address is counted as
 * by the server's per-source limits.
 *
 * One IPv4 address is one source. An IPv6 host is normally given a whole
 * /64 (SLAAC, privacy addresses, RFC 6177), and can take a new address in
 * it for every connection: counted per address, one attacker would be
 * 2^64 sources and walk around every per-source limit. So an IPv6 address
 * counts as its /64 network (the length is configurable). An IPv4-mapped
 * address (`::ffff:a.b.c.d`, what a dual-stack listener reports for an IPv4
 * peer) counts as its IPv4 address.
 * @packageDocumentation
 */
import net from 'node:net'

/** The 16 bytes of an IPv6 address (one `net.isIPv6` accepts, without a zone). */
export function ipv6Bytes(ip: string): Buffer {
  const groups = (part: string): number[] => {
    const out: number[] = []
    for (const g of part === '' ? [] : part.split(':')) {
      if (g.includes('.')) {
        const v4 = g.split('.').map(Number)
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
      } else out.push(parseInt(g, 16))
    }
    return out
  }
  const gap = ip.indexOf('::')
  const head = groups(gap < 0 ? ip : ip.slice(0, gap))
  const tail = gap < 0 ? [] : groups(ip.slice(gap + 2))
  const b = Buffer.alloc(16)
  head.forEach((g, i) => b.writeUInt16BE(g, i * 2))
  tail.forEach((g, i) => b.writeUInt16BE(g, 16 - 2 * tail.length + i * 2))
  return b
}

/** The default prefix length an IPv6 source is counted by. */
export const IPV6_SOURCE_PREFIX = 64

/**
 * The source `address` (a socket's `remoteAddress`) is counted as: an IPv4
 * address itself; an IPv4-mapped IPv6 address its IPv4 address; any other
 * IPv6 address its network of `v6Prefix` bits (1-128), written
 * `2001:db8:1:2::/64` (RFC 5952 form; `/128` is the address itself, with
 * no suffix). Anything else (undefined: a socket already closed) is `'?'`.
 * @throws RangeError (`ERR_OUT_OF_RANGE`) for a prefix length outside 1-128.
 */
export function sourceOf(address: string | undefined, v6Prefix: number = IPV6_SOURCE_PREFIX): string {
  if (!Number.isInteger(v6Prefix) || v6Prefix < 1 || v6Prefix > 128) {
    throw Object.assign(new RangeError(`the IPv6 source prefix must be an integer from 1 to 128 (got ${String(v6Prefix)})`), { code: 'ERR_OUT_OF_RANGE' })
  }
  if (address === undefined) return '?'
  const bare = address.replace(/%.*$/, '')
  if (net.isIPv4(bare)) return bare
  if (!net.isIPv6(bare)) return '?'
  const b = ipv6Bytes(bare)
  if (b.readBigUInt64BE(0) === 0n && b.readUInt16BE(8) === 0 && b.readUInt16BE(10) === 0xffff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`
  for (let bit = v6Prefix; bit < 128; bit++) b[bit >> 3]! &= ~(0x80 >> (bit & 7))
  const words: string[] = []
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16))
  // The WHATWG URL parser writes an IPv6 host in RFC 5952's canonical form.
  const text = new URL(`http://[${words.join(':')}]/`).hostname.slice(1, -1)
  return v6Prefix === 128 ? text : `${text}/${v6Prefix}`
}
