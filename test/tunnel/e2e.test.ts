/**
 * The tunnel end to end through the real CLI processes (`synmux server`,
 * `synmux client`, with the default secure channel) on loopback: port
 * forwards and SOCKS5 to local servers, large bodies both ways, many
 * connections, half-close, and every refusal.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { close, listen, readAll, sha256, skipReason } from '../helpers'
import { curl, freePort, httpRequest as request, needCurl, secureKeys, socksConnect, stopAll, synmux, type Proc, type SecureKeys } from './cli'

let keys: SecureKeys
let httpTarget: http.Server
let httpPort: number
let halfCloseTarget: net.Server
let halfClosePort: number
let server: Proc
let serverPort: number
let client: Proc
let fwdPort: number
let halfFwdPort: number
let socksPort: number

beforeAll(async () => {
  keys = secureKeys()
  // HTTP target: GET /size/N returns N deterministic bytes; POST returns the body's sha256.
  httpTarget = http.createServer((req, res) => {
    const h = crypto.createHash('sha256')
    let n = 0
    req.on('data', (d) => (h.update(d), (n += d.length)))
    req.on('end', () => {
      const m = /^\/size\/(\d+)/.exec(req.url ?? '')
      if (m) {
        const size = Number(m[1])
        const chunk = Buffer.alloc(65536)
        for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 255
        res.writeHead(200, { 'content-length': size })
        let left = size
        const pump = () => {
          while (left > 0) {
            const part = chunk.subarray(0, Math.min(left, chunk.length))
            left -= part.length
            if (!res.write(part)) return res.once('drain', pump)
          }
          res.end()
        }
        return pump()
      }
      res.end(JSON.stringify({ sha: h.digest('hex'), n, url: req.url }))
    })
  })
  httpPort = await listen(httpTarget, '127.0.0.1')
  // A target that reads to EOF before answering.
  halfCloseTarget = net.createServer({ allowHalfOpen: true }, (s) => {
    const c: Buffer[] = []
    s.on('data', (d) => c.push(d))
    s.on('end', () => s.end(`got ${Buffer.concat(c).length} bytes, sha ${sha256(Buffer.concat(c))}`))
  })
  halfClosePort = await listen(halfCloseTarget, '127.0.0.1')

  serverPort = await freePort()
  server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${httpPort},127.0.0.1:${halfClosePort},localhost:${httpPort}`])
  await server.waitFor(/listening on/)
  ;[fwdPort, halfFwdPort, socksPort] = [await freePort(), await freePort(), await freePort()]
  client = synmux([
    'client', '--server', `127.0.0.1:${serverPort}`, ...keys.client,
    '--forward', `${fwdPort}=127.0.0.1:${httpPort}`,
    '--forward', `127.0.0.1:${halfFwdPort}=127.0.0.1:${halfClosePort}`,
    '--socks', `127.0.0.1:${socksPort}`,
  ])
  await client.waitFor(/session to .* up/)
  await client.waitFor(/SOCKS5 on/)
}, 30_000)

afterAll(async () => {
  await stopAll()
  await close(httpTarget)
  await close(halfCloseTarget)
})

describe('synmux server + client', () => {
  it('forwards a port to a local HTTP server', async () => {
    const r = await request(fwdPort, '/hello')
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body.toString())).toMatchObject({ url: '/hello', n: 0 })
  })

  it('carries SOCKS5 (domain and IPv4 addresses) to the target', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const s = await socksConnect(socksPort, host, httpPort)
      s.end(`GET /via-socks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      const text = (await readAll(s)).toString()
      expect(text).toMatch(/^HTTP\/1.1 200/)
      expect(text).toContain('/via-socks')
    }
  })

  it.skipIf(skipReason(needCurl))('curl --socks5-hostname through the client', async () => {
    // async: the target server runs in this process
    const { stdout } = await curl(['-sS', '--max-time', '10', '--socks5-hostname', `127.0.0.1:${socksPort}`, `http://localhost:${httpPort}/curl`])
    expect(JSON.parse(stdout)).toMatchObject({ url: '/curl' })
  })

  it('moves large bodies both ways intact (24 MiB up, 24 MiB down)', async () => {
    const body = crypto.randomBytes(24 << 20)
    const up = await request(fwdPort, '/upload', { body })
    expect(JSON.parse(up.body.toString())).toMatchObject({ sha: sha256(body), n: body.length })
    const down = await request(fwdPort, `/size/${24 << 20}`)
    const want = Buffer.alloc(24 << 20)
    for (let i = 0; i < want.length; i++) want[i] = ((i % 65536) * 7) & 255
    expect(down.body.length).toBe(want.length)
    expect(sha256(down.body)).toBe(sha256(want))
  }, 60_000)

  it('carries 200 concurrent connections (more than the 64 onward connects allowed at once: the rest wait)', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => request(fwdPort, `/c/${i}`)))
    results.forEach((r, i) => expect(JSON.parse(r.body.toString()).url).toBe(`/c/${i}`))
  }, 60_000)

  it('passes half-close through: the target reads to EOF, then answers', async () => {
    const data = crypto.randomBytes(300_000)
    const s = net.connect({ host: '127.0.0.1', port: halfFwdPort, allowHalfOpen: true })
    s.end(data)
    expect((await readAll(s)).toString()).toBe(`got ${data.length} bytes, sha ${sha256(data)}`)
  })
})

describe('refusals', () => {
  it('a target not in the allow list: the SOCKS connection is closed, nothing forwarded', async () => {
    const denied = await freePort()
    const s = await socksConnect(socksPort, '127.0.0.1', denied)
    s.write('GET / HTTP/1.1\r\n\r\n')
    // closed (FIN or reset) with not one byte from any server
    const got = await readAll(s).catch(() => Buffer.alloc(0))
    expect(got.length).toBe(0)
    await server.waitFor(new RegExp(`refused 127.0.0.1:${denied}: not in the allow list`))
    await client.waitFor(new RegExp(`127.0.0.1:${denied} refused`))
  })

  it('a target that is down (ECONNREFUSED): refused and the local connection closed', async () => {
    // allowed, but nothing listens there
    const downPort = await freePort()
    const srv = synmux(['server', '--listen', `127.0.0.1:${await freePort()}`, ...keys.server, '--allow', `127.0.0.1:${downPort}`])
    const line = await srv.waitFor(/listening on/)
    const port = Number(/:(\d+),/.exec(line)![1])
    const fwd = await freePort()
    const cl = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${downPort}`])
    await cl.waitFor(/session to .* up/)
    const s = net.connect({ host: '127.0.0.1', port: fwd })
    s.write('hello')
    const got = await readAll(s).catch((e) => e)
    expect(got instanceof Error ? 'reset' : got.length).toBeOneOf(['reset', 0])
    await cl.waitFor(/refused: .*connection refused/)
    await cl.stop()
    await srv.stop()
  })

  it('a client key the server does not authorize: no session; the server logs the failed handshake and keeps serving', async () => {
    const fwd = await freePort()
    const stranger = keys.another(null)
    const bad = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...stranger.args, '--forward', `${fwd}=127.0.0.1:${httpPort}`])
    await server.waitFor(/handshake from 127.0.0.1 failed: secure channel: client key .* is not authorized/)
    expect(bad.log.some((l) => /session to .* up/.test(l))).toBe(false)
    await bad.stop()
    expect((await request(fwdPort, '/still-ok')).status).toBe(200)
  })

  it('garbage on the server port: not a byte back; the server survives and keeps serving others', async () => {
    const got: number[] = []
    const conns = Array.from({ length: 3 }, () => {
      const g = net.connect({ host: '127.0.0.1', port: serverPort })
      g.on('error', () => {})
      g.on('data', (d) => got.push(d.length))
      g.write(crypto.randomBytes(4096))
      return g
    })
    await server.waitFor(/handshake from 127.0.0.1 failed: secure channel: not a secure-channel handshake/)
    expect(server.child.exitCode).toBe(null)
    expect((await request(fwdPort, '/after-garbage')).status).toBe(200)
    for (const g of conns) g.destroy()
    expect(got).toEqual([])
  })

  it('a client restart while the server keeps running', async () => {
    await client.stop()
    client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--forward', `${fwdPort}=127.0.0.1:${httpPort}`])
    await client.waitFor(/session to .* up/)
    expect((await request(fwdPort, '/after-restart')).status).toBe(200)
  })
})
