/**
 * The record layer (docs/PROTOCOL.md 20.6): after the handshake every byte
 * travels in records `length u16 || ENCRYPT(k, n, ad = length, plaintext)`,
 * nonce = the record counter of the direction, rekey (Noise 11.3) after a
 * fixed number of bytes, and an empty record that ends the direction.
 * @packageDocumentation
 */
import type { CipherState } from './cipher-state.js'
import { SecureError } from './errors.js'
import { TAGLEN } from './primitives.js'
import { takeViews } from '../common/bytes.js'

/** Bytes of a record's length field. */
export const RECORD_HEADER_SIZE = 2
/** The largest plaintext of one record (a Noise transport message is at most 65,535 bytes). */
export const MAX_RECORD_PLAINTEXT = 65535 - TAGLEN
/** Smallest rekey interval a peer may announce (bytes). */
export const MIN_REKEY_INTERVAL = 1024
/** Largest rekey interval a peer may announce (bytes; u32). */
export const MAX_REKEY_INTERVAL = 0xffffffff

/** Counters of one direction of the record layer. */
export interface RecordCounters {
  /** Records sealed or opened (the end record included). */
  records: number
  /** Plaintext bytes carried. */
  bytes: number
  /** Bytes on the wire (length fields, ciphertexts, tags). */
  wireBytes: number
  /** Rekeys done. */
  rekeys: number
}

/**
 * The rekey rule of one direction (PROTOCOL.md 20.6), the same for sender
 * and receiver: after each record, add its wire size; at the interval or
 * more, `Rekey()` and start again.
 */
class DirectionCounter {
  readonly counters: RecordCounters = { records: 0, bytes: 0, wireBytes: 0, rekeys: 0 }
  #sinceRekey = 0

  constructor(
    private readonly cs: CipherState,
    private readonly interval: number,
  ) {}

  record(plain: number): void {
    const wire = RECORD_HEADER_SIZE + plain + TAGLEN
    const c = this.counters
    c.records++
    c.bytes += plain
    c.wireBytes += wire
    this.#sinceRekey += wire
    if (this.#sinceRekey >= this.interval) {
      this.cs.rekey()
      this.#sinceRekey = 0
      c.rekeys++
    }
  }
}

/**
 * Seals plaintext into records for one direction. Rekeys its CipherState
 * after each record that brings the wire bytes since the last rekey to the
 * rekey interval or more (the peer's opener does the same at the same
 * record, so no signal is needed).
 */
export class RecordSealer {
  readonly #cs: CipherState
  readonly #count: DirectionCounter
  readonly #maxPlaintext: number
  #ended = false

  /**
   * @param cs the sending CipherState from `Split()`.
   * @param rekeyInterval bytes between rekeys (as announced to the peer).
   * @param maxPlaintext the largest plaintext per record (1 ... 65,519).
   */
  constructor(cs: CipherState, rekeyInterval: number, maxPlaintext = MAX_RECORD_PLAINTEXT) {
    this.#cs = cs
    this.#count = new DirectionCounter(cs, rekeyInterval)
    this.#maxPlaintext = maxPlaintext
  }

  /** Records, bytes and rekeys so far. */
  get counters(): RecordCounters {
    return this.#count.counters
  }

  /** Whether the end record was sealed. */
  get ended(): boolean {
    return this.#ended
  }

  /**
   * Seals `data` into as many records as it needs (none for empty data) and
   * returns their wire bytes as a list of buffers, in order.
   */
  seal(data: Uint8Array): Buffer[] {
    return this.sealParts([data])
  }

  /**
   * Seals the concatenation of `parts` (e.g. the frames of one write of a
   * session) into records, without copying large parts to join them. A
   * part is split across records only when it does not fit a record of
   * its own; otherwise records are cut between parts, so a frame no larger
   * than a record is the plaintext of one record (its reader gets it in one
   * piece). Returns the records' wire bytes as a list of buffers, in order.
   */
  sealParts(parts: readonly Uint8Array[]): Buffer[] {
    if (this.#ended) throw new SecureError('SYNMUX_SECURE_BAD_RECORD', 'Cannot send records after the end record')
    const out: Buffer[] = []
    const max = this.#maxPlaintext
    let rec: Uint8Array[] = []
    let len = 0
    const close = (): void => {
      if (len === 0) return
      this.#pieces(rec, len, out)
      rec = []
      len = 0
    }
    for (const part of parts) {
      let p = part
      while (p.length > 0) {
        const room = max - len
        if (p.length <= room) {
          rec.push(p)
          len += p.length
          break
        }
        if (len > 0 && p.length <= max) {
          // It fits a record of its own: cut here rather than split it.
          close()
          continue
        }
        rec.push(p.subarray(0, room))
        len += room
        p = p.subarray(room)
        close()
      }
    }
    close()
    return out
  }

  /** The end record (an empty plaintext): the sender's last record. */
  end(): Buffer[] {
    if (this.#ended) return []
    const out: Buffer[] = []
    this.#one(Buffer.alloc(0), out)
    this.#ended = true
    return out
  }

  #one(plaintext: Uint8Array, out: Buffer[]): void {
    const header = Buffer.allocUnsafe(RECORD_HEADER_SIZE)
    header.writeUInt16BE(plaintext.length + TAGLEN, 0)
    const [body, tag] = this.#cs.encryptParts(header, plaintext)
    out.push(header)
    if (body.length > 0) out.push(body)
    out.push(tag)
    this.#count.record(plaintext.length)
  }

  /** One record whose plaintext is `pieces` (`length` bytes in all, 1 ... max). */
  #pieces(pieces: Uint8Array[], length: number, out: Buffer[]): void {
    if (pieces.length === 1) return this.#one(pieces[0]!, out)
    const header = Buffer.allocUnsafe(RECORD_HEADER_SIZE)
    header.writeUInt16BE(length + TAGLEN, 0)
    const [body, tag] = this.#cs.encryptPieces(header, pieces)
    out.push(header)
    for (const b of body) if (b.length > 0) out.push(b)
    out.push(tag)
    this.#count.record(length)
  }
}

