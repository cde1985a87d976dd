// bench/tunnel baseline: a plain TCP relay, one onward connection per
// accepted connection (what a port forward without a session does).
import net from 'node:net'
const [listenPort, host, port] = process.argv.slice(2)
const server = net.createServer({ noDelay: true }, (local) => {
  const onward = net.connect({ host, port: Number(port), noDelay: true })
  local.pipe(onward).pipe(local)
  local.on('error', () => onward.destroy())
  onward.on('error', () => local.destroy())
})
server.listen(Number(listenPort), '127.0.0.1', () => console.log(`ready ${server.address().port}`))
