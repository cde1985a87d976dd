// Adapter: a net.Socket as a libp2p v3 MultiaddrConnection, so that
// @chainsafe/libp2p-yamux (v8) can run over plain TCP in the benchmarks.
// Written for this benchmark against the installed @libp2p/utils types.
import { AbstractMultiaddrConnection } from '@libp2p/utils'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { yamux } from '@chainsafe/libp2p-yamux'

// @libp2p/utils 7 uses Promise.withResolvers (Node >= 22); this machine runs
// Node 20, so the benchmark provides it.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject
    const promise = new this((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}

class SocketConnection extends AbstractMultiaddrConnection {
  constructor(socket, direction) {
    super({
      direction,
      remoteAddr: multiaddr(`/ip4/127.0.0.1/tcp/${socket.remotePort ?? 1}`),
      log: defaultLogger().forComponent(`bench:yamux:${direction}`),
      inactivityTimeout: 0,
    })
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('data', (buf) => this.onData(buf))
    socket.on('error', (err) => this.abort(err))
    socket.once('end', () => this.onRemoteCloseWrite())
    socket.once('close', () => this.onTransportClosed())
    socket.on('drain', () => this.safeDispatchEvent('drain'))
  }

  sendData(data) {
    let canSendMore = true
    for (const buf of data) canSendMore = this.socket.write(buf)
    return { sentBytes: data.byteLength, canSendMore }
  }

  sendReset() {
    this.socket.resetAndDestroy()
  }

  async sendClose() {
    if (!this.socket.destroyed) this.socket.end()
  }

  sendPause() {
    this.socket.pause()
  }

  sendResume() {
    this.socket.resume()
  }
}

/** A yamux muxer over a connected socket. */
export function yamuxOver(socket, direction, init = {}) {
  const conn = new SocketConnection(socket, direction)
  return yamux({ enableKeepAlive: false, ...init })().createStreamMuxer(conn)
}

/** Writes a Buffer/Uint8Array to a yamux stream honouring its backpressure. */
export async function yamuxWrite(stream, buf) {
  if (!stream.send(buf)) await stream.onDrain()
}
