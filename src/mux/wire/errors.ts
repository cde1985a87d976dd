/**
 * The protocol errors the wire layer finds (and the session reports), each
 * with the GOAWAY code the session answers it with (PROTOCOL.md 11.1, 12).
 * @packageDocumentation
 */
import { GoawayCode } from './constants.js'
import { ProtocolError } from '../errors.js'

/** `SYNMUX_PROTOCOL_ERROR` (GOAWAY PROTOCOL_ERROR). @internal */
export function protocolError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_PROTOCOL_ERROR', message, GoawayCode.PROTOCOL_ERROR)
}

/** `SYNMUX_FLOW_CONTROL_ERROR` (GOAWAY FLOW_CONTROL_ERROR). @internal */
export function flowError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_FLOW_CONTROL_ERROR', message, GoawayCode.FLOW_CONTROL_ERROR)
}

/** `SYNMUX_FRAME_SIZE_ERROR` (GOAWAY FRAME_SIZE_ERROR). @internal */
export function frameSizeError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_FRAME_SIZE_ERROR', message, GoawayCode.FRAME_SIZE_ERROR)
}

/** `SYNMUX_HANDSHAKE_FAILED` (GOAWAY HANDSHAKE_FAILED). @internal */
export function handshakeError(message: string): ProtocolError {
  return new ProtocolError('SYNMUX_HANDSHAKE_FAILED', message, GoawayCode.HANDSHAKE_FAILED)
}
