/**
 * Session options, their defaults and their validation.
 * @packageDocumentation
 */
import { DEFAULTS, MAX_HOST_LENGTH, MAX_MAX_FRAME_SIZE, MAX_MAX_MESSAGE, MAX_WINDOW, MIN_INITIAL_WINDOW, MIN_MAX_FRAME_SIZE, MIN_MAX_MESSAGE } from '../wire/constants.js'
import { invalidArgType, invalidArgValue, outOfRange } from '../errors.js'
import type { LaneSetOptions } from '../lanes/lane-set.js'
import type { Duplex } from 'node:stream'
import type { RedirectAddress } from '../wire/redirect.js'

/**
 * Options of a {@link Session}. Every limit of PROTOCOL.md section 10 can be
 * set here; times are in milliseconds, 0 disables a timeout.
 */
export interface SessionOptions {
  /** `'client'` (the side that opened the transport: odd stream ids, speaks first) or `'server'`. */
  role: 'client' | 'server'
  /** Largest frame payload accepted (advertised in the HELLO). Default 65,536; 16,384–16,777,215. */
  maxFrameSize?: number
  /** Credit granted per stream (advertised). Default 262,144 (256 KiB); at least 65,536. */
  initialWindow?: number
  /** Auto-tune cap of a stream's receive window. Default 16 MiB; at least `initialWindow`. */
  maxWindow?: number
  /** Cap on the session's window growth and buffered bytes (PROTOCOL.md 6.4). Default 64 MiB. */
  maxSessionBuffer?: number
  /** Peer-opened streams kept open at once (advertised). Default 1,024. */
  maxStreams?: number
  /** Peer opens the application has not answered yet. Default 256. */
  maxPendingOpens?: number
  /** Longest host name accepted in a target. Default 255 (maximum). */
  maxTargetLength?: number
  /** Delay after which an unanswered open is accepted automatically. Default 1 ms; `Infinity`: never. */
  acceptDelay?: number
  /** Time allowed for the peer's HELLO. Default 10,000; 0: none. */
  handshakeTimeout?: number
  /** Close gracefully after this long without any open stream. Default 0 (never). */
  idleTimeout?: number
  /** Send a PING after this long without receiving anything. Default 10,000; 0: no keepalive. */
  keepAliveInterval?: number
  /** Declare the peer dead this long after an unanswered keepalive PING. Default 20,000. */
  keepAliveTimeout?: number
  /**
   * `highWaterMark` of each stream's writable side: bytes a stream queues
   * before `write()` returns false (besides what the credit lets through).
   * Default 262,144 (one initial window), so that one flush can batch
   * several writes.
   */
  streamHighWaterMark?: number
  /**
   * Largest message accepted on a message stream (`open({ messages: true })`,
   * PROTOCOL.md 15), announced to the peer as MAX_MESSAGE. A larger message
   * from the peer is a protocol error. A stream's receive buffers can reach
   * its window plus this much. Default 262,144 (256 KiB); 65,536 to
   * 2,147,483,647, or 0 to turn message mode off (MESSAGES is not offered).
   */
  maxMessage?: number
  /** Disable Nagle on the transport when it supports `setNoDelay`. Default true. */
  noDelay?: boolean
  /**
   * Mutual pre-shared-key authentication (PROTOCOL.md 16): both sides must
   * hold the same `key` (at least 16 bytes). Without it on both sides the
   * session fails with `SYNMUX_AUTH_FAILED` (or, on the side that gave no
   * key, the transport just closes).
   */
  auth?: AuthOptions
  /**
   * Session resumption (PROTOCOL.md 13): the session survives the loss of
   * its transport. In effect when both sides enable it (a server through a
   * {@link SessionRegistry}).
   */
  resumption?: ResumptionOptions
  /**
   * Client: run the session over this many transports ("lanes", PROTOCOL.md
   * 14), lane 0 included. Needs `resumption` with a `connect` function
   * (each further lane is opened with it, joins with HELLO JOIN and is
   * authenticated like a resume) and a server that allows lanes. Default 1
   * (no striping); 1–64.
   */
  lanes?: number
  /** Server: most lanes a striped session may have (PROTOCOL.md 14). Default 16; 0 turns striping off. */
  maxLanes?: number
}

