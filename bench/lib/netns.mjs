// Delayed-link harness: two Linux network namespaces joined by a point-to-point
// link with a real, configurable round-trip delay.
//
// The kernel we run on has no netem qdisc, so the link is two TUN devices (one
// per namespace) joined by a small userspace forwarder, delaylink.c, which holds
// every packet for RTT/2 before passing it on.  The forwarder is compiled on
// first use with `cc -O2` into a cache directory keyed by the hash of its source.
//
// Node 20, ESM, no dependencies.  Needs root, iproute2 (`ip`), /dev/net/tun and
// a C compiler.  See README.md in this directory.
//
// Only addresses inside the namespaces created here are ever used:
//   IPv4: client 198.18.0.1 <-> server 198.18.0.2 (RFC 2544 benchmarking range)
//   IPv6: client fd00:5e1d::1 <-> server fd00:5e1d::2 (ULA)

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, threadId } from 'node:worker_threads';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SOURCE = path.join(HERE, 'delaylink.c');
const CFLAGS = ['-O2', '-Wall', '-std=gnu11'];

export const CLIENT_ADDRESS = '198.18.0.1';
export const SERVER_ADDRESS = '198.18.0.2';
export const CLIENT_ADDRESS6 = 'fd00:5e1d::1';
export const SERVER_ADDRESS6 = 'fd00:5e1d::2';
/** The far namespace of `link.extend()` and the server namespace's address towards it. */
export const FAR_ADDRESS = '198.19.0.2';
export const FAR_GATEWAY = '198.19.0.1';

const DEFAULT_DEV = 'dlink0';

// ---------------------------------------------------------------------------
// small process helpers

function compilerName() {
  return process.env.SYNMUX_CC || process.env.CC || 'cc';
}

/** Run a command to completion; resolve {code, signal, stdout, stderr}. Never rejects on exit status. */
export function runCommand(cmd, args = [], { input, timeoutMs = 30_000, env } = {}) {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
    } catch (err) {
      reject(err);
      return;
    }
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

async function mustRun(cmd, args, opts) {
  const r = await runCommand(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

function ipSync(args) {
  return spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.off('exit', onExit); resolve(false); }, ms);
    const onExit = () => { clearTimeout(t); resolve(true); };
    child.once('exit', onExit);
  });
}

function isRunning(child) {
  return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
}

// ---------------------------------------------------------------------------
// capability check

let capCache;

/**
 * Can this process create namespaces + TUN devices?  Returns {ok, reason}.
 * Cheap checks first, then one real `ip netns add`/`del` probe (cached).
 */
export function canCreateNamespaces() {
  if (capCache) return capCache;
  const fail = (reason) => (capCache = { ok: false, reason });
  if (process.platform !== 'linux') return fail(`not Linux (${process.platform})`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return fail(`not root (uid ${process.getuid()}); network namespaces and TUN devices need root`);
  }
  const v = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return fail('iproute2 `ip` command not found (apt-get install iproute2)');
  try {
    fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
  } catch (err) {
    return fail(`/dev/net/tun not usable: ${err.code}`);
  }
  const cc = compilerName();
  const ccv = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  if ((ccv.error || ccv.status !== 0) && !fs.existsSync(binaryPath())) {
    return fail(`C compiler \`${cc}\` not found (apt-get install gcc libc6-dev)`);
  }
  const probe = `smxprobe-${process.pid}-${threadId}-${randomBytes(3).toString('hex')}`;
  const add = ipSync(['netns', 'add', probe]);
  if (add.status !== 0) return fail(`ip netns add failed: ${(add.stderr || '').trim() || add.error}`);
  ipSync(['netns', 'del', probe]);
  return (capCache = { ok: true, reason: 'root, ip netns, /dev/net/tun and a C compiler are available' });
}

// ---------------------------------------------------------------------------
// forwarder build (cached)

let sourceHash;
function binaryPath() {
  if (!sourceHash) {
    const h = createHash('sha256');
    h.update(fs.readFileSync(SOURCE));
    h.update(`\0${compilerName()}\0${CFLAGS.join(' ')}\0${process.arch}`);
    sourceHash = h.digest('hex').slice(0, 16);
  }
  return path.join(os.tmpdir(), `synmux-delaylink-${sourceHash}`, 'delaylink');
}

