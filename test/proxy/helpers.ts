/**
 * The HTTP proxy tests' pieces: a whole stack in this process (tunnel
 * server with its gateway, tunnel client, HTTP proxy) on loopback, real
 * local origins, a raw client connection that reads responses with its
 * own small parser (independent of llhttp, so it checks the proxy's
 * framing rather than trusting the same parser), and a minimal RFC 6455
 * client and server.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { AuthorizedKeys, generateKeyPair, HttpProxy, TunnelClient, TunnelServer, type HttpProxyOptions, type TunnelServerOptions } from 'synmux'
import { listen } from '../helpers'
import { httpRequest, type HttpResult } from '../tunnel/cli'

export const sha256 = (b: Uint8Array | string): string => crypto.createHash('sha256').update(b).digest('hex')

/** N deterministic bytes (the same N always gives the same bytes). */
export function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n)
  let x = (seed * 2654435761 + 12345) >>> 0
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    b[i] = x >>> 24
  }
  return b
}

/** Log lines, for asserting what the tunnel server and proxy did. */
export function captureLogger(): { lines: string[]; logger: { error(m: string): void; warn(m: string): void; info(m: string): void; debug(m: string): void } } {
  const lines: string[] = []
  const push = (lv: string) => (m: string) => void lines.push(`${lv} ${m}`)
  return { lines, logger: { error: push('error'), warn: push('warn'), info: push('info'), debug: push('debug') } }
}

export interface Stack {
  server: TunnelServer
  client: TunnelClient
  proxy: HttpProxy
  port: number
  serverLog: string[]
  proxyLog: string[]
  close(): Promise<void>
}

/** Tunnel server (allowing `allow`), tunnel client and HTTP proxy, all on 127.0.0.1. */
export async function startStack(allow: string[], opts: { proxy?: Omit<HttpProxyOptions, 'tunnel'>; server?: Partial<TunnelServerOptions> } = {}): Promise<Stack> {
  const serverKeys = generateKeyPair()
  const clientKeys = generateKeyPair()
  const authorizedKeys = new AuthorizedKeys([[clientKeys.publicKey, 'proxy-test']])
  const s = captureLogger()
  const p = captureLogger()
  const server = new TunnelServer({ secure: { staticKey: serverKeys.privateKey, authorizedKeys }, allow, logger: s.logger, ...opts.server })
  await server.listen(0, '127.0.0.1')
  const client = new TunnelClient({ server: { host: '127.0.0.1', port: server.address().port }, secure: { staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey } }).start()
  const proxy = await new HttpProxy({ tunnel: client, logger: p.logger, ...opts.proxy }).listen(0)
  return {
    server,
    client,
    proxy,
    port: proxy.address().port,
    serverLog: s.lines,
    proxyLog: p.lines,
    async close() {
      await proxy.close()
      await client.close()
      await server.close()
    },
  }
}

export interface SeenRequest {
  method: string
  url: string
  rawHeaders: string[]
  httpVersion: string
  /** The origin-side socket's id (which onward connection carried it). */
  conn: number
  /** Request on that connection: 1, 2, ... */
  nth: number
}

export interface Origin {
  server: http.Server
  port: number
  seen: SeenRequest[]
  /** Onward connections the origin accepted. */
  connections: number
  sockets: Set<net.Socket>
  close(): Promise<void>
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
export const wsAccept = (key: string) => crypto.createHash('sha1').update(key + WS_GUID).digest('base64')

/** Encodes one WebSocket frame (FIN set); `mask` for client-to-server frames. */
export function wsFrame(payload: Buffer, opts: { opcode?: number; mask?: boolean } = {}): Buffer {
  const opcode = opts.opcode ?? 2
  const len = payload.length
  const head: number[] = [0x80 | opcode]
  const m = opts.mask ? 0x80 : 0
  if (len < 126) head.push(m | len)
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255)
  else {
    head.push(m | 127, 0, 0, 0, 0)
    head.push((len >>> 24) & 255, (len >>> 16) & 255, (len >>> 8) & 255, len & 255)
  }
  if (!opts.mask) return Buffer.concat([Buffer.from(head), payload])
  const key = crypto.randomBytes(4)
  const body = Buffer.allocUnsafe(len)
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ key[i & 3]!
  return Buffer.concat([Buffer.from(head), key, body])
}

