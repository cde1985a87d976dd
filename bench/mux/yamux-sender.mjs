// Child process of bench/mux-throughput.mjs: the sending side of the yamux
// variant. Loading the libp2p stack slows every other socket of a process
// down (raw TCP measured 2-5x slower in a process that imported
// yamux-adapter.mjs), so it lives only in its own processes: this sender and
// the yamux sink. On { port, size, total } it connects, sends `total` bytes
// in writes of `size` over one yamux stream, closes it and answers { sent }.
import crypto from 'node:crypto'
import net from 'node:net'
import { yamuxOver, yamuxWrite } from './yamux-adapter.mjs'

process.on('message', async (m) => {
  if (m === 'exit') process.exit(0)
  const chunk = crypto.randomBytes(m.size)
  const sock = net.connect({ port: m.port, host: '127.0.0.1' })
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  const muxer = yamuxOver(sock, 'outbound')
  const s = await muxer.createStream()
  let sent = 0
  for (; sent < m.total; sent += m.size) await yamuxWrite(s, chunk)
  await s.close()
  process.send({ sent })
  setTimeout(() => sock.destroy(), 100) // after the sink has read the end
})
process.send({ ready: true })
