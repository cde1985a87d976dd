/**
 * Failure paths: Node-style errors for refused, unreachable, timed-out and
 * aborted connects; invalid input rejected before any socket exists; no
 * descriptor leaked by failing connects.
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { connectWithData, createConnection, createServer, enableFastOpen, fastOpenInfo } from 'synmux'
import { canUseNetns, close, DEAD_END_VETH, fdCount, freshLoopback, isLinux, listen, runInNetns, runNode, skipReason } from '../helpers'

const needNetns = skipReason(!canUseNetns() ? 'needs root and `ip netns` for a private network namespace' : false)

/** A port on `host` with nothing listening (bound then closed). */
async function closedPort(host: string): Promise<number> {
  const s = net.createServer()
  const port = await listen(s, host)
  await close(s)
  return port
}

/** Gives `host` a TFO cookie, so the next SYNs to it carry data. */
async function warmCookie(host: string): Promise<void> {
  const server = createServer((s) => s.on('error', () => {}).resume().end())
  const port = await listen(server, host)
  for (let i = 0; i < 2; i++) {
    const s = await connectWithData({ host, port }, 'warm')
    s.end()
    s.resume()
    await new Promise((r) => s.on('close', r))
  }
  await close(server)
}

describe('connect errors', () => {
  it('ECONNREFUSED without a cookie: a Node-style error', async () => {
    const host = freshLoopback()
    const port = await closedPort(host)
    const err = await connectWithData({ host, port }, 'x').catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err).toMatchObject({ code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address: host, port })
    expect(err.message).toBe(`connect ECONNREFUSED ${host}:${port}`)
  })

  it('ECONNREFUSED when the SYN carried data (cookie cached): the same error, not a read error', async () => {
    const host = freshLoopback()
    await warmCookie(host)
    const port = await closedPort(host)
    for (const method of ['handle', 'sendto']) {
      const err = await connectWithData({ host, port }, 'x').catch((e) => e)
      expect(err, method).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', address: host, port })
    }
  })

  it('createConnection emits the error on the socket, as net does', async () => {
    const host = freshLoopback()
    const port = await closedPort(host)
    const socket = createConnection({ host, port })
    socket.write('x')
    const err = await new Promise<NodeJS.ErrnoException>((r) => socket.once('error', r))
    expect(err.code).toBe('ECONNREFUSED')
  })

  it('tries the next address of a name when one refuses', async () => {
    // The client destroys its socket at once: the server's side may see ECONNRESET.
    const server = createServer((s) => s.on('error', () => {}).resume().end('ok'))
    const port = await listen(server, '127.0.0.1')
    const deadV6 = await closedPort('::1').catch(() => undefined)
    // 'localhost' resolves to ::1 and 127.0.0.1; only the IPv4 one listens on `port`
    // (::1 refuses unless the port happens to be taken there: make sure it is not).
    if (deadV6 !== undefined) {
      const lookup = (_h: string, _o: unknown, cb: (e: null, a: { address: string; family: number }[]) => void) =>
        cb(null, [
          { address: '::1', family: 6 },
          { address: '127.0.0.1', family: 4 },
        ])
      const s = await connectWithData({ host: 'localhost', port, lookup: lookup as never }, 'hi')
      expect(s.remoteAddress).toBe('127.0.0.1')
      s.destroy()
    }
    await close(server)
  })

  it('a lookup that never answers: timeout rejects with ETIMEDOUT, abort with AbortError', async () => {
    const never = () => {}
    const t = await connectWithData({ host: 'stuck.invalid', port: 80, timeout: 100, lookup: never as never }, 'x').catch((e) => e)
    expect(t).toMatchObject({ code: 'ETIMEDOUT', syscall: 'connect' })
    const ac = new AbortController()
    const p = connectWithData({ host: 'stuck.invalid', port: 80, signal: ac.signal, lookup: never as never }, 'x')
    ac.abort()
    expect(await p.catch((e) => e)).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' })
  })

  it('an already aborted signal rejects at once', async () => {
    const err = await connectWithData({ host: '127.0.0.1', port: 9, signal: AbortSignal.abort() }, 'x').catch((e) => e)
    expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' })
  })

  it('resolver errors come through unchanged', async () => {
    const err = await connectWithData({ host: 'no-such-host.invalid', port: 80 }, 'x').catch((e) => e)
    expect(err.code).toMatch(/ENOTFOUND|EAI_AGAIN/)
  })
})

describe.skipIf(needNetns)('errors on a network of our own', () => {
  it('unreachable, a SYN that is never answered (timeout) and abort during the handshake', async () => {
    const r = await runInNetns('connect-errors.mjs', {
      tcpFastOpen: 3,
      setup: DEAD_END_VETH, // a SYN to 198.18.5.2 is never answered
    })
    expect(r.unreachable).toMatchObject({ code: 'ENETUNREACH', errno: -101, syscall: 'connect', address: '198.18.99.1', port: 80 })
    expect(r.timeout).toMatchObject({ code: 'ETIMEDOUT', syscall: 'connect', address: '198.18.5.2', port: 80 })
    expect(r.timeout.ms).toBeGreaterThanOrEqual(290)
    expect(r.abort).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' })
  })
})

describe('invalid input throws before any socket exists', () => {
  const bad: [string, unknown, string, string][] = [
    ['options not an object', true, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['null options', null, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['missing port', { host: '127.0.0.1' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['port of another type', { port: {} }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['port a non-numeric string', { port: 'http' }, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['port a string out of range', { port: '65536' }, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['a Unix socket path', { path: '/tmp/x.sock' }, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['port 0', { port: 0 }, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['port 65536', { port: 65536 }, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['port 1.5', { port: 1.5 }, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['host as number', { host: 1, port: 80 }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['empty host', { host: '', port: 80 }, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['family 5', { port: 80, family: 5 }, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['localAddress not an IP', { port: 80, localAddress: 'x' }, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['timeout negative', { port: 80, timeout: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['signal not a signal', { port: 80, signal: {} }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['fastOpen not boolean', { port: 80, fastOpen: 'yes' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  ]
  for (const [what, options, type, code] of bad) {
    it(`${what}: ${type} ${code}`, async () => {
      const before = isLinux ? fdCount() : 0
      const err = await connectWithData(options as never, 'x').catch((e) => e)
      expect(err.constructor.name).toBe(type)
      expect(err.code).toBe(code)
      expect(() => createConnection(options as never)).toThrow(expect.objectContaining({ code }))
      if (isLinux) expect(fdCount()).toBe(before)
    })
  }

  it('data of the wrong type', async () => {
    for (const data of [42, {}, [1, 2], true]) {
      const err = await connectWithData({ host: '127.0.0.1', port: 80 }, data as never).catch((e) => e)
      expect(err).toBeInstanceOf(TypeError)
      expect(err.code).toBe('ERR_INVALID_ARG_TYPE')
    }
  })

  it('server helpers validate too', () => {
    expect(() => createServer({ fastOpen: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => createServer({ fastOpen: 'x' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => enableFastOpen({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => fastOpenInfo({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})

describe.skipIf(skipReason(!isLinux ? '/proc/self/fd is Linux-only' : false))('no descriptor leaks', () => {
  for (const method of ['handle', 'sendto']) {
    it(`1,000 failing connects with and without SYN data leave the fd count unchanged (${method})`, async () => {
      const r = await runNode('fd-leak.mjs', { SYNMUX_LINUX_TFO_METHOD: method })
      expect(r.codes).toEqual({ ECONNREFUSED: 1000 })
      expect(r.after).toBe(r.before)
    })
  }
})
