/**
 * The proxy's behaviour against real local origins: hop-by-hop fields,
 * client connections that outlive onward ones (and the one retry),
 * refusals (403/502, the client connection closed, nothing behind a
 * refused request forwarded), proxy authentication, CONNECT (plain and
 * TLS, first bytes in the OPEN), WebSocket upgrades, and malformed input.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { GATEWAY_HOST, GATEWAY_PORT, HttpProxy, createServer as createFastOpenServer, fastOpenInfo, isGatewayTarget } from 'synmux'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FIXTURES, freshLoopback, isLinux, listen, serverTfoOn, skipReason } from '../helpers'
import { field, fields, RawClient, requestHead, sha256, startOrigin, startStack, until, viaProxy, wsAccept, wsFrame, wsParse, type Origin, type Stack } from './helpers'

let origin: Origin
let denied: Origin
let tlsOrigin: https.Server
let tlsPort: number
let stack: Stack
let O: string
let downPort: number

const hop = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']

beforeAll(async () => {
  origin = await startOrigin()
  denied = await startOrigin() // listening, but not in the allow list
  tlsOrigin = https.createServer({ cert: fs.readFileSync(path.join(FIXTURES, 'test-cert.pem')), key: fs.readFileSync(path.join(FIXTURES, 'test-key.pem')) }, (req, res) => res.end(`secure ${req.url}`))
  tlsPort = await listen(tlsOrigin, '127.0.0.1')
  // allowed, but nothing listens there
  const tmp = net.createServer()
  downPort = await listen(tmp, '127.0.0.1')
  await new Promise((r) => tmp.close(r))
  stack = await startStack([`127.0.0.1:${origin.port}`, `127.0.0.1:${tlsPort}`, `127.0.0.1:${downPort}`])
  O = `http://127.0.0.1:${origin.port}`
})

afterAll(async () => {
  await stack.close()
  await origin.close()
  await denied.close()
  await new Promise((r) => tlsOrigin.close(r))
})

const seenOf = (o: Origin, url: string) => o.seen.filter((s) => s.url === url)
const names = (raw: string[]) => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())

describe('hop-by-hop fields', () => {
  it('are consumed in requests: the origin never sees them; end-to-end fields, Host and Via arrive', async () => {
    const c = new RawClient(stack.port)
    c.write(
      requestHead('GET', `${O}/echo?hop`, [
        ['Connection', 'X-Client-Secret, keep-alive'],
        ['X-Client-Secret', 'must not pass'],
        ['Keep-Alive', '300'],
        ['Proxy-Connection', 'keep-alive'],
        ['Proxy-Authorization', 'Basic Zm9vOmJhcg=='],
        ['TE', 'trailers'],
        ['Trailer', 'X-Whatever'],
        ['Upgrade', 'foo/2'],
        ['X-Keep', 'yes'],
        ['Via', '1.1 browser-side'],
      ], { host: 'wrong.example' }),
    )
    const r = await c.response()
    const seen = JSON.parse(r.body.toString())
    const got = names(seen.rawHeaders)
    for (const h of [...hop.filter((h) => h !== 'connection'), 'x-client-secret']) expect(got, h).not.toContain(h)
    // the only Connection field is the onward hop's own
    expect(seen.rawHeaders[seen.rawHeaders.findIndex((n: string) => n.toLowerCase() === 'connection') + 1]).toBe('keep-alive')
    expect(seen.rawHeaders[seen.rawHeaders.indexOf('X-Keep') + 1]).toBe('yes')
    // absolute-form wins over the Host field (RFC 9112 3.2.2)
    expect(seen.rawHeaders[seen.rawHeaders.indexOf('Host') + 1]).toBe(`127.0.0.1:${origin.port}`)
    const vias = seen.rawHeaders.flatMap((n: string, i: number) => (n.toLowerCase() === 'via' ? [seen.rawHeaders[i + 1]] : []))
    expect(vias).toEqual(['1.1 browser-side', '1.1 synmux'])
    c.destroy()
  })

  it('are consumed in responses: the client never sees the origin\'s', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/hop`))
    const r = await c.response()
    expect(r.body.toString()).toBe('ok')
    expect(field(r, 'x-end-to-end')).toBe('passes')
    expect(field(r, 'x-origin-secret')).toBeUndefined()
    expect(field(r, 'proxy-authenticate')).toBeUndefined()
    expect(field(r, 'proxy-connection')).toBeUndefined()
    expect(field(r, 'upgrade')).toBeUndefined()
    expect(fields(r, 'keep-alive').join()).not.toContain('timeout=17')
    expect(fields(r, 'connection').join()).not.toMatch(/x-origin-secret/i)
    expect(field(r, 'via')).toBe('1.1 synmux')
    c.destroy()
  })

  it('a Connection field naming Content-Length or Host cannot change the framing', async () => {
    const c = new RawClient(stack.port)
    c.write(`POST ${O}/echo HTTP/1.1\r\nHost: x\r\nConnection: content-length, host\r\nContent-Length: 5\r\n\r\nhello` + requestHead('GET', `${O}/bytes/3`))
    const a = await c.response('POST')
    expect(JSON.parse(a.body.toString())).toMatchObject({ n: 5, sha: sha256('hello') })
    const b = await c.response()
    expect(b.body.length).toBe(3)
    c.destroy()
  })
})

describe('client connections outlive onward connections', () => {
  it('the origin answers Connection: close; the next request on the same client connection still works', async () => {
    const c = new RawClient(stack.port)
    const before = origin.connections
    c.write(requestHead('GET', `${O}/close`))
    const a = await c.response()
    expect(a.body.toString()).toBe('closed')
    expect(fields(a, 'connection').join()).not.toMatch(/close/)
    c.write(requestHead('GET', `${O}/bytes/7`))
    expect((await c.response()).body.length).toBe(7)
    expect(origin.connections).toBeGreaterThan(before)
    expect(c.ended).toBe(false)
    c.destroy()
  })

  it('the origin closes its idle keep-alive connections between requests; the next request still works', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/bytes/100`))
    await c.response()
    for (const s of origin.sockets) s.destroy()
    await until(() => origin.sockets.size === 0, 'origin sockets closed')
    c.write(requestHead('GET', `${O}/bytes/200`))
    const r = await c.response()
    expect(r.status).toBe(200)
    expect(r.body.length).toBe(200)
    c.destroy()
  })

  it('an idempotent request on a pooled connection the origin closes without answering is retried once, on a new one', async () => {
    const c = new RawClient(stack.port)
    const retries = stack.server.stats().http!.retries
    c.write(requestHead('GET', `${O}/bytes/1`)) // leaves a pooled connection behind
    await c.response()
    c.write(requestHead('GET', `${O}/flaky`))
    const r = await c.response()
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body.toString())).toMatchObject({ method: 'GET', url: '/flaky' })
    const tries = seenOf(origin, '/flaky')
    expect(tries.map((t) => t.nth > 1)).toEqual([true, false]) // first on the reused connection (dropped), then on a fresh one
    expect(stack.server.stats().http!.retries).toBe(retries + 1)
    c.destroy()
  })

  it('a non-idempotent request in the same situation is not retried: 502, and the client connection stays usable', async () => {
    const c = new RawClient(stack.port)
    const retries = stack.server.stats().http!.retries
    c.write(requestHead('GET', `${O}/bytes/1`))
    await c.response()
    c.write(`POST ${O}/flaky?post HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata`)
    const r = await c.response('POST')
    expect(r.status).toBe(502)
    expect(seenOf(origin, '/flaky?post')).toHaveLength(1)
    expect(stack.server.stats().http!.retries).toBe(retries)
    c.write(requestHead('GET', `${O}/bytes/2`))
    expect((await c.response()).body.length).toBe(2)
    c.destroy()
  })

  it('the retry goes on a new connection, not on another pooled one the origin has dropped too', async () => {
    const own = await startStack([`127.0.0.1:${origin.port}`])
    try {
      // two requests at once: two onward connections, both pooled afterwards
      const a = new RawClient(own.port)
      const b = new RawClient(own.port)
      a.write(requestHead('GET', `${O}/slow`))
      b.write(requestHead('GET', `${O}/slow`))
      expect((await a.response()).body.toString()).toBe('first-last')
      expect((await b.response()).body.toString()).toBe('first-last')
      const st = own.server.stats().http!
      expect(st.originConnections).toBe(2)
      // /flaky drops any connection that served a request before: both pooled ones
      a.write(requestHead('GET', `${O}/flaky?twice`))
      const r = await a.response()
      expect(r.status).toBe(200)
      expect(JSON.parse(r.body.toString())).toMatchObject({ url: '/flaky?twice' })
      expect(seenOf(origin, '/flaky?twice').map((t) => t.nth > 1)).toEqual([true, false])
      expect(own.server.stats().http!).toMatchObject({ retries: st.retries + 1, originConnections: 3 })
      a.destroy()
      b.destroy()
    } finally {
      await own.close()
    }
  })

  it.skipIf(skipReason(!isLinux ? 'TFO is checked on Linux' : !serverTfoOn() ? 'net.ipv4.tcp_fastopen has no server bit (.ci/run sets 3)' : false))(
    'onward connections use TCP Fast Open: once the origin gave a cookie, a new connection carries its request in the SYN',
    async () => {
      const host = freshLoopback() // no cookie cached for this address yet
      const synData: (boolean | null)[] = []
      const sockets = new Set<net.Socket>()
      const web = http.createServer((req, res) => {
        synData.push(fastOpenInfo(req.socket).synData)
        res.end('tfo')
      })
      const tfo = createFastOpenServer((s) => {
        sockets.add(s)
        s.once('close', () => sockets.delete(s))
        web.emit('connection', s)
      })
      const port = await listen(tfo, host)
      const own = await startStack([`${host}:${port}`])
      try {
        const c = new RawClient(own.port)
        c.write(requestHead('GET', `http://${host}:${port}/one`))
        expect((await c.response()).body.toString()).toBe('tfo')
        // the origin drops the pooled connection: the next request needs a new one
        for (const s of sockets) s.destroy()
        await until(() => sockets.size === 0, 'origin sockets closed')
        await new Promise((r) => setTimeout(r, 50)) // let the gateway's pool see the close
        c.write(requestHead('GET', `http://${host}:${port}/two`))
        expect((await c.response()).body.toString()).toBe('tfo')
        // first connection: no cookie, the SYN asked for one; second: the request rode in the SYN
        expect(synData).toEqual([false, true])
        c.destroy()
      } finally {
        await own.close()
        for (const s of sockets) s.destroy()
        await new Promise((r) => tfo.close(r))
      }
    },
  )

  it('a pooled connection\'s idle timeout never cuts a response that pauses longer', async () => {
    const short = await startStack([`127.0.0.1:${origin.port}`], { server: { httpGateway: { idleSocketTimeout: 200 } } })
    try {
      const c = new RawClient(short.port)
      c.write(requestHead('GET', `${O}/bytes/1`))
      await c.response()
      c.write(requestHead('GET', `${O}/slow`)) // on the pooled connection, which had a 200 ms idle timeout
      const r = await c.response()
      expect(r.body.toString()).toBe('first-last')
      expect(short.server.stats().http!.reusedConnections).toBe(1)
      c.destroy()
    } finally {
      await short.close()
    }
  })

  it('requests from many client connections share a few pooled onward connections, over one session', async () => {
    const before = origin.connections
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 })
    for (let round = 0; round < 5; round++) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => viaProxy(stack.port, `${O}/bytes/${i}`, { agent })))
      rs.forEach((r, i) => expect(r.body.length).toBe(i))
    }
    agent.destroy()
    expect(origin.connections - before).toBeLessThanOrEqual(20)
    const st = stack.server.stats()
    expect(st.sessions).toBe(1)
    expect(st.http!.reusedConnections).toBeGreaterThan(0)
    // each request's head rode in its stream's OPEN
    expect(st.http!.headsInOpen).toBeGreaterThanOrEqual(100)
  })
})

describe('refusals', () => {
  it('an origin not in the allow list: 403 with Proxy-Status, the client connection closed, the origin never contacted', async () => {
    const c = new RawClient(stack.port)
    c.write(`POST http://127.0.0.1:${denied.port}/secret HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nsmugg`)
    const r = await c.response('POST')
    expect(r.status).toBe(403)
    expect(field(r, 'proxy-status')).toBe('synmux; error=destination_ip_prohibited')
    expect(field(r, 'connection')).toBe('close')
    await c.rest()
    expect(denied.connections).toBe(0)
    expect(stack.proxy.stats().refused).toBeGreaterThan(0)
  })

  it('nothing pipelined behind a refused request is forwarded', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/echo?before`) + requestHead('GET', `http://127.0.0.1:${denied.port}/x`) + requestHead('GET', `${O}/echo?after`) + `POST ${O}/echo?after-post HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx`)
    expect((await c.response()).status).toBe(200)
    const r = await c.response()
    expect(r.status).toBe(403)
    expect((await c.rest()).length).toBe(0) // closed right after the 403
    expect(seenOf(origin, '/echo?before')).toHaveLength(1)
    expect(seenOf(origin, '/echo?after')).toHaveLength(0)
    expect(seenOf(origin, '/echo?after-post')).toHaveLength(0)
    expect(denied.connections).toBe(0)
  })

  it('an allowed origin that is down: 502', async () => {
    const r = await viaProxy(stack.port, `http://127.0.0.1:${downPort}/`)
    expect(r.status).toBe(502)
    expect(r.headers['proxy-status']).toMatch(/^synmux; error=/)
  })

  it('a name that does not resolve: 502, connection closed', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `http://no-such-host.invalid:${origin.port}/`))
    const r = await c.response()
    expect([403, 502]).toContain(r.status)
    await c.rest()
  })

  it('with the gateway off, HTTP requests are refused: 403, connection closed', async () => {
    const off = await startStack([`127.0.0.1:${origin.port}`], { server: { httpGateway: false } })
    try {
      const c = new RawClient(off.port)
      c.write(requestHead('GET', `${O}/echo?gateway-off`))
      const r = await c.response()
      expect(r.status).toBe(403)
      await c.rest()
      expect(seenOf(origin, '/echo?gateway-off')).toHaveLength(0)
      expect(off.server.stats().http).toBeUndefined()
    } finally {
      await off.close()
    }
  })
})

describe('proxy authentication', () => {
  let authed: Stack
  const good = `Basic ${Buffer.from('alice:s3cret:with colon').toString('base64')}`
  beforeAll(async () => {
    authed = await startStack([`127.0.0.1:${origin.port}`], { proxy: { auth: { user: 'alice', pass: 's3cret:with colon' } } })
  })
  afterAll(() => authed.close())

  it('407 with a Basic challenge without credentials or with wrong ones; the right ones pass and are not forwarded', async () => {
    const c = new RawClient(authed.port)
    c.write(requestHead('GET', `${O}/echo?auth1`))
    const none = await c.response()
    expect(none.status).toBe(407)
    expect(field(none, 'proxy-authenticate')).toBe('Basic realm="synmux", charset="UTF-8"')
    c.write(requestHead('GET', `${O}/echo?auth2`, [['Proxy-Authorization', `Basic ${Buffer.from('alice:wrong').toString('base64')}`]]))
    expect((await c.response()).status).toBe(407)
    c.write(requestHead('GET', `${O}/echo?auth3`, [['Proxy-Authorization', 'Bearer abc']]))
    expect((await c.response()).status).toBe(407)
    // a 407 keeps the connection: the browser retries on it
    c.write(requestHead('GET', `${O}/echo?auth4`, [['Proxy-Authorization', good]]))
    const ok = await c.response()
    expect(ok.status).toBe(200)
    expect(names(JSON.parse(ok.body.toString()).rawHeaders)).not.toContain('proxy-authorization')
    expect(seenOf(origin, '/echo?auth1').length + seenOf(origin, '/echo?auth2').length + seenOf(origin, '/echo?auth3').length).toBe(0)
    expect(authed.proxy.stats().authFailures).toBe(3)
    c.destroy()
  })

  it('CONNECT and upgrades need the credentials too', async () => {
    const c = new RawClient(authed.port)
    c.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`)
    const r = await c.response('CONNECT')
    expect(r.status).toBe(407)
    await c.rest()
    const w = new RawClient(authed.port)
    w.write(requestHead('GET', `${O}/ws`, [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', crypto.randomBytes(16).toString('base64')]]))
    expect((await w.response()).status).toBe(407)
    await w.rest()
    const ok = new RawClient(authed.port)
    ok.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${good}\r\n\r\n`)
    expect((await ok.response('CONNECT')).status).toBe(200)
    ok.write('GET /bytes/4 HTTP/1.1\r\nHost: x\r\n\r\n')
    expect((await ok.response()).body.length).toBe(4)
    ok.destroy()
  })

  it('rejects bad options with coded errors', () => {
    expect(() => new HttpProxy({ tunnel: authed.client, auth: { user: 'a:b', pass: 'x' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new HttpProxy({ tunnel: authed.client, auth: { user: 'a' } as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new HttpProxy({ tunnel: {} as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new HttpProxy({ tunnel: authed.client, firstBytesWait: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})

describe('CONNECT', () => {
  it('tunnels raw bytes to host:port; the first bytes ride in the OPEN (and the onward SYN)', async () => {
    const c = new RawClient(stack.port)
    c.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`)
    const r = await c.response('CONNECT')
    expect(r.status).toBe(200)
    const req = 'GET /echo?via-connect HTTP/1.1\r\nHost: x\r\n\r\n'
    c.write(req)
    const res = await c.response()
    expect(JSON.parse(res.body.toString())).toMatchObject({ url: '/echo?via-connect' })
    const line = stack.serverLog.find((l) => l.includes(`connected 127.0.0.1:${origin.port} (`))
    expect(line).toMatch(new RegExp(`\\(${Buffer.byteLength(req)} bytes in`))
    c.destroy()
  })

  it('carries TLS end to end (the ClientHello rides in the OPEN)', async () => {
    const raw = net.connect({ host: '127.0.0.1', port: stack.port })
    raw.write(`CONNECT 127.0.0.1:${tlsPort} HTTP/1.1\r\nHost: 127.0.0.1:${tlsPort}\r\n\r\n`)
    await new Promise<void>((resolve, reject) => {
      let got = ''
      const on = (d: Buffer) => {
        got += d.toString('latin1')
        if (!got.includes('\r\n\r\n')) return
        raw.off('data', on)
        expect(got).toMatch(/^HTTP\/1.1 200 /)
        resolve()
      }
      raw.on('data', on)
      raw.on('error', reject)
    })
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request({ createConnection: () => tls.connect({ socket: raw, servername: 'localhost', ca: fs.readFileSync(path.join(FIXTURES, 'test-cert.pem')) }), path: '/tls', host: 'localhost' }, (res) => {
        let t = ''
        res.on('data', (d) => (t += d))
        res.on('end', () => resolve(t))
      })
      req.on('error', reject)
      req.end()
    })
    expect(body).toBe('secure /tls')
    // the ClientHello (hundreds of bytes) went in the OPEN, and on in the onward connection's first write
    const line = stack.serverLog.find((l) => l.includes(`connected 127.0.0.1:${tlsPort} (`))
    expect(line).toMatch(/\((\d{3,}) bytes in/)
    raw.destroy()
  })

  it('a refused target: 200 was optimistic, so the connection is closed and nothing is answered', async () => {
    const c = new RawClient(stack.port)
    c.write(`CONNECT 127.0.0.1:${denied.port} HTTP/1.1\r\nHost: x\r\n\r\n`)
    expect((await c.response('CONNECT')).status).toBe(200)
    c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect((await c.rest()).length).toBe(0)
    expect(denied.connections).toBe(0)
  })

  it('with optimisticConnect: false, a refused target is answered 403 and an allowed one 200', async () => {
    const strict = await startStack([`127.0.0.1:${origin.port}`], { proxy: { optimisticConnect: false } })
    try {
      const a = new RawClient(strict.port)
      a.write(`CONNECT 127.0.0.1:${denied.port} HTTP/1.1\r\nHost: x\r\n\r\n`)
      const r = await a.response('CONNECT')
      expect(r.status).toBe(403)
      expect(field(r, 'proxy-status')).toBe('synmux; error=destination_ip_prohibited')
      await a.rest()
      const b = new RawClient(strict.port)
      b.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\n`)
      expect((await b.response('CONNECT')).status).toBe(200)
      b.write('GET /bytes/9 HTTP/1.1\r\nHost: x\r\n\r\n')
      expect((await b.response()).body.length).toBe(9)
      b.destroy()
    } finally {
      await strict.close()
    }
  })

  it('bad CONNECT targets: 400 (no port), 403 (the reserved gateway name)', async () => {
    const a = new RawClient(stack.port)
    a.write('CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n')
    expect((await a.response('CONNECT')).status).toBe(400)
    const b = new RawClient(stack.port)
    b.write(`CONNECT ${GATEWAY_HOST}:${GATEWAY_PORT} HTTP/1.1\r\nHost: x\r\n\r\n`)
    expect((await b.response('CONNECT')).status).toBe(403)
    await Promise.all([a.rest(), b.rest()])
  })
})

describe('WebSocket', () => {
  const upgrade = (url: string, key: string) =>
    requestHead('GET', url, [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', key], ['X-Client-Secret', 'x'], ['Proxy-Connection', 'keep-alive']])

  it('upgrades through the proxy and carries frames both ways (small and 100 KiB)', async () => {
    const key = crypto.randomBytes(16).toString('base64')
    const c = new RawClient(stack.port)
    c.write(upgrade(`${O}/ws`, key))
    const r = await c.response()
    expect(r.status).toBe(101)
    expect(field(r, 'upgrade')?.toLowerCase()).toBe('websocket')
    expect(field(r, 'sec-websocket-accept')).toBe(wsAccept(key))
    const seen = origin.seen.find((s) => s.url === '/ws')!
    expect(names(seen.rawHeaders)).not.toContain('proxy-connection')
    const big = crypto.randomBytes(100 * 1024)
    const frames = new Promise<{ opcode: number; payload: Buffer }[]>((resolve) => {
      let buf = Buffer.alloc(0)
      const got: { opcode: number; payload: Buffer }[] = []
      c.socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        const p = wsParse(buf)
        buf = p.rest
        got.push(...p.frames)
        if (got.length >= 2) resolve(got)
      })
    })
    c.write(wsFrame(Buffer.from('hello'), { opcode: 1, mask: true }))
    c.write(wsFrame(big, { opcode: 2, mask: true }))
    const [a, b] = await frames
    expect(a).toEqual({ opcode: 1, payload: Buffer.from('echo:hello') })
    expect(b!.opcode).toBe(2)
    expect(sha256(b!.payload)).toBe(sha256(Buffer.concat([Buffer.from('echo:'), big])))
    c.write(wsFrame(Buffer.alloc(0), { opcode: 8, mask: true }))
    await c.closed
    expect(stack.server.stats().http!.upgrades).toBeGreaterThan(0)
    expect(stack.proxy.stats().upgrades).toBeGreaterThan(0)
  })

  it('an origin that declines the upgrade: its answer comes through, then the connection closes', async () => {
    const c = new RawClient(stack.port)
    c.write(upgrade(`${O}/not-ws`, crypto.randomBytes(16).toString('base64')))
    expect((await c.response()).status).toBe(400)
    await c.rest()
  })

  it('an upgrade to an origin not allowed: 403, closed', async () => {
    const c = new RawClient(stack.port)
    c.write(upgrade(`http://127.0.0.1:${denied.port}/ws`, crypto.randomBytes(16).toString('base64')))
    expect((await c.response()).status).toBe(403)
    await c.rest()
    expect(denied.connections).toBe(0)
  })
})

describe('malformed input never crashes anything', () => {
  const answer = async (bytes: string | Buffer, method = 'GET') => {
    const c = new RawClient(stack.port)
    c.write(bytes)
    const r = await c.response(method)
    return { r, c }
  }

  it('garbage, smuggling shapes and oversized heads are answered 4xx and the connection closed', async () => {
    const cases: [string | Buffer, number][] = [
      [crypto.randomBytes(300), 400],
      ['GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
      [`POST ${'http://127.0.0.1:1'}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`, 400],
      [`GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`, 431],
      ['GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n', 400],
    ]
    for (const [bytes, status] of cases) {
      const { r, c } = await answer(bytes)
      expect(r.status, JSON.stringify(bytes.toString().slice(0, 60))).toBe(status)
      await c.rest()
    }
  })

  it('requests a proxy cannot serve: 400 (origin-form, https://, userinfo), 501 (unknown transfer coding)', async () => {
    for (const [line, status] of [
      ['GET / HTTP/1.1', 400],
      ['GET https://127.0.0.1/ HTTP/1.1', 400],
      [`GET http://user:pw@127.0.0.1:${origin.port}/ HTTP/1.1`, 400],
      [`GET http://[::1/ HTTP/1.1`, 400],
      [`GET http://127.0.0.1:99999/ HTTP/1.1`, 400],
      [`GET http://${GATEWAY_HOST}/ HTTP/1.1`, 400],
    ] as const) {
      const { r, c } = await answer(`${line}\r\nHost: x\r\n\r\n`)
      expect(r.status, line).toBe(status)
      c.destroy()
    }
    const { r, c } = await answer(`POST ${O}/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 'POST')
    expect(r.status).toBe(501)
    c.destroy()
    // and it still serves
    expect((await viaProxy(stack.port, `${O}/bytes/1`)).status).toBe(200)
  })

  it('a gateway stream that is not an absolute-form HTTP request is refused (bad target)', async () => {
    expect(isGatewayTarget({ host: 'GATEWAY.synmux.invalid.', port: 80 })).toBe(true)
    for (const data of [crypto.randomBytes(64), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`)]) {
      const s = await stack.client.open({ host: GATEWAY_HOST, port: GATEWAY_PORT }, data)
      const err = await new Promise<Error & { code?: string; wireCode?: number }>((resolve) => {
        s.on('error', resolve)
        s.resume()
        s.on('end', () => resolve(Object.assign(new Error('ended without refusal'), { code: 'END' })))
      })
      expect(err.code).toBe('SYNMUX_REFUSED')
      expect(err.wireCode).toBe(7)
    }
    expect(stack.server.stats().sessions).toBe(1)
  })

  it('a client that vanishes mid-request or mid-response leaves nothing behind', async () => {
    const a = net.connect({ host: '127.0.0.1', port: stack.port })
    a.write(`POST ${O}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(1000)}`)
    await until(() => stack.proxy.stats().active > 0, 'the request to start')
    a.destroy()
    const b = net.connect({ host: '127.0.0.1', port: stack.port })
    b.write(requestHead('GET', `${O}/bytes/${20 << 20}`))
    await new Promise((r) => b.once('data', r))
    b.destroy()
    await until(() => stack.proxy.stats().active === 0 && stack.server.stats().http!.active === 0, 'requests to wind down').catch((e) => { throw new Error(e.message + JSON.stringify([stack.proxy.stats(), stack.server.stats()])) })
    expect((await viaProxy(stack.port, `${O}/bytes/3`)).body.length).toBe(3)
  })
})