/** Options of session resumption (PROTOCOL.md 13). */
export interface ResumptionOptions {
  /**
   * Bytes of sent session frames kept until the peer ACKs them (announced
   * as REPLAY_BUFFER). When it is full, no session frame is sent until an
   * ACK frees space. Default 4 MiB; at least 65,536. It caps a session's
   * throughput at about this much per RTT. The Buffers written to streams
   * are kept as they are (not copied) until acknowledged: never modify a
   * Buffer after writing it.
   */
  replayBuffer?: number
  /**
   * Client: makes a new transport to the same server (use TFO so a resume
   * costs one round trip). Without it, the session emits `'detached'` and
   * waits for {@link Session.resume}. `to`: set when the server said the
   * session lives at another address (a REDIRECT, PROTOCOL.md 13.10):
   * connect there instead (for this session's resumes and lanes).
   */
  connect?: (to?: RedirectAddress) => Duplex | Promise<Duplex>
  /** Client: reconnect backoff in ms, doubling from `min` to `max`. Default 50 / 2,000. */
  reconnectDelay?: { min?: number; max?: number }
  /** Client: give up (`SYNMUX_SESSION_LOST`) after this long without a transport. Default 60,000. */
  resumeTimeout?: number
  /** Server: free a detached session after this long. Default 60,000. */
  detachTimeout?: number
}

/** Resolved resumption options. @internal */
export interface ResolvedResumption {
  replayBuffer: number
  connect: ((to?: RedirectAddress) => Duplex | Promise<Duplex>) | null
  minDelay: number
  maxDelay: number
  resumeTimeout: number
  detachTimeout: number
}

/** Options of PSK authentication. */
export interface AuthOptions {
  /** The pre-shared key, at least 16 bytes. */
  key: Buffer | Uint8Array
}

/** Fully resolved options. @internal */
export type ResolvedOptions = Required<Omit<SessionOptions, 'auth' | 'resumption'>> & { auth: { key: Buffer } | null; resumption: ResolvedResumption | null }

function resolveResumption(v: unknown): ResolvedResumption | null {
  if (v === undefined || v === null || v === false) return null
  if (v === true) v = {}
  if (typeof v !== 'object') throw invalidArgType('options.resumption', 'an object', v)
  const o = v as Record<string, unknown>
  if (o.connect !== undefined && typeof o.connect !== 'function') throw invalidArgType('options.resumption.connect', 'a function', o.connect)
  const d = o.reconnectDelay
  if (d !== undefined && (typeof d !== 'object' || d === null)) throw invalidArgType('options.resumption.reconnectDelay', 'an object', d)
  const dd = (d ?? {}) as Record<string, unknown>
  const minDelay = num(dd, 'min', 50, 0, MAX_TIMER)
  return {
    replayBuffer: num(o, 'replayBuffer', DEFAULTS.replayBuffer, MIN_INITIAL_WINDOW, 0xffff_ffff),
    connect: (o.connect as ResolvedResumption['connect']) ?? null,
    minDelay,
    maxDelay: Math.max(minDelay, num(dd, 'max', 2000, 0, MAX_TIMER)),
    resumeTimeout: num(o, 'resumeTimeout', 60_000, 0, MAX_TIMER),
    detachTimeout: num(o, 'detachTimeout', 60_000, 0, MAX_TIMER),
  }
}

function num(opts: Record<string, unknown>, name: string, def: number, min: number, max: number, allowInfinity = false): number {
  const v = opts[name]
  if (v === undefined) return def
  if (typeof v !== 'number') throw invalidArgType(`options.${name}`, 'of type number', v)
  if (allowInfinity && v === Infinity) return v
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(`options.${name}`, `an integer >= ${min} && <= ${max}${allowInfinity ? ' (or Infinity)' : ''}`, v)
  return v
}

const MAX_TIMER = 2_147_483_647