/** Reads WebSocket frames from a byte buffer; returns the complete ones and the rest. */
export function wsParse(buf: Buffer): { frames: { opcode: number; payload: Buffer }[]; rest: Buffer } {
  const frames: { opcode: number; payload: Buffer }[] = []
  let off = 0
  for (;;) {
    if (buf.length - off < 2) break
    const opcode = buf[off]! & 15
    const masked = (buf[off + 1]! & 0x80) !== 0
    let len = buf[off + 1]! & 127
    let p = off + 2
    if (len === 126) {
      if (buf.length - p < 2) break
      len = buf.readUInt16BE(p)
      p += 2
    } else if (len === 127) {
      if (buf.length - p < 8) break
      len = Number(buf.readBigUInt64BE(p))
      p += 8
    }
    const key = masked ? buf.subarray(p, p + 4) : null
    if (masked) p += 4
    if (buf.length - p < len) break
    const payload = Buffer.from(buf.subarray(p, p + len))
    if (key) for (let i = 0; i < len; i++) payload[i]! ^= key[i & 3]!
    frames.push({ opcode, payload })
    off = p + len
  }
  return { frames, rest: buf.subarray(off) }
}

/**
 * A real HTTP/1.1 origin on 127.0.0.1 (node:http). Routes:
 * - `/bytes/N[?chunked]`: N pattern bytes, Content-Length (or chunked)
 * - `/echo`: the request body's sha256 and length, with the method and raw headers, as JSON
 * - `/trailers`: a chunked body with trailers (X-Checksum: sha256 of the body)
 * - `/head`: Content-Length 1234 (a HEAD gets the length, no body)
 * - `/204`, `/304`: no body (304 with an ETag and a Content-Length)
 * - `/early`: 102 and 103 before a 200
 * - `/hop`: answers with hop-by-hop fields that must not reach the client
 * - `/slow`: half the body, a 600 ms pause, the rest
 * - `/close`: answers with `Connection: close` (the onward connection ends)
 * - `/flaky`: on a reused connection, closes it without answering
 * - `/continue` (Expect: 100-continue): 100, then the echo; `/reject`: 417 at once
 * - upgrade `/ws`: a WebSocket echo
 */
