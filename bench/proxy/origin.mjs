// bench/proxy origin: a page and its N sub-resources (sizes 1 KiB to 100 KiB,
// fixed by index), keep-alive, no caching. Prints "ready <port>".
// Usage: node origin.mjs HOST PORT N
import http from 'node:http'
const [host = '0.0.0.0', port = '8080', n = '30'] = process.argv.slice(2)
const N = Number(n)
const size = (i) => 1024 + ((i * 7919 * 13) % (99 * 1024))
const bodies = new Map()
const links = []
for (let i = 0; i < N; i++) {
  const ext = ['js', 'css', 'png'][i % 3]
  const path = `/r/${i}.${ext}`
  // scripts and stylesheets are one big comment; images are bytes (they need not decode)
  const b = Buffer.alloc(size(i), 97 + (i % 26))
  if (ext !== 'png') b.write('/*', 0), b.write('*/', b.length - 2)
  bodies.set(path, b)
  links.push(path)
}
// the page names its sub-resources (the client reads them from the page, like a browser)
const page = Buffer.from(`<!doctype html><html><head>${links.map((l) => (l.endsWith('.css') ? `<link rel="stylesheet" href="${l}">` : l.endsWith('.js') ? `<script src="${l}"></script>` : '')).join('')}</head><body>${links.filter((l) => l.endsWith('.png')).map((l) => `<img src="${l}">`).join('')}${'<p>filler</p>'.repeat(600)}</body></html>`)
bodies.set('/', page)
const server = http.createServer((req, res) => {
  const b = bodies.get(req.url.replace(/^http:\/\/[^/]+/, '').replace(/\?.*$/, ''))
  if (!b) {
    res.writeHead(404, { 'content-length': 0 })
    return res.end()
  }
  const path = req.url.replace(/^http:\/\/[^/]+/, '').replace(/\?.*$/, '')
  const type = path === '/' ? 'text/html' : path.endsWith('.js') ? 'text/javascript' : path.endsWith('.css') ? 'text/css' : 'image/png'
  res.writeHead(200, { 'content-length': b.length, 'cache-control': 'no-store', 'content-type': type })
  res.end(b)
})
server.keepAliveTimeout = 120_000
server.listen(Number(port), host, () => console.log(`ready ${server.address().port}`))
