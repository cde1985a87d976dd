/**
 * The multiplexer: sessions and streams over any Node `Duplex`, and the
 * wire codec (docs/PROTOCOL.md).
 * @packageDocumentation
 */
export { Session } from './session/session.js'
export type { OpenOptions, StreamInfo, RefusedOpenInfo, GoawayInfo, SessionState, SessionStats, SessionEvents } from './session/types.js'
export type { SessionOptions, AuthOptions, ResumptionOptions } from './session/options.js'
export { SessionRegistry } from './registry/registry.js'
export type { SessionRegistryOptions, SessionRegistryEvents, SessionRegistryStats, SessionPlacement } from './registry/registry.js'
export { encodeRedirect, decodeRedirect, REDIRECT_SIZE } from './wire/redirect.js'
export type { RedirectAddress } from './wire/redirect.js'
export { MuxStream } from './stream/stream.js'
export { LaneSet } from './lanes/lane-set.js'
export type { LaneInfo } from './lanes/lane.js'
export type { Target, DecodedTarget, TargetKind } from './wire/target.js'
export { MuxError, ProtocolError } from './errors.js'
export type { MuxErrorCode, MuxErrorOptions } from './errors.js'
export {
  encodeFrame,
  decodeFrame,
  frameTypeName,
  isSessionFrameType,
} from './wire/frames.js'
export { FrameDecoder } from './wire/decoder.js'
export type { FrameDecoderOptions } from './wire/decoder.js'
export { encodeHello, decodeHello } from './wire/hello.js'
export type { Hello, HelloInit } from './wire/hello.js'
export type {
  Frame,
  FrameInit,
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
} from './wire/frames.js'
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
} from './wire/constants.js'
