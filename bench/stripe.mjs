#!/usr/bin/env node
// bench/stripe: striping against per-connection rate caps. Two namespaces
// joined by bench/lib's delaying forwarder; on the client's side the kernel's
// HTB gives every lane's local port its own class capped at --cap Mbit/s (a
// per-flow shaper), other traffic is not capped. Measured in the same run:
//   - the baseline: plain TCP connections, one per capped port (what N × cap
//     really is on this path);
//   - a synmux session striped over 1, 2, 4 and 8 lanes (4 streams sending);
//   - 4 lanes with one lane's class cut to --congested Mbit/s.
// Usage: node bench/stripe.mjs [--cap 20] [--rtt 20] [--seconds 4] [--congested 2] [--lanes 1,2,4,8]
// (--lanes: the lane counts to measure; 1 is always measured, the healthy
// lanes' capacity in the congested run is three times its baseline.)
// Writes bench/results/stripe.json and prints the same JSON.
import path from 'node:path'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { benchDir as here, listArg, numArg, waitReady, writeResult } from './lib/proc.mjs'

const capMbit = numArg('cap', 20)
const rttMs = numArg('rtt', 20)
const seconds = numArg('seconds', 4)
const congestedMbit = numArg('congested', 2)
const laneCounts = [...new Set([1, ...listArg('lanes', ['1', '2', '4', '8']).map(Number)])].sort((a, b) => a - b)
if (!laneCounts.every((n) => Number.isInteger(n) && n >= 1 && n <= 8)) throw new RangeError('--lanes takes counts from 1 to 8')
const BASE_PORT = 41000

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'stripe', skipped: cap.reason }))
  process.exit(0)
}

const link = await createDelayedLink({ rttMs, name: 'smxstripe', offload: false })
let result
try {
  const tc = async (...args) => {
    const r = await link.run('client', 'tc', args)
    if (r.code !== 0) throw new Error(`tc ${args.join(' ')}: ${r.stderr}`)
  }
  const dev = link.client.dev
  // HTB: class 1:1 for everything else (uncapped), 1:(10+i) per lane port.
  await tc('qdisc', 'replace', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '1', 'r2q', '100')
  await tc('class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '10gbit')
  const setCap = async (i, mbit, verb = 'add') => {
    await tc('class', verb, 'dev', dev, 'parent', '1:', 'classid', `1:${10 + i}`, 'htb', 'rate', `${mbit}mbit`, 'ceil', `${mbit}mbit`, 'burst', '15k', 'cburst', '15k')
  }
  for (let i = 0; i < 8; i++) {
    await setCap(i, capMbit)
    await tc('qdisc', 'add', 'dev', dev, 'parent', `1:${10 + i}`, 'handle', `${100 + i}:`, 'pfifo', 'limit', '100')
    await tc('filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'sport', String(BASE_PORT + i), '0xffff', 'flowid', `1:${10 + i}`)
  }
  const server = link.spawnNode('server', path.join(here, 'stripe', 'server.mjs'), [link.server.address], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [, muxPort, tcpPort] = await waitReady(server, /ready (\d+) (\d+)/)
  const ports = (n) => Array.from({ length: n }, (_, i) => BASE_PORT + i).join(',')
  const measure = async (mode, n) => {
    // Fresh ports each time would dodge TIME_WAIT; SO_REUSEADDR (Node's default) lets us reuse them.
    const r = await link.run('client', process.execPath, [path.join(here, 'stripe', 'client.mjs'), link.server.address, muxPort, tcpPort, mode, ports(n), String(seconds)], { timeoutMs: 120_000 })
    if (r.code !== 0) throw new Error(`client ${mode} ${n} failed: ${r.stderr}`)
    return JSON.parse(r.stdout.trim().split('\n').pop())
  }
  const runs = []
  for (const n of laneCounts) {
    const base = await measure('tcp', n)
    const mux = await measure('mux', n)
    runs.push({
      lanes: n,
      capMbit,
      idealMbit: n * capMbit,
      baselineTcpMbit: base.mbps,
      synmuxMbit: mux.mbps,
      fractionOfNxCap: +(mux.mbps / (n * capMbit)).toFixed(3),
      fractionOfBaseline: +(mux.mbps / base.mbps).toFixed(3),
      lanesInfo: mux.lanesInfo,
    })
  }
  // One congested lane: lane 0's class cut to --congested.
  await setCap(0, congestedMbit, 'change')
  const base = await measure('tcp', 4)
  const mux = await measure('mux', 4)
  await setCap(0, capMbit, 'change')
  // The healthy lanes' real capacity: three times what one capped TCP connection got above.
  const healthy = 3 * runs[0].baselineTcpMbit
  const congested = {
    lanes: 4,
    congestedLaneMbit: congestedMbit,
    healthyLanesNominalMbit: 3 * capMbit,
    healthyLanesMbit: +healthy.toFixed(2),
    baselineTcpMbit: base.mbps,
    synmuxMbit: mux.mbps,
    fractionOfHealthy: +(mux.mbps / healthy).toFixed(3),
    fractionOfHealthyNominal: +(mux.mbps / (3 * capMbit)).toFixed(3),
    lanesInfo: mux.lanesInfo,
  }
  server.kill('SIGTERM')
  result = {
    bench: 'stripe',
    date: new Date().toISOString(),
    node: process.version,
    link: { rttMs, method: 'netns + TUN forwarder (bench/lib); HTB on the client side, one class per lane port' },
    seconds,
    runs,
    congested,
    summary: {
      fractionOfNxCap: Object.fromEntries(runs.map((r) => [r.lanes, r.fractionOfNxCap])),
      congestedFractionOfHealthy: congested.fractionOfHealthy,
      goal: 'aggregate >= 0.95 of N x cap; with one congested lane >= 0.95 of the healthy lanes (issue 15)',
    },
  }
} finally {
  await link.close()
}
writeResult('stripe', result)
