/**
 * Options of `secure()` and their validation.
 * @packageDocumentation
 */
import { invalidArgType, invalidArgValue, outOfRange } from '../common/arg-errors.js'
import { badInput } from './errors.js'
import { MAX_EARLY_DATA, type EarlyRejectReason } from './payload.js'
import { MAX_RECORD_PLAINTEXT, MAX_REKEY_INTERVAL, MIN_REKEY_INTERVAL } from './record.js'
import { ReplayGuard, type ReplayChecker } from './replay.js'

/** Options both roles take. */
export interface SecureCommonOptions {
  /** This side's static private key (32 bytes; `readPrivateKeyFile`, `generateKeyPair`). */
  staticKey: Uint8Array
  /**
   * An optional pre-shared key (32 bytes, e.g. `crypto.randomBytes(32)`),
   * the same on both sides: a symmetric layer on top of the key exchange
   * (Noise `psk1`). Absent: 32 zero bytes, as WireGuard does.
   */
  psk?: Uint8Array
  /** Ms for the whole handshake; 0: none. Default 10,000. */
  handshakeTimeout?: number
  /** The largest plaintext of a record this side sends, 1 ... 65,519. Default 16,384. */
  maxRecordSize?: number
  /**
   * Rekey (Noise `Rekey()`) this side's sending key after this many bytes
   * of records, 1,024 ... 4,294,967,295; announced to the peer in the
   * handshake, so each side may choose its own. Default 1 GiB.
   */
  rekeyInterval?: number
  /** The clock, ms since the Unix epoch (default `Date.now`); for tests of clock skew. */
  clock?: () => number
  /** @internal Fixed ephemeral private key (worked example only; never reuse one). */
  ephemeralKey?: Uint8Array
  /** @internal Another Noise protocol name (benchmarks of the other AEAD); both sides must match. */
  protocol?: string
}

/** Options of the client (Noise initiator). */
export interface SecureClientOptions extends SecureCommonOptions {
  role: 'client'
  /** The server's static public key (32 bytes; `decodePublicKey`). */
  serverKey: Uint8Array
  /**
   * The most application bytes written in the first tick that ride in
   * message 1 as 0-RTT early data (the rest follows as records once the
   * server has answered). 0 turns 0-RTT off. Default 1,200 (message 1
   * then fits one MSS, so it can ride in a TCP Fast Open SYN).
   */
  maxEarlyData?: number
}

/** What a server's `acceptEarlyData` hook is shown: a fresh first flight. */
export interface FirstFlight {
  /** The early data (the application bytes of message 1). */
  readonly data: Buffer
  /** The client's static public key (authenticated). */
  readonly peerKey: Buffer
  /** The name `authorize` gave the key. */
  readonly peerName: string
  /** The client's timestamp, ms since the Unix epoch. */
  readonly timestamp: number
}

/** What a server's `divert` hook is shown (before the replay guard has judged the flight). */
export interface DivertedFlight {
  /** The early data (the application bytes of message 1). */
  readonly data: Buffer
  /** The client's static public key (authenticated). */
  readonly peerKey: Buffer
  /** The name `authorize` gave the key. */
  readonly peerName: string
}

