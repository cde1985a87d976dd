/**
 * Unauthenticated floods against the real `synmux server` on the default
 * secure channel (issue 14; the clear-text equivalents: unauth.test.ts).
 * Whatever an unauthenticated peer sends — garbage, a clear-text synmux
 * HELLO, well-formed first flights of a key the server does not know, a
 * thousand connections at once — it gets not one byte back; each failure
 * counts against its source; the caps on unauthenticated connections hold
 * (and so the server's descriptors stay bounded); the connections are
 * closed at the handshake deadline; and a client with an authorized key
 * is served throughout.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeHello, generateKeyPair, HelloKind, secure } from 'synmux'
import { close, listen } from '../helpers'
import { freePort, httpRequest, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from './cli'
import { until } from './pool-relay.js'
import { fdCount, MiB, rss } from './hostile'

let keys: SecureKeys
let target: http.Server
let targetPort: number

beforeAll(async () => {
  keys = secureKeys('good')
  target = http.createServer((req, res) => res.end(`served ${req.url}`))
  targetPort = await listen(target, '127.0.0.1')
})
afterAll(async () => {
  await stopAll()
  await close(target)
})

/** The server's descriptors: its primary's and its workers' (`--workers`). */
const fds = (p: Proc) => fdCount(p.child.pid!)


/** A connection from `localAddress` that writes `first`; counts what the server sends back. */
function probe(port: number, localAddress: string, first: Buffer | null) {
  const s = net.connect({ host: '127.0.0.1', port, localAddress })
  let got = 0
  let closedAt = 0
  const opened = Date.now()
  s.on('data', (d: Buffer) => (got += d.length))
  s.on('error', () => {})
  const closed = new Promise<void>((r) => s.once('close', () => ((closedAt = Date.now()), r())))
  if (first) s.write(first)
  return { s, closed, got: () => got, isClosed: () => closedAt !== 0, heldMs: () => closedAt - opened }
}

/** A well-formed first flight (message 1) of a key the server does not authorize, taken off a real channel. */
function strangerFlight(): Promise<Buffer> {
  const k = generateKeyPair()
  return new Promise((resolve) => {
    const sock = new net.Socket()
    // Capture the channel's first write without connecting anywhere.
    sock.write = ((b: Buffer) => {
      resolve(Buffer.from(b))
      process.nextTick(() => ch.destroy())
      return true
    }) as never
    const ch = secure(sock, { role: 'client', staticKey: k.privateKey, serverKey: keys.serverKeys.publicKey })
    ch.on('error', () => {})
    ch.write('GET / HTTP/1.1\r\n\r\n')
  })
}

