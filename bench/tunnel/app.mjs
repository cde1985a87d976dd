// bench/tunnel application: time from connect() to the first response byte
// through each path, interleaved rounds. Prints one JSON line.
import net from 'node:net'
import { summarize } from '../lib/stats.mjs'
const [pathsJson, roundsArg] = process.argv.slice(2)
const paths = JSON.parse(pathsJson)
const rounds = Number(roundsArg)
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n')
const now = () => Number(process.hrtime.bigint()) / 1e6
function once({ host, port }) {
  return new Promise((resolve, reject) => {
    const t0 = now()
    const s = net.connect({ host, port, noDelay: true, autoSelectFamily: false })
    s.write(REQUEST)
    s.once('data', () => {
      resolve(now() - t0)
      s.destroy()
    })
    s.once('error', reject)
  })
}
const samples = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
for (const k of Object.keys(paths)) await once(paths[k]) // warm-up (ARP, cookies, the session)
for (let i = 0; i < rounds; i++) for (const k of Object.keys(paths)) samples[k].push(await once(paths[k]))
console.log(JSON.stringify(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]))))
