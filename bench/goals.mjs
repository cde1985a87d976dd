#!/usr/bin/env node
// bench/goals: issue 15's goals table in one run, each figure beside its
// anchor measured in the same run (medians of alternated runs, quartiles):
//   1  new connections/s through the tunnel (open + 1 KiB request + 1 KiB
//      response + close, 64 in flight): synmux vs shadowsocks-libev
//      (ss-server + ss-tunnel) and ssh -L
//   1b tunnel CPU per connection (user + sys of the tunnel's processes)
//   2  time above one RTT for a new tunnelled connection over a 50 ms link
//      (bench/tunnel.mjs): synmux vs ss-local --fast-open and ssh -L
//   3  memory per idle tunnelled connection, each side: synmux vs ss-libev
//   4  HTTP proxy through the tunnel, ab -n 2000 -c 50, with and without -k:
//      synmux client --http-proxy + server gateway vs squid
//   5  one mux stream vs raw TCP (64 KiB, 1 MiB writes) and vs libp2p-yamux
//      (bench/mux-throughput.mjs)
//   6  striping, 4 lanes at 20 Mbit/s, and one congested lane (bench/stripe.mjs)
//   7  synmux server --workers 2 vs 1, new-connection rate (the client with --pool 2,
//      so that each worker gets a session; and the most the cores allow)
// Installs the anchors from Debian first (root). Progress on stderr; JSON on
// stdout and in bench/results/goals.json (goals-quick.json with --quick).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ensureAnchors, has, maxRelayedConnections, NOFILE, versions } from './lib/anchors.mjs'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { benchDir, listArg, numArg, writeResult } from './lib/proc.mjs'
import { detectCli, splitArgs, strArg, synmuxMode } from './lib/synmux-cli.mjs'
import { aboveRtt, streamThroughput, striping } from './goals/bench-rows.mjs'
import { connectionRate, httpProxy, idleMemory } from './goals/loopback-rows.mjs'
import { directSystem, shadowsocksSystem, squidSystem, sshSystem, startTarget, synmuxSystem } from './goals/systems.mjs'
import { summarize as summaryOf, table } from './goals/summary.mjs'

const HELP = `Usage: node bench/goals.mjs [options]     (root: network namespaces, apt-get)
Issue 15's goals table, synmux beside its anchors in the same run.
  --quick                 smoke run (a minute or two): fewer, shorter rounds
  --rows LIST             rows to run, of 1,2,3,4,5,6,7 (default all; 1 includes CPU per connection)
  --rounds N              alternated rounds after the warm-up (default 5; --quick 2)
  --seconds S             seconds per new-connection run (default 5; --quick 2)
  --concurrency N         connections in flight (default 64)
  --idle LIST             idle connection counts for row 3 (default 2000,10000; --quick 500,2000)
  --memory-rounds N       fresh-process rounds for row 3 (default 3; --quick 1)
  --ab-n N, --ab-c N      ab requests and concurrency (default 2000, 50)
  --rtt MS                row 2's link RTT (default 50); --ttfb-rounds N (default 20; --quick 8)
  --mib N                 MiB per row-5 transfer (default 256; --quick 64)
  --stripe-seconds S      per stripe measurement (default 8; --quick 3); --stripe-rounds N (default 3; --quick 1)
  --synmux-mode MODE      secure, plaintext or tls (default: the CLI's default, read from its --help)
  --server-args "FLAGS"   extra flags for every synmux server (e.g. "--workers 2")
  --client-args "FLAGS"   extra flags for every synmux client
  --workers LIST          row 7's --workers values (default 1,2; the client runs --pool with the largest)
  --no-install            do not apt-get install missing anchors
  --out NAME              bench/results/NAME.json (default goals, or goals-quick with --quick)`
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(HELP)
  process.exit(0)
}

