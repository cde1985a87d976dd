/**
 * The tunnel on the secure channel (PROTOCOL.md 20, issue 14) against the
 * real `synmux server` (and `synmux client`) processes on loopback, with a
 * man in the middle that follows the channel's framing
 * (test/tunnel/secure-relay.ts):
 *
 * - a bit flipped in one record in the middle of a 100 MiB transfer ends
 *   that connection (SYNMUX_SECURE_DECRYPT_FAILED); the session resumes on
 *   a new one and the transfer's sha256 is intact;
 * - a first flight recorded off the wire and replayed byte for byte is
 *   not acted on: the target sees the request once;
 * - a client clock beyond the replay window gets its 0-RTT data rejected;
 *   the data follows as records and arrives exactly once;
 * - a RESUME naming another client key's live session is answered as for
 *   an unknown id, and that session is undisturbed.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Capability, decodeHello, encodeHello, HelloExtension, HelloKind, secure, TunnelClient, type SecureChannel } from 'synmux'
import { close, listen, sha256 } from '../helpers'
import { freePort, httpRequest, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from './cli'
import { SecureRelay } from './secure-relay'
import { until } from './pool-relay.js'

let keys: SecureKeys
let target: http.Server
let targetPort: number
/** Requests the target saw, by path. */
const seen = new Map<string, number>()
const BLOCK = crypto.randomBytes(1 << 20)

