// The record layer and the CipherState rules it rests on: nonces never
// wrap, a failed decryption never advances state, rekey per Noise 11.3 at
// the announced interval, end record against truncation.
import { describe, it, expect } from 'vitest'
import crypto from 'node:crypto'
import { CipherState, RecordSealer, RecordOpener, SecureError, MAX_RECORD_PLAINTEXT } from 'synmux'

const KEY = crypto.randomBytes(32)
const pair = (cipher = 'ChaChaPoly', { sendInterval = 2 ** 30, recvInterval = sendInterval, max = MAX_RECORD_PLAINTEXT } = {}) => {
  const tx = new CipherState(cipher, KEY)
  const rx = new CipherState(cipher, KEY)
  return { tx, rx, sealer: new RecordSealer(tx, sendInterval, max), opener: new RecordOpener(rx, recvInterval) }
}
const codeOf = (fn) => {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(SecureError)
    return err.code
  }
  return null
}

describe('CipherState', () => {
  it('never wraps: n = 2^64 - 2 is the last usable nonce, then NONCE_EXHAUSTED for encrypt and decrypt', () => {
    for (const cipher of ['ChaChaPoly', 'AESGCM']) {
      const cs = new CipherState(cipher, KEY)
      cs.setNonce(2n ** 64n - 2n)
      const ct = cs.encryptWithAd(Buffer.alloc(0), Buffer.from('last'))
      expect(cs.nonce).toBe(2n ** 64n - 1n)
      expect(codeOf(() => cs.encryptWithAd(Buffer.alloc(0), Buffer.from('x')))).toBe('SYNMUX_SECURE_NONCE_EXHAUSTED')
      const rx = new CipherState(cipher, KEY)
      rx.setNonce(2n ** 64n - 2n)
      expect(rx.decryptWithAd(Buffer.alloc(0), ct).toString()).toBe('last')
      expect(codeOf(() => rx.decryptWithAd(Buffer.alloc(0), ct))).toBe('SYNMUX_SECURE_NONCE_EXHAUSTED')
      expect(() => cs.setNonce(2n ** 64n)).toThrow(RangeError)
    }
  })

  it('a failed decryption returns null and does not advance the nonce (GHSA-6cr6-fmvc-vw2p)', () => {
    const tx = new CipherState('ChaChaPoly', KEY)
    const rx = new CipherState('ChaChaPoly', KEY)
    const a = tx.encryptWithAd(Buffer.alloc(0), Buffer.from('first'))
    const bad = Buffer.from(a)
    bad[0] ^= 1
    expect(rx.decryptWithAd(Buffer.alloc(0), bad)).toBe(null)
    expect(rx.nonce).toBe(0n)
    expect(rx.decryptWithAd(Buffer.alloc(0), a).toString()).toBe('first')
    expect(rx.nonce).toBe(1n)
  })

  it('Rekey() is REKEY(k) = first 32 bytes of ENCRYPT(k, 2^64 - 1, "", 32 zeros), keeping n (checked against node:crypto directly)', () => {
    for (const [cipher, alg, nonce] of [
      ['ChaChaPoly', 'chacha20-poly1305', Buffer.from('00000000ffffffffffffffff', 'hex')],
      ['AESGCM', 'aes-256-gcm', Buffer.from('00000000ffffffffffffffff', 'hex')],
    ]) {
      const c = crypto.createCipheriv(alg, KEY, nonce, { authTagLength: 16 })
      const next = Buffer.concat([c.update(Buffer.alloc(32)), c.final()]).subarray(0, 32)
      const cs = new CipherState(cipher, KEY)
      cs.encryptWithAd(Buffer.alloc(0), Buffer.from('advance n'))
      cs.rekey()
      expect(cs.nonce).toBe(1n)
      const expected = new CipherState(cipher, next)
      expected.setNonce(1n)
      expect(cs.encryptWithAd(Buffer.from('ad'), Buffer.from('after rekey')).equals(expected.encryptWithAd(Buffer.from('ad'), Buffer.from('after rekey')))).toBe(true)
    }
  })
})

