#!/usr/bin/env node
// Self-check of the delayed-link harness.  Run as root:
//   node bench/lib/selftest.mjs [--rtt 40] [--bulk-mib 50]
// Prints one JSON object on stdout, a "N passed, N failed" line on stderr, and
// exits non-zero if a check failed.  Exits 0 with {"skipped":...} when this
// machine cannot create namespaces (not root, no ip, no /dev/net/tun, no cc).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { canCreateNamespaces, createDelayedLink } from './netns.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROBE = path.join(HERE, 'nsprobe.mjs');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RTT = opt('--rtt', 40);
const BULK = opt('--bulk-mib', 50) * 1024 * 1024;
const TOLERANCE_MS = 5;
const PORT = 5001;

const result = { ok: false, rttTargetMs: RTT, netem: netemStatus() };
const checks = [];
const check = (name, pass, detail) => {
  checks.push({ name, pass: Boolean(pass), ...(detail === undefined ? {} : { detail }) });
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

// netem is not available on our kernel; record what a probe says (no namespace
// is touched by this: tc on a throwaway namespace created and deleted here).
function netemStatus() {
  const ns = `smxnetem-${process.pid}`;
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) return 'unknown (cannot create netns)';
  try {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'], { encoding: 'utf8' });
    if (r.error) return `unknown (${r.error.code})`;
    return r.status === 0 ? 'available' : `unavailable: ${(r.stderr || '').trim()}`;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

function cpuMs(pid) {
  // first field of schedstat: nanoseconds on CPU
  return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

function lines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8').on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (l.trim()) onLine(l);
    }
  });
}

function hasPing() {
  return spawnSync('ping', ['-V']).status === 0;
}

async function pingStats(link, addr, count = 5) {
  const r = await link.run('client', 'ping', ['-n', '-q', '-c', String(count), '-i', '0.2', '-W', '2', addr]);
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(r.stdout);
  const loss = /(\d+(?:\.\d+)?)% packet loss/.exec(r.stdout);
  return {
    lossPct: loss ? Number(loss[1]) : 100,
    ...(m ? { minMs: Number(m[1]), avgMs: Number(m[2]), maxMs: Number(m[3]), mdevMs: Number(m[4]) } : {}),
  };
}

async function probe(link, ns, ...a) {
  const r = await link.run(ns, process.execPath, [PROBE, ...a.map(String)], { timeoutMs: 150_000 });
  const last = r.stdout.trim().split('\n').pop() || '{}';
  let j;
  try { j = JSON.parse(last); } catch { j = { error: `bad output: ${r.stdout} ${r.stderr}` }; }
  if (r.code !== 0 && !j.error) j.error = `exit ${r.code ?? r.signal}: ${r.stderr.trim()}`;
  return j;
}

async function bulk(link, addr) {
  const pid = link.forwarderPid;
  const c0 = cpuMs(pid);
  const t0 = performance.now();
  const j = await probe(link, 'client', 'bulk', addr, PORT, BULK);
  const wall = performance.now() - t0;
  const c1 = cpuMs(pid);
  return { ...j, forwarderCpuPctOfOneCore: round(((c1 - c0) / wall) * 100, 1) };
}

