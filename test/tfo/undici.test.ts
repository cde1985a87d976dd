/**
 * fastOpenConnector() as undici's `connect`: undici's `request` and Node's
 * global `fetch` (with an undici Agent as `dispatcher`, with Node's own
 * bundled Agent class, and as the global dispatcher) against real HTTP and
 * HTTPS origins with TFO. The first connection to a server fetches the
 * cookie; the next carries the request or the ClientHello in its SYN, on
 * both ends; keep-alive reuses one connection; opting out is plain TCP.
 */
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { Agent, Client, getGlobalDispatcher, request, setGlobalDispatcher, type Dispatcher } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { fastOpenConnector, FastOpenHttpsAgent, FastOpenSocket, type FastOpenConnectorOptions, type FastOpenReport, type UndiciConnectOptions } from 'synmux'
import { canUseNetns, DEAD_END_VETH, fdCount, isLinux, runInNetns, serverTfoOn, skipReason } from '../helpers'
import { origin, type Origin, type Seen } from './origin'

const skip = skipReason(!isLinux ? 'TFO connectors are verified on Linux' : !serverTfoOn() ? 'net.ipv4.tcp_fastopen has no server bit (run .ci/run or sysctl -w net.ipv4.tcp_fastopen=3)' : false)
const needNetns = skipReason(!canUseNetns() ? 'needs root and `ip netns` for a private network namespace' : false)

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})
async function start(kind: 'http' | 'https'): Promise<Origin> {
  const o = await origin(kind)
  cleanup.push(() => o.close())
  return o
}

type Reporting = net.Socket & { fastOpen: FastOpenReport }

/** A connector that also records the sockets it made. */
function recordingConnector(options: FastOpenConnectorOptions = {}) {
  const connect = fastOpenConnector(options)
  const sockets: Reporting[] = []
  const wrapped = (opts: UndiciConnectOptions, cb: Parameters<typeof connect>[1]) => {
    const s = connect(opts, cb)
    if (s) sockets.push(s as Reporting)
    return s
  }
  return { connect: wrapped, sockets }
}

/** A dispatcher of the undici package with the connector; closed after the test. */
function undiciAgent(connect: ReturnType<typeof recordingConnector>['connect'], extra: Agent.Options = {}): Agent {
  const d = new Agent({ connect, ...extra })
  cleanup.push(() => d.close())
  return d
}

const NO_COOKIE = { attempted: true, accepted: false, reason: 'no-cookie' }
const IN_SYN = { attempted: true, accepted: true }

/** Node's own (bundled) undici Agent class, from the global dispatcher fetch uses. */
async function bundledAgentClass(): Promise<(new (o: { connect: unknown }) => Dispatcher) | undefined> {
  await fetch('data:,warm') // makes Node create its global dispatcher
  const d = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')] as Dispatcher | undefined
  return d ? (d.constructor as new (o: { connect: unknown }) => Dispatcher) : undefined
}

const clients = {
  'undici request': async (url: string, dispatcher: Dispatcher): Promise<Seen> => (await (await request(url, { dispatcher })).body.json()) as Seen,
  'global fetch': async (url: string, dispatcher: Dispatcher): Promise<Seen> => (await (await fetch(url, { dispatcher } as RequestInit)).json()) as Seen,
}

