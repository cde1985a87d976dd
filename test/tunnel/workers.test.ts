/**
 * `synmux server --workers N` (issue 15, "Scale"): N processes share the
 * listening socket, and the kernel hands each connection to one of them.
 * A RESUME or JOIN that lands on another worker than its session's is
 * handed to that worker with the bytes already read. Each case runs the
 * real CLI on loopback, with a relay in front of the server that the test
 * uses to kill the client's connections: every new one lands wherever the
 * kernel puts it. The counters come from the server's `--metrics`
 * endpoint, which sums the workers' (prom-client's AggregatorRegistry).
 */
import crypto from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Capability, decodeHello, encodeHello, HelloExtension, HelloKind, secure, Session } from 'synmux'
import { close, listen, readAll, sha256 } from '../helpers'
import { freePort, keyFile, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from './cli'
import { Relay, until } from './pool-relay.js'
import { SecureRelay } from './secure-relay'
import { fdCount, MiB, rss } from './hostile'

let keys: SecureKeys
let echo: net.Server
let echoPort: number
/** Connections the echo target accepted. */
let echoConnections = 0

beforeAll(async () => {
  keys = secureKeys('laptop')
  echo = net.createServer({ allowHalfOpen: true }, (s) => {
    echoConnections++
    s.on('error', () => {})
    s.pipe(s)
  })
  echoPort = await listen(echo, '127.0.0.1')
})

afterAll(async () => {
  await stopAll()
  await close(echo)
})

/** Scrapes the server's /metrics: each sample by its name with labels. */
async function metrics(port: number): Promise<Map<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (r) => {
      let b = ''
      r.on('data', (d) => (b += d))
      r.on('end', () => resolve(b))
    }).on('error', reject)
  })
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (m) out.set(m[1]!, Number(m[2]))
  }
  return out
}

