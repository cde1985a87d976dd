// bench/tunnel application: time from connect() to the first response byte
// through each path, interleaved rounds. Prints one JSON line.
import net from 'node:net'
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
const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  return { n: s.length, min: +s[0].toFixed(3), median: +q(0.5).toFixed(3), p90: +q(0.9).toFixed(3), max: +s.at(-1).toFixed(3) }
}
console.log(JSON.stringify(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, stat(v)]))))
