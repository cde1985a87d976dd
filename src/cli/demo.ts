/**
 * `synmux demo`: a TFO server and client on loopback, showing for each
 * connection whether its data rode in the SYN, with timings, next to plain
 * `net.connect` + write.
 * @internal
 * @packageDocumentation
 */
import net from 'node:net'
import { TunnelClient } from '../tunnel/client.js'
import { TunnelServer } from '../tunnel/server.js'
import { AuthorizedKeys, generateKeyPair } from '../secure/keys.js'
import { connectWithData, createServer, fastOpenInfo, fastOpenSupport, type FastOpenReport } from '../tfo/index.js'

interface Row {
  n: number
  method: string
  client: FastOpenReport | null
  serverSawSynData: boolean | null
  ttfbMs: number
}

const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n')

/** Time from the connect call to the first response byte. */
async function viaSynmux(port: number): Promise<{ ms: number; report: FastOpenReport }> {
  const t0 = process.hrtime.bigint()
  const socket = await connectWithData({ host: '127.0.0.1', port, noDelay: true }, REQUEST)
  await new Promise((resolve) => socket.once('data', resolve))
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const report = socket.fastOpen
  socket.destroy()
  return { ms, report }
}

async function viaNet(port: number): Promise<number> {
  const t0 = process.hrtime.bigint()
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true })
  socket.write(REQUEST)
  await new Promise((resolve, reject) => {
    socket.once('data', resolve)
    socket.once('error', reject)
  })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  socket.destroy()
  return ms
}

const yesNo = (v: boolean | null) => (v === null ? 'unknown' : v ? 'yes' : 'no')

/** Runs the demo, printing to `out`; resolves with the rows (for tests). */
export async function runDemo(out: (line: string) => void = console.log, connections = 5): Promise<Row[]> {
  const support = fastOpenSupport()
  out('synmux demo: TCP Fast Open on loopback (127.0.0.1)')
  out(`  platform ${support.platform}, native addon ${support.addon ? 'loaded' : 'NOT loaded'}, client TFO ${support.client ? 'on' : 'off'}, server TFO ${support.server ? 'on' : 'off'}`)
  out(`  ${support.detail}`)
  out('')

  const seen: (boolean | null)[] = []
  const server = createServer({ noDelay: true }, (socket) => {
    seen.push(fastOpenInfo(socket).synData)
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'))
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port

  const rows: Row[] = []
  for (let n = 1; n <= connections; n++) {
    const { ms, report } = await viaSynmux(port)
    rows.push({ n, method: 'connectWithData', client: report, serverSawSynData: seen.at(-1) ?? null, ttfbMs: ms })
  }
  for (let n = 1; n <= 2; n++) {
    const ms = await viaNet(port)
    rows.push({ n, method: 'net.connect+write', client: null, serverSawSynData: seen.at(-1) ?? null, ttfbMs: ms })
  }
  await new Promise((resolve) => server.close(resolve))

  out('  #  method              data in SYN            server saw SYN data   first response byte')
  for (const r of rows) {
    const inSyn = r.client ? (r.client.accepted ? 'yes' : `no (${r.client.reason ?? 'unknown'})`) : 'no (plain net)'
    out(`  ${String(r.n).padEnd(2)} ${r.method.padEnd(19)} ${inSyn.padEnd(22)} ${yesNo(r.serverSawSynData).padEnd(21)} ${r.ttfbMs.toFixed(3)} ms`)
  }
  out('')
  const tfo = rows.filter((r) => r.client?.accepted).length
  if (tfo > 0) {
    out(`  ${tfo} of ${connections} connections carried their request in the SYN: each saves one round trip`)
    out('  (on loopback a round trip costs microseconds; `npm run bench` measures it over a 50 ms link).')
  } else {
    out('  No connection carried data in the SYN. Every request was still delivered, one round trip later.')
    if (!support.addon) out('  The native addon did not load: reinstall with `npm install --build-from-source`.')
    else if (support.platform === 'linux') out('  Enable TFO for clients and servers: sudo sysctl -w net.ipv4.tcp_fastopen=3')
    else if (support.platform === 'darwin') out('  Enable TFO: sudo sysctl -w net.inet.tcp.fastopen=3')
    else if (support.platform === 'win32') out('  Enable TFO: netsh int tcp set global fastopen=enabled fastopenfallback=disabled')
  }
  if (support.server && rows.some((r) => r.client?.reason === 'no-cookie')) {
    out('  The first connection to a server has no TFO cookie yet: it asks for one, and later ones use it.')
  }
  out('')
  await tunnelDemo(out, connections)
  return rows
}

/** Time to the first response byte of a new connection made with `connect`. */
async function ttfb(connect: () => net.Socket): Promise<number> {
  const t0 = process.hrtime.bigint()
  const socket = connect()
  socket.write(REQUEST)
  await new Promise((resolve, reject) => {
    socket.once('data', resolve)
    socket.once('error', reject)
  })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  socket.destroy()
  return ms
}

/**
 * The tunnel on loopback: a target, `synmux server`, `synmux client` with a
 * port forward, and an application connecting directly and through it.
 */
async function tunnelDemo(out: (line: string) => void, connections: number): Promise<void> {
  out('synmux demo: the tunnel on loopback (target <- synmux server <= one session => synmux client <- application)')
  const target = net.createServer({ noDelay: true }, (s) => {
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'))
    s.on('error', () => {})
  })
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r))
  const targetPort = (target.address() as net.AddressInfo).port
  // The secure channel, with keys made for the demo (synmux keygen writes them to files).
  const serverKeys = generateKeyPair()
  const clientKeys = generateKeyPair()
  const server = new TunnelServer({ secure: { staticKey: serverKeys.privateKey, authorizedKeys: new AuthorizedKeys([[clientKeys.publicKey, 'demo']]) }, allow: [`127.0.0.1:${targetPort}`] })
  await server.listen(0, '127.0.0.1')
  const client = new TunnelClient({ server: { host: '127.0.0.1', port: server.address().port }, secure: { staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey } })
  const fwd = await client.forward({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: targetPort })
  await new Promise((r) => client.once('up', r))
  const fwdPort = fwd.address().port
  out('  #  path                          first response byte')
  for (let n = 1; n <= connections; n++) {
    const direct = await ttfb(() => net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true }))
    const tunnel = await ttfb(() => net.connect({ host: '127.0.0.1', port: fwdPort, noDelay: true }))
    out(`  ${String(n).padEnd(2)} direct                        ${direct.toFixed(3)} ms`)
    out(`  ${String(n).padEnd(2)} through the tunnel            ${tunnel.toFixed(3)} ms`)
  }
  out(`  one encrypted session (${client.stats().reconnects === 0 ? 'never reconnected' : 'reconnected'}) carried all ${connections * 1} tunnelled connections; each new connection's`)
  out('  first bytes rode in its OPEN frame, so over a slow link it costs one round trip, not two (bench/tunnel.mjs).')
  await client.close()
  await server.close()
  await new Promise((r) => target.close(r))
}
