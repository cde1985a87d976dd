/**
 * The Noise crypto functions (Noise Protocol Framework rev 34, sections 4
 * and 12) on `node:crypto` only: the `25519` DH functions, the
 * `ChaChaPoly` and `AESGCM` cipher functions, and the `SHA256`, `SHA512`,
 * `BLAKE2s` and `BLAKE2b` hash functions with HMAC and HKDF.
 * No primitive is implemented here; this file only adapts Node's.
 * Not part of the public API.
 * @packageDocumentation
 */
import crypto from 'node:crypto'

/** DHLEN of the 25519 functions. */
export const DHLEN = 32
/** Bytes of an AEAD tag. */
export const TAGLEN = 16
/** The largest nonce a CipherState may use (2^64 - 1 is reserved for rekey). */
export const MAX_NONCE = 2n ** 64n - 1n

/** Cipher functions: `ENCRYPT` / `DECRYPT` (spec 4.2). */
export interface CipherFunctions {
  /** `ChaChaPoly` or `AESGCM`. */
  readonly name: 'ChaChaPoly' | 'AESGCM'
  /** Node's cipher name. */
  readonly algorithm: 'chacha20-poly1305' | 'aes-256-gcm'
  /** Writes the 96-bit nonce for counter `n` into `out` (12 bytes). */
  nonce(n: bigint, out: Buffer): void
}

/** Hash functions (spec 4.3). */
export interface HashFunctions {
  readonly name: 'SHA256' | 'SHA512' | 'BLAKE2s' | 'BLAKE2b'
  /** Node's digest name. */
  readonly algorithm: string
  readonly hashLen: 32 | 64
  readonly blockLen: 64 | 128
}

export const CHACHAPOLY: CipherFunctions = {
  name: 'ChaChaPoly',
  algorithm: 'chacha20-poly1305',
  // 32 bits of zeros, then n little-endian (spec 12.3).
  nonce(n, out) {
    out.writeUInt32LE(0, 0)
    out.writeBigUInt64LE(n, 4)
  },
}

export const AESGCM: CipherFunctions = {
  name: 'AESGCM',
  algorithm: 'aes-256-gcm',
  // 32 bits of zeros, then n big-endian (spec 12.4).
  nonce(n, out) {
    out.writeUInt32BE(0, 0)
    out.writeBigUInt64BE(n, 4)
  },
}

export const HASHES: Record<HashFunctions['name'], HashFunctions> = {
  SHA256: { name: 'SHA256', algorithm: 'sha256', hashLen: 32, blockLen: 64 },
  SHA512: { name: 'SHA512', algorithm: 'sha512', hashLen: 64, blockLen: 128 },
  BLAKE2s: { name: 'BLAKE2s', algorithm: 'blake2s256', hashLen: 32, blockLen: 64 },
  BLAKE2b: { name: 'BLAKE2b', algorithm: 'blake2b512', hashLen: 64, blockLen: 128 },
}

export const CIPHERS: Record<CipherFunctions['name'], CipherFunctions> = { ChaChaPoly: CHACHAPOLY, AESGCM }

/**
 * `ENCRYPT(k, n, ad, plaintext)`: ciphertext || 16-byte tag. `k` may be a
 * 32-byte Buffer or a secret KeyObject made from one.
 */
export function encrypt(c: CipherFunctions, k: crypto.KeyObject, n: bigint, ad: Uint8Array, plaintext: Uint8Array): Buffer {
  const [body, tag] = encryptParts(c, k, n, ad, plaintext)
  return Buffer.concat([body, tag], plaintext.length + TAGLEN)
}

/** `ENCRYPT` as two buffers: the ciphertext proper and the 16-byte tag. */
export function encryptParts(c: CipherFunctions, k: crypto.KeyObject, n: bigint, ad: Uint8Array, plaintext: Uint8Array): [Buffer, Buffer] {
  const iv = Buffer.allocUnsafe(12)
  c.nonce(n, iv)
  const cipher = crypto.createCipheriv(c.algorithm as 'aes-256-gcm', k, iv, { authTagLength: TAGLEN })
  if (ad.length > 0) cipher.setAAD(ad)
  const body = plaintext.length > 0 ? cipher.update(plaintext) : Buffer.alloc(0)
  // Stream ciphers emit nothing at final(); it only computes the tag.
  cipher.final()
  return [body, cipher.getAuthTag()]
}

/** Runs of pieces shorter than this are joined (one copy) before encryption: fewer cipher calls for small frames. */
const JOIN_BELOW = 1024

