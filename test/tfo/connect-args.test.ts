/**
 * createConnection takes what net.createConnection takes for TCP:
 * (options[, listener]), (port[, host][, listener]), string ports; a path
 * is refused with a clear error (TCP Fast Open has no Unix sockets), a bad
 * port with ERR_SOCKET_BAD_PORT — all before any socket exists.
 */
import dns from 'node:dns'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { connectWithData, createConnection, createServer, type FastOpenSocket } from 'synmux'
import { close, fdCount, isLinux, listen, readAll, runNode } from '../helpers'

/** A TFO echo server that ends after the first chunk. */
async function echoServer(host: string) {
  const server = createServer((s) => s.on('error', () => {}).once('data', (d) => s.end(d)))
  const port = await listen(server, host)
  return { server, port }
}

/** Writes `msg`, reads to the end, and reports whether the connect listener ran first. */
async function exchange(socket: FastOpenSocket, connected: Promise<void>, msg: string) {
  socket.write(msg)
  const [text] = await Promise.all([readAll(socket).then(String), connected])
  return text
}

describe('createConnection(port[, host][, listener]) as net.createConnection', () => {
  it('(port, host, listener), with the port as a number and as a string', async () => {
    const { server, port } = await echoServer('127.0.0.1')
    for (const p of [port, String(port)]) {
      let listener!: () => void
      const connected = new Promise<void>((resolve) => (listener = resolve))
      const socket = createConnection(p, '127.0.0.1', listener)
      expect(socket).toBeInstanceOf(net.Socket)
      expect(await exchange(socket, connected, `to ${typeof p}`)).toBe(`to ${typeof p}`)
    }
    await close(server)
  })

  it("(port[, listener]) connects to 'localhost' as net does", async () => {
    // the address net would pick for 'localhost' (the first dns.lookup answer)
    const { address } = await dns.promises.lookup('localhost')
    const { server, port } = await echoServer(address)
    let listener!: () => void
    const connected = new Promise<void>((resolve) => (listener = resolve))
    expect(await exchange(createConnection(port, listener), connected, 'a')).toBe('a')
    expect(await exchange(createConnection(String(port)), Promise.resolve(), 'b')).toBe('b')
    await close(server)
  })

  it('(options, listener) takes a string port too, and so does connectWithData', async () => {
    const { server, port } = await echoServer('127.0.0.1')
    let listener!: () => void
    const connected = new Promise<void>((resolve) => (listener = resolve))
    expect(await exchange(createConnection({ host: '127.0.0.1', port: String(port) }, listener), connected, 'c')).toBe('c')
    const s = await connectWithData({ host: '127.0.0.1', port: String(port) }, 'd')
    expect(String(await readAll(s))).toBe('d')
    await close(server)
  })
})

describe('createConnection refuses what TCP Fast Open cannot do, before any socket exists', () => {
  const cases: [string, unknown[], string, string, RegExp][] = [
    ['a Unix socket path', ['/tmp/synmux.sock'], 'TypeError', 'ERR_INVALID_ARG_VALUE', /Unix domain sockets/],
    ['a path with a listener', ['/tmp/synmux.sock', () => {}], 'TypeError', 'ERR_INVALID_ARG_VALUE', /TCP only/],
    ['options.path', [{ path: '/tmp/synmux.sock' }], 'TypeError', 'ERR_INVALID_ARG_VALUE', /Unix domain sockets/],
    ['port 0', [0], 'RangeError', 'ERR_SOCKET_BAD_PORT', /options\.port/],
    ['port 65536', [65536, '127.0.0.1'], 'RangeError', 'ERR_SOCKET_BAD_PORT', /65536/],
    ['port -1', [-1], 'RangeError', 'ERR_SOCKET_BAD_PORT', /-1/],
    ["port '99999'", ['99999'], 'RangeError', 'ERR_SOCKET_BAD_PORT', /99999/],
    ['options.port NaN', [{ port: NaN }], 'RangeError', 'ERR_SOCKET_BAD_PORT', /NaN/],
    ['no arguments', [], 'TypeError', 'ERR_INVALID_ARG_TYPE', /options/],
    ['a listener that is not a function', [80, '127.0.0.1', 'nope'], 'TypeError', 'ERR_INVALID_ARG_TYPE', /connectListener/],
  ]
  for (const [what, args, type, code, message] of cases) {
    it(`${what}: ${type} ${code}`, () => {
      const before = isLinux ? fdCount() : 0
      let err: (Error & { code?: string }) | undefined
      try {
        ;(createConnection as (...a: unknown[]) => unknown)(...args)
      } catch (e) {
        err = e as Error
      }
      expect(err?.constructor.name).toBe(type)
      expect(err?.code).toBe(code)
      expect(err?.message).toMatch(message)
      if (isLinux) expect(fdCount()).toBe(before)
    })
  }
})

describe.skipIf(!isLinux)('noDelay and keepAlive reach the kernel on every connect path', () => {
  // A socket over a descriptor synmux connected itself (sendto, the deferred
  // macOS path, Windows' ConnectEx) must not hand these to Node's
  // constructor: Node would take them as set and skip the setsockopt.
  for (const method of ['', 'sendto', 'adopt', 'handle']) {
    it(`connectWithData and createConnection (${method || 'default'})`, async () => {
      const r = await runNode('socket-options.mjs', { SYNMUX_LINUX_TFO_METHOD: method })
      const both = { noDelay: true, keepAlive: true }
      expect(r).toEqual({ connectWithData0: both, connectWithData1: both, createConnection: both })
    })
  }
})
