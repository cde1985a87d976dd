/**
 * `synmux server --workers N` (default: the number of cores) and
 * `--instance-id` / `--advertise`: the flags, and the primary process —
 * it forks the workers (each runs `synmux server` as one process would,
 * see `src/tunnel/cluster/`), relays its signals to them, prints their
 * summed status line and serves their summed metrics.
 * @internal
 * @packageDocumentation
 */
import os from 'node:os'
import net from 'node:net'
import { ClusterPrimary, type ClusterStats } from '../tunnel/cluster/primary.js'
import { MAX_WORKERS } from '../tunnel/cluster/ids.js'
import type { TunnelServer } from '../tunnel/server.js'
import type { TunnelServerOptions, TunnelServerStats } from '../tunnel/server-options.js'
import type { Logger } from '../common/log.js'
import { intFlag, packageVersion, parseFlags, parseHostPort, UsageError, type Flags } from './args.js'
import { SERVER } from './flags.js'
import { levelOf, type CliLogger } from './logging.js'

/** `--workers`, `--instance-id` and `--advertise`, checked. */
export function scaleFlags(flags: Flags): { workers: number; instance: number; advertise: { host: string; port: number } | null } {
  const given = intFlag(flags, 'workers', 1, MAX_WORKERS)
  // Windows: synmux makes a TFO listener itself, which a listening socket the cluster's primary shares is not: one process unless asked.
  let workers = given ?? (process.platform === 'win32' ? 1 : Math.min(os.availableParallelism(), MAX_WORKERS))
  if (flags['tls-cert']) {
    // A TLS connection cannot move between processes (its keys stay where the handshake ran): one process.
    if (given !== undefined && given > 1) throw new UsageError('--workers above 1 needs the secure channel or --insecure-plaintext: a TLS session cannot be handed between worker processes')
    workers = 1
  }
  const instance = intFlag(flags, 'instance-id', 1, 65_535) ?? 0
  let advertise: { host: string; port: number } | null = null
  if (flags.advertise !== undefined) {
    advertise = parseHostPort(String(flags.advertise), '--advertise')
    if (net.isIP(advertise.host) === 0) throw new UsageError(`--advertise: an IP address is needed (clients are sent to it), not '${advertise.host}'`)
    if (advertise.port === 0) throw new UsageError('--advertise: a port is needed')
  }
  if (instance !== 0 && advertise === null) throw new UsageError('--instance-id needs --advertise ip:port: the address the other servers send the clients of its sessions to')
  if (advertise !== null && instance === 0) throw new UsageError('--advertise needs --instance-id')
  if (instance !== 0 && (flags['insecure-plaintext'] || flags['tls-cert'])) throw new UsageError('--instance-id needs the secure channel (a redirect must be authenticated)')
  return { workers, instance, advertise }
}

/**
 * A worker's logger: its server's `listening on ...` line is handed to
 * `said` (the primary says it, once every worker listens: whoever reads it
 * may then use the server, signals included) and logged at debug level.
 */
export function quietListening(log: Logger, said: (rest: string) => void): Logger {
  return {
    ...log,
    info: (msg, fields) => {
      if (!msg.startsWith('listening on ')) return log.info(msg, fields)
      said(msg.slice('listening on '.length))
      log.debug(msg, fields)
    },
  }
}

/**
 * A worker's metrics: its registry, asked for by the primary's
 * (prom-client's cluster aggregation). Called first without `server`, as
 * the worker starts, so that it answers the primary's scrapes (with
 * nothing) from then on; then with it.
 */
export async function workerMetrics(at: { host: string; port: number } | null, server?: TunnelServer): Promise<null> {
  if (at === null) return null
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const prom = require('prom-client') as typeof import('prom-client')
  if (server === undefined) {
    new prom.AggregatorRegistry() // answers the primary's requests from now on
    prom.AggregatorRegistry.setRegistries([])
    return null
  }
  const { buildRegistry } = await import('./metrics.js')
  prom.AggregatorRegistry.setRegistries([buildRegistry({ server, version: packageVersion() }, prom)])
  return null
}

/** What `synmux server`'s flags say, checked: the server's options and how many processes run it. @internal */
export interface ServerSetup {
  options: TunnelServerOptions
  listen: { host: string; port: number }
  metrics: { host: string; port: number } | null
  statsInterval: number | undefined
  drainTimeout: number
  /** `--workers` (default: the number of cores). */
  workers: number
  /** `--instance-id` (0: none) and `--advertise`. */
  instance: number
  advertise: { host: string; port: number } | null
  keysFile: string | undefined
}

/**
 * The primary of `synmux server --workers N`: forks the workers, waits
 * until they listen, then relays signals until they have all exited;
 * resolves with the exit code (the highest of the workers').
 */
