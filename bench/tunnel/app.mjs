// bench/tunnel application: time from connect() to the first response byte
// through each path, interleaved rounds. A path is { host, port } (the
// request goes straight in) or { host, port, socks: { host, port } } (a
// SOCKS5 proxy such as ss-local: greeting and CONNECT on loopback first,
// then the request; the time still runs from connect()). Prints one JSON line.
import net from 'node:net'
import { summarize } from '../lib/stats.mjs'
const [pathsJson, roundsArg] = process.argv.slice(2)
const paths = JSON.parse(pathsJson)
const rounds = Number(roundsArg)
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n')
const now = () => Number(process.hrtime.bigint()) / 1e6

/** SOCKS5 CONNECT request to an IPv4 target. */
function socksConnect({ host, port }) {
  return Buffer.from([5, 1, 0, 1, ...host.split('.').map(Number), port >> 8, port & 0xff])
}

function once({ host, port, socks }) {
  return new Promise((resolve, reject) => {
    const t0 = now()
    const s = net.connect({ host, port, noDelay: true, autoSelectFamily: false })
    // bytes of SOCKS answers still expected before the response: 2 (method), then 10 (CONNECT reply)
    let stage = socks ? 0 : 2
    let pending = socks ? 2 : 0
    if (socks) s.write(Buffer.from([5, 1, 0]))
    else s.write(REQUEST)
    s.on('data', (d) => {
      let buf = d
      while (stage < 2 && buf.length > 0) {
        const take = Math.min(pending, buf.length)
        buf = buf.subarray(take)
        pending -= take
        if (pending > 0) return
        if (stage === 0) {
          s.write(socksConnect(socks))
          stage = 1
          pending = 10
        } else {
          s.write(REQUEST)
          stage = 2
        }
      }
      if (stage === 2 && buf.length > 0) {
        resolve(now() - t0)
        s.destroy()
      }
    })
    s.once('error', reject)
    s.once('close', () => reject(new Error('closed before the response')))
  })
}
const samples = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
for (const k of Object.keys(paths)) await once(paths[k]) // warm-up (ARP, cookies, the session)
for (let i = 0; i < rounds; i++) for (const k of Object.keys(paths)) samples[k].push(await once(paths[k]))
console.log(JSON.stringify(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]))))