const quick = process.argv.includes('--quick')
const t0 = Date.now()
const log = (m) => process.stderr.write(`[goals ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${m}\n`)
const rows = new Set(listArg('rows', ['1', '2', '3', '4', '5', '6', '7']))
const cli = detectCli()
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-goals-'))
fs.chmodSync(keyDir, 0o755)
const ctx = {
  log,
  quick,
  rounds: numArg('rounds', quick ? 2 : 5),
  seconds: numArg('seconds', quick ? 2 : 5),
  concurrency: numArg('concurrency', 64),
  idle: listArg('idle', quick ? ['500', '2000'] : ['2000', '10000']).map(Number),
  memoryRounds: numArg('memory-rounds', quick ? 1 : 3),
  abN: numArg('ab-n', 2000),
  abC: numArg('ab-c', 50),
  rttMs: numArg('rtt', 50),
  ttfbRounds: numArg('ttfb-rounds', quick ? 8 : 20),
  throughputMiB: numArg('mib', quick ? 64 : 256),
  stripeSeconds: numArg('stripe-seconds', quick ? 3 : 8),
  stripeRounds: numArg('stripe-rounds', quick ? 1 : 3),
  serverArgs: splitArgs(strArg('server-args')),
  clientArgs: splitArgs(strArg('client-args')),
  workers: listArg('workers', ['1', '2']).map(Number),
}
ctx.mode = synmuxMode(strArg('synmux-mode', cli.defaultMode), keyDir, cli)

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'goals', skipped: cap.reason }))
  process.exit(0)
}

