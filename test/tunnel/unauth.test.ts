/**
 * Unauthenticated peers against the real `synmux server` process: half-open
 * TLS handshakes, connections that never send a byte (slowloris, against
 * the default secure channel), and — in the pre-shared-key mode of
 * `--insecure-plaintext`, PROTOCOL.md 16 — HELLOs never followed by AUTH,
 * wrong keys, and RESUMEs naming a live session. Each must be closed
 * within the handshake timeout, counted against its source's failure
 * limit, capped, and answered with nothing about any session — while a
 * client with the key keeps being served. (The same attacks on the secure
 * channel: secure-unauth.test.ts.)
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { Capability, HelloExtension, HelloKind, decodeFrame, decodeHello, encodeHello, parseKey, type Hello } from 'synmux'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { close, FIXTURES, listen } from '../helpers'
import { freePort, httpRequest, keyFile, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from './cli'
import { fdCount } from './hostile'

const cert = path.join(FIXTURES, 'test-cert.pem')
const tlsKey = path.join(FIXTURES, 'test-key.pem')
let key: string
let keys: SecureKeys
let target: http.Server
let targetPort: number

beforeAll(async () => {
  key = keyFile()
  keys = secureKeys()
  target = http.createServer((req, res) => res.end('target says hi'))
  targetPort = await listen(target, '127.0.0.1')
})
afterAll(async () => {
  await stopAll()
  await close(target)
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** The server's descriptors: its primary's and its workers' (`--workers`). */
const fds = (p: Proc) => fdCount(p.child.pid!)
const get = (port: number) => httpRequest(port, '/x').then((r) => r.body.toString())

/** Polls until `pred()` holds (for effects inside the server process). */
async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** A raw connection from `localAddress`; `closed` settles when the server closes it; `got` is what it sent. */
function rawConnection(port: number, localAddress = '127.0.0.1', first?: Buffer) {
  const s = net.connect({ host: '127.0.0.1', port, localAddress })
  let got = Buffer.alloc(0)
  let closedAt = 0
  s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
  s.on('error', () => {})
  const closed = new Promise<void>((r) => s.once('close', () => ((closedAt = Date.now()), r())))
  const connected = new Promise<void>((r) => s.once('connect', () => r()))
  if (first) s.write(first)
  return { s, closed, connected, got: () => got, closedAt: () => closedAt, isClosed: () => closedAt !== 0 }
}

/** A client HELLO, as synmux's own client sends it (with AUTH_PSK and a fresh nonce). */
function clientHello(kind: number, sessionId: Buffer, extra: Array<[number, Buffer]> = []): { raw: Buffer; nonce: Buffer } {
  const nonce = crypto.randomBytes(32)
  const raw = encodeHello({
    kind,
    role: 'client',
    capabilities: Capability.AUTH_PSK | Capability.RESUME,
    sessionId,
    initialWindow: 256 * 1024,
    maxFrameSize: 16 * 1024,
    maxStreams: 1024,
    extensions: [...extra, [HelloExtension.AUTH_NONCE, nonce], [HelloExtension.REPLAY_BUFFER, Buffer.from([0, 0x40, 0, 0])]],
  })
  return { raw, nonce }
}

const u64 = (n: number) => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

/** An AUTH frame with this 32-byte proof (PROTOCOL.md 16). */
const authFrame = (proof: Buffer) => Buffer.concat([Buffer.from([0, 0, 32, 0x83, 0, 0, 0, 0, 0]), proof])

/** The proofs of PROTOCOL.md 16, computed here independently of the code under test. */
const serverProof = (k: Buffer, clientHelloRaw: Buffer, ns: Buffer) => crypto.createHmac('sha256', k).update('synmux server').update(clientHelloRaw).update(ns).digest()
const clientProof = (k: Buffer, serverHelloRaw: Buffer, nc: Buffer) => crypto.createHmac('sha256', k).update('synmux client').update(serverHelloRaw).update(nc).digest()

