/**
 * What the HTTP proxy's two halves share: the absolute-form and authority
 * parsers, hop-by-hop header filtering, and
 * small writers for what `node:http` has no public API for.
 *
 * Message boundaries are never computed here: `node:http` (llhttp) parses
 * every message; these helpers only decide which header fields travel on.
 * @packageDocumentation
 */
import net from 'node:net'
import type http from 'node:http'
import type { Duplex } from 'node:stream'
import { RefuseCode } from '../mux/wire/constants.js'

/** Hop-by-hop fields (RFC 9110 7.6.1, plus the legacy ones): consumed, never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])
/**
 * Fields every forwarder sets itself from the parsed message (framing and
 * authority), so a `Connection: content-length` trick cannot change them.
 */
const SET_BY_FORWARDER = new Set(['content-length', 'host'])

/** Methods RFC 9110 9.2.2 calls idempotent (retried once on a stale pooled connection). */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Safe methods (RFC 9110 9.2.1): pipelined safe requests may run in parallel. */
export const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/**
 * The end-to-end fields of a message, in order, duplicates and case kept,
 * as a flat raw list (`[name, value, name, value, ...]`, as
 * `message.rawHeaders`). Drops the hop-by-hop fields, every field named in
 * a `Connection` field, and `Content-Length`/`Host` (the forwarder writes
 * those from the parsed message). With `upgrade`, `Upgrade` and
 * `Connection: upgrade` are kept (the message asks for the upgrade).
 */
export function endToEnd(raw: readonly string[], opts: { upgrade?: boolean } = {}): string[] {
  const named = new Set<string>()
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) {
        const token = t.trim().toLowerCase()
        if (token) named.add(token)
      }
    }
  }
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (opts.upgrade && name === 'upgrade') {
      out.push(raw[i]!, raw[i + 1]!)
      continue
    }
    if (HOP_BY_HOP.has(name) || named.has(name) || SET_BY_FORWARDER.has(name)) continue
    out.push(raw[i]!, raw[i + 1]!)
  }
  if (opts.upgrade) out.push('Connection', 'upgrade')
  return out
}

/**
 * Whether an `Upgrade` field asks for WebSocket (exactly the one protocol
 * `websocket`, RFC 6455 4.1), the only upgrade synmux's proxy performs.
 */
export function isWebSocketUpgrade(upgrade: string | string[] | undefined): boolean {
  const v = Array.isArray(upgrade) ? upgrade.join(',') : upgrade
  return v !== undefined && v.trim().toLowerCase() === 'websocket'
}

/**
 * Serves a request that asked for an upgrade other than WebSocket (`h2c`,
 * anything else) as the plain request it also is, as squid does: its head
 * is written again without `Upgrade` (and without the `upgrade` token of
 * `Connection`), put back in front of the bytes that followed it (`head`:
 * its body, later pipelined requests), and `server` parses the connection
 * afresh. So the body is forwarded intact, the connection stays alive, and
 * the upgrade never happens (no raw tunnel: h2c smuggling). Call it only
 * once every earlier response on the connection has been written.
 */
export function reparseWithoutUpgrade(server: http.Server, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (name === 'upgrade') continue
    let value = raw[i + 1]!
    if (name === 'connection') {
      value = value.split(',').map((t) => t.trim()).filter((t) => t !== '' && t.toLowerCase() !== 'upgrade').join(', ')
      if (value === '') continue
    }
    text += `${raw[i]}: ${value}\r\n`
  }
  socket.unshift(Buffer.concat([Buffer.from(`${text}\r\n`, 'latin1'), head]))
  server.emit('connection', socket)
}

/** Default limit on the header fields of a request head (`maxHeaderFields`). */
export const MAX_HEADER_FIELDS = 1000

/**
 * Why a request head must not be forwarded, or `null`: more than
 * `maxFields` header fields (431; the server's `maxHeadersCount` must be
 * above `maxFields` so the excess is seen), or more than one `Host` field
 * (400, RFC 9112 3.2). The RFC 9209 error is `http_request_error` with
 * the reason as `details`.
 */
export function headProblem(req: http.IncomingMessage, maxFields: number): { status: 400 | 431; text: string; proxyStatus: string } | null {
  const raw = req.rawHeaders
  let text: string | null = null
  if (raw.length / 2 > maxFields) text = `more than ${maxFields} header fields`
  else {
    let hosts = 0
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'host') hosts++
    if (hosts > 1) text = `${hosts} Host fields (RFC 9112 3.2 allows one)`
  }
  if (text === null) return null
  return { status: text.startsWith('more') ? 431 : 400, text, proxyStatus: `http_request_error; details="${text}"` }
}

