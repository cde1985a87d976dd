// bench/goals: the tunnels under test, started inside one network namespace
// (its own loopback: fixed ports collide with nothing on the machine), each
// as { name, config, start(targetPort) → { port, pids: {client, server}, stop } }.
// A system is ready once one exchange through it succeeds end to end.
import path from 'node:path'
import { benchDir, cliPath } from '../lib/proc.mjs'
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

/** Runs bench/goals/connrate.mjs in the namespace with options `o`; resolves with its JSON. */
export async function connrate(link, o, timeoutMs = 120_000) {
  const r = await link.run('server', process.execPath, [path.join(benchDir, 'goals', 'connrate.mjs'), JSON.stringify({ host: HOST, ...o })], { timeoutMs })
  const line = r.stdout.trim().split('\n').pop()
  if (r.code !== 0 || !line) throw new Error(`connrate failed (${r.code ?? r.signal}): ${r.stderr.slice(-1000)}`)
  return JSON.parse(line)
}

/** Waits until one exchange through `port` succeeds (the tunnel is up end to end). */
export async function probe(link, port, procs, { timeoutMs = 30_000 } = {}) {
  const end = Date.now() + timeoutMs
  let last
  while (Date.now() < end) {
    for (const p of procs) if (!p.alive()) throw new Error(`${p.label} exited: ${p.output()}`)
    try {
      last = await connrate(link, { port, concurrency: 1, seconds: 0.001, request: 1024, response: 1024, pids: {} })
      if (last.completed > 0) return
    } catch (e) {
      last = e.message
    }
    await sleep(200)
  }
  throw new Error(`no exchange through port ${port} within ${timeoutMs} ms: ${JSON.stringify(last)}; ${procs.map((p) => `${p.label}: ${p.output().slice(-500)}`).join(' | ')}`)
}

/** Starts the target (exchange + hold listeners) in the namespace. */
export async function startTarget(link, { request = 1024, response = 1024 } = {}) {
  const t = spawnIn(link, 'target', [process.execPath, [path.join(benchDir, 'goals', 'target.mjs'), HOST, String(request), String(response)]])
  const end = Date.now() + 20_000
  while (Date.now() < end) {
    const m = /ready (\d+) (\d+)/.exec(t.output())
    if (m) return { ...t, exchangePort: Number(m[1]), holdPort: Number(m[2]) }
    if (!t.alive()) break
    await sleep(50)
  }
  throw new Error(`target not ready: ${t.output()}`)
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