/**
 * Opens records from a byte stream for one direction. `write()` takes any
 * chunk of the stream and returns the plaintexts of the records it
 * completed; it holds at most one incomplete record (≤ 65,537 bytes). Any
 * failure throws a {@link SecureError} and the opener stays failed: a
 * failed record never advances the nonce, and nothing after it is read.
 */
export class RecordOpener {
  readonly #cs: CipherState
  readonly #count: DirectionCounter
  #chunks: Buffer[] = []
  #buffered = 0
  #ended = false
  #failed: SecureError | null = null

  /**
   * @param cs the receiving CipherState from `Split()`.
   * @param rekeyInterval the rekey interval the peer announced.
   */
  constructor(cs: CipherState, rekeyInterval: number) {
    this.#cs = cs
    this.#count = new DirectionCounter(cs, rekeyInterval)
  }

  /** Records, bytes and rekeys so far. */
  get counters(): RecordCounters {
    return this.#count.counters
  }

  /** Whether the peer's end record was received. */
  get ended(): boolean {
    return this.#ended
  }

  /** Bytes held of an incomplete record. */
  get buffered(): number {
    return this.#buffered
  }

  /** Feeds stream bytes; returns the plaintexts of the complete records in them (never empty ones). */
  write(chunk: Buffer): Buffer[] {
    if (this.#failed) throw this.#failed
    if (chunk.length === 0) return []
    if (this.#ended) return this.#fail('SYNMUX_SECURE_BAD_RECORD', 'Bytes after the end record')
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    const out: Buffer[] = []
    while (this.#buffered >= RECORD_HEADER_SIZE) {
      const head = this.#peek(RECORD_HEADER_SIZE)
      const length = head.readUInt16BE(0)
      if (length < TAGLEN) return this.#fail('SYNMUX_SECURE_BAD_RECORD', `Record length ${length} is below the ${TAGLEN}-byte tag`)
      if (this.#buffered < RECORD_HEADER_SIZE + length) break
      // Header, ciphertext and tag as views of the received chunks: a
      // record split across reads is decrypted piece by piece, not copied.
      const header = this.#join(this.#take(RECORD_HEADER_SIZE))
      // A body that spans reads is joined first (one copy): its plaintext
      // then comes out in one piece, so a frame that filled the record
      // reaches its reader whole, not in as many pieces as reads.
      const body = this.#take(length - TAGLEN)
      const tag = this.#join(this.#take(TAGLEN))
      const plaintext = this.#cs.decryptParts(header, body.length > 1 ? [Buffer.concat(body, length - TAGLEN)] : body, tag)
      if (plaintext === null) {
        return this.#fail('SYNMUX_SECURE_DECRYPT_FAILED', `Record ${this.counters.records} failed authentication (tampered, reordered, replayed or forged)`)
      }
      this.#count.record(length - TAGLEN)
      if (length === TAGLEN) {
        this.#ended = true
        if (this.#buffered > 0) return this.#fail('SYNMUX_SECURE_BAD_RECORD', 'Bytes after the end record')
        break
      }
      for (const p of plaintext) out.push(p)
    }
    return out
  }

  /**
   * The stream ended: throws `SYNMUX_SECURE_TRUNCATED` unless the end
   * record arrived and nothing follows it.
   */
  finish(): void {
    if (this.#failed) throw this.#failed
    if (this.#buffered > 0) this.#fail('SYNMUX_SECURE_TRUNCATED', `The transport ended inside a record (${this.#buffered} bytes of it received)`)
    if (!this.#ended) this.#fail('SYNMUX_SECURE_TRUNCATED', 'The transport ended without the end record (truncated)')
  }

  #fail(code: 'SYNMUX_SECURE_BAD_RECORD' | 'SYNMUX_SECURE_DECRYPT_FAILED' | 'SYNMUX_SECURE_TRUNCATED', message: string): never {
    this.#failed = new SecureError(code, message)
    this.#chunks = []
    this.#buffered = 0
    throw this.#failed
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0]!
    if (first.length >= n) return first
    return Buffer.concat(this.#chunks, Math.min(this.#buffered, n))
  }

  /** Removes the next `n` buffered bytes; returns them as views of the chunks. */
  #take(n: number): Buffer[] {
    this.#buffered -= n
    return takeViews(this.#chunks, n)
  }

  #join(parts: Buffer[]): Buffer {
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }
}
