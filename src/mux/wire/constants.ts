/**
 * Wire constants of the synmux protocol, version 1 (see docs/PROTOCOL.md).
 * @packageDocumentation
 */

/** The 6 magic bytes every HELLO starts with (`SYNMUX`). */
export const MAGIC: Buffer = Buffer.from('SYNMUX', 'latin1')

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1

/** Bytes of the frozen HELLO preamble: magic, version, kind, body length. */
export const HELLO_PREAMBLE_SIZE = 10
/** Bytes of the fixed part of a HELLO body. */
export const HELLO_FIXED_BODY_SIZE = 49
/** Largest HELLO body accepted. */
export const HELLO_MAX_BODY_SIZE = 1024
/** Size of a session id. */
export const SESSION_ID_SIZE = 32

/** Bytes of a frame header. */
export const FRAME_HEADER_SIZE = 9

/** Smallest legal max frame size (and the pre-HELLO frame size). */
export const MIN_MAX_FRAME_SIZE = 16_384
/** Largest legal max frame size (24-bit length field). */
export const MAX_MAX_FRAME_SIZE = 16_777_215
/** Smallest legal initial window (and the pre-HELLO credit). */
export const MIN_INITIAL_WINDOW = 65_536
/** Largest window / credit value. */
export const MAX_WINDOW = 2_147_483_647
/** Largest stream id. */
export const MAX_STREAM_ID = 0xffff_ffff
/** Largest length of a reason text in REFUSED / GOAWAY. */
export const MAX_REASON_LENGTH = 255
/** Largest host name in a target. */
export const MAX_HOST_LENGTH = 255
/** Smallest legal MAX_MESSAGE, and the largest message a side may start before the peer's HELLO (PROTOCOL.md 15). */
export const MIN_MAX_MESSAGE = 65_536
/** Largest MAX_MESSAGE this implementation accepts as an option. */
export const MAX_MAX_MESSAGE = 2_147_483_647

/** HELLO kinds (PROTOCOL.md 3.2). */
export const HelloKind = {
  NEW: 0x01,
  RESUME: 0x02,
  JOIN: 0x03,
} as const
/** A HELLO kind value. */
export type HelloKind = (typeof HelloKind)[keyof typeof HelloKind]

/** HELLO roles. */
export const Role = {
  CLIENT: 0x01,
  SERVER: 0x02,
} as const

/** Capability bits (PROTOCOL.md 3.3). */
export const Capability = {
  RESUME: 0x01,
  STRIPE: 0x02,
  AUTH_PSK: 0x04,
  MESSAGES: 0x08,
  /** A resuming client replays at once, after its RESUME HELLO (PROTOCOL.md 13.9). */
  EARLY_REPLAY: 0x10,
} as const

/** HELLO extension types (PROTOCOL.md 3.5). */
export const HelloExtension = {
  AUTH_NONCE: 0x01,
  AUTH_PROOF: 0x02,
  RECEIVED: 0x03,
  REPLAY_BUFFER: 0x04,
  LANE: 0x05,
  RESUME_REFUSED: 0x06,
  MAX_MESSAGE: 0x07,
  /** u64: the session offset of the first frame a resuming client replays right after its HELLO (PROTOCOL.md 13.9). */
  REPLAY_FROM: 0x08,
  /** port u16 + IPv6 address (16 bytes): where the session lives; with RESUME_REFUSED 5 in a server NEW (PROTOCOL.md 13.10). */
  REDIRECT: 0x09,
} as const

/** Frame types (PROTOCOL.md 4). Types below 0x80 are session frames. */
export const FrameType = {
  OPEN: 0x01,
  OPENED: 0x02,
  REFUSED: 0x03,
  DATA: 0x04,
  WINDOW: 0x05,
  RST: 0x06,
  GOAWAY: 0x07,
  PING: 0x80,
  PONG: 0x81,
  ACK: 0x82,
  AUTH: 0x83,
  SEQ: 0x84,
} as const
/** A frame type value. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

/** Frame flags. */
export const FrameFlag = {
  /** OPEN, OPENED, DATA: the sender has finished sending on the stream. */
  FIN: 0x01,
  /** OPEN: the stream is a message stream (PROTOCOL.md 15; needs the MESSAGES capability). */
  MESSAGES: 0x02,
  /** OPENED, DATA: the frame ends a message (PROTOCOL.md 15; message streams only). */
  EOM: 0x02,
  /** OPEN: its initial data ends a message (PROTOCOL.md 15; with MESSAGES only). */
  OPEN_EOM: 0x04,
} as const

