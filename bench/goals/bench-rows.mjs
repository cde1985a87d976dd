// bench/goals rows taken from the benches that already measure them, run as
// children (JSON on their stdout, no result file written): time above one
// RTT (bench/tunnel.mjs), one stream vs raw TCP and vs yamux
// (bench/mux-throughput.mjs), striping (bench/stripe.mjs).
import { spawn } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { benchDir } from '../lib/proc.mjs'
import { quartiles } from '../lib/stats.mjs'

const load = () => os.loadavg().map((x) => +x.toFixed(2))

/** Runs bench/<script> with `args`; its stderr goes to ours, its stdout JSON is returned. */
export function runBench(ctx, script, args) {
  return new Promise((resolve, reject) => {
    ctx.log(`  node bench/${script} ${args.join(' ')}`)
    const child = spawn(process.execPath, [path.join(benchDir, script), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SYNMUX_BENCH_NO_RESULT_FILE: '1' },
    })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d) => {
      err = (err + d).slice(-4000)
      process.stderr.write(d.replace(/^(?=.)/gm, '    '))
    })
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bench/${script} exited ${code}: ${err.slice(-1500)}`))
      try {
        resolve(JSON.parse(out))
      } catch (e) {
        reject(new Error(`bench/${script}: no JSON on stdout (${e.message}): ${out.slice(-500)}`))
      }
    })
  })
}

/** Row 2: time to first byte above one RTT of a new tunnelled connection over a 50 ms link. */
export async function aboveRtt(ctx) {
  const args = ['--rtt', String(ctx.rttMs), '--far-rtt', '0', '--rounds', String(ctx.ttfbRounds), '--synmux-mode', ctx.mode.mode, '--no-install']
  if (ctx.serverArgs.length) args.push('--server-args', ctx.serverArgs.join(' '))
  if (ctx.clientArgs.length) args.push('--client-args', ctx.clientArgs.join(' '))
  const r = await runBench(ctx, 'tunnel.mjs', args)
  const run = r.runs[0]
  return {
    setup: `bench/tunnel.mjs --rtt ${ctx.rttMs} --far-rtt 0 --rounds ${ctx.ttfbRounds}: two namespaces joined by the delaying forwarder (bench/lib), the target beside the server; a new connection and its first request per sample, the paths interleaved; aboveRttMs = median time to first byte - RTT`,
    aboveRttMs: run.aboveRttMs,
    ttfbMs: run.ttfbMs,
    anchors: r.anchors,
    synmux: r.synmux,
    notes: r.notes,
    loadAverageAfter: load(),
  }
}

/** Per-round a / b from two aligned lists of per-round figures. */
const ratioQuartiles = (a = [], b = []) => quartiles(a.map((x, i) => x / b[i]).filter((x, i) => i < b.length && Number.isFinite(x)))

/** Row 5: one synmux stream vs raw TCP (64 KiB and 1 MiB writes) and vs libp2p-yamux (64 KiB). */
export async function streamThroughput(ctx) {
  const r = await runBench(ctx, 'mux-throughput.mjs', ['--mib', String(ctx.throughputMiB), '--runs', String(ctx.rounds)])
  const runsOf = (k) => r.results[k]?.runsMiBps ?? []
  return {
    setup: `bench/mux-throughput.mjs --mib ${ctx.throughputMiB} --runs ${ctx.rounds}: ${r.setup}`,
    medianMiBps: Object.fromEntries(Object.entries(r.results).map(([k, v]) => [k, v.medianMiBps ?? v.error ?? null])),
    ratioPerRound: {
      'synmux / raw @64KiB': ratioQuartiles(runsOf('synmux@64KiB'), runsOf('raw@64KiB')),
      'synmux / raw @1MiB': ratioQuartiles(runsOf('synmux@1MiB'), runsOf('raw@1MiB')),
      'synmux / yamux @64KiB': ratioQuartiles(runsOf('synmux@64KiB'), runsOf('yamux@64KiB')),
    },
    ratioOfMedians: r.ratios,
    notes: r.notes,
    loadAverageAfter: load(),
  }
}

/** Row 6: striping, 4 lanes at `cap` Mbit/s each, and one congested lane; `stripeRounds` runs of bench/stripe.mjs. */
export async function striping(ctx) {
  const runs = []
  for (let i = 0; i < ctx.stripeRounds; i++) {
    const r = await runBench(ctx, 'stripe.mjs', ['--lanes', '1,4', '--seconds', String(ctx.stripeSeconds), '--cap', '20'])
    const four = r.runs.find((x) => x.lanes === 4)
    runs.push({ fractionOfNxCap: four.fractionOfNxCap, synmuxMbit: four.synmuxMbit, baselineTcpMbit: four.baselineTcpMbit, fractionOfBaseline: four.fractionOfBaseline, congestedFractionOfHealthy: r.congested.fractionOfHealthy, congestedSynmuxMbit: r.congested.synmuxMbit, healthyLanesMbit: r.congested.healthyLanesMbit })
    ctx.log(`  stripe run ${i + 1}: 4 lanes ${four.fractionOfNxCap} of N x cap, congested ${r.congested.fractionOfHealthy} of healthy`)
  }
  const q = (k) => quartiles(runs.map((r) => r[k]))
  return {
    setup: `bench/stripe.mjs --lanes 1,4 --seconds ${ctx.stripeSeconds} --cap 20, ${ctx.stripeRounds} run(s): two namespaces, 20 ms RTT, HTB caps one class per lane port at 20 Mbit/s; plain TCP (one connection per capped port) and synmux striped alternate within each run; congested: lane 0 cut to 2 Mbit/s, compared with 3 x one capped TCP connection`,
    fractionOfNxCap: q('fractionOfNxCap'),
    fractionOfBaseline: q('fractionOfBaseline'),
    congestedFractionOfHealthy: q('congestedFractionOfHealthy'),
    runs,
    loadAverageAfter: load(),
  }
}
