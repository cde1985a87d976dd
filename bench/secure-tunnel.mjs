#!/usr/bin/env node
// bench/secure-tunnel (issue 14): the tunnel on its default secure channel
// against what users pick instead, side by side in one run, over a link with
// a real delay (two namespaces, bench/lib's delaying TUN forwarder):
//   1. time to the first response byte of the first request of a cold session
//      (the session starts with that connection; TFO cookie warm), beside
//      shadowsocks-libev (ss-local --fast-open: every connection is "cold");
//   2. the same for a new connection on an established session;
//   3. the stall of an echo stream whose connection is reset (the session
//      resumes on a new one), measured as the longest gap between echoes;
//   4. bulk download through the tunnel, encrypted, against the same tunnel
//      with --insecure-plaintext, `ssh -L` (aes128-gcm@openssh.com) and
//      ss-local (chacha20-ietf-poly1305); rounds alternated, medians.
// Anchors come from Debian (shadowsocks-libev, openssh-server), installed here
// when missing (as root, with apt-get). JSON in bench/results/secure-tunnel.json.
// Usage: node bench/secure-tunnel.mjs [--rtt 50] [--rounds 20] [--bulk-mib 64] [--bulk-rounds 5] [--resume-rounds 10] [--tcp-buffer-mib N]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { benchDir as here, cliPath as cli, numArg, waitReady, writeResult } from './lib/proc.mjs'
import { tunnelKeys } from './lib/keys.mjs'
import { ensureAnchors, has, versions } from './lib/anchors.mjs'

const rtt = numArg('rtt', 50)
const rounds = numArg('rounds', 20)
const bulkMiB = numArg('bulk-mib', 64)
const bulkRounds = numArg('bulk-rounds', 5)
const resumeRounds = numArg('resume-rounds', 10)
// TCP buffer ceiling in both namespaces (MiB; 0 = the kernel's default, 4 MiB/6 MiB): at 50 ms the
// default window, not the endpoints, caps one connection near 40-50 MiB/s.
const tcpBufMiB = numArg('tcp-buffer-mib', 0)

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'secure-tunnel', skipped: cap.reason }))
  process.exit(0)
}

/** The anchors, from Debian (bench/lib/anchors.mjs installs them when missing), else reported as not measured. */
function anchors() {
  ensureAnchors({ packages: ['shadowsocks-libev', 'openssh-server', 'openssh-client'], log: (l) => console.error(`secure-tunnel: ${l}`) })
  const v = versions()
  return {
    ss: has.ss() ? v['shadowsocks-libev'] : null,
    ssh: has.ssh() ? v['openssh-server'] : null,
  }
}

const load = () => os.loadavg().map((x) => +x.toFixed(2))
const pipes = { stdio: ['ignore', 'pipe', 'pipe'] }
const ready = async (child, re = /ready (\d+)|listening on [^:]+:(\d+)|session to .* up/) => {
  const m = await waitReady(child, re)
  return Number(m[1] ?? m[2] ?? 0)
}

