/**
 * The HTTP gateway's pipelining limits (issue 12, PROTOCOL.md 19.2): a
 * gateway stream may carry pipelined requests, but at `maxPipelinedRequests`
 * in progress the gateway stops reading it (flow control pushes back) and
 * reads on as answers go out; a stream found with more than four times that
 * (arriving at once, so read before the stop) is reset; a session at `maxRequestsPerSession`
 * gets BUSY for new gateway streams. Over a real session on loopback, with
 * the library's own client Session writing raw HTTP on gateway streams.
 */
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AuthorizedKeys, generateKeyPair, RefuseCode, secure, Session, TunnelServer, type MuxStream } from 'synmux'
import { close, listen } from '../helpers'

const serverKeys = generateKeyPair()
const clientKeys = generateKeyPair()
let origin: http.Server
let originPort: number
let server: TunnelServer
let session: Session
/** Requests the origin has seen, and the ones it holds unanswered (path /hold). */
let seen = 0
const held: http.ServerResponse[] = []

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    seen++
    if (req.url === '/hold') return void held.push(res)
    if (req.url!.startsWith('/slow')) return void setTimeout(() => res.end(req.url), 20)
    res.end(req.url)
  })
  originPort = await listen(origin, '127.0.0.1')
  const authorizedKeys = new AuthorizedKeys([[clientKeys.publicKey, 'pipelining']])
  server = new TunnelServer({ secure: { staticKey: serverKeys.privateKey, authorizedKeys }, allow: [`127.0.0.1:${originPort}`], httpGateway: { maxPipelinedRequests: 4, maxRequestsPerSession: 10 } })
  await server.listen(0, '127.0.0.1')
  const transport = secure(net.connect(server.address().port, '127.0.0.1'), { role: 'client', staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey })
  session = new Session(transport, { role: 'client' })
  session.on('error', () => {})
  await new Promise((r) => session.once('handshake', r))
})

afterAll(async () => {
  for (const r of held) r.end()
  session.destroy()
  await server.close()
  await close(origin)
})

const req = (path: string) => `GET http://127.0.0.1:${originPort}${path} HTTP/1.1\r\nHost: x\r\n\r\n`
const gateway = (data?: string): MuxStream => session.open({ target: { host: 'gateway.synmux.invalid', port: 80 }, ...(data ? { data } : {}) })

/** The bodies of the responses read so far on `st` (each answer's body is the request's path). */
function answers(st: MuxStream): { bodies: string[]; text: () => string } {
  let text = ''
  st.on('data', (d: Buffer) => (text += d.toString('latin1')))
  st.on('error', () => {})
  return {
    get bodies() {
      return [...text.matchAll(/\r\n\r\n(\/[^H]*?)(?=HTTP\/1\.1 |$)/g)].map((m) => m[1]!)
    },
    text: () => text,
  }
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('HTTP gateway: pipelining limits', () => {
  it('40 requests pipelined in writes of 4 on one stream, to a slow origin: reading stops and restarts, all are answered in order', async () => {
    const st = gateway()
    const a = answers(st)
    for (let i = 0; i < 40; i += 4) {
      st.write(req(`/slow${i}`) + req(`/slow${i + 1}`) + req(`/slow${i + 2}`) + req(`/slow${i + 3}`))
      await new Promise((r) => setTimeout(r, 5))
    }
    await until(() => a.bodies.length === 40)
    expect(a.bodies).toEqual(Array.from({ length: 40 }, (_, i) => `/slow${i}`))
    st.destroy()
  })

  it('at the depth limit the gateway stops reading: the origin sees no more requests until one is answered', async () => {
    const st = gateway()
    const a = answers(st)
    const before = seen
    // 4 held requests fill the depth; 4 more wait unread in the stream.
    st.write(req('/hold') + req('/hold') + req('/hold') + req('/hold'))
    await until(() => seen - before === 4)
    st.write(req('/b1') + req('/b2'))
    await new Promise((r) => setTimeout(r, 300))
    expect(seen - before).toBe(4)
    // Answer them: reading goes on, everything is answered in order.
    for (const r of held.splice(0)) r.end('/held')
    await until(() => a.bodies.length === 6)
    expect(a.bodies).toEqual(['/held', '/held', '/held', '/held', '/b1', '/b2'])
    st.destroy()
  })

  it('more than four times the depth arriving at once: the stream is reset', async () => {
    const st = gateway(Array.from({ length: 17 }, (_, i) => req(`/c${i}`)).join(''))
    const err = await new Promise<Error & { code?: string }>((r) => st.once('error', r))
    expect(err.code).toBe('SYNMUX_STREAM_RESET')
  })

  it('a session with maxRequestsPerSession in progress gets BUSY for a new gateway stream, and is served again once they finish', async () => {
    const streams = [gateway(), gateway(), gateway()]
    const before = seen
    for (const st of streams) st.write(req('/hold') + req('/hold') + req('/hold') + req('/hold'))
    // 12 written, the session limit (10) stops reading at 10 (no more than one write past it).
    await until(() => seen - before >= 10)
    await new Promise((r) => setTimeout(r, 200))
    expect(seen - before).toBeLessThanOrEqual(12)
    const busy = gateway(req('/d'))
    const err = await new Promise<Error & { code?: string; wireCode?: number }>((r) => busy.once('error', r))
    expect(err.code).toBe('SYNMUX_REFUSED')
    expect(err.wireCode).toBe(RefuseCode.BUSY)
    for (const r of held.splice(0)) r.end('/held')
    await until(() => held.length + (seen - before) >= 12)
    for (const r of held.splice(0)) r.end('/held')
    const again = gateway(req('/e'))
    const b = answers(again)
    await until(() => b.bodies.length === 1)
    expect(b.bodies).toEqual(['/e'])
    for (const st of [...streams, again]) st.destroy()
  })
})
