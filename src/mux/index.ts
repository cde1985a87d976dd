/**
 * The multiplexer: sessions and streams over any Node `Duplex`, and the
 * wire codec (docs/PROTOCOL.md).
 * @packageDocumentation
 */
export { Session } from './session.js'
export type { OpenOptions, StreamInfo, RefusedOpenInfo, GoawayInfo, SessionState, SessionStats, SessionEvents } from './session.js'
export type { SessionOptions, AuthOptions, ResumptionOptions } from './options.js'
export { SessionRegistry } from './registry.js'
export type { SessionRegistryOptions, SessionRegistryEvents, SessionRegistryStats, SessionPlacement } from './registry.js'
export { encodeRedirect, decodeRedirect, REDIRECT_SIZE } from './redirect.js'
export type { RedirectAddress } from './redirect.js'
export { MuxStream } from './stream.js'
export { LaneSet } from './lanes.js'
export type { LaneInfo } from './lanes.js'
export type { Target, DecodedTarget, TargetKind } from './target.js'
export { MuxError, ProtocolError } from './errors.js'
export type { MuxErrorCode, MuxErrorOptions } from './errors.js'
export {
  encodeFrame,
  decodeFrame,
  FrameDecoder,
  encodeHello,
  decodeHello,
  frameTypeName,
  isSessionFrameType,
} from './codec.js'
export type {
  Frame,
  FrameInit,
  FrameDecoderOptions,
  Hello,
  HelloInit,
  OpenFrame,
  OpenedFrame,
  RefusedFrame,
  DataFrame,
  WindowFrame,
  RstFrame,
  GoawayFrame,
  PingFrame,
  PongFrame,
  AckFrame,
  AuthFrame,
  SeqFrame,
} from './codec.js'
export {
  FrameType,
  FrameFlag,
  GoawayCode,
  RefuseCode,
  ResetCode,
  HelloKind,
  Capability,
  HelloExtension,
  TargetType,
  ResumeRefused,
  PROTOCOL_VERSION as MUX_PROTOCOL_VERSION,
  FRAME_HEADER_SIZE as MUX_FRAME_HEADER_SIZE,
  DEFAULTS as MUX_DEFAULTS,
} from './constants.js'
