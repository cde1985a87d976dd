/**
 * The HTTP proxy end to end through the real CLI processes: `synmux server`
 * (its HTTP gateway) and `synmux client --http-proxy`, with origins in this
 * process; curl as a client when installed; the flags' usage errors.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { skipReason } from '../helpers'
import { curl, freePort, needCurl, runCli as run, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from '../tunnel/cli'
import { field, RawClient, requestHead, sha256, startOrigin, viaProxy, wsAccept, wsFrame, wsParse, type Origin } from './helpers'

let keys: SecureKeys
let origin: Origin
let denied: Origin
let server: Proc
let serverPort: number
let client: Proc
let proxyPort: number
let O: string

beforeAll(async () => {
  keys = secureKeys()
  origin = await startOrigin()
  denied = await startOrigin()
  O = `http://127.0.0.1:${origin.port}`
  serverPort = await freePort()
  server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${origin.port}`, '--log-level', 'debug'])
  await server.waitFor(/listening on/)
  proxyPort = await freePort()
  client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--http-proxy', String(proxyPort)])
  await client.waitFor(new RegExp(`HTTP proxy on 127.0.0.1:${proxyPort}`))
  await client.waitFor(/session to .* up/)
}, 30_000)

afterAll(async () => {
  await stopAll()
  await origin.close()
  await denied.close()
})

describe('synmux client --http-proxy + synmux server', () => {
  it('GET, POST (5 MiB) and pipelined requests go through the processes', async () => {
    const r = await viaProxy(proxyPort, `${O}/bytes/1000`)
    expect(r.status).toBe(200)
    expect(r.headers.via).toBe('1.1 synmux')
    const body = crypto.randomBytes(5 << 20)
    const up = await viaProxy(proxyPort, `${O}/echo`, { method: 'POST', body })
    expect(JSON.parse(up.body.toString())).toMatchObject({ n: body.length, sha: sha256(body) })
    const c = new RawClient(proxyPort)
    c.write(requestHead('GET', `${O}/bytes/3`) + requestHead('HEAD', `${O}/head`) + requestHead('GET', `${O}/trailers`))
    expect((await c.response()).body.length).toBe(3)
    expect(field(await c.response('HEAD'), 'content-length')).toBe('1234')
    const t = await c.response()
    expect(t.trailers).toEqual([['x-checksum', sha256(t.body)]])
    c.destroy()
    await server.waitFor(/gateway: GET http:\/\/127\.0\.0\.1:\d+\/trailers -> 200/)
  })

  it('CONNECT and WebSocket through the processes', async () => {
    const c = new RawClient(proxyPort)
    c.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\n`)
    expect((await c.response('CONNECT')).status).toBe(200)
    c.write('GET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n')
    expect((await c.response()).body.length).toBe(5)
    c.destroy()
    const w = new RawClient(proxyPort)
    const wsKey = crypto.randomBytes(16).toString('base64')
    w.write(requestHead('GET', `${O}/ws`, [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', wsKey]]))
    const r = await w.response()
    expect(field(r, 'sec-websocket-accept')).toBe(wsAccept(wsKey))
    const echo = new Promise<Buffer>((resolve) => {
      let buf = Buffer.alloc(0)
      w.socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        const p = wsParse(buf)
        if (p.frames.length) resolve(p.frames[0]!.payload)
      })
    })
    w.write(wsFrame(Buffer.from('through processes'), { opcode: 1, mask: true }))
    expect((await echo).toString()).toBe('echo:through processes')
    w.destroy()
  })

  it('an origin not allowed: 403, connection closed; the server logs the refusal; the session stays', async () => {
    const c = new RawClient(proxyPort)
    c.write(requestHead('GET', `http://127.0.0.1:${denied.port}/`))
    const r = await c.response()
    expect(r.status).toBe(403)
    await c.rest()
    await server.waitFor(new RegExp(`gateway: refused: 127.0.0.1:${denied.port}: not in the allow list`))
    expect(denied.connections).toBe(0)
    expect((await viaProxy(proxyPort, `${O}/bytes/2`)).status).toBe(200)
    expect(server.log.filter((l) => /session from .* established/.test(l))).toHaveLength(1)
  })

  it.skipIf(skipReason(needCurl))('curl -x through the proxy (keep-alive: several URLs on one connection)', async () => {
    const { stdout, stderr } = await curl(['-sS', '-v', '--max-time', '10', '-x', `http://127.0.0.1:${proxyPort}`, `${O}/bytes/10`, '-o', '/dev/null', `${O}/echo?curl`])
    expect(JSON.parse(stdout)).toMatchObject({ url: '/echo?curl' })
    expect(stderr).toMatch(/Re-using existing connection|Reusing existing/)
  })

  it.skipIf(skipReason(needCurl))('--http-proxy-auth (from --config): curl needs --proxy-user', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-proxy-'))
    const config = path.join(dir, 'client.json')
    const port = await freePort()
    fs.writeFileSync(config, JSON.stringify({ server: `127.0.0.1:${serverPort}`, key: keys.clientKeyFile, serverKey: keys.serverPublic, httpProxy: `127.0.0.1:${port}`, httpProxyAuth: 'me:pa ss' }))
    const p = synmux(['client', '--config', config])
    await p.waitFor(/HTTP proxy on .* \(basic auth\)/)
    const get = (extra: string[]) => curl(['-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${port}`, ...extra, `${O}/bytes/1`])
    expect((await get([])).stdout).toBe('407')
    expect((await get(['--proxy-user', 'me:wrong'])).stdout).toBe('407')
    expect((await get(['--proxy-user', 'me:pa ss'])).stdout).toBe('200')
    await p.stop()
  })

  it('synmux server --no-http-gateway refuses HTTP proxy requests (403)', async () => {
    const port = await freePort()
    const srv = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${origin.port}`, '--no-http-gateway'])
    await srv.waitFor(/listening on/)
    const pp = await freePort()
    const cl = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--http-proxy', `127.0.0.1:${pp}`])
    await cl.waitFor(/session to .* up/)
    await cl.waitFor(/HTTP proxy on/)
    const c = new RawClient(pp)
    c.write(requestHead('GET', `${O}/echo?no-gateway`))
    expect((await c.response()).status).toBe(403)
    await c.rest()
    await srv.waitFor(/refused gateway\.synmux\.invalid:80: the HTTP gateway is off/)
    await cl.stop()
    await srv.stop()
  })
})

describe('flags', () => {
  it('help texts name the HTTP proxy flags', async () => {
    expect((await run(['client', '--help'])).stdout).toMatch(/--http-proxy \[host:\]port[\s\S]*--http-proxy-auth USER:PASS/)
    expect((await run(['server', '--help'])).stdout).toMatch(/--no-http-gateway[\s\S]*--http-max-sockets N/)
  })

  it('usage errors exit 2 with a clear message', async () => {
    const base = ['client', '--server', '127.0.0.1:1', ...keys.client]
    for (const [args, re] of [
      [[...base, '--http-proxy-auth', 'a:b', '--socks', '0'], /--http-proxy-auth needs --http-proxy/],
      [[...base, '--http-proxy', '0', '--http-proxy-auth', 'nocolon'], /--http-proxy-auth: expected USER:PASS/],
      [[...base, '--http-proxy', 'host:99999'], /--http-proxy: port out of range/],
      [['server', '--listen', '0', ...keys.server, '--http-max-sockets', '0'], /--http-max-sockets must be an integer from 1/],
    ] as const) {
      const r = await run([...args])
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(re)
    }
  })
})
