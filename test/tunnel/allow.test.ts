/**
 * The allow list and IPv6 addresses that embed an IPv4 address: each form
 * is judged by the IPv4 address it stands for, so a wildcard never reaches
 * loopback or private IPv4 hosts through them, and an IPv4 entry allows
 * them only when every IPv4 address they may stand for is in it.
 */
import net from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AllowList, embeddedIPv4, isPublicAddress } from 'synmux'
import { close, listen } from '../helpers'
import { freePort, secureKeys, synmux, type Proc } from './cli'

// [IPv6 form, the IPv4 it embeds] for 127.0.0.1 / 10.1.2.3 / 8.8.8.8
const FORMS: [string, string, string][] = [
  ['IPv4-compatible', '::127.0.0.1', '127.0.0.1'],
  ['IPv4-compatible, hex', '::7f00:1', '127.0.0.1'],
  ['IPv4-mapped', '::ffff:127.0.0.1', '127.0.0.1'],
  ['IPv4-mapped, hex', '::ffff:7f00:1', '127.0.0.1'],
  ['IPv4-translated', '::ffff:0:7f00:1', '127.0.0.1'],
  ['IPv4-translated, dotted', '::ffff:0:10.1.2.3', '10.1.2.3'],
  ['6to4', '2002:7f00:1::', '127.0.0.1'],
  ['6to4, host part set', '2002:a01:203:1:2:3:4:5', '10.1.2.3'],
  ['NAT64 well-known', '64:ff9b::7f00:1', '127.0.0.1'],
  ['NAT64 well-known, dotted', '64:ff9b::10.1.2.3', '10.1.2.3'],
  // Teredo: 2001:0:<server v4>:<flags>:<port ^ ffff>:<client v4 ^ ffffffff>
  ['Teredo', '2001:0:4136:e378:8000:63bf:80ff:fffe', '127.0.0.1'],
  ['Teredo, public server', '2001:0:808:808:0:0:f5fe:fdfc', '10.1.2.3'],
]

describe('embeddedIPv4', () => {
  for (const [what, v6, v4] of FORMS) {
    it(`${what}: ${v6} stands for ${v4}`, () => {
      expect(embeddedIPv4(v6)).toEqual([v4])
    })
  }

  it('the local-use NAT64 prefix 64:ff9b:1::/48 stands for the IPv4 at each position RFC 6052 allows', () => {
    // /96: the last 32 bits; /64: bytes 9-12; /56: 7, 9-11; /48: 6-7, 9-10
    expect(embeddedIPv4('64:ff9b:1::7f00:1')).toContain('127.0.0.1')
    expect(embeddedIPv4('64:ff9b:1:0:7f:0:100::')).toContain('127.0.0.1')
    expect(embeddedIPv4('64:ff9b:1:7f:0:1::')).toContain('127.0.0.1')
    expect(embeddedIPv4('64:ff9b:1:7f00:0:100::')).toContain('127.0.0.1')
    expect(embeddedIPv4('64:ff9b:1::7f00:1')).toHaveLength(4)
  })

  it('other addresses embed nothing; a zone is ignored', () => {
    for (const a of ['2606:4700::1111', 'fe80::1', '2001:db8::1', '2003::1', '64:ff9b:2::1', '1.2.3.4', 'nonsense']) expect(embeddedIPv4(a), a).toBeNull()
    expect(embeddedIPv4('::ffff:127.0.0.1%eth0')).toEqual(['127.0.0.1'])
  })
})

describe('AllowList through a wildcard', () => {
  const wildcard = AllowList.parse('*:443')

  for (const [what, v6, v4] of FORMS) {
    it(`${what} (${v6}, for ${v4}) is refused like ${v4}`, () => {
      expect(isPublicAddress(v4)).toBe(false)
      expect(isPublicAddress(v6)).toBe(false)
      expect(wildcard.match({ host: v6, port: 443, address: v6 })).toBeUndefined()
    })
  }

  it('the local-use NAT64 prefix with a loopback IPv4 at any of its positions is refused', () => {
    for (const a of ['64:ff9b:1::7f00:1', '64:ff9b:1:0:7f:0:100::', '64:ff9b:1:7f:0:1::', '64:ff9b:1:7f00:0:100::']) {
      expect(wildcard.match({ host: a, port: 443, address: a }), a).toBeUndefined()
    }
  })

  it('the same forms embedding a public IPv4 are public (a NAT64 network still reaches the internet)', () => {
    for (const a of ['::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', '2001:0:4136:e378:8000:63bf:f7f7:f7f7', '64:ff9b:1:808:8:808:808:808']) {
      expect(isPublicAddress(a), a).toBe(true)
      expect(wildcard.match({ host: a, port: 443, address: a }), a).toBe('*:443')
    }
  })

  it('NAT64 addresses outside both prefixes are not public', () => {
    expect(isPublicAddress('64:ff9b:2::808:808')).toBe(false)
  })
})

