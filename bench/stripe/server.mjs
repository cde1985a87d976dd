// Server side of bench/stripe: a synmux server (SessionRegistry: resumable,
// accepts lanes) and a plain TCP sink. Every stream / connection is drained
// and its byte count answered when it ends. Prints "ready <mux> <tcp>".
import net from 'node:net'
import { SessionRegistry } from 'synmux'

const host = process.argv[2]
const registry = new SessionRegistry({ keepAliveInterval: 0, resumption: { replayBuffer: 16 * 1024 * 1024 } })
registry.on('session', (s) => {
  s.on('error', () => {})
  s.on('stream', (st) => {
    let n = 0
    st.on('data', (d) => (n += d.length))
    st.on('end', () => st.end(String(n)))
    st.on('error', () => {})
  })
})
const mux = net.createServer({ noDelay: true }, (sock) => registry.accept(sock))
const tcp = net.createServer((sock) => {
  let n = 0
  sock.on('data', (d) => (n += d.length))
  sock.on('end', () => sock.end(String(n)))
  sock.on('error', () => {})
})
await Promise.all([mux, tcp].map((s) => new Promise((r) => s.listen(0, host, r))))
console.log(`ready ${mux.address().port} ${tcp.address().port}`)
process.on('SIGTERM', () => process.exit(0))
