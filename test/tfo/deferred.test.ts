/**
 * createConnection() through a deferred connect and `new net.Socket({ fd })`
 * (src/tfo/darwin.ts): the macOS path, which touches no Node internal. It
 * runs here on Linux with SYNMUX_LINUX_TFO_METHOD=adopt (TCP_FASTOPEN_CONNECT
 * + connect() instead of connectx(CONNECT_RESUME_ON_READ_WRITE)), on real
 * loopback sockets: data in the SYN, exactly-once delivery, host names
 * through a dual-stack socket, the server-speaks-first case, end() with
 * nothing written, refused connects, lookup errors, no leaked descriptors.
 */
import crypto from 'node:crypto'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { close, fdCount, freshLoopback, isLinux, listen, serverTfoOn, skipReason } from '../helpers'

process.env.SYNMUX_LINUX_TFO_METHOD = 'adopt'
const synmux = await import('synmux')
const { createConnection, createServer, fastOpenInfo } = synmux

const skip = skipReason(!isLinux ? 'the adopt path is exercised on Linux (macOS runs it natively in CI)' : !serverTfoOn() ? 'net.ipv4.tcp_fastopen has no server bit (sysctl -w net.ipv4.tcp_fastopen=3)' : false)
const digest = (b: Buffer) => `${b.length} ${crypto.createHash('sha256').update(b).digest('hex')}`

/** A server that replies with the digest of all it read, and records whether the first segment came in the SYN. */
function sink() {
  const synData: boolean[] = []
  const server = createServer((s) => {
    const chunks: Buffer[] = []
    let first = true
    s.on('data', (d: Buffer) => {
      if (first) {
        first = false
        synData.push(fastOpenInfo(s).synData === true)
      }
      chunks.push(d)
    })
    s.on('end', () => s.end(digest(Buffer.concat(chunks))))
    s.on('error', () => {})
  })
  return { server, synData }
}

function exchange(socket: net.Socket): Promise<{ reply: string; err: NodeJS.ErrnoException | null }> {
  return new Promise((resolve) => {
    let reply = ''
    let err: NodeJS.ErrnoException | null = null
    socket.on('data', (d) => (reply += d))
    socket.on('error', (e) => (err = e))
    socket.on('close', () => resolve({ reply, err }))
  })
}

describe.skipIf(skip)('createConnection by deferred connect + new net.Socket({ fd })', () => {
  it('the second connection carries its writes in the SYN; every byte arrives once, in order (IPv4 literal)', async () => {
    const host = freshLoopback()
    const { server, synData } = sink()
    const port = await listen(server, host)
    for (const round of [1, 2]) {
      const parts = [Buffer.from('GET / HTTP/1.1\r\n'), Buffer.from('Host: a\r\n\r\n'), crypto.randomBytes(1 << 20)]
      let connected = false
      const s = createConnection({ host, port }, () => (connected = true))
      for (const p of parts) s.write(p)
      s.end()
      const { reply, err } = await exchange(s)
      expect(err).toBeNull()
      expect(connected).toBe(true)
      expect(reply).toBe(digest(Buffer.concat(parts)))
      if (round === 1) expect(s.fastOpen).toEqual({ attempted: true, accepted: false, reason: 'no-cookie' })
      else expect(s.fastOpen).toEqual({ attempted: true, accepted: true })
    }
    expect(synData).toEqual([false, true])
    await close(server)
  })

  it('a host name gets a dual-stack socket; an IPv4 answer still reports IPv4 and carries SYN data', async () => {
    const host = freshLoopback()
    let synData: boolean[] = []
    const server = createServer((c) => {
      c.once('data', () => {
        synData.push(fastOpenInfo(c).synData === true)
        c.write('pong')
      })
      c.on('end', () => c.end())
    })
    const port = await listen(server, host)
    const lookups: unknown[] = []
    // Synchronous: under this Linux test hook the socket must be connected
    // before the event loop polls it (see darwin.ts; macOS has no such limit).
    const lookup = (_h: string, _o: unknown, cb: (e: null, a: string, f: number) => void) => cb(null, host, 4)
    for (let i = 0; i < 2; i++) {
      const s = createConnection({ host: 'tfo.test', port, lookup: lookup as never })
      s.on('lookup', (...a) => lookups.push(a.slice(1, 4)))
      s.write('ping')
      let remote: unknown[] = []
      s.once('data', () => {
        remote = [s.remoteAddress, s.remoteFamily, s.remotePort]
        s.end()
      })
      const { reply, err } = await exchange(s)
      expect(err).toBeNull()
      expect(reply).toBe('pong')
      expect(remote).toEqual([host, 'IPv4', port])
    }
    expect(lookups).toEqual([
      [host, 4, 'tfo.test'],
      [host, 4, 'tfo.test'],
    ])
    expect(synData).toEqual([false, true])
    synData = []
    await close(server)
  })

  it('IPv6 (::1)', async () => {
    const { server } = sink()
    const port = await listen(server, '::1')
    for (let i = 0; i < 2; i++) {
      const s = createConnection({ host: '::1', port })
      s.end('over v6')
      const { reply, err } = await exchange(s)
      expect(err).toBeNull()
      expect(reply).toBe(digest(Buffer.from('over v6')))
      if (i === 1) expect(s.fastOpen).toEqual({ attempted: true, accepted: true })
    }
    await close(server)
  })

  it('a server that speaks first: with a cookie the SYN leaves empty and the greeting arrives (no-data)', async () => {
    const host = freshLoopback()
    const server = createServer((s) => s.on('error', () => {}).end('hello first'))
    const port = await listen(server, host)
    for (const round of [1, 2]) {
      const s = createConnection({ host, port })
      const { reply, err } = await exchange(s.on('end', () => s.end()))
      expect(err).toBeNull()
      expect(reply).toBe('hello first')
      // Linux sends the first SYN at once to ask for a cookie; macOS always defers it.
      if (round === 2) expect(s.fastOpen).toMatchObject({ attempted: true, accepted: false, reason: 'no-data' })
    }
    await close(server)
  })

  it('end() with nothing written starts the handshake and the peer sees a clean end', async () => {
    const host = freshLoopback()
    const { server } = sink()
    const port = await listen(server, host)
    const s = createConnection({ host, port })
    s.end()
    const { reply, err } = await exchange(s)
    expect(err).toBeNull()
    expect(reply).toBe(digest(Buffer.alloc(0)))
    await close(server)
  })

  it('a refused connect is a Node-style connect error, with or without a cookie, and leaks no descriptor', async () => {
    const host = freshLoopback()
    const { server } = sink()
    const port = await listen(server, host)
    const warm = createConnection({ host, port })
    warm.end('warm')
    await exchange(warm)
    await close(server) // the cookie stays cached for `host`
    const before = fdCount()
    for (let i = 0; i < 50; i++) {
      const s = createConnection({ host, port })
      s.write('x')
      const { err } = await exchange(s)
      expect(err).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', address: host, port })
    }
    await new Promise((r) => setTimeout(r, 50))
    expect(fdCount()).toBe(before)
  })

  it('a failed lookup is emitted as the lookup error, after a lookup event', async () => {
    const s = createConnection({ host: 'nowhere.test', port: 80, lookup: ((_h: string, _o: unknown, cb: (e: Error) => void) => cb(Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' }))) as never })
    let looked = false
    s.on('lookup', () => (looked = true))
    s.write('never sent')
    const { err } = await exchange(s)
    expect(looked).toBe(true)
    expect(err).toMatchObject({ code: 'ENOTFOUND' })
  })
})
