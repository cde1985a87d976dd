/**
 * Stream targets (host + port) and their wire encoding in OPEN.
 * @packageDocumentation
 */
import net from 'node:net'
import { MAX_HOST_LENGTH, TargetType } from './constants.js'
import { invalidArgType, invalidArgValue, outOfRange } from '../errors.js'
import { protocolError } from './errors.js'

/** How a target's host is carried on the wire. */
export type TargetKind = 'hostname' | 'ipv4' | 'ipv6'

/**
 * Where a stream should lead, as the opener names it. `host` is a host name
 * (printable ASCII, at most 255 bytes), an IPv4 address or an IPv6 address
 * (without brackets or zone); `kind` is derived from it when absent.
 */
export interface Target {
  /** Host name or IP address literal. */
  host: string
  /** Port, 0–65535. */
  port: number
  /** How `host` is encoded; detected from `host` when absent. */
  kind?: TargetKind
}

/** A target as decoded from an OPEN frame (`kind` always present). */
export interface DecodedTarget extends Target {
  kind: TargetKind
}

const PRINTABLE = /^[\x21-\x7e]+$/

/** Whether a decoded host name consists of printable ASCII only. */
export function isPrintableHost(host: string): boolean {
  return PRINTABLE.test(host)
}

/** Parses an IPv4 literal into 4 bytes. @internal */
export function ipv4ToBytes(host: string, out: Buffer, offset: number): void {
  // (a checked dotted quad: digits and three dots; no array of parts per OPEN)
  let v = 0
  let i = offset
  for (let k = 0; k < host.length; k++) {
    const c = host.charCodeAt(k)
    if (c === 0x2e) {
      out[i++] = v
      v = 0
    } else v = v * 10 + c - 0x30
  }
  out[i] = v
}

/** Parses an IPv6 literal (no zone) into 16 bytes. @internal */
export function ipv6ToBytes(host: string, out: Buffer, offset: number): void {
  let head = host
  let tailV4: number[] | null = null
  const lastColon = host.lastIndexOf(':')
  if (host.indexOf('.', lastColon) !== -1) {
    tailV4 = host.slice(lastColon + 1).split('.').map(Number)
    head = host.slice(0, lastColon + 1)
    if (!head.endsWith('::')) head = head.slice(0, -1)
  }
  const groups: number[] = []
  const dbl = head.indexOf('::')
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)))
  const wantGroups = tailV4 ? 6 : 8
  if (dbl === -1) {
    groups.push(...parse(head))
  } else {
    const left = parse(head.slice(0, dbl))
    const right = parse(head.slice(dbl + 2))
    groups.push(...left)
    for (let i = left.length + right.length; i < wantGroups; i++) groups.push(0)
    groups.push(...right)
  }
  for (let i = 0; i < wantGroups; i++) out.writeUInt16BE(groups[i]! & 0xffff, offset + 2 * i)
  if (tailV4) for (let i = 0; i < 4; i++) out[offset + 12 + i] = tailV4[i]!
}