const anchor = anchors()
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-secbench-'))
const keys = tunnelKeys(dir)
const psk = path.join(dir, 'psk')
fs.writeFileSync(psk, execFileSync(process.execPath, [cli, 'keygen', '--psk']), { mode: 0o600 })
const loadBefore = load()
const tcpBuf = tcpBufMiB > 0 ? { 'net.ipv4.tcp_rmem': `4096 131072 ${tcpBufMiB << 20}`, 'net.ipv4.tcp_wmem': `4096 16384 ${tcpBufMiB << 20}` } : {}
const link = await createDelayedLink({ rttMs: rtt, name: 'smxsecb', sysctls: tcpBuf })
let result
try {
  const S = link.server.address
  const target = link.spawnNode('server', path.join(here, 'secure-tunnel', 'target.mjs'), ['0.0.0.0', '8080'], pipes)
  const TP = await ready(target)
  // synmux: secure (default) and --insecure-plaintext, one client each with a forward.
  const sec = link.spawnNode('server', cli, ['server', '--listen', `${S}:9000`, ...keys.serverArgs, '--allow', `127.0.0.1:${TP}`, '--log-level', 'warn'], pipes)
  const plain = link.spawnNode('server', cli, ['server', '--listen', `${S}:9001`, '--key', psk, '--insecure-plaintext', '--allow', `127.0.0.1:${TP}`, '--log-level', 'warn'], pipes)
  await new Promise((r) => setTimeout(r, 1000))
  const secC = link.spawnNode('client', cli, ['client', '--server', `${S}:9000`, ...keys.clientArgs, '--forward', `127.0.0.1:7001=127.0.0.1:${TP}`], pipes)
  await ready(secC, /session to .* up/)
  const plainC = link.spawnNode('client', cli, ['client', '--server', `${S}:9001`, '--key', psk, '--insecure-plaintext', '--forward', `127.0.0.1:7002=127.0.0.1:${TP}`], pipes)
  await ready(plainC, /session to .* up/)
  // 'direct TCP': no tunnel, the link's own figures (2 RTT to a first byte; the link's ceiling for bulk).
  const paths = { 'synmux': { host: '127.0.0.1', port: 7001 }, 'synmux --insecure-plaintext': { host: '127.0.0.1', port: 7002 }, 'direct TCP': { host: S, port: TP } }
  // shadowsocks-libev: ss-server, and ss-local (SOCKS5) near the application, both with TCP Fast Open
  // (ss-local connects once it has the application's first bytes, so they ride in the SYN).
  if (anchor.ss) {
    const ssArgs = ['-k', 'bench-password', '-m', 'chacha20-ietf-poly1305', '--fast-open']
    link.exec('server', 'ss-server', ['-s', S, '-p', '8388', ...ssArgs], pipes)
    await new Promise((r) => setTimeout(r, 300))
    link.exec('client', 'ss-local', ['-s', S, '-p', '8388', '-l', '7003', '-b', '127.0.0.1', ...ssArgs], pipes)
    await new Promise((r) => setTimeout(r, 300))
    paths['shadowsocks-libev'] = { host: '127.0.0.1', port: 7003, socks: { host: '127.0.0.1', port: TP } }
  }
  // ssh -L with aes128-gcm@openssh.com, one SSH connection set up before measuring.
  if (anchor.ssh) {
    for (const k of ['host', 'client']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, k)])
    fs.copyFileSync(path.join(dir, 'client.pub'), path.join(dir, 'ssh_authorized_keys'))
    fs.mkdirSync('/run/sshd', { recursive: true })
    const conf = path.join(dir, 'sshd_config')
    fs.writeFileSync(conf, [`ListenAddress ${S}`, 'Port 22', `HostKey ${path.join(dir, 'host')}`, `AuthorizedKeysFile ${path.join(dir, 'ssh_authorized_keys')}`, 'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', 'AllowTcpForwarding yes', 'Ciphers aes128-gcm@openssh.com', 'Compression no', 'PidFile none', ''].join('\n'))
    link.exec('server', fs.existsSync('/usr/sbin/sshd') ? '/usr/sbin/sshd' : 'sshd', ['-D', '-e', '-f', conf], pipes)
    await new Promise((r) => setTimeout(r, 300))
    link.exec('client', 'ssh', ['-N', '-L', `127.0.0.1:7004:127.0.0.1:${TP}`, '-c', 'aes128-gcm@openssh.com', '-o', 'Compression=no', '-i', path.join(dir, 'client'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-o', 'LogLevel=ERROR', `root@${S}`], pipes)
    for (let i = 0; i < 100; i++) {
      const r = await link.run('client', process.execPath, ['-e', `require('net').connect(7004,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`])
      if (r.code === 0) break
      await new Promise((r) => setTimeout(r, 100))
    }
    paths['ssh -L'] = { host: '127.0.0.1', port: 7004 }
  }
  const app = (args, timeoutMs = 600_000) =>
    link.run('client', process.execPath, [path.join(here, 'secure-tunnel', 'app.mjs'), ...args], { timeoutMs }).then((r) => {
      if (r.code !== 0) throw new Error(`app ${args[0]} failed: ${r.stderr}`)
      return JSON.parse(r.stdout.trim().split('\n').pop())
    })
  // 1 + 2: first response byte. "synmux cold": a new session per sample (in the app process).
  const cold = { server: S, serverPort: 9000, keyFile: keys.clientKeyFile, serverKey: keys.serverPublic, targetHost: '127.0.0.1', targetPort: TP }
  const ttfbPaths = { 'synmux cold': cold, 'synmux': paths.synmux, ...(paths['shadowsocks-libev'] ? { 'shadowsocks-libev': paths['shadowsocks-libev'] } : {}), 'synmux --insecure-plaintext': paths['synmux --insecure-plaintext'], ...(paths['ssh -L'] ? { 'ssh -L': paths['ssh -L'] } : {}), 'direct TCP': paths['direct TCP'] }
  const t = await app(['ttfb', JSON.stringify(ttfbPaths), String(rounds)])
  // 3: resume.
  const resume = await app(['resume', S, '9000', String(TP), keys.clientKeyFile, keys.serverPublic, String(resumeRounds)])
  // 4: bulk.
  const bulk = await app(['bulk', JSON.stringify(paths), String(bulkMiB << 20), String(bulkRounds)])
  // 5: CPU per MiB where the link is no bottleneck: a secure and a clear-text pair on the server namespace's loopback.
  const loS = link.spawnNode('server', cli, ['server', '--listen', '127.0.0.1:9100', ...keys.serverArgs, '--allow', `127.0.0.1:${TP}`, '--log-level', 'warn'], pipes)
  const loP = link.spawnNode('server', cli, ['server', '--listen', '127.0.0.1:9101', '--key', psk, '--insecure-plaintext', '--allow', `127.0.0.1:${TP}`, '--log-level', 'warn'], pipes)
  await new Promise((r) => setTimeout(r, 1000))
  const loSC = link.spawnNode('server', cli, ['client', '--server', '127.0.0.1:9100', ...keys.clientArgs, '--forward', `127.0.0.1:7101=127.0.0.1:${TP}`], pipes)
  await ready(loSC, /session to .* up/)
  const loPC = link.spawnNode('server', cli, ['client', '--server', '127.0.0.1:9101', '--key', psk, '--insecure-plaintext', '--forward', `127.0.0.1:7102=127.0.0.1:${TP}`], pipes)
  await ready(loPC, /session to .* up/)
  const loPaths = { synmux: { host: '127.0.0.1', port: 7101, pids: [loS.pid, loSC.pid] }, 'synmux --insecure-plaintext': { host: '127.0.0.1', port: 7102, pids: [loP.pid, loPC.pid] } }
  const loRun = await link.run('server', process.execPath, [path.join(here, 'secure-tunnel', 'app.mjs'), 'bulk', JSON.stringify(loPaths), String(256 << 20), String(bulkRounds)], { timeoutMs: 600_000 })
  if (loRun.code !== 0) throw new Error(`loopback bulk failed: ${loRun.stderr}`)
  const lo = JSON.parse(loRun.stdout.trim().split('\n').pop())
  for (const c of [loS, loP, loSC, loPC]) c.kill('SIGTERM')
  const inRtt = (ms) => +(ms / rtt).toFixed(3)
  const med = (k) => bulk.MiBps[k]?.median
  const ss = t.ttfb['shadowsocks-libev']?.median
  result = {
    bench: 'secure-tunnel',
    date: new Date().toISOString(),
    node: process.version,
    link: `netns + TUN forwarder (bench/lib), RTT ${rtt} ms`,
    machine: { cpus: os.cpus().length, loadBefore, loadAfter: load() },
    anchors: { 'shadowsocks-libev': anchor.ss ?? 'not installed', openssh: anchor.ssh ?? 'not installed' },
    firstResponseByte: {
      rounds,
      ms: t.ttfb,
      inRtts: Object.fromEntries(Object.entries(t.ttfb).map(([k, v]) => [k, inRtt(v.median)])),
      coldSessionEarlyData: t.coldEarlyData,
      goals: {
        'cold session <= 1.1 RTT': { value: inRtt(t.ttfb['synmux cold'].median), met: t.ttfb['synmux cold'].median <= 1.1 * rtt },
        'new connection <= 1.1 RTT': { value: inRtt(t.ttfb.synmux.median), met: t.ttfb.synmux.median <= 1.1 * rtt },
        ...(ss !== undefined ? { 'new connection <= ss-libev + 1 ms': { value: +(t.ttfb.synmux.median - ss).toFixed(3), met: t.ttfb.synmux.median <= ss + 1 } } : {}),
      },
    },
    resume: {
      rounds: resumeRounds,
      stallMs: resume.stallMs,
      resumeMs: resume.resumeMs,
      stallInRtts: inRtt(resume.stallMs.median),
      earlyData: resume.earlyData,
      goal: { 'stall <= 1.2 RTT after detection': { value: inRtt(resume.stallMs.median), met: resume.stallMs.median <= 1.2 * rtt } },
      method: 'an echo stream writes 32 bytes every 5 ms; the client resets its own connection (detection is immediate); the stall is the longest gap between two echoes around it',
    },
    bulk: {
      MiBPerTransfer: bulkMiB,
      rounds: bulkRounds,
      MiBps: bulk.MiBps,
      goals: {
        ...(med('ssh -L') ? { 'encrypted >= 1.2 x ssh -L': { value: +(med('synmux') / med('ssh -L')).toFixed(2), met: med('synmux') >= 1.2 * med('ssh -L') } } : {}),
        ...(med('shadowsocks-libev') ? { 'encrypted >= 1.5 x ss-libev': { value: +(med('synmux') / med('shadowsocks-libev')).toFixed(2), met: med('synmux') >= 1.5 * med('shadowsocks-libev') } } : {}),
        'cost against --insecure-plaintext <= 15 %': { value: +((1 - med('synmux') / med('synmux --insecure-plaintext')) * 100).toFixed(1), met: med('synmux') >= 0.85 * med('synmux --insecure-plaintext') },
      },
      method: 'download of MiBPerTransfer through each local port forward, each path once per round, the order reversed every other round; MiB/s of each transfer (connect to last byte); medians',
    },
    bulkLoopback: {
      MiBPerTransfer: 256,
      rounds: bulkRounds,
      MiBps: lo.MiBps,
      cpuMsPerMiB: lo.cpuMsPerMiB,
      encryptionCostPercent: +((1 - lo.MiBps.synmux.median / lo.MiBps['synmux --insecure-plaintext'].median) * 100).toFixed(1),
      encryptionCpuMsPerMiB: +(lo.cpuMsPerMiB.synmux.median - lo.cpuMsPerMiB['synmux --insecure-plaintext'].median).toFixed(2),
      method: 'client and server CLI on one loopback (the server namespace), no link: where the CPU is the bottleneck; cpuMsPerMiB is the client and server processes together',
    },
    notes: [
      'synmux cold: a new TunnelClient (onDemand, in the app process) per sample; its session starts with the measured connection, whose request rides in handshake message 1 (with the warm TFO cookie, in the SYN)',
      'shadowsocks-libev: ss-local (SOCKS5: the application asks it for the target first, locally) to ss-server, both --fast-open; every connection is a new TCP connection to ss-server with its request in the SYN',
      'ssh -L: OpenSSH, -c aes128-gcm@openssh.com, one SSH connection set up before measuring; each new connection opens a channel (a round trip of its own)',
      'direct TCP: the application straight to the target across the link (no tunnel): a first byte in 2 RTT; for bulk, what the link itself (a userspace TUN forwarder on the same 2 cores) carries',
      'the machine is shared (2 cores); loadBefore/loadAfter are the load averages',
    ],
  }
} finally {
  await link.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
writeResult('secure-tunnel', result)
