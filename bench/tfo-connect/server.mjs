// Server side of bench/tfo-connect: a TFO listener that answers each request
// at once with a small HTTP response. Prints "ready <port>".
import { createServer, fastOpenInfo } from 'synmux'

const host = process.argv[2] ?? '0.0.0.0'
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
let synData = 0
let total = 0
const server = createServer({ noDelay: true }, (socket) => {
  total++
  if (fastOpenInfo(socket).synData) synData++
  socket.once('data', () => socket.end(RESPONSE))
  socket.on('error', () => {})
})
server.listen(0, host, () => console.log(`ready ${server.address().port}`))
process.on('SIGTERM', () => {
  console.error(JSON.stringify({ total, synData }))
  process.exit(0)
})
