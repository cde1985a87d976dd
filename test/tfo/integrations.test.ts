/**
 * createConnection() where Node users plug connections in: http.Agent,
 * undici's `connect`, and tls.connect({ socket }) — each with the first
 * bytes (the request, or the TLS ClientHello) in the SYN.
 */
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import tls from 'node:tls'
import { Agent as UndiciAgent, request as undiciRequest } from 'undici'
import { describe, expect, it } from 'vitest'
import { createConnection, enableFastOpen, fastOpenInfo, type FastOpenSocket } from 'synmux'
import { close, FIXTURES, isLinux, listen, serverTfoOn, skipReason } from '../helpers'

const skip = skipReason(!isLinux ? 'TFO integrations are verified on Linux' : !serverTfoOn() ? 'net.ipv4.tcp_fastopen has no server bit (run .ci/run or sysctl -w net.ipv4.tcp_fastopen=3)' : false)

/** An HTTP server with TFO that answers with whether the request's connection carried SYN data. */
async function httpServer() {
  const server = enableFastOpen(
    http.createServer((req, res) => {
      const info = fastOpenInfo(req.socket)
      req.resume()
      req.on('end', () => res.end(JSON.stringify({ synData: info.synData, url: req.url })))
    }),
  )
  const port = await listen(server, '127.0.0.1')
  return { server, port }
}

describe.skipIf(skip)('createConnection integrations', () => {
  it('http.Agent: requests on new connections ride in the SYN', async () => {
    const { server, port } = await httpServer()
    const sockets: FastOpenSocket[] = []
    const agent = new http.Agent({ keepAlive: false })
    ;(agent as unknown as { createConnection: typeof createConnection }).createConnection = (opts, cb) => {
      const s = createConnection({ host: (opts as { host: string }).host, port: Number((opts as { port: number }).port) }, cb)
      sockets.push(s)
      return s
    }
    const get = (p: string) =>
      new Promise<{ synData: boolean; url: string }>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
            let body = ''
            res.on('data', (d) => (body += d))
            res.on('end', () => resolve(JSON.parse(body)))
          })
          .on('error', reject)
      })
    await get('/warm')
    const r = await get('/second')
    expect(r).toEqual({ synData: true, url: '/second' })
    expect(sockets.at(-1)!.fastOpen).toEqual({ attempted: true, accepted: true })
    agent.destroy()
    await close(server)
  })

  it("undici: the `connect` option with createConnection puts requests in the SYN", async () => {
    const { server, port } = await httpServer()
    const sockets: FastOpenSocket[] = []
    const dispatcher = new UndiciAgent({
      pipelining: 0, // a new connection per request
      connect: (opts, cb) => {
        const s = createConnection({ host: opts.hostname, port: Number(opts.port) })
        sockets.push(s)
        s.once('connect', () => cb(null, s))
        s.once('error', (e) => cb(e, null))
        return s
      },
    })
    const get = async (p: string) => (await (await undiciRequest(`http://127.0.0.1:${port}${p}`, { dispatcher })).body.json()) as { synData: boolean }
    await get('/warm')
    expect(await get('/second')).toEqual({ synData: true, url: '/second' })
    expect(sockets.at(-1)!.fastOpen).toEqual({ attempted: true, accepted: true })
    await dispatcher.close()
    await close(server)
  })

  it('tls.connect({ socket }): the ClientHello rides in the SYN', async () => {
    const key = fs.readFileSync(path.join(FIXTURES, 'test-key.pem'))
    const cert = fs.readFileSync(path.join(FIXTURES, 'test-cert.pem'))
    const seen: (boolean | null)[] = []
    const server = enableFastOpen(tls.createServer({ key, cert }, (s) => s.end('secure hello')))
    // SYN data is known as soon as the connection is accepted
    server.on('connection', (raw) => seen.push(fastOpenInfo(raw).synData))
    const port = await listen(server, '127.0.0.1')
    const once = () =>
      new Promise<{ text: string; raw: FastOpenSocket }>((resolve, reject) => {
        const raw = createConnection({ host: '127.0.0.1', port })
        const t = tls.connect({ socket: raw, servername: 'localhost', ca: cert }, () => {
          let text = ''
          t.on('data', (d) => (text += d))
          t.on('end', () => resolve({ text, raw }))
        })
        t.on('error', reject)
      })
    await once()
    const { text, raw } = await once()
    expect(text).toBe('secure hello')
    expect(raw.fastOpen).toEqual({ attempted: true, accepted: true })
    expect(seen.at(-1)).toBe(true)
    await close(server)
  })
})