let buildPromise;
/** Compile delaylink.c if needed; resolve the path of the executable. */
export function buildForwarder() {
  buildPromise ??= (async () => {
    const bin = binaryPath();
    try {
      fs.accessSync(bin, fs.constants.X_OK);
      return bin;
    } catch {}
    fs.mkdirSync(path.dirname(bin), { recursive: true });
    const tmp = `${bin}.tmp-${process.pid}-${threadId}-${randomBytes(4).toString('hex')}`;
    const r = await runCommand(compilerName(), [...CFLAGS, '-o', tmp, SOURCE], { timeoutMs: 120_000 });
    if (r.code !== 0) {
      fs.rmSync(tmp, { force: true });
      throw new Error(`compiling ${SOURCE} failed:\n${r.stderr}`);
    }
    fs.renameSync(tmp, bin); // atomic: concurrent builders all end with a complete file
    return bin;
  })();
  buildPromise.catch(() => { buildPromise = undefined; });
  return buildPromise;
}

// ---------------------------------------------------------------------------
// namespace bookkeeping and crash cleanup

const live = new Set(); // link states not yet closed
let seq = 0;
let handlersInstalled = false;
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function listNamespaces() {
  const r = ipSync(['netns', 'list']);
  if (r.status !== 0) return [];
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
}

function killNamespacePids(ns) {
  const r = ipSync(['netns', 'pids', ns]);
  if (r.status !== 0) return;
  for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    if (pid && pid !== process.pid) {
      try { process.kill(pid, 'SIGKILL'); } catch {}
    }
  }
}

/**
 * Delete namespaces `<prefix>-<pid>-...` left behind by processes that no
 * longer exist (a crashed or SIGKILLed earlier run).  Returns the names deleted.
 */
export function cleanupStale(prefix = 'smx') {
  const re = new RegExp(`^${escapeRe(prefix)}-(\\d+)-\\d+-\\d+-[cs]$`);
  const removed = [];
  for (const ns of listNamespaces()) {
    const m = re.exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    killNamespacePids(ns);
    if (ipSync(['netns', 'del', ns]).status === 0) removed.push(ns);
  }
  return removed;
}

function cleanupStateSync(st) {
  for (const c of st.children) {
    if (isRunning(c)) { try { c.kill('SIGKILL'); } catch {} }
  }
  if (st.forwarder && isRunning(st.forwarder)) {
    try { st.forwarder.kill('SIGKILL'); } catch {}
  }
  for (const ns of st.namespaces) {
    killNamespacePids(ns);
    ipSync(['netns', 'del', ns]);
  }
  st.namespaces.length = 0;
  live.delete(st);
}

function cleanupAllSync() {
  for (const st of [...live]) {
    try { cleanupStateSync(st); } catch {}
  }
}

function onSignal(sig) {
  cleanupAllSync();
  uninstallHandlers();
  // Nobody else handles this signal: behave as if we had never listened.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}
const signalHandlers = Object.fromEntries(SIGNALS.map((s) => [s, () => onSignal(s)]));

function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupAllSync);
  if (isMainThread) for (const s of SIGNALS) process.on(s, signalHandlers[s]);
}

function uninstallHandlers() {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off('exit', cleanupAllSync);
  if (isMainThread) for (const s of SIGNALS) process.off(s, signalHandlers[s]);
}

// ---------------------------------------------------------------------------
// forwarder control channel

class Control {
  constructor(child) {
    this.child = child;
    this.pending = [];
    this.buf = '';
    this.stderr = '';
    this.dead = null;
    this.readyWaiters = [];
    this.ready = false;
    child.stdout.setEncoding('utf8').on('data', (d) => this.onData(d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d;
    });
    child.stdin.on('error', () => {});
    child.on('exit', (code, signal) => {
      this.dead = new Error(
        `delaylink forwarder exited (${code ?? signal})${this.stderr ? `: ${this.stderr.trim()}` : ''}`,
      );
      for (const p of this.pending.splice(0)) p.reject(this.dead);
      for (const w of this.readyWaiters.splice(0)) w.reject(this.dead);
    });
    child.on('error', (err) => {
      this.dead ??= err;
      for (const p of this.pending.splice(0)) p.reject(err);
      for (const w of this.readyWaiters.splice(0)) w.reject(err);
    });
  }

  onData(d) {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      if (!this.ready && line === 'ready') {
        this.ready = true;
        for (const w of this.readyWaiters.splice(0)) w.resolve();
        continue;
      }
      const p = this.pending.shift();
      if (!p) continue;
      if (line.startsWith('err')) p.reject(new Error(`delaylink: ${line}`));
      else if (line.startsWith('stats ')) p.resolve(JSON.parse(line.slice(6)));
      else p.resolve(line);
    }
  }

  waitReady(ms) {
    if (this.ready) return Promise.resolve();
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`delaylink not ready after ${ms} ms: ${this.stderr}`)), ms);
      this.readyWaiters.push({
        resolve: () => { clearTimeout(t); resolve(); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
    });
  }

  send(line) {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.child.stdin.write(`${line}\n`);
    });
  }
}

