/**
 * The secure channel over TCP Fast Open: message 1 (with the first request
 * as 0-RTT early data) is the socket's first write, so with a warm cookie
 * it rides in the SYN, and the answer arrives in message 2 — one round trip.
 */
import { describe, expect, it } from 'vitest'
import { createConnection, createServer, fastOpenInfo, secure, generateKeyPair, ReplayGuard, type SecureChannel } from 'synmux'
import { close, isLinux, listen, serverTfoOn, skipReason } from '../helpers'

const needServerTfo = skipReason(
  !isLinux ? 'TFO end-to-end tests run on Linux' : !serverTfoOn() ? 'net.ipv4.tcp_fastopen has no server bit: run `sysctl -w net.ipv4.tcp_fastopen=3` (as .ci/run does)' : false,
)

describe.skipIf(needServerTfo)('secure channel over TCP Fast Open', () => {
  it('with a warm cookie, message 1 and its early data ride in the SYN; the reply comes in message 2', async () => {
    const server = generateKeyPair()
    const client = generateKeyPair()
    const synData: (boolean | null)[] = []
    const guard = new ReplayGuard()
    const srv = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {})
      const ch = secure(socket, { role: 'server', staticKey: server.privateKey, authorize: () => 'c', replayGuard: guard })
      ch.on('error', () => {})
      ch.once('data', (d: Buffer) => {
        synData.push(fastOpenInfo(socket).synData)
        ch.end(`answer to ${d}`)
      })
      ch.resume()
    })
    const port = await listen(srv, '127.0.0.1')
    const run = async (request: string) => {
      const socket = createConnection({ host: '127.0.0.1', port, allowHalfOpen: true })
      socket.on('error', () => {})
      const ch: SecureChannel = secure(socket, { role: 'client', staticKey: client.privateKey, serverKey: server.publicKey })
      ch.end(request)
      const parts: Buffer[] = []
      ch.on('data', (d: Buffer) => parts.push(d))
      await new Promise((resolve, reject) => ch.once('end', resolve).once('error', reject))
      return { reply: Buffer.concat(parts).toString(), tfo: socket.fastOpen, early: ch.earlyData }
    }
    const first = await run('one') // asks for a cookie
    expect(first.reply).toBe('answer to one')
    const second = await run('two')
    expect(second.reply).toBe('answer to two')
    expect(second.early).toBe('accepted')
    expect(second.tfo).toEqual({ attempted: true, accepted: true })
    expect(synData.at(-1)).toBe(true) // the server saw data in the SYN: message 1
    await close(srv)
  })
})
