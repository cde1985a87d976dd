/**
 * `synmux server`, `synmux client`, `synmux keygen`.
 * @internal
 * @packageDocumentation
 */
import fs from 'node:fs'
import tls from 'node:tls'
import type { Logger } from '../common/log.js'
import { generateKey, readKeyFile } from '../tunnel/keys.js'
import { decodePublicKey, encodePublicKey, generateKeyPair, PRIVATE_KEY_TAG, readAuthorizedKeysFile, readPrivateKeyFile, writePrivateKeyFile, type AuthorizedKeys } from '../secure/keys.js'
import { AllowList } from '../tunnel/allow.js'
import { TunnelServer } from '../tunnel/server.js'
import type { TunnelServerOptions, TunnelServerStats } from '../tunnel/server-options.js'
import { silentLogger } from '../common/log.js'
import { Routing } from '../tunnel/cluster/routing.js'
import { ClusterWorker, workerPlace } from '../tunnel/cluster/worker.js'
import { quietListening, runServerPrimary, scaleFlags, workerMetrics, type ServerSetup } from './cluster.js'
import { TunnelClient } from '../tunnel/client.js'
import { TunnelError } from '../tunnel/errors.js'
import { HttpProxy } from '../proxy/client.js'
import { HttpGateway } from '../proxy/gateway.js'
import { intFlag, packageVersion, parseFlags, parseHostPort, userPass, UsageError, type Flags } from './args.js'
import { CLIENT, KEYGEN, SERVER } from './flags.js'
import { cliLogger, levelOf, type CliLogger } from './logging.js'
import { runUntilStopped } from './lifecycle.js'

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

const int = intFlag

/** `--metrics [host:]port` (default host 127.0.0.1), or null: read before anything starts listening (a usage error has no side effect). */
function metricsAt(flags: Flags): { host: string; port: number } | null {
  return typeof flags.metrics === 'string' ? parseHostPort(flags.metrics, '--metrics', '127.0.0.1') : null
}

/** The `--metrics` endpoint at `at`, started with prom-client loaded only now. */
async function metrics(at: { host: string; port: number } | null, source: Omit<import('./metrics.js').MetricsSource, 'version'>, log: Logger): Promise<{ close(): Promise<void> } | null> {
  if (at === null) return null
  const { startMetrics } = await import('./metrics.js')
  return startMetrics(at, { ...source, version: packageVersion() }, log)
}

/**
 * SIGHUP: the flags again, with `--config` re-read (the command line still
 * wins), so that what can change while running changes: the log level
 * always; `apply` does the rest and says what it changed. Anything invalid
 * changes nothing.
 */