const git = (...a) => {
  try {
    return execFileSync('git', ['-C', benchDir, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}
const loadAtStart = os.loadavg().map((x) => +x.toFixed(2))
log(`load average ${loadAtStart.join(' ')}; synmux ${git('rev-parse', '--short', 'HEAD') ?? '?'} in mode ${ctx.mode.mode}; rows ${[...rows].join(',')}${quick ? ' (quick)' : ''}`)
const anchors = process.argv.includes('--no-install') ? { versions: versions(), missing: [], notes: ['--no-install'] } : ensureAnchors({ log })
if (anchors.missing.length) log(`missing anchors: ${anchors.missing.join(', ')}`)

// The idle counts must fit the relays' descriptor limit (two per connection).
const fdCap = maxRelayedConnections()
const idleNote = ctx.idle.some((n) => n > fdCap) ? `idle counts capped at ${fdCap}: the open-file limit is ${NOFILE} here (no CAP_SYS_RESOURCE to raise the hard limit), and ss-tunnel/ss-server hold two descriptors per connection` : null
if (idleNote) {
  ctx.idle = [...new Set(ctx.idle.map((n) => Math.min(n, fdCap)))]
  log(idleNote)
}

const results = {}
const skipped = {}
async function row(id, name, fn) {
  if (!rows.has(id)) return
  log(`row ${id}: ${name} (load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})`)
  const loadAverageBefore = os.loadavg().map((x) => +x.toFixed(2))
  try {
    const r = await fn()
    if (r?.skipped) skipped[name] = r.skipped
    else results[name] = { loadAverageBefore, ...r }
  } catch (e) {
    log(`row ${id} failed: ${e.stack ?? e}`)
    results[name] = { loadAverageBefore, error: String(e?.message ?? e) }
  }
}

const needNs = ['1', '3', '4', '7'].some((r) => rows.has(r))
const link = needNs ? await createDelayedLink({ rttMs: 0, name: 'smxgoals', ipv6: false }) : null
try {
  const target = needNs ? await startTarget(link) : null
  const synmux = (extra = {}) => synmuxSystem(link, { mode: ctx.mode, serverArgs: ctx.serverArgs, clientArgs: ctx.clientArgs, ...extra })
  await row('1', 'connectionRate', async () => {
    const systems = [synmux(), ...(has.ss() ? [shadowsocksSystem(link, keyDir)] : []), ...(has.ssh() ? [sshSystem(link, keyDir)] : []), directSystem()]
    return connectionRate(ctx, link, target, systems, { base: 'synmux', compare: systems.slice(1).filter((s) => !s.reference).map((s) => s.name) })
  })
  await row('3', 'idleMemory', async () => {
    if (!has.ss()) log('shadowsocks-libev missing: synmux alone')
    const r = await idleMemory(ctx, link, target, [synmux(), ...(has.ss() ? [shadowsocksSystem(link, keyDir)] : [])])
    return idleNote ? { ...r, notes: [...r.notes, idleNote] } : r
  })
  await row('4', 'httpProxy', async () => {
    if (!has.ab()) return { skipped: 'ab (apache2-utils) is not installed' }
    const proxies = [synmuxSystem(link, { name: 'synmux', mode: ctx.mode, serverArgs: ctx.serverArgs, clientArgs: ctx.clientArgs }), ...(has.squid() ? [squidSystem(link, keyDir)] : [])]
    proxies[0].config = proxies[0].config.replace('synmux client --forward', 'synmux client --http-proxy (the server\'s HTTP gateway, pooled keep-alive onward)')
    return httpProxy(ctx, link, proxies, { base: 'synmux', compare: proxies.slice(1).map((p) => p.name) })
  })
  await row('7', 'workers', async () => {
    if (!cli.flags.workers) return { skipped: 'synmux server has no --workers flag yet (not in `synmux server --help`); run again once it lands (or pass --server-args to any row)' }
    const strip = (args, flag) => args.filter((a, i) => a !== flag && args[i - 1] !== flag)
    // The client keeps as many sessions as the most workers compared (--pool): a session lives in one worker,
    // so one session would leave the others idle. The same client for every variant.
    const pool = ['--pool', String(Math.max(...ctx.workers))]
    const systems = ctx.workers.map((n) => synmux({ name: `synmux --workers ${n}`, serverArgs: [...strip(ctx.serverArgs, '--workers'), '--workers', String(n)], clientArgs: [...strip(ctx.clientArgs, '--pool'), ...pool] }))
    const names = systems.map((s) => s.name)
    const r = await connectionRate(ctx, link, target, systems, { base: names.at(-1), compare: names.slice(0, -1) })
    // What the cores allow at most: every core busy with the tunnel's processes alone (client and server, at
    // the CPU per connection measured with one worker), over the one-worker rate. The load generator and the
    // client share the cores with the server here, so more workers cannot add more than that.
    const one = r.runs.filter((x) => !x.warmup && x.system === names[0]).map((x) => x.cpuMsPerConnection).sort((a, b) => a - b)
    const cpuMs = one[Math.floor(one.length / 2)]
    const rate1 = r.perSecond[names[0]]?.median
    if (cpuMs > 0 && rate1 > 0) {
      const maxRate = Math.round((os.cpus().length * 1000) / cpuMs)
      r.ceiling = { cores: os.cpus().length, cpuMsPerConnection: cpuMs, maxRatePerSecond: maxRate, maxRatio: +(maxRate / rate1).toFixed(3), note: `the client (one process, --pool), the load generator and the target run on the same ${os.cpus().length} cores as the server: the rate cannot pass cores / (CPU per connection of client and server), whatever the server's workers` }
    }
    return r
  })
  if (needNs) await target.stop()
} finally {
  if (link) await link.close()
}
await row('2', 'aboveRtt', () => aboveRtt(ctx))
await row('5', 'streamThroughput', () => streamThroughput(ctx))
await row('6', 'striping', () => striping(ctx))
fs.rmSync(keyDir, { recursive: true, force: true })

const result = {
  bench: 'goals',
  issue: 15,
  date: new Date().toISOString(),
  durationSeconds: Math.round((Date.now() - t0) / 1000),
  quick,
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, kernel: os.release(), node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg().map((x) => +x.toFixed(2)), openFileLimit: NOFILE },
  synmux: { commit: git('rev-parse', 'HEAD'), dirty: !!git('status', '--porcelain', '--untracked-files=no'), mode: ctx.mode.mode, modeDescription: ctx.mode.description, serverArgs: ctx.serverArgs, clientArgs: ctx.clientArgs, cli },
  anchors: { versions: anchors.versions, missing: anchors.missing, notes: anchors.notes, ciphers: { 'shadowsocks-libev': 'chacha20-ietf-poly1305', 'ssh -L': 'aes128-gcm@openssh.com' } },
  options: Object.fromEntries(Object.entries(ctx).filter(([k]) => !['log', 'mode'].includes(k))),
  summary: summaryOf(results, skipped, ctx),
  skipped,
  results,
}
const name = strArg('out', quick ? 'goals-quick' : 'goals')
writeResult(name, result)
log(`done in ${result.durationSeconds} s; bench/results/${name}.json\n\n${table(result)}`)
process.exit(Object.values(results).some((r) => r.error) ? 1 : 0)
