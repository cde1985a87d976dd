// Child process of bench/mux-open-rate.mjs: a plain TCP echo server and a
// synmux echo server (one echo per stream), both on 127.0.0.1.
import net from 'node:net'
import { Session } from 'synmux'

const plain = net.createServer((sock) => {
  sock.setNoDelay(true)
  sock.on('error', () => {})
  sock.pipe(sock)
})
const mux = net.createServer((sock) => {
  const session = new Session(sock, { role: 'server', maxStreams: 100_000, maxPendingOpens: 100_000 })
  session.on('error', () => {})
  session.on('stream', (s) => {
    s.on('error', () => {})
    s.pipe(s)
  })
})
await Promise.all([plain, mux].map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r))))
process.send({ plain: plain.address().port, mux: mux.address().port })
process.on('message', (m) => m === 'exit' && process.exit(0))