function reloader(argv: string[], table: typeof SERVER.flags, logging: CliLogger, apply: (flags: Flags) => string[]): () => void {
  return () => {
    const flags = parseFlags(argv, table)
    const level = levelOf(flags)
    const changed = apply(flags)
    logging.setLevel(level)
    logging.log.info(`SIGHUP: reloaded${flags.config ? ` ${String(flags.config)}` : ''}: log level ${level}${changed.length ? `, ${changed.join(', ')}` : ''}`)
  }
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

/**
 * Reads and checks `synmux server`'s flags (a usage error has no side
 * effect; key files are read). `log` gets the warnings (a worker of
 * `--workers` passes a silent one: its primary said them).
 * @internal
 */
export function serverSetup(flags: Flags, log: Logger): ServerSetup {
  if (typeof flags.listen !== 'string') throw new UsageError('--listen [host:]port is required')
  const listen = parseHostPort(flags.listen, '--listen', '0.0.0.0')
  const metricsListen = metricsAt(flags)
  if (!flags.allow) log.warn('no --allow given: every target is refused (default deny)')
  if (!!flags['tls-cert'] !== !!flags['tls-key']) throw new UsageError('--tls-cert and --tls-key go together')
  const statsInterval = int(flags, 'stats-interval', 1, 86_400)
  const drainTimeout = int(flags, 'drain-timeout', 0, 86_400) ?? 30
  const maxStreams = int(flags, 'max-streams', 1, 0xffff_ffff)
  const detachTimeout = int(flags, 'detach-timeout', 0, 2_147_483_647)
  const plaintext = flags['insecure-plaintext'] === true
  const keysFile = flags['authorized-keys'] as string | undefined
  if ((plaintext || flags['tls-cert']) && keysFile !== undefined) throw new UsageError(`--authorized-keys is for the secure channel; ${plaintext ? '--insecure-plaintext' : '--tls-cert'} authenticates clients by the pre-shared key`)
  if (plaintext && flags['tls-cert']) throw new UsageError('--insecure-plaintext and --tls-cert exclude each other')
  if (!plaintext && !flags['tls-cert'] && keysFile === undefined) throw new UsageError('--authorized-keys FILE is required: the client keys this server accepts (or --insecure-plaintext with a pre-shared key)')
  const { workers, instance, advertise } = scaleFlags(flags)
  if (plaintext) log.warn('--insecure-plaintext: sessions are NOT encrypted and frames can be injected on the path; for benchmarks only')
  const options: TunnelServerOptions = {
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
    ...(flags['ipv6-source-prefix'] ? { ipv6SourcePrefix: int(flags, 'ipv6-source-prefix', 1, 128)! } : {}),
    gateway: (options) => new HttpGateway(options),
    httpGateway: flags['no-http-gateway'] ? false : flags['http-max-sockets'] ? { maxSocketsPerOrigin: int(flags, 'http-max-sockets', 1, 100_000)! } : true,
    logger: log,
  }
  return { options, listen, metrics: metricsListen, statsInterval, drainTimeout, workers, instance, advertise, keysFile }
}

export async function runServer(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, SERVER.flags)
  const place = workerPlace()
  // (A worker's lines read as a single process's: the session ids tell which worker holds what.)
  const logging = cliLogger(flags, 'server')
  const log = logging.log
  // A worker of --workers: its primary checked the flags and said the warnings.
  const setup = serverSetup(flags, place === null ? log : silentLogger)
  if (place === null && setup.workers > 1) return runServerPrimary(argv, setup, logging, { statusLine, status: serverStatus })
  const worker = place === null ? null : new ClusterWorker({ index: place.index, workers: place.workers, instance: setup.instance, advertise: setup.advertise })
  if (worker !== null) await workerMetrics(setup.metrics)
  await worker?.sync()
  const routing = worker?.routing ?? (setup.instance !== 0 ? new Routing({ worker: 0, workers: 1, instance: setup.instance, advertise: setup.advertise }) : undefined)
  // A worker's "listening on ..." line is its primary's to say, once every worker listens.
  let listening = ''
  const serverLog = worker === null ? log : quietListening(log, (line) => (listening = line))
  const server = new TunnelServer({ ...setup.options, logger: serverLog, ...(routing !== undefined ? { routing } : {}) })
  const { listen, drainTimeout, keysFile } = setup
  await server.listen(listen.port, listen.host).catch(async (err: Error) => {
    await server.destroy()
    throw err
  })
  // A worker's metrics are served by its primary (summed over the workers).
  const endpoint = worker !== null ? await workerMetrics(setup.metrics, server) : await metrics(setup.metrics, { server }, log).catch(async (err: Error) => {
    await server.destroy()
    throw err
  })
  worker?.ready(server, listening)
  if (flags.stats && worker === null) statusLine(() => serverStatus(server.stats()), setup.statsInterval)
  // A worker stops accepting with the others (they share the listening socket), then drains.
  let closing: Promise<void> | null = null
  const code = await runUntilStopped(
    {
      ...(worker !== null
        ? {
            stopAccepting: () => {
              const s = worker.stopAccepting(server)
              closing = s.closed
              return s.refusing
            },
          }
        : {}),
      drain: () => closing ?? server.close(),
      destroy: () => server.destroy(),
      open: () => server.stats().streams,
      reload: reloader(argv, SERVER.flags, logging, (f) => {
        const changed: string[] = []
        // Everything is read and checked before anything is replaced: a bad allow entry or a certificate that
        // does not load (or does not match its key) throws here and the reload changes nothing.
        const allow = (f.allow as string[] | undefined) ?? []
        const nextAllow = allow.join(',') !== server.allow.entries.join(',') ? AllowList.parse(allow) : null
        const nextTls = f['tls-cert'] && f['tls-key'] && flags['tls-cert'] ? { cert: fs.readFileSync(f['tls-cert'] as string), key: fs.readFileSync(f['tls-key'] as string) } : null
        if (nextTls !== null) tls.createSecureContext(nextTls)
        if (nextAllow !== null) {
          server.setAllow(nextAllow)
          changed.push(`allow: ${allow.join(', ') || 'nothing (default deny)'}`)
        }
        if (nextTls !== null) {
          server.setTls(nextTls)
          changed.push('TLS certificate re-read')
        }
        if (keysFile !== undefined) changed.push(...reloadKeys(server, keysFile, log))
        return changed
      }),
    },
    drainTimeout,
    log,
    undefined,
    worker?.signals,
  )
  await endpoint?.close()
  return code
}

