// bench/goals target, beside the tunnel's server: two listeners on HOST.
//   exchange  reads REQUEST bytes, answers RESPONSE bytes and closes (one
//             new connection = open + request + response + close)
//   hold      answers the first byte it reads with one byte, then keeps the
//             connection open and idle (for memory per idle connection)
// Prints "ready <exchangePort> <holdPort>".
// Usage: node target.mjs HOST [REQUEST=1024] [RESPONSE=1024]
import net from 'node:net'

const [host = '127.0.0.1', reqArg = '1024', respArg = '1024'] = process.argv.slice(2)
const REQUEST = Number(reqArg)
const RESPONSE = Buffer.alloc(Number(respArg), 0x62)
const exchange = net.createServer({ noDelay: true }, (s) => {
  let got = 0
  s.on('data', (d) => {
    got += d.length
    if (got >= REQUEST && got - d.length < REQUEST) s.end(RESPONSE)
  })
  s.on('error', () => {})
})
const hold = net.createServer({ noDelay: true }, (s) => {
  s.once('data', () => s.write('h'))
  s.on('error', () => {})
})
for (const srv of [exchange, hold]) srv.maxConnections = 1_000_000
await Promise.all([exchange, hold].map((srv) => new Promise((r) => srv.listen({ port: 0, host, backlog: 4096 }, r))))
console.log(`ready ${exchange.address().port} ${hold.address().port}`)
process.on('SIGTERM', () => process.exit(0))
