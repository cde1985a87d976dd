// bench/secure-tunnel application (client namespace). Modes:
//   ttfb <pathsJson> <rounds>: time from connect() to the first response byte through each path
//     (paths: {name: {host, port}}), interleaved rounds; a path named "synmux cold" is special:
//     each of its samples goes through a new TunnelClient (--on-demand, in this process) whose
//     session starts with that connection (the TFO cookie is warm: a warm-up session ran first).
//   resume <server> <port> <targetPort> <keyFile> <serverKey> <rounds>: an echo stream through a
//     TunnelClient; its connection is reset under it; the longest gap between echoes (the stall).
//   bulk <pathsJson> <bytes> <rounds>: download `bytes` through each path, rounds alternated
//     (and, for a path with `pids`, the CPU those processes spent per MiB).
// Prints one JSON line.
import fs from 'node:fs'
import net from 'node:net'
import { TunnelClient, readPrivateKeyFile, decodePublicKey } from 'synmux'
import { summarize } from '../lib/stats.mjs'

const [mode, ...args] = process.argv.slice(2)
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n')
const now = () => Number(process.hrtime.bigint()) / 1e6

/**
 * Connects to a path and, for a SOCKS5 proxy (`socks: {host, port}` of the target), asks it
 * for the target first (greeting and CONNECT in one write, the replies read): resolves with
 * the socket ready for the request.
 */
function open({ host, port, socks }) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true, autoSelectFamily: false })
    s.once('error', reject)
    if (!socks) return resolve(s)
    const ip = socks.host.split('.').map(Number)
    s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, ...ip, socks.port >> 8, socks.port & 255]))
    let got = Buffer.alloc(0)
    const on = (d) => {
      got = Buffer.concat([got, d])
      if (got.length < 12) return
      s.off('data', on)
      if (got[1] !== 0 || got[3] !== 0) return reject(new Error(`SOCKS5 refused: ${got.toString('hex')}`))
      if (got.length > 12) s.unshift(got.subarray(12))
      resolve(s)
    }
    s.on('data', on)
  })
}

async function firstByte(path) {
  const t0 = now()
  const s = await open(path)
  s.write(REQUEST)
  await new Promise((resolve) => s.once('data', resolve))
  const ms = now() - t0
  s.destroy()
  return ms
}

/** A cold synmux session per sample: a new in-process client with a forward, connecting on demand. */
async function coldSynmux(c) {
  const client = new TunnelClient({ server: { host: c.server, port: c.serverPort }, secure: { staticKey: readPrivateKeyFile(c.keyFile), serverKey: decodePublicKey(c.serverKey) }, onDemand: true })
  const fwd = await client.forward({ host: '127.0.0.1', port: 0 }, { host: c.targetHost, port: c.targetPort })
  const ms = await firstByte({ host: '127.0.0.1', port: fwd.address().port })
  const info = client.session?.duplex?.info
  await client.close()
  return { ms, earlyData: info?.earlyData ?? null }
}

if (mode === 'ttfb') {
  const paths = JSON.parse(args[0])
  const rounds = Number(args[1])
  const samples = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
  const early = {}
  const one = async (k) => {
    if (k !== 'synmux cold') return firstByte(paths[k])
    const r = await coldSynmux(paths[k])
    early[r.earlyData] = (early[r.earlyData] ?? 0) + 1
    return r.ms
  }
  for (const k of Object.keys(paths)) await one(k) // warm-up (ARP, TFO cookies, sessions)
  for (let i = 0; i < rounds; i++) for (const k of Object.keys(paths)) samples[k].push(await one(k))
  console.log(JSON.stringify({ ttfb: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])), coldEarlyData: early }))
  process.exit(0)
}

if (mode === 'resume') {
  const [server, port, targetPort, keyFile, serverKey, roundsArg] = args
  const client = new TunnelClient({ server: { host: server, port: Number(port) }, secure: { staticKey: readPrivateKeyFile(keyFile), serverKey: decodePublicKey(serverKey) } }).start()
  await new Promise((r) => client.once('up', r))
  const st = await client.open({ host: '127.0.0.1', port: Number(targetPort) }, Buffer.from('ECHO\n'))
  await new Promise((r) => st.once('data', r))
  let last = now()
  let maxGap = 0
  let measuring = false
  st.on('data', () => {
    const t = now()
    if (measuring) maxGap = Math.max(maxGap, t - last)
    last = t
  })
  const timer = setInterval(() => st.write(Buffer.alloc(32, 0x61)), 5)
  await new Promise((r) => setTimeout(r, 1000))
  const stalls = []
  const resumes = []
  for (let i = 0; i < Number(roundsArg); i++) {
    const session = client.session
    const resumed = new Promise((r) => session.once('resumed', r))
    maxGap = 0
    measuring = true
    const killedAt = now()
    session.duplex.transport.resetAndDestroy() // detected at once: this side killed it
    await resumed
    resumes.push(now() - killedAt)
    await new Promise((r) => setTimeout(r, 600))
    measuring = false
    stalls.push(maxGap)
  }
  clearInterval(timer)
  console.log(JSON.stringify({ stallMs: summarize(stalls), resumeMs: summarize(resumes), earlyData: client.session.duplex.info.earlyData }))
  process.exit(0)
}

/** CPU time (user + system, ms) of process `pid` so far. */
function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100 // clock ticks of 10 ms
}

if (mode === 'bulk') {
  const paths = JSON.parse(args[0])
  const bytes = Number(args[1])
  const rounds = Number(args[2])
  const once = (path) =>
    new Promise(async (resolve, reject) => {
      const t0 = now()
      let n = 0
      const s = await open(path)
      s.write(`BULK ${bytes}\n`)
      s.on('data', (d) => (n += d.length))
      s.once('end', () => (n === bytes ? resolve((bytes / 2 ** 20) / ((now() - t0) / 1000)) : reject(new Error(`got ${n} of ${bytes} bytes`))))
      s.once('error', reject)
    })
  const mibps = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
  // With `pids` (processes of the path, in this namespace): their CPU ms per MiB carried.
  const cpu = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
  const keys = Object.keys(paths)
  for (const k of keys) await once(paths[k]) // warm-up
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? keys : [...keys].reverse()
    for (const k of order) {
      const pids = paths[k].pids ?? []
      const c0 = pids.map(cpuMs)
      mibps[k].push(await once(paths[k]))
      if (pids.length > 0) cpu[k].push(pids.map((p, j) => (cpuMs(p) - c0[j]) / (bytes / 2 ** 20)).reduce((a, b) => a + b, 0))
    }
  }
  const cpuOut = Object.fromEntries(Object.entries(cpu).filter(([, v]) => v.length > 0).map(([k, v]) => [k, summarize(v)]))
  console.log(JSON.stringify({ MiBps: Object.fromEntries(Object.entries(mibps).map(([k, v]) => [k, summarize(v)])), cpuMsPerMiB: cpuOut }))
  process.exit(0)
}
throw new Error(`unknown mode ${mode}`)
