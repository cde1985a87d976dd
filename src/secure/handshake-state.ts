/**
 * The Noise `HandshakeState` object (Noise Protocol Framework rev 34, 5.3,
 * with the PSK rules of section 9).
 * @packageDocumentation
 */
import { CipherState } from './cipher-state.js'
import { SecureError } from './errors.js'
import { noiseProtocol, type NoiseProtocol, type Token } from './patterns.js'
import { DHLEN, dh, TAGLEN, x25519KeyPair, type DhKeyPair } from './primitives.js'
import { dhRemoteStatic, dhStaticStatic, takeEphemeral } from './precompute.js'
import { SymmetricState } from './symmetric-state.js'

/** The largest Noise message (spec 3). */
export const MAX_NOISE_MESSAGE = 65535

/** Options of a {@link HandshakeState} (`Initialize()` arguments). */
export interface HandshakeStateOptions {
  /** e.g. `Noise_IKpsk1_25519_ChaChaPoly_BLAKE2s`. */
  protocolName: string
  /** This side is the initiator. */
  initiator: boolean
  /** Prologue bytes both sides must agree on (default empty). */
  prologue?: Uint8Array
  /** Local static private key (32 bytes), if the pattern uses one. */
  staticKey?: Uint8Array
  /** Local ephemeral private key (32 bytes): for test vectors only; generated when absent. */
  ephemeralKey?: Uint8Array
  /** Remote static public key known in advance (pre-message). */
  remoteStaticKey?: Uint8Array
  /** Remote ephemeral public key known in advance (pre-message; no pattern here uses it). */
  remoteEphemeralKey?: Uint8Array
  /** The PSKs (32 bytes each), used in the order of the pattern's `psk` tokens. */
  psks?: readonly Uint8Array[]
}

/** The transport CipherStates after the final handshake message. */
export interface TransportKeys {
  /** Encrypts what this side sends (null for the responder of a one-way pattern). */
  readonly send: CipherState | null
  /** Decrypts what this side receives (null for the initiator of a one-way pattern). */
  readonly receive: CipherState | null
  /** The handshake hash `h` (channel binding, spec 11.2). */
  readonly handshakeHash: Buffer
}

const fail = (code: 'SYNMUX_SECURE_DECRYPT_FAILED' | 'SYNMUX_SECURE_BAD_HANDSHAKE', message: string) => new SecureError(code, message)

/**
 * Runs one side of a Noise handshake. `writeMessage()` and `readMessage()`
 * alternate as the pattern says; after the final message `transport`
 * holds the split CipherStates. Any error leaves the object unusable
 * (spec 5: the HandshakeState is deleted).
 */
export class HandshakeState {
  readonly #protocol: NoiseProtocol
  readonly #ss: SymmetricState
  readonly #initiator: boolean
  readonly #s: DhKeyPair | null
  #e: DhKeyPair | null = null
  readonly #fixedE: Uint8Array | undefined
  #rs: Buffer | null
  #re: Buffer | null
  readonly #psks: Uint8Array[]
  #next = 0
  #failed = false
  #transport: TransportKeys | null = null