/** Options of the server (Noise responder). */
export interface SecureServerOptions extends SecureCommonOptions {
  role: 'server'
  /**
   * Decides whether a client key may connect: a name for it (logs, stats)
   * or `null` to refuse (no byte is sent to a refused client). May return a
   * promise. `AuthorizedKeys#authorize` fits.
   */
  authorize: (publicKey: Buffer) => string | null | Promise<string | null>
  /**
   * Whether to act on 0-RTT early data that the replay guard found fresh:
   * `true` (default), `false`, or a hook that sees the flight first (it may
   * route it, e.g. look at a RESUME HELLO inside) and returns (a promise
   * of) a boolean. A declined flight is resent by the client as records.
   */
  acceptEarlyData?: boolean | ((flight: FirstFlight) => boolean | Promise<boolean>)
  /**
   * The replay guard; default a process-wide one (window 30 s). Share one
   * per server: a {@link ReplayGuard}, or anything with its `check()`
   * (which may answer with a promise: e.g. one guard that several
   * processes ask).
   */
  replayGuard?: ReplayChecker
  /**
   * Called once message 1 is authenticated and its client key authorized,
   * before the replay guard or anything else acts on it: `true` hands the
   * connection on (a cluster routing a RESUME to the process that holds its
   * session, which processes message 1 again). The channel then sends
   * nothing, lets go of its transport without closing it (paused), emits
   * `'diverted'` `(head)` with every byte it read from it, and is
   * destroyed without an error.
   */
  divert?: (flight: DivertedFlight) => boolean
  /**
   * The most early data accepted in message 1 (a longer message 1 is
   * refused like a failed authentication, before it is buffered).
   * Default 65,423 (anything the format allows).
   */
  maxEarlyData?: number
  /**
   * After a message 1 that fails (bad MAC, unknown key, malformed): `'drain'`
   * (default) keeps reading and discarding until the handshake timeout, so
   * a prober learns nothing from when the connection closes; `'close'`
   * closes at once. Either way no byte is sent.
   */
  onAuthFailure?: 'drain' | 'close'
}

/** Options of `secure()`. */
export type SecureOptions = SecureClientOptions | SecureServerOptions

/** A refused message 1 (server event `'refused'`). */
export interface RefusedReport {
  /** Stable code: `SYNMUX_SECURE_UNAUTHORIZED`, `..._DECRYPT_FAILED` or `..._BAD_HANDSHAKE`. */
  readonly code: 'SYNMUX_SECURE_UNAUTHORIZED' | 'SYNMUX_SECURE_DECRYPT_FAILED' | 'SYNMUX_SECURE_BAD_HANDSHAKE'
  /** `'unauthorized'`, `'decrypt-failed'`, `'bad-type'`, `'bad-length'`, `'too-large'`, `'bad-key'`, `'bad-payload'`. */
  readonly reason: RefusedReason
  /** The client's static key, when message 1 got that far. */
  readonly peerKey: Buffer | null
  /** The transport's remote address and port, when it has them. */
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  /** The error the channel is destroyed with. */
  readonly error: Error
}

/** Why a message 1 was refused. */
export type RefusedReason = 'unauthorized' | 'decrypt-failed' | 'bad-type' | 'bad-length' | 'too-large' | 'bad-key' | 'bad-payload'

/** What the handshake established (`'secure'` event, `channel.info`). */
export interface SecureInfo {
  readonly role: 'client' | 'server'
  /** The Noise protocol name. */
  readonly protocol: string
  /** The peer's static public key. */
  readonly remotePublicKey: Buffer
  /** Server: the name `authorize` gave the client key. Client: `null`. */
  readonly peerName: string | null
  /** What happened to message 1's early data. */
  readonly earlyData: 'none' | 'accepted' | 'rejected'
  /** Why it was rejected (`'clock'`, `'replayed'`, `'not-newer'`, `'busy'`, `'declined'`, `'disabled'`). */
  readonly earlyDataRejectReason: EarlyRejectReason | null
  /** The Noise handshake hash (channel binding). */
  readonly handshakeHash: Buffer
  /** Client: the server's clock minus ours at message 2, ms (rough; for clock-skew diagnostics). Server: `null`. */
  readonly clockSkew: number | null
}

/** Validated options with defaults. @internal */
export interface ResolvedOptions {
  role: 'client' | 'server'
  staticKey: Buffer
  psk: Buffer
  handshakeTimeout: number
  maxRecordSize: number
  rekeyInterval: number
  clock: () => number
  ephemeralKey: Buffer | undefined
  protocol: string | undefined
  serverKey: Buffer
  maxEarlyData: number
  authorize: SecureServerOptions['authorize']
  acceptEarlyData: NonNullable<SecureServerOptions['acceptEarlyData']>
  replayGuard: ReplayChecker | undefined
  divert: SecureServerOptions['divert']
  onAuthFailure: 'drain' | 'close'
}

