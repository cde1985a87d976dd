/**
 * Past one machine (issue 15, "Scale"): two `synmux server` instances, each
 * in a network namespace of its own (with `--workers` at its default), and
 * a client in a third, reaching them through a round-robin TCP relay (what
 * an L4 balancer does). The servers' session ids carry their instance id
 * (`--instance-id`, `--advertise`); a resume that the relay sends to the
 * other instance is answered with a REDIRECT to the session's (PROTOCOL.md
 * 13.10), and the client resumes there. The client's connections are
 * killed over and over (`ss -K`) while it sends 200 MiB; they arrive whole.
 *
 *   ns C (client, relay, sink)  10.0.1.1 ── 10.0.1.2  ns A: server, instance 1
 *                               10.0.2.1 ── 10.0.2.2  ns B: server, instance 2
 */
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { canUseNetns, skipReason } from '../helpers'
import { CLI, needCommand, secureKeys, type SecureKeys } from './cli'
import { until } from './pool-relay.js'
import { launch, type Launched } from './nsproc'

const FIXTURE = path.join(__dirname, 'fixtures', 'instances.mjs')
const skip = skipReason(!canUseNetns() ? 'needs root and ip netns (network namespaces)' : needCommand('ss', 'ss (iproute2)'))

const procs: Launched[] = []
const namespaces: string[] = []

/** `node <args>` in namespace `ns` (stopped after the test). */
function inNs(ns: string, args: string[]): Launched {
  const p = launch(ns, args)
  procs.push(p)
  return p
}

const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' })

let keys: SecureKeys
let C: string, A: string, B: string

beforeAll(() => {
  if (skip) return
  keys = secureKeys('laptop')
  const tag = `${process.pid}-${crypto.randomBytes(3).toString('hex')}`
  ;[C, A, B] = ['c', 'a', 'b'].map((x) => `smx15${x}-${tag}`) as [string, string, string]
  for (const ns of [C, A, B]) {
    ip('netns', 'add', ns)
    namespaces.push(ns)
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.tcp_fastopen=3')
  }
  for (const [ns, n] of [[A, 1], [B, 2]] as const) {
    ip('link', 'add', `c${n}`, 'netns', C, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
    ip('-n', C, 'addr', 'add', `10.0.${n}.1/24`, 'dev', `c${n}`)
    ip('-n', C, 'link', 'set', `c${n}`, 'up')
    ip('-n', ns, 'addr', 'add', `10.0.${n}.2/24`, 'dev', 'eth0')
    ip('-n', ns, 'link', 'set', 'eth0', 'up')
    ip('-n', ns, 'route', 'add', 'default', 'via', `10.0.${n}.1`)
  }
})

afterAll(async () => {
  for (const p of procs) p.child.kill('SIGKILL')
  await Promise.all(procs.map((p) => (p.child.exitCode === null && p.child.signalCode === null ? new Promise((r) => p.child.once('exit', r)) : null)))
  for (const ns of namespaces) {
    try {
      ip('netns', 'del', ns)
    } catch {
      // already gone
    }
  }
})

describe('two server instances behind a round-robin relay', () => {
  it.skipIf(skip)('the client is sent to the instance that holds its session; killed again and again, 200 MiB arrive intact', { timeout: 120_000 }, async () => {
    const sink = inNs(C, [FIXTURE, 'sink'])
    const { port: sinkPort } = await sink.json()
    const server = (ns: string, n: number) =>
      inNs(ns, [CLI, 'server', '--listen', `10.0.${n}.2:9000`, ...keys.server, '--allow', `10.0.1.1:${sinkPort}`, '--instance-id', String(n), '--advertise', `10.0.${n}.2:9000`, '--log-level', 'debug'])
    const a = server(A, 1)
    const b = server(B, 2)
    await a.waitFor(/listening on 10\.0\.1\.2:9000, .* \(\d+ worker processes/, 20_000)
    await b.waitFor(/listening on 10\.0\.2\.2:9000, .* \(\d+ worker processes/, 20_000)
    const relay = inNs(C, [FIXTURE, 'relay', '8000', '10.0.1.2:9000', '10.0.2.2:9000'])
    await relay.json()
    const client = inNs(C, [CLI, 'client', '--server', '127.0.0.1:8000', ...keys.client, '--forward', `7000=10.0.1.1:${sinkPort}`])
    await client.waitFor(/session to 127\.0\.0\.1:8000 up/, 20_000)
    // The relay's first connection went to A: the session lives there. Its first flight, a NEW that names
    // no instance, got no 0-RTT (another instance could be sent a replay of it); it came again as records.
    await a.waitFor(/session from 10\.0\.1\.1 \(laptop\) established/, 20_000)
    expect(a.log.join('\n')).toMatch(/first flight from 10\.0\.1\.1 \(laptop\): 0-RTT rejected \(declined\)/)
    const send = inNs(C, [FIXTURE, 'send', '7000', '200', '30'])
    // Kill every connection of the client to either instance (through the relay or direct), every 250 ms.
    let kills = 0
    let done: any = null
    let failed: Error | null = null
    void send.json(100_000).then((r) => (done = r), (e: Error) => (failed = e))
    while (done === null && failed === null) {
      await new Promise((r) => setTimeout(r, 250))
      if (done !== null) break
      execFileSync('ip', ['netns', 'exec', C, 'ss', '-K', '-4', 'dst', '10.0.0.0/16', 'dport', '=', ':9000'], { stdio: 'ignore' })
      kills++
    }
    const logs = () => `${kills} kills\nsend:\n${send.log.slice(-5).join('\n')}\nclient:\n${client.log.slice(-25).join('\n')}\nA:\n${a.log.slice(-15).join('\n')}\nB:\n${b.log.slice(-15).join('\n')}`
    await until(() => done !== null || failed !== null, 'the transfer', 60_000).catch((e: Error) => {
      throw new Error(`${e.message}; ${logs()}`)
    })
    if (failed !== null) throw new Error(`the sender failed: ${(failed as Error).message}; ${logs()}`)
    const [bytes, sha] = String(done.answer).split(' ')
    expect(Number(bytes)).toBe(200 << 20)
    expect(sha).toBe(done.sha)
    expect(kills).toBeGreaterThanOrEqual(8)
    // The first resume went through the relay to B, which sent the client to A's address; every later one went there directly.
    await client.waitFor(/the session lives at 10\.0\.1\.2:9000 \(the server at 127\.0\.0\.1:8000 redirected it\)/, 20_000)
    const resumes = client.log.filter((l) => /resumed on a new connection/.test(l)).length
    expect(resumes).toBeGreaterThanOrEqual(kills / 2)
    expect(client.log.join('\n')).not.toMatch(/session to .* (up \(reconnect|failed|lost)/)
    expect(b.log.join('\n')).not.toMatch(/established|resumed from/)
    // Only flights that name the instance get 0-RTT there: the resumes at A did.
    expect(a.log.filter((l) => /first flight from 10\.0\.1\.1 \(laptop\): 0-RTT accepted/.test(l)).length).toBeGreaterThanOrEqual(1)
    relay.send('count')
    const { connections } = await relay.json()
    console.log(`two instances: ${kills} kills, ${resumes} resumes, relay connections to A/B ${connections.join('/')}; 200 MiB intact`)
    for (const p of [a, b]) expect(p.child.exitCode).toBe(null)
  })
})
