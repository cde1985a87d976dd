#!/usr/bin/env node
// bench/mux-onertt: the 1-RTT property over a link with a real delay (two
// network namespaces joined by bench/lib's forwarder): time to the first
// response byte of a new connection as a multiple of the link RTT, for
// net.connect + write, a new synmux stream on an established session, and a
// brand-new synmux session (HELLO + OPEN in one flight, after TCP connect).
// Usage: node bench/mux-onertt.mjs [--rtt 50] [--rounds 15]
// Writes bench/results/mux-onertt.json and prints the same JSON.
import path from 'node:path'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { benchDir as here, numArg, waitReady, writeResult } from './lib/proc.mjs'

const rttMs = numArg('rtt', 50)
const rounds = numArg('rounds', 15)

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'mux-onertt', skipped: cap.reason }))
  process.exit(0)
}

const link = await createDelayedLink({ rttMs, name: 'smxmux' })
let result
try {
  const server = link.spawnNode('server', path.join(here, 'mux', 'onertt-server.mjs'), [link.server.address], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [, tcpPort, muxPort] = await waitReady(server, /ready (\d+) (\d+)/)
  const r = await link.run('client', process.execPath, [path.join(here, 'mux', 'onertt-client.mjs'), link.server.address, tcpPort, muxPort, String(rounds)], { timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`client failed: ${r.stderr}`)
  const client = JSON.parse(r.stdout.trim().split('\n').pop())
  server.kill('SIGTERM')
  const inRtts = Object.fromEntries(Object.entries(client.ttfbMs).map(([k, v]) => [k, +(v.median / rttMs).toFixed(3)]))
  result = {
    bench: 'mux-onertt',
    date: new Date().toISOString(),
    node: process.version,
    link: { rttMs, method: 'netns + TUN forwarder (bench/lib)' },
    rounds,
    ...client,
    summary: { medianInRtts: inRtts, goal: 'synmux new stream ≈ 1 RTT where net.connect + write takes 2' },
  }
} finally {
  await link.close()
}
writeResult('mux-onertt', result)
