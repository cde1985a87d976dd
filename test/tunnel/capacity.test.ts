/**
 * Capacity limits users hit first (issue 12), through the real CLI:
 * `--max-connects` caps connects in progress (not open connections),
 * `--max-streams` is settable and every refusal is logged, `--pool` places
 * new streams on a session with room, and 10,000 concurrent connections
 * go through `synmux client --socks` with defaults.
 */
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FrameType, type MuxStream, RefuseCode, secure, SessionPool } from 'synmux'
import { canUseNetns, close, isLinux, isRoot, skipReason } from '../helpers'
import { CLI, freePort, secureKeys, socksConnect, stopAll, synmux, type SecureKeys } from './cli'
import { Relay, until } from './pool-relay.js'
import { echoTarget, rawPeer } from './rawpeer'
import { fdCount, MiB, processTree, rss } from './hostile'
import { launch, type Launched } from './nsproc'

let keys: SecureKeys
let echo: net.Server
let echoPort: number

beforeAll(async () => {
  keys = secureKeys()
  ;({ server: echo, port: echoPort } = await echoTarget())
})

afterAll(async () => {
  await stopAll()
  if (echo) await close(echo)
})

async function startServer(extra: string[] = []) {
  const port = await freePort()
  const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${echoPort}`, ...extra])
  await server.waitFor(/listening on/)
  return { server, port }
}

/** Opens a connection to 127.0.0.1:`port`, sends `token`, resolves with the socket once the token came back. */
function echoed(port: number, token: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let got = ''
    s.on('data', (d) => {
      got += d
      if (got === token) resolve(s)
    })
    s.once('error', reject)
    s.once('close', () => reject(new Error(`closed after '${got}'`)))
    s.write(token)
  })
}

describe('capacity caps', () => {
  it('--max-connects caps connects in progress: 100 live connections through --forward are all served', async () => {
    const { port } = await startServer()
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/session .* up/)
    // Each stays open; with a slot held until the relay ended, the 65th would wait for one of the first 64 to close.
    const socks = await Promise.all(Array.from({ length: 100 }, (_, i) => echoed(fwd, `live ${i}`)))
    expect(socks.length).toBe(100)
    for (const s of socks) s.destroy()
  })

  it('--max-streams N: an OPEN past it is refused and logged; the client logs the limit; --pool places streams where there is room', async () => {
    const { server, port } = await startServer(['--max-streams', '10'])
    // A peer that ignores the announced limit: the 11th OPEN is refused, and the server says so.
    const peer = await rawPeer(port, keys)
    peer.send(...Array.from({ length: 11 }, (_, i) => ({ type: FrameType.OPEN, streamId: 2 * i + 1, target: { host: '127.0.0.1', port: echoPort }, data: Buffer.from('x') })))
    const [refused] = await peer.waitFrames((f) => f.type === FrameType.REFUSED)
    expect(refused).toMatchObject({ streamId: 21, code: RefuseCode.TOO_MANY_STREAMS })
    await server.waitFor(/refused stream 21 to 127\.0\.0\.1:\d+ from 127\.0\.0\.1: too many streams \(10 per session, --max-streams\)/)
    peer.socket.destroy()

    // A pool of 2: 20 streams fit, on both sessions; the 21st is refused on the client, with a line that says why.
    const socksPort = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--socks', String(socksPort), '--pool', '2'])
    await client.waitFor(/SOCKS5 on/)
    const held: net.Socket[] = []
    for (let i = 0; i < 20; i++) {
      const s = await socksConnect(socksPort, '127.0.0.1', echoPort)
      s.write(`pooled ${i}`)
      await new Promise((r) => s.once('data', r))
      held.push(s)
    }
    const s21 = await socksConnect(socksPort, '127.0.0.1', echoPort)
    s21.on('error', () => {})
    s21.write('one too many')
    await new Promise((r) => s21.once('close', r))
    await client.waitFor(/the server accepts at most 10 streams per session and all 2 sessions are full/)
    // One ends (its close comes back once the client's stream has closed): its place is taken again.
    const first = held.shift()!
    first.end()
    await new Promise((r) => first.once('close', r))
    const again = await socksConnect(socksPort, '127.0.0.1', echoPort)
    again.write('room again')
    await new Promise((r) => again.once('data', r))
    held.push(again)
    for (const s of held) s.destroy()
  })
})

describe('a flood of refused OPENs', () => {
  it('is logged 20 lines per session per 10 s, the rest counted in the session\'s closing line; the server serves others meanwhile', async () => {
    const { server, port } = await startServer(['--detach-timeout', '200'])
    const peer = await rawPeer(port, keys)
    const N = 3_000
    const denied = { host: '127.0.0.1', port: 1 } // not on the allow list
    for (let i = 0; i < N; i += 500) {
      peer.send(...Array.from({ length: 500 }, (_, k) => ({ type: FrameType.OPEN, streamId: 2 * (i + k) + 1, target: denied, data: Buffer.from('x') })))
      await peer.waitFrames((f) => f.type === FrameType.REFUSED, i + 500)
    }
    const lines = () => server.log.filter((l) => l.includes('refused 127.0.0.1:1: not in the allow list'))
    // another client is served while (and after) the flood is refused
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/session .* up/)
    ;(await echoed(fwd, 'served during the flood')).destroy()
    expect(lines().length).toBe(20)
    peer.socket.destroy()
    const closing = await server.waitFor(/session from 127\.0\.0\.1 .*closed.*more refused streams not logged/)
    expect(closing).toContain(`(${N - 20} more refused streams not logged)`)
    expect(lines().length).toBe(20)
    await client.stop()
    await server.stop()
  })
})

describe('SessionPool places streams where there is room', () => {
  it('the fast session takes streams until it is full, then the slow one does; past both, the limit is reported', async () => {
    // One server process: the test is about the pool's choice by RTT, which a stall of one of two worker
    // processes on a loaded machine would blur (with one, a stall delays both sessions alike).
    const { port } = await startServer(['--max-streams', '10', '--workers', '1'])
    // Slot 1 goes through a relay that delays each direction by 20 ms: the pool prefers slot 0 by RTT.
    const slow = await new Relay(port, 20).listen()
    const wrap = (d: net.Socket) => secure(d, { role: 'client', staticKey: keys.clientKeys.privateKey, serverKey: keys.serverKeys.publicKey })
    const pool = new SessionPool({ size: 2, connect: (i) => wrap(i === 0 ? net.connect(port, '127.0.0.1') : slow.connect()), retireInterval: 0 })
    pool.start()
    const streams: MuxStream[] = []
    try {
      await until(() => pool.stats().up === 2 && pool.stats().members.every((m) => m.rtt > 0), 'both sessions up')
      const [fast, slower] = pool.sessions
      expect(slower!.rtt).toBeGreaterThan(fast!.rtt)
      for (let i = 0; i < 20; i++) {
        const st = await pool.open({ target: { host: '127.0.0.1', port: echoPort }, data: Buffer.from(`s${i}`) })
        await new Promise((r, j) => (st.once('data', r), st.once('error', j)))
        streams.push(st)
        expect(st.session).toBe(i < 10 ? fast : slower)
      }
      const over = await pool.open({ target: { host: '127.0.0.1', port: echoPort }, data: Buffer.from('too many') })
      const err = await new Promise<Error & { code?: string }>((r) => over.once('error', r))
      expect(err.code).toBe('SYNMUX_TOO_MANY_STREAMS')
    } finally {
      for (const st of streams) st.destroy()
      await pool.close()
      slow.server.close()
      for (const p of slow.pairs) (p.client.destroy(), p.upstream.destroy())
    }
  })
})

/** The hard RLIMIT_NOFILE of this process. */
function hardFdLimit(): number {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
  const v = line?.trim().split(/\s+/)[4]
  return v === 'unlimited' ? Infinity : Number(v)
}

/** Raises this process's fd limit (so that its children inherit it) when it is below `want`; the reason if it cannot. */
function fdLimitFor(want: number): string | false {
  if (!isLinux) return 'the 10,000-connection test reads /proc (Linux)'
  if (hardFdLimit() >= want) return false
  const why = `RLIMIT_NOFILE is ${hardFdLimit()}, below the ${want} each process of this test needs (ulimit -n ${want})`
  if (!isRoot) return why
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${want}:${want}`], { stdio: 'pipe' })
  } catch (err) {
    return `${why}, and prlimit could not raise it: ${String((err as { stderr?: unknown }).stderr ?? err).trim()}`
  }
  return false
}

