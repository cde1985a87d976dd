/**
 * Errors of the secure channel. Every error has a stable `code`
 * (docs/PROTOCOL.md 20.9).
 * @packageDocumentation
 */
import { SynmuxError } from '../common/errors.js'

/** Every `code` a {@link SecureError} can carry. */
export type SecureErrorCode =
  /** A handshake message or record failed authentication (tampered, reordered, replayed, wrong key or PSK). */
  | 'SYNMUX_SECURE_DECRYPT_FAILED'
  /** The transport ended inside a record, or without the peer's end record. */
  | 'SYNMUX_SECURE_TRUNCATED'
  /** A record whose length field is impossible (below the 16-byte tag), or bytes after the end record. */
  | 'SYNMUX_SECURE_BAD_RECORD'
  /** A handshake message that is malformed: wrong type byte, impossible length, bad payload. */
  | 'SYNMUX_SECURE_BAD_HANDSHAKE'
  /** Client: the server closed the transport without answering message 1 (wrong server key, key not authorized, wrong PSK). */
  | 'SYNMUX_SECURE_REFUSED'
  /** Server: message 1 came from a key the server does not authorize. */
  | 'SYNMUX_SECURE_UNAUTHORIZED'
  /** The handshake did not complete within the handshake timeout. */
  | 'SYNMUX_SECURE_HANDSHAKE_TIMEOUT'
  /** A CipherState's nonce reached its limit; the channel cannot send or receive any more. */
  | 'SYNMUX_SECURE_NONCE_EXHAUSTED'
  /** A key or key file is malformed. */
  | 'SYNMUX_SECURE_BAD_KEY'
  /** A private key file is readable by group or others. */
  | 'SYNMUX_SECURE_KEY_PERMISSIONS'
  /** An authorized-keys file is malformed. */
  | 'SYNMUX_SECURE_BAD_AUTHORIZED_KEYS'

/** Options of a {@link SecureError}. */
export interface SecureErrorOptions {
  /** The underlying error. */
  cause?: unknown
}

/**
 * An error of the secure channel (handshake, records, keys). `code` is
 * stable; `message` is for people.
 */
export class SecureError extends SynmuxError<SecureErrorCode> {
  constructor(code: SecureErrorCode, message: string, options: SecureErrorOptions = {}) {
    super(code, message, options.cause !== undefined ? { cause: options.cause } : undefined)
    this.name = 'SecureError'
  }
}

/** A `TypeError` or `RangeError` with a `code` (bad keys and key files). @internal */
export function badInput<E extends TypeErrorConstructor | RangeErrorConstructor>(
  Kind: E,
  code: SecureErrorCode,
  message: string,
): InstanceType<E> & { code: SecureErrorCode } {
  const err = new Kind(message) as InstanceType<E> & { code: SecureErrorCode }
  err.code = code
  return err
}