/** Target address types in OPEN. */
export const TargetType = {
  NONE: 0x00,
  HOSTNAME: 0x01,
  IPV4: 0x02,
  IPV6: 0x03,
} as const

/** GOAWAY codes (PROTOCOL.md 11.1). */
export const GoawayCode = {
  NORMAL: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  FRAME_SIZE_ERROR: 4,
  IDLE_TIMEOUT: 5,
  RESOURCE_EXHAUSTED: 6,
  UNSUPPORTED_VERSION: 7,
  HANDSHAKE_FAILED: 8,
  AUTH_FAILED: 9,
  STREAM_IDS_EXHAUSTED: 10,
  RESUME_OUT_OF_RANGE: 11,
  /** Server, after the AUTH of a RESUME: no such session (PROTOCOL.md 13.4). */
  RESUME_UNKNOWN_ID: 12,
  /** Server, after the AUTH of a RESUME: the session expired (PROTOCOL.md 13.4). */
  RESUME_EXPIRED: 13,
} as const

/** REFUSED codes (PROTOCOL.md 11.2); 0x1000–0xFFFF are the application's. */
export const RefuseCode = {
  REFUSED: 1,
  NO_LISTENER: 2,
  TOO_MANY_STREAMS: 3,
  TOO_MANY_PENDING: 4,
  BUSY: 5,
  TARGET_TOO_LONG: 6,
  BAD_TARGET: 7,
  NOT_ALLOWED: 8,
  UNREACHABLE: 9,
  CONNECTION_REFUSED: 10,
  TIMEOUT: 11,
  GOING_AWAY: 12,
} as const

/** RST codes (PROTOCOL.md 11.3); 0x1000–0xFFFF are the application's. */
export const ResetCode = {
  CANCEL: 0,
  INTERNAL_ERROR: 1,
  CONNECTION_RESET: 2,
  TIMEOUT: 3,
} as const

/** Whether a GOAWAY code lets existing streams finish. */
export function isGracefulGoaway(code: number): boolean {
  return code === GoawayCode.NORMAL || code === GoawayCode.IDLE_TIMEOUT || code === GoawayCode.STREAM_IDS_EXHAUSTED
}

/** Implementation defaults (PROTOCOL.md 10). */
export const DEFAULTS = {
  maxFrameSize: 65_536,
  initialWindow: 262_144,
  maxWindow: 16 * 1024 * 1024,
  maxSessionBuffer: 64 * 1024 * 1024,
  maxStreams: 1024,
  maxPendingOpens: 256,
  maxTargetLength: 255,
  /** Largest message accepted on a message stream (MAX_MESSAGE, PROTOCOL.md 15). */
  maxMessage: 262_144,
  acceptDelay: 1,
  handshakeTimeout: 10_000,
  idleTimeout: 0,
  keepAliveInterval: 10_000,
  keepAliveTimeout: 20_000,
  /** Bytes of owed control frames after which the peer is cut off. */
  maxControlQueue: 1024 * 1024,
  /** Frame bytes handed to the transport per flush turn. */
  writeBatch: 1024 * 1024,
  /** Writable high-water mark of a stream. */
  streamHighWaterMark: 256 * 1024,
  /** Send an ACK after this many session bytes received. */
  ackEvery: 1024 * 1024,
  /** Replay buffer of a resumable session (PROTOCOL.md 13). */
  replayBuffer: 4 * 1024 * 1024,
  /** Detached-session ids remembered as expired (RESUME_REFUSED 2 instead of 1). */
  expiredIds: 4096,
} as const

/** RESUME_REFUSED reasons (PROTOCOL.md 3.5, 13). */
export const ResumeRefused = {
  UNKNOWN_ID: 1,
  EXPIRED: 2,
  OUT_OF_RANGE: 3,
  NOT_SUPPORTED: 4,
  /** The session lives on another server, named by the REDIRECT extension (PROTOCOL.md 13.10). */
  ELSEWHERE: 5,
} as const
