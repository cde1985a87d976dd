/**
 * The Noise `CipherState` object (Noise Protocol Framework rev 34, 5.1).
 * @packageDocumentation
 */
import type { KeyObject } from 'node:crypto'
import { SecureError } from './errors.js'
import { CIPHERS, decrypt, decryptParts, encrypt, encryptParts, encryptPieces, MAX_NONCE, secretKey, type CipherFunctions } from './primitives.js'

const EMPTY = Buffer.alloc(0)
const ZEROS32 = Buffer.alloc(32)

/**
 * A cipher key `k` and a 64-bit nonce `n`. Encrypts and decrypts with
 * `n++`; the nonce never wraps: once `n` reaches 2^64 - 1 (reserved), every
 * further call throws `SYNMUX_SECURE_NONCE_EXHAUSTED`. A failed decryption
 * does not advance `n` (spec 5.1; see advisory GHSA-6cr6-fmvc-vw2p) and
 * returns `null` — the record layer then closes the channel.
 */
export class CipherState {
  readonly #cipher: CipherFunctions
  #k: KeyObject | null = null
  #n = 0n

  /**
   * @param cipher the cipher functions: `'ChaChaPoly'` or `'AESGCM'`.
   * @param key a 32-byte key (`InitializeKey`), or none (empty).
   */
  constructor(cipher: CipherFunctions['name'], key?: Uint8Array) {
    const fns = CIPHERS[cipher]
    if (!fns || !Object.hasOwn(CIPHERS, cipher)) throw new TypeError(`Unknown cipher functions ${String(cipher)} (ChaChaPoly or AESGCM)`)
    this.#cipher = fns
    if (key !== undefined) this.initializeKey(key)
  }

  /** The cipher functions' name. */
  get cipherName(): CipherFunctions['name'] {
    return this.#cipher.name
  }

  /** `InitializeKey(key)`: sets `k` (32 bytes, or `null` for empty) and `n = 0`. */
  initializeKey(key: Uint8Array | null): void {
    if (key !== null && key.length !== 32) throw new RangeError(`A cipher key is 32 bytes, not ${key.length}`)
    this.#k = key === null ? null : secretKey(key)
    this.#n = 0n
  }

  /** `HasKey()`. */
  hasKey(): boolean {
    return this.#k !== null
  }

  /** The next nonce `n`. */
  get nonce(): bigint {
    return this.#n
  }

  /** `SetNonce(nonce)`. */
  setNonce(nonce: bigint): void {
    if (typeof nonce !== 'bigint' || nonce < 0n || nonce > MAX_NONCE) throw new RangeError('A nonce is a bigint from 0 to 2^64 - 1')
    this.#n = nonce
  }

  /** `EncryptWithAd(ad, plaintext)`: `ENCRYPT(k, n++, ad, plaintext)`, or the plaintext when `k` is empty. */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Buffer {
    if (this.#k === null) return Buffer.from(plaintext)
    this.#checkNonce()
    const out = encrypt(this.#cipher, this.#k, this.#n, ad, plaintext)
    this.#n++
    return out
  }

  /**
   * `EncryptWithAd` for the record layer: the ciphertext and the tag as
   * separate buffers (no copy to join them). Needs a key.
   * @internal
   */
  encryptParts(ad: Uint8Array, plaintext: Uint8Array): [Buffer, Buffer] {
    if (this.#k === null) throw new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', 'No key')
    this.#checkNonce()
    const out = encryptParts(this.#cipher, this.#k, this.#n, ad, plaintext)
    this.#n++
    return out
  }

  /**
   * `EncryptWithAd` of a plaintext in pieces, for the record layer: the
   * ciphertext in pieces and the tag (large pieces are not copied). Needs
   * a key.
   * @internal
   */
  encryptPieces(ad: Uint8Array, pieces: readonly Uint8Array[]): [Buffer[], Buffer] {
    if (this.#k === null) throw new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', 'No key')
    this.#checkNonce()
    const out = encryptPieces(this.#cipher, this.#k, this.#n, ad, pieces)
    this.#n++
    return out
  }

  /**
   * `DecryptWithAd(ad, ciphertext)`: the plaintext, or `null` when
   * authentication fails (then `n` is not incremented).
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Buffer | null {
    if (this.#k === null) return Buffer.from(ciphertext)
    this.#checkNonce()
    const out = decrypt(this.#cipher, this.#k, this.#n, ad, ciphertext)
    if (out !== null) this.#n++
    return out
  }

  /**
   * `DecryptWithAd` for the record layer: the ciphertext in pieces and the
   * tag apart; the plaintext in pieces, or `null` (then `n` is kept).
   * @internal
   */
  decryptParts(ad: Uint8Array, pieces: readonly Uint8Array[], tag: Uint8Array): Buffer[] | null {
    if (this.#k === null) throw new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', 'No key')
    this.#checkNonce()
    const out = decryptParts(this.#cipher, this.#k, this.#n, ad, pieces, tag)
    if (out !== null) this.#n++
    return out
  }

  /** `Rekey()`: `k = first 32 bytes of ENCRYPT(k, 2^64 - 1, zerolen, zeros)` (spec 4.2, 11.3); `n` is kept. */
  rekey(): void {
    if (this.#k === null) throw new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', 'Rekey() on a CipherState without a key')
    const next = encrypt(this.#cipher, this.#k, MAX_NONCE, EMPTY, ZEROS32).subarray(0, 32)
    this.#k = secretKey(next)
  }

  #checkNonce(): void {
    if (this.#n >= MAX_NONCE) throw new SecureError('SYNMUX_SECURE_NONCE_EXHAUSTED', 'The nonce of this CipherState is exhausted (2^64 - 1 messages); a new handshake is needed')
  }
}
