/**
 * SOCKS5 through the real `synmux client --socks` process, with raw
 * sockets: the greeting and the request in one write (clients that
 * pipeline them to save a round trip) and in separate writes, for a
 * request that succeeds and for ones that are refused. The method reply
 * `05 00` always comes first.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { close, listen } from '../helpers'
import { freePort, secureKeys, stopAll, synmux, type Proc } from './cli'

let echo: net.Server
let echoPort: number
let server: Proc
let client: Proc
let socksPort: number

beforeAll(async () => {
  const keys = secureKeys()
  echo = net.createServer((s) => s.pipe(s))
  echoPort = await listen(echo, '127.0.0.1')
  const serverPort = await freePort()
  server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${echoPort}`])
  await server.waitFor(/listening on/)
  socksPort = await freePort()
  client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--socks', `127.0.0.1:${socksPort}`])
  await client.waitFor(/session to .* up/)
  await client.waitFor(/SOCKS5 on/)
}, 30_000)

afterAll(async () => {
  await stopAll()
  await close(echo)
})

const GREETING = Buffer.from([5, 1, 0])
const request = (cmd: number, atyp: number, addr: number[], port: number) => Buffer.from([5, cmd, 0, atyp, ...addr, port >> 8, port & 255])
const SUCCESS = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0])

/** Connects to the SOCKS port; `got` collects everything read; `until(n)` waits for n bytes (or the close). */
async function raw(): Promise<{ s: net.Socket; got: () => Buffer; until: (n: number) => Promise<Buffer>; closed: Promise<void> }> {
  const s = net.connect({ host: '127.0.0.1', port: socksPort })
  await new Promise((r) => s.once('connect', r))
  let buf = Buffer.alloc(0)
  const waiters: (() => void)[] = []
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    for (const w of waiters.splice(0)) w()
  })
  s.on('error', () => {})
  const closed = new Promise<void>((r) => s.once('close', () => (r(), waiters.splice(0).forEach((w) => w()))))
  const until = async (n: number) => {
    while (buf.length < n && !s.destroyed) await new Promise<void>((r) => waiters.push(r))
    return buf
  }
  return { s, got: () => buf, until, closed }
}

describe('SOCKS5 greeting and request', () => {
  it('in one write: 05 00, then the success reply, then the stream carries bytes both ways', async () => {
    const c = await raw()
    c.s.write(Buffer.concat([GREETING, request(1, 1, [127, 0, 0, 1], echoPort), Buffer.from('ping')]))
    const got = await c.until(2 + 10 + 4)
    expect(got.subarray(0, 2)).toEqual(Buffer.from([5, 0]))
    expect(got.subarray(2, 12)).toEqual(SUCCESS)
    expect(got.subarray(12).toString()).toBe('ping')
    c.s.write('pong')
    expect((await c.until(2 + 10 + 8)).subarray(12).toString()).toBe('pingpong')
    c.s.destroy()
  })

  it('in separate writes (the request only after 05 00 arrived): the same', async () => {
    const c = await raw()
    c.s.write(GREETING)
    expect(await c.until(2)).toEqual(Buffer.from([5, 0]))
    c.s.write(request(1, 1, [127, 0, 0, 1], echoPort))
    expect((await c.until(12)).subarray(2, 12)).toEqual(SUCCESS)
    c.s.write('hello')
    expect((await c.until(17)).subarray(12).toString()).toBe('hello')
    c.s.destroy()
  })

  it('greeting byte by byte, request split mid-address: the same', async () => {
    const c = await raw()
    for (const b of GREETING) {
      c.s.write(Buffer.from([b]))
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(await c.until(2)).toEqual(Buffer.from([5, 0]))
    const req = request(1, 1, [127, 0, 0, 1], echoPort)
    c.s.write(req.subarray(0, 6))
    await new Promise((r) => setTimeout(r, 50))
    expect(c.got().length).toBe(2)
    c.s.write(req.subarray(6))
    expect((await c.until(12)).subarray(2, 12)).toEqual(SUCCESS)
    c.s.destroy()
  })

  // A refused request still owes the method reply first: a client that
  // pipelined reads 05 00, then the request's reply, then the close.
  for (const [what, req, code] of [
    ['an unsupported command (BIND)', request(2, 1, [127, 0, 0, 1], echoPort), 0x07],
    ['an unsupported command (UDP ASSOCIATE)', request(3, 1, [127, 0, 0, 1], echoPort), 0x07],
    ['an unknown address type', request(1, 9, [127, 0, 0, 1], echoPort), 0x08],
    ['port 0', request(1, 1, [127, 0, 0, 1], 0), 0x01],
  ] as const) {
    it(`in one write, ${what}: 05 00, then 05 0${code}, then the close`, async () => {
      const c = await raw()
      c.s.write(Buffer.concat([GREETING, req]))
      await c.closed
      const got = c.got()
      expect(got.subarray(0, 2)).toEqual(Buffer.from([5, 0]))
      expect(got.length).toBe(12)
      expect(got[2]).toBe(5)
      expect(got[3]).toBe(code)
    })
  }

  it('in separate writes, an unsupported command: 05 00 once, then 05 07', async () => {
    const c = await raw()
    c.s.write(GREETING)
    await c.until(2)
    c.s.write(request(2, 1, [127, 0, 0, 1], echoPort))
    await c.closed
    expect(c.got()).toEqual(Buffer.from([5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]))
  })
})
