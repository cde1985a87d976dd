// bench/tunnel target: answers each request at once. Prints "ready <port>".
import { createServer } from 'synmux'
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
const server = createServer({ noDelay: true }, (s) => {
  s.once('data', () => s.end(RESPONSE))
  s.on('error', () => {})
})
server.listen(0, process.argv[2] ?? '0.0.0.0', () => console.log(`ready ${server.address().port}`))
