/**
 * Requests that ask for an upgrade other than WebSocket, and heads the
 * proxy must not forward:
 * - `Upgrade: h2c` (curl --http2 sends it with a POST) or any other
 *   protocol: the request is served as the plain request it also is, its
 *   body intact, the client connection kept alive; `Upgrade` never reaches
 *   the origin and nothing ever becomes a raw tunnel (h2c smuggling), on
 *   the client's side and on the gateway's;
 * - two `Host` fields: 400 (RFC 9112 3.2); more header fields than the
 *   limit: 431; both with `Proxy-Status`.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { GATEWAY_HOST, GATEWAY_PORT } from 'synmux'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listen, skipReason } from '../helpers'
import { curl, freePort, secureKeys, needCurl, stopAll, synmux } from '../tunnel/cli'
import { field, RawClient, requestHead, sha256, startOrigin, startStack, type Origin, type Stack } from './helpers'

let origin: Origin
let stack: Stack
let O: string
/** An origin that switches to any protocol asked for (a naive h2c server): 101, then echoes raw bytes prefixed RAW:. */
let switcher: http.Server
let switcherPort: number
let switched = 0

beforeAll(async () => {
  origin = await startOrigin()
  origin.server.maxHeadersCount = 2000 // takes the 1,000 fields the proxy passes, plus Via (Node's default: 1,000)
  switcher = http.createServer((req, res) => {
    let n = 0
    req.on('data', (d: Buffer) => (n += d.length))
    req.on('end', () => res.end(JSON.stringify({ plain: true, n, upgrade: req.headers.upgrade ?? null, url: req.url })))
  })
  switcher.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    switched++
    socket.on('error', () => {})
    socket.on('end', () => socket.end())
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade === 'websocket' ? 'h2c' : req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\n`)
    socket.on('data', (d: Buffer) => socket.write(Buffer.concat([Buffer.from('RAW:'), d])))
  })
  switcherPort = await listen(switcher, '127.0.0.1')
  stack = await startStack([`127.0.0.1:${origin.port}`, `127.0.0.1:${switcherPort}`])
  O = `http://127.0.0.1:${origin.port}`
})

afterAll(async () => {
  await stack.close()
  await origin.close()
  await new Promise((r) => switcher.close(r))
  await stopAll()
})

const names = (raw: string[]) => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
const h2c: [string, string][] = [['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA']]

describe('Upgrade other than websocket (h2c, ...)', () => {
  it('a POST with Upgrade: h2c and a 1 MiB body: the body reaches the origin intact, without Upgrade; the client connection stays alive', async () => {
    const body = crypto.randomBytes(1 << 20)
    const c = new RawClient(stack.port)
    c.write(requestHead('POST', `${O}/echo?h2c`, [...h2c, ['Content-Length', String(body.length)]]))
    c.write(body)
    const r = await c.response('POST')
    expect(r.status).toBe(200)
    const echo = JSON.parse(r.body.toString())
    expect(echo.n).toBe(body.length)
    expect(echo.sha).toBe(sha256(body))
    expect(names(echo.rawHeaders)).not.toContain('upgrade')
    expect(names(echo.rawHeaders)).not.toContain('http2-settings')
    expect(field(r, 'upgrade')).toBeUndefined()
    // the same connection serves the next request
    c.write(requestHead('GET', `${O}/bytes/10`))
    const r2 = await c.response()
    expect(r2.status).toBe(200)
    expect(r2.body.length).toBe(10)
    expect(c.ended).toBe(false)
    c.destroy()
  })

  it('a chunked body and pipelined requests behind it arrive intact and in order', async () => {
    const c = new RawClient(stack.port)
    const chunked = 'Transfer-Encoding: chunked\r\n'
    c.write(requestHead('POST', `${O}/echo?one`, h2c).replace('\r\n\r\n', `\r\n${chunked}\r\n`) + '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n' + requestHead('GET', `${O}/echo?two`, [['Upgrade', 'foo/1'], ['Connection', 'upgrade']]) + requestHead('GET', `${O}/bytes/3`))
    const a = await c.response('POST')
    expect(JSON.parse(a.body.toString())).toMatchObject({ n: 11, sha: sha256('hello world'), url: '/echo?one' })
    const b = await c.response()
    expect(JSON.parse(b.body.toString())).toMatchObject({ n: 0, url: '/echo?two' })
    expect(names(JSON.parse(b.body.toString()).rawHeaders)).not.toContain('upgrade')
    expect((await c.response()).body.length).toBe(3)
    c.destroy()
  })

  it('never a raw tunnel: an origin that would switch to h2c gets a plain request; bytes sent after it are parsed as HTTP, not relayed', async () => {
    const before = switched
    const c = new RawClient(stack.port)
    // after the upgrade request, bytes that would go raw to the origin if the proxy switched
    c.write(requestHead('GET', `http://127.0.0.1:${switcherPort}/a`, [['Connection', 'Upgrade'], ['Upgrade', 'h2c']]) + 'GET /internal HTTP/1.1\r\nHost: internal\r\n\r\n')
    const r = await c.response()
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body.toString())).toEqual({ plain: true, n: 0, upgrade: null, url: '/a' })
    // the smuggled origin-form request is answered by the proxy itself (400), never relayed
    const r2 = await c.response()
    expect(r2.status).toBe(400)
    expect(r2.body.toString()).not.toContain('RAW:')
    expect(switched).toBe(before)
    c.destroy()
  })

  it('on the gateway too (a client that is not synmux\'s proxy): Upgrade: h2c on a gateway stream is served as a plain request, never switched', async () => {
    const before = switched
    const stream = await stack.client.open({ host: GATEWAY_HOST, port: GATEWAY_PORT })
    let got = ''
    stream.on('data', (d: Buffer) => (got += d.toString('latin1')))
    stream.on('error', () => {})
    stream.write(requestHead('POST', `http://127.0.0.1:${switcherPort}/gw`, [...h2c, ['Content-Length', '5']]) + 'hello')
    for (let i = 0; i < 200 && !got.includes('"url":"/gw"'); i++) await new Promise((r) => setTimeout(r, 20))
    expect(got).toMatch(/^HTTP\/1\.1 200 /)
    expect(got).toContain('{"plain":true,"n":5,"upgrade":null,"url":"/gw"}')
    // what would be raw bytes after a switch is parsed as HTTP: not a request, so 400 and the end
    const ended = new Promise((r) => stream.once('end', r))
    stream.write('RAWBYTES\r\n\r\n')
    await ended
    expect(got).toMatch(/HTTP\/1\.1 400 /)
    expect(got).not.toContain('RAW:')
    expect(switched).toBe(before)
    stream.destroy()
  })

  it('a websocket request answered 101 with another protocol (h2c) is not relayed raw: 502', async () => {
    const key = crypto.randomBytes(16).toString('base64')
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `http://127.0.0.1:${switcherPort}/ws`, [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', key]]))
    const r = await c.response()
    expect(r.status).toBe(502)
    c.write('after')
    expect((await c.rest()).toString()).not.toContain('RAW:')
  })
})

