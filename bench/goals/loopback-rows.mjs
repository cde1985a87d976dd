// bench/goals rows measured on one namespace's loopback: new-connection
// rate and CPU per connection (rows 1 and 7), memory per idle tunnelled
// connection (row 3), HTTP proxy req/s under ab (row 4). Every row starts
// its systems once (row 3: afresh each round), runs a discarded warm-up
// round, then alternates the systems round by round (the order reversed
// every other round), and reports medians and quartiles.
import { execFileSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { quartiles } from '../lib/stats.mjs'
import { sample } from '../lib/procstat.mjs'
import { benchDir } from '../lib/proc.mjs'
import { HOST, buildConnload, connrate, probe, spawnIn } from './systems.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const load = () => os.loadavg().map((x) => +x.toFixed(2))
const orderOf = (list, round) => (round % 2 ? [...list].reverse() : list)

/** Median and quartiles of one field over the runs of each system. */
function bySystem(runs, names, field, digits) {
  return Object.fromEntries(names.map((n) => [n, quartiles(runs.filter((r) => r.system === n && !r.warmup).map((r) => r[field]), digits)]))
}

/** Quartiles of a / b per round (both measured in the same round). */
function perRoundRatio(runs, a, b, field, invert = false) {
  const rounds = new Set(runs.filter((r) => !r.warmup).map((r) => r.round))
  const ratios = []
  for (const round of rounds) {
    const x = runs.find((r) => r.round === round && r.system === a)?.[field]
    const y = runs.find((r) => r.round === round && r.system === b)?.[field]
    if (x > 0 && y > 0) ratios.push(invert ? y / x : x / y)
  }
  return quartiles(ratios)
}

async function startAll(ctx, link, systems, opts) {
  const started = {}
  for (const s of systems) {
    ctx.log(`  starting ${s.name}`)
    const st = await s.start(opts)
    await probe(link, st.port, st.procs)
    started[s.name] = st
  }
  return started
}

const stopAll = async (started) => {
  for (const st of Object.values(started)) for (const p of st.procs) await p.stop()
}

/**
 * Rows 1 and 7: open + REQUEST + RESPONSE + close, `concurrency` in flight,
 * `seconds` per run; rate, and CPU per connection of each system's
 * processes (their process trees, /proc utime + stime).
 */
export async function connectionRate(ctx, link, target, systems, { base, compare }) {
  const started = await startAll(ctx, link, systems, { target: target.exchangePort })
  const names = systems.map((s) => s.name)
  const runs = []
  try {
    for (let round = 0; round <= ctx.rounds; round++) {
      for (const name of orderOf(names, round)) {
        const st = started[name]
        const r = await connrate(link, { port: st.port, concurrency: ctx.concurrency, seconds: round === 0 ? Math.max(3, ctx.seconds) : ctx.seconds, request: 1024, response: 1024, pids: st.pids })
        for (const p of st.procs) if (!p.alive()) throw new Error(`${p.label} exited during the run: ${p.output()}`)
        runs.push({ round, system: name, ...(round === 0 ? { warmup: true } : {}), ...r })
        ctx.log(`  round ${round}${round === 0 ? ' (warm-up)' : ''} ${name}: ${r.perSecond}/s, ${r.cpuMsPerConnection} ms CPU/conn${r.errors + r.short ? `, ${r.errors + r.short} failed (${r.firstError})` : ''}`)
      }
    }
  } finally {
    await stopAll(started)
  }
  return {
    setup: `open + 1 KiB request + 1 KiB response + close, ${ctx.concurrency} in flight, ${ctx.seconds} s per run, ${ctx.rounds} alternated rounds after a warm-up round (at least 3 s: the JIT of the Node processes); load generator and target in C (bench/goals/connload.c, one epoll loop each, so they take little of the two cores) in the same namespace, all on its loopback; CPU = user + sys of the tunnel's processes (client and server, with their children) over the load window, divided by the connections completed`,
    systems: Object.fromEntries(systems.map((s) => [s.name, s.config])),
    perSecond: bySystem(runs, names, 'perSecond', 0),
    cpuMsPerConnection: bySystem(runs, names, 'cpuMsPerConnection', 4),
    ratioPerSecond: Object.fromEntries(compare.map((c) => [`${base} / ${c}`, perRoundRatio(runs, base, c, 'perSecond')])),
    failedConnections: Object.fromEntries(names.map((n) => [n, runs.filter((r) => r.system === n).reduce((a, r) => a + r.errors + r.short, 0)])),
    runs,
    loadAverageAfter: load(),
  }
}

/** Row 3: RSS per idle tunnelled connection, each side, at each count of `ctx.idle`. */
export async function idleMemory(ctx, link, target, systems) {
  const names = systems.map((s) => s.name)
  const holder = (port) => spawnIn(link, 'holder', [process.execPath, [path.join(benchDir, 'goals', 'hold.mjs'), HOST, String(port), '100']], { stdin: true })
  const runs = []
  for (let round = 1; round <= ctx.memoryRounds; round++) {
    for (const sys of orderOf(systems, round - 1)) {
      ctx.log(`  round ${round} ${sys.name}: fresh processes`)
      const st = await sys.start({ target: target.holdPort })
      try {
        // ready and warm: 200 connections held and closed (retried until the tunnel is up), then let timers and GC settle
        for (const end = Date.now() + 30_000; ; ) {
          for (const p of st.procs) if (!p.alive()) throw new Error(`${p.label} exited: ${p.output()}`)
          const holder0 = holder(st.port)
          const ok = await holdCmd(holder0, 'open 200').then(() => true, (e) => (Date.now() > end ? Promise.reject(e) : false))
          await holder0.stop()
          if (ok) break
          await sleep(200)
        }
        await sleep(1500)
        const base = sample(st.pids)
        const idle = holder(st.port)
        const points = []
        try {
          for (const n of ctx.idle) {
            const answer = await holdCmd(idle, `open ${n}`)
            if (answer.held < n) throw new Error(`${sys.name}: ${n - answer.held} of ${n} idle connections closed by the tunnel`)
            await sleep(2000)
            const s = sample(st.pids)
            for (const p of st.procs) if (!p.alive()) throw new Error(`${p.label} exited: ${p.output()}`)
            const per = (side) => +((s[side].rssBytes - base[side].rssBytes) / n / 1024).toFixed(2)
            points.push({ connections: n, openMs: answer.ms, held: answer.held, clientKiBPerConnection: per('client'), serverKiBPerConnection: per('server'), clientRssMiB: +(s.client.rssBytes / 2 ** 20).toFixed(1), serverRssMiB: +(s.server.rssBytes / 2 ** 20).toFixed(1) })
            ctx.log(`    ${n} idle: client ${points.at(-1).clientKiBPerConnection} KiB, server ${points.at(-1).serverKiBPerConnection} KiB per connection`)
          }
        } finally {
          await idle.stop()
        }
        runs.push({ round, system: sys.name, baseRssMiB: { client: +(base.client.rssBytes / 2 ** 20).toFixed(1), server: +(base.server.rssBytes / 2 ** 20).toFixed(1) }, points })
      } finally {
        for (const p of st.procs) await p.stop()
      }
    }
  }
  const at = (n, sys, side) => quartiles(runs.filter((r) => r.system === sys).map((r) => r.points.find((p) => p.connections === n)?.[side]), 2)
  // from one count to the next: what one more idle connection costs, without the fixed steps (heap reservations) of the first ones
  const marginal = (i, sys, side) =>
    quartiles(runs.filter((r) => r.system === sys).map((r) => ((r.points[i][`${side}RssMiB`] - r.points[i - 1][`${side}RssMiB`]) * 1024) / (r.points[i].connections - r.points[i - 1].connections)), 2)
  return {
    setup: `N idle connections through the tunnel (each sent one byte and got one back, so it is set up end to end, then left idle), opened 100 at a time; RSS (VmRSS, process tree) of the tunnel's client and server processes 2 s after the last one opened, minus their RSS before (after a warm-up of 200 short connections), divided by N (marginal: the RSS growth from one count to the next, divided by the connections added); fresh processes every round; ${ctx.memoryRounds} round(s)`,
    systems: Object.fromEntries(systems.map((s) => [s.name, s.config])),
    kiBPerConnection: Object.fromEntries(ctx.idle.map((n) => [n, Object.fromEntries(names.map((sys) => [sys, { client: at(n, sys, 'clientKiBPerConnection'), server: at(n, sys, 'serverKiBPerConnection') }]))])),
    marginalKiBPerConnection: Object.fromEntries(ctx.idle.slice(1).map((n, k) => [`${ctx.idle[k]}-${n}`, Object.fromEntries(names.map((sys) => [sys, { client: marginal(k + 1, sys, 'client'), server: marginal(k + 1, sys, 'server') }]))])),
    runs,
    notes: ['RSS of a Node process includes heap that a later GC may give back; it is what the machine pays, and what ss-libev (C, no GC) is compared on'],
    loadAverageAfter: load(),
  }
}

async function holdCmd(holder, line) {
  holder.send(line)
  const m = await holder.nextLine(/^held (\d+) (\d+)|^error (.*)/)
  if (m[3]) throw new Error(`holder: ${m[3]}`)
  return { held: Number(m[1]), ms: Number(m[2]) }
}

/** ab's figures from its report. */
function parseAb(text) {
  const num = (re) => {
    const m = re.exec(text)
    return m ? Number(m[1]) : null
  }
  return {
    requestsPerSecond: num(/Requests per second:\s+([\d.]+)/),
    complete: num(/Complete requests:\s+(\d+)/),
    failed: num(/Failed requests:\s+(\d+)/),
    non2xx: num(/Non-2xx responses:\s+(\d+)/) ?? 0,
    keepAlive: num(/Keep-Alive requests:\s+(\d+)/),
    meanMs: num(/Time per request:\s+([\d.]+) \[ms\] \(mean\)/),
  }
}

/** Row 4: `ab -n N -c C [-k] -X proxy` for each proxy, with and without keep-alive. */
export async function httpProxy(ctx, link, proxies, { base, compare }) {
  const origin = spawnIn(link, 'origin', [await buildConnload(), ['http', HOST, '1024']])
  let originPort
  for (let i = 0; i < 200 && !originPort; i++) {
    originPort = Number(/ready (\d+)/.exec(origin.output())?.[1] ?? 0)
    await sleep(50)
  }
  if (!originPort) throw new Error(`origin not ready: ${origin.output()}`)
  const url = `http://${HOST}:${originPort}/1k` // connload http answers every request with a 1 KiB body
  const ab = async (port, keepAlive, n = ctx.abN) => {
    const r = await link.run('server', 'ab', ['-n', String(n), '-c', String(Math.min(n, ctx.abC)), ...(keepAlive ? ['-k'] : []), '-X', `${HOST}:${port}`, url], { timeoutMs: 300_000 })
    return { code: r.code, ...parseAb(r.stdout), ...(r.code !== 0 ? { error: r.stderr.trim().slice(-300) } : {}) }
  }
  const started = {}
  const runs = []
  try {
    for (const p of proxies) {
      ctx.log(`  starting ${p.name}`)
      const st = await p.start({ target: originPort, httpProxy: true })
      const end = Date.now() + 30_000
      for (;;) {
        const r = await ab(st.port, false, 1)
        if (r.complete === 1 && r.failed === 0 && r.non2xx === 0) break
        if (Date.now() > end) throw new Error(`${p.name}: no answer through it: ${JSON.stringify(r)} ${st.procs.map((x) => x.output().slice(-500)).join(' | ')}`)
        await sleep(200)
      }
      started[p.name] = st
    }
    const names = proxies.map((p) => p.name)
    for (let round = 0; round <= ctx.rounds; round++) {
      for (const keepAlive of round % 2 ? [true, false] : [false, true]) {
        for (const name of orderOf(names, round)) {
          const st = started[name]
          const before = sample(st.pids)
          const r = await ab(st.port, keepAlive, round === 0 ? 2 * ctx.abN : ctx.abN) // a longer warm-up: the JIT of the Node processes
          const after = sample(st.pids)
          const cpu = Object.keys(after).reduce((a, k) => a + after[k].cpuMs - before[k].cpuMs, 0)
          const mode = keepAlive ? 'keepAlive' : 'close'
          runs.push({ round, system: name, mode, ...(round === 0 ? { warmup: true } : {}), ...r, cpuMsPerRequest: r.complete ? +(cpu / r.complete).toFixed(4) : null })
          ctx.log(`  round ${round}${round === 0 ? ' (warm-up)' : ''} ${name}${keepAlive ? ' -k' : ''}: ${r.requestsPerSecond} req/s${r.failed || r.non2xx || r.code ? `, failed ${r.failed}, non-2xx ${r.non2xx}, exit ${r.code} ${r.error ?? ''}` : ''}`)
        }
      }
    }
  } finally {
    await stopAll(started)
    await origin.stop()
  }
  const names = proxies.map((p) => p.name)
  const of = (mode) => runs.filter((r) => r.mode === mode)
  const section = (mode) => ({
    requestsPerSecond: bySystem(of(mode), names, 'requestsPerSecond', 0),
    cpuMsPerRequest: bySystem(of(mode), names, 'cpuMsPerRequest', 4),
    ratio: Object.fromEntries(compare.map((c) => [`${base} / ${c}`, perRoundRatio(of(mode), base, c, 'requestsPerSecond')])),
    failedOrNon2xx: Object.fromEntries(names.map((n) => [n, of(mode).filter((r) => r.system === n).reduce((a, r) => a + (r.failed ?? 0) + (r.non2xx ?? 0), 0)])),
    keepAliveRequests: Object.fromEntries(names.map((n) => [n, quartiles(of(mode).filter((r) => r.system === n && !r.warmup).map((r) => r.keepAlive ?? 0), 0).median])),
  })
  return {
    setup: `ab -n ${ctx.abN} -c ${ctx.abC} (and with -k) -X <proxy> ${url.replace(String(originPort), 'ORIGIN')} (the origin: connload http in C, a 1 KiB body, keep-alive, so that it takes little of the two cores); everything on the namespace's loopback; ${ctx.rounds} alternated rounds after a warm-up round (twice the requests)`,
    ab: execFileSync('ab', ['-V'], { encoding: 'utf8' }).split('\n')[0],
    systems: Object.fromEntries(proxies.map((p) => [p.name, p.config])),
    close: section('close'),
    keepAlive: section('keepAlive'),
    runs,
    loadAverageAfter: load(),
  }
}
