// bench/goals: the tunnels under test, started inside one network namespace
// (its own loopback: fixed ports collide with nothing on the machine), each
// as { name, config, start(targetPort) → { port, pids: {client, server}, stop } }.
// A system is ready once one exchange through it succeeds end to end.
import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { benchDir, cliPath } from '../lib/proc.mjs'
import { cpuDelta, sample } from '../lib/procstat.mjs'
import { openssh, shadowsocks, squid } from '../lib/anchors.mjs'

const HOST = '127.0.0.1'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * A process in the namespace whose last output is kept for error messages;
 * `stop()` ends it (SIGTERM, then SIGKILL) and resolves once it is gone.
 */
export function spawnIn(link, label, [cmd, args], { stdin = false } = {}) {
  const child = link.exec('server', cmd, args, { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] })
  let tail = ''
  const lines = [] // the last 1000 lines as { n, text }
  let count = 0
  let partial = ''
  const keep = (d) => {
    tail = (tail + d).slice(-4000)
    const parts = (partial + d).split('\n')
    partial = parts.pop()
    for (const text of parts) if (lines.push({ n: count++, text }) > 1000) lines.shift()
  }
  child.stdout.setEncoding('utf8').on('data', keep)
  child.stderr.setEncoding('utf8').on('data', keep)
  child.stdin?.on('error', () => {})
  child.on('error', (e) => keep(`spawn error: ${e.message}\n`))
  const gone = new Promise((r) => child.once('exit', r))
  let seen = 0
  return {
    label,
    child,
    pid: child.pid,
    output: () => tail,
    alive: () => child.exitCode === null && child.signalCode === null,
    send: (line) => child.stdin.write(line + '\n'),
    /** The next line (printed after the previous call) that matches `re`. */
    async nextLine(re, timeoutMs = 300_000) {
      const end = Date.now() + timeoutMs
      for (;;) {
        const hit = lines.find((l) => l.n >= seen && re.test(l.text))
        if (hit) {
          seen = hit.n + 1
          return re.exec(hit.text)
        }
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${label} exited: ${tail}`)
        if (Date.now() > end) throw new Error(`${label}: no line matching ${re} within ${timeoutMs} ms: ${tail.slice(-500)}`)
        await sleep(20)
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 3000)
      await gone
      clearTimeout(t)
    },
  }
}

let buildPromise
/** Compiles connload.c (once per source version, cached under $TMPDIR); resolves with the binary's path. */
export function buildConnload() {
  buildPromise ??= (async () => {
    const src = path.join(benchDir, 'goals', 'connload.c')
    const hash = crypto.createHash('sha256').update(fs.readFileSync(src)).digest('hex').slice(0, 16)
    const bin = path.join(os.tmpdir(), `synmux-connload-${hash}`, 'connload')
    if (fs.existsSync(bin)) return bin
    fs.mkdirSync(path.dirname(bin), { recursive: true })
    const tmp = `${bin}.tmp-${process.pid}`
    const cc = process.env.SYNMUX_CC || process.env.CC || 'cc'
    const r = spawnSync(cc, ['-O2', '-Wall', '-std=gnu11', '-o', tmp, src], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`compiling ${src} failed: ${r.error?.message ?? r.stderr}`)
    fs.renameSync(tmp, bin)
    return bin
  })()
  return buildPromise
}

/**
 * One load run (connload load) in the namespace: `concurrency` connections
 * in flight for `seconds`; the CPU of the `pids` groups (process trees) is
 * sampled right before and after it. Resolves with connload's JSON plus
 * cpuMs and cpuMsPerConnection.
 */
export async function connrate(link, { port, concurrency, seconds, request = 1024, response = 1024, pids = {} }, timeoutMs = 120_000) {
  const bin = await buildConnload()
  const before = sample(pids)
  const r = await link.run('server', bin, ['load', HOST, String(port), String(concurrency), String(seconds), String(request), String(response)], { timeoutMs })
  const cpu = cpuDelta(before, sample(pids))
  const line = r.stdout.trim().split('\n').pop()
  if (r.code !== 0 || !line) throw new Error(`connload failed (${r.code ?? r.signal}): ${r.stderr.slice(-1000)}`)
  const out = JSON.parse(line)
  return { ...out, cpuMs: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, +v.toFixed(1)])), cpuMsPerConnection: out.completed ? +(cpu.total / out.completed).toFixed(4) : null }
}

/** Waits until one exchange through `port` succeeds (the tunnel is up end to end). */
export async function probe(link, port, procs, { timeoutMs = 30_000 } = {}) {
  const end = Date.now() + timeoutMs
  let last
  while (Date.now() < end) {
    for (const p of procs) if (!p.alive()) throw new Error(`${p.label} exited: ${p.output()}`)
    try {
      last = await connrate(link, { port, concurrency: 1, seconds: 0 })
      if (last.completed > 0) return
    } catch (e) {
      last = e.message
    }
    await sleep(200)
  }
  throw new Error(`no exchange through port ${port} within ${timeoutMs} ms: ${JSON.stringify(last)}; ${procs.map((p) => `${p.label}: ${p.output().slice(-500)}`).join(' | ')}`)
}

/** Starts the target (connload target: exchange + hold listeners) in the namespace. */
export async function startTarget(link, { request = 1024, response = 1024 } = {}) {
  const t = spawnIn(link, 'target', [await buildConnload(), ['target', HOST, String(request), String(response)]])
  const end = Date.now() + 20_000
  while (Date.now() < end) {
    const m = /ready (\d+) (\d+)/.exec(t.output())
    if (m) return { ...t, exchangePort: Number(m[1]), holdPort: Number(m[2]) }
    if (!t.alive()) break
    await sleep(50)
  }
  throw new Error(`target not ready: ${t.output()}`)
}

/** No tunnel: the load generator straight to the target (the harness's own ceiling, for reference). */
export function directSystem() {
  return {
    name: 'direct (no tunnel)',
    reference: true,
    config: 'connload straight to the target: the ceiling of the load generator and target on this machine, not a competitor',
    async start({ target }) {
      return { port: target, procs: [], pids: {} }
    },
  }
}

let nextPort = 20000
const port = () => nextPort++

/** synmux server + synmux client --forward (and/or --http-proxy), flags from `mode`. */
export function synmuxSystem(link, { name = 'synmux', mode, serverArgs = [], clientArgs = [], allow }) {
  return {
    name,
    config: `synmux server + synmux client --forward, ${mode.description}${serverArgs.length ? `; server ${serverArgs.join(' ')}` : ''}${clientArgs.length ? `; client ${clientArgs.join(' ')}` : ''}`,
    async start({ target, httpProxy = false }) {
      const sp = port()
      const lp = port()
      const server = spawnIn(link, `${name} server`, [process.execPath, [cliPath, 'server', '--listen', `${HOST}:${sp}`, '--allow', allow ?? `${HOST}:${target}`, ...mode.serverArgs, ...serverArgs]])
      const client = spawnIn(link, `${name} client`, [process.execPath, [cliPath, 'client', '--server', `${HOST}:${sp}`, ...(httpProxy ? ['--http-proxy', `${HOST}:${lp}`] : ['--forward', `${HOST}:${lp}=${HOST}:${target}`]), ...mode.clientArgs, ...clientArgs]])
      return { port: lp, procs: [client, server], pids: { client: [client.pid], server: [server.pid] } }
    },
  }
}

/** ss-server + ss-tunnel -L (the port forward of shadowsocks-libev). */
export function shadowsocksSystem(link, dir) {
  const ss = shadowsocks(dir)
  return {
    name: 'shadowsocks-libev',
    config: `ss-server + ss-tunnel -L, ${ss.config}`,
    async start({ target }) {
      const sp = port()
      const lp = port()
      const server = spawnIn(link, 'ss-server', ss.server({ host: HOST, port: sp }))
      await sleep(100)
      const client = spawnIn(link, 'ss-tunnel', ss.tunnel({ server: HOST, serverPort: sp, listen: HOST, port: lp, target: `${HOST}:${target}` }))
      return { port: lp, procs: [client, server], pids: { client: [client.pid], server: [server.pid] } }
    },
  }
}

/** sshd + ssh -N -L. */
export function sshSystem(link, dir) {
  const ssh = openssh(dir)
  return {
    name: 'ssh -L',
    config: `sshd + ssh -N -L, ${ssh.config}`,
    async start({ target }) {
      const sp = port()
      const lp = port()
      const server = spawnIn(link, 'sshd', ssh.server({ host: HOST, port: sp }))
      await sleep(300)
      const client = spawnIn(link, 'ssh', ssh.forward({ server: HOST, port: sp, forwards: [`${HOST}:${lp}:${HOST}:${target}`] }))
      return { port: lp, procs: [client, server], pids: { client: [client.pid], server: [server.pid] } }
    },
  }
}

/** squid as a forward proxy (one process). */
export function squidSystem(link, dir) {
  const sq = squid(dir)
  return {
    name: 'squid',
    config: sq.config,
    async start() {
      const lp = port()
      const server = spawnIn(link, 'squid', sq.server({ host: HOST, port: lp }))
      return { port: lp, procs: [server], pids: { server: [server.pid] } }
    },
  }
}

export { HOST }
