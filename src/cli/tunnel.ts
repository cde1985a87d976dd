/**
 * `synmux server`, `synmux client`, `synmux keygen`.
 * @internal
 * @packageDocumentation
 */
import fs from 'node:fs'
import { createLogger, isLogLevel, type Logger, type LogLevel } from '../tunnel/log.js'
import { generateKey, readKeyFile } from '../tunnel/keys.js'
import { decodePublicKey, encodePublicKey, generateKeyPair, PRIVATE_KEY_TAG, readAuthorizedKeysFile, readPrivateKeyFile, writePrivateKeyFile, type AuthorizedKeys } from '../secure/keys.js'
import { TunnelServer } from '../tunnel/server.js'
import { TunnelClient } from '../tunnel/client.js'
import { HttpProxy } from '../proxy/client.js'
import { parseFlags, parseHostPort, UsageError, type Flags } from './args.js'

const COMMON = {
  config: {},
  'log-level': {},
  stats: { boolean: true },
  'stats-interval': {},
} as const

const statsHelp = (what: string): string => `  --stats                 print a live status line (${what}):
                          in place every second on a terminal; into a file or
                          a pipe, a timestamped line when it changed (at most
                          one per --stats-interval), else every 10 minutes
  --stats-interval S      file or pipe: at least S seconds between two status
                          lines (default 10)`

export const SERVER_HELP = `Usage: synmux server --listen [host:]port --key server.key --authorized-keys FILE --allow host:port[,...] [options]

Accepts encrypted, authenticated sessions on a TCP Fast Open listener and
connects each stream onward (with TFO, its first bytes in the SYN) if the
target is allowed. Default deny: nothing is reachable unless --allow names
it; loopback and private addresses only when named explicitly (an IP, a
CIDR block or an exact host name), never through a wildcard.

Options:
  --listen [host:]port    address to listen on (default host 0.0.0.0)
  --key FILE              the server's private key (synmux keygen server.key;
                          mode 0600). With --insecure-plaintext or --tls-cert:
                          a pre-shared key file (synmux keygen --psk > key)
  --authorized-keys FILE  the client keys accepted: one '<public key> <name>'
                          per line, '#' comments; re-read on SIGHUP (the
                          sessions of a removed key are closed at once)
  --insecure-plaintext    clear-text sessions authenticated by a pre-shared
                          key only (for benchmarks; anyone on the path reads
                          and can inject); clients must use it too
  --allow LIST            allowed targets, comma-separated, repeatable:
                          host:port, *.domain:port, 10.0.0.0/8:*, [::1]:22,
                          *:443 (any public address), ports as 80, 8000-8100, *
  --tls-cert FILE         serve over TLS with this certificate ...
  --tls-key FILE          ... and this private key (instead of the secure
                          channel, for X.509; clients prove the pre-shared key)
  --max-connects N        onward connects in progress per session (default 64):
                          a stream holds a slot while its target is resolved
                          and connected, not while it relays
  --max-streams N         streams one client session may keep open at once
                          (default 16384); an open past it is refused and logged
  --detach-timeout MS     how long a session whose client vanished (connection
                          lost, client killed) waits to be resumed before it and
                          its streams are freed (default 60000)
  --no-http-gateway       refuse HTTP gateway streams (the far half of
                          synmux client --http-proxy; on by default: it reaches
                          only what --allow allows, over pooled keep-alive
                          connections opened with TFO)
  --http-max-sockets N    HTTP gateway: onward connections per origin (default 32)
  --max-failed-handshakes N
                          failed handshakes per source address per window before
                          its connections are closed unread (default 10); every
                          failure before the key is proved counts: a refused
                          handshake (unknown client key, wrong server key),
                          TLS errors, not synmux, no HELLO in time
  --failed-handshake-window S
                          that window, in seconds from the source's first failure
                          (default 60): a refused source, a correct client behind
                          it included, is let in again at most S seconds later
  --handshake-timeout MS  time from accepting a connection to the client having
                          proved its key (the secure handshake or TLS, then the
                          HELLO); then it is closed and counted as a failed
                          handshake (default 10000)
  --max-unauthenticated N connections that have not proved the key yet, in all;
                          more are closed unread (default 1024)
  --max-unauthenticated-per-source N
                          the same per source address (default 64)
  --config FILE           JSON object whose keys mirror these flags (flags win)
  --log-level LEVEL       silent, error, warn, info (default), debug
${statsHelp('sessions, streams, bytes')}
  --help                  this help`