/** Descriptors of a process and its descendants (the server: its primary and its workers, `--workers` defaulting to the number of cores). */
const fds = (pid: number): number => fdCount(pid)

/** A network namespace of its own (only `lo`, TFO on), or `null` where none can be made. */
function netns(): string | null {
  if (!canUseNetns()) return null
  const ns = `smx12-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
  execFileSync('ip', ['netns', 'add', ns])
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.tcp_fastopen=3'])
  return ns
}

const N = 10_000
// Each process holds one socket per connection (the load, the echo target, the client, the server), plus a few.
const skip10k = skipReason(fdLimitFor(N + 1000))

describe('10,000 concurrent connections through synmux client --socks with defaults (the server: --workers, one per core)', () => {
  // In a network namespace of its own where one can be made: its 20,000
  // loopback connections then take no ephemeral port that another test,
  // running meanwhile, has just picked to listen on.
  it.skipIf(skip10k)('all connect, echo and stay open at once', { timeout: 60_000 }, async () => {
    const ns = netns()
    const procs: Launched[] = []
    const run = (args: string[]) => {
      const p = launch(ns, args)
      procs.push(p)
      return p
    }
    try {
      const target = run([path.join(__dirname, 'fixtures', 'many-connections.mjs'), 'echo'])
      const { port: targetPort } = await target.json()
      const port = ns ? 9000 : await freePort()
      const server = run([CLI, 'server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`])
      await server.waitFor(/listening on/)
      const socksPort = ns ? 1080 : await freePort()
      const client = run([CLI, 'client', '--server', `127.0.0.1:${port}`, ...keys.client, '--socks', String(socksPort)])
      await client.waitFor(/session .* up/)
      const base = { server: fds(server.child.pid!), client: fds(client.child.pid!) }
      const rssBefore = { server: rss(server.child.pid!), client: rss(client.child.pid!) }
      const load = run([path.join(__dirname, 'fixtures', 'many-connections.mjs'), 'socks', String(socksPort), String(targetPort), String(N)])
      const done = await load.json().catch((err: Error) => {
        throw new Error(`${err.message}\nclient log:\n${client.log.slice(-10).join('\n')}\nserver log:\n${server.log.slice(-10).join('\n')}`)
      })
      expect(done.ok).toBe(N)
      // All at once: one onward socket per connection on the server, one local socket per connection on the client.
      const at = { server: fds(server.child.pid!), client: fds(client.child.pid!) }
      expect(at.server - base.server).toBeGreaterThanOrEqual(N)
      expect(at.client - base.client).toBeGreaterThanOrEqual(N)
      // Memory per connection: what each side's processes grew by, over the connections (all open, idle, each echoed once).
      const rssAt = { server: rss(server.child.pid!), client: rss(client.child.pid!) }
      const perConnection = { server: (rssAt.server - rssBefore.server) / N / 1024, client: (rssAt.client - rssBefore.client) / N / 1024 }
      const workers = processTree(server.child.pid!).length - 1
      console.log(
        `10,000 connections in ${done.ms} ms${ns ? ' (own netns)' : ''}; server (${workers} workers): ${at.server} fds, RSS ${(rssBefore.server / MiB).toFixed(0)} -> ${(rssAt.server / MiB).toFixed(0)} MiB, ${perConnection.server.toFixed(1)} KiB per connection; client: ${at.client} fds, RSS ${(rssBefore.client / MiB).toFixed(0)} -> ${(rssAt.client / MiB).toFixed(0)} MiB, ${perConnection.client.toFixed(1)} KiB per connection`,
      )
      // (The goal, 16 KiB per idle connection each side, is measured in bench/goals.mjs row 3; this only catches a leak.)
      expect(perConnection.server).toBeLessThan(256)
      expect(perConnection.client).toBeLessThan(256)
      load.child.stdin!.write('check\n')
      expect(await load.json()).toEqual({ open: N, closedEarly: 0 })
      expect(server.log.join('\n')).not.toMatch(/refused|error/)
      expect(client.log.join('\n')).not.toMatch(/refused|closing the connection|error/)
    } finally {
      for (const p of procs) p.child.kill('SIGKILL')
      await Promise.all(procs.map((p) => (p.child.exitCode === null && p.child.signalCode === null ? new Promise((r) => p.child.once('exit', r)) : null)))
      if (ns) execFileSync('ip', ['netns', 'del', ns])
    }
  })
})
