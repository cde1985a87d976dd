#!/usr/bin/env node
// bench/mux-idle-memory: memory per idle open stream. A client process opens
// N streams (no data) over one loopback session to a server process; each
// process measures its own heap + external memory after GC, before and after.
// Usage: node bench/mux-idle-memory.mjs [--streams 10000]
// Writes bench/results/mux-idle-memory.json and prints the same JSON.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : dflt
}
const N = arg('streams', 10_000)
const peer = (...args) => fork(path.join(here, 'mux', 'idle-peer.mjs'), args, { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
const next = (child, key) =>
  new Promise((resolve) => {
    const on = (m) => {
      if (key in m) {
        child.off('message', on)
        resolve(m)
      }
    }
    child.on('message', on)
  })

const server = peer('server')
const { port } = await next(server, 'port')
const serverBase = next(server, 'base')
const client = peer('client', String(port))
const { base: cBase } = await next(client, 'base')
const { base: sBase } = await serverBase
client.send({ open: N })
const c = await next(client, 'after')
server.send({ measure: true })
const s = await next(server, 'after')
client.send({ exit: true })
server.send({ exit: true })

const per = (a, b) => {
  const heap = a.heapUsed - b.heapUsed
  const ext = a.external - b.external
  return { bytesPerStream: Math.round((heap + ext) / N), heapPerStream: Math.round(heap / N), externalPerStream: Math.round(ext / N), rssDeltaMiB: +((a.rss - b.rss) / 2 ** 20).toFixed(1) }
}
const out = {
  bench: 'mux-idle-memory',
  date: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  setup: `${N} idle streams (opened, accepted, no data) on one loopback session; each side in its own process; heapUsed + external after forced GC, before vs after`,
  streams: { client: c.streams, server: s.streams },
  opener: per(c.after, cBase),
  acceptor: per(s.after, sBase),
  target: '<= 3 KiB (3072 bytes) per idle stream',
}
fs.mkdirSync(path.join(here, 'results'), { recursive: true })
fs.writeFileSync(path.join(here, 'results', 'mux-idle-memory.json'), JSON.stringify(out, null, 2) + '\n')
console.log(JSON.stringify(out, null, 2))
process.exit(0)