describe.skipIf(skip)('fastOpenConnector with undici and global fetch', () => {
  for (const kind of ['http', 'https'] as const) {
    for (const [name, call] of Object.entries(clients)) {
      it(`${name}, ${kind}: the second connection carries the ${kind === 'https' ? 'ClientHello' : 'request'} in its SYN`, async () => {
        const o = await start(kind)
        const { connect, sockets } = recordingConnector({ ca: o.cert, servername: 'localhost' })
        // a new dispatcher per request: a new connection each time
        const first = await call(`${o.url}/one`, undiciAgent(connect))
        const second = await call(`${o.url}/two`, undiciAgent(connect))
        expect(sockets.map((s) => s.fastOpen)).toEqual([NO_COOKIE, IN_SYN])
        expect(first).toMatchObject({ conn: 1, synData: false, url: '/one' })
        expect(second).toMatchObject({ conn: 2, synData: true, url: '/two' })
        if (kind === 'https') {
          expect(sockets[1]).toBeInstanceOf(tls.TLSSocket)
          expect(second).toMatchObject({ servername: 'localhost', alpn: 'http/1.1' })
        } else {
          expect(sockets[1]).toBeInstanceOf(FastOpenSocket)
        }
      })
    }

    it(`keep-alive, ${kind}: request and fetch share one connection`, async () => {
      const o = await start(kind)
      const { connect, sockets } = recordingConnector({ ca: o.cert })
      const dispatcher = undiciAgent(connect, { connections: 1 })
      const conns: number[] = []
      for (let i = 0; i < 3; i++) conns.push((await clients['undici request'](`${o.url}/r${i}`, dispatcher)).conn)
      for (let i = 0; i < 3; i++) conns.push((await clients['global fetch'](`${o.url}/f${i}`, dispatcher)).conn)
      expect(conns).toEqual([1, 1, 1, 1, 1, 1])
      expect(sockets).toHaveLength(1)
      expect(o.connections).toBe(1)
    })

    it(`fastOpen: false, ${kind}: plain connections that still work`, async () => {
      const o = await start(kind)
      const { connect, sockets } = recordingConnector({ ca: o.cert, fastOpen: false })
      for (const p of ['/a', '/b']) expect(await clients['undici request'](`${o.url}${p}`, undiciAgent(connect))).toMatchObject({ synData: false, url: p })
      expect(sockets.map((s) => s.fastOpen)).toEqual([0, 1].map(() => ({ attempted: false, accepted: false, reason: 'opted-out' })))
    })
  }

  it("global fetch with Node's bundled undici Agent class, https", async (ctx) => {
    const Bundled = await bundledAgentClass()
    if (!Bundled) return ctx.skip()
    const o = await start('https')
    const { connect, sockets } = recordingConnector({ ca: o.cert })
    for (const p of ['/one', '/two']) {
      const d = new Bundled({ connect })
      cleanup.push(() => d.close())
      await clients['global fetch'](`${o.url}${p}`, d)
    }
    expect(sockets.map((s) => s.fastOpen)).toEqual([NO_COOKIE, IN_SYN])
  })

  it('as the global dispatcher: plain fetch(url) rides in the SYN', async () => {
    const o = await start('http')
    const before = getGlobalDispatcher()
    const { connect, sockets } = recordingConnector()
    setGlobalDispatcher(new Agent({ connect, pipelining: 0 }))
    cleanup.push(async () => {
      const mine = getGlobalDispatcher()
      setGlobalDispatcher(before)
      await mine.close()
    })
    const res = await fetch(`${o.url}/g`, { headers: { connection: 'close' } })
    await res.text()
    const seen = (await (await fetch(`${o.url}/h`)).json()) as Seen
    expect(seen).toMatchObject({ conn: 2, synData: true })
    expect(sockets.at(-1)!.fastOpen).toEqual(IN_SYN)
  })

  it('a Client (one connection) too', async () => {
    const o = await start('https')
    const { connect, sockets } = recordingConnector({ ca: o.cert })
    const client = new Client(o.url, { connect })
    cleanup.push(() => client.close())
    const seen = (await (await client.request({ path: '/c', method: 'GET' })).body.json()) as Seen
    expect(seen).toMatchObject({ conn: 1, url: '/c' })
    expect(sockets).toHaveLength(1)
  })
})

