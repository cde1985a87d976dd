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

/**
 * Key objects, and why none comes from `crypto.generateKeyPair[Sync]()`.
 *
 * On Node 20 (checked: 20.20.2; fixed by 22.23 and 24.22) a key object
 * that `generateKeyPair[Sync]()` returned shares its lock with the key
 * generation job, and when a garbage collection frees that job while the
 * same thread holds the lock — in `export()`, which allocates the strings
 * it returns — the job's destructor waits for the lock forever: the whole
 * process hangs, its event loop stopped (seen as a test process stuck in
 * `KeyObjectHandle::ExportJWK` -> GC -> `~KeyGenJob` -> `uv_mutex_lock`;
 * `generateKeyPairSync('x25519')` + `export({ format: 'jwk' })` in a loop
 * hangs within seconds there, with or without forced GCs). So a private
 * key is made as 32 bytes from the CSPRNG (RFC 7748: any 32 bytes are an
 * X25519 private key; Noise's GENERATE_KEYPAIR) and imported, and key
 * pairs made ahead in the thread pool come back encoded (DER), never as
 * key objects.
 *
 * A private key is imported as a JWK: for a private OKP key Node reads
 * only `d` (it checks that `x` is a string and computes the public key
 * itself), which takes about 30 us where a PKCS#8 DER takes 0.4 ms.
 */

/** DER prefixes of raw X25519 keys (RFC 8410): PKCS#8 and SubjectPublicKeyInfo (a DER key from the thread pool is prefix + 32 bytes). */
export const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
export const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

/** A raw 32-byte X25519 private key as a KeyObject (a JWK whose `x` Node checks only for being a string). */
export function importX25519Private(raw: Uint8Array): crypto.KeyObject {
  return crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(raw).toString('base64url'), x: '' }, format: 'jwk' })
}

/** The raw public key of an imported private key. */
function publicOf(key: crypto.KeyObject): Buffer {
  return Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url')
}

/**
 * Raw private keys imported as KeyObjects, with their public keys: a
 * static key — the same in every handshake — is imported once. Bounded
 * (a process uses few static keys); ephemeral keys never enter it.
 */
const imported = new Map<string, { key: crypto.KeyObject; publicKey: Buffer }>()
const MAX_IMPORTED = 32

function importPrivate(raw: Uint8Array): { key: crypto.KeyObject; publicKey: Buffer } {
  const id = Buffer.from(raw).toString('base64')
  let e = imported.get(id)
  if (e === undefined) {
    const key = importX25519Private(raw)
    e = { key, publicKey: publicOf(key) }
    if (imported.size >= MAX_IMPORTED) imported.clear()
    imported.set(id, e)
  }
  return e
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

/** `GENERATE_KEYPAIR()`: 32 bytes from Node's CSPRNG (OpenSSL's), imported (see above); the KeyObject is kept for the DHs. */
export function generateX25519(): DhKeyPair {
  const privateKey = crypto.randomBytes(32)
  const keyObject = importX25519Private(privateKey)
  return { privateKey, publicKey: publicOf(keyObject), keyObject }
}

/** A key pair from a raw private key; `cache`: a static key, imported once per process (see above). */
export function x25519KeyPair(privateRaw: Uint8Array, cache = true): DhKeyPair {
  if (!cache) {
    const keyObject = importX25519Private(privateRaw)
    return { privateKey: Buffer.from(privateRaw), publicKey: publicOf(keyObject), keyObject }
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