export async function startOrigin(): Promise<Origin> {
  const seen: SeenRequest[] = []
  const sockets = new Set<net.Socket>()
  const ids = new WeakMap<net.Socket, { id: number; n: number }>()
  let connections = 0
  const server = http.createServer()
  server.keepAliveTimeout = 60_000
  server.on('connection', (s: net.Socket) => {
    connections++
    ids.set(s, { id: connections, n: 0 })
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  const record = (req: http.IncomingMessage) => {
    const c = ids.get(req.socket)!
    c.n++
    seen.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, httpVersion: req.httpVersion, conn: c.id, nth: c.n })
    return c
  }
  const echo = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const h = crypto.createHash('sha256')
    let n = 0
    req.on('data', (d: Buffer) => (h.update(d), (n += d.length)))
    req.on('end', () => {
      const body = JSON.stringify({ sha: h.digest('hex'), n, method: req.method, url: req.url, rawHeaders: req.rawHeaders, trailers: req.rawTrailers })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  }
  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const c = record(req)
    const url = new URL(req.url!, 'http://x')
    const m = /^\/bytes\/(\d+)$/.exec(url.pathname)
    if (m) {
      const n = Number(m[1])
      const body = pattern(n, n)
      if (url.searchParams.has('chunked')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        for (let off = 0; off < n; off += 100_000) res.write(body.subarray(off, off + 100_000))
        return res.end()
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n })
      return res.end(body)
    }
    switch (url.pathname) {
      case '/trailers': {
        const body = pattern(30_000, 7)
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'X-Checksum' })
        res.write(body.subarray(0, 10_000))
        res.write(body.subarray(10_000))
        res.addTrailers({ 'X-Checksum': sha256(body) })
        return res.end()
      }
      case '/head':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1234 })
        return res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(1234, 'h'))
      case '/204':
        res.writeHead(204, { 'x-kind': 'no-content' })
        return res.end()
      case '/304':
        res.writeHead(304, { etag: '"v1"', 'content-length': 999 })
        return res.end()
      case '/early':
        res.writeProcessing()
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
        res.writeHead(200, { 'content-length': 5 })
        return res.end('early')
      case '/hop': {
        req.resume()
        res.writeHead(200, [
          'Connection', 'x-origin-secret, keep-alive',
          'X-Origin-Secret', 'must not pass',
          'Keep-Alive', 'timeout=17, max=99',
          'Proxy-Authenticate', 'Basic realm="origin"',
          'Proxy-Connection', 'keep-alive',
          'Upgrade', 'h2c',
          'X-End-To-End', 'passes',
          'Content-Length', '2',
        ])
        return res.end('ok')
      }
      case '/slow':
        // a long pause mid-body (a long poll, a slow origin)
        res.writeHead(200, { 'content-length': 10 })
        res.write('first')
        return void setTimeout(() => res.end('-last'), 600)
      case '/close':
        res.writeHead(200, { connection: 'close', 'content-length': 6 })
        return res.end('closed')
      case '/flaky':
        if (c.n > 1) return void req.socket.destroy()
        return echo(req, res)
      default:
        return echo(req, res)
    }
  }
  server.on('request', handle)
  server.on('checkContinue', (req, res) => {
    if (req.url === '/reject') {
      record(req)
      res.writeHead(417, { 'content-length': 6 })
      return res.end('nope!\n')
    }
    res.writeContinue()
    handle(req, res)
  })
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    record(req)
    if (req.url !== '/ws' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      return
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(req.headers['sec-websocket-key']!)}\r\n\r\n`)
    let buf = head
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      const { frames, rest } = wsParse(buf)
      buf = rest
      for (const f of frames) {
        if (f.opcode === 8) return void socket.end(wsFrame(Buffer.alloc(0), { opcode: 8 }))
        socket.write(wsFrame(Buffer.concat([Buffer.from('echo:'), f.payload]), { opcode: f.opcode }))
      }
    })
    socket.on('error', () => {})
  })
  const port = await listen(server, '127.0.0.1')
  return {
    server,
    port,
    seen,
    get connections() {
      return connections
    },
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

/** A raw TCP origin answering each connection with `answer(requestHead)` and then closing. */
export async function startRawOrigin(answer: (head: string) => Buffer | string): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    let buf = ''
    s.on('error', () => {})
    s.on('data', (d) => {
      buf += d.toString('latin1')
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      s.end(answer(buf.slice(0, end)))
    })
  })
  const port = await listen(server, '127.0.0.1')
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) }
}

export interface RawResponse {
  status: number
  message: string
  /** Fields in order, names lower-cased. */
  headers: [string, string][]
  body: Buffer
  trailers: [string, string][]
  /** Interim (1xx) responses before this one. */
  interim: { status: number; headers: [string, string][] }[]
}

export const field = (r: { headers: [string, string][] }, name: string): string | undefined => r.headers.find(([k]) => k === name)?.[1]
export const fields = (r: { headers: [string, string][] }, name: string): string[] => r.headers.filter(([k]) => k === name).map(([, v]) => v)

/**
 * One raw client connection to the proxy. Responses are read with a small
 * parser of the test's own (status line, fields, then Content-Length,
 * chunked with trailers, or close-delimited; none for HEAD, 1xx, 204, 304).
 */
export class RawClient {
  readonly socket: net.Socket
  #buf = Buffer.alloc(0)
  #ended = false
  #wake: (() => void) | null = null
  readonly closed: Promise<void>

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    this.socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d])
      this.#wake?.()
    })
    this.closed = new Promise((r) =>
      this.socket.once('close', () => {
        this.#ended = true
        this.#wake?.()
        r()
      }),
    )
    this.socket.on('end', () => {
      this.#ended = true
      this.#wake?.()
      // the proxy closed its side: nothing more will be answered, so close ours
      this.socket.end()
    })
    this.socket.on('error', () => {})
  }

  write(data: string | Buffer): void {
    this.socket.write(data)
  }

  /** Whether the proxy has closed its side. */
  get ended(): boolean {
    return this.#ended
  }

  async #need(pred: () => boolean): Promise<void> {
    while (!pred()) {
      if (this.#ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.#buf.toString('latin1').slice(0, 200))}`)
      await new Promise<void>((r) => (this.#wake = r))
      this.#wake = null
    }
  }

  async #line(): Promise<string> {
    await this.#need(() => this.#buf.indexOf('\r\n') >= 0)
    const i = this.#buf.indexOf('\r\n')
    const line = this.#buf.subarray(0, i).toString('latin1')
    this.#buf = this.#buf.subarray(i + 2)
    return line
  }

  async #take(n: number): Promise<Buffer> {
    await this.#need(() => this.#buf.length >= n)
    const b = this.#buf.subarray(0, n)
    this.#buf = this.#buf.subarray(n)
    return Buffer.from(b)
  }

  async #fields(): Promise<[string, string][]> {
    const out: [string, string][] = []
    for (let l = await this.#line(); l !== ''; l = await this.#line()) {
      const c = l.indexOf(':')
      if (c <= 0) throw new Error(`bad field line ${JSON.stringify(l)}`)
      out.push([l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim()])
    }
    return out
  }

  /** Reads the next response to a request with `method`. */
  async response(method = 'GET'): Promise<RawResponse> {
    const interim: RawResponse['interim'] = []
    for (;;) {
      const statusLine = await this.#line()
      const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine)
      if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`)
      const status = Number(m[1])
      const headers = await this.#fields()
      if (status >= 100 && status < 200 && status !== 101) {
        interim.push({ status, headers })
        continue
      }
      const r: RawResponse = { status, message: m[2]!, headers, body: Buffer.alloc(0), trailers: [], interim }
      if (method === 'HEAD' || status === 204 || status === 304 || status === 101 || (method === 'CONNECT' && status < 300)) return r
      const te = field(r, 'transfer-encoding')
      const cl = field(r, 'content-length')
      if (te !== undefined) {
        if (te.toLowerCase() !== 'chunked') throw new Error(`unexpected transfer-encoding ${te}`)
        const parts: Buffer[] = []
        for (;;) {
          const size = parseInt((await this.#line()).split(';')[0]!, 16)
          if (Number.isNaN(size)) throw new Error('bad chunk size')
          if (size === 0) break
          parts.push(await this.#take(size))
          if ((await this.#line()) !== '') throw new Error('bad chunk end')
        }
        r.trailers = await this.#fields()
        r.body = Buffer.concat(parts)
      } else if (cl !== undefined) {
        r.body = await this.#take(Number(cl))
      } else {
        await this.#need(() => this.#ended)
        r.body = this.#buf
        this.#buf = Buffer.alloc(0)
      }
      return r
    }
  }

  /** Resolves with the bytes that arrive until the proxy closes (nothing more expected). */
  async rest(): Promise<Buffer> {
    await this.closed
    return this.#buf
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** A request line and fields (absolute-form through the proxy). */
export function requestHead(method: string, url: string, fields: [string, string][] = [], opts: { host?: string } = {}): string {
  const host = opts.host ?? new URL(url).host
  return `${method} ${url} HTTP/1.1\r\nHost: ${host}\r\n${fields.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
}

/** One request through the proxy with node:http (absolute-form `url`), whole body read. */
export function viaProxy(proxyPort: number, url: string, opts: Parameters<typeof httpRequest>[2] = {}): Promise<HttpResult> {
  return httpRequest(proxyPort, url, { method: 'GET', ...opts })
}

/** Waits until `pred()` holds, polling (for effects in other sockets/processes). */
export async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
