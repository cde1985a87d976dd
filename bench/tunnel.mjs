#!/usr/bin/env node
// bench/tunnel: time to first response byte of a NEW connection across a
// slow link (two namespaces, bench/lib's delaying TUN forwarder), as a
// multiple of the link RTT, for: direct TCP; a plain TCP relay (one onward
// connection per client connection); synmux (client and server CLIs, one
// persistent session, first bytes in OPEN, onward TFO); ssh -L; and
// shadowsocks-libev's ss-local --fast-open (SOCKS5, its first bytes in a
// TFO SYN to ss-server). The anchors are installed from Debian when missing.
// Usage: node bench/tunnel.mjs [--rtt 50,100] [--far-rtt 50 (0: none)] [--rounds 20]
//          [--synmux-mode secure|plaintext|tls] [--server-args "..."] [--client-args "..."] [--no-install]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ensureAnchors, has, openssh, shadowsocks } from './lib/anchors.mjs'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { benchDir as here, cliPath as cli, listArg, numArg, waitReady, writeResult } from './lib/proc.mjs'
import { detectCli, splitArgs, strArg, synmuxMode } from './lib/synmux-cli.mjs'

const rtts = listArg('rtt', ['50', '100']).map(Number)
const rounds = numArg('rounds', 20)
const farRtt = numArg('far-rtt', 50)
const extraServer = splitArgs(strArg('server-args'))
const extraClient = splitArgs(strArg('client-args'))

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'tunnel', skipped: cap.reason }))
  process.exit(0)
}

async function ready(child, re = /ready (\d+)|listening on [^:]+:(\d+)|session to .* up/) {
  const m = await waitReady(child, re)
  return Number(m[1] ?? m[2] ?? 0)
}

const anchors = process.argv.includes('--no-install') ? { notes: ['--no-install: anchors not installed by this run'] } : ensureAnchors({ log: (m) => process.stderr.write(`tunnel: ${m}\n`) })
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-bench-'))
const cliInfo = detectCli()
const mode = synmuxMode(strArg('synmux-mode', cliInfo.defaultMode), keyDir, cliInfo)
// ssh -L and ss-local --fast-open as anchors when installed (Debian: openssh-server, openssh-client, shadowsocks-libev)
const hasSsh = has.ssh()
const ssh = hasSsh ? openssh(keyDir) : null
const hasSs = has.ss()
const ss = hasSs ? shadowsocks(keyDir) : null