beforeAll(async () => {
  keys = secureKeys('laptop')
  // GET /size/N: N bytes (BLOCK repeated); anything else: its path back.
  target = http.createServer((req, res) => {
    seen.set(req.url!, (seen.get(req.url!) ?? 0) + 1)
    const m = /^\/size\/(\d+)$/.exec(req.url!)
    if (!m) return void res.end(`you asked for ${req.url}`)
    let left = Number(m[1])
    res.writeHead(200, { 'content-length': left })
    const pump = (): void => {
      while (left > 0) {
        const part = BLOCK.subarray(0, Math.min(left, BLOCK.length))
        left -= part.length
        if (!res.write(part)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  })
  targetPort = await listen(target, '127.0.0.1')
})

afterAll(async () => {
  await stopAll()
  await close(target)
})

async function startServer(extra: string[] = []): Promise<{ server: Proc; port: number }> {
  const port = await freePort()
  const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`, '--log-level', 'debug', ...extra])
  await server.waitFor(/listening on .* secure channel with \d+ authorized keys?/)
  return { server, port }
}


describe('a tampered record', () => {
  it('ends the connection; the session resumes on a new one and a 100 MiB transfer arrives intact (sha256)', { timeout: 120_000 }, async () => {
    const { server, port } = await startServer()
    const relay = new SecureRelay(port)
    await relay.listen()
    relay.flipDownAt = 40 << 20 // a record about 40 MiB into the server → client direction
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${relay.port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* up/)
    const size = 100 << 20
    const res = await new Promise<{ status: number; sha: string; length: number }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: fwd, path: `/size/${size}`, agent: false }, (r) => {
        const h = crypto.createHash('sha256')
        let length = 0
        r.on('data', (d: Buffer) => (h.update(d), (length += d.length)))
        r.on('end', () => resolve({ status: r.statusCode!, sha: h.digest('hex'), length }))
        r.on('error', reject)
      }).on('error', reject)
    })
    const want = crypto.createHash('sha256')
    for (let left = size; left > 0; left -= BLOCK.length) want.update(BLOCK.subarray(0, Math.min(left, BLOCK.length)))
    expect(res.status).toBe(200)
    expect(res.length).toBe(size)
    expect(res.sha).toBe(want.digest('hex'))
    // One bit of one record was flipped, on the first connection; the client found it, the session moved to a second connection.
    expect(relay.flipped).toMatchObject({ pair: 0 })
    expect(relay.pairs.length).toBeGreaterThanOrEqual(2)
    await client.waitFor(/connection to .* lost \(.*authentication.*\); resuming the session/)
    await client.waitFor(/resumed on a new connection/)
    await server.waitFor(/session of laptop resumed from 127\.0\.0\.1/)
    expect(client.log.join('\n')).not.toMatch(/session to .* (up \(reconnect|failed)/)
    console.log(`tamper: bit flipped in record ${relay.flipped!.record} at byte ${relay.flipped!.offset} of the first connection; ${relay.pairs.length} connections; 100 MiB intact`)
    relay.close()
  })
})

describe('a replayed first flight', () => {
  it('recorded off the wire and sent again byte for byte: not acted on (the target sees the request once)', async () => {
    const { server, port } = await startServer()
    const relay = new SecureRelay(port)
    await relay.listen()
    const fwd = await freePort()
    // --on-demand: the session starts with the first connection, whose request rides in the first flight.
    const client = synmux(['client', '--server', `127.0.0.1:${relay.port}`, ...keys.client, '--on-demand', '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/forwarding to/)
    const path = `/once-${crypto.randomBytes(6).toString('hex')}`
    const r = await httpRequest(fwd, path)
    expect(r.body.toString()).toBe(`you asked for ${path}`)
    expect(seen.get(path)).toBe(1)
    const flight = relay.pairs[0]!.firstFlight!
    // The flight carried the session HELLO, the OPEN and the request (about 200 bytes of 0-RTT data), and the server acted on it.
    expect(flight.length).toBeGreaterThan(112 + 60 + path.length)
    await server.waitFor(/first flight from 127\.0\.0\.1 \(laptop\): 0-RTT accepted/)
    // An attacker replays it on a new connection, twice.
    const replies: Buffer[] = []
    for (let i = 0; i < 2; i++) {
      const s = net.connect(port, '127.0.0.1')
      s.on('error', () => {})
      let got = Buffer.alloc(0)
      s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
      s.write(flight)
      await until(() => got.length > 0, 'an answer to the replayed flight')
      replies.push(got)
      await new Promise((r) => setTimeout(r, 300))
      s.destroy()
    }
    await until(() => server.log.filter((l) => /first flight from 127\.0\.0\.1 \(laptop\): 0-RTT rejected \(replayed\)/.test(l)).length === 2, 'two rejections')
    // The answer is a message 2 (which only the holder of the recorded ephemeral key can read), and nothing else.
    for (const got of replies) expect(got.length).toBe(2 + got.readUInt16BE(0))
    expect(seen.get(path)).toBe(1)
    // The real client is undisturbed.
    expect((await httpRequest(fwd, `${path}-again`)).status).toBe(200)
    relay.close()
  })
})

describe('clock skew beyond the replay window', () => {
  it('the first flight is rejected for its clock; its request follows as records and is delivered exactly once', async () => {
    const { server, port } = await startServer()
    const client = new TunnelClient({
      server: { host: '127.0.0.1', port },
      secure: { staticKey: keys.clientKeys.privateKey, serverKey: keys.serverKeys.publicKey, clock: () => Date.now() - 120_000 },
      onDemand: true,
    })
    try {
      const path = `/skewed-${crypto.randomBytes(6).toString('hex')}`
      const st = await client.open({ host: '127.0.0.1', port: targetPort }, Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
      const body = await new Promise<string>((resolve, reject) => {
        let b = ''
        st.on('data', (d: Buffer) => (b += d))
        st.on('end', () => resolve(b))
        st.on('error', reject)
      })
      st.destroy()
      expect(body).toMatch(/^HTTP\/1\.1 200/)
      expect(body).toContain(`you asked for ${path}`)
      const info = (client.session!.duplex as SecureChannel).info!
      expect(info.earlyData).toBe('rejected')
      expect(info.earlyDataRejectReason).toBe('clock')
      await server.waitFor(/first flight from 127\.0\.0\.1 \(laptop\): 0-RTT rejected \(clock\)/)
      expect(seen.get(path)).toBe(1)
    } finally {
      await client.close()
    }
  })
})

describe('RESUME of another client key', () => {
  it('naming a live session of another key is answered as for an unknown id; that session is undisturbed', async () => {
    const other = keys.another('phone')
    const { server, port } = await startServer()
    const owner = new TunnelClient({ server: { host: '127.0.0.1', port }, secure: { staticKey: keys.clientKeys.privateKey, serverKey: keys.serverKeys.publicKey } }).start()
    try {
      await new Promise((r) => owner.once('up', r))
      const id = owner.session!.id!
      // An authorized client of another key sends RESUME for that id (and, to compare, for a random one).
      const answer = async (sessionId: Buffer): Promise<Buffer> => {
        const ch = secure(net.connect(port, '127.0.0.1'), { role: 'client', staticKey: other.keys.privateKey, serverKey: keys.serverKeys.publicKey })
        ch.on('error', () => {})
        const received = Buffer.alloc(8)
        ch.write(
          encodeHello({
            kind: HelloKind.RESUME,
            role: 'client',
            capabilities: Capability.RESUME,
            sessionId,
            initialWindow: 262_144,
            maxFrameSize: 65_536,
            maxStreams: 1024,
            extensions: [[HelloExtension.RECEIVED, received], [HelloExtension.REPLAY_BUFFER, Buffer.from([0, 0x40, 0, 0])]],
          }),
        )
        let got = Buffer.alloc(0)
        ch.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
        await until(() => decodeHello(got) !== null, 'the answer HELLO')
        ch.destroy()
        return got.subarray(0, decodeHello(got)!.size)
      }
      const a = decodeHello(await answer(id))!.hello
      const b = decodeHello(await answer(crypto.randomBytes(32)))!.hello
      for (const h of [a, b]) {
        expect(h.kind).toBe(HelloKind.NEW)
        expect(h.extensions.get(HelloExtension.RESUME_REFUSED)).toEqual(Buffer.from([1])) // unknown id
      }
      expect(a.sessionId.equals(id)).toBe(false)
      // The owner's session never noticed.
      const st = await owner.open({ host: '127.0.0.1', port: targetPort }, Buffer.from('GET /owner HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
      const body = await new Promise<string>((resolve) => {
        let t = ''
        st.on('data', (d: Buffer) => (t += d)).on('end', () => resolve(t))
      })
      st.destroy()
      expect(body).toContain('you asked for /owner')
      expect(owner.stats().resumes).toBe(0)
      expect(owner.session!.id!.equals(id)).toBe(true)
      expect(server.log.join('\n')).not.toMatch(/session of laptop resumed/)
    } finally {
      await owner.close()
    }
  })
})