describe('unauthenticated peers against the secure channel', () => {
  it('garbage, a clear-text HELLO, unknown keys: zero bytes back, each counted against its source, held until the handshake deadline; the caps hold; an authorized client is served', { timeout: 60_000 }, async () => {
    const port = await freePort()
    const server = synmux([
      'server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`,
      '--handshake-timeout', '2000', '--max-unauthenticated-per-source', '20', '--max-unauthenticated', '60', '--max-failed-handshakes', '1000',
    ])
    await server.waitFor(/listening on/)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* up/)
    const baseline = fds(server)
    const flight = await strangerFlight()
    const clearHello = encodeHello({ kind: HelloKind.NEW, role: 'client', capabilities: 0, sessionId: Buffer.alloc(32), initialWindow: 262_144, maxFrameSize: 65_536, maxStreams: 1024, extensions: [] })
    // Three sources, three kinds, 20 each (the per-source cap), then more from a fourth: past the cap of 60 in all.
    const kinds: [string, Buffer | null][] = [
      ['127.0.0.2', crypto.randomBytes(4096)],
      ['127.0.0.3', clearHello],
      ['127.0.0.4', flight],
    ]
    const conns = kinds.flatMap(([addr, first]) => Array.from({ length: 20 }, () => probe(port, addr, first)))
    await until(() => server.log.filter((l) => /handshake from 127\.0\.0\.[234] failed/.test(l)).length === 60 || conns.some((c) => c.isClosed()), '60 failures', 20_000)
    // The 21st from a source is over its cap: closed at once, unread.
    const over = probe(port, '127.0.0.2', crypto.randomBytes(64))
    await over.closed
    expect(over.heldMs()).toBeLessThan(1000)
    await server.waitFor(/refusing 127\.0\.0\.2: 20 unauthenticated connections from it already/)
    // Past the cap in all: closed at once too.
    const others = Array.from({ length: 5 }, () => probe(port, '127.0.0.5', crypto.randomBytes(64)))
    await Promise.all(others.map((c) => c.closed))
    await server.waitFor(/refusing 127\.0\.0\.5: 60 unauthenticated connections in all already/)
    // Meanwhile, the authorized client is served, and the server holds about one descriptor per connection, no more.
    expect((await httpRequest(fwd, '/during')).body.toString()).toBe('served /during')
    expect(fds(server) - baseline).toBeLessThanOrEqual(60 + 5)
    // The reasons are logged per source.
    const log = server.log.join('\n')
    expect(log).toMatch(/handshake from 127\.0\.0\.2 failed: secure channel: not a secure-channel handshake/)
    expect(log).toMatch(/handshake from 127\.0\.0\.3 failed: secure channel: a clear-text synmux HELLO: the client runs --insecure-plaintext, and this server requires the secure channel/)
    expect(log).toMatch(/handshake from 127\.0\.0\.4 failed: secure channel: client key [A-Za-z0-9+/]{43}= is not authorized/)
    // Held (drained) until the deadline, then closed; not a byte back to any of them.
    await Promise.all(conns.map((c) => c.closed))
    for (const c of conns) expect(c.got()).toBe(0)
    const held = conns.map((c) => c.heldMs()).sort((a, b) => a - b)
    expect(held[0]).toBeGreaterThan(1500)
    expect(held.at(-1)).toBeLessThan(6000)
    await until(() => fds(server) <= baseline + 2, 'the descriptors to be released', 20_000)
    expect((await httpRequest(fwd, '/after')).body.toString()).toBe('served /after')
    expect(server.child.exitCode).toBe(null)
    console.log(`secure unauth: 60 refused connections held ${held[0]}-${held.at(-1)} ms, 0 bytes back; fds ${baseline} -> at most ${baseline + 65} -> ${fds(server)}`)
  })

  it('first flights from 9,000 distinct unknown client keys (twice past the 4,096 static keys the handshake remembers): zero bytes back, memory bounded, an authorized client served', { timeout: 120_000 }, async () => {
    const port = await freePort()
    const server = synmux([
      'server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`, '--workers', '1',
      '--max-failed-handshakes', '100000', '--max-unauthenticated', '20000', '--max-unauthenticated-per-source', '20000',
    ])
    await server.waitFor(/listening on/)
    let back = 0
    let seen = 0
    let counted = 0
    const failures = () => {
      for (; seen < server.log.length; seen++) if (/handshake from 127\.0\.0\.1 failed/.test(server.log[seen]!)) counted++
      return counted
    }
    const flood = async (n: number): Promise<void> => {
      for (let done = 0; done < n; done += 100) {
        const flights = await Promise.all(Array.from({ length: 100 }, () => strangerFlight()))
        const conns = flights.map((f) => probe(port, '127.0.0.1', f))
        // The server sends nothing and holds each until its handshake deadline; we hang up once it has refused them all.
        const want = failures() + 100
        await until(() => failures() >= want, 'the batch refused', 20_000)
        for (const c of conns) c.s.destroy()
        await Promise.all(conns.map((c) => c.closed))
        back += conns.reduce((a, c) => a + c.got(), 0)
      }
    }
    await flood(300) // warm-up: code, pools, buffers
    const before = rss(server.child.pid!)
    await flood(4_500)
    const mid = rss(server.child.pid!)
    await flood(4_500) // as many again: the tables are full, nothing more may stay
    const after = rss(server.child.pid!)
    expect(back).toBe(0)
    expect(server.child.exitCode).toBe(null)
    expect(failures()).toBe(9_300)
    // Bound: the remembered DH outputs and imported keys (at most 4,096 each) plus the heap's own growth.
    expect(after - before).toBeLessThan(64 * MiB)
    expect(after - mid).toBeLessThan(16 * MiB)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* up/)
    expect((await httpRequest(fwd, '/after-flood')).body.toString()).toBe('served /after-flood')
    console.log(`secure unauth: 9,300 first flights of distinct unknown keys, 0 bytes back; server RSS ${(before / MiB).toFixed(1)} -> ${(mid / MiB).toFixed(1)} -> ${(after / MiB).toFixed(1)} MiB`)
    await client.stop()
    await server.stop()
  })
})
