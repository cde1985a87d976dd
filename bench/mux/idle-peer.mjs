// Child process of bench/mux-idle-memory.mjs (run with --expose-gc): one
// side of a session that holds N idle streams; measures its own memory.
import net from 'node:net'
import { Session } from 'synmux'

const role = process.argv[2]
const gcAll = async () => {
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await new Promise((r) => setImmediate(r))
  }
}
const mem = () => {
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss }
}
let session
const streams = []

async function base() {
  await gcAll()
  return mem()
}

if (role === 'server') {
  const server = net.createServer((sock) => {
    session = new Session(sock, { role: 'server', maxStreams: 1_000_000, maxPendingOpens: 1_000_000, keepAliveInterval: 0 })
    session.on('stream', (s) => {
      streams.push(s)
      s.accept()
    })
    session.once('handshake', async () => process.send({ base: await base() }))
  })
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
} else {
  const port = Number(process.argv[3])
  const sock = net.connect(port, '127.0.0.1')
  session = new Session(sock, { role: 'client', keepAliveInterval: 0 })
  session.once('handshake', async () => process.send({ base: await base() }))
}

process.on('message', async (m) => {
  if (m.open) {
    let opened = 0
    await new Promise((resolve) => {
      for (let i = 0; i < m.open; i++) {
        const s = session.open()
        streams.push(s)
        s.once('open', () => ++opened === m.open && resolve())
      }
    })
    await gcAll()
    process.send({ after: mem(), streams: session.streamCount })
  }
  if (m.measure) {
    await gcAll()
    process.send({ after: mem(), streams: session.streamCount })
  }
  if (m.exit) process.exit(0)
})