/** Trailer fields that may travel on (hop-by-hop and framing fields dropped). */
export function endToEndTrailers(raw: readonly string[]): [string, string][] {
  const out: [string, string][] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (HOP_BY_HOP.has(name) || SET_BY_FORWARDER.has(name)) continue
    out.push([raw[i]!, raw[i + 1]!])
  }
  return out
}

/**
 * How a request's body is framed, from the parsed message: `length` (a
 * Content-Length), `chunked`, `none`; `unsupported` for a transfer coding
 * other than chunked (answered 501, RFC 9112 6.1).
 */
export function requestFraming(req: http.IncomingMessage): { kind: 'length'; length: string } | { kind: 'chunked' | 'none' | 'unsupported' } {
  const te = req.headers['transfer-encoding']
  if (te !== undefined) return te.trim().toLowerCase() === 'chunked' ? { kind: 'chunked' } : { kind: 'unsupported' }
  const cl = req.headers['content-length']
  if (cl !== undefined) return { kind: 'length', length: cl }
  return { kind: 'none' }
}

/** Framing fields for a forwarded request (appended to the raw list). */
export function requestFramingHeaders(framing: ReturnType<typeof requestFraming>): string[] {
  if (framing.kind === 'length') return ['Content-Length', framing.length]
  if (framing.kind === 'chunked') return ['Transfer-Encoding', 'chunked']
  return []
}

/**
 * Framing fields for a forwarded response. A Content-Length travels on
 * (for HEAD and 304 it describes the representation, not this message);
 * without one the next hop's framing is chosen by `node:http` (chunked for
 * HTTP/1.1, close-delimited for 1.0). `null`: a transfer coding other than
 * chunked (not supported: 502).
 */
export function responseFramingHeaders(res: http.IncomingMessage): string[] | null {
  const te = res.headers['transfer-encoding']
  if (te !== undefined) return te.trim().toLowerCase() === 'chunked' ? [] : null
  const status = res.statusCode ?? 0
  const cl = res.headers['content-length']
  if (cl === undefined || status === 204 || (status >= 100 && status < 200)) return []
  return ['Content-Length', cl]
}

/** The parts of an absolute-form `http://` request target. */
export interface AbsoluteUrl {
  /** Host as written (IPv6 without brackets), lower-cased. */
  host: string
  port: number
  /** `host[:port]` as written in the URL (IPv6 in brackets): the Host field to send. */
  authority: string
  /** Origin-form: path and query, never empty (`/` at least), no fragment. */
  path: string
}

const REG_NAME = /^[a-z0-9._~!$&'()*+,;=%-]+$/i

/**
 * Parses an authority `host[:port]` (RFC 3986 3.2, no userinfo). IPv6
 * literals in brackets; a missing port is `defaultPort` (if given).
 * Returns `null` if malformed.
 */
export function parseAuthority(authority: string, defaultPort?: number): { host: string; port: number } | null {
  let host: string
  let rest: string
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']')
    if (end < 0) return null
    host = authority.slice(1, end)
    if (!net.isIPv6(host)) return null
    rest = authority.slice(end + 1)
  } else {
    const colon = authority.indexOf(':')
    host = colon < 0 ? authority : authority.slice(0, colon)
    rest = colon < 0 ? '' : authority.slice(colon)
    if (!REG_NAME.test(host) || host.length > 255) return null
  }
  let port: number
  if (rest === '' || rest === ':') {
    if (defaultPort === undefined) return null
    port = defaultPort
  } else {
    if (!/^:\d{1,5}$/.test(rest)) return null
    port = Number(rest.slice(1))
  }
  if (port < 1 || port > 65535) return null
  return { host: host.toLowerCase(), port }
}

/**
 * Parses an absolute-form request target (`http://host[:port]/path?query`).
 * The path is kept byte for byte (no dot-segment or percent-encoding
 * normalisation: what the origin sees is what the client sent). Returns
 * `null` for anything else (origin-form, other schemes, userinfo, bad host).
 */
