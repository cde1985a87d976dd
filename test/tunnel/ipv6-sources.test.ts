/**
 * The real `synmux server` counts an IPv6 peer by its /64 (README,
 * "Unauthenticated connections"): an attacker who holds a /64 — what an
 * IPv6 host is usually given — and takes a new address in it for every
 * connection is still one source, so its failed handshakes block it; a
 * peer from another /64 is not affected. With `--ipv6-source-prefix 128`
 * each address counts alone.
 *
 * Runs in a network namespace made here, whose `lo` takes every address
 * of fd00:5::/64 and fd00:6::/64 (an AnyIP `local` route, and
 * `ip_nonlocal_bind`), so one process can connect from as many addresses of
 * a /64 as it likes.
 */
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { canUseNetns, skipReason } from '../helpers'
import { CLI, keyFile } from './cli'
import { launch, type Launched } from './nsproc'

const skip = skipReason(!canUseNetns() ? 'needs root and ip netns (Linux)' : !fs.existsSync('/proc/sys/net/ipv6') ? 'the kernel has no IPv6' : false)
const ns = `smx6-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' })
const PORT = 7000

/** A peer inside the namespace: `garbage ADDR` (a connection from ADDR that writes bytes no server takes), `probe ADDR` (closed at once, or still open after 500 ms). */
const PEER = `
const net = require('node:net'), crypto = require('node:crypto'), readline = require('node:readline')
const held = []
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, addr] = line.split(' ')
  const s = net.connect({ host: 'fd00:5::1', port: ${PORT}, localAddress: addr })
  s.on('error', () => {})
  if (cmd === 'garbage') {
    // never 0x01 first (message 1's type: the server would wait for the rest of it)
    const b = crypto.randomBytes(64); b[0] |= 0x80
    s.on('connect', () => { s.write(b); held.push(s); console.log(JSON.stringify({ cmd, addr })) })
  } else {
    let result = null
    const t = setTimeout(() => { result = 'open'; s.destroy() }, 500)
    s.on('close', () => { clearTimeout(t); console.log(JSON.stringify({ cmd, addr, result: result ?? 'closed' })) })
  }
})
`

describe.skipIf(skip)('IPv6 sources, through the CLI, in a network namespace', () => {
  const procs: Launched[] = []
  beforeAll(() => {
    ip('netns', 'add', ns)
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    for (const p of ['fd00:5::/64', 'fd00:6::/64']) ip('-n', ns, '-6', 'route', 'add', 'local', p, 'dev', 'lo')
    // the server's own address, and binding to any other address of the two prefixes
    ip('-n', ns, '-6', 'addr', 'add', 'fd00:5::1/128', 'dev', 'lo', 'nodad')
    ip('netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.ip_nonlocal_bind=1')
  })
  afterAll(() => {
    for (const p of procs) p.child.kill('SIGKILL')
    try {
      ip('netns', 'del', ns)
    } catch {}
  })

  async function scenario(extra: string[]) {
    const server = launch(ns, [CLI, 'server', '--listen', `[fd00:5::1]:${PORT}`, '--insecure-plaintext', '--key', keyFile(), '--allow', '127.0.0.1:1', '--workers', '1', '--max-failed-handshakes', '3', ...extra])
    const peer = launch(ns, ['-e', PEER])
    procs.push(server, peer)
    await server.waitFor(/listening on/)
    const ask = async (line: string) => (peer.send(line), peer.json(5_000))
    // three failures, each from a different address of fd00:5::/64
    for (const a of ['fd00:5::a', 'fd00:5::b:c', 'fd00:5::ffff:1234:5678:9abc']) await ask(`garbage ${a}`)
    const failures = () => server.log.filter((l) => /handshake from fd00:5::[0-9a-f:]+ failed/.test(l)).length
    for (let i = 0; i < 100 && failures() < 3; i++) await new Promise((r) => setTimeout(r, 50))
    expect(failures()).toBe(3)
    const result = { fresh: (await ask('probe fd00:5::77')).result, other: (await ask('probe fd00:6::1')).result }
    server.child.kill('SIGKILL')
    peer.child.kill('SIGKILL')
    return { result, log: server.log }
  }

  it('failures from three addresses of one /64 block the whole /64, not another /64', async () => {
    const { result, log } = await scenario([])
    expect(result).toEqual({ fresh: 'closed', other: 'open' })
    expect(log.some((l) => l.includes('fd00:5::/64: too many failed handshakes'))).toBe(true)
  })

  it('--ipv6-source-prefix 128: each address is its own source', async () => {
    const { result, log } = await scenario(['--ipv6-source-prefix', '128'])
    expect(result).toEqual({ fresh: 'open', other: 'open' })
    expect(log.some((l) => /too many failed handshakes/.test(l))).toBe(false)
  })
})
