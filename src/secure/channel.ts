/**
 * `SecureChannel`: the Duplex the application sees, over a transport
 * Duplex. This file holds what both roles share — the record layer once
 * the handshake is done, flow control, half-close, timeouts and teardown;
 * `client.ts` and `server.ts` hold each role's handshake.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream'
import { SecureError } from './errors.js'
import type { TransportKeys } from './handshake-state.js'
import type { RefusedReport, ResolvedOptions, SecureInfo } from './options.js'
import { SECURE_PROTOCOL } from './payload.js'
import { RecordOpener, RecordSealer, type RecordCounters } from './record.js'

type Callback = (err?: Error | null) => void

/**
 * Bytes received during the handshake: chunks are joined only once a whole
 * message is there (a peer sending one byte per segment costs no copying).
 * @internal
 */
export class ByteQueue {
  #chunks: Buffer[] = []
  #length = 0

  get length(): number {
    return this.#length
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#length += chunk.length
  }

  /** The first `n` bytes (`n` ≤ length), left in the queue. */
  peek(n: number): Buffer {
    const first = this.#chunks[0]!
    return first.length >= n ? first.subarray(0, n) : Buffer.concat(this.#chunks, n)
  }

  /** Removes and returns the first `n` bytes (`n` ≤ length), as one buffer. */
  take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks)
    this.#chunks = all.length > n ? [all.subarray(n)] : []
    this.#length = all.length - n
    return all.subarray(0, n)
  }

  /** Removes and returns everything (or `null` when empty). */
  drain(): Buffer | null {
    if (this.#length === 0) return null
    return this.take(this.#length)
  }

  clear(): void {
    this.#chunks = []
    this.#length = 0
  }
}

/** Counters of a channel (`channel.stats()`). */
export interface SecureChannelStats {
  /** Records this side sent. */
  readonly sent: Readonly<RecordCounters>
  /** Records this side received. */
  readonly received: Readonly<RecordCounters>
  /** Ms from the channel's creation to the end of the handshake, or `null` before. */
  readonly handshakeMs: number | null
}

/** The events of a {@link SecureChannel} besides those of a `Duplex`. */
export interface SecureChannelEvents {
  /** The handshake is complete; records flow. */
  secure: [info: SecureInfo]
  /** Server: a message 1 was refused (no byte is sent in reply). */
  refused: [report: RefusedReport]
  /** Server: `divert` took message 1: `head` is every byte read from the transport, which is left open and paused. */
  diverted: [head: Buffer]
}

// Typed listeners for the channel's own events (declaration merging with the class).
export interface SecureChannel {
  on(event: 'secure', listener: (info: SecureInfo) => void): this
  on(event: 'refused', listener: (report: RefusedReport) => void): this
  on(event: 'diverted', listener: (head: Buffer) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'secure', listener: (info: SecureInfo) => void): this
  once(event: 'refused', listener: (report: RefusedReport) => void): this
  once(event: 'diverted', listener: (head: Buffer) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

/**
 * An encrypted, authenticated byte stream over another Duplex (a TCP
 * socket, usually), made by {@link secure}. Every byte written is carried
 * in AEAD records; every byte read has been authenticated. A failed record
 * destroys the channel (and its transport) with a {@link SecureError}.
 * `end()` sends an authenticated end record, so a truncation of the stream
 * is detected (`SYNMUX_SECURE_TRUNCATED`).
 */
export class SecureChannel extends Duplex {
  /** @internal */
  protected readonly opts: ResolvedOptions
  readonly #transport: Duplex
  readonly #createdAt = performance.now()
  #handshakeMs: number | null = null
  #sealer: RecordSealer | null = null
  #opener: RecordOpener | null = null
  #info: SecureInfo | null = null
  #peer: { key: Buffer; name: string | null } | null = null
  #timer: NodeJS.Timeout | null = null
  // Write side before the handshake completes.
  #collected: Buffer[] = []
  #collectedBytes = 0
  #held: { data: Buffer; cb: Callback } | null = null
  #heldFinal: Callback | null = null
  #drainCb: Callback | null = null
  /** The transport was let go (a server's diverted flight): destroying the channel leaves it open. */
  #released = false
  // Read side flow control.
  #pausedByReader = false
  #pausedByHandshake = false
  /** @internal Bytes received during the handshake and not used yet. */
  protected readonly handshakeInput = new ByteQueue()
  /** @internal Whether writes are being collected for the handshake message. */
  protected collecting = false
  /** @internal How many bytes may be collected. */
  protected collectLimit = 0

  /** @internal Use {@link secure}. */
  constructor(transport: Duplex, opts: ResolvedOptions) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 64 * 1024 })
    this.opts = opts
    this.#transport = transport
    transport.on('data', this.#onData)
    transport.on('end', this.#onEnd)
    transport.on('error', this.#onError)
    transport.on('close', this.#onClose)
    if (opts.handshakeTimeout > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = null
        this.onHandshakeTimeout()
      }, opts.handshakeTimeout)
      this.#timer.unref?.()
    }
  }

  /** The Duplex this channel runs over. */
  get transport(): Duplex {
    return this.#transport
  }

  /** The transport's remote address, if it has one (a socket). */
  get remoteAddress(): string | undefined {
    return (this.#transport as { remoteAddress?: string }).remoteAddress
  }

  /** The transport's remote port, if it has one. */
  get remotePort(): number | undefined {
    return (this.#transport as { remotePort?: number }).remotePort
  }

  /** The transport's local address, if it has one. */
  get localAddress(): string | undefined {
    return (this.#transport as { localAddress?: string }).localAddress
  }

  /** The transport's local port, if it has one. */
  get localPort(): number | undefined {
    return (this.#transport as { localPort?: number }).localPort
  }

  /** Whether the handshake is complete. */
  get secured(): boolean {
    return this.#info !== null
  }

  /** What the handshake established, or `null` before it completes. */
  get info(): SecureInfo | null {
    return this.#info
  }

  /**
   * The peer's static public key: on a server from when message 1 is
   * authorized (so while reading the early data), on a client from the
   * end of the handshake.
   */
  get remotePublicKey(): Buffer | null {
    return this.#peer ? Buffer.from(this.#peer.key) : null
  }

  /** Server: the client key's name from `authorize` (known while reading the early data); client: `null`. */
  get peerName(): string | null {
    return this.#peer?.name ?? null
  }

  /** What happened to the early data: `'none'`, `'accepted'`, `'rejected'`; `null` before the handshake completes. */
  get earlyData(): SecureInfo['earlyData'] | null {
    return this.#info?.earlyData ?? null
  }

  /** @internal Bytes held while the handshake is incomplete (tests of the bound). */
  get handshakeBuffered(): number {
    return this.handshakeInput.length
  }

  /** Counters of records sent and received. */
  stats(): SecureChannelStats {
    const zero = { records: 0, bytes: 0, wireBytes: 0, rekeys: 0 }
    return {
      sent: { ...(this.#sealer?.counters ?? zero) },
      received: { ...(this.#opener?.counters ?? zero) },
      handshakeMs: this.#handshakeMs,
    }
  }

  // --- hooks for the roles -------------------------------------------------

  /** @internal Transport bytes before the handshake is complete. */
  protected onHandshakeData(_chunk: Buffer): void {}

  /** @internal The transport ended before the handshake completed. */
  protected onHandshakeEnd(): void {
    this.destroy(new SecureError('SYNMUX_SECURE_TRUNCATED', 'The transport ended during the handshake'))
  }

  /** @internal The handshake timeout fired. */
  protected onHandshakeTimeout(): void {
    this.destroy(new SecureError('SYNMUX_SECURE_HANDSHAKE_TIMEOUT', `The handshake did not complete within ${this.opts.handshakeTimeout} ms`))
  }

  /** @internal Collected bytes reached `collectLimit` with more to come. */
  protected onCollectFull(): void {}

  /** @internal The protocol name in use. */
  protected get protocolName(): string {
    return this.opts.protocol ?? SECURE_PROTOCOL
  }

  /** @internal Records who the peer is (before the early data is delivered). */
  protected identifyPeer(key: Buffer, name: string | null): void {
    this.#peer = { key: Buffer.from(key), name }
  }

  /** @internal Writes handshake bytes to the transport. */
  protected sendRaw(bytes: Buffer): void {
    if (!this.#transport.destroyed) this.#transport.write(bytes)
  }

  /** @internal Delivers application bytes to the reader. */
  protected deliver(data: Buffer): void {
    if (data.length > 0 && !this.push(data)) this.#setPaused('reader', true)
  }

  /** @internal Stops (or restarts) reading the transport while the handshake decides. */
  protected holdReading(on: boolean): void {
    this.#setPaused('handshake', on)
  }

  /** @internal The bytes collected so far; stops collecting. */
  protected takeCollected(): Buffer {
    this.collecting = false
    const out = this.#collected.length === 1 ? this.#collected[0]! : Buffer.concat(this.#collected)
    this.#collected = []
    this.#collectedBytes = 0
    return out
  }

  /** @internal Lets go of the transport: no more listening to it, and destroying the channel leaves it open (paused). */
  protected release(): void {
    this.stopTimer()
    this.#released = true
    const t = this.#transport
    t.pause()
    t.removeListener('data', this.#onData)
    t.removeListener('end', this.#onEnd)
    t.removeListener('close', this.#onClose)
    t.removeListener('drain', this.#onDrain)
    t.removeListener('error', this.#onError)
  }

  /** @internal Stops the handshake timer (a refused server keeps its own rules). */
  protected stopTimer(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
  }

  /**
   * @internal The handshake is done: start the record layer, send `resend`
   * (rejected early data) and anything held, emit `'secure'`, deliver
   * `firstData` (message 2's bytes, client), then process `leftover`.
   */
  protected establish(keys: TransportKeys, peerRekeyInterval: number, info: SecureInfo, resend: Buffer | null, firstData: Buffer | null, leftover: Buffer | null): void {
    this.stopTimer()
    this.#sealer = new RecordSealer(keys.send!, this.opts.rekeyInterval, this.opts.maxRecordSize)
    this.#opener = new RecordOpener(keys.receive!, peerRekeyInterval)
    this.#info = info
    this.identifyPeer(info.remotePublicKey, info.peerName)
    this.#handshakeMs = performance.now() - this.#createdAt
    this.collecting = false
    if (resend && resend.length > 0) this.#sendRecords([resend], null)
    const held = this.#held
    this.#held = null
    if (held) this.#sendRecords([held.data], held.cb)
    this.emit('secure', info)
    if (this.destroyed) return
    if (firstData) this.deliver(firstData)
    const final = this.#heldFinal
    this.#heldFinal = null
    if (final) this.#sendEnd(final)
    this.holdReading(false)
    if (leftover && leftover.length > 0) this.#onRecords(leftover)
  }

  // --- stream implementation ----------------------------------------------

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: Callback): void {
    this.#write(chunk, cb)
  }

  override _writev(chunks: { chunk: Buffer }[], cb: Callback): void {
    // After the handshake the pieces are sealed as they are (no copy to join them).
    if (this.#sealer) return this.#sendRecords(chunks.map((c) => c.chunk), cb)
    this.#write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb)
  }

  #write(data: Buffer, cb: Callback): void {
    if (this.#sealer) return this.#sendRecords([data], cb)
    if (!this.collecting) {
      this.#held = { data, cb }
      return
    }
    const room = this.collectLimit - this.#collectedBytes
    if (data.length <= room) {
      if (data.length > 0) this.#collected.push(data)
      this.#collectedBytes += data.length
      cb()
      if (this.#collectedBytes === this.collectLimit && this.collectLimit > 0) this.onCollectFull()
      return
    }
    if (room > 0) this.#collected.push(data.subarray(0, room))
    this.#collectedBytes += room
    this.#held = { data: data.subarray(room), cb }
    this.onCollectFull()
  }

  override _final(cb: Callback): void {
    if (this.#sealer) this.#sendEnd(cb)
    else this.#heldFinal = cb
  }

  override _read(): void {
    this.#setPaused('reader', false)
  }

  override _destroy(err: Error | null, cb: Callback): void {
    this.stopTimer()
    const t = this.#transport
    t.removeListener('data', this.#onData)
    t.removeListener('end', this.#onEnd)
    t.removeListener('close', this.#onClose)
    t.removeListener('drain', this.#onDrain)
    if (!this.#released) {
      // Keep an 'error' listener: the transport may still report one.
      t.on('error', () => {})
      t.removeListener('error', this.#onError)
      if (!t.destroyed) t.destroy()
    }
    const pending = [this.#held?.cb, this.#heldFinal, this.#drainCb]
    this.#held = null
    this.#heldFinal = null
    this.#drainCb = null
    for (const p of pending) p?.(err ?? new SecureError('SYNMUX_SECURE_TRUNCATED', 'The channel was destroyed'))
    cb(err)
  }

  #sendRecords(parts: Buffer[], cb: Callback | null): void {
    let records: Buffer[]
    try {
      records = this.#sealer!.sealParts(parts)
    } catch (err) {
      if (cb) cb(err as Error)
      else this.destroy(err as Error)
      return
    }
    this.#out(records, cb)
  }

  #sendEnd(cb: Callback): void {
    let records: Buffer[]
    try {
      records = this.#sealer!.end()
    } catch (err) {
      cb(err as Error)
      return
    }
    this.#out(records, null)
    if (this.#transport.destroyed || this.#transport.writableEnded) return cb()
    this.#transport.end(() => cb())
  }

  #out(records: Buffer[], cb: Callback | null): void {
    const t = this.#transport
    if (t.destroyed) {
      cb?.(new SecureError('SYNMUX_SECURE_TRUNCATED', 'The transport is closed'))
      return
    }
    let ok = true
    if (records.length === 1) ok = t.write(records[0])
    else if (records.length > 1) {
      // One writev of the records' pieces (length, ciphertext, tag): no copy.
      t.cork()
      for (const r of records) ok = t.write(r)
      t.uncork()
    }
    if (!cb) return
    if (ok) return cb()
    this.#drainCb = cb
    t.once('drain', this.#onDrain)
  }

  readonly #onDrain = (): void => {
    const cb = this.#drainCb
    this.#drainCb = null
    cb?.()
  }

  #setPaused(which: 'reader' | 'handshake', on: boolean): void {
    if (which === 'reader') this.#pausedByReader = on
    else this.#pausedByHandshake = on
    if (this.#transport.destroyed) return
    if (this.#pausedByReader || this.#pausedByHandshake) this.#transport.pause()
    else this.#transport.resume()
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.destroyed) return
    if (!this.#opener) return this.onHandshakeData(chunk)
    this.#onRecords(chunk)
  }

  #onRecords(chunk: Buffer): void {
    const opener = this.#opener!
    let plaintexts: Buffer[]
    try {
      plaintexts = opener.write(chunk)
    } catch (err) {
      this.destroy(err as Error)
      return
    }
    for (const p of plaintexts) this.deliver(p)
    if (opener.ended && !this.readableEnded) this.push(null)
  }

  readonly #onEnd = (): void => {
    if (this.destroyed) return
    if (!this.#opener) return this.onHandshakeEnd()
    try {
      this.#opener.finish()
    } catch (err) {
      this.destroy(err as Error)
    }
  }

  readonly #onError = (err: Error): void => {
    if (!this.destroyed) this.destroy(err)
  }

  readonly #onClose = (): void => {
    if (this.destroyed) return
    if (!this.#opener) return this.onHandshakeEnd()
    if (!this.#opener.ended) this.destroy(new SecureError('SYNMUX_SECURE_TRUNCATED', 'The transport closed without the end record'))
    else this.destroy()
  }
}
