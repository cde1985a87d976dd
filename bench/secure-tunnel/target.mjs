// bench/secure-tunnel target (server namespace): a connection's first bytes
// "BULK <n>\n" get n bytes back (then the end); "ECHO\n" turns it into an
// echo; anything else gets a short HTTP answer at once. Prints "ready <port>".
import { createServer } from 'synmux'

const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
const BLOCK = Buffer.alloc(1 << 20, 0x5a)
const server = createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
  s.on('error', () => {})
  s.once('data', (d) => {
    const text = d.toString('latin1')
    const bulk = /^BULK (\d+)\n/.exec(text)
    if (bulk) {
      let left = Number(bulk[1])
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, BLOCK.length)
          left -= n
          if (!s.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) return void s.once('drain', pump)
        }
        s.end()
      }
      return pump()
    }
    if (text.startsWith('ECHO\n')) {
      s.write(d)
      s.pipe(s)
      return
    }
    s.end(RESPONSE)
  })
})
server.listen(Number(process.argv[3] ?? 0), process.argv[2] ?? '127.0.0.1', () => console.log(`ready ${server.address().port}`))
