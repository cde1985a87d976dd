#!/usr/bin/env node
// Resumption benchmark (issue 7).
// 1. Stall: over a namespace link with a real RTT, a stream echoes a small
//    message every 5 ms; the client RSTs its connection; the stall is the
//    longest gap between answers, reported in RTTs (goal: reconnect + 1 RTT,
//    i.e. about 2 RTT without TFO data in the SYN, 1 RTT + connect with it).
// 2. Cost: loopback throughput of one 128 MiB stream, plain session vs
//    resumable session (replay buffer bookkeeping + ACK pacing), in pairs
//    run back to back so both halves see the same machine load; goal ≤ 5 %.
//    RESUME_RUNS x RESUME_PAIRS pairs; RESUME_SKIP_STALL=1 skips part 1.
// 3. WAN cost: one 64 MiB stream over the delayed link (RTT 50 and 100 ms),
//    plain vs resumable with the default 4 MiB replay buffer, which bounds
//    the bytes in flight (about REPLAY_BUFFER per RTT); RESUME_SKIP_WAN=1
//    skips it.
// JSON on stdout and in bench/results/resume.json.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Session, SessionRegistry, createConnection } from 'synmux'

const here = path.dirname(fileURLToPath(import.meta.url))
const [mode, ...args] = process.argv.slice(2)

async function stallServer(port) {
  const registry = new SessionRegistry({ resumption: {} })
  registry.on('session', (s) => s.on('stream', (st) => st.pipe(st)))
  net.createServer((sock) => registry.accept(sock)).listen(port, '::')
}

async function stallClient(host, port, rtt) {
  const connect = () => createConnection({ host, port: Number(port), noDelay: true })
  const s = new Session(connect(), { role: 'client', resumption: { connect, reconnectDelay: { min: 0, max: 50 } } })
  await new Promise((r) => s.once('handshake', r))
  const st = s.open()
  let last = performance.now()
  let maxGap = 0
  let killedAt = 0
  let measuring = false
  st.on('data', () => {
    const now = performance.now()
    if (measuring) maxGap = Math.max(maxGap, now - last)
    last = now
  })
  const timer = setInterval(() => st.write(Buffer.alloc(32)), 5)
  await new Promise((r) => setTimeout(r, 1000))
  const results = []
  for (let i = 0; i < 5; i++) {
    maxGap = 0
    measuring = true
    killedAt = performance.now()
    const resumed = new Promise((r) => s.once('resumed', r))
    s.duplex.resetAndDestroy()
    await resumed
    const resumeMs = performance.now() - killedAt
    await new Promise((r) => setTimeout(r, 10 * Number(rtt) + 200))
    measuring = false
    results.push({ stallMs: +maxGap.toFixed(1), resumeMs: +resumeMs.toFixed(1) })
  }
  clearInterval(timer)
  process.stdout.write(JSON.stringify(results) + '\n')
  process.exit(0)
}

async function throughput(resumable, bytes) {
  const server = net.createServer()
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const registry = new SessionRegistry({ resumption: {} })
  server.on('connection', (sock) => {
    if (resumable) registry.accept(sock)
    else new Session(sock, { role: 'server' }).on('stream', (st) => st.resume().on('end', () => st.end()))
  })
  registry.on('session', (s) => s.on('stream', (st) => st.resume().on('end', () => st.end())))
  const sock = net.connect(server.address().port, '127.0.0.1')
  const s = new Session(sock, { role: 'client', ...(resumable ? { resumption: {} } : {}) })
  await new Promise((r) => s.once('handshake', r))
  const st = s.open()
  const block = Buffer.alloc(256 * 1024, 1)
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const done = new Promise((r) => st.on('end', r))
  st.resume()
  for (let sent = 0; sent < bytes; sent += block.length) {
    if (!st.write(block)) await new Promise((r) => st.once('drain', r))
  }
  st.end()
  await done
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(c0)
  const stats = s.stats()
  s.destroy()
  server.close()
  await registry.close()
  return {
    MBps: bytes / (ms / 1000) / 1e6,
    // Bytes per CPU second (user + system of this process, both ends): less
    // sensitive than wall time to other load on a shared machine.
    cpuMBps: bytes / ((cpu.user + cpu.system) / 1e6) / 1e6,
    replayMax: stats.replayMax,
  }
}