/** `synmux server`'s status line. */
function serverStatus(s: TunnelServerStats, extra = ''): string {
  const http = s.http ? `  http ${s.http.requests} req (${s.http.active} active, ${s.http.originConnections} origin conns, ${s.http.refused} refused)` : ''
  const clients = s.clients ? `  clients [${s.clients.map((c) => `${c.name}: ${c.sessions} sess ${c.streams} str ${human(c.bytesUp + c.bytesDown)}`).join(' | ')}]` : ''
  return `sessions ${s.sessions}  streams ${s.streams}  connecting ${s.connectsInProgress}  up ${human(s.bytesUp)}  down ${human(s.bytesDown)}  refused ${s.refused}  failed handshakes ${s.handshakeFailures}${clients}${http}${extra}`
}

/** Reads an authorized-keys file (a parse error names the file and line). */
function authorizedKeys(file: string): AuthorizedKeys {
  return readAuthorizedKeysFile(file)
}

/**
 * SIGHUP re-reads the authorized keys: the new set applies to new
 * handshakes at once, and the sessions of removed keys are closed. A file
 * that does not parse keeps the old set (and says why). Returns what
 * changed, for the reload's summary line.
 */
function reloadKeys(server: TunnelServer, file: string, log: Logger): string[] {
  let keys: AuthorizedKeys
  try {
    keys = authorizedKeys(file)
  } catch (err) {
    log.error(`SIGHUP: ${(err as Error).message}; keeping the authorized keys loaded before`)
    return []
  }
  const closed = server.setAuthorizedKeys(keys)
  log.info(`SIGHUP: ${keys.size} authorized key${keys.size === 1 ? '' : 's'} loaded from ${file}${closed.length > 0 ? `; closed the sessions of ${closed.join(', ')}` : ''}`)
  return [`${keys.size} authorized key${keys.size === 1 ? '' : 's'}`]
}

