/**
 * A man in the middle for the secure-channel tests: a TCP relay on
 * 127.0.0.1 that follows the channel's framing in each direction
 * (PROTOCOL.md 20.3: message 1 = type byte + u16 length + body; message 2
 * and every record = u16 length + body), so a test can record the
 * client's first flight byte for byte, count what crossed, and flip one
 * bit inside one chosen record.
 */
import net from 'node:net'

/** Follows the units (handshake message, records) of one direction of a secure channel. */
export class Framing {
  /** Bytes seen so far. */
  pos = 0
  /** Units (handshake message, then records) whose header was seen. */
  index = 0
  #hdr: number[] = []
  #skip = 0

  /**
   * @param typeByte the first unit starts with a type byte (client → server: message 1).
   * @param onUnit called at each unit header: its index, the stream offset of its body, the body's length.
   */
  constructor(
    private readonly typeByte: boolean,
    private readonly onUnit: (index: number, bodyAt: number, length: number) => void = () => {},
  ) {}

  push(chunk: Buffer): void {
    let i = 0
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i)
        i += n
        this.#skip -= n
        this.pos += n
        continue
      }
      this.#hdr.push(chunk[i]!)
      i++
      this.pos++
      const size = this.index === 0 && this.typeByte ? 3 : 2
      if (this.#hdr.length < size) continue
      const length = (this.#hdr[size - 2]! << 8) | this.#hdr[size - 1]!
      this.onUnit(this.index, this.pos, length)
      this.index++
      this.#hdr = []
      this.#skip = length
    }
  }
}

/** One relayed connection. */
export interface RelayedPair {
  client: net.Socket
  upstream: net.Socket
  /** Bytes client → server, and back. */
  up: number
  down: number
  /** The client's first flight (message 1: type, length, body), once complete. */
  firstFlight: Buffer | null
}

/** A relay to 127.0.0.1:`upstreamPort`. */
export class SecureRelay {
  readonly server: net.Server
  readonly pairs: RelayedPair[] = []
  /** Flip one bit in the first server → client record whose body starts at or after this many bytes of the direction (once, on one connection). */
  flipDownAt: number | null = null
  /** Where a bit was flipped: connection index, record index, stream offset. */
  flipped: { pair: number; record: number; offset: number } | null = null

  constructor(readonly upstreamPort: number) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.#pair(client))
  }

  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as net.AddressInfo).port)))
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port
  }

  #pair(client: net.Socket): void {
    const upstream = net.connect({ host: '127.0.0.1', port: this.upstreamPort, allowHalfOpen: true, noDelay: true })
    const p: RelayedPair = { client, upstream, up: 0, down: 0, firstFlight: null }
    const index = this.pairs.push(p) - 1
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    // client → server: record the first flight
    let first: Buffer[] = []
    let firstLength = -1
    const upFraming = new Framing(true, (i, bodyAt, length) => {
      if (i === 0) firstLength = bodyAt + length
    })
    client.on('data', (d: Buffer) => {
      upFraming.push(d)
      if (p.firstFlight === null) {
        first.push(d)
        const have = first.reduce((n, b) => n + b.length, 0)
        if (firstLength >= 0 && have >= firstLength) {
          p.firstFlight = Buffer.concat(first).subarray(0, firstLength)
          first = []
        }
      }
      p.up += d.length
      if (!upstream.write(d)) {
        client.pause()
        upstream.once('drain', () => client.resume())
      }
    })
    client.on('end', () => upstream.end())
    // server → client: flip one bit in one record, once
    let flipAt = -1
    const downFraming = new Framing(false, (i, bodyAt, length) => {
      if (i > 0 && flipAt < 0 && this.flipped === null && this.flipDownAt !== null && bodyAt >= this.flipDownAt && length > 32) {
        flipAt = bodyAt + (length >> 1)
        this.flipped = { pair: index, record: i - 1, offset: flipAt }
      }
    })
    upstream.on('data', (d: Buffer) => {
      const start = downFraming.pos
      downFraming.push(d)
      if (flipAt >= start && flipAt < start + d.length) {
        d = Buffer.from(d)
        d[flipAt - start]! ^= 0x10
        flipAt = Number.MAX_SAFE_INTEGER
      }
      p.down += d.length
      if (!client.write(d)) {
        upstream.pause()
        client.once('drain', () => upstream.resume())
      }
    })
    upstream.on('end', () => client.end())
  }

  close(): void {
    this.server.close()
    for (const p of this.pairs) {
      p.client.destroy()
      p.upstream.destroy()
    }
  }
}
