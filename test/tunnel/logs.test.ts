/**
 * Logs of the real `synmux server` and `synmux client` processes:
 * `--log-format json` writes one JSON object per line (pino: time, level,
 * component, msg, and session, stream, target where they apply), and at
 * `debug` both sides write a line per connection with its target, bytes,
 * duration and close reason; the text format has ISO timestamps and the
 * same fields as key=value.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AuthorizedKeys, createLogger, generateKeyPair, TunnelClient, TunnelServer, type Logger, type LogLevel } from 'synmux'
import { close } from '../helpers'
import { freePort, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from './cli'
import { echoTarget } from './rawpeer'

let echo: net.Server
let echoPort: number
let keys: SecureKeys

beforeAll(async () => {
  keys = secureKeys()
  ;({ server: echo, port: echoPort } = await echoTarget())
})
afterAll(async () => {
  await stopAll()
  await close(echo)
})

async function run(format: 'json' | 'text'): Promise<{ server: Proc; client: Proc; local: number }> {
  const port = await freePort()
  const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${echoPort}`, '--log-format', format, '--log-level', 'debug'])
  await server.waitFor(/listening on/)
  const fwd = await freePort()
  const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`, '--log-format', format, '--log-level', 'debug'])
  await client.waitFor(/session to .* up/)
  const s = net.connect(fwd, '127.0.0.1')
  s.write('twelve bytes')
  await new Promise((r) => s.once('data', r))
  const local = s.localPort!
  s.end()
  await new Promise((r) => s.once('close', r))
  return { server, client, local }
}

describe('--log-format json', () => {
  it('every line is one JSON object; per-connection debug lines on both sides carry session, stream, target, bytes, duration, reason', async () => {
    const { server, client, local } = await run('json')
    await server.waitFor(/"msg":"closed /)
    await client.waitFor(/"msg":"closed /)
    const parse = (p: Proc) => p.log.map((l) => JSON.parse(l) as Record<string, unknown>)
    const s = parse(server)
    const c = parse(client)
    for (const [lines, component] of [
      [s, 'server'],
      [c, 'client'],
    ] as const) {
      for (const o of lines) {
        expect(o.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
        expect(['error', 'warn', 'info', 'debug']).toContain(o.level)
        expect(o.component).toBe(component)
        expect(typeof o.msg).toBe('string')
      }
    }
    const sc = s.find((o) => String(o.msg).startsWith('closed '))!
    const cc = c.find((o) => String(o.msg).startsWith('closed '))!
    expect(sc).toMatchObject({ level: 'debug', target: `127.0.0.1:${echoPort}`, up: 12, down: 12, reason: 'end' })
    expect(cc).toMatchObject({ level: 'debug', target: `127.0.0.1:${echoPort}`, from: `127.0.0.1:${local}`, up: 12, down: 12, reason: 'end' })
    // the same session and stream on both sides
    expect(sc.session).toMatch(/^[0-9a-f]{16}$/)
    expect(cc.session).toBe(sc.session)
    expect(cc.stream).toBe(sc.stream)
    expect(typeof sc.ms).toBe('number')
    expect(s.find((o) => String(o.msg).startsWith('connected '))).toMatchObject({ session: sc.session, stream: sc.stream, target: `127.0.0.1:${echoPort}` })
    expect(s.find((o) => String(o.msg).startsWith('session from'))).toMatchObject({ level: 'info', session: sc.session })
  })
})

describe('--log-format text (the default)', () => {
  it('ISO timestamps, and the per-connection lines with their fields as key=value', async () => {
    const { server, client, local } = await run('text')
    const sl = await server.waitFor(/debug server: closed /)
    const cl = await client.waitFor(/debug client: closed /)
    for (const l of [...server.log, ...client.log]) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) (server|client): /)
    expect(sl).toMatch(new RegExp(`debug server: closed 127\\.0\\.0\\.1:${echoPort} session=[0-9a-f]{16} stream=\\d+ up=12 down=12 ms=\\d+ reason=end$`))
    expect(cl).toMatch(new RegExp(`debug client: closed 127\\.0\\.0\\.1:${local} -> 127\\.0\\.0\\.1:${echoPort} session=[0-9a-f]{16} stream=\\d+ up=12 down=12 ms=\\d+ reason=end$`))
  })
})

describe('a Logger of your own', () => {
  /** One connection through an in-process server and client forward, with these loggers; resolves when both have closed it. */
  async function oneConnection(serverLog: Logger, clientLog: Logger): Promise<void> {
    const sk = generateKeyPair()
    const ck = generateKeyPair()
    const server = new TunnelServer({ secure: { staticKey: sk.privateKey, authorizedKeys: new AuthorizedKeys([[ck.publicKey, 'me']]) }, allow: [`127.0.0.1:${echoPort}`], logger: serverLog })
    await server.listen(0, '127.0.0.1')
    const client = new TunnelClient({ server: { host: '127.0.0.1', port: server.address().port }, secure: { staticKey: ck.privateKey, serverKey: sk.publicKey }, logger: clientLog })
    try {
      const fwd = await client.forward({ port: 0 }, { host: '127.0.0.1', port: echoPort })
      const s = net.connect(fwd.address().port, '127.0.0.1')
      s.end('hello')
      for await (const _ of s);
      for (let i = 0; i < 200 && (server.stats().streams > 0 || client.connections > 0); i++) await new Promise((r) => setTimeout(r, 10))
    } finally {
      await client.destroy()
      await server.destroy()
    }
  }
  const collecting = (lines: string[], enabled?: (level: string) => boolean): Logger => ({
    error: (m) => lines.push(`error ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    info: (m) => lines.push(`info ${m}`),
    debug: (m) => lines.push(`debug ${m}`),
    ...(enabled ? { enabled } : {}),
  })

  it('without enabled() it gets every line, the per-connection debug lines too', async () => {
    const s: string[] = []
    const c: string[] = []
    await oneConnection(collecting(s), collecting(c))
    expect(s.some((l) => l.startsWith(`debug connected 127.0.0.1:${echoPort}`))).toBe(true)
    expect(s.some((l) => l.startsWith(`debug closed 127.0.0.1:${echoPort}`))).toBe(true)
    expect(c.some((l) => /^debug closed 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:/.test(l))).toBe(true)
  })

  it('with enabled() saying no to debug, the per-connection debug lines are not even made', async () => {
    const s: string[] = []
    const c: string[] = []
    const noDebug = (level: string): boolean => level !== 'debug'
    await oneConnection(collecting(s, noDebug), collecting(c, noDebug))
    const perConnection = (l: string): boolean => /^debug (connected|closed) /.test(l)
    expect(s.filter(perConnection)).toEqual([])
    expect(c.filter(perConnection)).toEqual([])
    expect(s.some((l) => l.startsWith('info'))).toBe(true)
  })

  it('createLogger() says which levels it writes', () => {
    const at = (level: LogLevel) => (['error', 'warn', 'info', 'debug'] as const).map((l) => createLogger(level, 'x', () => {}).enabled!(l))
    expect(at('silent')).toEqual([false, false, false, false])
    expect(at('warn')).toEqual([true, true, false, false])
    expect(at('info')).toEqual([true, true, true, false])
    expect(at('debug')).toEqual([true, true, true, true])
  })
})
