/**
 * Pre-shared-key authentication (PROTOCOL.md 16): HMAC-SHA256 proofs over
 * the HELLO transcript and fresh nonces from both sides.
 * @packageDocumentation
 */
import crypto from 'node:crypto'

/** Bytes of a nonce and of a proof. */
export const AUTH_SIZE = 32
/** Bytes of session frames a server holds before the client's AUTH. */
export const AUTH_HOLD_LIMIT = 256 * 1024

const SERVER_LABEL = Buffer.from('synmux server', 'latin1')
const CLIENT_LABEL = Buffer.from('synmux client', 'latin1')

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
