/**
 * sourceOf(): what the server's per-source limits count a peer address as
 * (an IPv4 address; an IPv6 address's /64, or another prefix length).
 */
import net from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { IPV6_SOURCE_PREFIX, sourceOf, TunnelServer } from 'synmux'

describe('sourceOf', () => {
  it('an IPv4 address is its own source; an IPv4-mapped IPv6 address is its IPv4 address', () => {
    expect(sourceOf('127.0.0.1')).toBe('127.0.0.1')
    expect(sourceOf('203.0.113.9')).toBe('203.0.113.9')
    expect(sourceOf('::ffff:203.0.113.9')).toBe('203.0.113.9')
    expect(sourceOf('::ffff:cb00:7109')).toBe('203.0.113.9')
    expect(sourceOf('::FFFF:127.0.0.1')).toBe('127.0.0.1')
  })

  it('an IPv6 address counts as its /64 by default, written in RFC 5952 form', () => {
    expect(IPV6_SOURCE_PREFIX).toBe(64)
    expect(sourceOf('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64')
    expect(sourceOf('2001:DB8:1:2::1')).toBe('2001:db8:1:2::/64')
    expect(sourceOf('2001:0db8:0001:0002:0:0:0:ffff')).toBe('2001:db8:1:2::/64')
    expect(sourceOf('fe80::1%eth0')).toBe('fe80::/64')
    expect(sourceOf('::1')).toBe('::/64')
    // every address of one /64 is one source; the next /64 is another
    expect(sourceOf('fd00:5::1')).toBe(sourceOf('fd00:5::ffff:ffff:ffff:ffff'))
    expect(sourceOf('fd00:5:0:1::1')).not.toBe(sourceOf('fd00:5::1'))
  })

  it('other prefix lengths: 128 is the address itself, 48 and odd lengths mask the bits past them', () => {
    expect(sourceOf('2001:db8:1:2::1', 128)).toBe('2001:db8:1:2::1')
    expect(sourceOf('2001:db8:1:2::1', 48)).toBe('2001:db8:1::/48')
    expect(sourceOf('2001:db8:1:ffff::1', 57)).toBe('2001:db8:1:ff80::/57')
    expect(sourceOf('ffff::1', 1)).toBe('8000::/1')
    expect(sourceOf('127.0.0.1', 1)).toBe('127.0.0.1') // IPv4 is never grouped
  })

  it('the result is the address itself masked: any IPv6 address, any length (checked against net.BlockList)', () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 1, max: 127 }), (ip, bits) => {
        const s = sourceOf(ip, bits)
        if (s.includes('/')) {
          const [prefix, len] = s.split('/')
          expect(Number(len)).toBe(bits)
          const list = new net.BlockList()
          list.addSubnet(prefix!, bits, 'ipv6')
          expect(list.check(ip, 'ipv6')).toBe(true)
          // its own network's first address is in the same source
          expect(sourceOf(prefix!, bits)).toBe(s)
        } else expect(net.isIPv4(s)).toBe(true) // an IPv4-mapped address
      }),
      { numRuns: 500 },
    )
  })

  it('anything else is "?"; a prefix length outside 1-128 is a RangeError with a code', () => {
    expect(sourceOf(undefined)).toBe('?')
    expect(sourceOf('not an address')).toBe('?')
    for (const bad of [0, 129, 1.5, Number.NaN]) {
      expect(() => sourceOf('::1', bad)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }))
    }
  })

  it('TunnelServer checks ipv6SourcePrefix: a RangeError with a code, before anything listens', () => {
    for (const bad of [0, 129, 64.5, '64']) {
      expect(() => new TunnelServer({ allow: [], key: Buffer.alloc(32, 7), insecurePlaintext: true, ipv6SourcePrefix: bad as number })).toThrow(
        expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: 'options.ipv6SourcePrefix must be an integer from 1 to 128' }),
      )
    }
  })
})
