#!/usr/bin/env node
// bench/tfo-connect: time to first response byte of connectWithData (data in
// the SYN) vs net.connect + write, over a link with a real delay: two network
// namespaces joined by bench/lib's TUN forwarder (this kernel has no netem).
// Usage: node bench/tfo-connect.mjs [--rtt 50] [--rounds 20]
// Writes bench/results/tfo-connect.json and prints the same JSON.
import path from 'node:path'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { benchDir as here, numArg, waitReady, writeResult } from './lib/proc.mjs'

const rttMs = numArg('rtt', 50)
const rounds = numArg('rounds', 20)

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'tfo-connect', skipped: cap.reason }))
  process.exit(0)
}

const link = await createDelayedLink({ rttMs, name: 'smxtfo' })
let result
try {
  const server = link.spawnNode('server', path.join(here, 'tfo-connect', 'server.mjs'), [link.server.address], { stdio: ['ignore', 'pipe', 'pipe'] })
  const port = Number((await waitReady(server, /ready (\d+)/))[1])
  const r = await link.run('client', process.execPath, [path.join(here, 'tfo-connect', 'client.mjs'), link.server.address, String(port), String(rounds)], { timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`client failed: ${r.stderr}`)
  const client = JSON.parse(r.stdout.trim().split('\n').pop())
  const serverStats = await new Promise((resolve) => {
    let err = ''
    server.stderr.on('data', (d) => (err += d))
    server.once('exit', () => resolve(JSON.parse(err.trim().split('\n').pop() || '{}')))
    server.kill('SIGTERM')
  })
  const t = client.ttfbMs
  result = {
    bench: 'tfo-connect',
    date: new Date().toISOString(),
    node: process.version,
    link: { rttMs, method: 'netns + TUN forwarder (bench/lib)' },
    rounds,
    ...client,
    server: serverStats,
    summary: {
      connectWithDataMedianMs: t.connectWithData.median,
      netConnectMedianMs: t['net.connect+write'].median,
      savedMs: +(t['net.connect+write'].median - t.connectWithData.median).toFixed(3),
      inRtts: {
        connectWithData: +(t.connectWithData.median / rttMs).toFixed(2),
        'net.connect+write': +(t['net.connect+write'].median / rttMs).toFixed(2),
      },
    },
  }
} finally {
  await link.close()
}
writeResult('tfo-connect', result)