export const CLIENT_HELP = `Usage: synmux client --server host:port --key client.key --server-key BASE64 [--forward ...] [--socks ...] [--http-proxy ...] [options]

Keeps one encrypted, authenticated session up to a synmux server (TFO for
its own connection, the first request in the handshake's first flight,
reconnecting with backoff) and carries local connections over it: each new
connection's first bytes ride in its stream's OPEN, so it reaches its
target and gets its first response in one round trip.

Options:
  --server host:port      the synmux server
  --key FILE              this client's private key (synmux keygen client.key;
                          mode 0600; the server lists its public key in its
                          --authorized-keys). With --insecure-plaintext or
                          --tls: the server's pre-shared key file
  --server-key BASE64     the server's public key (synmux keygen printed it);
                          a server with another key, or one that does not
                          authorize this client, gets the client to exit 1
  --insecure-plaintext    clear text with a pre-shared key (for benchmarks),
                          to a server that runs --insecure-plaintext
  --on-demand             connect only when the first local connection comes
                          (its first bytes ride in the handshake); default:
                          at start
  --tls                   run the session over TLS (with the pre-shared key)
  --ca FILE               CA certificate that signed the server's (with --tls)
  --fingerprint HEX       or pin the server certificate's SHA-256 (with --tls)
  --forward SPEC          [lhost:]lport=dhost:dport, repeatable: listen locally
                          (default 127.0.0.1) and forward to dhost:dport
  --socks [host:]port     a SOCKS5 proxy (CONNECT) on this address
  --http-proxy [host:]port
                          an HTTP proxy for browsers on this address (default
                          host 127.0.0.1): keep-alive browser connections, every
                          request over the one session, pooled keep-alive
                          connections on the server's side; CONNECT and
                          WebSocket too. The server's --allow still applies
  --http-proxy-auth USER:PASS
                          require this Proxy-Authorization (basic); put it in
                          --config to keep it out of the process list
  --first-bytes-wait MS   wait this long for an application's first bytes (default 5)
  --pool N                keep N sessions, each on its own connection; new
                          streams go to the best with room for one (below the
                          server's --max-streams; lowest RTT, least queued),
                          dead connections are replaced (default 1). A lost
                          connection is always resumed without failing streams
  --lanes N               stripe the session over N connections to the server
                          (each TFO and authenticated); beats per-connection
                          rate caps (default 1)
  --max-auth-failures N   exit (code 1) after N handshakes in a row whose
                          authentication failed: the server does not accept
                          this key (default 1 for the secure channel before
                          any session was up, 3 for a pre-shared key; 0: keep
                          trying)
  --config FILE           JSON object whose keys mirror these flags (flags win)
  --log-level LEVEL       silent, error, warn, info (default), debug
${statsHelp('streams, bytes, RTT, reconnects')}
  --help                  this help`

export const KEYGEN_HELP = `Usage: synmux keygen FILE        (or: synmux keygen --out FILE)
       synmux keygen --psk > key

Writes a new private key (X25519) to FILE with mode 0600 and prints its
public key as one line of base64: give that line to the other side (the
server's goes to each client's --server-key; a client's goes into the
server's --authorized-keys with a name). FILE must not exist yet (--force
replaces it).

--psk prints a new random pre-shared key (32 bytes) in key-file form
instead, for --insecure-plaintext and --tls: the same file on both sides,
kept private (chmod 600).`

function logger(flags: Flags, component: string): Logger {
  const level = flags['log-level'] ?? 'info'
  if (!isLogLevel(level)) throw new UsageError(`--log-level must be silent, error, warn, info or debug`)
  return createLogger(level as LogLevel, component)
}

function key(flags: Flags, log: Logger): Buffer {
  if (typeof flags.key !== 'string') throw new UsageError('--key FILE is required')
  if (isPrivateKeyFile(flags.key)) throw new UsageError(`--key ${flags.key} is a private key (for the secure channel); --insecure-plaintext and --tls take a pre-shared key: synmux keygen --psk > key`)
  const { key, warning } = readKeyFile(flags.key)
  if (warning) log.warn(warning)
  return key
}