describe('records', () => {
  it('round trip in any chunking; a record never exceeds the maximum plaintext; the end record ends it', () => {
    const { sealer, opener } = pair('ChaChaPoly', { max: 1000 })
    const data = crypto.randomBytes(10_500)
    const wire = Buffer.concat([...sealer.seal(data), ...sealer.end()])
    expect(sealer.counters.records).toBe(12) // 11 data records + the end record
    expect(wire.length).toBe(data.length + 12 * 18)
    const out = []
    for (let off = 0; off < wire.length; ) {
      const n = 1 + Math.floor(Math.random() * 3000)
      out.push(...opener.write(wire.subarray(off, off + n)))
      off += n
    }
    opener.finish()
    expect(opener.ended).toBe(true)
    expect(Buffer.concat(out).equals(data)).toBe(true)
    expect(out.every((p) => p.length <= 1000)).toBe(true)
  })

  it('every single flipped bit anywhere in a record stream is caught; nothing tampered is ever returned', () => {
    const { sealer } = pair()
    const parts = [crypto.randomBytes(100), crypto.randomBytes(40), crypto.randomBytes(70)]
    const wire = Buffer.concat([...parts.flatMap((p) => sealer.seal(p)), ...sealer.end()])
    const good = Buffer.concat(parts)
    for (let pos = 0; pos < wire.length; pos++) {
      const { opener } = pair()
      const bad = Buffer.from(wire)
      bad[pos] ^= 1 << pos % 8
      const out = []
      let code = codeOf(() => out.push(...opener.write(bad)))
      if (code === null) code = codeOf(() => opener.finish())
      expect(['SYNMUX_SECURE_DECRYPT_FAILED', 'SYNMUX_SECURE_BAD_RECORD', 'SYNMUX_SECURE_TRUNCATED']).toContain(code)
      const got = Buffer.concat(out)
      expect(good.subarray(0, got.length).equals(got)).toBe(true)
    }
  })

  it('reordered, replayed and dropped records fail with SYNMUX_SECURE_DECRYPT_FAILED; the opener stays failed and its nonce unchanged', () => {
    const { sealer } = pair()
    const recs = [0, 1, 2, 3].map((i) => Buffer.concat(sealer.seal(Buffer.from(`record ${i}`))))
    for (const order of [[0, 2, 1, 3], [0, 1, 1, 2], [0, 2, 3]]) {
      const { opener, rx } = pair()
      const out = []
      let code = null
      for (const i of order) {
        code = codeOf(() => out.push(...opener.write(recs[i])))
        if (code) break
      }
      expect(code).toBe('SYNMUX_SECURE_DECRYPT_FAILED')
      const n = rx.nonce
      // Even the right record is refused now: the channel is over.
      expect(codeOf(() => opener.write(recs[3]))).toBe('SYNMUX_SECURE_DECRYPT_FAILED')
      expect(rx.nonce).toBe(n)
      expect(out.map(String)).toEqual(order.slice(0, out.length).map((i) => `record ${i}`))
    }
  })

  it('truncation: without the end record, or inside a record, finish() throws SYNMUX_SECURE_TRUNCATED', () => {
    const { sealer } = pair()
    const recs = Buffer.concat([...sealer.seal(Buffer.from('hello')), ...sealer.seal(Buffer.from('world'))])
    const a = pair()
    a.opener.write(recs)
    expect(codeOf(() => a.opener.finish())).toBe('SYNMUX_SECURE_TRUNCATED')
    const b = pair()
    b.opener.write(recs.subarray(0, recs.length - 3))
    expect(codeOf(() => b.opener.finish())).toBe('SYNMUX_SECURE_TRUNCATED')
  })

  it('bytes after the end record, and a length below the tag, are SYNMUX_SECURE_BAD_RECORD', () => {
    const { sealer, opener } = pair()
    const end = Buffer.concat(sealer.end())
    expect(codeOf(() => opener.write(Buffer.concat([end, Buffer.from([0])])))).toBe('SYNMUX_SECURE_BAD_RECORD')
    const p = pair()
    expect(codeOf(() => p.opener.write(Buffer.from([0, 15, 1, 2, 3])))).toBe('SYNMUX_SECURE_BAD_RECORD')
    expect(codeOf(() => p.sealer.end() && p.sealer.seal(Buffer.from('x')))).toBe('SYNMUX_SECURE_BAD_RECORD')
  })

  it('rekey happens exactly at the announced interval: a receiver assuming another interval fails at the first record after it', () => {
    for (const cipher of ['ChaChaPoly', 'AESGCM']) {
      // 100-byte records are 118 bytes on the wire: with interval 1,024
      // the sender rekeys after record 9 (9 × 118 = 1,062).
      const ok = pair(cipher, { sendInterval: 1024 })
      const wire = Buffer.concat(Array.from({ length: 30 }, (_, i) => Buffer.concat(ok.sealer.seal(Buffer.alloc(100, i)))))
      expect(ok.sealer.counters.rekeys).toBe(3)
      expect(Buffer.concat(ok.opener.write(wire)).length).toBe(3000)
      expect(ok.opener.counters.rekeys).toBe(3)
      const wrong = pair(cipher, { sendInterval: 1024, recvInterval: 2048 })
      const out = []
      expect(codeOf(() => out.push(...wrong.opener.write(wire)))).toBe('SYNMUX_SECURE_DECRYPT_FAILED')
      expect(wrong.opener.counters.records).toBe(9)
    }
  })

  it('the record layer refuses to seal once the nonce is exhausted', () => {
    const { sealer, tx } = pair()
    tx.setNonce(2n ** 64n - 2n)
    sealer.seal(Buffer.from('ok'))
    expect(codeOf(() => sealer.seal(Buffer.from('no')))).toBe('SYNMUX_SECURE_NONCE_EXHAUSTED')
  })
})
