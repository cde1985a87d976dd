// A server's `divert` hook (the handing of a first flight to the process
// that holds its session, `synmux server --workers`): it sees message 1
// once the client key is authorized, before the replay guard; a channel
// that diverts sends nothing, leaves its transport open and paused and
// gives back every byte it read, so that a second channel over the same
// connection processes message 1 again — and only that one asks the
// replay guard, which may answer with a promise (a guard another process
// holds).
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { secure, ReplayGuard } from 'synmux'
import { clientKeys, serverKeys, closed, once, readAll, strangerKeys } from './helpers.mjs'

/** A guard held "elsewhere": answers after a delay; counts its checks. */
class SlowGuard {
  inner = new ReplayGuard()
  checks = 0
  check(...a) {
    this.checks++
    return new Promise((r) => setTimeout(() => r(this.inner.check(...a)), 5))
  }
}

const serverOpts = (extra) => ({ role: 'server', staticKey: serverKeys.privateKey, authorize: (k) => (k.equals(clientKeys.publicKey) ? 'alice' : null), ...extra })

describe('divert', () => {
  it('hands message 1 and what followed back untouched; a second channel over the connection completes the handshake', async () => {
    const guard = new SlowGuard()
    const seen = []
    let diverts = 0
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {})
      const raw = []
      socket.prependListener('data', (d) => raw.push(d))
      const first = secure(socket, serverOpts({
        replayGuard: guard,
        divert: (f) => {
          seen.push(f)
          diverts++
          return true
        },
      }))
      first.on('error', () => {})
      first.once('diverted', (head) => {
        // Everything read from the connection so far, byte for byte.
        expect(head.equals(Buffer.concat(raw))).toBe(true)
        expect(socket.destroyed).toBe(false)
        expect(socket.isPaused()).toBe(true)
        expect(guard.checks).toBe(0)
        // "Another process" takes over: the bytes go back in front, a new channel reads them.
        setImmediate(() => {
          socket.unshift(head)
          const second = secure(socket, serverOpts({ replayGuard: guard, divert: () => false }))
          second.on('data', (d) => second.write(Buffer.from(d.toString().toUpperCase())))
          second.on('end', () => second.end())
          second.on('error', () => {})
        })
      })
    })
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    const c = secure(net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true }), { role: 'client', staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey })
    c.write('early data, in message 1')
    const info = await once(c, 'secure')
    expect(info.earlyData).toBe('accepted')
    c.end('then a record')
    expect((await readAll(c)).toString()).toBe('EARLY DATA, IN MESSAGE 1THEN A RECORD')
    expect(diverts).toBe(1)
    expect(seen[0].data.toString()).toBe('early data, in message 1')
    expect(seen[0].peerKey.equals(clientKeys.publicKey)).toBe(true)
    expect(seen[0].peerName).toBe('alice')
    // Judged once, by the channel that acted on it.
    expect(guard.checks).toBe(1)
    server.close()
  })

  it('is not asked about a client key that is not authorized (that one is refused where it arrived)', async () => {
    let diverts = 0
    let refused = null
    const server = net.createServer((socket) => {
      socket.on('error', () => {})
      const ch = secure(socket, serverOpts({ onAuthFailure: 'close', divert: () => (diverts++, true) }))
      ch.on('refused', (r) => (refused = r))
      ch.on('error', () => {})
    })
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    const c = secure(net.connect(server.address().port, '127.0.0.1'), { role: 'client', staticKey: strangerKeys.privateKey, serverKey: serverKeys.publicKey })
    c.write('hello')
    const err = await closed(c)
    expect(err.code).toBe('SYNMUX_SECURE_REFUSED')
    expect(refused.reason).toBe('unauthorized')
    expect(diverts).toBe(0)
    server.close()
  })

  it('a replay guard that answers with a promise: a replayed first flight is still refused its 0-RTT', async () => {
    const guard = new SlowGuard()
    let flight = null
    const server = net.createServer((socket) => {
      socket.on('error', () => {})
      const ch = secure(socket, serverOpts({ replayGuard: guard }))
      ch.on('error', () => {})
      ch.on('data', () => {})
    })
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    const port = server.address().port
    const sock = net.connect(port, '127.0.0.1')
    const origWrite = sock.write.bind(sock)
    sock.write = (d, ...rest) => {
      flight ??= Buffer.from(d)
      return origWrite(d, ...rest)
    }
    const c = secure(sock, { role: 'client', staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey })
    c.write('pay once')
    expect((await once(c, 'secure')).earlyData).toBe('accepted')
    const again = net.connect(port, '127.0.0.1')
    again.on('error', () => {})
    again.write(flight)
    await once(again, 'data')
    expect(guard.checks).toBe(2)
    expect(guard.inner.size[0]).toBe(1)
    again.destroy()
    c.destroy()
    server.close()
  })
})