const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
const quart = (a) => {
  const s = [...a].sort((x, y) => x - y)
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  return { min: +s[0].toFixed(2), q1: +q(0.25).toFixed(2), median: +q(0.5).toFixed(2), q3: +q(0.75).toFixed(2), max: +s.at(-1).toFixed(2) }
}

// One measurement: `pairs` plain/resumable transfers back to back (order
// alternating), after one discarded warm-up pair. The cost is taken per pair
// (both halves ran under the same load) and summarized by its median.
async function costRun(pairs, bytes) {
  await throughput(false, bytes)
  await throughput(true, bytes)
  const plain = []
  const res = []
  const cost = []
  const cpuCost = []
  let replayMax = 0
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? [false, true] : [true, false]
    const r = {}
    for (const resumable of order) r[resumable] = await throughput(resumable, bytes)
    plain.push(r.false.MBps)
    res.push(r.true.MBps)
    cost.push((1 - r.true.MBps / r.false.MBps) * 100)
    cpuCost.push((1 - r.true.cpuMBps / r.false.cpuMBps) * 100)
    replayMax = Math.max(replayMax, r.true.replayMax)
  }
  return {
    plainMBps: +med(plain).toFixed(1),
    resumableMBps: +med(res).toFixed(1),
    costPercent: +med(cost).toFixed(1),
    costPercentSpread: quart(cost),
    cpuCostPercent: +med(cpuCost).toFixed(1),
    cpuCostPercentSpread: quart(cpuCost),
    replayMaxBytes: replayMax,
    samples: { plain: plain.map((x) => +x.toFixed(1)), resumable: res.map((x) => +x.toFixed(1)) },
  }
}

// WAN cost: the same transfer over the delayed link. A plain session's
// in-flight data is bounded by the stream window (up to maxWindow, 16 MiB);
// a resumable one's also by the replay buffer (REPLAY_BUFFER per RTT).
async function wanServer(port) {
  const sink = (st) => st.resume().on('end', () => st.end())
  const registry = new SessionRegistry({ resumption: { replayBuffer: Number(args[1]) } })
  registry.on('session', (s) => s.on('stream', sink))
  net.createServer((sock) => registry.accept(sock)).listen(port, '::')
  net.createServer((sock) => new Session(sock, { role: 'server' }).on('stream', sink)).listen(port + 1, '::')
}

async function wanClient(host, port, kind, replayBuffer, mib) {
  const resumable = kind === 'resumable'
  const sock = net.connect(Number(port) + (resumable ? 0 : 1), host)
  const s = new Session(sock, { role: 'client', ...(resumable ? { resumption: { replayBuffer: Number(replayBuffer) } } : {}) })
  await new Promise((r) => s.once('handshake', r))
  const st = s.open()
  const bytes = Number(mib) * 1024 * 1024
  const block = Buffer.alloc(256 * 1024, 1)
  const t0 = performance.now()
  const done = new Promise((r) => st.on('end', r))
  st.resume()
  for (let sent = 0; sent < bytes; sent += block.length) {
    if (!st.write(block)) await new Promise((r) => st.once('drain', r))
  }
  st.end()
  await done
  const ms = performance.now() - t0
  process.stdout.write(JSON.stringify({ MBps: bytes / (ms / 1000) / 1e6, replayMax: s.stats().replayMax }) + '\n')
  s.destroy()
  process.exit(0)
}