/**
 * `ENCRYPT` of a plaintext given in pieces (large pieces are not copied
 * to join them; runs of small ones are): the ciphertext in pieces, and
 * the 16-byte tag. The ciphertext pieces concatenated are exactly
 * `ENCRYPT(k, n, ad, concat(pieces))` without the tag.
 */
export function encryptPieces(c: CipherFunctions, k: crypto.KeyObject, n: bigint, ad: Uint8Array, pieces: readonly Uint8Array[]): [Buffer[], Buffer] {
  const iv = Buffer.allocUnsafe(12)
  c.nonce(n, iv)
  const cipher = crypto.createCipheriv(c.algorithm as 'aes-256-gcm', k, iv, { authTagLength: TAGLEN })
  if (ad.length > 0) cipher.setAAD(ad)
  const out: Buffer[] = []
  for (let i = 0; i < pieces.length; ) {
    const p = pieces[i]!
    if (p.length >= JOIN_BELOW || i + 1 === pieces.length || pieces[i + 1]!.length >= JOIN_BELOW) {
      if (p.length > 0) out.push(cipher.update(p))
      i++
      continue
    }
    // A run of small pieces: one copy, one cipher call.
    let j = i
    let len = 0
    while (j < pieces.length && pieces[j]!.length < JOIN_BELOW) len += pieces[j++]!.length
    out.push(cipher.update(Buffer.concat(pieces.slice(i, j) as Uint8Array[], len)))
    i = j
  }
  cipher.final()
  return [out, cipher.getAuthTag()]
}

/**
 * `DECRYPT(k, n, ad, ciphertext)`: the plaintext, or `null` when
 * authentication fails (or the ciphertext is shorter than a tag).
 */
export function decrypt(c: CipherFunctions, k: crypto.KeyObject, n: bigint, ad: Uint8Array, ciphertext: Uint8Array): Buffer | null {
  if (ciphertext.length < TAGLEN) return null
  const iv = Buffer.allocUnsafe(12)
  c.nonce(n, iv)
  const end = ciphertext.length - TAGLEN
  const decipher = crypto.createDecipheriv(c.algorithm as 'aes-256-gcm', k, iv, { authTagLength: TAGLEN })
  decipher.setAuthTag(ciphertext.subarray(end))
  if (ad.length > 0) decipher.setAAD(ad)
  const body = end > 0 ? decipher.update(ciphertext.subarray(0, end)) : Buffer.alloc(0)
  try {
    decipher.final()
  } catch {
    return null
  }
  return body
}

/**
 * `DECRYPT` of a ciphertext given in pieces (no copy to join them): the
 * plaintext pieces, or `null` when authentication fails. Nothing is
 * returned before the tag has been checked.
 */
export function decryptParts(c: CipherFunctions, k: crypto.KeyObject, n: bigint, ad: Uint8Array, pieces: readonly Uint8Array[], tag: Uint8Array): Buffer[] | null {
  if (tag.length !== TAGLEN) return null
  const iv = Buffer.allocUnsafe(12)
  c.nonce(n, iv)
  const decipher = crypto.createDecipheriv(c.algorithm as 'aes-256-gcm', k, iv, { authTagLength: TAGLEN })
  decipher.setAuthTag(tag)
  if (ad.length > 0) decipher.setAAD(ad)
  const out: Buffer[] = []
  for (const p of pieces) if (p.length > 0) out.push(decipher.update(p))
  try {
    decipher.final()
  } catch {
    return null
  }
  return out
}

/** `HASH(parts[0] || parts[1] || ...)`. */
export function hash(h: HashFunctions, ...parts: Uint8Array[]): Buffer {
  const d = crypto.createHash(h.algorithm)
  for (const p of parts) d.update(p)
  return d.digest()
}

/** `HMAC-HASH(key, parts...)` (RFC 2104 with the hash's BLOCKLEN; OpenSSL uses the digest's own block size). */
export function hmac(h: HashFunctions, key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const m = crypto.createHmac(h.algorithm, key)
  for (const p of parts) m.update(p)
  return m.digest()
}

const ONE = Uint8Array.of(1)
const TWO = Uint8Array.of(2)
const THREE = Uint8Array.of(3)

