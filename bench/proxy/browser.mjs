// bench/proxy "browser": loads a page and then every sub-resource the page
// names, like a browser: up to 6 parallel keep-alive connections per
// origin (through a proxy: 6 to the proxy), each sub-resource requested as
// soon as a connection is free. Times page loads per path, interleaved.
// Usage: node browser.mjs PATHS_JSON URL ROUNDS. Prints one JSON line:
// { cold: {path: [ms...]}, warm: {path: [ms...]} }
// cold: every load on new connections (a first visit); warm: the second
// load on the connections the first left open.
import http from 'node:http'
const [pathsJson, url, roundsArg] = process.argv.slice(2)
const paths = JSON.parse(pathsJson)
const rounds = Number(roundsArg)
const now = () => Number(process.hrtime.bigint()) / 1e6

// Like a browser, a request on a reused keep-alive connection that the far
// side had closed (reset, or closed before any answer) is sent again (on the
// next pooled connection, which may be dead too, or a new one). Counted per path: a proxy that closes connections without
// saying 'Connection: close' (tinyproxy) pays for it here.
const retried = {}
function get(agent, via, target, tries = 7) {
  return new Promise((resolve, reject) => {
    const u = new URL(target)
    const opts = via ? { host: via.host, port: via.port, path: target, headers: { host: u.host } } : { host: u.hostname, port: u.port, path: u.pathname }
    const req = http.request({ ...opts, agent }, (res) => {
      const c = []
      res.on('data', (d) => c.push(d))
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(c)) : reject(new Error(`${target}: ${res.statusCode}`))))
      res.on('error', reject)
    })
    // Node hands a freed socket straight to a queued request without marking
    // it reusedSocket: count the requests each socket carried ourselves
    let reused = false
    req.on('socket', (sock) => {
      reused = (sock.__served ?? 0) > 0
      sock.__served = (sock.__served ?? 0) + 1
    })
    req.on('error', (e) => {
      const name = via ? `${via.host}:${via.port}` : 'direct'
      if (tries > 0 && reused && e.code === 'ECONNRESET') {
        retried[name] = (retried[name] ?? 0) + 1
        return resolve(get(agent, via, target, tries - 1))
      }
      reject(new Error(`${name} ${target}: ${e.message}`))
    })
    req.end()
  })
}

async function load(agent, via) {
  const t0 = now()
  const page = (await get(agent, via, url)).toString()
  const subs = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => new URL(m[1], url).href)
  const sizes = await Promise.all(subs.map(async (s) => (await get(agent, via, s)).length))
  return { ms: now() - t0, n: subs.length, bytes: sizes.reduce((a, b) => a + b, page.length) }
}

const cold = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
const warm = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
let info = {}
const mk = () => new http.Agent({ keepAlive: true, maxSockets: 6 })
for (const k of Object.keys(paths)) {
  // warm-up: ARP, TFO cookies, the session
  const a = mk()
  await load(a, paths[k])
  a.destroy()
}
for (let r = 0; r < rounds; r++) {
  for (const k of Object.keys(paths)) {
    const agent = mk()
    const a = await load(agent, paths[k])
    const b = await load(agent, paths[k])
    agent.destroy()
    cold[k].push(a.ms)
    warm[k].push(b.ms)
    info = { subResources: a.n, pageBytes: a.bytes }
  }
}
const retries = Object.fromEntries(Object.entries(paths).map(([k, v]) => [k, retried[v ? `${v.host}:${v.port}` : 'direct'] ?? 0]))
console.log(JSON.stringify({ cold, warm, retries, ...info }))