// ---------------------------------------------------------------------------
// the link

const SYSCTL_VALUE = /^[\w .:/-]*$/;

/**
 * Create two namespaces joined by a delayed link.
 *
 * @param {object} [o]
 * @param {number} [o.rttMs=50]        round-trip delay added by the link (each direction rttMs/2)
 * @param {string} [o.name='smx']      namespace name prefix ([A-Za-z0-9_] recommended)
 * @param {number|{clientToServer:number, serverToClient:number}} [o.rateBps]
 *                                     optional rate limit in bytes/s (serialisation before the delay)
 * @param {number} [o.queueBytes]      drop-tail backlog limit in bytes for the rate limiter
 * @param {number} [o.mtu=1500]        MTU of the link devices
 * @param {boolean} [o.offload]        pass TSO/GSO super-packets through the forwarder
 *                                     (default: true unless rateBps is set)
 * @param {number} [o.tcpFastOpen=3]   value of net.ipv4.tcp_fastopen in both namespaces
 * @param {boolean} [o.ipv6=true]      also configure the fd00:5e1d:: pair
 * @param {Record<string,string|number>} [o.sysctls]  extra sysctls for both namespaces
 * @param {string} [o.dev='dlink0']    link device name inside each namespace
 */
export async function createDelayedLink({
  rttMs = 50,
  name = 'smx',
  rateBps,
  queueBytes,
  mtu = 1500,
  offload,
  tcpFastOpen = 3,
  ipv6 = true,
  sysctls = {},
  dev = DEFAULT_DEV,
} = {}) {
  const cap = canCreateNamespaces();
  if (!cap.ok) throw new Error(`cannot create network namespaces: ${cap.reason}`);
  if (!/^[A-Za-z0-9_]{1,32}$/.test(name)) throw new Error(`bad name ${JSON.stringify(name)}`);
  if (!/^[A-Za-z0-9_.]{1,15}$/.test(dev)) throw new Error(`bad dev ${JSON.stringify(dev)}`);
  if (!(rttMs >= 0 && rttMs <= 600_000)) throw new Error(`bad rttMs ${rttMs}`);
  const rates = rateBps == null ? [0, 0]
    : typeof rateBps === 'number' ? [rateBps, rateBps]
    : [rateBps.clientToServer ?? 0, rateBps.serverToClient ?? 0];
  if (!rates.every((r) => Number.isFinite(r) && r >= 0)) throw new Error('bad rateBps');
  offload ??= !(rates[0] > 0 || rates[1] > 0);
  const hasV6 = ipv6 && fs.existsSync('/proc/sys/net/ipv6');

  cleanupStale(name);
  const bin = await buildForwarder();

  const id = `${name}-${process.pid}-${threadId}-${++seq}`;
  const nsC = `${id}-c`;
  const nsS = `${id}-s`;
  const st = { namespaces: [], children: new Set(), forwarder: null, extraForwarders: [], closing: null };
  live.add(st);
  installHandlers();

  const link = {
    client: { ns: nsC, address: CLIENT_ADDRESS, address6: hasV6 ? CLIENT_ADDRESS6 : undefined, dev },
    server: { ns: nsS, address: SERVER_ADDRESS, address6: hasV6 ? SERVER_ADDRESS6 : undefined, dev },
    rttMs,
    rateBps: { clientToServer: rates[0], serverToClient: rates[1] },
    mtu,
    offload,
    forwarderPid: undefined,
    exec,
    run,
    spawnNode,
    setBlackhole,
    setDelay,
    setRate,
    setQueueLimit,
    stats,
    extend,
    far: undefined,
    close,
  };

  function nsName(ns) {
    if (ns === 'client' || ns === link.client) return nsC;
    if (ns === 'server' || ns === link.server) return nsS;
    if (link.far && (ns === 'far' || ns === link.far)) return link.far.ns;
    if (ns === nsC || ns === nsS || (link.far && ns === link.far.ns)) return ns;
    throw new Error(`unknown namespace ${JSON.stringify(ns)} (use 'client', 'server' or a namespace name)`);
  }

  /** Spawn `cmd args` inside a namespace (via `ip netns exec`); returns the ChildProcess. */
  function exec(ns, cmd, args = [], opts = {}) {
    if (st.closing) throw new Error('link is closed');
    const child = spawn('ip', ['netns', 'exec', nsName(ns), cmd, ...args], opts);
    st.children.add(child);
    child.on('exit', () => st.children.delete(child));
    child.on('error', () => st.children.delete(child));
    return child;
  }

  /** Run a command in a namespace to completion: {code, signal, stdout, stderr}. */
  function run(ns, cmd, args = [], { input, timeoutMs = 30_000 } = {}) {
    return new Promise((resolve, reject) => {
      const child = exec(ns, cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
      child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (e) => { clearTimeout(timer); reject(e); });
      child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
      child.stdin.on('error', () => {});
      child.stdin.end(input ?? '');
    });
  }

  /** Spawn `node scriptPath args` (this Node binary) inside a namespace. */
  function spawnNode(ns, scriptPath, args = [], opts = {}) {
    const { execArgv = [], ...rest } = opts;
    return exec(ns, process.execPath, [...execArgv, scriptPath, ...args], rest);
  }

  let control;
  const cmd = (line) => {
    if (st.closing) return Promise.reject(new Error('link is closed'));
    return control.send(line);
  };
  /** Blackhole: while on, the link silently drops everything (and what was in flight). */
  async function setBlackhole(on) { await cmd(`drop ${on ? 'on' : 'off'}`); }
  /** Change the round-trip delay; affects packets entering the link from now on. */
  async function setDelay(newRttMs) {
    if (!(newRttMs >= 0 && newRttMs <= 600_000)) throw new Error(`bad rttMs ${newRttMs}`);
    await cmd(`rtt ${newRttMs}`);
    link.rttMs = newRttMs;
  }
  /** Change the rate limit (bytes/s, 0 = none), as a number or per direction. */
  async function setRate(r) {
    const [a, b] = typeof r === 'number' ? [r, r] : [r.clientToServer ?? 0, r.serverToClient ?? 0];
    await cmd(`rate ${a} ${b}`);
    link.rateBps = { clientToServer: a, serverToClient: b };
  }
  /** Drop-tail backlog limit of the rate limiter in bytes (0 = none). */
  async function setQueueLimit(bytes) { await cmd(`queue ${bytes}`); }
  /** Forwarder counters: {blackhole, queueLimit, clientToServer:{...}, serverToClient:{...}}. */
  async function stats() {
    const s = await cmd('stats');
    return { blackhole: s.blackhole, queueLimit: s.queueLimit, clientToServer: s.aToB, serverToClient: s.bToA };
  }

  /** Stop everything started in the namespaces, the forwarder, and delete both namespaces. */
  function close() {
    st.closing ??= (async () => {
      const kids = [...st.children].filter(isRunning);
      for (const c of kids) { try { c.kill('SIGTERM'); } catch {} }
      await Promise.all(kids.map(async (c) => {
        if (!(await waitExit(c, 1000))) { try { c.kill('SIGKILL'); } catch {} await waitExit(c, 1000); }
      }));
      for (const f of [st.forwarder, ...st.extraForwarders]) {
        if (f && isRunning(f)) {
          try { f.stdin.end(); } catch {}
          if (!(await waitExit(f, 1000))) { try { f.kill('SIGKILL'); } catch {} await waitExit(f, 1000); }
        }
      }
      for (const ns of st.namespaces.splice(0)) {
        killNamespacePids(ns);
        const r = await runCommand('ip', ['netns', 'del', ns]);
        if (r.code !== 0 && listNamespaces().includes(ns)) {
          await sleep(100);
          await runCommand('ip', ['netns', 'del', ns]);
        }
      }
      live.delete(st);
      if (live.size === 0) uninstallHandlers();
    })();
    return st.closing;
  }

  /**
   * Adds a third namespace, 'far', behind the server namespace over a second
   * delayed link (its own forwarder): client — server — far. The server
   * namespace forwards between the two links, so the client reaches
   * `link.far.address` across both delays. IPv4 only.
   */
  async function extend({ rttMs: farRtt = rttMs, dev: farDev = 'dlink1' } = {}) {
    if (link.far) throw new Error('already extended');
    if (!(farRtt >= 0 && farRtt <= 600_000)) throw new Error(`bad rttMs ${farRtt}`);
    if (!/^[A-Za-z0-9_.]{1,15}$/.test(farDev)) throw new Error(`bad dev ${JSON.stringify(farDev)}`);
    const nsF = `${id}-f`;
    await mustRun('ip', ['netns', 'add', nsF]);
    st.namespaces.push(nsF);
    await mustRun('ip', ['netns', 'exec', nsF, 'sh', '-c', `printf '%s\\n' ${Number(tcpFastOpen)} > /proc/sys/net/ipv4/tcp_fastopen`]);
    await mustRun('ip', ['netns', 'exec', nsS, 'sh', '-c', "printf '1\\n' > /proc/sys/net/ipv4/ip_forward"]);
    const f = spawn(bin, ['--ns-a', `/run/netns/${nsS}`, '--dev-a', farDev, '--ns-b', `/run/netns/${nsF}`, '--dev-b', dev, '--mtu', String(mtu), '--delay-us', String(Math.round((farRtt * 1000) / 2)), ...(offload ? ['--offload'] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
    st.extraForwarders.push(f);
    await new Control(f).waitReady(10_000);
    await mustRun('ip', ['-n', nsS, 'addr', 'add', FAR_GATEWAY, 'peer', FAR_ADDRESS, 'dev', farDev]);
    await mustRun('ip', ['-n', nsF, 'addr', 'add', FAR_ADDRESS, 'peer', FAR_GATEWAY, 'dev', dev]);
    await mustRun('ip', ['-n', nsF, 'route', 'add', `${CLIENT_ADDRESS}/32`, 'dev', dev]);
    await mustRun('ip', ['-n', nsC, 'route', 'add', `${FAR_ADDRESS}/32`, 'dev', dev]);
    link.far = { ns: nsF, address: FAR_ADDRESS, gateway: FAR_GATEWAY, rttMs: farRtt, dev };
    return link.far;
  }

  try {
    for (const ns of [nsC, nsS]) {
      await mustRun('ip', ['netns', 'add', ns]);
      st.namespaces.push(ns);
    }
    // sysctls are per namespace; set them before the devices exist so that
    // net.ipv6.conf.default.* applies to the link device too.
    const sc = { 'net.ipv4.tcp_fastopen': tcpFastOpen };
    if (hasV6) sc['net.ipv6.conf.default.router_solicitations'] = 0;
    Object.assign(sc, sysctls);
    const scArgs = [];
    for (const [k, v] of Object.entries(sc)) {
      if (!/^[\w.-]+$/.test(k) || !SYSCTL_VALUE.test(String(v))) throw new Error(`bad sysctl ${k}=${v}`);
      scArgs.push(k.replaceAll('.', '/'), String(v));
    }
    const script = 'while [ $# -gt 1 ]; do printf "%s\\n" "$2" > "/proc/sys/$1" || exit 1; shift 2; done';
    await Promise.all([nsC, nsS].map((ns) =>
      mustRun('ip', ['netns', 'exec', ns, 'sh', '-c', script, 'sh', ...scArgs])));

    const fargs = [
      '--ns-a', `/run/netns/${nsC}`, '--dev-a', dev,
      '--ns-b', `/run/netns/${nsS}`, '--dev-b', dev,
      '--mtu', String(mtu),
      '--delay-us', String(Math.round((rttMs * 1000) / 2)),
    ];
    if (offload) fargs.push('--offload');
    if (queueBytes) fargs.push('--queue', String(queueBytes));
    const f = spawn(bin, fargs, { stdio: ['pipe', 'pipe', 'pipe'] });
    st.forwarder = f;
    control = new Control(f);
    await control.waitReady(10_000);
    link.forwarderPid = f.pid;
    if (rates[0] || rates[1]) await cmd(`rate ${rates[0]} ${rates[1]}`);

    const batch = (self, self6, peer, peer6) => [
      `addr add ${self} peer ${peer} dev ${dev}`,
      ...(hasV6 ? [`addr add ${self6}/64 dev ${dev} nodad`] : []),
      '',
    ].join('\n');
    await Promise.all([
      mustRun('ip', ['-n', nsC, '-batch', '-'], { input: batch(CLIENT_ADDRESS, CLIENT_ADDRESS6, SERVER_ADDRESS, SERVER_ADDRESS6) }),
      mustRun('ip', ['-n', nsS, '-batch', '-'], { input: batch(SERVER_ADDRESS, SERVER_ADDRESS6, CLIENT_ADDRESS, CLIENT_ADDRESS6) }),
    ]);
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
  return link;
}

/**
 * Convenience: create a link, run `fn(link)`, always close it.
 */
export async function withDelayedLink(opts, fn) {
  const link = await createDelayedLink(opts);
  try {
    return await fn(link);
  } finally {
    await link.close();
  }
}
