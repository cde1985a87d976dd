// Handshake work done ahead (src/secure/precompute.ts): ephemeral key
// pairs made in the thread pool and handed out once each, the
// static-static DH and static public key imports remembered per key. The
// Noise vectors (vectors.test.mjs) cover the handshake with fixed keys;
// this checks what the vectors cannot: pooled pairs are valid, fresh and
// never handed out twice, and remembered DH outputs equal computed ones
// (an invalid key is refused every time, never remembered).
import { describe, it, expect } from 'vitest'
import crypto from 'node:crypto'
import path from 'node:path'
import { createRequire } from 'node:module'

const dist = path.resolve(import.meta.dirname, '../../dist/cjs/secure')
const require = createRequire(import.meta.url)
const { takeEphemeral, refillEphemeral, dhStaticStatic, dhRemoteStatic } = require(path.join(dist, 'precompute.js'))
const { dh, x25519KeyPair } = require(path.join(dist, 'primitives.js'))

const publicOf = (priv) => Buffer.from(crypto.createPublicKey(crypto.createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), priv]), format: 'der', type: 'pkcs8' })).export({ format: 'jwk' }).x, 'base64url')
const waitPool = () => new Promise((r) => setTimeout(r, 200))

describe('ephemeral key pairs made ahead', () => {
  it('hands out valid pairs, each once, from the pool and beyond it', async () => {
    refillEphemeral()
    await waitPool()
    const seen = new Set()
    // 40 takes: the first 8 come from the filled pool, the rest from it or made on the spot.
    for (let i = 0; i < 40; i++) {
      const e = takeEphemeral()
      expect(e.privateKey.length).toBe(32)
      expect(e.publicKey.equals(publicOf(e.privateKey))).toBe(true)
      const id = e.privateKey.toString('hex')
      expect(seen.has(id)).toBe(false)
      seen.add(id)
      if (i % 10 === 9) await waitPool()
    }
    expect(seen.size).toBe(40)
  })

  it('a pooled pair agrees with its peer (the DH both ways is the same)', async () => {
    refillEphemeral()
    await waitPool()
    const a = takeEphemeral()
    const b = takeEphemeral()
    expect(dh(a, b.publicKey).equals(dh(b, a.publicKey))).toBe(true)
  })
})

describe('remembered static DH', () => {
  const s1 = x25519KeyPair(crypto.randomBytes(32))
  const s2 = x25519KeyPair(crypto.randomBytes(32))

  it('static-static: the remembered output equals the computed one, both directions', () => {
    const first = dhStaticStatic(s1, s2.publicKey)
    expect(first.equals(dh(s1, s2.publicKey))).toBe(true)
    expect(dhStaticStatic(s1, s2.publicKey).equals(first)).toBe(true)
    expect(dhStaticStatic(s2, s1.publicKey).equals(first)).toBe(true)
  })

  it('a remote static key imported once gives the same DH with every local key', () => {
    for (let i = 0; i < 3; i++) {
      const e = takeEphemeral()
      expect(dhRemoteStatic(e, s2.publicKey).equals(dh(e, s2.publicKey))).toBe(true)
    }
  })

  it('a low-order public key is refused every time (null), not remembered', () => {
    const zero = Buffer.alloc(32)
    expect(dhStaticStatic(s1, zero)).toBe(null)
    expect(dhStaticStatic(s1, zero)).toBe(null)
    expect(dhRemoteStatic(s1, zero)).toBe(null)
    expect(dhRemoteStatic(s1, zero)).toBe(null)
  })
})
