/**
 * Pre-shared-key authentication (PROTOCOL.md 16): HMAC-SHA256 proofs over
 * the HELLO transcript and fresh nonces from both sides.
 * @packageDocumentation
 */
import crypto from 'node:crypto'
import type { Duplex } from 'node:stream'
import { FRAME_HEADER_SIZE, FrameType, GoawayCode } from './constants.js'
import { MuxError } from '../errors.js'

/** Bytes of a nonce and of a proof. */
export const AUTH_SIZE = 32
/** Bytes of session frames a server holds before the client's AUTH. */
export const AUTH_HOLD_LIMIT = 256 * 1024

const SERVER_LABEL = Buffer.from('synmux server', 'latin1')
const CLIENT_LABEL = Buffer.from('synmux client', 'latin1')

/** `SYNMUX_AUTH_FAILED` (GOAWAY AUTH_FAILED; never sent: the session closes without saying why, PROTOCOL.md 16). @internal */
export function authError(message: string): MuxError {
  return new MuxError('SYNMUX_AUTH_FAILED', `authentication failed: ${message}`, { wireCode: GoawayCode.AUTH_FAILED })
}

/** A fresh random nonce. @internal */
export function newNonce(): Buffer {
  return crypto.randomBytes(AUTH_SIZE)
}

/** The server's proof: HMAC(K, "synmux server" || client HELLO || Ns). @internal */
export function serverProof(key: Buffer, clientHello: Buffer, serverNonce: Buffer): Buffer {
  return crypto.createHmac('sha256', key).update(SERVER_LABEL).update(clientHello).update(serverNonce).digest()
}

/** The client's proof: HMAC(K, "synmux client" || server HELLO || Nc). @internal */
export function clientProof(key: Buffer, serverHello: Buffer, clientNonce: Buffer): Buffer {
  return crypto.createHmac('sha256', key).update(CLIENT_LABEL).update(serverHello).update(clientNonce).digest()
}

/** Constant-time comparison of a received proof with the expected one. @internal */
export function proofMatches(received: Buffer | undefined, expected: Buffer): boolean {
  return received !== undefined && received.length === expected.length && crypto.timingSafeEqual(received, expected)
}

/**
 * Server: reads a client's AUTH frame off `d` (PROTOCOL.md 16; the first
 * frame after the HELLO exchange), `rest` being bytes already read after
 * the client's HELLO. Calls `ok` with the bytes after the AUTH frame once a
 * valid proof (`expected`) arrived, or `fail` with the reason (a wrong
 * proof, another frame first, the transport closed, nothing within
 * `timeout` ms); either way `d` is left without listeners of ours. A
 * failure does not close `d` (the caller does).
 * @internal
 */
export function awaitAuth(d: Duplex, rest: Buffer, expected: Buffer, timeout: number, ok: (leftover: Buffer) => void, fail: (why: string) => void): void {
  let buf = rest
  let done = false
  const finish = (): boolean => {
    if (done) return false
    done = true
    if (timer) clearTimeout(timer)
    d.off('data', onData)
    d.off('close', onClose)
    return true
  }
  const check = (): void => {
    if (buf.length < FRAME_HEADER_SIZE + AUTH_SIZE) return
    const valid = buf[0] === 0 && buf[1] === 0 && buf[2] === AUTH_SIZE && buf[3] === FrameType.AUTH && proofMatches(buf.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + AUTH_SIZE), expected)
    if (!finish()) return
    if (valid) ok(buf.subarray(FRAME_HEADER_SIZE + AUTH_SIZE))
    else fail('the client does not hold our key')
  }
  const onData = (c: Buffer): void => {
    buf = buf.length === 0 ? c : Buffer.concat([buf, c])
    check()
  }
  const onClose = (): void => {
    if (finish()) fail('closed before its AUTH')
  }
  const timer = timeout > 0 ? setTimeout(() => finish() && fail(`no AUTH within ${timeout} ms`), timeout) : null
  timer?.unref?.()
  d.on('error', () => {})
  d.on('data', onData)
  d.on('close', onClose)
  check()
}