/** `synmux server --workers n`, its metrics port and the workers' pids (from its listening line). */
async function startServer(n: number, extra: string[] = []): Promise<{ server: Proc; port: number; metricsPort: number; pids: number[] }> {
  const port = await freePort()
  const metricsPort = await freePort()
  const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${echoPort}`, '--workers', String(n), '--metrics', `127.0.0.1:${metricsPort}`, ...extra])
  const line = await server.waitFor(new RegExp(`listening on 127\\.0\\.0\\.1:${port}, .* \\(${n} worker processes, pids [\\d, ]+;`), 20_000)
  const pids = /pids ([\d, ]+);/.exec(line)![1]!.split(', ').map(Number)
  expect(pids).toHaveLength(n)
  return { server, port, metricsPort, pids }
}

/** Kills every connection through the relay now (both sides: a dead transport); returns how many. */
function killAll(relay: Relay): number {
  let n = 0
  for (const p of relay.pairs) {
    if (!p.client.destroyed) n++
    p.client.destroy()
    p.upstream.destroy()
  }
  return n
}

/** The server's log has no stack trace or unhandled error. */
function clean(server: Proc): void {
  expect(server.log.join('\n')).not.toMatch(/Unhandled|ERR_UNHANDLED_ERROR|^\s+at /m)
}

/**
 * Sends `chunks` through `sock` (an echo through the tunnel), calling
 * `between(i)` after chunk i; resolves with what came back once the echo
 * has ended.
 */
async function echoThrough(sock: net.Socket, chunks: Buffer[], between: (i: number) => Promise<void>): Promise<Buffer> {
  const back = readAll(sock)
  for (let i = 0; i < chunks.length; i++) {
    if (!sock.write(chunks[i])) await new Promise((r) => sock.once('drain', r))
    await between(i)
  }
  sock.end()
  return back
}

describe('synmux server --workers 4', () => {
  it('a session whose connection is killed 30 times resumes every time, on whatever worker the kernel picks; 15 MiB each way intact', { timeout: 90_000 }, async () => {
    const { server, port, metricsPort } = await startServer(4)
    const relay = await new Relay(port).listen()
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${relay.port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/session to .* up/)
    const chunks = Array.from({ length: 30 }, () => crypto.randomBytes(512 << 10))
    const sock = net.connect({ port: fwd, host: '127.0.0.1', allowHalfOpen: true })
    const resumed = () => client.log.filter((l) => /resumed on a new connection/.test(l)).length
    const back = await echoThrough(sock, chunks, async (i) => {
      // Kill the session's connection while its bytes are in flight; the next chunk goes once it has resumed.
      expect(killAll(relay)).toBeGreaterThanOrEqual(1)
      await until(() => resumed() === i + 1, `resume ${i + 1}`, 20_000)
    })
    const sent = Buffer.concat(chunks)
    expect(back.length).toBe(sent.length)
    expect(sha256(back)).toBe(sha256(sent))
    expect(relay.connections).toBe(31)
    const m = await metrics(metricsPort)
    // Summed over the workers: one session, resumed 30 times; the resumes that reached another worker were handed to the session's.
    expect(m.get('synmux_resumes_total')).toBe(30)
    expect(m.get('synmux_sessions{state="established"}')).toBe(1)
    expect(m.get('synmux_workers')).toBe(4)
    const handed = m.get('synmux_handoffs_total')!
    expect(handed).toBeGreaterThanOrEqual(1)
    expect(client.log.join('\n')).not.toMatch(/session to .* (up \(reconnect|failed|lost)/)
    clean(server)
    console.log(`--workers 4: 30 kills, 30 resumes; ${handed} of them reached another worker and were handed to the session's; ${echoConnections} echo connection(s)`)
    relay.close()
  })

  it('--insecure-plaintext: the RESUME HELLO is read in clear and the connection handed on the same way', { timeout: 60_000 }, async () => {
    const psk = keyFile()
    const port = await freePort()
    const metricsPort = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, '--key', psk, '--insecure-plaintext', '--allow', `127.0.0.1:${echoPort}`, '--workers', '4', '--metrics', `127.0.0.1:${metricsPort}`])
    await server.waitFor(/INSECURE clear text .*\(4 worker processes/, 20_000)
    const relay = await new Relay(port).listen()
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${relay.port}`, '--key', psk, '--insecure-plaintext', '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/session to .* up/)
    const chunks = Array.from({ length: 12 }, () => crypto.randomBytes(256 << 10))
    const resumed = () => client.log.filter((l) => /resumed on a new connection/.test(l)).length
    const back = await echoThrough(net.connect({ port: fwd, host: '127.0.0.1', allowHalfOpen: true }), chunks, async (i) => {
      killAll(relay)
      await until(() => resumed() === i + 1, `resume ${i + 1}`, 20_000)
    })
    expect(sha256(back)).toBe(sha256(Buffer.concat(chunks)))
    const m = await metrics(metricsPort)
    expect(m.get('synmux_resumes_total')).toBe(12)
    expect(m.get('synmux_handoffs_total')).toBeGreaterThanOrEqual(1)
    clean(server)
    relay.close()
  })

  it('striping: synmux client --lanes 3, every lane (and every lane after a kill) joins the session on its worker; 8 MiB each way intact', { timeout: 60_000 }, async () => {
    const { server, port, metricsPort } = await startServer(4)
    const relay = await new Relay(port).listen()
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${relay.port}`, ...keys.client, '--lanes', '3', '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/session to .* up/)
    await until(() => relay.connections >= 3, 'three lanes')
    const lanes = async () => (await metrics(metricsPort)).get('synmux_lanes')
    const chunks = Array.from({ length: 8 }, () => crypto.randomBytes(1 << 20))
    const back = await echoThrough(net.connect({ port: fwd, host: '127.0.0.1', allowHalfOpen: true }), chunks, async (i) => {
      if (i % 2 === 1) return
      // All three connections die at once: the session resumes on a new lane 0 and joins two more, wherever they land.
      const before = relay.connections
      killAll(relay)
      await until(() => relay.connections >= before + 3, 'a resume and two joins', 20_000)
    })
    expect(sha256(back)).toBe(sha256(Buffer.concat(chunks)))
    await until(() => [...relay.pairs].filter((p) => !p.client.destroyed).length === 3, 'three lanes open')
    const m = await metrics(metricsPort)
    expect(await lanes()).toBe(3)
    expect(m.get('synmux_sessions{state="established"}')).toBe(1)
    expect(m.get('synmux_resumes_total')).toBe(4)
    // 4 × (a resume + 2 joins) + the first 2 joins: each landed on any of 4 workers.
    expect(m.get('synmux_handoffs_total')).toBeGreaterThanOrEqual(1)
    expect(client.log.join('\n')).not.toMatch(/session to .* (up \(reconnect|failed|lost)/)
    clean(server)
    console.log(`--workers 4 --lanes 3: ${relay.connections} connections, ${m.get('synmux_handoffs_total')} handed to the session's worker`)
    relay.close()
  })

  it('a worker killed with SIGKILL: the primary starts a new one; sessions on the other workers go on undisturbed', { timeout: 60_000 }, async () => {
    const { server, port, metricsPort, pids } = await startServer(4)
    const secured = (sock: net.Socket) => secure(sock, { role: 'client', staticKey: keys.clientKeys.privateKey, serverKey: keys.serverKeys.publicKey })
    /** A library session with one open echo stream, and the worker its id names (byte 11, docs/PROTOCOL.md 13.10). */
    const open = async () => {
      const session = new Session(secured(net.connect(port, '127.0.0.1')), { role: 'client' })
      session.on('error', () => {})
      await new Promise((r) => session.once('handshake', r))
      const stream = session.open({ target: { host: '127.0.0.1', port: echoPort } })
      stream.on('error', () => {})
      const got: Buffer[] = []
      stream.on('data', (d: Buffer) => got.push(d))
      const ping = async (text: string) => {
        got.length = 0
        stream.write(text)
        await until(() => Buffer.concat(got).toString() === text, `echo of ${text}`)
      }
      await ping('hello')
      return { session, stream, ping, worker: session.id![11]! }
    }
    const sessions = []
    for (let i = 0; i < 12; i++) sessions.push(await open())
    const victim = sessions[0]!.worker
    const survivors = sessions.filter((s) => s.worker !== victim)
    expect(survivors.length).toBeGreaterThanOrEqual(1)
    process.kill(pids[victim]!, 'SIGKILL')
    await server.waitFor(new RegExp(`worker ${victim} \\(pid ${pids[victim]}\\) was killed by SIGKILL; its sessions are lost; starting a new worker ${victim}`))
    // Its sessions end (their connection is gone); every other session's stream still echoes.
    await until(() => sessions.filter((s) => s.worker === victim).every((s) => s.session.destroyed), "the killed worker's sessions end")
    for (const s of survivors) await s.ping(`still here ${s.worker}`)
    expect(survivors.every((s) => !s.session.destroyed)).toBe(true)
    const up = await server.waitFor(new RegExp(`worker ${victim} \\(pid (\\d+)\\) is up again`), 20_000)
    expect(Number(/pid (\d+)/.exec(up)![1])).not.toBe(pids[victim])
    // The new worker serves: new sessions land on it too.
    let fresh
    for (let i = 0; i < 60 && fresh?.worker !== victim; i++) {
      fresh?.session.destroy()
      fresh = await open()
    }
    expect(fresh!.worker).toBe(victim)
    await fresh!.ping('new worker')
    const m = await metrics(metricsPort)
    expect(m.get('synmux_worker_restarts')).toBe(1)
    expect(m.get('synmux_workers')).toBe(4)
    for (const s of [...sessions, fresh!]) s.session.destroy()
    expect(server.child.exitCode).toBe(null)
  })

  it('a SIGTERM while the workers start waits until they all listen, then drains them: exit 0', { timeout: 30_000 }, async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${echoPort}`, '--workers', '4', '--log-level', 'debug'])
    // Worker 0 listens (and says so at debug level) before the others start.
    await server.waitFor(/debug server: listening on/, 20_000)
    const exited = new Promise<number | null>((r) => server.child.once('exit', (code) => r(code)))
    server.child.kill('SIGTERM')
    expect(await exited).toBe(0)
    const log = server.log.join('\n')
    expect(log).toMatch(/info server: listening on .*\(4 worker processes/)
    expect(server.log.filter((l) => /SIGTERM: draining: not accepting new connections/.test(l))).toHaveLength(4)
  })

  it('new sessions go to the worker with the fewest, wherever the kernel hands their connection', { timeout: 60_000 }, async () => {
    const { server, port, metricsPort } = await startServer(4)
    const sessions: Session[] = []
    const byWorker = () => {
      const n = [0, 0, 0, 0]
      for (const s of sessions) n[s.id![11]!]!++
      return n
    }
    for (let i = 0; i < 8; i++) {
      const session = new Session(secure(net.connect(port, '127.0.0.1'), { role: 'client', staticKey: keys.clientKeys.privateKey, serverKey: keys.serverKeys.publicKey }), { role: 'client' })
      session.on('error', () => {})
      await new Promise((r) => session.once('handshake', r))
      sessions.push(session)
      // (each worker hears of the others' sessions within a few ms)
      await new Promise((r) => setTimeout(r, 50))
    }
    const n = byWorker()
    expect(Math.max(...n) - Math.min(...n), `sessions per worker ${n.join('/')}`).toBeLessThanOrEqual(1)
    const m = await metrics(metricsPort)
    expect(m.get('synmux_sessions{state="established"}')).toBe(8)
    console.log(`--workers 4: 8 new sessions placed ${n.join('/')}; ${m.get('synmux_sessions_moved_total')} moved from the worker the kernel picked`)
    for (const s of sessions) s.destroy()
    clean(server)
  })

  it('a flood of resumes of sessions that do not exist, naming every worker: each handed on and refused; descriptors come back, memory stays bounded, the server serves', { timeout: 90_000 }, async () => {
    const { server, port, metricsPort } = await startServer(4)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/session to .* up/)
    // (the primary and its workers)
    const pid = server.child.pid!
    const baseline = { fds: fdCount(pid), rss: rss(pid) }
    /** An authorized client's first flight: a RESUME of a made-up session that names worker `w` (PROTOCOL.md 13.10's layout). */
    const resume = (w: number) =>
      new Promise<number>((resolve, reject) => {
        const id = crypto.randomBytes(32)
        id[10] = 0x01
        id[11] = w
        id.fill(0, 12)
        const ch = secure(net.connect(port, '127.0.0.1'), { role: 'client', staticKey: keys.clientKeys.privateKey, serverKey: keys.serverKeys.publicKey })
        ch.on('error', () => {})
        ch.write(encodeHello({ kind: HelloKind.RESUME, role: 'client', capabilities: Capability.RESUME, sessionId: id, initialWindow: 256 << 10, maxFrameSize: 16 << 10, maxStreams: 64, extensions: [[HelloExtension.RECEIVED, Buffer.alloc(8)], [HelloExtension.REPLAY_BUFFER, Buffer.from([0, 0x40, 0, 0])]] }))
        let got = Buffer.alloc(0)
        const t = setTimeout(() => reject(new Error('no answer to a RESUME')), 10_000)
        ch.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d])
          const r = decodeHello(got)
          if (r === null) return
          clearTimeout(t)
          ch.destroy()
          resolve(r.hello.extensions.get(HelloExtension.RESUME_REFUSED)?.[0] ?? -1)
        })
      })
    let peak = 0
    const sampler = setInterval(() => (peak = Math.max(peak, rss(pid))), 100)
    const answers: number[] = []
    try {
      for (let round = 0; round < 8; round++) answers.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => resume(i % 4)))))
    } finally {
      clearInterval(sampler)
    }
    // Every one refused as an unknown session (RESUME_REFUSED 1), by the worker its id names.
    expect(answers.every((a) => a === 1)).toBe(true)
    const m = await metrics(metricsPort)
    expect(m.get('synmux_handoffs_total')).toBeGreaterThanOrEqual(100)
    await until(() => fdCount(pid) <= baseline.fds + 4, 'the descriptors to come back', 10_000)
    console.log(`--workers 4: 400 made-up RESUMEs, ${m.get('synmux_handoffs_total')} handed on; RSS ${(baseline.rss / MiB).toFixed(0)} MiB, at most ${(peak / MiB).toFixed(0)} MiB`)
    // Bounded: Node's own growth (heap before a collection, code) in 4 busy workers, 24 MiB each; not a leak per connection.
    expect(peak - baseline.rss).toBeLessThan(4 * 24 * MiB)
    const s = net.connect(fwd, '127.0.0.1')
    s.end('still serving')
    expect((await readAll(s)).toString()).toBe('still serving')
    clean(server)
  })

  it('a first flight replayed 8 times (to whichever workers the kernel picks): the replay guard they share acts on it once', { timeout: 60_000 }, async () => {
    const { server, port } = await startServer(4, ['--log-level', 'debug'])
    const relay = new SecureRelay(port)
    await relay.listen()
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${relay.port}`, ...keys.client, '--on-demand', '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/forwarding to/)
    const before = echoConnections
    const s = net.connect(fwd, '127.0.0.1')
    s.write('once')
    await until(() => echoConnections === before + 1, 'the echo connection')
    await server.waitFor(/first flight from 127\.0\.0\.1 \(laptop\): 0-RTT accepted/)
    const flight = relay.pairs[0]!.firstFlight!
    for (let i = 0; i < 8; i++) {
      const r = net.connect(port, '127.0.0.1')
      r.on('error', () => {})
      let got = 0
      r.on('data', (d: Buffer) => (got += d.length))
      r.write(flight)
      await until(() => got > 0, 'message 2 in answer to the replay')
      r.destroy()
    }
    await until(() => server.log.filter((l) => /0-RTT rejected \(replayed\)/.test(l)).length === 8, 'eight rejections')
    // The OPEN it carried was acted on once: one connection to the target.
    await new Promise((r) => setTimeout(r, 200))
    expect(echoConnections).toBe(before + 1)
    s.destroy()
    relay.close()
  })
})
