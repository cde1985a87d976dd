/**
 * The tunnel server's allow list: which targets a client may reach.
 *
 * Default deny. An entry is `HOST:PORT`:
 * - HOST: `*` (any public address), a host name (`example.com`), a suffix
 *   wildcard (`*.example.com`), an IP literal (`10.0.0.5`, `[::1]`) or a
 *   CIDR block (`10.0.0.0/8`, `[fd00::/8]`);
 * - PORT: a number, a range (`8000-8100`) or `*`.
 *
 * Loopback, private, link-local and other non-public addresses are reached
 * only through an entry that names them explicitly (an IP, a CIDR block, or
 * an exact host name): a wildcard never does. The check runs on the address
 * the server is about to connect to, after resolving, so a public name that
 * resolves to a private address (DNS rebinding) is refused.
 *
 * IPv6 addresses that embed an IPv4 address — IPv4-compatible
 * (`::a.b.c.d`), IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
 * (`::ffff:0:a.b.c.d`), 6to4 (`2002::/16`), NAT64 (`64:ff9b::/96`, and the
 * local-use `64:ff9b:1::/48` at every RFC 6052 position it may use) and
 * Teredo (`2001::/32`, the obfuscated client address) — are judged by that
 * IPv4 address: public only if it is, and allowed by an IPv4 entry only if
 * every IPv4 address they may stand for is in it.
 * @packageDocumentation
 */
import net from 'node:net'
import { ipv6Bytes } from '../net/address.js'
import { TunnelError } from './errors.js'

type HostRule =
  | { kind: 'any' }
  | { kind: 'name'; name: string }
  | { kind: 'suffix'; suffix: string }
  | { kind: 'ip'; list: net.BlockList; text: string; v4: { net: number; mask: number } | null }

interface Rule {
  host: HostRule
  portMin: number
  portMax: number
  text: string
}

/** Address ranges that are never reached through a wildcard. */
const NON_PUBLIC = new net.BlockList()
for (const [a, p] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(a, p, 'ipv4')
for (const [a, p] of [
  ['::', 128],
  ['::1', 128],
  // NAT64 addresses outside the two prefixes judged by their IPv4 (below)
  ['64:ff9b::', 32],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  NON_PUBLIC.addSubnet(a, p, 'ipv6')

const v4At = (b: Buffer, ...offsets: number[]): string => offsets.map((o) => b[o]!).join('.')

/** An IPv4 address (one `net.isIPv4` accepts) as an unsigned 32-bit number. */
function ipv4Number(ip: string): number {
  let n = 0
  let part = 0
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i)
    if (c === 46) {
      n = n * 256 + part
      part = 0
    } else part = part * 10 + (c - 48)
  }
  return n * 256 + part
}

/** Whether IPv4 `ip` is in an `ip` rule's block (a mask compare: `BlockList.check()` builds a `SocketAddress` per call). */
const inBlock = (rule: { list: net.BlockList; v4: { net: number; mask: number } | null }, ip: string): boolean =>
  rule.v4 !== null ? ((ipv4Number(ip) & rule.v4.mask) >>> 0) === rule.v4.net : rule.list.check(ip, 'ipv4')

/**
 * The IPv4 addresses an IPv6 address stands for, if it is one of the forms
 * that embed one (see the module comment); `null` for any other address.
 * More than one only for the local-use NAT64 prefix, whose embedding
 * position depends on the operator's prefix length (RFC 6052 2.2: /48, /56,
 * /64 or /96).
 */
export function embeddedIPv4(ip: string): string[] | null {
  const bare = ip.replace(/%.*$/, '')
  if (!net.isIPv6(bare)) return null
  const b = ipv6Bytes(bare)
  const zero = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0)
  const word = (i: number) => b.readUInt16BE(i * 2)
  const last = v4At(b, 12, 13, 14, 15)
  if (zero(0, 10) && word(5) === 0xffff) return [last] // ::ffff:a.b.c.d, IPv4-mapped
  if (zero(0, 8) && word(4) === 0xffff && word(5) === 0) return [last] // ::ffff:0:a.b.c.d, IPv4-translated (RFC 2765)
  if (zero(0, 12)) return [last] // ::a.b.c.d, IPv4-compatible (:: and ::1 too: 0.0.0.0, 0.0.0.1, never public)
  if (word(0) === 0x2002) return [v4At(b, 2, 3, 4, 5)] // 6to4, 2002:AABB:CCDD::/48 (RFC 3056)
  if (word(0) === 0x2001 && word(1) === 0) return [[12, 13, 14, 15].map((o) => b[o]! ^ 0xff).join('.')] // Teredo: the client address, bits inverted (RFC 4380)
  if (word(0) === 0x64 && word(1) === 0xff9b) {
    if (zero(4, 12)) return [last] // 64:ff9b::/96, the NAT64 well-known prefix (RFC 6052)
    // 64:ff9b:1::/48, local use (RFC 8215): the IPv4 sits where the operator's prefix length puts it (byte 8 is never used)
    if (word(2) === 1) return [v4At(b, 6, 7, 9, 10), v4At(b, 7, 9, 10, 11), v4At(b, 9, 10, 11, 12), last]
  }
  return null
}

/** Whether an IP address is public (not loopback, private, link-local, reserved, ...); an IPv4-embedding IPv6 address is judged by its IPv4 address. */
export function isPublicAddress(ip: string): boolean {
  const family = net.isIP(ip)
  if (family === 0) return false
  const v4 = embeddedIPv4(ip)
  if (v4 !== null) return v4.every((a) => !NON_PUBLIC.check(a, 'ipv4'))
  return !NON_PUBLIC.check(ip, family === 6 ? 'ipv6' : 'ipv4')
}

const NAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i

function bad(entry: string, why: string): TunnelError {
  return new TunnelError('SYNMUX_BAD_ALLOW_ENTRY', `Invalid allow-list entry '${entry}': ${why}`)
}

function parsePort(entry: string, s: string): [number, number] {
  if (s === '*') return [1, 65535]
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s)
  if (!m) throw bad(entry, 'port must be a number, a range like 8000-8100, or *')
  const lo = Number(m[1])
  const hi = m[2] === undefined ? lo : Number(m[2])
  if (lo < 1 || hi > 65535 || lo > hi) throw bad(entry, 'port out of range 1-65535')
  return [lo, hi]
}

function parseHost(entry: string, h: string): HostRule {
  if (h === '*') return { kind: 'any' }
  const bracket = /^\[(.+)\]$/.exec(h)
  const bare = bracket ? bracket[1]! : h
  const [addr, prefix, extra] = bare.split('/')
  if (extra === undefined && net.isIP(addr!) !== 0) {
    const family = net.isIP(addr!) === 6 ? 'ipv6' : 'ipv4'
    const max = family === 'ipv6' ? 128 : 32
    const bits = prefix === undefined ? max : Number(prefix)
    if (!/^\d+$/.test(prefix ?? String(max)) || bits < 0 || bits > max) throw bad(entry, 'bad CIDR prefix')
    const list = new net.BlockList()
    list.addSubnet(addr!, bits, family)
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
    return { kind: 'ip', list, text: bare, v4: family === 'ipv4' ? { net: (ipv4Number(addr!) & mask) >>> 0, mask } : null }
  }
  if (bracket || prefix !== undefined) throw bad(entry, 'not an IP address or CIDR block')
  if (h.startsWith('*.')) {
    const suffix = h.slice(2).toLowerCase().replace(/\.$/, '')
    if (!NAME.test(suffix)) throw bad(entry, 'bad host name')
    return { kind: 'suffix', suffix }
  }
  if (!NAME.test(h)) throw bad(entry, 'bad host name')
  return { kind: 'name', name: h.toLowerCase().replace(/\.$/, '') }
}

function parseEntry(entry: string): Rule {
  const e = entry.trim()
  const colon = e.lastIndexOf(':')
  if (colon <= 0) throw bad(entry, 'expected HOST:PORT')
  const host = e.slice(0, colon)
  if (!host.startsWith('[') && host.includes(':')) throw bad(entry, 'write IPv6 addresses in brackets: [::1]:80')
  const [portMin, portMax] = parsePort(entry, e.slice(colon + 1))
  return { host: parseHost(entry, host), portMin, portMax, text: e }
}

/** What a target request looks like to the allow list. */
export interface AllowQuery {
  /** The host as the client asked for it (name or IP literal). */
  host: string
  port: number
  /** The address the server will connect to (after resolving). */
  address: string
}

/** A parsed allow list. Build one with {@link AllowList.parse}. */
export class AllowList {
  readonly #rules: Rule[]

  private constructor(rules: Rule[]) {
    this.#rules = rules
  }

  /**
   * Parses entries (each `HOST:PORT`, or several comma-separated).
   * @throws TunnelError `SYNMUX_BAD_ALLOW_ENTRY` on a malformed entry.
   */
  static parse(entries: string | readonly string[]): AllowList {
    const list = (typeof entries === 'string' ? [entries] : entries).flatMap((e) => e.split(',')).map((e) => e.trim()).filter(Boolean)
    return new AllowList(list.map(parseEntry))
  }

  /** The entries, normalised. */
  get entries(): string[] {
    return this.#rules.map((r) => r.text)
  }

  /**
   * Whether the host name alone could be allowed on this port (checked
   * before resolving, so a refused name is never looked up).
   */
  mayAllowName(host: string, port: number): boolean {
    const h = host.toLowerCase().replace(/\.$/, '')
    return this.#rules.some((r) => port >= r.portMin && port <= r.portMax && (r.host.kind !== 'ip' || net.isIP(h) !== 0))
  }

  /** The entry that allows this connection, or undefined (deny). */
  match(q: AllowQuery): string | undefined {
    const h = q.host.toLowerCase().replace(/\.$/, '')
    const family = net.isIP(q.address)
    if (family === 0) return undefined
    const type = family === 6 ? 'ipv6' : 'ipv4'
    // Worked out only when a rule needs them (each costs BlockList checks).
    let isPublic: boolean | undefined
    let embedded: string[] | null | undefined
    const publicAddress = (): boolean => (isPublic ??= isPublicAddress(q.address))
    for (const r of this.#rules) {
      if (q.port < r.portMin || q.port > r.portMax) continue
      switch (r.host.kind) {
        case 'any':
          if (publicAddress()) return r.text
          break
        case 'suffix':
          if ((h === r.host.suffix || h.endsWith(`.${r.host.suffix}`)) && publicAddress()) return r.text
          break
        case 'name':
          // an exact name is explicit: it may name a private host (e.g. localhost)
          if (h === r.host.name) return r.text
          break
        case 'ip':
          if (family === 4 ? inBlock(r.host, q.address) : r.host.list.check(q.address, type)) return r.text
          // an IPv4-embedding IPv6 address, by every IPv4 address it may stand for
          if (family === 6 && embedded === undefined) embedded = embeddedIPv4(q.address)
          if (embedded != null && embedded.every((a) => inBlock(r.host as { list: net.BlockList; v4: { net: number; mask: number } | null }, a))) return r.text
          break
      }
    }
    return undefined
  }
}