describe('fastOpenConnector refuses what it cannot do', () => {
  it('invalid options throw at once, with a code', () => {
    expect(() => fastOpenConnector({ timeout: -1 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }))
    expect(() => fastOpenConnector({ maxCachedSessions: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => fastOpenConnector({ family: 5 as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => fastOpenConnector({ fastOpen: 'yes' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => fastOpenConnector(null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })

  it('a Unix socket path or a bad port goes to the callback, no socket made', () => {
    const connect = fastOpenConnector()
    const errors: (Error & { code?: string })[] = []
    const cb = (err: Error | null) => errors.push(err!)
    expect(connect({ hostname: '127.0.0.1', protocol: 'http:', port: '', socketPath: '/tmp/x.sock' }, cb as never)).toBeUndefined()
    expect(connect({ hostname: '127.0.0.1', protocol: 'http:', port: '70000' }, cb as never)).toBeUndefined()
    expect(errors.map((e) => e.code)).toEqual(['ERR_INVALID_ARG_VALUE', 'ERR_SOCKET_BAD_PORT'])
    expect(errors[0]!.message).toMatch(/Unix domain sockets/)
  })
})

describe.skipIf(skip)('fastOpenConnector over an existing socket (https through an HTTP proxy tunnel)', () => {
  it('runs TLS over httpSocket instead of connecting', async () => {
    const o = await start('https')
    const tunnel = net.connect(o.port, o.host) // stands in for the proxy's CONNECT tunnel
    await new Promise((resolve) => tunnel.once('connect', resolve))
    const connect = fastOpenConnector({ ca: o.cert, servername: 'localhost' })
    const secure = await new Promise<net.Socket>((resolve, reject) =>
      connect({ hostname: o.host, protocol: 'https:', port: String(o.port), httpSocket: tunnel }, (err, s) => (err ? reject(err) : resolve(s!))),
    )
    expect(secure).toBeInstanceOf(tls.TLSSocket)
    expect((secure as tls.TLSSocket).authorized).toBe(true)
    expect(o.connections).toBe(1)
    secure.destroy()
  })
})

describe.skipIf(needNetns)('fastOpenConnector connect deadline', () => {
  it('a SYN that is never answered fails with ETIMEDOUT after `timeout`, for http and https', async () => {
    const r = await runInNetns('connector-timeout.mjs', {
      tcpFastOpen: 3,
      setup: DEAD_END_VETH, // a SYN to 198.18.5.2 is never answered
    })
    for (const kind of ['http', 'https']) {
      expect(r[kind], kind).toMatchObject({ code: 'ETIMEDOUT', syscall: 'connect', address: '198.18.5.2', port: 80 })
      expect(r[kind].ms, kind).toBeGreaterThanOrEqual(290)
      expect(r[kind].ms, kind).toBeLessThan(5000)
    }
  })
})

describe.skipIf(skip)('failures leave no descriptor behind', () => {
  /** Waits (up to 5 s) for the descriptor count to come back to `n`. */
  async function settlesAt(n: number): Promise<number> {
    const until = Date.now() + 5000
    while (fdCount() > n && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
    return fdCount()
  }

  /** `times` requests each through the connector (undici) and the https agent; all fail with `code`, and no descriptor stays. */
  async function bothFail(tlsOptions: FastOpenConnectorOptions, code: string, times: number): Promise<void> {
    const o = await start('https')
    const dispatcher = undiciAgent(fastOpenConnector(tlsOptions))
    const agent = new FastOpenHttpsAgent(tlsOptions as https.AgentOptions)
    cleanup.push(() => agent.destroy())
    const before = fdCount()
    for (let i = 0; i < times; i++) {
      const e1 = await request(`${o.url}/`, { dispatcher }).catch((e) => e)
      expect(e1.code).toBe(code)
      const e2 = await new Promise<Error & { code?: string }>((resolve) => https.get(`${o.url}/`, { agent }, () => resolve(new Error('answered'))).on('error', resolve))
      expect(e2.code).toBe(code)
    }
    expect(await settlesAt(before)).toBe(before)
  }

  it('TLS handshakes that fail (untrusted certificate): 50 through the connector, 50 through the https agent', async () => {
    await bothFail({}, 'DEPTH_ZERO_SELF_SIGNED_CERT', 50) // no `ca`: the self-signed certificate is refused
  })

  it('invalid TLS options (tls.connect throws over a connecting TFO socket): 20 each', async () => {
    await bothFail({ minVersion: 'TLSv0.9' as never }, 'ERR_TLS_INVALID_PROTOCOL_VERSION', 20)
  })

  it('100 refused connections through the connector', async () => {
    const o = await start('http')
    const port = o.port
    await o.close() // nothing listens there now
    const dispatcher = undiciAgent(fastOpenConnector())
    const before = fdCount()
    for (let i = 0; i < 100; i++) {
      const e = await request(`http://${o.host}:${port}/`, { dispatcher }).catch((err) => err)
      expect(e.code).toBe('ECONNREFUSED')
    }
    expect(await settlesAt(before)).toBe(before)
  })
})