describe('half-open TLS handshakes (synmux server --tls-cert/--tls-key)', () => {
  it('are closed at the handshake timeout (10 s by default), counted per source; fds return to the baseline and a client with the key keeps working', async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, '--key', key, '--allow', `127.0.0.1:${targetPort}`, '--tls-cert', cert, '--tls-key', tlsKey, '--max-failed-handshakes', '1000'])
    await server.waitFor(/listening on .*\(TLS\)/)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `localhost:${port}`, '--key', key, '--tls', '--ca', cert, '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* up/)
    expect(await get(fwd)).toBe('target says hi')
    await sleep(200)
    const baseline = fds(server)
    // 200 connections (50 from each of four source addresses) that send the
    // first byte of a TLS record and stop
    const conns = []
    for (let i = 0; i < 200; i++) conns.push(rawConnection(port, `127.0.0.${2 + (i % 4)}`, Buffer.from([0x16])))
    await Promise.all(conns.map((c) => c.connected))
    const opened = Date.now()
    await until(() => fds(server) >= baseline + 200, 'the server to hold the half-open connections')
    const held = fds(server)
    // meanwhile: the session carries new connections, and a new client gets a session
    expect(await get(fwd)).toBe('target says hi')
    const fwd2 = await freePort()
    const client2 = synmux(['client', '--server', `localhost:${port}`, '--key', key, '--tls', '--ca', cert, '--forward', `${fwd2}=127.0.0.1:${targetPort}`])
    await client2.waitFor(/session to .* up/)
    expect(await get(fwd2)).toBe('target says hi')
    // all closed by the server at the timeout, none much later
    await Promise.all(conns.map((c) => c.closed))
    const last = Math.max(...conns.map((c) => c.closedAt())) - opened
    const first = Math.min(...conns.map((c) => c.closedAt())) - opened
    expect(first).toBeGreaterThanOrEqual(9_000)
    expect(last).toBeLessThan(14_000)
    await until(() => fds(server) <= baseline + 2, 'the fds to be released')
    console.log(`half-open TLS: server fds ${baseline} -> ${held} with 200 half-open handshakes -> ${fds(server)} after the timeout (closed ${first}-${last} ms after opening)`)
    // counted against their sources
    await server.waitFor(/handshake from 127\.0\.0\.[2-5] failed: .*(TLS|no authenticated handshake)/)
    expect(server.log.filter((l) => /handshake from 127\.0\.0\.[2-5] failed/.test(l)).length).toBe(200)
    expect(await get(fwd)).toBe('target says hi')
    expect(server.child.exitCode).toBeNull()
    await client2.stop()
    await client.stop()
    await server.stop()
  }, 40_000)
})

describe('connections that never send a HELLO (slowloris), and the caps on unauthenticated connections', () => {
  it('are capped per source and in all (closed unread beyond the cap), closed at the handshake timeout and counted as failures', async () => {
    const port = await freePort()
    const server = synmux([
      'server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`,
      '--handshake-timeout', '2000', '--max-unauthenticated-per-source', '5', '--max-unauthenticated', '8', '--max-failed-handshakes', '100',
    ])
    await server.waitFor(/listening on/)
    const idle = []
    for (let i = 0; i < 5; i++) idle.push(rawConnection(port, '127.0.0.2'))
    await Promise.all(idle.map((c) => c.connected))
    await sleep(300)
    // the 6th from the same source is closed at once, unread
    const at = Date.now()
    const sixth = rawConnection(port, '127.0.0.2')
    await sixth.closed
    expect(sixth.closedAt() - at).toBeLessThan(1000) // not at the 2 s timeout: at once
    expect(idle.some((c) => c.isClosed())).toBe(false)
    await server.waitFor(/refusing 127\.0\.0\.2: 5 unauthenticated connections from it already/)
    // another source gets 3 more (8 in all), the 9th is closed at once
    const other = []
    for (let i = 0; i < 3; i++) other.push(rawConnection(port, '127.0.0.3'))
    await Promise.all(other.map((c) => c.connected))
    await sleep(300)
    const ninth = rawConnection(port, '127.0.0.4')
    await ninth.closed
    await server.waitFor(/refusing 127\.0\.0\.4: 8 unauthenticated connections in all already/)
    expect([...idle, ...other].some((c) => c.isClosed())).toBe(false)
    // at the timeout: all closed, each counted as a failed handshake
    await Promise.all([...idle, ...other].map((c) => c.closed))
    await until(() => server.log.filter((l) => /handshake from 127\.0\.0\.[23] failed: (no authenticated handshake|no HELLO) within 2000 ms/.test(l)).length === 8, 'eight failures logged')
    // and the caps are free again: a client with the key gets its session
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* up/)
    expect(await get(fwd)).toBe('target says hi')
    await client.stop()
    await server.stop()
  }, 30_000)
})

