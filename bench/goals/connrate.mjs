// bench/goals load generator: new connections through a tunnel's local
// port, CONCURRENCY in flight for SECONDS: connect, write REQUEST bytes,
// read the RESPONSE bytes until the far side closes, close. Samples the
// tunnel processes' CPU (/proc, their process trees) right before the first
// connection and right after the last one, so the CPU per connection
// counts only the load window.
// Usage: node connrate.mjs '{"host","port","concurrency","seconds","request","response","pids":{"client":[..],"server":[..]}}'
// Prints one JSON line.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { sample, cpuDelta } from '../lib/procstat.mjs'

const o = JSON.parse(process.argv[2])
const payload = Buffer.alloc(o.request, 0x61)
let completed = 0
let errors = 0
let short = 0
let firstError = null
const lat = []

function once() {
  return new Promise((resolve) => {
    const t0 = performance.now()
    let got = 0
    let failed = false
    const s = net.connect({ host: o.host, port: o.port, noDelay: true })
    s.write(payload)
    s.on('data', (d) => (got += d.length))
    s.on('error', (e) => {
      failed = true
      firstError ??= `${e.code ?? ''} ${e.message}`
    })
    s.on('close', () => {
      if (failed) errors++
      else if (got !== o.response) {
        short++
        firstError ??= `response of ${got} bytes, not ${o.response}`
      } else {
        completed++
        if (lat.length < 500_000) lat.push(performance.now() - t0)
      }
      resolve()
    })
  })
}

const before = sample(o.pids)
const t0 = performance.now()
const end = t0 + o.seconds * 1000
await Promise.all(
  Array.from({ length: o.concurrency }, async () => {
    // at least one connection per worker (a probe runs with seconds ~0)
    do await once()
    while (performance.now() < end && errors + short < 1000)
  }),
)
const elapsed = performance.now() - t0
const cpu = cpuDelta(before, sample(o.pids))
lat.sort((a, b) => a - b)
const q = (p) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3) : null)
console.log(
  JSON.stringify({
    completed,
    errors,
    short,
    firstError,
    seconds: +(elapsed / 1000).toFixed(3),
    perSecond: Math.round(completed / (elapsed / 1000)),
    cpuMs: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, +v.toFixed(1)])),
    cpuMsPerConnection: completed ? +(cpu.total / completed).toFixed(4) : null,
    latencyMs: { p50: q(0.5), p99: q(0.99) },
  }),
)
process.exit(0)
