/** The tunnel's pure pieces: allow list, SOCKS5 parsing, keys, failure limiter. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { AllowList, FailureLimiter, generateKey, isPublicAddress, parseKey, readKeyFile, Socks5Parser, SocksReply } from 'synmux'
import { ROOT } from '../helpers'

describe('AllowList', () => {
  it('denies everything by default', () => {
    const a = AllowList.parse([])
    expect(a.match({ host: 'example.com', port: 80, address: '93.184.216.34' })).toBeUndefined()
  })

  it('a wildcard reaches public addresses only, never private or loopback ones', () => {
    const a = AllowList.parse('*:443')
    expect(a.match({ host: 'example.com', port: 443, address: '93.184.216.34' })).toBe('*:443')
    expect(a.match({ host: 'example.com', port: 80, address: '93.184.216.34' })).toBeUndefined()
    for (const address of ['127.0.0.1', '10.1.2.3', '192.168.1.1', '172.20.0.1', '169.254.1.1', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '0.0.0.0', '100.64.0.1']) {
      expect(a.match({ host: 'rebound.example', port: 443, address }), address).toBeUndefined()
    }
  })

  it('suffix wildcards match the domain and its subdomains, public addresses only', () => {
    const a = AllowList.parse('*.example.com:80-90')
    expect(a.match({ host: 'example.com', port: 85, address: '1.1.1.1' })).toBeDefined()
    expect(a.match({ host: 'a.b.EXAMPLE.com.', port: 80, address: '1.1.1.1' })).toBeDefined()
    expect(a.match({ host: 'badexample.com', port: 80, address: '1.1.1.1' })).toBeUndefined()
    expect(a.match({ host: 'a.example.com', port: 91, address: '1.1.1.1' })).toBeUndefined()
    expect(a.match({ host: 'a.example.com', port: 80, address: '10.0.0.1' })).toBeUndefined()
  })

  it('explicit IPs, CIDR blocks and exact names may name private hosts', () => {
    const a = AllowList.parse(['127.0.0.1:8080', '10.0.0.0/8:*', '[::1]:22', 'localhost:9000', '[fd00::/8]:53'])
    expect(a.match({ host: '127.0.0.1', port: 8080, address: '127.0.0.1' })).toBe('127.0.0.1:8080')
    expect(a.match({ host: '127.0.0.1', port: 8081, address: '127.0.0.1' })).toBeUndefined()
    expect(a.match({ host: 'db', port: 5432, address: '10.9.9.9' })).toBe('10.0.0.0/8:*')
    expect(a.match({ host: '::1', port: 22, address: '::1' })).toBe('[::1]:22')
    expect(a.match({ host: 'localhost', port: 9000, address: '127.0.0.1' })).toBe('localhost:9000')
    expect(a.match({ host: 'other', port: 9000, address: '127.0.0.1' })).toBeUndefined()
    expect(a.match({ host: 'x', port: 53, address: 'fd12::3' })).toBe('[fd00::/8]:53')
  })

  it('rejects malformed entries with a coded error', () => {
    for (const e of ['', 'nohost', ':80', 'a:0', 'a:70000', 'a:9-3', '::1:80', '[::1/200]:1', '10.0.0.0/33:1', 'bad_host!:1', '[example.com]:1', 'a:x']) {
      if (e === '') {
        expect(AllowList.parse(e).entries).toEqual([])
        continue
      }
      expect(() => AllowList.parse(e), e).toThrow(expect.objectContaining({ code: 'SYNMUX_BAD_ALLOW_ENTRY' }))
    }
  })

  it('isPublicAddress', () => {
    expect(isPublicAddress('8.8.8.8')).toBe(true)
    expect(isPublicAddress('2606:4700::1111')).toBe(true)
    expect(isPublicAddress('198.18.0.1')).toBe(false)
    expect(isPublicAddress('not-an-ip')).toBe(false)
  })
})

describe('Socks5Parser', () => {
  const greeting = Buffer.from([5, 1, 0])
  const request = (atyp: number, addr: Buffer, port: number) => Buffer.concat([Buffer.from([5, 1, 0, atyp]), addr, Buffer.from([port >> 8, port & 255])])

  it('parses greeting and CONNECT for IPv4, IPv6 and domain, byte by byte', () => {
    const cases = [
      [request(1, Buffer.from([127, 0, 0, 1]), 80), { host: '127.0.0.1', port: 80, addressType: 'ipv4' }],
      [request(4, Buffer.from('00000000000000000000000000000001', 'hex'), 443), { host: '::1', port: 443, addressType: 'ipv6' }],
      [request(3, Buffer.concat([Buffer.from([11]), Buffer.from('example.com')]), 8080), { host: 'example.com', port: 8080, addressType: 'domain' }],
    ] as const
    for (const [req, want] of cases) {
      const p = new Socks5Parser()
      const all = Buffer.concat([greeting, req, Buffer.from('GET /')])
      const sent: Buffer[] = []
      let got: ReturnType<Socks5Parser['push']> = {}
      for (let i = 0; i < all.length && !got.request; i++) {
        got = p.push(all.subarray(i, i + 1))
        if (got.send) sent.push(got.send)
      }
      expect(Buffer.concat(sent)).toEqual(Buffer.from([5, 0]))
      expect(got.request).toEqual(want)
    }
  })

  it('returns bytes the application sent right after the request', () => {
    const p = new Socks5Parser()
    const r = p.push(Buffer.concat([greeting, request(1, Buffer.from([1, 2, 3, 4]), 80), Buffer.from('early')]))
    expect(r.send).toEqual(Buffer.from([5, 0]))
    expect(r.rest!.toString()).toBe('early')
  })

  it('refuses what it does not support, with the right reply code', () => {
    const bad: [Buffer, number | undefined][] = [
      [Buffer.from([4, 1, 0]), undefined],
      [Buffer.from([5, 0]), undefined],
      [Buffer.from([5, 1, 2]), 0xff],
      [Buffer.concat([greeting, Buffer.from([5, 2, 0, 1, 1, 2, 3, 4, 0, 80])]), SocksReply.COMMAND_NOT_SUPPORTED],
      [Buffer.concat([greeting, Buffer.from([5, 1, 0, 9, 1, 2, 3, 4, 0, 80])]), SocksReply.ADDRESS_TYPE_NOT_SUPPORTED],
      [Buffer.concat([greeting, Buffer.from([5, 1, 0, 3, 0, 0, 80])]), SocksReply.GENERAL_FAILURE],
      [Buffer.concat([greeting, Buffer.from([5, 1, 0, 1, 1, 2, 3, 4, 0, 0])]), SocksReply.GENERAL_FAILURE],
    ]
    for (const [bytes, code] of bad) {
      let err: { code?: string; reply?: Buffer } | undefined
      try {
        new Socks5Parser().push(bytes)
      } catch (e) {
        err = e as never
      }
      expect(err?.code).toBe('SYNMUX_SOCKS_PROTOCOL')
      if (code === 0xff) expect(err?.reply).toEqual(Buffer.from([5, 0xff]))
      else if (code !== undefined) {
        // the greeting came in the same write: its method reply comes first
        expect(err?.reply?.subarray(0, 2)).toEqual(Buffer.from([5, 0]))
        expect(err?.reply?.[3]).toBe(code)
      } else expect(err?.reply).toBeUndefined()
    }
  })
})

describe('keys', () => {
  it('keygen output parses back to 32 random bytes', () => {
    const a = generateKey()
    const b = generateKey()
    expect(a).not.toBe(b)
    expect(parseKey(`# comment\n${a}\n`).length).toBe(32)
  })

  it('rejects bad key files with SYNMUX_BAD_KEY', () => {
    for (const text of ['', 'hello', 'synmux-psk-v1:', 'synmux-psk-v1:c2hvcnQ=', `${generateKey()}\n${generateKey()}`, 'synmux-psk-v1:!!!!']) {
      expect(() => parseKey(text), text).toThrow(expect.objectContaining({ code: 'SYNMUX_BAD_KEY' }))
    }
  })

  it('warns when the key file is readable by others', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-key-'))
    const file = path.join(dir, 'key')
    fs.writeFileSync(file, generateKey(), { mode: 0o600 })
    expect(readKeyFile(file).warning).toBeUndefined()
    fs.chmodSync(file, 0o644)
    if (process.platform !== 'win32') expect(readKeyFile(file).warning).toMatch(/readable by other users/)
    expect(() => readKeyFile(path.join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'SYNMUX_BAD_KEY' }))
    fs.rmSync(dir, { recursive: true })
  })
})

describe('FailureLimiter', () => {
  it('blocks a source after maxFailures in the window, and forgives after it', () => {
    let t = 0
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 1000, now: () => t })
    for (let i = 0; i < 3; i++) {
      expect(l.allowed('1.2.3.4')).toBe(true)
      l.fail('1.2.3.4')
    }
    expect(l.allowed('1.2.3.4')).toBe(false)
    expect(l.allowed('5.6.7.8')).toBe(true)
    t = 1000
    expect(l.allowed('1.2.3.4')).toBe(true)
  })

  it('tracks a bounded number of sources', () => {
    const l = new FailureLimiter({ maxSources: 100 })
    for (let i = 0; i < 10_000; i++) l.fail(`src-${i}`)
    expect(l.size).toBe(100)
  })
})

describe('LineBudget (refused-stream log lines)', () => {
  // Internal (src/common/log-budget.ts): loaded from the build, as test/secure does.
  const { LineBudget } = createRequire(import.meta.url)(path.join(ROOT, 'dist', 'cjs', 'common', 'log-budget.js'))

  it('lets `lines` through per interval and subject, counts the rest, and says how many on the next line', () => {
    let t = 0
    const b = new LineBudget(3, 1000, () => t)
    const a = {}
    const other = {}
    expect([b.take(a), b.take(a), b.take(a)]).toEqual(['', '', ''])
    expect(b.take(a)).toBe(null)
    expect(b.take(a)).toBe(null)
    expect(b.skipped(a)).toBe(2)
    expect(b.take(other)).toBe('') // another subject has its own budget
    t = 999
    expect(b.take(a)).toBe(null)
    t = 1000 // a new interval: the next line says what was left out
    expect(b.take(a)).toBe(' (3 more not logged)')
    expect(b.skipped(a)).toBe(0)
    expect(b.take(a)).toBe('')
  })
})