describe('the per-source failed-handshake limit (--insecure-plaintext, pre-shared key)', () => {
  it('counts a wrong key, a connection without HELLO and a HELLO without AUTH alike; the source is refused, then let in again when the window has passed', async () => {
    const port = await freePort()
    const window = 6
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, '--key', key, '--insecure-plaintext', '--allow', `127.0.0.1:${targetPort}`, '--handshake-timeout', '1500', '--max-failed-handshakes', '3', '--failed-handshake-window', String(window)])
    await server.waitFor(/listening on/)
    const t0 = Date.now()
    // 1. a wrong key: a HELLO, the server's answer, an AUTH with a wrong proof
    const wrong = rawConnection(port, '127.0.0.1', clientHello(HelloKind.NEW, Buffer.alloc(32)).raw)
    await until(() => decodeHello(wrong.got()) !== null, "the server's HELLO")
    wrong.s.write(authFrame(crypto.randomBytes(32)))
    // 2. no HELLO at all, 3. a HELLO and then nothing
    const silent = rawConnection(port, '127.0.0.1')
    const helloOnly = rawConnection(port, '127.0.0.1', clientHello(HelloKind.NEW, Buffer.alloc(32)).raw)
    await Promise.all([wrong.closed, silent.closed, helloOnly.closed])
    const failures = () => server.log.filter((l) => /handshake from 127\.0\.0\.1 failed/.test(l))
    await until(() => failures().length === 3, 'three failures')
    expect(failures().join('\n')).toMatch(/does not hold our key/)
    expect(failures().join('\n')).toMatch(/no authenticated handshake within 1500 ms|no HELLO/)
    // refused now: a connection is closed at once, unread; a client with the key from the same address gets no session.
    // The workers learn the others' failures from the primary over IPC, about 1 ms late; a probe sent in that moment
    // is served like any other (it failed CI once), so it waits a little after the third failure's log line.
    await sleep(200)
    const probe = rawConnection(port, '127.0.0.1')
    await probe.closed
    await server.waitFor(/refusing 127\.0\.0\.1: too many failed handshakes/)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, '--key', key, '--insecure-plaintext', '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* failed/)
    // another address is not affected
    const elsewhere = rawConnection(port, '127.0.0.9')
    await sleep(300)
    expect(elsewhere.isClosed()).toBe(false)
    elsewhere.s.destroy()
    // let in again within the window (counted from the first failure), and served
    await client.waitFor(/session to .* up/, (window + 12) * 1000)
    const upAfter = Date.now() - t0
    expect(upAfter).toBeLessThan((window + 11) * 1000) // the window plus the client's reconnect backoff (at most 10 s)
    expect(await get(fwd)).toBe('target says hi')
    console.log(`failure limit: 3 failures of three kinds; the source refused, the client with the key up again ${upAfter} ms after the first failure (window ${window} s)`)
    await client.stop()
    await server.stop()
  }, 40_000)
})

