// REDIRECT (docs/PROTOCOL.md 13.10): a RESUME or JOIN that reaches a server
// which knows the session lives on another one is answered with HELLO(NEW,
// RESUME_REFUSED 5, REDIRECT); the client resumes (or adds its lane) there,
// and goes there for every later resume and lane of that session. Two
// registries on loopback, each with a placement hook that knows the other's
// ids; the client's connect function plays a balancer that sends its
// connections to the wrong server unless told where to go.
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeRedirect, encodeRedirect, HelloExtension, HelloKind, ResumeRefused, Session, SessionRegistry, encodeHello, decodeHello } from 'synmux'
import { until } from './resume-helpers.mjs'

const spec = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'PROTOCOL.md'), 'utf8')

describe('the REDIRECT extension value', () => {
  it("is the spec's example, byte for byte", () => {
    const m = /For example `([0-9A-F ]+)`\s+sends the client to 10\.0\.1\.2 port 9000/.exec(spec)
    expect(m).not.toBe(null)
    const bytes = Buffer.from(m[1].replace(/ /g, ''), 'hex')
    expect(encodeRedirect({ host: '10.0.1.2', port: 9000 })).toEqual(bytes)
    expect(decodeRedirect(bytes)).toEqual({ host: '10.0.1.2', port: 9000 })
  })

  it('carries IPv6 addresses, and rejects what a client must not follow', () => {
    for (const host of ['2001:db8::1', '::1', 'fe80::1:2:3:4', '2001:db8:0:0:1::', '1:2:3:4:5:6:7:8']) {
      const v = encodeRedirect({ host, port: 443 })
      expect(v.length).toBe(18)
      const back = decodeRedirect(v)
      expect(back.port).toBe(443)
      expect(net.isIPv6(back.host)).toBe(true)
      expect(encodeRedirect(back)).toEqual(v)
    }
    expect(decodeRedirect(encodeRedirect({ host: '::ffff:192.0.2.7', port: 1 }))).toEqual({ host: '192.0.2.7', port: 1 })
    const good = encodeRedirect({ host: '192.0.2.7', port: 9 })
    expect(decodeRedirect(good.subarray(0, 17))).toBe(null)
    expect(decodeRedirect(Buffer.concat([good, Buffer.alloc(1)]))).toBe(null)
    expect(decodeRedirect(Buffer.concat([Buffer.alloc(2), good.subarray(2)]))).toBe(null) // port 0
    for (const host of ['0.0.0.0', '::', '224.0.0.1', '239.1.2.3', 'ff02::1']) {
      const v = Buffer.alloc(18)
      v.writeUInt16BE(9, 0)
      ;(host.includes(':') ? encodeRedirectLoose(host) : encodeRedirect({ host, port: 9 })).copy(v)
      expect(decodeRedirect(v), host).toBe(null)
    }
    expect(() => encodeRedirect({ host: 'example.com', port: 9 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => encodeRedirect({ host: '10.0.0.1', port: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})

/** A REDIRECT value for any IPv6 host (the unspecified and multicast ones included). */
function encodeRedirectLoose(host) {
  const v = Buffer.alloc(18)
  v.writeUInt16BE(9, 0)
  const s = new net.SocketAddress({ address: host, family: 'ipv6' })
  // Expand `host` by hand: the encoder refuses nothing here, only the decoder judges.
  const [head, tail] = s.address.split('::')
  const hs = head ? head.split(':') : []
  const ts = tail ? tail.split(':') : []
  const groups = tail === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts]
  groups.forEach((g, i) => v.writeUInt16BE(parseInt(g, 16), 2 + i * 2))
  return v
}

/** A server: a registry whose sessions echo, with a placement that sends `other`'s ids there. */
async function server(name, other) {
  const sockets = new Set()
  const self = { name, port: 0, connections: 0, registry: null, net: null }
  self.registry = new SessionRegistry({
    resumption: {},
    placement: {
      // The first byte names the server (a real layout is in PROTOCOL.md 13.10).
      newId: () => Buffer.concat([Buffer.from([name]), crypto.randomBytes(31)]),
      locate: (hello) => (hello.sessionId[0] === other.name ? encodeRedirect({ host: '127.0.0.1', port: other.port }) : 'here'),
    },
  })
  self.registry.on('session', (s) => {
    s.on('error', () => {})
    s.on('stream', (st) => {
      st.on('error', () => {})
      st.pipe(st)
    })
  })
  self.net = net.createServer({ allowHalfOpen: true }, (sock) => {
    self.connections++
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    self.registry.accept(sock)
  })
  await new Promise((r) => self.net.listen(0, '127.0.0.1', r))
  self.port = self.net.address().port
  self.kill = () => {
    for (const s of sockets) s.destroy()
  }
  self.close = async () => {
    for (const s of [...self.registry.sessions()]) s.destroy()
    await self.registry.close()
    self.kill()
    await new Promise((r) => self.net.close(r))
  }
  return self
}

const cleanup = []
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f()
})

/**
 * Servers A and B, each knowing the other's ids, and a "balancer": a client
 * connect function that sends the first connection to A and every later
 * one to B, unless told where to go (`asked` records what it was told).
 */
async function twoServers() {
  const a = { name: 0xa }
  const b = { name: 0xb }
  Object.assign(a, await server(0xa, b))
  Object.assign(b, await server(0xb, a))
  cleanup.push(() => a.close(), () => b.close())
  const asked = []
  let first = true
  const connect = (to) => {
    asked.push(to ?? null)
    const port = to ? to.port : first ? a.port : b.port
    first = false
    return net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  }
  return { a, b, asked, connect }
}

describe('a client whose RESUME reaches the wrong server', () => {
  it('follows the REDIRECT: resumes where the session lives, and goes straight there afterwards', async () => {
    const { a, b, asked, connect } = await twoServers()
    const session = new Session(connect(), { role: 'client', resumption: { connect, reconnectDelay: { min: 0, max: 0 } } })
    session.on('error', () => {})
    const redirects = []
    session.on('redirect', (to) => redirects.push(to))
    const st = session.open({ target: { host: 'echo', port: 1 } })
    const got = []
    st.on('data', (d) => got.push(d))
    const sent = []
    const say = async (text) => {
      sent.push(Buffer.from(text))
      st.write(text)
      await until(() => Buffer.concat(got).toString() === Buffer.concat(sent).toString(), `the echo of ${text}`)
    }
    await say('one')
    expect(session.id[0]).toBe(0xa)
    // The connection dies; the reconnect reaches B, which sends the client to A.
    a.kill()
    await until(() => session.stats().resumes === 1, 'the resume')
    expect(redirects).toEqual([{ host: '127.0.0.1', port: a.port }])
    expect(session.redirect).toEqual({ host: '127.0.0.1', port: a.port })
    expect(b.registry.stats().redirected).toBe(1)
    expect(b.registry.size).toBe(0) // B started no session
    await say('two')
    // Later resumes go straight to A.
    const bConnections = b.connections
    a.kill()
    await until(() => session.stats().resumes === 2, 'the second resume')
    await say('three')
    expect(b.connections).toBe(bConnections)
    expect(asked).toEqual([null, null, { host: '127.0.0.1', port: a.port }, { host: '127.0.0.1', port: a.port }])
    expect(session.destroyed).toBe(false)
    session.destroy()
  })

  it('a JOIN that reaches the wrong server: the lane is opened where the session lives', async () => {
    const { a, b, asked, connect } = await twoServers()
    const session = new Session(connect(), { role: 'client', lanes: 2, resumption: { connect } })
    session.on('error', () => {})
    const redirects = []
    session.on('redirect', (to) => redirects.push(to))
    await until(() => session.stats().lanes.filter((l) => l.state === 'open').length === 2, 'two lanes')
    expect(redirects).toEqual([{ host: '127.0.0.1', port: a.port }])
    expect(asked).toEqual([null, null, { host: '127.0.0.1', port: a.port }])
    expect(b.registry.stats().redirected).toBe(1)
    // Both lanes carry the session: an echo of 1 MiB comes back whole.
    const st = session.open({ target: { host: 'echo', port: 1 } })
    const data = crypto.randomBytes(1 << 20)
    const got = []
    st.on('data', (d) => got.push(d))
    st.end(data)
    await until(() => Buffer.concat(got).length === data.length, 'the echo')
    expect(Buffer.concat(got).equals(data)).toBe(true)
    session.destroy()
  })

  it('a REDIRECT that points back to where it came from is followed a few times, then the session is lost', async () => {
    // B redirects every RESUME to itself.
    const b = { name: 0xb }
    const a = { name: 0xa, port: 0 }
    Object.assign(a, await server(0xa, { name: -1 }))
    cleanup.push(() => a.close())
    const loop = net.createServer((sock) => {
      sock.on('error', () => {})
      sock.once('data', (d) => {
        const r = decodeHello(d)
        expect(r.hello.kind).toBe(HelloKind.RESUME)
        sock.end(encodeHello({ kind: HelloKind.NEW, role: 'server', capabilities: 0, sessionId: crypto.randomBytes(32), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 1, extensions: [[HelloExtension.RESUME_REFUSED, Buffer.from([ResumeRefused.ELSEWHERE])], [HelloExtension.REDIRECT, encodeRedirect({ host: '127.0.0.1', port: b.port })]] }))
      })
    })
    await new Promise((r) => loop.listen(0, '127.0.0.1', r))
    b.port = loop.address().port
    cleanup.push(() => new Promise((r) => loop.close(r)))
    let n = 0
    const connect = (to) => {
      n++
      return net.connect({ port: n === 1 ? a.port : to ? to.port : b.port, host: '127.0.0.1' })
    }
    const session = new Session(connect(), { role: 'client', resumption: { connect, reconnectDelay: { min: 0, max: 0 } } })
    let failed = null
    session.on('error', (e) => (failed = e))
    await new Promise((r) => session.once('handshake', r))
    a.kill()
    await until(() => session.destroyed, 'the session to fail')
    expect(failed).toMatchObject({ code: 'SYNMUX_SESSION_LOST', wireCode: ResumeRefused.ELSEWHERE })
    // The first attempt, then four REDIRECTs followed, the fifth refused.
    expect(n).toBe(1 + 5)
  })
})