  /** `Initialize(...)`. Throws TypeError/RangeError for unusable arguments. */
  constructor(options: HandshakeStateOptions) {
    const protocol = noiseProtocol(options.protocolName)
    if (!protocol) throw new TypeError(`Unsupported Noise protocol name: ${options.protocolName}`)
    this.#protocol = protocol
    this.#initiator = options.initiator
    const key32 = (name: string, k: Uint8Array | undefined): Uint8Array | undefined => {
      if (k !== undefined && (!(k instanceof Uint8Array) || k.length !== 32)) throw new RangeError(`${name} must be 32 bytes`)
      return k
    }
    const s = key32('staticKey', options.staticKey)
    this.#s = s ? x25519KeyPair(s) : null
    this.#fixedE = key32('ephemeralKey', options.ephemeralKey)
    this.#rs = options.remoteStaticKey ? Buffer.from(key32('remoteStaticKey', options.remoteStaticKey)!) : null
    this.#re = options.remoteEphemeralKey ? Buffer.from(key32('remoteEphemeralKey', options.remoteEphemeralKey)!) : null
    this.#psks = (options.psks ?? []).map((p, i) => key32(`psks[${i}]`, p)!)
    const pskTokens = protocol.pattern.messages.flat().filter((t) => t === 'psk').length
    if (this.#psks.length !== pskTokens) throw new RangeError(`${protocol.name} needs ${pskTokens} PSK(s), got ${this.#psks.length}`)

    this.#ss = new SymmetricState(protocol.name)
    this.#ss.mixHash(options.prologue ?? Buffer.alloc(0))
    // Pre-messages: the initiator's keys first, then the responder's.
    const pre = (tokens: readonly Token[], local: boolean): void => {
      for (const t of tokens) {
        if (t !== 's' && t !== 'e') continue
        const key = t === 's' ? (local ? this.#s?.publicKey : this.#rs) : local ? null : this.#re
        if (!key) throw new TypeError(`${protocol.name} needs the ${local ? 'local' : 'remote'} ${t === 's' ? 'static' : 'ephemeral'} key in advance`)
        if (t === 'e') this.#mixEphemeral(key)
        else this.#ss.mixHash(key)
      }
    }
    pre(protocol.pattern.initiatorPre, this.#initiator)
    pre(protocol.pattern.responderPre, !this.#initiator)
  }

  /** The protocol name. */
  get protocolName(): string {
    return this.#protocol.name
  }

  /** Whether the next message is ours to write. */
  get isMyTurn(): boolean {
    return this.#next % 2 === (this.#initiator ? 0 : 1)
  }

  /** Whether the handshake is complete (then `transport` is set). */
  get finished(): boolean {
    return this.#transport !== null
  }

  /** The transport keys, after the final message; `null` before. */
  get transport(): TransportKeys | null {
    return this.#transport
  }

  /** The remote static public key, once known. */
  get remoteStaticKey(): Buffer | null {
    return this.#rs ? Buffer.from(this.#rs) : null
  }

  /** The remote ephemeral public key, once known. */
  get remoteEphemeralKey(): Buffer | null {
    return this.#re ? Buffer.from(this.#re) : null
  }

  /** The current handshake hash `h`. */
  get handshakeHash(): Buffer {
    return this.#ss.handshakeHash()
  }

  /** `WriteMessage(payload)`: the message bytes. */
  writeMessage(payload: Uint8Array): Buffer {
    const tokens = this.#take(true)
    const out: Buffer[] = []
    try {
      for (const t of tokens) {
        switch (t) {
          case 'e': {
            if (this.#e) throw new TypeError('The ephemeral key is already set')
            this.#e = this.#fixedE ? x25519KeyPair(this.#fixedE, false) : takeEphemeral()
            out.push(this.#e.publicKey)
            this.#mixEphemeral(this.#e.publicKey)
            break
          }
          case 's':
            if (!this.#s) throw new TypeError(`${this.#protocol.name} needs a local static key`)
            out.push(this.#ss.encryptAndHash(this.#s.publicKey))
            break
          case 'psk':
            this.#ss.mixKeyAndHash(this.#psks.shift()!)
            break
          default:
            this.#dh(t)
        }
      }
      out.push(this.#ss.encryptAndHash(payload))
    } catch (err) {
      this.#failed = true
      throw err
    }
    const message = Buffer.concat(out)
    if (message.length > MAX_NOISE_MESSAGE) {
      this.#failed = true
      throw new RangeError(`A Noise message is at most ${MAX_NOISE_MESSAGE} bytes; this payload makes ${message.length}`)
    }
    this.#afterMessage()
    return message
  }

  /**
   * `ReadMessage(message)`: the payload. Throws `SecureError` with
   * `SYNMUX_SECURE_DECRYPT_FAILED` (authentication failed) or
   * `SYNMUX_SECURE_BAD_HANDSHAKE` (too short, too long, invalid key).
   */
  readMessage(message: Uint8Array): Buffer {
    const tokens = this.#take(false)
    try {
      if (message.length > MAX_NOISE_MESSAGE) throw fail('SYNMUX_SECURE_BAD_HANDSHAKE', 'Noise message longer than 65535 bytes')
      let off = 0
      const next = (n: number): Uint8Array => {
        if (off + n > message.length) throw fail('SYNMUX_SECURE_BAD_HANDSHAKE', 'Noise message too short')
        const part = message.subarray(off, off + n)
        off += n
        return part
      }
      for (const t of tokens) {
        switch (t) {
          case 'e': {
            if (this.#re) throw fail('SYNMUX_SECURE_BAD_HANDSHAKE', 'Remote ephemeral key already set')
            this.#re = Buffer.from(next(DHLEN))
            this.#mixEphemeral(this.#re)
            break
          }
          case 's': {
            if (this.#rs) throw fail('SYNMUX_SECURE_BAD_HANDSHAKE', 'Remote static key already set')
            const rs = this.#ss.decryptAndHash(next(this.#ss.hasKey() ? DHLEN + TAGLEN : DHLEN))
            if (rs === null) throw fail('SYNMUX_SECURE_DECRYPT_FAILED', 'The static key in the handshake message failed authentication')
            this.#rs = rs
            break
          }
          case 'psk':
            this.#ss.mixKeyAndHash(this.#psks.shift()!)
            break
          default:
            this.#dh(t)
        }
      }
      const rest = message.subarray(off)
      if (this.#ss.hasKey() && rest.length < TAGLEN) throw fail('SYNMUX_SECURE_BAD_HANDSHAKE', 'Noise message too short')
      const payload = this.#ss.decryptAndHash(rest)
      if (payload === null) throw fail('SYNMUX_SECURE_DECRYPT_FAILED', 'The handshake payload failed authentication')
      this.#afterMessage()
      return payload
    } catch (err) {
      this.#failed = true
      throw err
    }
  }

  #take(writing: boolean): readonly Token[] {
    if (this.#failed) throw new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', 'This handshake has failed')
    if (this.#transport || this.#next >= this.#protocol.pattern.messages.length) throw new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', 'The handshake is already complete')
    if (this.isMyTurn !== writing) throw new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', `Not this side's turn to ${writing ? 'write' : 'read'} a handshake message`)
    return this.#protocol.pattern.messages[this.#next]!
  }

  /** An `e` token's hashing: MixHash, and in PSK handshakes also MixKey (spec 9.2). */
  #mixEphemeral(publicKey: Buffer): void {
    this.#ss.mixHash(publicKey)
    if (this.#protocol.pattern.psk) this.#ss.mixKey(publicKey)
  }

  #dh(t: Token): void {
    const local = t === 'ee' ? this.#e : t === 'ss' ? this.#s : (t === 'es') === this.#initiator ? this.#e : this.#s
    const remote = t === 'ee' ? this.#re : t === 'ss' ? this.#rs : (t === 'es') === this.#initiator ? this.#rs : this.#re
    if (!local || !remote) throw new TypeError(`Token ${t}: a key is missing`)
    // The static-static output and a remote static key's import are made once per key (precompute.ts).
    const out = t === 'ss' ? dhStaticStatic(local, remote) : remote === this.#rs ? dhRemoteStatic(local, remote) : dh(local, remote)
    if (out === null) throw fail('SYNMUX_SECURE_BAD_HANDSHAKE', 'Invalid public key in the handshake (DH output all zeros)')
    this.#ss.mixKey(out)
  }

  #afterMessage(): void {
    this.#next++
    if (this.#next < this.#protocol.pattern.messages.length) return
    const [c1, c2] = this.#ss.split()
    const oneWay = this.#protocol.pattern.oneWay
    this.#transport = {
      send: this.#initiator ? c1 : oneWay ? null : c2,
      receive: this.#initiator ? (oneWay ? null : c2) : c1,
      handshakeHash: this.#ss.handshakeHash(),
    }
  }
}