if (mode === 'stall-server') await stallServer(Number(args[0]))
else if (mode === 'wan-server') await wanServer(Number(args[0]))
else if (mode === 'wan-client') await wanClient(...args)
else if (mode === 'stall-client') await stallClient(...args)
else {
  const out = { bench: 'resume', date: new Date().toISOString(), node: process.version }
  // Cost: RESUME_RUNS runs (default 5) of RESUME_PAIRS pairs (default 21) of 128 MiB.
  const bytes = 128 * 1024 * 1024
  const pairs = Number(process.env.RESUME_PAIRS ?? 21)
  const runs = []
  for (let i = 0; i < Number(process.env.RESUME_RUNS ?? 5); i++) runs.push(await costRun(pairs, bytes))
  out.throughput = {
    bytesPerTransfer: bytes,
    pairsPerRun: pairs,
    method: 'per pair: 1 - resumable/plain (MB/s, same process, loopback, plain and resumable back to back); costPercent = median over the pairs of a run',
    // Median over the runs of each run's median pair cost, and every run's figure.
    costPercent: med(runs.map((r) => r.costPercent)),
    costPercentByRun: runs.map((r) => r.costPercent),
    cpuCostPercent: med(runs.map((r) => r.cpuCostPercent)),
    cpuCostPercentByRun: runs.map((r) => r.cpuCostPercent),
    goalPercent: 5,
    runs,
  }
  // Stall over a delayed namespace link.
  const { canCreateNamespaces, createDelayedLink } = await import('./lib/netns.mjs')
  const cap = canCreateNamespaces()
  if (process.env.RESUME_SKIP_STALL === '1') out.stall = { skipped: 'RESUME_SKIP_STALL=1' }
  else if (!cap.ok) out.stall = { skipped: cap.reason }
  else {
    out.stall = []
    for (const rttMs of [20, 50]) {
      const link = await createDelayedLink({ rttMs })
      try {
        link.spawnNode('server', path.join(here, 'resume.mjs'), ['stall-server', '9600'])
        await new Promise((r) => setTimeout(r, 500))
        const r = await link.run('client', process.execPath, [path.join(here, 'resume.mjs'), 'stall-client', link.server.address, '9600', String(rttMs)], { timeoutMs: 60_000 })
        const runs = JSON.parse(r.stdout.trim().split('\n').pop())
        const stalls = runs.map((x) => x.stallMs)
        out.stall.push({ rttMs, runs, medianStallMs: med(stalls), medianStallRtts: +(med(stalls) / rttMs).toFixed(2), goal: 'reconnect (1 RTT) + 1 RTT = 2 RTT' })
      } finally {
        await link.close()
      }
    }
  }
  // WAN cost: plain vs resumable (default 4 MiB replay buffer) over the delayed link.
  if (process.env.RESUME_SKIP_WAN === '1') out.wan = { skipped: 'RESUME_SKIP_WAN=1' }
  else if (!cap.ok) out.wan = { skipped: cap.reason }
  else {
    out.wan = []
    for (const rttMs of [50, 100]) {
      const link = await createDelayedLink({ rttMs })
      try {
        const replayBuffer = 4 * 1024 * 1024
        link.spawnNode('server', path.join(here, 'resume.mjs'), ['wan-server', '9700', String(replayBuffer)])
        await new Promise((r) => setTimeout(r, 500))
        const one = async (kind) => {
          const r = await link.run('client', process.execPath, [path.join(here, 'resume.mjs'), 'wan-client', link.server.address, '9700', kind, String(replayBuffer), '64'], { timeoutMs: 120_000 })
          return JSON.parse(r.stdout.trim().split('\n').pop())
        }
        const plain = []
        const res = []
        let replayMax = 0
        for (let i = 0; i < 3; i++) {
          plain.push((await one('plain')).MBps)
          const r = await one('resumable')
          res.push(r.MBps)
          replayMax = Math.max(replayMax, r.replayMax)
        }
        out.wan.push({
          rttMs,
          bytesPerTransfer: 64 * 1024 * 1024,
          replayBuffer,
          plainMBps: +med(plain).toFixed(1),
          resumableMBps: +med(res).toFixed(1),
          costPercent: +((1 - med(res) / med(plain)) * 100).toFixed(1),
          replayMaxBytes: replayMax,
          samples: { plain: plain.map((x) => +x.toFixed(1)), resumable: res.map((x) => +x.toFixed(1)) },
        })
      } finally {
        await link.close()
      }
    }
  }
  const json = JSON.stringify(out, null, 2)
  process.stdout.write(json + '\n')
  fs.mkdirSync(path.join(here, 'results'), { recursive: true })
  fs.writeFileSync(path.join(here, 'results', 'resume.json'), json + '\n')
}
