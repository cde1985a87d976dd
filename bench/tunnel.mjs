#!/usr/bin/env node
// bench/tunnel: time to first response byte of a NEW connection across a
// slow link (two namespaces, bench/lib's delaying TUN forwarder), as a
// multiple of the link RTT, for: direct TCP; a plain TCP relay (one onward
// connection per client connection); synmux (client and server CLIs, one
// persistent session, first bytes in OPEN, onward TFO).
// Usage: node bench/tunnel.mjs [--rtt 50,100] [--far-rtt 50] [--rounds 20]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { benchDir as here, cliPath as cli, listArg, numArg, waitReady, writeResult } from './lib/proc.mjs'
import { tunnelKeys } from './lib/keys.mjs'

const rtts = listArg('rtt', ['50', '100']).map(Number)
const rounds = numArg('rounds', 20)
const farRtt = numArg('far-rtt', 50)

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'tunnel', skipped: cap.reason }))
  process.exit(0)
}

async function ready(child, re = /ready (\d+)|listening on [^:]+:(\d+)|session to .* up/) {
  const m = await waitReady(child, re)
  return Number(m[1] ?? m[2] ?? 0)
}

const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-bench-'))
// ssh -L as a baseline when OpenSSH is installed (Debian: openssh-server, openssh-client)
const SSHD = ['/usr/sbin/sshd', '/usr/bin/sshd'].find((f) => fs.existsSync(f))
const hasSsh = !!SSHD && (() => {
  try {
    execFileSync('ssh', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
if (hasSsh) {
  for (const k of ['host', 'client']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(keyDir, k)])
  fs.copyFileSync(path.join(keyDir, 'client.pub'), path.join(keyDir, 'authorized_keys'))
  fs.mkdirSync('/run/sshd', { recursive: true })
}

/** Waits until something accepts connections on host:port in a namespace. */
async function waitPort(link, ns, port) {
  for (let i = 0; i < 100; i++) {
    const r = await link.run(ns, process.execPath, ['-e', `require('net').connect(${port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`])
    if (r.code === 0) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing listens on ${port}`)
}
// The tunnel's default: the secure channel (a server key, an authorized client key).
const keys = tunnelKeys(fs.mkdtempSync(path.join(keyDir, 'synmux-')))
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
  const server = link.spawnNode('server', cli, ['server', '--listen', `${S}:9000`, ...keys.serverArgs, '--allow', `${T}:${targetPort}`], pipes)
  await ready(server)
  const client = link.spawnNode('client', cli, ['client', '--server', `${S}:9000`, ...keys.clientArgs, '--forward', `127.0.0.1:7001=${T}:${targetPort}`], pipes)
  await ready(client)
  const relay = link.spawnNode('client', path.join(here, 'tunnel', 'relay.mjs'), ['7002', far ? T : S, String(targetPort)], pipes)
  await ready(relay)
  if (hasSsh) {
    const conf = path.join(keyDir, 'sshd_config')
    fs.writeFileSync(conf, [`ListenAddress ${S}`, 'Port 22', `HostKey ${path.join(keyDir, 'host')}`, `AuthorizedKeysFile ${path.join(keyDir, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', 'AllowTcpForwarding yes', 'PidFile none', ''].join('\n'))
    link.exec('server', SSHD, ['-D', '-e', '-f', conf], pipes)
    await new Promise((r) => setTimeout(r, 300))
    link.exec('client', 'ssh', ['-N', '-L', `127.0.0.1:7003:${T}:${targetPort}`, '-i', path.join(keyDir, 'client'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-o', 'LogLevel=ERROR', `root@${S}`], pipes)
    await waitPort(link, 'client', 7003)
  }
  const paths = {
    'direct TCP': { host: far ? T : S, port: targetPort },
    ...(hasSsh ? { 'ssh -L': { host: '127.0.0.1', port: 7003 } } : {}),
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
  }
} finally {
  await link.close()
}
}
const runs = []
try {
  for (const rtt of rtts) runs.push(await measure(rtt))
  runs.push(await measure(rtts[0], farRtt))
} finally {
  fs.rmSync(keyDir, { recursive: true, force: true })
}
const result = {
  bench: 'tunnel',
  date: new Date().toISOString(),
  node: process.version,
  link: 'netns + TUN forwarder (bench/lib)',
  rounds,
  runs,
  goal: 'synmux <= 1.05 RTT where the others take >= 2',
  notes: [
    'synmuxOverheadMs: time above one RTT; it is per connection (three processes on 2 cores: client, server, target), not per RTT',
    hasSsh ? 'ssh -L: OpenSSH in the namespaces (ed25519 keys made for the run), one SSH connection set up before measuring; each new connection opens a direct-tcpip channel' : 'ssh -L not measured: OpenSSH (sshd, ssh) is not installed',
    'the last run puts the target behind a second delayed link (link.extend): there the onward connection crosses a slow link too, and only onward TFO keeps synmux at one end-to-end RTT',
  ],
}
writeResult('tunnel', result)