export function parseAbsoluteUrl(url: string): AbsoluteUrl | null {
  if (!/^http:\/\//i.test(url)) return null
  const rest = url.slice(7)
  const end = rest.search(/[/?#]/)
  const authority = end < 0 ? rest : rest.slice(0, end)
  if (authority.includes('@')) return null
  const hp = parseAuthority(authority, 80)
  if (!hp) return null
  let path = end < 0 ? '' : rest.slice(end)
  const hash = path.indexOf('#')
  if (hash >= 0) path = path.slice(0, hash)
  if (path === '' || path.startsWith('?')) path = `/${path}`
  return { host: hp.host, port: hp.port, authority, path }
}

/** The HTTP/1.1 head of a status line and raw fields (for 1xx and raw sockets). */
export function serializeHead(status: number, message: string, raw: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${message}\r\n`
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`
  return `${head}\r\n`
}

/**
 * Sends an interim (1xx) response ahead of the final one. `node:http` has
 * public writers only for 100, 102 and 103; this uses the same internal
 * writer they use, so it queues correctly behind earlier pipelined
 * responses.
 */
export function writeInformational(res: http.ServerResponse, status: number, message: string, raw: readonly string[]): void {
  if (res.headersSent || res.req.httpVersion === '1.0') return // never to a 1.0 client (RFC 9110 15.2)
  const writeRaw = (res as unknown as { _writeRaw?: (data: string, encoding: string) => void })._writeRaw
  if (typeof writeRaw === 'function') writeRaw.call(res, serializeHead(status, message, raw), 'latin1')
}

/**
 * Passes an upstream request's 1xx answers on to `res`: 100 only when the
 * client sent `Expect: 100-continue`, 101 never (upgrades go elsewhere),
 * the others as they are (end-to-end headers only).
 */
export function forwardInformational(up: http.ClientRequest, res: http.ServerResponse, expectContinue: boolean): void {
  up.on('information', (info: http.InformationEvent) => {
    if (info.statusCode === 100) {
      if (expectContinue && !res.headersSent) res.writeContinue()
    } else if (info.statusCode !== 101) writeInformational(res, info.statusCode, info.statusMessage, endToEnd(info.rawHeaders))
  })
}

/** What a refused stream (by its REFUSED code) means to an HTTP client: status and RFC 9209 Proxy-Status error. */
export function refusalStatus(code: number | undefined): { status: number; error: string } {
  switch (code) {
    case RefuseCode.NOT_ALLOWED:
      return { status: 403, error: 'destination_ip_prohibited' }
    case RefuseCode.UNREACHABLE:
      return { status: 502, error: 'destination_unavailable' }
    case RefuseCode.CONNECTION_REFUSED:
      return { status: 502, error: 'connection_refused' }
    case RefuseCode.TIMEOUT:
      return { status: 504, error: 'connection_timeout' }
    case RefuseCode.BAD_TARGET:
    case RefuseCode.TARGET_TOO_LONG:
      return { status: 400, error: 'http_request_error' }
    case RefuseCode.TOO_MANY_STREAMS:
    case RefuseCode.TOO_MANY_PENDING:
    case RefuseCode.BUSY:
    case RefuseCode.GOING_AWAY:
      return { status: 503, error: 'proxy_internal_response' }
    default:
      return { status: 502, error: 'proxy_internal_error' }
  }
}

/**
 * A short plain-text answer generated by the proxy itself (errors, 407),
 * with `Proxy-Status` (RFC 9209) when `error` is given.
 */
export function proxyAnswer(res: http.ServerResponse, status: number, text: string, opts: { close?: boolean; error?: string; extra?: string[] } = {}): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const body = Buffer.from(`${text}\n`)
  const raw = ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(body.length)]
  if (opts.error) raw.push('Proxy-Status', `synmux; error=${opts.error}`)
  if (opts.extra) raw.push(...opts.extra)
  if (opts.close) raw.push('Connection', 'close')
  res.writeHead(status, raw)
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

/** A raw HTTP/1.1 answer on a socket the HTTP server let go of (CONNECT, upgrades); closes it. */
export function rawAnswer(socket: NodeJS.ReadWriteStream & { destroyed?: boolean }, status: number, message: string, text: string, extra: string[] = [], error?: string): void {
  if (socket.destroyed) return
  socket.resume() // whatever else the client sends is discarded (and its FIN seen, so the socket can close)
  const body = Buffer.from(`${text}\n`)
  const raw = ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(body.length), ...(error ? ['Proxy-Status', `synmux; error=${error}`] : []), ...extra, 'Connection', 'close']
  socket.end(Buffer.concat([Buffer.from(serializeHead(status, message, raw), 'latin1'), body]))
}

/** Appends our Via entry (RFC 9110 7.6.3) for a message received with HTTP version `version`. */
export function via(version: string, pseudonym: string): string[] {
  return ['Via', `${version === '1.0' ? '1.0' : '1.1'} ${pseudonym}`]
}
