/**
 * The server (Noise responder) side of the secure channel: message 1
 * (authentication, authorization, the 0-RTT decision), then message 2
 * with the application's first reply bytes. A message 1 that fails gets
 * no byte in reply.
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream'
import { SecureChannel } from './channel.js'
import { SecureError, type SecureErrorCode } from './errors.js'
import { HandshakeState } from './handshake-state.js'
import type { RefusedReason, RefusedReport, ResolvedOptions, SecureInfo } from './options.js'
import {
  decodeInitPayload,
  EarlyStatus,
  encodeReplyPayload,
  frameMessage2,
  MESSAGE1_TYPE,
  MIN_MESSAGE1,
  MAX_REPLY_DATA,
  rejectCode,
  SECURE_PROLOGUE,
  type EarlyRejectReason,
  type InitPayload,
} from './payload.js'
import { x25519Public } from './primitives.js'
import { sharedReplayGuard } from './replay.js'

/** Extension bytes a server allows in message 1 beyond the early data. */
const EXTENSION_ALLOWANCE = 1024

type State = 'await-init' | 'deciding' | 'replying' | 'open' | 'refused' | 'diverted'

const REFUSAL_CODES: Record<RefusedReason, RefusedReport['code']> = {
  unauthorized: 'SYNMUX_SECURE_UNAUTHORIZED',
  'decrypt-failed': 'SYNMUX_SECURE_DECRYPT_FAILED',
  'bad-type': 'SYNMUX_SECURE_BAD_HANDSHAKE',
  'bad-length': 'SYNMUX_SECURE_BAD_HANDSHAKE',
  'too-large': 'SYNMUX_SECURE_BAD_HANDSHAKE',
  'bad-key': 'SYNMUX_SECURE_BAD_HANDSHAKE',
  'bad-payload': 'SYNMUX_SECURE_BAD_HANDSHAKE',
}

/** The server channel. @internal */
export class ServerChannel extends SecureChannel {
  #state: State = 'await-init'
  #refusal: SecureError | null = null
  readonly #maxMessage1: number
  #tick: NodeJS.Immediate | null = null
  #sendReplyNow: (() => void) | null = null
  #pendingInfo: SecureInfo | null = null
  /** Message 1 as read (type, length, message), kept until it is decided (a diverted flight is handed on whole). */
  #message1: Buffer | null = null

  constructor(transport: Duplex, opts: ResolvedOptions) {
    super(transport, opts)
    this.#maxMessage1 = Math.min(65535, MIN_MESSAGE1 + opts.maxEarlyData + EXTENSION_ALLOWANCE)
    // The application's first writes (even before message 1 arrives) are
    // collected for message 2.
    this.collecting = true
    this.collectLimit = Math.min(opts.maxRecordSize, MAX_REPLY_DATA)
  }

