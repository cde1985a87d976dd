/**
 * TCP Fast Open end to end on real loopback sockets: data in the SYN,
 * exactly-once delivery at every size, every fallback path and its reason.
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { connectWithData, createConnection, createServer, fastOpenInfo, fastOpenSupport } from 'synmux'
import {
  canUseNetns,
  close,
  freshLoopback,
  isLinux,
  listen,
  readAll,
  runInNetns,
  runNode,
  serverTfoOn,
  sha256,
  skipReason,
} from '../helpers'

const needServerTfo = skipReason(
  !isLinux ? 'TFO end-to-end tests run on Linux' : !serverTfoOn() ? 'net.ipv4.tcp_fastopen has no server bit: run `sysctl -w net.ipv4.tcp_fastopen=3` (as .ci/run does)' : false,
)
const needNetns = skipReason(!canUseNetns() ? 'needs root and `ip netns` for a private network namespace' : false)

/** A sink server: reads everything, replies with the sha256 of what it got and its fastOpenInfo. */
function sinkServer() {
  const seen: { synData: boolean | null; child: boolean | null }[] = []
  const server = createServer((socket) => {
    const chunks: Buffer[] = []
    let first = true
    socket.on('data', (c: Buffer) => {
      if (first) {
        first = false
        const i = fastOpenInfo(socket)
        seen.push({ synData: i.synData, child: i.fastOpenChild })
      }
      chunks.push(c)
    })
    socket.on('end', () => {
      const all = Buffer.concat(chunks)
      socket.end(JSON.stringify({ sha: sha256(all), length: all.length }))
    })
    socket.on('error', () => {})
  })
  return { server, seen }
}

async function exchange(host: string, port: number, data: Buffer, extra: object = {}) {
  const socket = await connectWithData({ host, port, ...extra }, data)
  socket.end()
  const reply = JSON.parse((await readAll(socket)).toString())
  return { socket, reply, report: socket.fastOpen }
}