function key32(name: string, v: unknown): Buffer {
  if (!(v instanceof Uint8Array)) throw invalidArgType(name, 'a Buffer or Uint8Array of 32 bytes', v)
  if (v.length !== 32) throw badInput(RangeError, 'SYNMUX_SECURE_BAD_KEY', `${name} must be 32 bytes, not ${v.length}`)
  return Buffer.from(v)
}

function int(name: string, v: unknown, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer from ${min} to ${max}`, v)
  return v
}

/** Validates `secure()` options. @internal */
export function resolveOptions(o: SecureOptions): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw invalidArgType('options', 'an object', o)
  const role: unknown = (o as { role?: unknown }).role
  if (role !== 'client' && role !== 'server') throw invalidArgValue('options.role', "must be 'client' or 'server'", role)
  if (o.clock !== undefined && typeof o.clock !== 'function') throw invalidArgType('options.clock', 'a function', o.clock)
  const server = o.role === 'server' ? o : null
  const client = o.role === 'client' ? o : null
  if (server) {
    if (typeof server.authorize !== 'function') throw invalidArgType('options.authorize', 'a function', server.authorize)
    const a = server.acceptEarlyData
    if (a !== undefined && typeof a !== 'boolean' && typeof a !== 'function') throw invalidArgType('options.acceptEarlyData', 'a boolean or a function', a)
    if (server.replayGuard !== undefined && !(server.replayGuard instanceof ReplayGuard) && typeof (server.replayGuard as { check?: unknown } | null)?.check !== 'function') throw invalidArgType('options.replayGuard', 'a ReplayGuard', server.replayGuard)
    if (server.divert !== undefined && typeof server.divert !== 'function') throw invalidArgType('options.divert', 'a function', server.divert)
    if (server.onAuthFailure !== undefined && server.onAuthFailure !== 'drain' && server.onAuthFailure !== 'close') {
      throw invalidArgValue('options.onAuthFailure', "must be 'drain' or 'close'", server.onAuthFailure)
    }
  }
  if (o.protocol !== undefined && typeof o.protocol !== 'string') throw invalidArgType('options.protocol', 'of type string', o.protocol)
  return {
    role: o.role,
    staticKey: key32('options.staticKey', o.staticKey),
    psk: o.psk === undefined ? Buffer.alloc(32) : key32('options.psk', o.psk),
    handshakeTimeout: int('options.handshakeTimeout', o.handshakeTimeout, 0, 2 ** 31 - 1, 10_000),
    maxRecordSize: int('options.maxRecordSize', o.maxRecordSize, 1, MAX_RECORD_PLAINTEXT, 16_384),
    rekeyInterval: int('options.rekeyInterval', o.rekeyInterval, MIN_REKEY_INTERVAL, MAX_REKEY_INTERVAL, 2 ** 30),
    clock: o.clock ?? Date.now,
    ephemeralKey: o.ephemeralKey === undefined ? undefined : key32('options.ephemeralKey', o.ephemeralKey),
    protocol: o.protocol,
    serverKey: client ? key32('options.serverKey', client.serverKey) : Buffer.alloc(0),
    maxEarlyData: int('options.maxEarlyData', o.maxEarlyData, 0, MAX_EARLY_DATA, client ? 1200 : MAX_EARLY_DATA),
    authorize: server ? server.authorize : () => null,
    acceptEarlyData: server?.acceptEarlyData ?? true,
    replayGuard: server?.replayGuard,
    divert: server?.divert,
    onAuthFailure: server?.onAuthFailure ?? 'drain',
  }
}
