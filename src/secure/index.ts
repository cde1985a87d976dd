/**
 * The secure channel: a Noise handshake (`Noise_IKpsk1_25519_ChaChaPoly_BLAKE2s`)
 * with 0-RTT early data, then AEAD records, as a Duplex over any
 * transport Duplex (docs/PROTOCOL.md 20).
 * @packageDocumentation
 */
export { secure } from './secure.js'
export { SecureChannel, type SecureChannelStats, type SecureChannelEvents } from './channel.js'
export type { SecureOptions, SecureClientOptions, SecureServerOptions, SecureCommonOptions, FirstFlight, DivertedFlight, RefusedReport, RefusedReason, SecureInfo } from './options.js'
export { SecureError, type SecureErrorCode, type SecureErrorOptions } from './errors.js'
export { ReplayGuard, type ReplayGuardOptions, type ReplayVerdict, type ReplayChecker } from './replay.js'
export {
  generateKeyPair,
  derivePublicKey,
  encodePublicKey,
  decodePublicKey,
  encodePrivateKey,
  decodePrivateKey,
  writePrivateKeyFile,
  readPrivateKeyFile,
  parseAuthorizedKeys,
  readAuthorizedKeysFile,
  AuthorizedKeys,
  PRIVATE_KEY_TAG,
  MAX_KEY_NAME,
  type KeyPair,
} from './keys.js'
export { CipherState } from './cipher-state.js'
export { SymmetricState } from './symmetric-state.js'
export { HandshakeState, MAX_NOISE_MESSAGE, type HandshakeStateOptions, type TransportKeys } from './handshake-state.js'
export { RecordSealer, RecordOpener, RECORD_HEADER_SIZE, MAX_RECORD_PLAINTEXT, MIN_REKEY_INTERVAL, MAX_REKEY_INTERVAL, type RecordCounters } from './record.js'
export {
  SECURE_PROTOCOL,
  SECURE_PROLOGUE,
  MESSAGE1_TYPE,
  MAX_EARLY_DATA,
  EarlyStatus,
  EarlyRejectCode,
  encodeInitPayload,
  decodeInitPayload,
  encodeReplyPayload,
  decodeReplyPayload,
  type InitPayload,
  type ReplyPayload,
  type EarlyRejectReason,
} from './payload.js'
