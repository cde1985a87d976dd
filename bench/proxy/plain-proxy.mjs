// bench/proxy plain proxy: a minimal keep-alive HTTP forward proxy in Node
// (absolute-form GET only, keep-alive to clients and to the origin, no
// session, no mux): the baseline "a good plain proxy next to the origin".
// Usage: node plain-proxy.mjs HOST PORT. Prints "ready <port>".
import http from 'node:http'
const [host = '0.0.0.0', port = '8889'] = process.argv.slice(2)
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
const server = http.createServer((req, res) => {
  const u = new URL(req.url)
  const up = http.request({ host: u.hostname, port: u.port || 80, path: u.pathname + u.search, method: req.method, headers: { host: u.host }, agent }, (r) => {
    const headers = { ...r.headers }
    delete headers.connection
    delete headers['keep-alive']
    res.writeHead(r.statusCode, headers)
    r.pipe(res)
  })
  up.on('error', () => res.destroy())
  req.pipe(up)
})
server.keepAliveTimeout = 120_000
server.listen(Number(port), host, () => console.log(`ready ${server.address().port}`))
