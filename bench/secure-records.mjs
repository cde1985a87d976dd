#!/usr/bin/env node
// bench/secure-records: bulk throughput of the secure channel's record
// layer (src/secure) over loopback TCP against plaintext passthrough, for
// both Noise AEADs (ChaChaPoly, AESGCM) and two record sizes. The sender
// runs in this process, the receiver in a child process (so encryption and
// decryption run on different cores, as they do between two machines).
// Rounds alternate the variants; round 0 is a warm-up; medians reported.
// Usage: node bench/secure-records.mjs [--mib 256] [--runs 5] [--write 65536]
// Writes bench/results/secure-records.json and prints the same JSON.
import { fork } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { derivePublicKey, secure, SECURE_PROTOCOL } from 'synmux'
import { summarize } from './lib/stats.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : dflt
}

// Fixed keys: this measures records, not key handling.
const SERVER = Buffer.alloc(32, 0x51)
const CLIENT = Buffer.alloc(32, 0x43)
const protocolFor = (aead) => SECURE_PROTOCOL.replace(/_(ChaChaPoly|AESGCM)_/, `_${aead}_`)

// Variants: [name, aead or null for plaintext, max record size]
const VARIANTS = [
  ['plaintext', null, 0],
  ['ChaChaPoly@16KiB', 'ChaChaPoly', 16384],
  ['AESGCM@16KiB', 'AESGCM', 16384],
  ['ChaChaPoly@64KiB', 'ChaChaPoly', 65519],
  ['AESGCM@64KiB', 'AESGCM', 65519],
]

if (process.argv[2] === 'sink') {
  // Child: one listener per variant; counts the bytes of each transfer and
  // reports over IPC when the sender ends.
  const ports = {}
  let pending = VARIANTS.length
  for (const [name, aead] of VARIANTS) {
    const server = net.createServer((sock) => {
      sock.setNoDelay(true)
      sock.on('error', () => {})
      const s = aead ? secure(sock, { role: 'server', staticKey: SERVER, authorize: () => 'bench', protocol: protocolFor(aead) }) : sock
      s.on('error', (err) => process.send({ error: String(err?.code ?? err) }))
      let bytes = 0
      const c0 = process.cpuUsage()
      s.on('data', (d) => (bytes += d.length))
      s.on('end', () => {
        const c = process.cpuUsage(c0)
        process.send({ bytes, cpuMs: (c.user + c.system) / 1000 })
        s.end()
      })
    })
    server.listen(0, '127.0.0.1', () => {
      ports[name] = server.address().port
      if (--pending === 0) process.send({ ports })
    })
  }
  process.on('message', (m) => m === 'exit' && process.exit(0))
} else {
  const MIB = arg('mib', 256)
  const RUNS = arg('runs', 5)
  const WRITE = arg('write', 65536)
  const TOTAL = MIB * 1024 * 1024
  const chunk = crypto.randomBytes(WRITE)
  const child = fork(fileURLToPath(import.meta.url), ['sink'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const { ports } = await new Promise((resolve) => child.once('message', resolve))
  const next = () => new Promise((resolve) => child.once('message', resolve))

  async function once([name, aead, record]) {
    const sock = net.connect({ port: ports[name], host: '127.0.0.1' })
    sock.setNoDelay(true)
    await new Promise((resolve, reject) => {
      sock.once('connect', resolve)
      sock.once('error', reject)
    })
    const w = aead ? secure(sock, { role: 'client', staticKey: CLIENT, serverKey: derivePublicKey(SERVER), maxRecordSize: record, protocol: protocolFor(aead) }) : sock
    if (aead) await new Promise((resolve, reject) => w.once('secure', resolve).once('error', reject))
    const done = next()
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    for (let sent = 0; sent < TOTAL; sent += WRITE) {
      if (!w.write(chunk)) await new Promise((r) => w.once('drain', r))
    }
    w.end()
    const r = await done
    const ms = performance.now() - t0
    const c = process.cpuUsage(c0)
    w.destroy()
    if (r.bytes !== TOTAL) throw new Error(`${name}: received ${r.bytes ?? r.error} of ${TOTAL}`)
    return { mibps: (TOTAL / 2 ** 20) / (ms / 1000), senderCpuMsPerMiB: (c.user + c.system) / 1000 / MIB, receiverCpuMsPerMiB: r.cpuMs / MIB }
  }

  const runs = Object.fromEntries(VARIANTS.map(([n]) => [n, []]))
  const cpuS = Object.fromEntries(VARIANTS.map(([n]) => [n, []]))
  const cpuR = Object.fromEntries(VARIANTS.map(([n]) => [n, []]))
  for (let round = 0; round <= RUNS; round++) {
    for (const v of VARIANTS) {
      const r = await once(v)
      if (round === 0) continue
      runs[v[0]].push(+r.mibps.toFixed(1))
      cpuS[v[0]].push(+r.senderCpuMsPerMiB.toFixed(3))
      cpuR[v[0]].push(+r.receiverCpuMsPerMiB.toFixed(3))
    }
  }
  child.send('exit')
  const results = Object.fromEntries(
    VARIANTS.map(([n]) => [
      n,
      { MiBps: summarize(runs[n]), senderCpuMsPerMiB: summarize(cpuS[n]).median, receiverCpuMsPerMiB: summarize(cpuR[n]).median },
    ]),
  )
  for (const r of Object.values(results)) r.medianMiBps = r.MiBps.median
  const costPct = (n) => +((1 - results[n].medianMiBps / results.plaintext.medianMiBps) * 100).toFixed(1)
  const out = {
    bench: 'secure-records',
    date: new Date().toISOString(),
    node: process.version,
    openssl: process.versions.openssl,
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    protocol: SECURE_PROTOCOL,
    setup: `${MIB} MiB per run over loopback TCP (127.0.0.1), ${WRITE}-byte writes with backpressure; sender (encrypts) in this process, receiver (decrypts) in a child; ${RUNS} rounds after a warm-up, every variant once per round (alternated); medians`,
    results,
    costVsPlaintextPct: Object.fromEntries(VARIANTS.slice(1).map(([n]) => [n, costPct(n)])),
    aesgcmVsChachapoly: {
      '16KiB': +(results['AESGCM@16KiB'].medianMiBps / results['ChaChaPoly@16KiB'].medianMiBps).toFixed(3),
      '64KiB': +(results['AESGCM@64KiB'].medianMiBps / results['ChaChaPoly@64KiB'].medianMiBps).toFixed(3),
    },
    notes: [
      'This is the record layer alone over one TCP connection; the tunnel targets of issue 14 (>= 1.2x ssh -L, >= 1.5x ss-libev, <= 15% cost vs --insecure-plaintext) are measured through the whole tunnel in the next stage.',
      'Two cores shared by sender, receiver and whatever else runs on the machine: compare ratios within one run.',
    ],
  }
  fs.mkdirSync(path.join(here, 'results'), { recursive: true })
  fs.writeFileSync(path.join(here, 'results', 'secure-records.json'), JSON.stringify(out, null, 2) + '\n')
  console.log(JSON.stringify(out, null, 2))
  process.exit(0)
}

