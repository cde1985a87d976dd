/**
 * Error objects of the multiplexer. Every error has a stable `code`.
 * @packageDocumentation
 */
import { SynmuxError } from '../common/errors.js'

/** Every `code` a {@link MuxError} can carry (PROTOCOL.md 12). */
export type MuxErrorCode =
  | 'SYNMUX_PROTOCOL_ERROR'
  | 'SYNMUX_FLOW_CONTROL_ERROR'
  | 'SYNMUX_FRAME_SIZE_ERROR'
  | 'SYNMUX_BAD_MAGIC'
  | 'SYNMUX_UNSUPPORTED_VERSION'
  | 'SYNMUX_HANDSHAKE_FAILED'
  | 'SYNMUX_HANDSHAKE_TIMEOUT'
  | 'SYNMUX_AUTH_FAILED'
  | 'SYNMUX_PEER_TIMEOUT'
  | 'SYNMUX_RESOURCE_EXHAUSTED'
  | 'SYNMUX_REMOTE_GOAWAY'
  | 'SYNMUX_CONNECTION_LOST'
  | 'SYNMUX_SESSION_CLOSED'
  | 'SYNMUX_REFUSED'
  | 'SYNMUX_STREAM_RESET'
  | 'SYNMUX_TOO_MANY_STREAMS'
  | 'SYNMUX_STREAM_IDS_EXHAUSTED'
  | 'SYNMUX_SESSION_LOST'
  | 'SYNMUX_MESSAGE_TOO_LARGE'
  | 'SYNMUX_MESSAGES_UNSUPPORTED'
  | 'SYNMUX_LANE_REFUSED'

/** Options of a {@link MuxError}. */
export interface MuxErrorOptions {
  /** The numeric code on the wire (GOAWAY, REFUSED or RST code), if any. */
  wireCode?: number
  /** The reason text the peer sent (GOAWAY, REFUSED), if any. */
  reason?: string
  /** The protocol version the peer spoke (`SYNMUX_UNSUPPORTED_VERSION`). */
  version?: number
  /** The underlying error. */
  cause?: unknown
}

/**
 * An error of a session or stream. `code` is stable; `message` is for
 * people.
 */
export class MuxError extends SynmuxError<MuxErrorCode> {
  /** The numeric code on the wire (GOAWAY, REFUSED or RST code), if any. */
  readonly wireCode: number | undefined
  /** The reason text the peer sent, if any. */
  readonly reason: string | undefined
  /** The protocol version the peer spoke, for `SYNMUX_UNSUPPORTED_VERSION`. */
  readonly version: number | undefined

  constructor(code: MuxErrorCode, message: string, options: MuxErrorOptions = {}) {
    super(code, message, options.cause !== undefined ? { cause: options.cause } : undefined)
    this.name = 'MuxError'
    this.wireCode = options.wireCode
    this.reason = options.reason
    this.version = options.version
  }
}

/**
 * A protocol violation found while decoding or processing the peer's bytes.
 * Carries the GOAWAY code the session answers with.
 */
export class ProtocolError extends MuxError {
  constructor(
    code: 'SYNMUX_PROTOCOL_ERROR' | 'SYNMUX_FLOW_CONTROL_ERROR' | 'SYNMUX_FRAME_SIZE_ERROR' | 'SYNMUX_BAD_MAGIC' | 'SYNMUX_UNSUPPORTED_VERSION' | 'SYNMUX_HANDSHAKE_FAILED',
    message: string,
    wireCode: number,
    version?: number,
  ) {
    super(code, message, version !== undefined ? { wireCode, version } : { wireCode })
    this.name = 'ProtocolError'
  }
}

export { invalidArgType, invalidArgValue, outOfRange, uintArg } from '../common/arg-errors.js'

export { invalidState } from '../common/errors.js'