describe('AllowList through IP entries', () => {
  it('an IPv4 entry allows the forms that embed its address, and only those', () => {
    const a = AllowList.parse(['127.0.0.1:80', '10.0.0.0/8:22'])
    for (const [, v6, v4] of FORMS) {
      const port = v4 === '127.0.0.1' ? 80 : 22
      expect(a.match({ host: v6, port, address: v6 }), v6).toBeDefined()
    }
    expect(a.match({ host: '::ffff:127.0.0.2', port: 80, address: '::ffff:127.0.0.2' })).toBeUndefined()
    expect(a.match({ host: '2002:b01:203::', port: 22, address: '2002:b01:203::' })).toBeUndefined()
  })

  it('a local-use NAT64 address is allowed by an IPv4 entry only if every position it may use is in it', () => {
    const a = AllowList.parse('10.0.0.0/8:80')
    // /96 position 10.1.2.3, but the /48 position says 0.0.0.0: not every reading is allowed
    expect(a.match({ host: 'x', port: 80, address: '64:ff9b:1::a01:203' })).toBeUndefined()
    expect(a.match({ host: 'x', port: 80, address: '64:ff9b:1:a0a:a:a0a:a0a:a0a' })).toBe('10.0.0.0/8:80')
  })

  it('IPv4 entries of every prefix length agree with net.BlockList (the list checks IPv4 with a mask)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), fc.ipV4(), (base, bits, ip) => {
        const reference = new net.BlockList()
        reference.addSubnet(base, bits, 'ipv4')
        const entry = `${base}/${bits}:80`
        const got = AllowList.parse(entry).match({ host: ip, port: 80, address: ip })
        expect(got, `${ip} in ${base}/${bits}`).toBe(reference.check(ip, 'ipv4') ? entry : undefined)
        // and the same entry through an IPv4-mapped IPv6 address
        const mapped = AllowList.parse(entry).match({ host: 'x', port: 80, address: `::ffff:${ip}` })
        expect(mapped).toBe(reference.check(ip, 'ipv4') ? entry : undefined)
      }),
      { numRuns: 2000 },
    )
    // the edges: a single address, the whole space
    expect(AllowList.parse('10.1.2.3:80').match({ host: '10.1.2.3', port: 80, address: '10.1.2.3' })).toBe('10.1.2.3:80')
    expect(AllowList.parse('10.1.2.3:80').match({ host: '10.1.2.4', port: 80, address: '10.1.2.4' })).toBeUndefined()
    expect(AllowList.parse('0.0.0.0/0:80').match({ host: '255.255.255.255', port: 80, address: '255.255.255.255' })).toBe('0.0.0.0/0:80')
  })

  it('IPv6 entries keep matching the IPv6 form itself', () => {
    const a = AllowList.parse(['[::1]:22', '[2002::/16]:80'])
    expect(a.match({ host: '::1', port: 22, address: '::1' })).toBe('[::1]:22')
    expect(a.match({ host: 'x', port: 80, address: '2002:7f00:1::' })).toBe('[2002::/16]:80')
  })
})

describe('synmux server --allow *:PORT, through the CLI', () => {
  it('refuses IPv4-embedding IPv6 targets that stand for loopback through a wildcard, never connecting onward; an explicit entry for the IPv4 lets its mapped form through', async () => {
    const keys = secureKeys()
    let accepted = 0
    const target = net.createServer((s) => (accepted++, s.destroy()))
    const port = await listen(target, '127.0.0.1')
    // A second target, allowed by name of its IPv4 address: the positive
    // control stays on this machine (never probe a routable address).
    let acceptedExplicit = 0
    const explicit = net.createServer((s) => (acceptedExplicit++, s.destroy()))
    const explicitPort = await listen(explicit, '127.0.0.1')
    const serverPort = await freePort()
    const socksPort = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `*:${port}`, '--allow', `127.0.0.1:${explicitPort}`, '--log-level', 'debug'])
    let client: Proc | undefined
    try {
      await server.waitFor(/listening on/)
      client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--socks', `127.0.0.1:${socksPort}`])
      await client.waitFor(/SOCKS5 on/)
      await client.waitFor(/session to .* up/)
      const refusals = () => server.log.filter((l) => l.includes(`]:${port}: `) && / refused \[/.test(l))
      const send = (v6: string, to: number) => {
        const s = net.connect({ host: '127.0.0.1', port: socksPort })
        s.on('error', () => {})
        // Read the replies: a paused socket with unread bytes never sees the
        // peer's FIN, so it would never close.
        s.resume()
        s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 4]), ipv6Bytes(v6), Buffer.from([to >> 8, to & 255]), Buffer.from('GET / HTTP/1.0\r\n\r\n')]))
        return s
      }
      const ask = async (v6: string): Promise<string> => {
        const before = refusals().length
        const s = send(v6, port)
        await new Promise((r) => s.once('close', r))
        for (let i = 0; i < 300 && refusals().length === before; i++) await new Promise((r) => setTimeout(r, 50))
        return refusals()[before] ?? 'no refusal logged'
      }
      for (const v6 of ['::127.0.0.1', '::ffff:127.0.0.1', '::ffff:0:7f00:1', '2002:7f00:1::', '64:ff9b::7f00:1', '2001:0:4136:e378:8000:63bf:80ff:fffe']) {
        expect(await ask(v6), v6).toMatch(/: not in the allow list( session=\w+ stream=\d+ code=not_allowed)?$/)
      }
      expect(accepted).toBe(0)
      // the mapped form of an explicitly allowed IPv4 is judged as that IPv4: it goes through (to this machine only)
      const s = send('::ffff:127.0.0.1', explicitPort)
      await new Promise((r) => s.once('close', r))
      expect(acceptedExplicit).toBe(1)
    } finally {
      await client?.stop()
      await server.stop()
      await close(target)
      await close(explicit)
    }
  })
})

/** The 16 bytes of an IPv6 address (for the SOCKS5 request; written here independently of the code under test). */
function ipv6Bytes(a: string): Buffer {
  const words = (p: string) => (p === '' ? [] : p.split(':').flatMap((g) => (g.includes('.') ? [g.split('.').slice(0, 2), g.split('.').slice(2)].map(([x, y]) => ((Number(x) << 8) | Number(y)).toString(16)) : [g])))
  const [head, tail] = a.includes('::') ? a.split('::') : [a, '']
  const h = words(head!)
  const t = words(tail!)
  return Buffer.from([...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((w) => w.padStart(4, '0')).join(''), 'hex')
}
