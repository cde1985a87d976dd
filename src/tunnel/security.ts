/**
 * How a tunnel's transports are protected: the secure channel (default,
 * PROTOCOL.md 20), TLS with the pre-shared key of PROTOCOL.md 16, or — only
 * when asked for explicitly — clear text with that key. The options of
 * {@link TunnelServer} and {@link TunnelClient} for it, their validation,
 * and the words the tunnel logs about refused handshakes.
 * @packageDocumentation
 */
import { AuthorizedKeys } from '../secure/keys.js'
import type { RefusedReport } from '../secure/options.js'
import { refillEphemeral } from '../secure/precompute.js'
import { ReplayGuard, type ReplayChecker } from '../secure/replay.js'

/** The secure channel of a {@link TunnelServer} (the default transport security). */
export interface TunnelServerSecureOptions {
  /** The server's static private key (32 bytes: `readPrivateKeyFile('server.key')`). */
  staticKey: Uint8Array
  /**
   * The client keys the server accepts, each with a name for logs and
   * stats (`readAuthorizedKeysFile`, `parseAuthorizedKeys`). Replace the set
   * later with {@link TunnelServer.setAuthorizedKeys}.
   */
  authorizedKeys: AuthorizedKeys
  /** An optional pre-shared key (32 bytes) mixed into the handshake (Noise psk1); clients must have the same. */
  psk?: Uint8Array
  /** How far (ms) a first flight's timestamp may be from the server's clock for its 0-RTT data to be acted on. Default 30,000. */
  replayWindow?: number
  /** Or a replay guard of your own (shared by servers that share keys; anything with a `ReplayGuard`'s `check()`). Default: one per server. */
  replayGuard?: ReplayGuard | ReplayChecker
  /** After a handshake that fails: `'drain'` (default: read and discard until the handshake timeout, answer nothing) or `'close'`. */
  onAuthFailure?: 'drain' | 'close'
  /** Largest record plaintext this side sends (1 ... 65,519). Default 65,519 for a tunnel (bulk data). */
  maxRecordSize?: number
  /** Rekey after this many bytes per direction. Default 1 GiB. */
  rekeyInterval?: number
}

/** The secure channel of a {@link TunnelClient} (the default transport security). */
export interface TunnelClientSecureOptions {
  /** The client's static private key (32 bytes: `readPrivateKeyFile('client.key')`). */
  staticKey: Uint8Array
  /** The server's static public key (32 bytes: `decodePublicKey(base64)`, as `synmux keygen` printed it). */
  serverKey: Uint8Array
  /** The server's pre-shared key, if it uses one (32 bytes). */
  psk?: Uint8Array
  /** Application bytes that ride in the first flight (0-RTT). Default 1,200 (one MSS with the handshake: it fits a TFO SYN). */
  maxEarlyData?: number
  /** Largest record plaintext this side sends (1 ... 65,519). Default 65,519 for a tunnel (bulk data). */
  maxRecordSize?: number
  /** Rekey after this many bytes per direction. Default 1 GiB. */
  rekeyInterval?: number
  /** The clock (ms since the Unix epoch) stamped into first flights; for tests of clock skew. Default `Date.now`. */
  clock?: () => number
}

/** Record size of a tunnel's secure channels: the largest, so that bulk data costs the fewest AEAD calls. */
export const TUNNEL_RECORD_SIZE = 65_519

/**
 * The largest frame payload a tunnel session accepts on the secure channel
 * (its `maxFrameSize`): a whole DATA frame (9-byte header + payload) is then
 * exactly one record, so a record is opened in one AEAD call and its frame
 * reaches the reader in one piece.
 */
export const TUNNEL_FRAME_SIZE = TUNNEL_RECORD_SIZE - 9

/** A tunnel's transport security, resolved from its options. @internal */
export type Security<S> = { mode: 'secure'; secure: S; key: null } | { mode: 'tls' | 'plaintext'; secure: null; key: Buffer }

function argError(message: string, code = 'ERR_INVALID_ARG_VALUE'): TypeError {
  return Object.assign(new TypeError(message), { code })
}

