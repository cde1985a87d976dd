// The secure channel over real loopback TCP: handshake, 0-RTT in message 1,
// the server's first bytes in message 2, records both ways, half-close,
// rekey, limits, timeouts, and 100 MiB intact.
import { describe, it, expect, afterEach } from 'vitest'
import crypto from 'node:crypto'
import net from 'node:net'
import { secure, SecureChannel, MESSAGE1_TYPE } from 'synmux'
import { startServer, connectClient, startRelay, readAll, closed, once, sha256, serverKeys, clientKeys } from './helpers.mjs'

const cleanups = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()()
})
async function server(onChannel, options) {
  const s = await startServer(onChannel, options)
  cleanups.push(s.close)
  return s
}
/** An echo server: echoes everything, ends when the client ends. */
const echo = (ch) => {
  ch.on('error', () => {})
  ch.pipe(ch)
}

describe('secure channel over TCP', () => {
  it('0-RTT: the first write rides in message 1, the answer in message 2; both sides learn who the other is', async () => {
    let nameWhileReading
    const srv = await server((ch) => {
      ch.on('error', () => {})
      ch.once('data', (d) => {
        // The server knows who is asking while it reads the early data.
        nameWhileReading = ch.peerName
        ch.write(`echo:${d}`)
      })
    })
    const relay = await startRelay(srv.port)
    cleanups.push(relay.close)
    const { ch } = connectClient(relay.port)
    ch.write('GET / HTTP/1.1\r\n\r\n')
    const info = await once(ch, 'secure')
    const [reply] = await once(ch, 'data').then((d) => [d])
    expect(reply.toString()).toBe('echo:GET / HTTP/1.1\r\n\r\n')
    expect(info.earlyData).toBe('accepted')
    expect(nameWhileReading).toBe('alice')
    expect(info.remotePublicKey.equals(serverKeys.publicKey)).toBe(true)
    expect(ch.earlyData).toBe('accepted')
    const sch = srv.channels[0]
    expect(sch.peerName).toBe('alice')
    expect(sch.remotePublicKey.equals(clientKeys.publicKey)).toBe(true)
    expect(sch.info.handshakeHash.equals(info.handshakeHash)).toBe(true)
    // On the wire: exactly two frames, message 1 (type 0x01) carrying the
    // request and message 2 carrying the answer: one round trip.
    expect(relay.frames.up.length).toBe(1)
    expect(relay.frames.up[0][0]).toBe(MESSAGE1_TYPE)
    expect(relay.frames.down.length).toBe(1)
    // Neither holds the plaintext.
    expect(Buffer.concat(relay.wire.up).includes('GET /')).toBe(false)
    expect(Buffer.concat(relay.wire.down).includes('echo:')).toBe(false)
    ch.destroy()
  })

  it('the first write on the transport is message 1, whole, and nothing comes before it', async () => {
    const srv = await server(echo)
    const socket = net.connect(srv.port, '127.0.0.1')
    const writes = []
    const orig = socket.write.bind(socket)
    socket.write = (chunk, ...rest) => {
      writes.push(Buffer.from(chunk))
      return orig(chunk, ...rest)
    }
    const ch = secure(socket, { role: 'client', staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey })
    ch.write('a')
    ch.write('b') // same tick: both in message 1
    await Promise.resolve()
    ch.write('c') // a microtask later: still the same tick
    await once(ch, 'secure')
    expect(writes[0][0]).toBe(MESSAGE1_TYPE)
    expect(writes[0].length).toBe(3 + writes[0].readUInt16BE(1))
    // 96 bytes of Noise overhead + 16 of payload header + "abc".
    expect(writes[0].length).toBe(3 + 96 + 16 + 3)
    const got = await new Promise((r) => ch.once('data', r))
    expect(got.toString()).toBe('abc')
    ch.destroy()
  })

  it('what does not fit in message 1 follows as records once the server answers; the order is kept', async () => {
    const srv = await server(echo)
    const { ch } = connectClient(srv.port, { maxEarlyData: 100 })
    const data = crypto.randomBytes(50_000)
    ch.end(data)
    const back = await readAll(ch)
    expect(sha256(back)).toBe(sha256(data))
    expect(ch.earlyData).toBe('accepted')
    expect(srv.channels[0].earlyData).toBe('accepted')
  })

  it('maxEarlyData 0: no 0-RTT; data follows the handshake', async () => {
    const srv = await server(echo)
    const { ch } = connectClient(srv.port, { maxEarlyData: 0 })
    ch.end('late')
    expect((await readAll(ch)).toString()).toBe('late')
    expect(ch.earlyData).toBe('none')
  })

  it('a server that speaks first: its bytes written before message 1 arrives ride in message 2', async () => {
    const srv = await server((ch) => {
      ch.on('error', () => {})
      ch.write('220 hello\r\n')
      ch.end()
      ch.resume()
    })
    const relay = await startRelay(srv.port)
    cleanups.push(relay.close)
    const { ch } = connectClient(relay.port, { maxEarlyData: 0 })
    ch.end()
    expect((await readAll(ch)).toString()).toBe('220 hello\r\n')
    // message 2 carried the banner: the frames after it are only end records (16-byte tag).
    expect(relay.frames.down.slice(1).every((f) => f.length === 2 + 16)).toBe(true)
  })

  it('half-close: each side ends its direction with an end record; data after it still flows the other way', async () => {
    const srv = await server((ch) => {
      ch.on('error', () => {})
      const parts = []
      ch.on('data', (d) => parts.push(d))
      ch.on('end', () => {
        // The client ended; the server still writes.
        ch.write(`got ${Buffer.concat(parts).length}`)
        setTimeout(() => ch.end(), 20)
      })
    })
    const { ch } = connectClient(srv.port)
    const done = closed(ch)
    ch.end(Buffer.alloc(1000, 1))
    expect((await readAll(ch)).toString()).toBe('got 1000')
    expect(await done).toBe(null)
    expect(await closed(srv.channels[0]).catch((e) => e)).toBe(null)
  })

  it('100 MiB through the channel, both directions at once, intact (sha256)', { timeout: 120_000 }, async () => {
    const srv = await server(echo)
    const { ch } = connectClient(srv.port)
    const size = 100 * 1024 * 1024
    const hash = crypto.createHash('sha256')
    const back = crypto.createHash('sha256')
    let received = 0
    ch.on('data', (d) => {
      back.update(d)
      received += d.length
    })
    const ended = once(ch, 'end')
    const block = crypto.randomBytes(1 << 20)
    for (let i = 0; i < 100; i++) {
      block.writeUInt32BE(i, 0) // each MiB differs
      hash.update(block)
      if (!ch.write(Buffer.from(block))) await once(ch, 'drain')
    }
    ch.end()
    await ended
    expect(received).toBe(size)
    expect(back.digest('hex')).toBe(hash.digest('hex'))
    const st = ch.stats()
    // The first 1,200 bytes went as early data in message 1, the rest in records.
    expect(st.sent.bytes).toBe(size - 1200)
    // The echo of the early data came back in message 2, the rest in records.
    expect(st.received.bytes).toBeGreaterThanOrEqual(size - 16384)
    expect(st.sent.records).toBeGreaterThanOrEqual(size / 16384)
  })

  it('rekey: with a small interval both directions rekey many times and the data stays intact', async () => {
    const srv = await server(echo, { rekeyInterval: 4096 })
    const { ch } = connectClient(srv.port, { rekeyInterval: 10_000, maxRecordSize: 1000, maxEarlyData: 0 })
    const data = crypto.randomBytes(300_000)
    ch.end(data)
    const back = await readAll(ch)
    expect(sha256(back)).toBe(sha256(data))
    const st = ch.stats()
    // Client → server: 300 records of 1,000 bytes (1,018 on the wire) and
    // the end record; a rekey after every record that reaches 10,000 bytes
    // since the last: after records 10, 20, ..., 300.
    expect(st.sent.records).toBe(301)
    expect(st.sent.rekeys).toBe(30)
    // Server → client: at least one rekey per 4,096 + one record's bytes.
    expect(st.received.rekeys).toBeGreaterThanOrEqual(Math.floor(st.received.wireBytes / (4096 + 16384 + 18)))
    expect(st.received.rekeys).toBeGreaterThan(10)
    const sst = srv.channels[0].stats()
    expect(sst.received.rekeys).toBe(st.sent.rekeys)
    expect(sst.sent.rekeys).toBe(st.received.rekeys)
  })

  it('backpressure: a reader that does not read stops the writer (bounded buffers)', async () => {
    let serverCh
    const srv = await server((ch) => {
      serverCh = ch
      ch.on('error', () => {})
      ch.pause()
    })
    const { ch } = connectClient(srv.port)
    ch.on('error', () => {})
    await once(ch, 'secure')
    let written = 0
    let stuck = false
    const block = Buffer.alloc(64 * 1024)
    // Write until a drain does not come within 300 ms (the reader holds
    // everything), or 256 MiB: a writer that is never stopped fails.
    while (written < 256 * 1024 * 1024) {
      written += block.length
      if (ch.write(block)) continue
      const drained = await Promise.race([once(ch, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 300))])
      if (!drained) {
        stuck = true
        break
      }
    }
    expect(stuck).toBe(true)
    // The paused reader holds at most its high-water mark plus one read of records;
    // the rest sits in the kernel's socket buffers.
    expect(serverCh.readableLength).toBeLessThanOrEqual(256 * 1024 + 128 * 1024)
    expect(written).toBeLessThan(64 * 1024 * 1024)
    ch.destroy()
  })

  it('handshake timeout on both sides', async () => {
    // A server that never answers: a plain listener.
    const silent = net.createServer((s) => s.on('error', () => {}).resume())
    await new Promise((r) => silent.listen(0, '127.0.0.1', r))
    cleanups.push(() => new Promise((r) => silent.close(r)))
    const { ch } = connectClient(silent.address().port, { handshakeTimeout: 200 })
    const err = await closed(ch)
    expect(err.code).toBe('SYNMUX_SECURE_HANDSHAKE_TIMEOUT')
    expect(err.message).toMatch(/server sent nothing/)

    // A client that never sends message 1: a raw socket.
    const srv = await server((ch) => {}, { handshakeTimeout: 200 })
    const raw = net.connect(srv.port, '127.0.0.1')
    raw.on('error', () => {})
    await once(raw, 'connect')
    while (srv.channels.length === 0) await new Promise((r) => setTimeout(r, 5))
    const serr = await closed(srv.channels[0])
    expect(serr.code).toBe('SYNMUX_SECURE_HANDSHAKE_TIMEOUT')
    raw.destroy()
  })

  it('validates its arguments with TypeError/RangeError and a code', () => {
    const sock = new net.Socket()
    expect(() => secure({}, { role: 'client' })).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => secure(sock, { role: 'peer' })).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => secure(sock, { role: 'client', staticKey: Buffer.alloc(31), serverKey: Buffer.alloc(32) })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'SYNMUX_SECURE_BAD_KEY' }))
    expect(() => secure(sock, { role: 'client', staticKey: Buffer.alloc(32), serverKey: 'x' })).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => secure(sock, { role: 'server', staticKey: Buffer.alloc(32) })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => secure(sock, { role: 'client', staticKey: Buffer.alloc(32), serverKey: Buffer.alloc(32), maxRecordSize: 70_000 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }))
    expect(() => secure(sock, { role: 'client', staticKey: Buffer.alloc(32), serverKey: Buffer.alloc(32), rekeyInterval: 10 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => secure(sock, { role: 'server', staticKey: Buffer.alloc(32), authorize: () => 'x', onAuthFailure: 'shout' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    const ch = secure(sock, { role: 'client', staticKey: Buffer.alloc(32), serverKey: serverKeys.publicKey })
    expect(ch).toBeInstanceOf(SecureChannel)
    ch.on('error', () => {})
    ch.destroy()
  })
})
