// Client side of bench/tfo-connect: time from the connect call to the first
// response byte, for connectWithData (TFO) and net.connect + write, in
// interleaved rounds. Prints one JSON line.
import net from 'node:net'
import { connectWithData, fastOpenSupport } from 'synmux'
import { summarize } from '../lib/stats.mjs'

const [host, portArg, roundsArg] = process.argv.slice(2)
const port = Number(portArg)
const rounds = Number(roundsArg ?? 20)
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n')
const now = () => Number(process.hrtime.bigint()) / 1e6

async function tfo(fastOpen) {
  const t0 = now()
  const socket = await connectWithData({ host, port, noDelay: true, fastOpen }, REQUEST)
  await new Promise((r) => socket.once('data', r))
  const ms = now() - t0
  const report = socket.fastOpen
  socket.destroy()
  return { ms, accepted: report.accepted, reason: report.reason }
}

async function plain() {
  const t0 = now()
  const socket = net.connect({ host, port, noDelay: true, autoSelectFamily: false })
  socket.write(REQUEST)
  await new Promise((r, j) => {
    socket.once('data', r)
    socket.once('error', j)
  })
  const ms = now() - t0
  socket.destroy()
  return { ms }
}

const first = await tfo(undefined) // no cookie yet: asks for one
const samples = { connectWithData: [], 'connectWithData(fastOpen:false)': [], 'net.connect+write': [] }
let accepted = 0
for (let i = 0; i < rounds; i++) {
  const a = await tfo(undefined)
  samples.connectWithData.push(a.ms)
  if (a.accepted) accepted++
  samples['connectWithData(fastOpen:false)'].push((await tfo(false)).ms)
  samples['net.connect+write'].push((await plain()).ms)
}
console.log(
  JSON.stringify({
    support: fastOpenSupport(),
    firstConnection: first,
    dataInSyn: `${accepted}/${rounds}`,
    ttfbMs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])),
  }),
)
