// Child process of bench/mux-throughput.mjs: a TCP listener on 127.0.0.1 that
// counts the bytes of one transfer (raw TCP, one synmux stream, or one yamux
// stream) and reports { bytes, ms } to the parent over IPC when it ends.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { Session } from 'synmux'

const kind = process.argv[2]
// libp2p only where it is measured: loaded, it slows the process's other sockets (see yamux-sender.mjs)
const { yamuxOver } = kind === 'yamux' ? await import('./yamux-adapter.mjs') : {}
let first = 0
let bytes = 0
const count = (n) => {
  if (bytes === 0) first = performance.now()
  bytes += n
}
const done = () => process.send({ bytes, ms: performance.now() - first })

const server = net.createServer((sock) => {
  sock.setNoDelay(true)
  if (kind === 'raw') {
    sock.on('data', (d) => count(d.length))
    sock.on('end', () => {
      done()
      sock.end()
    })
  } else if (kind === 'synmux') {
    const session = new Session(sock, { role: 'server' })
    session.on('error', () => {})
    session.on('stream', (s) => {
      s.on('data', (d) => count(d.length))
      s.on('end', () => {
        done()
        s.end()
      })
    })
  } else if (kind === 'yamux') {
    const muxer = yamuxOver(sock, 'inbound')
    muxer.addEventListener('stream', async (evt) => {
      const s = evt.detail
      for await (const c of s) count(c.byteLength)
      done()
      await s.close()
    })
  }
  sock.on('error', () => {})
})
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('message', (m) => {
  if (m === 'reset') {
    bytes = 0
    first = 0
  }
  if (m === 'exit') process.exit(0)
})
