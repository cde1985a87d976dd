// Client side of bench/stripe: sends for `seconds` and reports the goodput
// the server confirmed. Modes:
//   tcp <ports>       one plain TCP connection per local port (the baseline: what the caps let through)
//   mux <ports>       one synmux session striped over one lane per local port
// Prints one JSON line: { mode, lanes, bytes, seconds, mbps, lanesInfo }.
import net from 'node:net'
import { Session } from 'synmux'

const [host, muxPort, tcpPort, mode, portsArg, secondsArg] = process.argv.slice(2)
const ports = portsArg.split(',').map(Number)
const seconds = Number(secondsArg)
const CHUNK = Buffer.alloc(64 * 1024, 0x5a)

function pump(stream, until) {
  return new Promise((resolve, reject) => {
    const go = () => {
      while (performance.now() < until) {
        if (!stream.write(CHUNK)) return void stream.once('drain', go)
      }
      stream.end()
    }
    let reply = ''
    stream.on('data', (d) => (reply += d))
    stream.on('end', () => resolve(Number(reply)))
    stream.on('error', reject)
    go()
  })
}

let from = performance.now()
let bytes = 0
let lanesInfo
if (mode === 'tcp') {
  const counts = await Promise.all(ports.map((localPort) => pump(net.connect({ host, port: Number(tcpPort), localPort, noDelay: true }), from + seconds * 1000)))
  bytes = counts.reduce((a, b) => a + b, 0)
} else {
  let i = 0
  // Each lane from its own local port, so the HTB classifier can cap it.
  const connect = () => net.connect({ host, port: Number(muxPort), localPort: ports[i++ % ports.length], noDelay: true })
  const session = new Session(connect(), { role: 'client', lanes: ports.length, keepAliveInterval: 0, resumption: { connect, replayBuffer: 16 * 1024 * 1024 } })
  session.on('error', () => {})
  await new Promise((r) => session.once('handshake', r))
  const end = performance.now() + 5000
  while (session.stats().lanes.length < ports.length && performance.now() < end) await new Promise((r) => setTimeout(r, 10))
  from = performance.now()
  const counts = await Promise.all([0, 1, 2, 3].map(() => pump(session.open({}), from + seconds * 1000)))
  bytes = counts.reduce((a, b) => a + b, 0)
  lanesInfo = session.stats().lanes.map((l) => ({ index: l.index, rttMs: l.rtt, rateMBps: +(l.rate / 1000).toFixed(3), bytesSent: l.bytesSent, resent: l.resent }))
  session.destroy()
}
const elapsed = (performance.now() - from) / 1000
console.log(JSON.stringify({ mode, lanes: ports.length, bytes, seconds: +elapsed.toFixed(3), mbps: +((bytes * 8) / elapsed / 1e6).toFixed(2), lanesInfo }))
process.exit(0)