describe('RESUME naming a live session, without the key (--insecure-plaintext, pre-shared key)', () => {
  it('is answered exactly as a RESUME for an unknown id (no RECEIVED), learns nothing, is counted as a failure, and the session lives on', async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, '--key', key, '--insecure-plaintext', '--allow', `127.0.0.1:${targetPort}`])
    await server.waitFor(/listening on/)
    // a relay between client and server that records the server's first bytes (its NEW HELLO: the session id)
    let fromServer = Buffer.alloc(0)
    const relay = net.createServer((c) => {
      const up = net.connect({ host: '127.0.0.1', port })
      c.on('error', () => {})
      up.on('error', () => {})
      up.on('data', (d: Buffer) => {
        if (fromServer.length < 2048) fromServer = Buffer.concat([fromServer, d])
      })
      c.pipe(up).pipe(c)
    })
    const relayPort = await listen(relay, '127.0.0.1')
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${relayPort}`, '--key', key, '--insecure-plaintext', '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* up/)
    expect(await get(fwd)).toBe('target says hi')
    const live = decodeHello(fromServer)!.hello.sessionId
    const answer = async (id: Buffer, received: number): Promise<{ hello: Hello; raw: Buffer; conn: ReturnType<typeof rawConnection>; nonce: Buffer; clientRaw: Buffer }> => {
      const ch = clientHello(HelloKind.RESUME, id, [[HelloExtension.RECEIVED, u64(received)]])
      const conn = rawConnection(port, '127.0.0.2', ch.raw)
      await until(() => { try { return decodeHello(conn.got()) !== null } catch { return true } }, 'an answer')
      const d = decodeHello(conn.got())!
      return { hello: d.hello, raw: conn.got().subarray(0, d.size), conn, nonce: ch.nonce, clientRaw: ch.raw }
    }
    const a = await answer(live, 0)
    const b = await answer(crypto.randomBytes(32), 0)
    for (const x of [a, b]) {
      expect(x.hello.kind).toBe(HelloKind.RESUME)
      expect(x.hello.extensions.has(HelloExtension.RECEIVED)).toBe(false)
      expect(x.conn.got().length).toBe(x.raw.length) // nothing but the HELLO before the AUTH
    }
    // the same answer but for the id the client named, the nonce and the proof
    const shape = (x: { hello: Hello; raw: Buffer }) => ({ ...x.hello, sessionId: null, extensions: [...x.hello.extensions.keys()].sort(), raw: x.raw.length })
    expect(shape(a)).toEqual(shape(b))
    expect(a.hello.sessionId).toEqual(live)
    // the proof is the server's: a client with the key could check it
    const k = parseKey(fs.readFileSync(key, 'utf8'))
    expect(a.hello.extensions.get(HelloExtension.AUTH_PROOF)).toEqual(serverProof(k, a.clientRaw, a.hello.extensions.get(HelloExtension.AUTH_NONCE)!))
    // a wrong AUTH: closed without a byte more, counted against the source
    a.conn.s.write(authFrame(crypto.randomBytes(32)))
    b.conn.s.write(authFrame(crypto.randomBytes(32)))
    await Promise.all([a.conn.closed, b.conn.closed])
    expect(a.conn.got().length).toBe(a.raw.length)
    await until(() => server.log.filter((l) => /handshake from 127\.0\.0\.2 failed: resume: the client does not hold our key/.test(l)).length === 2, 'two failures')
    // the session is undisturbed
    expect(await get(fwd)).toBe('target says hi')
    expect(client.log.some((l) => /lost|resum/.test(l))).toBe(false)
    // with the key, the same id resumes: after the AUTH, the first frame is ACK(R)
    const c = await answer(live, 0)
    c.conn.s.write(authFrame(clientProof(k, c.raw, c.nonce)))
    await until(() => c.conn.got().length >= c.raw.length + 17, 'the first frame after AUTH')
    const first = decodeFrame(c.conn.got().subarray(c.raw.length))
    expect(first?.frame.type).toBe(0x82) // ACK
    c.conn.s.destroy()
    // and an unknown id, with the key: refused after the AUTH, GOAWAY RESUME_UNKNOWN_ID
    const d = await answer(crypto.randomBytes(32), 0)
    d.conn.s.write(authFrame(clientProof(k, d.raw, d.nonce)))
    await d.conn.closed
    const goaway = decodeFrame(d.conn.got().subarray(d.raw.length))
    expect(goaway?.frame).toMatchObject({ type: 0x07, code: 12 })
    await client.stop()
    await server.stop()
    await close(relay)
  }, 30_000)
})
