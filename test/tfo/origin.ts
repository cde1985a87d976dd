/**
 * Origins for the HTTP client tests: real HTTP and HTTPS servers with TCP
 * Fast Open (synmux's enableFastOpen) on a fresh loopback address (no TFO
 * cookie cached for it yet), answering each request with what the server
 * saw of its connection; and a self-signed certificate made with openssl
 * for that address.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type tls from 'node:tls'
import { enableFastOpen, fastOpenInfo } from 'synmux'
import { close, freshLoopback, listen } from '../helpers'

/** What the origin answers: the connection's number (1, 2, ...), its SYN data, the TLS server name. */
export interface Seen {
  conn: number
  synData: boolean | null
  url: string
  servername?: string | false
  alpn?: string | false
}

/** A self-signed certificate for `localhost` and `ip` (openssl, as Debian ships it). */
export function selfSigned(ip: string): { key: Buffer; cert: Buffer } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-cert-'))
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=localhost', '-addext', `subjectAltName=DNS:localhost,IP:${ip}`,
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ], { stdio: 'pipe' })
    return { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export interface Origin {
  kind: 'http' | 'https'
  host: string
  port: number
  /** `http://host:port` or `https://host:port`. */
  url: string
  /** The certificate (https), to pass as `ca`. */
  cert?: Buffer
  /** Connections accepted so far. */
  readonly connections: number
  close(): Promise<void>
}

/** An HTTP or HTTPS origin with TFO on a fresh loopback address. */
export async function origin(kind: 'http' | 'https'): Promise<Origin> {
  const host = freshLoopback()
  const pem = kind === 'https' ? selfSigned(host) : undefined
  const byPort = new Map<number, { conn: number; synData: boolean | null }>()
  let connections = 0
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const s = req.socket as tls.TLSSocket
    const c = byPort.get(s.remotePort!)!
    const seen: Seen = { conn: c.conn, synData: c.synData, url: req.url! }
    if (kind === 'https') {
      seen.servername = s.servername
      seen.alpn = s.alpnProtocol
    }
    req.resume()
    req.on('end', () => res.end(JSON.stringify(seen)))
  }
  const server: net.Server =
    kind === 'https'
      ? enableFastOpen(https.createServer({ key: pem!.key, cert: pem!.cert, ALPNProtocols: ['http/1.1'] }, handler))
      : enableFastOpen(http.createServer({ keepAliveTimeout: 30_000 }, handler))
  // the raw TCP connection, as accepted: SYN data is known at once
  server.on('connection', (socket: net.Socket) => {
    connections++
    byPort.set(socket.remotePort!, { conn: connections, synData: fastOpenInfo(socket).synData })
  })
  const port = await listen(server, host)
  return {
    kind,
    host,
    port,
    url: `${kind}://${host}:${port}`,
    cert: pem?.cert,
    get connections() {
      return connections
    },
    close: () => {
      ;(server as http.Server).closeAllConnections()
      return close(server)
    },
  }
}