/** Validates options and fills in defaults. Throws with stable codes. @internal */
export function resolveOptions(options: unknown): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
  const o = options as Record<string, unknown>
  if (o.role !== 'client' && o.role !== 'server') throw invalidArgValue('options.role', "must be 'client' or 'server'", o.role)
  const initialWindow = num(o, 'initialWindow', DEFAULTS.initialWindow, MIN_INITIAL_WINDOW, MAX_WINDOW)
  const maxWindow = num(o, 'maxWindow', Math.max(DEFAULTS.maxWindow, initialWindow), initialWindow, MAX_WINDOW)
  if (o.noDelay !== undefined && typeof o.noDelay !== 'boolean') throw invalidArgType('options.noDelay', 'of type boolean', o.noDelay)
  let auth: { key: Buffer } | null = null
  if (o.auth !== undefined && o.auth !== null) {
    if (typeof o.auth !== 'object') throw invalidArgType('options.auth', 'an object', o.auth)
    const key = (o.auth as { key?: unknown }).key
    if (!(key instanceof Uint8Array)) throw invalidArgType('options.auth.key', 'a Buffer or Uint8Array', key)
    if (key.length < 16) throw outOfRange('options.auth.key length', '>= 16', key.length)
    auth = { key: Buffer.from(key) }
  }
  const maxMessage = num(o, 'maxMessage', DEFAULTS.maxMessage, 0, MAX_MAX_MESSAGE)
  if (maxMessage !== 0 && maxMessage < MIN_MAX_MESSAGE) throw outOfRange('options.maxMessage', `0 or an integer >= ${MIN_MAX_MESSAGE} && <= ${MAX_MAX_MESSAGE}`, maxMessage)
  const resumption = resolveResumption(o.resumption)
  const lanes = num(o, 'lanes', 1, 1, 64)
  if (lanes > 1 && resumption === null) throw invalidArgValue('options.lanes', 'needs options.resumption (striping resends from the replay buffer)', lanes)
  return {
    role: o.role,
    maxFrameSize: num(o, 'maxFrameSize', DEFAULTS.maxFrameSize, MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE),
    initialWindow,
    maxWindow,
    maxSessionBuffer: num(o, 'maxSessionBuffer', DEFAULTS.maxSessionBuffer, 0, Number.MAX_SAFE_INTEGER),
    maxStreams: num(o, 'maxStreams', DEFAULTS.maxStreams, 0, 0xffff_ffff),
    maxPendingOpens: num(o, 'maxPendingOpens', DEFAULTS.maxPendingOpens, 0, 0xffff_ffff),
    maxTargetLength: num(o, 'maxTargetLength', DEFAULTS.maxTargetLength, 0, MAX_HOST_LENGTH),
    acceptDelay: num(o, 'acceptDelay', DEFAULTS.acceptDelay, 0, MAX_TIMER, true),
    handshakeTimeout: num(o, 'handshakeTimeout', DEFAULTS.handshakeTimeout, 0, MAX_TIMER),
    idleTimeout: num(o, 'idleTimeout', DEFAULTS.idleTimeout, 0, MAX_TIMER),
    keepAliveInterval: num(o, 'keepAliveInterval', DEFAULTS.keepAliveInterval, 0, MAX_TIMER),
    keepAliveTimeout: num(o, 'keepAliveTimeout', DEFAULTS.keepAliveTimeout, 1, MAX_TIMER),
    streamHighWaterMark: num(o, 'streamHighWaterMark', DEFAULTS.streamHighWaterMark, 0, MAX_WINDOW),
    maxMessage,
    noDelay: o.noDelay === undefined ? true : o.noDelay,
    auth,
    resumption,
    lanes,
    maxLanes: num(o, 'maxLanes', 16, 0, 64),
  }
}

/** Options of the LaneSet of a session with options `o` (hooks are set when the session binds it). @internal */
export function laneSetOptions(o: ResolvedOptions, extra: Partial<LaneSetOptions> = {}): LaneSetOptions {
  return {
    role: o.role,
    key: o.auth?.key ?? null,
    maxFrameSize: o.maxFrameSize,
    lanes: o.lanes,
    maxLanes: o.maxLanes,
    connect: o.resumption?.connect ?? null,
    handshakeTimeout: o.handshakeTimeout,
    ...extra,
  }
}