  protected override onHandshakeData(chunk: Buffer): void {
    if (this.#state === 'refused') return // drain: read and discard
    const q = this.handshakeInput
    // After message 1, while deciding, reading is paused: at most what was
    // already in flight arrives; it is kept for the records.
    q.push(chunk)
    if (this.#state !== 'await-init' || q.length === 0) return
    const type = q.peek(1)[0]!
    if (type !== MESSAGE1_TYPE) return this.#refuse('bad-type', `First byte 0x${type.toString(16).padStart(2, '0')} is not message 1`)
    if (q.length < 3) return
    const length = q.peek(3).readUInt16BE(1)
    if (length < MIN_MESSAGE1) return this.#refuse('bad-length', `Message 1 length ${length} is below the minimum ${MIN_MESSAGE1}`)
    if (length > this.#maxMessage1) return this.#refuse('too-large', `Message 1 length ${length} is above this server's maximum ${this.#maxMessage1}`)
    if (q.length < 3 + length) return
    const frame = q.take(3 + length)
    const message = frame.subarray(3)
    if (this.opts.divert !== undefined) this.#message1 = frame
    this.#state = 'deciding'
    this.holdReading(true)
    this.#onInit(message).catch((err) => this.destroy(err as Error))
  }

  async #onInit(message: Buffer): Promise<void> {
    const o = this.opts
    const hs = new HandshakeState({
      protocolName: this.protocolName,
      initiator: false,
      prologue: SECURE_PROLOGUE,
      staticKey: o.staticKey,
      psks: [o.psk],
      ...(o.ephemeralKey ? { ephemeralKey: o.ephemeralKey } : {}),
    })
    let init: InitPayload
    try {
      init = decodeInitPayload(hs.readMessage(message))
    } catch (err) {
      const e = err as SecureError
      const reason: RefusedReason = e.code === 'SYNMUX_SECURE_DECRYPT_FAILED' ? 'decrypt-failed' : hs.remoteStaticKey ? 'bad-payload' : 'bad-key'
      return this.#refuse(reason, e.message, hs.remoteStaticKey)
    }
    const peerKey = hs.remoteStaticKey!
    let name: string | null
    try {
      name = await o.authorize(Buffer.from(peerKey))
    } catch (err) {
      return this.#refuse('unauthorized', `authorize() failed: ${(err as Error)?.message ?? err}`, peerKey, err)
    }
    if (this.destroyed) return
    if (typeof name !== 'string' || name === '') return this.#refuse('unauthorized', 'The client key is not authorized', peerKey)
    // Handed on (before the replay guard sees it: the process it goes to judges it).
    if (o.divert !== undefined) {
      if (o.divert({ data: Buffer.from(init.earlyData), peerKey: Buffer.from(peerKey), peerName: name })) return this.#divert()
      this.#message1 = null
    }

    // 0-RTT: act on the early data only if the replay guard finds the
    // flight fresh (and records it) and the application agrees.
    let status: 0 | 1 | 2 = EarlyStatus.NONE
    let reason: EarlyRejectReason | null = null
    if (init.earlyData.length > 0) {
      if (o.acceptEarlyData === false) reason = 'disabled'
      else {
        const guard = o.replayGuard ?? sharedReplayGuard()
        const verdict = await guard.check(x25519Public(o.staticKey), peerKey, hs.remoteEphemeralKey!, init.timestamp)
        if (this.destroyed) return
        if (!verdict.fresh) reason = verdict.reason
        else if (typeof o.acceptEarlyData === 'function') {
          const ok = await o.acceptEarlyData({ data: Buffer.from(init.earlyData), peerKey: Buffer.from(peerKey), peerName: name, timestamp: init.timestamp / 1000 })
          if (this.destroyed) return
          if (ok !== true) reason = 'declined'
        }
      }
      status = reason === null ? EarlyStatus.ACCEPTED : EarlyStatus.REJECTED
    }
    const info: SecureInfo = {
      role: 'server',
      protocol: hs.protocolName,
      remotePublicKey: Buffer.from(peerKey),
      peerName: name,
      earlyData: status === EarlyStatus.ACCEPTED ? 'accepted' : status === EarlyStatus.REJECTED ? 'rejected' : 'none',
      earlyDataRejectReason: reason,
      handshakeHash: Buffer.alloc(0),
      clockSkew: null,
    }
    this.#state = 'replying'
    this.#pendingInfo = info
    this.identifyPeer(peerKey, name)
    if (status === EarlyStatus.ACCEPTED) this.deliver(Buffer.from(init.earlyData))
    // Message 2 leaves one tick later with what the application wrote by
    // then (its answer to the early data, usually), or at once when full.
    this.#sendReplyNow = () => this.#sendReply(hs, init, status, reason)
    this.#tick = setImmediate(this.#sendReplyNow)
  }

  protected override onCollectFull(): void {
    if (this.#state === 'replying' && this.#sendReplyNow) this.#sendReplyNow()
  }

  #sendReply(hs: HandshakeState, init: InitPayload, status: 0 | 1 | 2, reason: EarlyRejectReason | null): void {
    if (this.#tick) clearImmediate(this.#tick)
    this.#tick = null
    this.#sendReplyNow = null
    if (this.destroyed || this.#state !== 'replying') return
    const data = this.takeCollected()
    let message: Buffer
    try {
      const payload = encodeReplyPayload({
        earlyStatus: status,
        rejectCode: reason ? rejectCode(reason) : 0,
        serverTime: this.opts.clock() * 1000,
        rekeyInterval: this.opts.rekeyInterval,
        extensions: Buffer.alloc(0),
        data,
      })
      message = frameMessage2(hs.writeMessage(payload))
    } catch (err) {
      this.destroy(err as Error)
      return
    }
    this.#state = 'open'
    this.sendRaw(message)
    const info = { ...this.#pendingInfo!, handshakeHash: hs.transport!.handshakeHash }
    this.#pendingInfo = null
    const leftover = this.handshakeInput.drain()
    this.establish(hs.transport!, init.rekeyInterval, info, null, null, leftover)
  }

  /** `divert` took the flight: let go of the transport, unclosed and paused, with every byte read from it. */
  #divert(): void {
    if (this.destroyed) return
    this.#state = 'diverted'
    const rest = this.handshakeInput.drain()
    const head = rest === null ? this.#message1! : Buffer.concat([this.#message1!, rest])
    this.#message1 = null
    this.release()
    this.emit('diverted', head)
    this.destroy()
  }

  /** Refuses message 1: no byte in reply; report; drain or close. */
  #refuse(reason: RefusedReason, message: string, peerKey: Buffer | null = null, cause?: unknown): void {
    if (this.destroyed || this.#state === 'refused') return
    this.#state = 'refused'
    this.handshakeInput.clear()
    const code: SecureErrorCode = REFUSAL_CODES[reason]
    const error = new SecureError(code, `Message 1 refused (${reason}): ${message}`, cause !== undefined ? { cause } : {})
    this.#refusal = error
    const report: RefusedReport = { code: REFUSAL_CODES[reason], reason, peerKey, remoteAddress: this.remoteAddress, remotePort: this.remotePort, error }
    this.emit('refused', report)
    if (this.destroyed) return
    if (this.opts.onAuthFailure === 'close' || this.opts.handshakeTimeout === 0) {
      this.destroy(error)
      return
    }
    // Drain until the handshake timeout: read and discard, send nothing.
    this.holdReading(false)
  }

  protected override onHandshakeEnd(): void {
    if (this.#refusal) return void this.destroy(this.#refusal)
    if (this.#state === 'await-init' && this.handshakeInput.length === 0) {
      this.destroy(new SecureError('SYNMUX_SECURE_TRUNCATED', 'The client closed the connection without sending message 1'))
      return
    }
    super.onHandshakeEnd()
  }

  protected override onHandshakeTimeout(): void {
    if (this.#refusal) return void this.destroy(this.#refusal)
    super.onHandshakeTimeout()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#tick) clearImmediate(this.#tick)
    this.#tick = null
    super._destroy(err, cb)
  }
}