/** The start of a key file (to tell a private key from a pre-shared key), '' if unreadable. */
function keyFileText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(0, 4096)
  } catch {
    return ''
  }
}

/** Whether `file` holds a secure-channel private key (rather than a pre-shared key). */
function isPrivateKeyFile(file: string): boolean {
  return keyFileText(file).includes(PRIVATE_KEY_TAG)
}

/** The secure channel's private key from `--key` (a file others may read is refused). */
function privateKey(flags: Flags): Buffer {
  if (typeof flags.key !== 'string') throw new UsageError('--key FILE is required (a private key: synmux keygen FILE)')
  if (keyFileText(flags.key).includes('synmux-psk-v1:')) {
    throw new UsageError(`--key ${flags.key} is a pre-shared key (for --insecure-plaintext or --tls); the secure channel needs a private key: synmux keygen FILE`)
  }
  return readPrivateKeyFile(flags.key)
}

function int(flags: Flags, name: string, min: number, max: number): number | undefined {
  const v = flags[name]
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`)
  return n
}

/** Unchanged status lines are repeated this often when stderr is not a terminal. */
const STATS_HEARTBEAT_MS = 10 * 60_000

/**
 * Prints a status line until the process ends: on a terminal, in place
 * every second; otherwise (a log file, journald) a timestamped line when
 * the status has changed (looked at every second), at most one every
 * `intervalS` seconds, and the unchanged line again every 10 minutes.
 */
function statusLine(render: () => string, intervalS = 10): void {
  if (process.stderr.isTTY) {
    setInterval(() => process.stderr.write(`\r\x1b[K${render()}`), 1000).unref()
    return
  }
  // RTTs move with every PING: they alone do not make a change worth a line.
  const key = (line: string): string => line.replace(/\d+(\.\d+)? ?ms\b/g, '')
  let last = ''
  let lastAt = -Infinity
  setInterval(() => {
    const line = render()
    const now = Date.now()
    const changed = key(line) !== last
    if (!(changed && now - lastAt >= intervalS * 1000) && now - lastAt < STATS_HEARTBEAT_MS) return
    last = key(line)
    lastAt = now
    process.stderr.write(`${new Date(now).toISOString()} stats ${line}\n`)
  }, 1000).unref()
}

const human = (n: number) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : n < 1 << 30 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / (1 << 30)).toFixed(2)} GiB`)

/** Ends cleanly on SIGINT/SIGTERM. */
function onStop(close: () => Promise<void>): void {
  const stop = () => {
    void close().finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 3000).unref()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

export async function runServer(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    ...COMMON,
    listen: {},
    key: {},
    'authorized-keys': {},
    'insecure-plaintext': { boolean: true },
    allow: { repeat: true },
    'tls-cert': {},
    'tls-key': {},
    'max-connects': {},
    'max-streams': {},
    'detach-timeout': {},
    'max-failed-handshakes': {},
    'failed-handshake-window': {},
    'handshake-timeout': {},
    'max-unauthenticated': {},
    'max-unauthenticated-per-source': {},
    'no-http-gateway': { boolean: true },
    'http-max-sockets': {},
  })
  const log = logger(flags, 'server')
  if (typeof flags.listen !== 'string') throw new UsageError('--listen [host:]port is required')
  const listen = parseHostPort(flags.listen, '--listen', '0.0.0.0')
  if (!flags.allow) log.warn('no --allow given: every target is refused (default deny)')
  if (!!flags['tls-cert'] !== !!flags['tls-key']) throw new UsageError('--tls-cert and --tls-key go together')
  const statsInterval = int(flags, 'stats-interval', 1, 86_400)
  const maxStreams = int(flags, 'max-streams', 1, 0xffff_ffff)
  const detachTimeout = int(flags, 'detach-timeout', 0, 2_147_483_647)
  const plaintext = flags['insecure-plaintext'] === true
  const keysFile = flags['authorized-keys'] as string | undefined
  if ((plaintext || flags['tls-cert']) && keysFile !== undefined) throw new UsageError(`--authorized-keys is for the secure channel; ${plaintext ? '--insecure-plaintext' : '--tls-cert'} authenticates clients by the pre-shared key`)
  if (plaintext && flags['tls-cert']) throw new UsageError('--insecure-plaintext and --tls-cert exclude each other')
  if (!plaintext && !flags['tls-cert'] && keysFile === undefined) throw new UsageError('--authorized-keys FILE is required: the client keys this server accepts (or --insecure-plaintext with a pre-shared key)')
  if (plaintext) log.warn('--insecure-plaintext: sessions are NOT encrypted and frames can be injected on the path; for benchmarks only')
  const server = new TunnelServer({
    ...(plaintext || flags['tls-cert'] ? { key: key(flags, log), ...(plaintext ? { insecurePlaintext: true } : {}) } : { secure: { staticKey: privateKey(flags), authorizedKeys: authorizedKeys(keysFile!) } }),
    allow: (flags.allow as string[]) ?? [],
    ...(flags['tls-cert'] ? { tls: { cert: fs.readFileSync(flags['tls-cert'] as string), key: fs.readFileSync(flags['tls-key'] as string) } } : {}),
    ...(flags['max-connects'] ? { maxConnectsPerSession: int(flags, 'max-connects', 1, 100_000)! } : {}),
    session: {
      ...(maxStreams !== undefined ? { maxStreams } : {}),
      ...(detachTimeout !== undefined ? { resumption: { detachTimeout } } : {}),
      ...(flags['handshake-timeout'] ? { handshakeTimeout: int(flags, 'handshake-timeout', 100, 600_000)! } : {}),
    },
    ...(flags['max-failed-handshakes'] || flags['failed-handshake-window'] ? { handshakeLimit: { maxFailures: int(flags, 'max-failed-handshakes', 1, 1_000_000), windowMs: (int(flags, 'failed-handshake-window', 1, 86_400) ?? 60) * 1000 } } : {}),
    ...(flags['max-unauthenticated'] ? { maxUnauthenticated: int(flags, 'max-unauthenticated', 1, 1_000_000)! } : {}),
    ...(flags['max-unauthenticated-per-source'] ? { maxUnauthenticatedPerSource: int(flags, 'max-unauthenticated-per-source', 1, 1_000_000)! } : {}),
    httpGateway: flags['no-http-gateway'] ? false : flags['http-max-sockets'] ? { maxSocketsPerOrigin: int(flags, 'http-max-sockets', 1, 100_000)! } : true,
    logger: log,
  })
  await server.listen(listen.port, listen.host).catch(async (err: Error) => {
    await server.close().catch(() => {})
    throw err
  })
  if (flags.stats) {
    statusLine(() => {
      const s = server.stats()
      const http = s.http ? `  http ${s.http.requests} req (${s.http.active} active, ${s.http.originConnections} origin conns, ${s.http.refused} refused)` : ''
      const clients = s.clients ? `  clients [${s.clients.map((c) => `${c.name}: ${c.sessions} sess ${c.streams} str ${human(c.bytesUp + c.bytesDown)}`).join(' | ')}]` : ''
      return `sessions ${s.sessions}  streams ${s.streams}  connecting ${s.connectsInProgress}  up ${human(s.bytesUp)}  down ${human(s.bytesDown)}  refused ${s.refused}  failed handshakes ${s.handshakeFailures}${clients}${http}`
    }, statsInterval)
  }
  if (keysFile !== undefined) reloadOnHangup(server, keysFile, log)
  onStop(() => server.close())
  return await new Promise<number>(() => {})
}

