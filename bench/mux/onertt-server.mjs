// Server side of bench/mux-onertt: a plain TCP server that answers the first
// bytes of each connection, and a synmux server that does the same per
// stream (implicit accept: the answer rides in OPENED). Prints "ready <tcp> <mux>".
import net from 'node:net'
import { Session } from 'synmux'

const host = process.argv[2]
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
const plain = net.createServer({ noDelay: true }, (sock) => {
  sock.on('error', () => {})
  sock.once('data', () => sock.end(RESPONSE))
})
const mux = net.createServer({ noDelay: true }, (sock) => {
  sock.on('error', () => {})
  const session = new Session(sock, { role: 'server', keepAliveInterval: 0 })
  session.on('error', () => {})
  session.on('stream', (s) => {
    s.on('error', () => {})
    s.once('data', () => s.end(RESPONSE))
  })
})
await Promise.all([plain, mux].map((s) => new Promise((r) => s.listen(0, host, r))))
console.log(`ready ${plain.address().port} ${mux.address().port}`)
process.on('SIGTERM', () => process.exit(0))