function key32(name: string, v: unknown): void {
  if (!(v instanceof Uint8Array) || v.length !== 32) throw argError(`${name} must be a Buffer of 32 bytes (a key from readPrivateKeyFile / decodePublicKey)`, 'ERR_INVALID_ARG_TYPE')
}

function psk(key: unknown): Buffer {
  if (!Buffer.isBuffer(key) || key.length < 32) throw argError('options.key must be a Buffer of at least 32 bytes (a pre-shared key: readKeyFile)')
  return key
}

const NEED =
  'needs options.secure (the encrypted default: { staticKey, ... }), or options.key with options.tls, or options.key with insecurePlaintext: true (clear text, for benchmarks only)'

type SecurityOptions<S> = { secure?: S; key?: Buffer; tls?: unknown; insecurePlaintext?: boolean }

/**
 * The choice of transport security shared by both ends: `secure` (checked
 * by `check`, beside its own staticKey and psk), or a pre-shared key with
 * `tls` or `insecurePlaintext`.
 */
function resolve<S extends { staticKey: Uint8Array; psk?: Uint8Array }>(who: string, o: SecurityOptions<S>, check: (s: S) => void): Security<S> {
  if (o.secure !== undefined) {
    const s = o.secure
    if (s === null || typeof s !== 'object') throw argError('options.secure must be an object', 'ERR_INVALID_ARG_TYPE')
    if (o.tls !== undefined || o.insecurePlaintext) throw argError('options.secure goes without options.tls and insecurePlaintext (the secure channel replaces both)')
    key32('options.secure.staticKey', s.staticKey)
    if (s.psk !== undefined) key32('options.secure.psk', s.psk)
    check(s)
    // Ephemeral keys for the first handshakes get made now, in the thread pool, not in the first flight's path.
    refillEphemeral()
    return { mode: 'secure', secure: s, key: null }
  }
  if (o.tls !== undefined) return { mode: 'tls', secure: null, key: psk(o.key) }
  if (o.insecurePlaintext === true) return { mode: 'plaintext', secure: null, key: psk(o.key) }
  throw argError(`${who} ${NEED}`)
}

/** Validates a server's choice of transport security. @internal */
export function serverSecurity(o: SecurityOptions<TunnelServerSecureOptions>): Security<TunnelServerSecureOptions> {
  return resolve('TunnelServer', o, (s) => {
    if (!(s.authorizedKeys instanceof AuthorizedKeys)) throw argError('options.secure.authorizedKeys must be an AuthorizedKeys (readAuthorizedKeysFile / parseAuthorizedKeys)', 'ERR_INVALID_ARG_TYPE')
    if (s.replayGuard !== undefined && !(s.replayGuard instanceof ReplayGuard) && typeof (s.replayGuard as { check?: unknown } | null)?.check !== 'function') throw argError('options.secure.replayGuard must be a ReplayGuard', 'ERR_INVALID_ARG_TYPE')
  })
}

/** Validates a client's choice of transport security. @internal */
export function clientSecurity(o: SecurityOptions<TunnelClientSecureOptions>): Security<TunnelClientSecureOptions> {
  return resolve('TunnelClient', o, (s) => {
    key32('options.secure.serverKey', s.serverKey)
    if (s.clock !== undefined && typeof s.clock !== 'function') throw argError('options.secure.clock must be a function', 'ERR_INVALID_ARG_TYPE')
  })
}

/** Why the secure channel refused a first flight, in the words of the server's log. @internal */
export function refusalText(r: RefusedReport, firstByte: number | undefined): string {
  const key = r.peerKey ? ` ${r.peerKey.toString('base64')}` : ''
  switch (r.reason) {
    case 'unauthorized':
      return `client key${key} is not authorized (not in the authorized keys)`
    case 'decrypt-failed':
      return 'the first flight failed authentication: the client was given another --server-key (or PSK), or the bytes were altered'
    case 'bad-type':
      if (firstByte === 0x53) return 'a clear-text synmux HELLO: the client runs --insecure-plaintext, and this server requires the secure channel'
      return `not a secure-channel handshake (first byte 0x${(firstByte ?? 0).toString(16).padStart(2, '0')})`
    default:
      return `malformed handshake (${r.reason}): ${r.error.message}`
  }
}
