/**
 * The client (Noise initiator) side of the secure channel: message 1 with
 * the first tick's writes as 0-RTT early data, then message 2.
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream'
import { SecureChannel } from './channel.js'
import { SecureError } from './errors.js'
import { HandshakeState } from './handshake-state.js'
import type { ResolvedOptions } from './options.js'
import {
  decodeReplyPayload,
  EarlyStatus,
  encodeInitPayload,
  frameMessage1,
  MIN_MESSAGE2,
  rejectReason,
  SECURE_PROLOGUE,
} from './payload.js'

/** Per clock function, the last timestamp sent (µs): each client of this process sends a strictly newer one. */
const lastTimestamps = new WeakMap<() => number, number>()

/** A strictly increasing timestamp in µs from `clock` (ms). */
function nextTimestamp(clock: () => number): number {
  const ts = Math.max(Math.floor(clock() * 1000), (lastTimestamps.get(clock) ?? 0) + 1)
  lastTimestamps.set(clock, ts)
  return ts
}

type State = 'gather' | 'await-reply' | 'open'

/** The client channel. @internal */
export class ClientChannel extends SecureChannel {
  #state: State = 'gather'
  #hs: HandshakeState | null = null
  #early: Buffer = Buffer.alloc(0)
  #sentAt = 0
  #received = 0
  #tick: NodeJS.Immediate | null

  constructor(transport: Duplex, opts: ResolvedOptions) {
    super(transport, opts)
    this.collecting = true
    this.collectLimit = opts.maxEarlyData
    // Message 1 leaves one tick after creation with what was written by
    // then (up to maxEarlyData), or at once when that fills up.
    this.#tick = setImmediate(() => this.#sendInit())
  }

  protected override onCollectFull(): void {
    this.#sendInit()
  }

  #sendInit(): void {
    if (this.#tick) clearImmediate(this.#tick)
    this.#tick = null
    if (this.#state !== 'gather' || this.destroyed) return
    this.#state = 'await-reply'
    this.#early = this.takeCollected()
    const o = this.opts
    let message: Buffer
    try {
      this.#hs = new HandshakeState({
        protocolName: this.protocolName,
        initiator: true,
        prologue: SECURE_PROLOGUE,
        staticKey: o.staticKey,
        remoteStaticKey: o.serverKey,
        psks: [o.psk],
        ...(o.ephemeralKey ? { ephemeralKey: o.ephemeralKey } : {}),
      })
      this.#sentAt = o.clock()
      const payload = encodeInitPayload({ timestamp: nextTimestamp(o.clock), rekeyInterval: o.rekeyInterval, extensions: Buffer.alloc(0), earlyData: this.#early })
      message = frameMessage1(this.#hs.writeMessage(payload))
    } catch (err) {
      this.destroy(err as Error)
      return
    }
    // The first write on the transport: with TCP Fast Open it rides in the SYN.
    this.sendRaw(message)
  }

  protected override onHandshakeData(chunk: Buffer): void {
    this.#received += chunk.length
    if (this.#state !== 'await-reply') {
      this.destroy(new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', 'The server sent bytes before message 1'))
      return
    }
    const q = this.handshakeInput
    q.push(chunk)
    if (q.length < 2) return
    const length = q.peek(2).readUInt16BE(0)
    if (length < MIN_MESSAGE2) {
      this.destroy(new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', `Message 2 length ${length} is below the minimum ${MIN_MESSAGE2}`))
      return
    }
    if (q.length < 2 + length) return
    const message = q.take(2 + length).subarray(2)
    this.#onReply(message, q.drain())
  }

  #onReply(message: Buffer, leftover: Buffer | null): void {
    const hs = this.#hs!
    let reply
    try {
      const payload = hs.readMessage(message)
      reply = decodeReplyPayload(payload)
    } catch (err) {
      const e = err as SecureError
      const text = e.code === 'SYNMUX_SECURE_DECRYPT_FAILED' ? 'Message 2 failed authentication (a different PSK on the server, or the message was tampered with)' : e.message
      this.destroy(new SecureError(e.code ?? 'SYNMUX_SECURE_BAD_HANDSHAKE', text, { cause: err }))
      return
    }
    const sentEarly = this.#early.length > 0
    const status = reply.earlyStatus
    if ((status === EarlyStatus.NONE) === sentEarly) {
      this.destroy(new SecureError('SYNMUX_SECURE_BAD_HANDSHAKE', `Message 2 says early data ${status === EarlyStatus.NONE ? 'none' : 'answered'} but ${sentEarly ? 'some' : 'none'} was sent`))
      return
    }
    this.#state = 'open'
    const rejected = status === EarlyStatus.REJECTED
    const info = {
      role: 'client' as const,
      protocol: hs.protocolName,
      remotePublicKey: Buffer.from(this.opts.serverKey),
      peerName: null,
      earlyData: status === EarlyStatus.ACCEPTED ? ('accepted' as const) : rejected ? ('rejected' as const) : ('none' as const),
      earlyDataRejectReason: rejected ? rejectReason(reply.rejectCode) : null,
      handshakeHash: hs.transport!.handshakeHash,
      clockSkew: Math.round(reply.serverTime / 1000 - (this.#sentAt + this.opts.clock()) / 2),
    }
    // Rejected early data goes again, first, as ordinary records: the
    // server dropped it, so it arrives exactly once.
    this.establish(hs.transport!, reply.rekeyInterval, info, rejected ? this.#early : null, reply.data, leftover)
    this.#early = Buffer.alloc(0)
    this.#hs = null
  }

  protected override onHandshakeEnd(): void {
    if (this.#received === 0 && this.#state === 'await-reply') {
      this.destroy(
        new SecureError(
          'SYNMUX_SECURE_REFUSED',
          'The server closed the connection without answering the handshake: a wrong server key, a client key the server does not authorize, or a different PSK',
        ),
      )
      return
    }
    this.destroy(new SecureError('SYNMUX_SECURE_TRUNCATED', 'The transport ended during the handshake'))
  }

  protected override onHandshakeTimeout(): void {
    const hint = this.#received === 0 && this.#state === 'await-reply' ? ' and the server sent nothing: a wrong server key, a client key it does not authorize, or a different PSK' : ''
    this.destroy(new SecureError('SYNMUX_SECURE_HANDSHAKE_TIMEOUT', `The handshake did not complete within ${this.opts.handshakeTimeout} ms${hint}`))
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#tick) clearImmediate(this.#tick)
    this.#tick = null
    super._destroy(err, cb)
  }
}
