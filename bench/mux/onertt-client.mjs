// Client side of bench/mux-onertt: time to the first response byte of a new
// connection, three ways; prints one JSON line.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { Session } from 'synmux'

const [host, tcpPort, muxPort, roundsArg] = process.argv.slice(2)
const rounds = Number(roundsArg)
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\n\r\n')

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return { median: +s[Math.floor(s.length / 2)].toFixed(3), min: +s[0].toFixed(3), max: +s.at(-1).toFixed(3), n: s.length }
}

/** net.connect, write the request on connect, wait for the first response byte. */
function tcpOnce() {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const sock = net.connect({ host, port: Number(tcpPort), noDelay: true })
    sock.once('connect', () => sock.write(REQUEST))
    sock.once('data', () => {
      resolve(performance.now() - t0)
      sock.destroy()
    })
    sock.once('error', reject)
  })
}

/** A new stream on an established session: OPEN(request) → OPENED(response). */
function streamOnce(session) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const st = session.open({ target: { host: 'bench', port: 80 }, data: REQUEST })
    st.once('data', () => {
      resolve(performance.now() - t0)
      st.destroy()
    })
    st.once('error', reject)
  })
}

/**
 * A brand-new session over an already connected socket: HELLO + OPEN in the
 * first flight (the TCP handshake is measured separately: with TFO it would
 * ride in the SYN).
 */
async function freshSessionOnce() {
  const sock = net.connect({ host, port: Number(muxPort), noDelay: true })
  await new Promise((r, j) => {
    sock.once('connect', r)
    sock.once('error', j)
  })
  const t0 = performance.now()
  const session = new Session(sock, { role: 'client', keepAliveInterval: 0 })
  session.on('error', () => {})
  const ms = await new Promise((resolve, reject) => {
    const st = session.open({ target: { host: 'bench', port: 80 }, data: REQUEST })
    st.once('data', () => resolve(performance.now() - t0))
    st.once('error', reject)
  })
  session.destroy()
  return ms
}

const tcp = []
const fresh = []
const stream = []
const sock = net.connect({ host, port: Number(muxPort), noDelay: true })
await new Promise((r) => sock.once('connect', r))
const session = new Session(sock, { role: 'client', keepAliveInterval: 0 })
await new Promise((r) => session.once('handshake', r))
for (let i = 0; i < rounds; i++) {
  tcp.push(await tcpOnce())
  fresh.push(await freshSessionOnce())
  stream.push(await streamOnce(session))
}
console.log(JSON.stringify({ ttfbMs: { 'net.connect+write': stats(tcp), 'synmux new stream': stats(stream), 'synmux new session (after TCP connect)': stats(fresh) }, sessionRttMs: +session.rtt.toFixed(3) }))
session.destroy()
process.exit(0)