describe('curl --http2 -x (Upgrade: h2c with a POST) through the CLI processes', () => {
  it.skipIf(skipReason(needCurl))('a 1 MiB POST reaches the origin intact', async () => {
    const keys = secureKeys()
    const serverPort = await freePort()
    const proxyPort = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${origin.port}`])
    await server.waitFor(/listening on/)
    const client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--http-proxy', String(proxyPort)])
    await client.waitFor(/session to .* up/)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-h2c-'))
    const file = path.join(dir, 'body')
    const body = crypto.randomBytes(1 << 20)
    fs.writeFileSync(file, body)
    try {
      const r = await curl(['-s', '--http2', '-x', `http://127.0.0.1:${proxyPort}`, '--data-binary', `@${file}`, '-m', '20', `${O}/echo?curl`])
      const echo = JSON.parse(r.stdout)
      expect(echo.n).toBe(body.length)
      expect(echo.sha).toBe(sha256(body))
      expect(names(echo.rawHeaders)).not.toContain('upgrade')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
      await client.stop()
      await server.stop()
    }
  })
})

describe('heads that are not forwarded', () => {
  it('two Host fields: 400 with Proxy-Status, the origin never contacted, the connection closed', async () => {
    const seen = origin.seen.length
    const c = new RawClient(stack.port)
    c.write(`GET ${O}/echo?dup HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nHost: evil.example\r\n\r\n`)
    const r = await c.response()
    expect(r.status).toBe(400)
    expect(field(r, 'proxy-status')).toMatch(/^synmux; error=http_request_error; details=".*Host/)
    await c.rest()
    expect(origin.seen.length).toBe(seen)
  })

  it('two Host fields pipelined behind a good request: the first is answered, nothing behind the bad one forwarded', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/echo?first`) + `GET ${O}/echo?dup2 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n` + requestHead('GET', `${O}/echo?third`))
    expect((await c.response()).status).toBe(200)
    expect((await c.response()).status).toBe(400)
    await c.rest()
    expect(origin.seen.some((s) => s.url === '/echo?third' || s.url === '/echo?dup2')).toBe(false)
  })

  it('more than 1,000 header fields: 431 with Proxy-Status; 1,000 pass', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => [`X-F${i}`, 'v'] as [string, string])
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/echo?fields999`, many(999))) // + Host = 1,000
    const ok = await c.response()
    expect(ok.status, JSON.stringify(ok.headers) + ok.body).toBe(200)
    expect(names(JSON.parse(ok.body.toString()).rawHeaders).filter((n) => n.startsWith('x-f'))).toHaveLength(999)
    const d = new RawClient(stack.port)
    d.write(requestHead('GET', `${O}/echo?fields1000`, many(1000)))
    const r = await d.response()
    expect(r.status).toBe(431)
    expect(field(r, 'proxy-status')).toBe('synmux; error=http_request_error; details="more than 1000 header fields"')
    await d.rest()
    // far more (Node 22 and later reject them while parsing): still 431 with Proxy-Status
    const e = new RawClient(stack.port)
    e.write(requestHead('GET', `${O}/echo?fields3000`, many(3000)))
    const r3 = await e.response()
    expect(r3.status).toBe(431)
    expect(field(r3, 'proxy-status')).toMatch(/^synmux; error=http_request_error; details="/)
    await e.rest()
    expect(origin.seen.some((s) => s.url === '/echo?fields1000' || s.url === '/echo?fields3000')).toBe(false)
    c.destroy()
  })

  it('the gateway refuses such heads itself (a client that is not synmux\'s proxy)', async () => {
    for (const head of [`GET ${O}/echo?gwdup HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`, requestHead('GET', `${O}/echo?gwmany`, Array.from({ length: 1100 }, (_, i) => [`X-F${i}`, 'v'] as [string, string]))]) {
      const stream = await stack.client.open({ host: GATEWAY_HOST, port: GATEWAY_PORT }, Buffer.from(head))
      const err = await new Promise<{ code?: string; wireCode?: number }>((resolve) => {
        stream.on('error', resolve)
        stream.on('data', () => {})
        stream.on('end', () => resolve({}))
      })
      expect(err.code).toBe('SYNMUX_REFUSED')
      expect(err.wireCode).toBe(7) // BAD_TARGET
    }
    expect(origin.seen.some((s) => s.url.startsWith('/echo?gw'))).toBe(false)
  })
})