/** Reads an authorized-keys file (a parse error names the file and line). */
function authorizedKeys(file: string): AuthorizedKeys {
  return readAuthorizedKeysFile(file)
}

/**
 * SIGHUP re-reads the authorized keys: the new set applies to new
 * handshakes at once, and the sessions of removed keys are closed. A file
 * that does not parse keeps the old set (and says why).
 */
function reloadOnHangup(server: TunnelServer, file: string, log: Logger): void {
  process.on('SIGHUP', () => {
    let keys: AuthorizedKeys
    try {
      keys = authorizedKeys(file)
    } catch (err) {
      log.error(`SIGHUP: ${(err as Error).message}; keeping the authorized keys loaded before`)
      return
    }
    const closed = server.setAuthorizedKeys(keys)
    log.info(`SIGHUP: ${keys.size} authorized key${keys.size === 1 ? '' : 's'} loaded from ${file}${closed.length > 0 ? `; closed the sessions of ${closed.join(', ')}` : ''}`)
  })
}

export async function runClient(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    ...COMMON,
    server: {},
    key: {},
    'server-key': {},
    'insecure-plaintext': { boolean: true },
    'on-demand': { boolean: true },
    tls: { boolean: true },
    ca: {},
    fingerprint: {},
    forward: { repeat: true },
    socks: {},
    'first-bytes-wait': {},
    pool: {},
    lanes: {},
    'http-proxy': {},
    'http-proxy-auth': {},
    'max-auth-failures': {},
  })
  const log = logger(flags, 'client')
  if (typeof flags.server !== 'string') throw new UsageError('--server host:port is required')
  const server = parseHostPort(flags.server, '--server')
  if ((flags.ca || flags.fingerprint) && !flags.tls) throw new UsageError('--ca and --fingerprint need --tls')
  if (flags.tls && !flags.ca && !flags.fingerprint) log.info('--tls without --ca or --fingerprint: the server certificate is checked against the system CAs')
  const forwards = ((flags.forward as string[]) ?? []).map((spec) => {
    const [l, d] = spec.split('=')
    if (!l || !d) throw new UsageError(`--forward: expected [lhost:]lport=dhost:dport, got '${spec}'`)
    return { at: parseHostPort(l, '--forward', '127.0.0.1'), target: parseHostPort(d, '--forward') }
  })
  if (forwards.length === 0 && !flags.socks && !flags['http-proxy']) throw new UsageError('nothing to do: give --forward, --socks and/or --http-proxy')
  let proxyAuth: { user: string; pass: string } | undefined
  if (flags['http-proxy-auth'] !== undefined) {
    if (!flags['http-proxy']) throw new UsageError('--http-proxy-auth needs --http-proxy')
    const v = String(flags['http-proxy-auth'])
    const colon = v.indexOf(':')
    if (colon <= 0) throw new UsageError('--http-proxy-auth: expected USER:PASS')
    proxyAuth = { user: v.slice(0, colon), pass: v.slice(colon + 1) }
  }
  const httpAt = flags['http-proxy'] ? parseHostPort(flags['http-proxy'] as string, '--http-proxy', '127.0.0.1') : undefined
  const fbw = int(flags, 'first-bytes-wait', 0, 10_000)
  const pool = int(flags, 'pool', 1, 64)
  const lanes = int(flags, 'lanes', 1, 64)
  const maxAuthFailures = int(flags, 'max-auth-failures', 0, 1_000_000)
  const statsInterval = int(flags, 'stats-interval', 1, 86_400)
  const plaintext = flags['insecure-plaintext'] === true
  if (plaintext && flags.tls) throw new UsageError('--insecure-plaintext and --tls exclude each other')
  if ((plaintext || flags.tls) && flags['server-key'] !== undefined) throw new UsageError(`--server-key is for the secure channel; ${plaintext ? '--insecure-plaintext' : '--tls'} uses the pre-shared key`)
  if (!plaintext && !flags.tls && flags['server-key'] === undefined) throw new UsageError("--server-key BASE64 is required: the server's public key (or --insecure-plaintext with a pre-shared key)")
  let serverKey: Buffer | undefined
  if (flags['server-key'] !== undefined) {
    try {
      serverKey = decodePublicKey(String(flags['server-key']))
    } catch (err) {
      throw new UsageError(`--server-key: ${(err as Error).message}`)
    }
  }
  if (plaintext) log.warn('--insecure-plaintext: the session is NOT encrypted and frames can be injected on the path; for benchmarks only')
  const client = new TunnelClient({
    server,
    ...(serverKey !== undefined ? { secure: { staticKey: privateKey(flags), serverKey } } : { key: key(flags, log), ...(plaintext ? { insecurePlaintext: true } : {}) }),
    ...(flags['on-demand'] ? { onDemand: true } : {}),
    ...(flags.tls ? { tls: { ...(flags.ca ? { ca: fs.readFileSync(flags.ca as string) } : {}), ...(flags.fingerprint ? { fingerprint: flags.fingerprint as string } : {}) } } : {}),
    ...(fbw !== undefined ? { firstBytesWait: fbw } : {}),
    ...(pool !== undefined && pool > 1 ? { pool } : {}),
    ...(lanes !== undefined && lanes > 1 ? { lanes } : {}),
    ...(maxAuthFailures !== undefined ? { maxAuthFailures } : {}),
    logger: log,
  })
  // Gave up (the server does not accept this key): the reason is logged; exit 1.
  const failed = new Promise<number>((resolve) => client.once('error', () => resolve(1)))
  let proxy: HttpProxy | null = null
  try {
    for (const f of forwards) await client.forward(f.at, f.target)
    if (flags.socks) await client.socks(parseHostPort(flags.socks as string, '--socks', '127.0.0.1'))
    proxy = httpAt ? await new HttpProxy({ tunnel: client, ...(proxyAuth ? { auth: proxyAuth } : {}), ...(fbw !== undefined ? { firstBytesWait: fbw } : {}), logger: log }).listen(httpAt.port, httpAt.host) : null
    if (!flags['on-demand']) client.start()
  } catch (err) {
    // A local port in use (or any listener that cannot start): stop everything, one line, exit 1.
    await Promise.race([Promise.all([proxy?.close(), client.close()]), new Promise((r) => setTimeout(r, 1000).unref())])
    throw err
  }
  if (flags.stats) {
    statusLine(() => {
      const s = client.stats()
      const pool = s.pool ? `  pool ${s.pool.up}/${s.pool.size} [${s.pool.members.map((m) => `${m.state} ${m.rtt.toFixed(1)}ms ${human(m.bytesSent + m.bytesReceived)} r${m.resumes}`).join(' | ')}]` : ''
      const lanes = s.lanes ? `  lanes ${s.lanes.filter((l) => l.state === 'open').length} [${s.lanes.map((l) => `${l.index}:${l.rtt.toFixed(1)}ms ${human(l.bytesSent)}`).join(' | ')}]` : ''
      const p = proxy?.stats()
      const http = p ? `  http ${p.requests} req (${p.active} active, ${p.connections} conns, ${p.refused} refused)` : ''
      return `session ${s.state}  streams ${s.streams}  up ${human(s.bytesUp)}  down ${human(s.bytesDown)}  rtt ${s.rtt.toFixed(1)} ms  reconnects ${s.reconnects}  resumes ${s.resumes}  refused ${s.refused}${pool}${lanes}${http}`
    }, statsInterval)
  }
  onStop(async () => {
    await proxy?.close()
    await client.close()
  })
  const code = await failed
  await Promise.race([proxy?.close(), new Promise((r) => setTimeout(r, 1000).unref())])
  return code
}

