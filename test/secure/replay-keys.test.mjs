// The replay guard's rules (window, restart floor, seen ephemerals, newest
// per client, bounded memory) and the key files (generation, private key
// file mode, public key line, authorized keys).
import { describe, it, expect } from 'vitest'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  ReplayGuard,
  generateKeyPair,
  derivePublicKey,
  encodePublicKey,
  decodePublicKey,
  encodePrivateKey,
  decodePrivateKey,
  writePrivateKeyFile,
  readPrivateKeyFile,
  parseAuthorizedKeys,
  readAuthorizedKeysFile,
  AuthorizedKeys,
  SecureError,
} from 'synmux'

const S = Buffer.alloc(32, 1)
const C = Buffer.alloc(32, 2)
const eph = () => crypto.randomBytes(32)
const us = (ms) => ms * 1000

describe('ReplayGuard', () => {
  it('fresh once; the same ephemeral again is replayed; an older timestamp from the same client is not-newer', () => {
    let now = 1_000_000
    const g = new ReplayGuard({ clock: () => now, notBefore: 0 })
    const e = eph()
    expect(g.check(S, C, e, us(now))).toEqual({ fresh: true })
    expect(g.check(S, C, e, us(now) + 1)).toEqual({ fresh: false, reason: 'replayed' })
    expect(g.check(S, C, eph(), us(now) - 5)).toEqual({ fresh: false, reason: 'not-newer' })
    expect(g.check(S, C, eph(), us(now))).toEqual({ fresh: false, reason: 'not-newer' })
    expect(g.check(S, C, eph(), us(now) + 10)).toEqual({ fresh: true })
    // Another client, or the same client of another server key, is independent.
    expect(g.check(S, Buffer.alloc(32, 3), eph(), us(now) - 5)).toEqual({ fresh: true })
    expect(g.check(Buffer.alloc(32, 9), C, eph(), us(now) - 5)).toEqual({ fresh: true })
  })

  it('outside the window either way is clock; the window is configurable', () => {
    const now = 5_000_000
    const g = new ReplayGuard({ clock: () => now, notBefore: 0, window: 10_000 })
    expect(g.window).toBe(10_000)
    expect(g.check(S, C, eph(), us(now - 10_001))).toEqual({ fresh: false, reason: 'clock' })
    expect(g.check(S, C, eph(), us(now + 10_001))).toEqual({ fresh: false, reason: 'clock' })
    expect(g.check(S, C, eph(), us(now - 9_999))).toEqual({ fresh: true })
  })

  it('a flight from before notBefore (a restart) is never fresh', () => {
    const now = 5_000_000
    const g = new ReplayGuard({ clock: () => now, notBefore: now - 1000 })
    expect(g.check(S, C, eph(), us(now - 2000))).toEqual({ fresh: false, reason: 'not-newer' })
    expect(g.check(S, C, eph(), us(now - 500))).toEqual({ fresh: true })
    // The default floor is when this process started.
    const d = new ReplayGuard()
    expect(d.check(S, C, eph(), us(performance.timeOrigin - 1))).toEqual({ fresh: false, reason: 'not-newer' })
    expect(d.check(S, C, eph(), us(Date.now()))).toEqual({ fresh: true })
  })

  it('bounded: a full cache refuses (busy) until entries leave the window', () => {
    let now = 10_000_000
    const g = new ReplayGuard({ clock: () => now, notBefore: 0, window: 1000, maxEntries: 4 })
    for (let i = 0; i < 4; i++) expect(g.check(S, Buffer.alloc(32, 10 + i), eph(), us(now) + i)).toEqual({ fresh: true })
    expect(g.size).toEqual([4, 4])
    expect(g.check(S, Buffer.alloc(32, 20), eph(), us(now) + 5)).toEqual({ fresh: false, reason: 'busy' })
    now += 2000 // everything above is now outside the window
    expect(g.check(S, Buffer.alloc(32, 21), eph(), us(now))).toEqual({ fresh: true })
    expect(g.size[0]).toBeLessThanOrEqual(4)
    // The newest-per-client entries leave with the window too.
    expect(g.size[1]).toBeLessThanOrEqual(g.size[0])
  })

  it('rejects bad options with RangeError/TypeError and a code', () => {
    expect(() => new ReplayGuard({ window: -1 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new ReplayGuard({ maxEntries: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new ReplayGuard({ clock: 5 })).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

describe('keys', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `synmux-keys-${process.pid}-`))

  it('generates X25519 key pairs; the public key is one base64 line; round trips', () => {
    const k = generateKeyPair()
    expect(k.privateKey.length).toBe(32)
    expect(derivePublicKey(k.privateKey).equals(k.publicKey)).toBe(true)
    const line = encodePublicKey(k.publicKey)
    expect(line).toMatch(/^[A-Za-z0-9+/]{43}=$/)
    expect(decodePublicKey(`  ${line}\n`).equals(k.publicKey)).toBe(true)
    expect(decodePrivateKey(encodePrivateKey(k.privateKey)).equals(k.privateKey)).toBe(true)
    expect(encodePrivateKey(k.privateKey)).toContain(`# public key: ${line}`)
  })

  it('bad keys: TypeError or RangeError with code SYNMUX_SECURE_BAD_KEY', () => {
    expect(() => decodePublicKey('not a key')).toThrow(expect.objectContaining({ name: 'TypeError', code: 'SYNMUX_SECURE_BAD_KEY' }))
    expect(() => decodePublicKey(Buffer.alloc(16).toString('base64'))).toThrow(expect.objectContaining({ name: 'RangeError', code: 'SYNMUX_SECURE_BAD_KEY' }))
    expect(() => decodePublicKey(Buffer.alloc(32).toString('base64'))).toThrow(expect.objectContaining({ name: 'RangeError', code: 'SYNMUX_SECURE_BAD_KEY' })) // low order
    expect(() => decodePublicKey(42)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => encodePublicKey(Buffer.alloc(31))).toThrow(expect.objectContaining({ name: 'RangeError', code: 'SYNMUX_SECURE_BAD_KEY' }))
    expect(() => decodePrivateKey('synmux-psk-v1:abcd')).toThrow(expect.objectContaining({ name: 'TypeError', code: 'SYNMUX_SECURE_BAD_KEY' }))
    expect(() => decodePrivateKey(`synmux-private-key-v1:${Buffer.alloc(20).toString('base64')}`)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'SYNMUX_SECURE_BAD_KEY' }))
  })

  it('private key files are written 0600, read back, and refused when group/others can read them', () => {
    const k = generateKeyPair()
    const file = path.join(tmp, 'server.key')
    writePrivateKeyFile(file, k.privateKey)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(readPrivateKeyFile(file).equals(k.privateKey)).toBe(true)
    expect(() => writePrivateKeyFile(file, k.privateKey)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
    writePrivateKeyFile(file, k.privateKey, { overwrite: true })
    fs.chmodSync(file, 0o644)
    let err
    try {
      readPrivateKeyFile(file)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(SecureError)
    expect(err.code).toBe('SYNMUX_SECURE_KEY_PERMISSIONS')
    expect(err.message).toContain('chmod 600')
    fs.chmodSync(file, 0o640)
    expect(() => readPrivateKeyFile(file)).toThrow(expect.objectContaining({ code: 'SYNMUX_SECURE_KEY_PERMISSIONS' }))
    expect(() => readPrivateKeyFile(path.join(tmp, 'missing.key'))).toThrow(expect.objectContaining({ code: 'SYNMUX_SECURE_BAD_KEY' }))
  })

  it('authorized keys: one key and a name per line, # comments; lookups by key', () => {
    const a = generateKeyPair().publicKey
    const b = generateKeyPair().publicKey
    const text = `# clients\n${encodePublicKey(a)} alice laptop\n\n   ${encodePublicKey(b)}\tbob # phone\n`
    const keys = parseAuthorizedKeys(text)
    expect(keys).toBeInstanceOf(AuthorizedKeys)
    expect(keys.size).toBe(2)
    expect(keys.get(a)).toBe('alice laptop')
    expect(keys.authorize(b)).toBe('bob')
    expect(keys.get(generateKeyPair().publicKey)).toBe(null)
    expect(keys.get('nonsense')).toBe(null)
    const file = path.join(tmp, 'authorized')
    fs.writeFileSync(file, text)
    expect(readAuthorizedKeysFile(file).size).toBe(2)
    expect(() => readAuthorizedKeysFile(path.join(tmp, 'none'))).toThrow(expect.objectContaining({ code: 'SYNMUX_SECURE_BAD_AUTHORIZED_KEYS' }))
  })

  it('authorized keys: errors name the line, with a code', () => {
    const k = encodePublicKey(generateKeyPair().publicKey)
    const bad = [
      [`${k}`, /line 1: the key needs a name/],
      [`# ok\nAAAA alice`, /line 2: 'AAAA' is not a public key/],
      [`${k} a\n${k} b`, /line 2: the key is already on line 1/],
      [`${k} ${'x'.repeat(65)}`, /longer than 64/],
      [`${k} a\u0007b`, /control character/],
    ]
    for (const [text, msg] of bad) {
      expect(() => parseAuthorizedKeys(text)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'SYNMUX_SECURE_BAD_AUTHORIZED_KEYS', message: expect.stringMatching(msg) }))
    }
    expect(() => parseAuthorizedKeys(null)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(parseAuthorizedKeys('# nobody\n').size).toBe(0)
  })
})