export async function runServerPrimary(argv: string[], setup: ServerSetup, logging: CliLogger, ui: { statusLine(render: () => string, intervalS?: number): void; status(s: TunnelServerStats, extra?: string): string }): Promise<number> {
  const log = logging.log
  const primary = new ClusterPrimary({
    workers: setup.workers,
    logger: log,
    ...(setup.options.secure?.replayWindow !== undefined ? { replayWindow: setup.options.secure.replayWindow } : {}),
    ...(setup.options.handshakeLimit !== undefined ? { handshakeLimit: setup.options.handshakeLimit } : {}),
  })
  // One round of stats requests serves every reader within 250 ms.
  let asked: { at: number; p: Promise<ClusterStats> } | null = null
  const stats = (): Promise<ClusterStats> => {
    if (asked === null || performance.now() - asked.at > 250) asked = { at: performance.now(), p: primary.stats() }
    return asked.p
  }
  // The metrics endpoint first: up before any worker serves (and a port in use stops nothing that started).
  const endpoint = await primaryMetrics(setup.metrics, stats, log)
  // Signals that come while the workers start wait until they all listen (a worker may already serve).
  type Sig = 'SIGTERM' | 'SIGINT' | 'SIGHUP'
  const pending: Sig[] = []
  let fallback: NodeJS.Timeout | null = null
  const armFallback = (sig: Sig): void => {
    // A worker that outlives its own drain timeout (or never finishes starting) is ended.
    fallback ??= setTimeout(() => {
      log.warn(`workers still running ${setup.drainTimeout + 5} s after ${sig}: ending them`)
      primary.kill()
    }, (setup.drainTimeout + 5) * 1000)
  }
  const early = (['SIGTERM', 'SIGINT', 'SIGHUP'] as const).map((sig) => [sig, () => (pending.push(sig), sig !== 'SIGHUP' && armFallback(sig))] as const)
  for (const [sig, h] of early) process.on(sig, h)
  let first
  try {
    first = await primary.start()
  } catch (err) {
    if (fallback !== null) clearTimeout(fallback)
    await endpoint?.close()
    return (err as { code?: number }).code ?? 1
  } finally {
    for (const [sig, h] of early) process.off(sig, h)
  }
  log.info(`listening on ${first.line} (${setup.workers} worker processes, pids ${primary.pids().join(', ')}; each session lives in one of them)`)
  // Signals go to the workers: SIGTERM and a first SIGINT drain each of them (they stop accepting
  // together), a second SIGINT closes them at once, SIGHUP reloads them. This process waits for them.
  const onSignal = (sig: Sig) => (): void => {
    if (sig === 'SIGHUP') {
      try {
        logging.setLevel(levelOf(parseFlags(argv, SERVER.flags)))
      } catch {
        // (the workers report what is wrong with the flags)
      }
    } else armFallback(sig)
    primary.signal(sig)
  }
  const handlers = (['SIGTERM', 'SIGINT', 'SIGHUP'] as const).map((sig) => [sig, onSignal(sig)] as const)
  for (const [sig, h] of handlers) process.on(sig, h)
  for (const sig of pending) onSignal(sig)()
  let cached: ClusterStats | null = null
  const refresh = (): void => void stats().then((s) => (cached = s))
  if (parseFlags(argv, SERVER.flags).stats) {
    refresh()
    setInterval(refresh, 500).unref()
    ui.statusLine(() => (cached?.stats ? ui.status(cached.stats, `  workers ${cached.up}/${cached.workers}${cached.restarts ? ` (${cached.restarts} restarted)` : ''}  handed off ${cached.handedOff}  moved ${cached.balanced}`) : 'workers starting'), setup.statsInterval)
  }
  const code = await primary.exited()
  for (const [sig, h] of handlers) process.off(sig, h)
  if (fallback !== null) clearTimeout(fallback)
  await endpoint?.close()
  return code
}

/** The primary's metrics endpoint: the workers' registries summed (prom-client's AggregatorRegistry), and the cluster's own gauges. */
async function primaryMetrics(at: { host: string; port: number } | null, stats: () => Promise<ClusterStats>, log: Logger): Promise<{ close(): Promise<void> } | null> {
  if (at === null) return null
  const { serveMetrics } = await import('./metrics.js')
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const prom = require('prom-client') as typeof import('prom-client')
  const aggregator = new prom.AggregatorRegistry()
  const own = new prom.Registry()
  new prom.Gauge({ name: 'synmux_workers', help: 'Worker processes serving now (synmux server --workers)', registers: [own], async collect() {
    this.set((await stats()).up)
  } })
  new prom.Gauge({ name: 'synmux_worker_restarts', help: 'Worker processes started again after one died', registers: [own], async collect() {
    this.set((await stats()).restarts)
  } })
  new prom.Counter({ name: 'synmux_handoffs_total', help: 'Connections handed from one worker to another (a resume or lane that reached another worker than its session\'s)', registers: [own], async collect() {
    this.reset()
    this.inc((await stats()).handedOff)
  } })
  new prom.Counter({ name: 'synmux_sessions_moved_total', help: 'New sessions handed by the worker the kernel gave them to, to the worker with the fewest sessions', registers: [own], async collect() {
    this.reset()
    this.inc((await stats()).balanced)
  } })
  const render = async (): Promise<string> => `${await aggregator.clusterMetrics()}\n${await own.metrics()}`
  return serveMetrics(at, { render, contentType: aggregator.contentType }, log)
}