/** Waits until something accepts connections on host:port in a namespace. */
async function waitPort(link, ns, port) {
  for (let i = 0; i < 100; i++) {
    const r = await link.run(ns, process.execPath, ['-e', `require('net').connect(${port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`])
    if (r.code === 0) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing listens on ${port}`)
}
const pipes = { stdio: ['ignore', 'pipe', 'pipe'] }
async function measure(rttMs, farRttMs) {
const link = await createDelayedLink({ rttMs, name: 'smxtun' })
try {
  const S = link.server.address
  // the target: next to the synmux server, or behind a second delayed link
  const far = farRttMs !== undefined ? await link.extend({ rttMs: farRttMs }) : undefined
  const target = link.spawnNode(far ? 'far' : 'server', path.join(here, 'tunnel', 'target.mjs'), ['0.0.0.0'], pipes)
  const targetPort = await ready(target)
  const T = far ? far.address : '127.0.0.1'
  const server = link.spawnNode('server', cli, ['server', '--listen', `${S}:9000`, ...mode.serverArgs, '--allow', `${T}:${targetPort}`, ...extraServer], pipes)
  await ready(server)
  const client = link.spawnNode('client', cli, ['client', '--server', `${S}:9000`, ...mode.clientArgs, '--forward', `127.0.0.1:7001=${T}:${targetPort}`, ...extraClient], pipes)
  await ready(client)
  const relay = link.spawnNode('client', path.join(here, 'tunnel', 'relay.mjs'), ['7002', far ? T : S, String(targetPort)], pipes)
  await ready(relay)
  if (hasSsh) {
    link.exec('server', ...ssh.server({ host: S, port: 22 }), pipes)
    await new Promise((r) => setTimeout(r, 300))
    link.exec('client', ...ssh.forward({ server: S, port: 22, forwards: [`127.0.0.1:7003:${T}:${targetPort}`] }), pipes)
    await waitPort(link, 'client', 7003)
  }
  if (hasSs) {
    link.exec('server', ...ss.server({ host: S, port: 8388, fastOpen: true }), pipes)
    link.exec('client', ...ss.local({ server: S, serverPort: 8388, listen: '127.0.0.1', port: 1080, fastOpen: true }), pipes)
    await waitPort(link, 'client', 1080)
  }
  const paths = {
    'direct TCP': { host: far ? T : S, port: targetPort },
    ...(hasSsh ? { 'ssh -L': { host: '127.0.0.1', port: 7003 } } : {}),
    ...(hasSs ? { 'ss-local --fast-open': { host: '127.0.0.1', port: 1080, socks: { host: T, port: targetPort } } } : {}),
    'plain TCP relay': { host: '127.0.0.1', port: 7002 },
    synmux: { host: '127.0.0.1', port: 7001 },
  }
  const r = await link.run('client', process.execPath, [path.join(here, 'tunnel', 'app.mjs'), JSON.stringify(paths), String(rounds)], { timeoutMs: 300_000 })
  if (r.code !== 0) throw new Error(`app failed: ${r.stderr}`)
  const ttfb = JSON.parse(r.stdout.trim().split('\n').pop())
  const total = rttMs + (farRttMs ?? 0)
  return {
    rttMs,
    ...(far ? { farRttMs, endToEndRttMs: total, note: 'target behind a second delayed link; inRtts are multiples of the end-to-end RTT' } : {}),
    ttfbMs: ttfb,
    inRtts: Object.fromEntries(Object.entries(ttfb).map(([k, v]) => [k, +(v.median / total).toFixed(2)])),
    synmuxOverheadMs: +(ttfb.synmux.median - total).toFixed(3),
    aboveRttMs: Object.fromEntries(Object.entries(ttfb).map(([k, v]) => [k, +(v.median - total).toFixed(3)])),
  }
} finally {
  await link.close()
}
}
const runs = []
try {
  for (const rtt of rtts) runs.push(await measure(rtt))
  if (farRtt > 0) runs.push(await measure(rtts[0], farRtt))
} finally {
  fs.rmSync(keyDir, { recursive: true, force: true })
}
const result = {
  bench: 'tunnel',
  date: new Date().toISOString(),
  node: process.version,
  link: 'netns + TUN forwarder (bench/lib)',
  rounds,
  synmux: { mode: mode.mode, description: mode.description, serverArgs: extraServer, clientArgs: extraClient },
  anchors: { ...(hasSsh ? { 'ssh -L': ssh.config } : {}), ...(hasSs ? { 'ss-local --fast-open': ss.config } : {}), ...(anchors.versions ? { versions: anchors.versions } : {}), ...(anchors.notes?.length ? { notes: anchors.notes } : {}) },
  runs,
  goal: 'synmux <= 1.05 RTT where the others take >= 2',
  notes: [
    'synmuxOverheadMs: time above one RTT; it is per connection (three processes on 2 cores: client, server, target), not per RTT',
    'aboveRttMs: median time to first byte minus the end-to-end RTT, per path',
    hasSsh ? 'ssh -L: OpenSSH in the namespaces (ed25519 keys made for the run), one SSH connection set up before measuring; each new connection opens a direct-tcpip channel' : 'ssh -L not measured: OpenSSH (sshd, ssh) is not installed',
    hasSs ? "ss-local --fast-open: a SOCKS5 proxy in the client namespace (ss-tunnel has no --fast-open); the application's greeting and CONNECT go to it on loopback, then its first bytes ride in the TFO SYN to ss-server; the time runs from connect() as for the others" : 'ss-local not measured: shadowsocks-libev is not installed',
    ...(farRtt > 0 ? ['the last run puts the target behind a second delayed link (link.extend): there the onward connection crosses a slow link too, and only onward TFO keeps synmux at one end-to-end RTT'] : []),
  ],
}
writeResult('tunnel', result)
