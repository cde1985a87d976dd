/**
 * Message framing through the proxy (RFC 9112 6): every body length rule,
 * each against a real local origin, checked on raw client connections by
 * the test's own response reader; bodies of 0 B and 50 MiB both ways;
 * pipelining; trailers; 1xx and Expect: 100-continue.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { field, pattern, RawClient, requestHead, sha256, startOrigin, startRawOrigin, startStack, viaProxy, type Origin, type Stack } from './helpers'

let origin: Origin
let close10: Awaited<ReturnType<typeof startRawOrigin>>
let close11: Awaited<ReturnType<typeof startRawOrigin>>
let stack: Stack
let O: string

beforeAll(async () => {
  origin = await startOrigin()
  // close-delimited bodies: an HTTP/1.0 origin, and an HTTP/1.1 one that sends Connection: close and no length
  close10 = await startRawOrigin(() => 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n' + 'one-point-oh '.repeat(1000))
  close11 = await startRawOrigin(() => Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\r\n'), pattern(200_000, 11)]))
  stack = await startStack([`127.0.0.1:${origin.port}`, `127.0.0.1:${close10.port}`, `127.0.0.1:${close11.port}`])
  O = `http://127.0.0.1:${origin.port}`
})

afterAll(async () => {
  await stack.close()
  await origin.close()
  await close10.close()
  await close11.close()
})

describe('framing', () => {
  it('Content-Length bodies, 0 B and more, keep-alive between them', async () => {
    const c = new RawClient(stack.port)
    for (const n of [0, 1, 65_537]) {
      c.write(requestHead('GET', `${O}/bytes/${n}`))
      const r = await c.response()
      expect(r.status).toBe(200)
      expect(field(r, 'content-length')).toBe(String(n))
      expect(r.body.equals(pattern(n, n))).toBe(true)
    }
    expect(c.ended).toBe(false)
    c.destroy()
  })

  it('chunked bodies arrive chunked and intact', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/bytes/300000?chunked`))
    const r = await c.response()
    expect(field(r, 'transfer-encoding')).toBe('chunked')
    expect(field(r, 'content-length')).toBeUndefined()
    expect(sha256(r.body)).toBe(sha256(pattern(300_000, 300_000)))
    c.destroy()
  })

  it('chunked with trailers: the trailer fields reach the client, the Trailer field does not', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/trailers`, [['TE', 'trailers']]))
    const r = await c.response()
    expect(r.trailers).toEqual([['x-checksum', sha256(r.body)]])
    expect(r.body.length).toBe(30_000)
    expect(field(r, 'trailer')).toBeUndefined()
    c.destroy()
  })

  it('request trailers and chunked request bodies reach the origin', async () => {
    const c = new RawClient(stack.port)
    const body = pattern(70_000, 3)
    c.write(`POST ${O}/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n`)
    c.write(`${(40_000).toString(16)}\r\n`)
    c.write(body.subarray(0, 40_000))
    c.write(`\r\n${(30_000).toString(16)};ext=1\r\n`)
    c.write(body.subarray(40_000))
    c.write(`\r\n0\r\nX-Sum: ${sha256(body)}\r\n\r\n`)
    const r = await c.response('POST')
    const seen = JSON.parse(r.body.toString())
    expect(seen).toMatchObject({ n: 70_000, sha: sha256(body), trailers: ['X-Sum', sha256(body)] })
    c.destroy()
  })

  it('close-delimited bodies (HTTP/1.0 and 1.1 origins) end cleanly and the client connection stays open', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `http://127.0.0.1:${close10.port}/`))
    const a = await c.response()
    expect(a.body.toString()).toBe('one-point-oh '.repeat(1000))
    expect(field(a, 'via')).toBe('1.0 synmux')
    c.write(requestHead('GET', `http://127.0.0.1:${close11.port}/`))
    const b = await c.response()
    expect(b.body.equals(pattern(200_000, 11))).toBe(true)
    // the same client connection serves another request
    c.write(requestHead('GET', `${O}/bytes/10`))
    expect((await c.response()).body.equals(pattern(10, 10))).toBe(true)
    expect(c.ended).toBe(false)
    c.destroy()
  })

  it('HEAD, 204 and 304 carry no body (the next response on the connection parses)', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('HEAD', `${O}/head`) + requestHead('GET', `${O}/204`) + requestHead('GET', `${O}/304`, [['If-None-Match', '"v1"']]) + requestHead('GET', `${O}/head`))
    const head = await c.response('HEAD')
    expect(head.status).toBe(200)
    expect(field(head, 'content-length')).toBe('1234')
    const nc = await c.response()
    expect(nc.status).toBe(204)
    expect(field(nc, 'x-kind')).toBe('no-content')
    const nm = await c.response()
    expect(nm.status).toBe(304)
    expect(field(nm, 'etag')).toBe('"v1"')
    const get = await c.response()
    expect(get.status).toBe(200)
    expect(get.body.equals(Buffer.alloc(1234, 'h'))).toBe(true)
    c.destroy()
  })

  it('1xx interim responses (102, 103 with its fields) are forwarded before the final one', async () => {
    const c = new RawClient(stack.port)
    c.write(requestHead('GET', `${O}/early`))
    const r = await c.response()
    expect(r.interim.map((i) => i.status)).toEqual([102, 103])
    expect(field(r.interim[1]!, 'link')).toBe('</style.css>; rel=preload; as=style')
    expect(r.body.toString()).toBe('early')
    c.destroy()
  })

  it('no 1xx to an HTTP/1.0 client', async () => {
    const c = new RawClient(stack.port)
    c.write(`GET ${O}/early HTTP/1.0\r\nHost: x\r\n\r\n`)
    const r = await c.response()
    expect(r.interim).toEqual([])
    expect(r.body.toString()).toBe('early')
    c.destroy()
  })

  it('bodies of 0 B and 50 MiB both ways, byte-identical (sha256)', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const empty = await viaProxy(stack.port, `${O}/echo`, { method: 'POST', body: Buffer.alloc(0), agent })
    expect(JSON.parse(empty.body.toString())).toMatchObject({ n: 0, sha: sha256(Buffer.alloc(0)) })
    const big = crypto.randomBytes(50 << 20)
    const up = await viaProxy(stack.port, `${O}/echo`, { method: 'PUT', body: big, agent })
    expect(JSON.parse(up.body.toString())).toMatchObject({ n: big.length, sha: sha256(big), method: 'PUT' })
    const down = await viaProxy(stack.port, `${O}/bytes/${50 << 20}`, { agent })
    expect(down.body.length).toBe(50 << 20)
    expect(sha256(down.body)).toBe(sha256(pattern(50 << 20, 50 << 20)))
    const downChunked = await viaProxy(stack.port, `${O}/bytes/0?chunked`, { agent })
    expect(downChunked.body.length).toBe(0)
    agent.destroy()
  }, 60_000)

  it('10 pipelined requests of mixed sizes on one connection are answered in order', async () => {
    const c = new RawClient(stack.port)
    const sizes = [5, 0, 1_000_000, 17, 250_000, 1, 0, 3_000_000, 42, 70_000]
    const post = pattern(123_456, 9)
    const reqs: Buffer[] = []
    sizes.forEach((n, i) => {
      if (i === 4) reqs.push(Buffer.from(`POST ${O}/echo?i=${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${post.length}\r\n\r\n`), post)
      else reqs.push(Buffer.from(requestHead('GET', `${O}/bytes/${n}${i % 3 === 1 ? '?chunked' : ''}`)))
    })
    c.write(Buffer.concat(reqs)) // one write: the whole pipeline at once
    for (let i = 0; i < sizes.length; i++) {
      const r = await c.response(i === 4 ? 'POST' : 'GET')
      expect(r.status, `response ${i}`).toBe(200)
      if (i === 4) expect(JSON.parse(r.body.toString())).toMatchObject({ url: '/echo?i=4', n: post.length, sha: sha256(post) })
      else expect(sha256(r.body), `response ${i}`).toBe(sha256(pattern(sizes[i]!, sizes[i]!)))
    }
    expect(c.ended).toBe(false)
    c.destroy()
  }, 30_000)

  it('Expect: 100-continue: the origin\'s 100 comes through before the body is sent', async () => {
    const body = pattern(200_000, 5)
    const r = await new Promise<{ status: number; sha: string; sentAfterContinue: boolean }>((resolve, reject) => {
      let continued = false
      const req = http.request({ host: '127.0.0.1', port: stack.port, method: 'POST', path: `${O}/continue`, agent: false, headers: { expect: '100-continue', 'content-length': body.length } }, (res) => {
        let t = ''
        res.on('data', (d) => (t += d))
        res.on('end', () => resolve({ status: res.statusCode!, sha: JSON.parse(t).sha, sentAfterContinue: continued }))
      })
      req.on('continue', () => {
        continued = true
        req.end(body)
      })
      req.on('error', reject)
      req.flushHeaders()
    })
    expect(r).toEqual({ status: 200, sha: sha256(body), sentAfterContinue: true })
  })

  it('Expect: 100-continue answered with a final status: no 100, the body is never needed', async () => {
    const c = new RawClient(stack.port)
    c.write(`PUT ${O}/reject HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n`)
    const r = await c.response('PUT')
    expect(r.interim).toEqual([])
    expect(r.status).toBe(417)
    expect(r.body.toString()).toBe('nope!\n')
    c.destroy()
  })
})