export async function runClient(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, CLIENT.flags)
  const logging = cliLogger(flags, 'client')
  const log = logging.log
  if (typeof flags.server !== 'string') throw new UsageError('--server host:port is required')
  const server = parseHostPort(flags.server, '--server')
  if ((flags.ca || flags.fingerprint) && !flags.tls) throw new UsageError('--ca and --fingerprint need --tls')
  if (flags.tls && !flags.ca && !flags.fingerprint) log.info('--tls without --ca or --fingerprint: the server certificate is checked against the system CAs')
  const forwards = ((flags.forward as string[]) ?? []).map((spec) => {
    const [l, d] = spec.split('=')
    if (!l || !d) throw new UsageError(`--forward: expected [lhost:]lport=dhost:dport, got '${spec}'`)
    return { at: parseHostPort(l, '--forward', '127.0.0.1'), target: parseHostPort(d, '--forward') }
  })
  if (flags['http-proxy-auth'] !== undefined && !flags['http-proxy']) throw new UsageError('--http-proxy-auth needs --http-proxy')
  const proxyAuth = userPass(flags, 'http-proxy-auth')
  if ((flags['socks-auth'] !== undefined || flags['socks-wait']) && !flags.socks) throw new UsageError(`--${flags['socks-auth'] !== undefined ? 'socks-auth' : 'socks-wait'} needs --socks`)
  const socksAuth = userPass(flags, 'socks-auth')
  if (socksAuth && (Buffer.byteLength(socksAuth.user) > 255 || Buffer.byteLength(socksAuth.pass) > 255)) throw new UsageError('--socks-auth: USER and PASS are at most 255 bytes each (RFC 1929)')
  if (forwards.length === 0 && !flags.socks && !flags['http-proxy']) throw new UsageError('nothing to do: give --forward, --socks and/or --http-proxy')
  const httpAt = flags['http-proxy'] ? parseHostPort(flags['http-proxy'] as string, '--http-proxy', '127.0.0.1') : undefined
  const metricsListen = metricsAt(flags)
  const fbw = int(flags, 'first-bytes-wait', 0, 10_000)
  const pool = int(flags, 'pool', 1, 64)
  const lanes = int(flags, 'lanes', 1, 64)
  const maxAuthFailures = int(flags, 'max-auth-failures', 0, 1_000_000)
  const statsInterval = int(flags, 'stats-interval', 1, 86_400)
  const drainTimeout = int(flags, 'drain-timeout', 0, 86_400) ?? 30
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
  let endpoint: { close(): Promise<void> } | null = null
  try {
    for (const f of forwards) await client.forward(f.at, f.target)
    if (flags.socks) await client.socks(parseHostPort(flags.socks as string, '--socks', '127.0.0.1'), { ...(socksAuth ? { auth: socksAuth } : {}), wait: !!flags['socks-wait'] })
    proxy = httpAt ? await new HttpProxy({ tunnel: client, ...(proxyAuth ? { auth: proxyAuth } : {}), ...(fbw !== undefined ? { firstBytesWait: fbw } : {}), logger: log }).listen(httpAt.port, httpAt.host) : null
    endpoint = await metrics(metricsListen, { client, proxy: () => proxy }, log)
    if (!flags['on-demand']) client.start()
  } catch (err) {
    // A local port in use (or any listener that cannot start): stop everything, one line, exit 1.
    void proxy?.close()
    await client.destroy()
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
  const code = await runUntilStopped(
    {
      // Stop accepting everywhere; the HTTP proxy's connections and the
      // session's streams finish; then the session closes.
      drain: async () => {
        await Promise.all([proxy ? drainHttp(proxy) : undefined, client.close()])
      },
      destroy: async () => {
        void proxy?.close()
        await client.destroy()
      },
      open: () => client.connections + (proxy?.stats().connections ?? 0),
      reload: reloader(argv, CLIENT.flags, logging, () => []),
    },
    drainTimeout,
    log,
    failed,
  )
  if (code !== 0) {
    void proxy?.close()
    await client.destroy()
  }
  await endpoint?.close()
  return code
}

/** Stops the HTTP proxy accepting and resolves when its connections are gone (idle keep-alive ones are closed now and as they become idle). */
function drainHttp(proxy: HttpProxy): Promise<void> {
  return new Promise((resolve) => {
    proxy.server.close()
    const check = (): void => {
      proxy.server.closeIdleConnections()
      if (proxy.stats().connections === 0) {
        clearInterval(timer)
        resolve()
      }
    }
    const timer = setInterval(check, 100)
    check()
  })
}

export async function runKeygen(argv: string[]): Promise<number> {
  const positional = argv.length > 0 && !argv[0]!.startsWith('--') ? argv[0] : undefined
  const flags = parseFlags(positional !== undefined ? argv.slice(1) : argv, KEYGEN.flags)
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
    throw new TunnelError('SYNMUX_BAD_KEY', `cannot write ${file}: ${e.message}`, { cause: e })
  }
  process.stdout.write(encodePublicKey(pair.publicKey) + '\n')
  return 0
}