/** `HKDF(chaining_key, input_key_material, num_outputs)` exactly as spec 4.3 defines it. */
export function hkdf(h: HashFunctions, ck: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Buffer[] {
  const temp = hmac(h, ck, ikm)
  const o1 = hmac(h, temp, ONE)
  const o2 = hmac(h, temp, o1, TWO)
  if (outputs === 2) return [o1, o2]
  return [o1, o2, hmac(h, temp, o2, THREE)]
}

// DER wrappers of raw X25519 keys (RFC 8410): PKCS#8 and SubjectPublicKeyInfo.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

/**
 * Raw private keys imported as KeyObjects, with their public keys. Importing
 * a raw X25519 key means a PKCS#8 DER (OpenSSL 3 decodes it in about 0.4 ms),
 * so a static key — the same in every handshake — is imported once. Bounded
 * (a process uses few static keys); ephemeral keys never enter it.
 */
const imported = new Map<string, { key: crypto.KeyObject; publicKey: Buffer }>()
const MAX_IMPORTED = 32

function importPrivate(raw: Uint8Array): { key: crypto.KeyObject; publicKey: Buffer } {
  const id = Buffer.from(raw).toString('base64')
  let e = imported.get(id)
  if (e === undefined) {
    const key = uncachedPrivateKey(raw)
    e = { key, publicKey: Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url') }
    if (imported.size >= MAX_IMPORTED) imported.clear()
    imported.set(id, e)
  }
  return e
}

function uncachedPrivateKey(raw: Uint8Array): crypto.KeyObject {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' })
}

/** A KeyObject for a raw 32-byte X25519 private key (imported once per key: for static keys). */
export function x25519PrivateKey(raw: Uint8Array): crypto.KeyObject {
  return importPrivate(raw).key
}

/** A KeyObject for a raw 32-byte X25519 public key (a JWK import: microseconds, where DER takes a tenth of a millisecond). */
export function x25519PublicKey(raw: Uint8Array): crypto.KeyObject {
  return crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' })
}

/** The raw 32-byte public key of a raw (static) private key. */
export function x25519Public(privateRaw: Uint8Array): Buffer {
  return Buffer.from(importPrivate(privateRaw).publicKey)
}

/** A DH key pair (raw 32-byte keys, and the private key as a KeyObject when it is at hand). */
export interface DhKeyPair {
  readonly privateKey: Buffer
  readonly publicKey: Buffer
  /** The private key as a KeyObject (saves importing it for each DH). */
  readonly keyObject?: crypto.KeyObject
}

/** `GENERATE_KEYPAIR()` (from Node's CSPRNG via OpenSSL); the KeyObject is kept for the DHs. */
export function generateX25519(): DhKeyPair {
  const { privateKey } = crypto.generateKeyPairSync('x25519')
  const jwk = privateKey.export({ format: 'jwk' })
  return { privateKey: Buffer.from(jwk.d!, 'base64url'), publicKey: Buffer.from(jwk.x!, 'base64url'), keyObject: privateKey }
}

/** A key pair from a raw private key; `cache`: a static key, imported once per process (see above). */
export function x25519KeyPair(privateRaw: Uint8Array, cache = true): DhKeyPair {
  if (!cache) {
    const keyObject = uncachedPrivateKey(privateRaw)
    return { privateKey: Buffer.from(privateRaw), publicKey: Buffer.from(crypto.createPublicKey(keyObject).export({ format: 'jwk' }).x!, 'base64url'), keyObject }
  }
  const e = importPrivate(privateRaw)
  return { privateKey: Buffer.from(privateRaw), publicKey: Buffer.from(e.publicKey), keyObject: e.key }
}

/**
 * `DH(key_pair, public_key)`: X25519. Returns `null` for a public key that
 * gives the all-zero output (a low-order point; OpenSSL refuses it), which
 * spec 12.1 allows an implementation to signal as an error. `local`: a raw
 * (static) private key, or a key pair with its KeyObject; `remote`: a raw
 * public key, or one already imported.
 */
export function dh(local: Uint8Array | DhKeyPair, remote: Uint8Array | crypto.KeyObject): Buffer | null {
  try {
    const privateKey = local instanceof Uint8Array ? x25519PrivateKey(local) : (local.keyObject ?? x25519PrivateKey(local.privateKey))
    return crypto.diffieHellman({ privateKey, publicKey: remote instanceof Uint8Array ? x25519PublicKey(remote) : remote })
  } catch {
    return null
  }
}

/** A secret KeyObject for a 32-byte cipher key (reused across records). */
export function secretKey(raw: Uint8Array): crypto.KeyObject {
  return crypto.createSecretKey(raw)
}
