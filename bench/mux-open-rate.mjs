#!/usr/bin/env node
// bench/mux-open-rate: "open a connection, send 1 KiB, get the 1 KiB echo,
// close" per second: a synmux stream over one established session vs a new
// TCP connection per exchange (net.connect) to a local echo server. Echo
// servers run in a child process; loopback TCP (127.0.0.1) only.
// Usage: node bench/mux-open-rate.mjs [--seconds 2]
// Writes bench/results/mux-open-rate.json and prints the same JSON.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Session } from 'synmux'

const here = path.dirname(fileURLToPath(import.meta.url))
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : dflt
}
const SECONDS = arg('seconds', 2)
const payload = crypto.randomBytes(1024)

const child = fork(path.join(here, 'mux', 'echo-server.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
const ports = await new Promise((resolve) => child.once('message', resolve))

function check(buf) {
  if (!buf.equals(payload)) throw new Error(`echo mismatch (${buf.length} bytes)`)
}

/** One exchange over a fresh TCP connection. */
function tcpOnce() {
  return new Promise((resolve, reject) => {
    const sock = net.connect(ports.plain, '127.0.0.1')
    sock.setNoDelay(true)
    const bufs = []
    sock.once('connect', () => sock.end(payload))
    sock.on('data', (d) => bufs.push(d))
    sock.once('end', () => {
      try {
        check(Buffer.concat(bufs))
        resolve()
      } catch (e) {
        reject(e)
      }
    })
    sock.once('error', reject)
  })
}

/** One exchange over a new stream of an established session. */
function muxOnce(session) {
  return new Promise((resolve, reject) => {
    const st = session.open({ data: payload, end: true })
    const bufs = []
    st.on('data', (d) => bufs.push(d))
    st.once('end', () => {
      try {
        check(Buffer.concat(bufs))
        resolve()
      } catch (e) {
        reject(e)
      }
    })
    st.once('error', reject)
  })
}

/**
 * Reference floor (not a competitor): 1 KiB request/response on one
 * persistent TCP connection, no open and no close. No multiplexer can open
 * a stream and echo faster than this round trip.
 */
async function persistentTcp() {
  const sock = net.connect(ports.plain, '127.0.0.1')
  sock.setNoDelay(true)
  await new Promise((r) => sock.once('connect', r))
  let want = 0
  let got = 0
  let wake = null
  sock.on('data', (d) => {
    got += d.length
    if (got >= want && wake) {
      const w = wake
      wake = null
      w()
    }
  })
  const once = () =>
    new Promise((resolve) => {
      want += payload.length
      wake = resolve
      sock.write(payload)
    })
  return { once, close: () => sock.destroy() }
}

async function measure(once, concurrency, seconds) {
  let done = 0
  let errors = 0
  let firstError = null
  const lat = []
  const end = performance.now() + seconds * 1000
  async function worker() {
    while (performance.now() < end) {
      const t = performance.now()
      try {
        await once()
        done++
        if (lat.length < 200_000) lat.push(performance.now() - t)
      } catch (e) {
        errors++
        firstError ??= String(e?.message ?? e)
        if (errors > 1000) return
      }
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  const ms = performance.now() - t0
  lat.sort((a, b) => a - b)
  const q = (p) => +(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN).toFixed(3)
  return { perSecond: Math.round(done / (ms / 1000)), completed: done, errors, firstError, latencyMs: { p50: q(0.5), p99: q(0.99) } }
}

const sock = net.connect(ports.mux, '127.0.0.1')
await new Promise((r) => sock.once('connect', r))
const session = new Session(sock, { role: 'client' })
session.on('error', () => {})
await new Promise((r) => session.once('handshake', r))

const results = {}
{
  const p = await persistentTcp()
  await measure(p.once, 1, 0.3)
  results['reference: 1 KiB ping-pong on one persistent TCP connection@c1'] = await measure(p.once, 1, SECONDS)
  p.close()
}
for (const concurrency of [1, 64]) {
  // Warm up both paths, then measure.
  await measure(() => muxOnce(session), concurrency, 0.3)
  await measure(tcpOnce, concurrency, 0.3)
  results[`synmux@c${concurrency}`] = await measure(() => muxOnce(session), concurrency, SECONDS)
  results[`net.connect@c${concurrency}`] = await measure(tcpOnce, concurrency, SECONDS)
}
const ratio = (c) => +(results[`synmux@c${c}`].perSecond / results[`net.connect@c${c}`].perSecond).toFixed(2)
const out = {
  bench: 'mux-open-rate',
  date: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  cpu: os.cpus()[0]?.model,
  setup: `open + 1 KiB echo + close; client in this process, echo servers in a child process; loopback TCP; ${SECONDS} s per measurement after a 0.3 s warm-up; c = exchanges in flight`,
  results,
  ratios: { sequential: ratio(1), concurrent64: ratio(64) },
  target: 'synmux >= 5x net.connect',
  notes: [
    'Sequentially (c1) every exchange costs one loopback round trip between two processes on the 2 cores (two wake-ups); the persistent-connection ping-pong reference is the floor for that, and net.connect on loopback adds only the kernel handshake, so c1 cannot reach 5x here. With exchanges in flight (c64) synmux batches frames per tick while every net.connect pays a handshake, accept and close.',
  ],
  sessionRttMs: +session.rtt.toFixed(3),
}
session.destroy()
child.send('exit')
fs.mkdirSync(path.join(here, 'results'), { recursive: true })
fs.writeFileSync(path.join(here, 'results', 'mux-open-rate.json'), JSON.stringify(out, null, 2) + '\n')
console.log(JSON.stringify(out, null, 2))
process.exit(0)
