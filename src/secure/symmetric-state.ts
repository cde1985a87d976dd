/**
 * The Noise `SymmetricState` object (Noise Protocol Framework rev 34, 5.2).
 * @packageDocumentation
 */
import { CipherState } from './cipher-state.js'
import { noiseProtocol } from './patterns.js'
import { hash, hkdf, type CipherFunctions, type HashFunctions } from './primitives.js'

const EMPTY = Buffer.alloc(0)

/** A CipherState plus the chaining key `ck` and the handshake hash `h`. */
export class SymmetricState {
  readonly #hash: HashFunctions
  readonly #cipherFns: CipherFunctions
  readonly #cs: CipherState
  #ck: Buffer
  #h: Buffer

  /** `InitializeSymmetric(protocol_name)`; the name also picks the cipher and hash functions. */
  constructor(protocolName: string) {
    const protocol = noiseProtocol(protocolName)
    if (!protocol) throw new TypeError(`Unsupported Noise protocol name: ${protocolName}`)
    const cipher = protocol.cipher
    const hashFns = protocol.hash
    this.#hash = hashFns
    this.#cipherFns = cipher
    const name = Buffer.from(protocolName, 'utf8')
    if (name.length <= hashFns.hashLen) {
      this.#h = Buffer.alloc(hashFns.hashLen)
      name.copy(this.#h)
    } else {
      this.#h = hash(hashFns, name)
    }
    this.#ck = Buffer.from(this.#h)
    this.#cs = new CipherState(cipher.name)
  }

  /** `MixKey(input_key_material)`. */
  mixKey(ikm: Uint8Array): void {
    const [ck, tempK] = hkdf(this.#hash, this.#ck, ikm, 2) as [Buffer, Buffer]
    this.#ck = ck
    this.#cs.initializeKey(tempK.subarray(0, 32))
  }

  /** `MixHash(data)`. */
  mixHash(data: Uint8Array): void {
    this.#h = hash(this.#hash, this.#h, data)
  }

  /** `MixKeyAndHash(input_key_material)` (PSKs, spec 9). */
  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, tempH, tempK] = hkdf(this.#hash, this.#ck, ikm, 3) as [Buffer, Buffer, Buffer]
    this.#ck = ck
    this.mixHash(tempH)
    this.#cs.initializeKey(tempK.subarray(0, 32))
  }

  /** `HasKey()` of the inner CipherState. */
  hasKey(): boolean {
    return this.#cs.hasKey()
  }

  /** `GetHandshakeHash()`: `h`. */
  handshakeHash(): Buffer {
    return Buffer.from(this.#h)
  }

  /** `EncryptAndHash(plaintext)`. */
  encryptAndHash(plaintext: Uint8Array): Buffer {
    const ciphertext = this.#cs.encryptWithAd(this.#h, plaintext)
    this.mixHash(ciphertext)
    return ciphertext
  }

  /** `DecryptAndHash(ciphertext)`: the plaintext, or `null` when authentication fails (`h` then unchanged). */
  decryptAndHash(ciphertext: Uint8Array): Buffer | null {
    const plaintext = this.#cs.decryptWithAd(this.#h, ciphertext)
    if (plaintext === null) return null
    this.mixHash(ciphertext)
    return plaintext
  }

  /** `Split()`: the initiator's sending and the responder's sending CipherStates. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.#hash, this.#ck, EMPTY, 2) as [Buffer, Buffer]
    return [new CipherState(this.#cipherFns.name, k1.subarray(0, 32)), new CipherState(this.#cipherFns.name, k2.subarray(0, 32))]
  }
}