export async function runKeygen(argv: string[]): Promise<number> {
  const positional = argv.length > 0 && !argv[0]!.startsWith('--') ? argv[0] : undefined
  const flags = parseFlags(positional !== undefined ? argv.slice(1) : argv, { out: {}, psk: { boolean: true }, force: { boolean: true } })
  if (positional !== undefined && flags.out !== undefined) throw new UsageError('give the key file once: synmux keygen FILE or synmux keygen --out FILE')
  const file = positional ?? (flags.out as string | undefined)
  if (flags.psk) {
    if (file !== undefined) throw new UsageError('--psk prints the pre-shared key: synmux keygen --psk > key')
    process.stdout.write(generateKey() + '\n')
    return 0
  }
  if (file === undefined) throw new UsageError('name the private key file: synmux keygen FILE (or --psk for a pre-shared key)')
  const pair = generateKeyPair()
  try {
    writePrivateKeyFile(file, pair.privateKey, { overwrite: flags.force === true })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EEXIST') throw new UsageError(`${file} exists already (--force replaces it)`)
    throw Object.assign(new Error(`cannot write ${file}: ${e.message}`), { code: 'SYNMUX_BAD_KEY' })
  }
  process.stdout.write(encodePublicKey(pair.publicKey) + '\n')
  return 0
}