describe.skipIf(needServerTfo)('data in the SYN', () => {
  it('the first connection asks for a cookie, the second carries its data in the SYN (IPv4)', async () => {
    const host = freshLoopback() // no cookie cached for this address yet
    const { server, seen } = sinkServer()
    const port = await listen(server, host)
    const data = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')

    const first = await exchange(host, port, data)
    expect(first.reply).toEqual({ sha: sha256(data), length: data.length })
    expect(first.report).toEqual({ attempted: true, accepted: false, reason: 'no-cookie' })
    expect(seen[0]).toEqual({ synData: false, child: false })

    const second = await exchange(host, port, data)
    expect(second.reply).toEqual({ sha: sha256(data), length: data.length })
    expect(second.report).toEqual({ attempted: true, accepted: true })
    expect(seen[1]).toEqual({ synData: true, child: true })
    await close(server)
  })

  it('works over IPv6 (::1)', async () => {
    const { server, seen } = sinkServer()
    const port = await listen(server, '::1')
    const data = Buffer.from('hello over v6')
    await exchange('::1', port, data) // may or may not have a cookie already
    const { reply, report } = await exchange('::1', port, data)
    expect(reply.sha).toBe(sha256(data))
    expect(report).toEqual({ attempted: true, accepted: true })
    expect(seen.at(-1)).toEqual({ synData: true, child: true })
    await close(server)
  })

  it('resolves host names itself and still puts data in the SYN', async () => {
    const { server, seen } = sinkServer()
    const port = await listen(server, '127.0.0.1')
    await exchange('localhost', port, Buffer.from('warm'), { family: 4 })
    const { report } = await exchange('localhost', port, Buffer.from('named'), { family: 4 })
    expect(report.accepted).toBe(true)
    expect(seen.at(-1)!.synData).toBe(true)
    await close(server)
  })

  for (const [family, host] of [
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const) {
    it(`delivers 0 B, 1 B, 1 KiB, 64 KiB and 8 MiB byte-identical, exactly once (IPv${family})`, async () => {
      const { server } = sinkServer()
      const port = await listen(server, host)
      await exchange(host, port, Buffer.from('cookie')) // make sure a cookie exists
      for (const size of [0, 1, 1024, 64 * 1024, 8 * 1024 * 1024]) {
        const data = Buffer.alloc(size)
        for (let i = 0; i < size; i++) data[i] = (i * 131 + size) & 0xff
        const { reply, report } = await exchange(host, port, data)
        expect(reply).toEqual({ sha: sha256(data), length: size })
        if (size === 0) expect(report).toEqual({ attempted: false, accepted: false, reason: 'no-data' })
        else expect(report).toEqual({ attempted: true, accepted: true })
      }
      await close(server)
    })
  }

  it('a connection without cookie still delivers large data exactly once', async () => {
    const host = freshLoopback()
    const { server } = sinkServer()
    const port = await listen(server, host)
    const data = Buffer.alloc(3 * 1024 * 1024, 0x5a)
    const { reply, report } = await exchange(host, port, data)
    expect(reply).toEqual({ sha: sha256(data), length: data.length })
    expect(report.reason).toBe('no-cookie')
    await close(server)
  })

  it('keeps order and backpressure when the caller writes more right away', async () => {
    const { server } = sinkServer()
    const port = await listen(server, '127.0.0.1')
    await exchange('127.0.0.1', port, Buffer.from('warm'))
    const head = Buffer.alloc(100_000, 1)
    const socket = await connectWithData({ host: '127.0.0.1', port }, head)
    const parts: Buffer[] = [head]
    let sawFalse = false
    for (let i = 0; i < 64; i++) {
      const chunk = Buffer.alloc(64 * 1024, i)
      parts.push(chunk)
      if (!socket.write(chunk)) {
        sawFalse = true
        await new Promise((r) => socket.once('drain', r))
      }
    }
    socket.end()
    const reply = JSON.parse((await readAll(socket)).toString())
    expect(reply.sha).toBe(sha256(Buffer.concat(parts)))
    expect(sawFalse).toBe(true)
    await close(server)
  })

  it('createConnection with a host name: the descriptor is set up when Node resolves it', async () => {
    const { server, seen } = sinkServer()
    const port = await listen(server, '127.0.0.1')
    await exchange('127.0.0.1', port, Buffer.from('warm'))
    const socket = createConnection({ host: 'localhost', port, family: 4 })
    socket.end('by name')
    const reply = JSON.parse((await readAll(socket)).toString())
    expect(reply.sha).toBe(sha256(Buffer.from('by name')))
    expect(socket.fastOpen).toEqual({ attempted: true, accepted: true })
    expect(seen.at(-1)!.synData).toBe(true)
    await close(server)
  })

  it('a socket that writes nothing still connects (server speaks first)', async () => {
    const server = createServer((s) => {
      s.resume()
      s.end('220 ready\r\n')
    })
    const port = await listen(server, '127.0.0.1')
    await exchange('127.0.0.1', port, Buffer.from('cookie')).catch(() => {}) // warm the cookie
    const socket = createConnection({ host: '127.0.0.1', port })
    const got = await readAll(socket)
    expect(got.toString()).toBe('220 ready\r\n')
    expect(socket.fastOpen.attempted).toBe(true)
    expect(socket.fastOpen.accepted).toBe(false)
    expect(socket.fastOpen.reason).toBe('no-data')
    await close(server)
  })

  it('createConnection: the first write rides in the SYN, and `connect` fires Node style', async () => {
    const { server, seen } = sinkServer()
    const port = await listen(server, '127.0.0.1')
    await exchange('127.0.0.1', port, Buffer.from('warm'))
    let connected = false
    const socket = createConnection({ host: '127.0.0.1', port }, () => (connected = true))
    expect(socket).toBeInstanceOf(net.Socket)
    socket.end('first bytes')
    const reply = JSON.parse((await readAll(socket)).toString())
    expect(connected).toBe(true)
    expect(reply.sha).toBe(sha256(Buffer.from('first bytes')))
    expect(socket.fastOpen).toEqual({ attempted: true, accepted: true })
    expect(seen.at(-1)!.synData).toBe(true)
    await close(server)
  })
})

describe.skipIf(needServerTfo || needNetns)('in a private network namespace', () => {
  it('client TCP_INFO, server fastOpenInfo and the netstat counters agree', async () => {
    const r = await runInNetns('echo-exchange.mjs', { tcpFastOpen: 3, env: { CONNECTIONS: '2' } })
    const [first, second] = r.connections
    expect(first.intact && second.intact).toBe(true)
    expect(first.client).toEqual({ attempted: true, accepted: false, reason: 'no-cookie' })
    expect(first.server).toMatchObject({ synData: false, fastOpenChild: false })
    expect(first.counters).toEqual({ active: 0, passive: 0, cookieReqd: 1 })
    expect(second.client).toEqual({ attempted: true, accepted: true })
    expect(second.server).toMatchObject({ synData: true, fastOpenChild: true })
    expect(second.counters).toEqual({ active: 1, passive: 1, cookieReqd: 0 })
  })

  it('with the OS switch off (tcp_fastopen=0) data is delivered and the reason is disabled-by-os', async () => {
    const r = await runInNetns('echo-exchange.mjs', { tcpFastOpen: 0, env: { CONNECTIONS: '2' } })
    expect(r.support).toMatchObject({ client: false, server: false, reason: 'disabled-by-os' })
    for (const c of r.connections) {
      expect(c.intact).toBe(true)
      expect(c.client).toEqual({ attempted: false, accepted: false, reason: 'disabled-by-os' })
      expect(c.server.synData).toBe(false)
      expect(c.counters.active).toBe(0)
    }
  })

  it('with only the client bit (tcp_fastopen=1) the server takes no SYN data and the data still arrives', async () => {
    const r = await runInNetns('echo-exchange.mjs', { tcpFastOpen: 1, env: { CONNECTIONS: '2' } })
    expect(r.support).toMatchObject({ client: true, server: false })
    for (const c of r.connections) {
      expect(c.intact).toBe(true)
      expect(c.client.accepted).toBe(false)
      expect(c.server.synData).toBe(false)
    }
  })

  it('the sendto(MSG_FASTOPEN) path (kernels before 4.11) delivers and reports the same', async () => {
    const r = await runInNetns('echo-exchange.mjs', {
      tcpFastOpen: 3,
      env: { CONNECTIONS: '2', SYNMUX_LINUX_TFO_METHOD: 'sendto', PAYLOAD: 'x'.repeat(5000) },
    })
    const [first, second] = r.connections
    expect(first.intact && second.intact).toBe(true)
    expect(first.client).toEqual({ attempted: true, accepted: false, reason: 'no-cookie' })
    expect(second.client).toEqual({ attempted: true, accepted: true })
    expect(second.counters).toEqual({ active: 1, passive: 1, cookieReqd: 0 })
  })

  it('fastOpen: false opts out', async () => {
    const r = await runInNetns('echo-exchange.mjs', { tcpFastOpen: 3, env: { CONNECTIONS: '2', OPT_OUT: '1' } })
    for (const c of r.connections) {
      expect(c.intact).toBe(true)
      expect(c.client).toEqual({ attempted: false, accepted: false, reason: 'opted-out' })
      expect(c.counters.active).toBe(0)
    }
  })
})

describe('without the addon', () => {
  it('connectWithData still delivers, and says why there was no TFO', async () => {
    const r = await runNode('echo-exchange.mjs', { SYNMUX_DISABLE_ADDON: '1', CONNECTIONS: '2' })
    expect(r.support).toMatchObject({ addon: false, client: false, server: false, reason: 'addon-unavailable' })
    expect(r.serverState).toMatchObject({ enabled: false, reason: 'addon-unavailable' })
    for (const c of r.connections) {
      expect(c.intact).toBe(true)
      expect(c.client).toEqual({ attempted: false, accepted: false, reason: 'addon-unavailable' })
      expect(c.server.synData).toBe(null)
    }
  })
})

describe('fastOpenSupport()', () => {
  it('reports the addon and the OS setting', () => {
    const s = fastOpenSupport()
    expect(s.platform).toBe(process.platform)
    expect(typeof s.detail).toBe('string')
    if (isLinux) {
      expect(s.addon).toBe(true)
      expect(s.setting).toBeTypeOf('number')
      expect(s.server).toBe(serverTfoOn())
    }
  })
})