/** Formats 16 bytes as an RFC 5952 IPv6 literal. @internal */
export function bytesToIpv6(buf: Buffer, offset: number): string {
  const g: number[] = []
  for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(offset + 2 * i))
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${buf[offset + 12]}.${buf[offset + 13]}.${buf[offset + 14]}.${buf[offset + 15]}`
  }
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = g.map((x) => x.toString(16))
  if (bestStart === -1) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}

/**
 * Validates a user-supplied target and returns its normalised form.
 * Throws `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` / `ERR_OUT_OF_RANGE`.
 * @internal
 */
export function normalizeTarget(target: unknown, name = 'options.target'): DecodedTarget {
  if (typeof target !== 'object' || target === null) throw invalidArgType(name, 'an object', target)
  const t = target as Target
  if (typeof t.host !== 'string') throw invalidArgType(`${name}.host`, 'of type string', t.host)
  if (typeof t.port !== 'number') throw invalidArgType(`${name}.port`, 'of type number', t.port)
  if (!Number.isInteger(t.port) || t.port < 0 || t.port > 65535) throw outOfRange(`${name}.port`, '>= 0 && <= 65535', t.port)
  let host = t.host
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  let kind: TargetKind
  const ipVersion = net.isIP(host)
  if (ipVersion === 4) kind = 'ipv4'
  else if (ipVersion === 6 && !host.includes('%')) kind = 'ipv6'
  else kind = 'hostname'
  if (t.kind !== undefined && t.kind !== kind) {
    if (t.kind === 'hostname') kind = 'hostname'
    else throw invalidArgValue(`${name}.kind`, `does not match host ${JSON.stringify(t.host)}`, t.kind)
  }
  if (kind === 'hostname') {
    if (host.length === 0) throw invalidArgValue(`${name}.host`, 'must not be empty', t.host)
    if (host.length > MAX_HOST_LENGTH) throw outOfRange(`${name}.host length`, `<= ${MAX_HOST_LENGTH}`, host.length)
    if (!isPrintableHost(host)) throw invalidArgValue(`${name}.host`, 'must be printable ASCII (use punycode for IDNs)', t.host)
  } else if (kind === 'ipv6') {
    // Canonicalise.
    const b = Buffer.allocUnsafe(16)
    ipv6ToBytes(host, b, 0)
    host = bytesToIpv6(b, 0)
  }
  return { host, port: t.port, kind }
}

/** Encoded size of a (normalised) target, `null` meaning no target. @internal */
export function targetSize(t: DecodedTarget | null): number {
  if (t === null) return 1
  if (t.kind === 'ipv4') return 7
  if (t.kind === 'ipv6') return 19
  return 4 + t.host.length
}

/** Writes a normalised target at `offset`; returns the new offset. @internal */
export function writeTarget(t: DecodedTarget | null, out: Buffer, offset: number): number {
  if (t === null) {
    out[offset] = TargetType.NONE
    return offset + 1
  }
  if (t.kind === 'ipv4') {
    out[offset] = TargetType.IPV4
    ipv4ToBytes(t.host, out, offset + 1)
    out.writeUInt16BE(t.port, offset + 5)
    return offset + 7
  }
  if (t.kind === 'ipv6') {
    out[offset] = TargetType.IPV6
    ipv6ToBytes(t.host, out, offset + 1)
    out.writeUInt16BE(t.port, offset + 17)
    return offset + 19
  }
  out[offset] = TargetType.HOSTNAME
  out[offset + 1] = t.host.length
  out.write(t.host, offset + 2, 'latin1')
  out.writeUInt16BE(t.port, offset + 2 + t.host.length)
  return offset + 4 + t.host.length
}

/** Reads the target at the start of an OPEN payload: the target (`null`: none) and its encoded size. Throws a `ProtocolError`. @internal */
export function readTarget(p: Buffer): { target: DecodedTarget | null; size: number } {
  const t = p[0]!
  switch (t) {
    case TargetType.NONE:
      return { target: null, size: 1 }
    case TargetType.HOSTNAME: {
      if (p.length < 2) throw protocolError('OPEN target truncated')
      const len = p[1]!
      if (len === 0) throw protocolError('OPEN host name of length 0')
      if (p.length < 4 + len) throw protocolError('OPEN target truncated')
      return { target: { kind: 'hostname', host: p.toString('latin1', 2, 2 + len), port: p.readUInt16BE(2 + len) }, size: 4 + len }
    }
    case TargetType.IPV4:
      if (p.length < 7) throw protocolError('OPEN target truncated')
      return { target: { kind: 'ipv4', host: `${p[1]}.${p[2]}.${p[3]}.${p[4]}`, port: p.readUInt16BE(5) }, size: 7 }
    case TargetType.IPV6:
      if (p.length < 19) throw protocolError('OPEN target truncated')
      return { target: { kind: 'ipv6', host: bytesToIpv6(p, 1), port: p.readUInt16BE(17) }, size: 19 }
    default:
      throw protocolError(`OPEN target type ${t} unknown`)
  }
}