async function main() {
  const cap = canCreateNamespaces();
  if (!cap.ok) {
    process.stdout.write(`${JSON.stringify({ skipped: true, reason: cap.reason })}\n`);
    process.stderr.write('0 passed, 0 failed, 1 skipped\n');
    return 0;
  }
  const t0 = performance.now();
  const link = await createDelayedLink({ rttMs: RTT, name: 'smxself' });
  result.setupMs = round(performance.now() - t0, 1);
  result.link = {
    client: link.client, server: link.server, mtu: link.mtu, offload: link.offload, forwarderPid: link.forwarderPid,
  };
  let forwarderPid = link.forwarderPid;
  try {
    // TFO sysctl inside the namespaces
    const tfo = await link.run('client', 'cat', ['/proc/sys/net/ipv4/tcp_fastopen']);
    const tfoS = await link.run('server', 'cat', ['/proc/sys/net/ipv4/tcp_fastopen']);
    result.tcpFastOpenSysctl = { client: Number(tfo.stdout), server: Number(tfoS.stdout) };
    check('tcp_fastopen=3 in both namespaces', tfo.stdout.trim() === '3' && tfoS.stdout.trim() === '3');

    // server (dual stack) in the server namespace
    const server = link.spawnNode('server', PROBE, ['server', '::', PORT, 300_000], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('probe server did not start')), 10_000);
      lines(server.stdout, (l) => { if (l.includes('listening')) { clearTimeout(t); resolve(); } });
      server.on('exit', (c) => reject(new Error(`probe server exited ${c}`)));
    });

    // round trip time
    const tcp = await probe(link, 'client', 'connect', link.server.address, PORT, 5);
    result.tcpConnectMs = tcp.connectMs ? { samples: tcp.connectMs, median: median(tcp.connectMs) } : tcp;
    let measured;
    if (hasPing()) {
      result.ping = await pingStats(link, link.server.address, 5);
      measured = result.ping.avgMs;
      result.rttMethod = 'ping -c 5';
    } else {
      result.ping = 'ping not installed (apt-get install iputils-ping); using TCP connect time';
      measured = result.tcpConnectMs.median;
      result.rttMethod = 'tcp connect median';
    }
    result.rttMeasuredMs = measured;
    result.rttErrorMs = measured === undefined ? null : round(measured - RTT);
    check(`RTT ${RTT} ms within +-${TOLERANCE_MS} ms`, measured !== undefined && Math.abs(measured - RTT) <= TOLERANCE_MS, measured);
    check('TCP connect time ~ 1 RTT', tcp.connectMs && Math.abs(median(tcp.connectMs) - RTT) <= TOLERANCE_MS);

    // plain TCP connectivity, two connects each, IPv4 and IPv6
    const c4 = await probe(link, 'client', 'connect', link.server.address, PORT, 2);
    result.connectIPv4 = c4;
    check('two TCP connects over IPv4', c4.connectMs?.length === 2);
    if (link.client.address6) {
      const c6 = await probe(link, 'client', 'connect', link.server.address6, PORT, 2);
      result.connectIPv6 = c6;
      check('two TCP connects over IPv6', c6.connectMs?.length === 2);
      if (hasPing()) result.ping6 = await pingStats(link, link.server.address6, 3);
    }

    // idle CPU of the forwarder
    await sleep(300);
    const i0 = cpuMs(forwarderPid);
    await sleep(3000);
    const i1 = cpuMs(forwarderPid);
    result.forwarderIdle = { cpuMsOver3s: round(i1 - i0), cpuPct: round(((i1 - i0) / 3000) * 100, 3) };
    check('forwarder idle CPU < 0.5%', (i1 - i0) / 3000 < 0.005);

    // bulk throughput at the target RTT, then at 0 ms (ceiling of the forwarder)
    result.bulk = {};
    result.bulk[`rtt${RTT}ms`] = await bulk(link, link.server.address);
    check(`bulk ${BULK} bytes at RTT ${RTT}`, result.bulk[`rtt${RTT}ms`].bytes === BULK, result.bulk[`rtt${RTT}ms`].error);
    await link.setDelay(0);
    result.bulk.rtt0ms = await bulk(link, link.server.address);
    check('bulk at RTT 0', result.bulk.rtt0ms.bytes === BULK, result.bulk.rtt0ms.error);
    await link.setDelay(RTT);
    if (hasPing()) {
      const p = await pingStats(link, link.server.address, 3);
      result.rttAfterSetDelay = p.avgMs;
      check('setDelay(0) then setDelay(RTT) restores the RTT', p.avgMs !== undefined && Math.abs(p.avgMs - RTT) <= TOLERANCE_MS);
    }

    // blackhole: an established connection stops, then resumes
    const echo = link.spawnNode('client', PROBE, ['echo', link.server.address, PORT], { stdio: ['pipe', 'pipe', 'pipe'] });
    const echoed = new Map();
    let connected;
    const connectedP = new Promise((r) => { connected = r; });
    lines(echo.stdout, (l) => {
      const j = JSON.parse(l);
      if (j.connected) connected();
      if (j.echo) echoed.set(j.echo, performance.now());
    });
    await connectedP;
    const waitEcho = async (tag, ms) => {
      const t = performance.now();
      while (!echoed.has(tag) && performance.now() - t < ms) await sleep(5);
      return echoed.has(tag) ? echoed.get(tag) : null;
    };
    echo.stdin.write('send before\n');
    const before = await waitEcho('before', 2000);
    await link.setBlackhole(true);
    const tOn = performance.now();
    echo.stdin.write('send during\n');
    const during = await waitEcho('during', 1500);
    const pingDuring = hasPing() ? await pingStats(link, link.server.address, 2) : undefined;
    const statsOn = await link.stats();
    await link.setBlackhole(false);
    const tOff = performance.now();
    const resumed = await waitEcho('during', 10_000);
    echo.stdin.end();
    result.blackhole = {
      echoBefore: before !== null,
      echoWhileBlackholed: during !== null,
      pingLossWhileBlackholedPct: pingDuring?.lossPct,
      droppedPackets: statsOn.clientToServer.dropBlackhole + statsOn.serverToClient.dropBlackhole,
      blackholedMs: Math.round(tOff - tOn),
      resumedAfterRestoreMs: resumed === null ? null : Math.round(resumed - tOff),
    };
    check('echo works before blackhole', before !== null);
    check('no traffic while blackholed', during === null && (pingDuring === undefined || pingDuring.lossPct === 100));
    check('traffic resumes after blackhole off', resumed !== null);

    result.stats = await link.stats();
  } finally {
    await link.close();
  }

  // cleanup: namespaces gone, forwarder gone, no TUN device left anywhere
  const nsLeft = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
    .split('\n').filter((l) => l.startsWith(`${link.client.ns.slice(0, -2)}`));
  const fwdAlive = fs.existsSync(`/proc/${forwarderPid}`) &&
    !fs.readFileSync(`/proc/${forwarderPid}/stat`, 'utf8').includes(') Z ');
  const tunLeft = spawnSync('ip', ['-o', 'link', 'show', 'type', 'tun'], { encoding: 'utf8' }).stdout.trim();
  result.cleanup = { namespacesLeft: nsLeft, forwarderAlive: fwdAlive, tunDevicesInRootNs: tunLeft ? tunLeft.split('\n') : [] };
  check('namespaces deleted', nsLeft.length === 0);
  check('forwarder exited', !fwdAlive);
  check('no TUN device left', !tunLeft.includes(link.client.dev));
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  result.error = String(err?.stack ?? err);
}
if (!result.skipped && checks.length) {
  const failed = checks.filter((c) => !c.pass);
  result.ok = !result.error && failed.length === 0;
  result.checks = checks;
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.stderr.write(`${checks.length - failed.length} passed, ${failed.length} failed\n`);
  code = result.ok ? 0 : 1;
} else if (result.error) {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  code = 1;
}
process.exit(code);
