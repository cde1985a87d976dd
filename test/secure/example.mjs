#!/usr/bin/env node
// The worked example of docs/PROTOCOL.md 20.11, generated from a real run:
// a client and a server SecureChannel over loopback TCP with fixed keys,
// fixed ephemeral keys and a fixed clock (so every byte is reproducible),
// the bytes captured on the sockets, then decrypted again with the same
// keys to show the plaintext of each field.
// `node test/secure/example.mjs` prints it; test/secure/spec.test.mjs
// checks that PROTOCOL.md holds exactly this text.
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import {
  secure,
  derivePublicKey,
  encodePublicKey,
  HandshakeState,
  RecordOpener,
  ReplayGuard,
  SECURE_PROTOCOL,
  SECURE_PROLOGUE,
} from 'synmux'

export const KEYS = {
  serverStatic: Buffer.alloc(32, 0x11),
  clientStatic: Buffer.alloc(32, 0x22),
  clientEphemeral: Buffer.alloc(32, 0x33),
  serverEphemeral: Buffer.alloc(32, 0x44),
}
const CLOCK = Date.UTC(2026, 0, 1) // 2026-01-01T00:00:00.000Z
const REQUEST = 'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK'
const FOLLOW_UP = 'thanks'

const once = (e, ev) => new Promise((r) => e.once(ev, r))

/** Runs the exchange; returns the bytes each side's socket received, per flight. */
async function run() {
  const up = []
  const down = []
  let serverCh
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('data', (d) => up.push(Buffer.from(d)))
    serverCh = secure(sock, {
      role: 'server',
      staticKey: KEYS.serverStatic,
      ephemeralKey: KEYS.serverEphemeral,
      authorize: () => 'example-client',
      replayGuard: new ReplayGuard({ clock: () => CLOCK + 3, notBefore: 0 }),
      clock: () => CLOCK + 3,
    })
    serverCh.on('data', (d) => {
      if (d.toString() === REQUEST) serverCh.write(RESPONSE)
    })
    serverCh.on('end', () => serverCh.end())
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const sock = net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true })
  sock.on('data', (d) => down.push(Buffer.from(d)))
  const client = secure(sock, {
    role: 'client',
    staticKey: KEYS.clientStatic,
    serverKey: derivePublicKey(KEYS.serverStatic),
    ephemeralKey: KEYS.clientEphemeral,
    clock: () => CLOCK,
  })
  client.write(REQUEST)
  const first = await once(client, 'data')
  if (first.toString() !== RESPONSE) throw new Error('unexpected response')
  const flights = [Buffer.concat(up.splice(0)), Buffer.concat(down.splice(0))]
  client.end(FOLLOW_UP)
  await once(serverCh, 'end')
  flights.push(Buffer.concat(up.splice(0)))
  await once(client, 'close')
  flights.push(Buffer.concat(down.splice(0)))
  server.close()
  return { flights, hash: client.info.handshakeHash }
}

const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ')
/** Lines of at most 16 bytes; the comment on the first. */
function field(bytes, comment, indent = '') {
  const out = []
  for (let i = 0; i < Math.max(bytes.length, 1); i += 16) {
    const h = indent + hex(bytes.subarray(i, i + 16))
    out.push(i === 0 ? `${h.padEnd(52)} ${comment}` : h)
  }
  return out
}
const num = (n) => n.toLocaleString('en-US')
const text = (b) => JSON.stringify(b.toString()).replace(/\\r\\n/g, '\\r\\n')

/** The worked example as PROTOCOL.md shows it. */
export async function workedExample() {
  const { flights, hash } = await run()
  const [f1, f2, f3, f4] = flights
  const lines = []
  const serverPub = derivePublicKey(KEYS.serverStatic)
  const clientPub = derivePublicKey(KEYS.clientStatic)
  lines.push(
    `# ${SECURE_PROTOCOL}, prologue "${SECURE_PROLOGUE}", no PSK (32 zero bytes)`,
    `# server static key: private 11 x 32, public ${encodePublicKey(serverPub)}`,
    `# client static key: private 22 x 32, public ${encodePublicKey(clientPub)}`,
    '# ephemeral private keys (fixed for this example only): client 33 x 32, server 44 x 32',
    '# clocks: client 2026-01-01T00:00:00.000Z, server 3 ms later',
    '',
  )

  // Replay the handshake with the same keys to decrypt each field.
  const init = new HandshakeState({ protocolName: SECURE_PROTOCOL, initiator: true, prologue: SECURE_PROLOGUE, staticKey: KEYS.clientStatic, remoteStaticKey: serverPub, ephemeralKey: KEYS.clientEphemeral, psks: [Buffer.alloc(32)] })
  const resp = new HandshakeState({ protocolName: SECURE_PROTOCOL, initiator: false, prologue: SECURE_PROLOGUE, staticKey: KEYS.serverStatic, ephemeralKey: KEYS.serverEphemeral, psks: [Buffer.alloc(32)] })

  const m1 = f1.subarray(3, 3 + f1.readUInt16BE(1))
  const p1 = resp.readMessage(m1)
  init.writeMessage(p1) // same keys, same payload: the same bytes
  const early = p1.subarray(16)
  lines.push(`# flight 1, client → server: message 1, ${num(f1.length)} bytes (the socket's first write: with TFO, in the SYN)`)
  lines.push(...field(f1.subarray(0, 1), 'type 0x01: message 1'))
  lines.push(...field(f1.subarray(1, 3), `length ${num(m1.length)}`))
  lines.push(...field(m1.subarray(0, 32), 'e: client ephemeral public key (clear)'))
  lines.push(...field(m1.subarray(32, 80), 's: client static public key, encrypted (32 + 16-byte tag)'))
  lines.push(...field(m1.subarray(80), `payload, encrypted (${num(p1.length)} + 16-byte tag); its plaintext:`))
  lines.push(...field(p1.subarray(0, 1), 'version 1', '    '))
  lines.push(...field(p1.subarray(1, 2), 'flags 0', '    '))
  lines.push(...field(p1.subarray(2, 10), `timestamp ${num(Number(p1.readBigUInt64BE(2)))} µs = ${new Date(Number(p1.readBigUInt64BE(2)) / 1000).toISOString()}`, '    '))
  lines.push(...field(p1.subarray(10, 14), `rekey interval ${num(p1.readUInt32BE(10))} bytes (client → server)`, '    '))
  lines.push(...field(p1.subarray(14, 16), 'extensions length 0', '    '))
  lines.push(...field(early, `early data (${early.length}): ${text(early)}`, '    '))
  lines.push('')

  const m2 = f2.subarray(2, 2 + f2.readUInt16BE(0))
  const p2 = init.readMessage(m2)
  resp.writeMessage(p2)
  lines.push(`# flight 2, server → client: message 2, ${num(f2.length)} bytes`)
  lines.push(...field(f2.subarray(0, 2), `length ${num(m2.length)}`))
  lines.push(...field(m2.subarray(0, 32), 'e: server ephemeral public key (clear)'))
  lines.push(...field(m2.subarray(32), `payload, encrypted (${num(p2.length)} + 16-byte tag); its plaintext:`))
  lines.push(...field(p2.subarray(0, 1), 'version 1', '    '))
  lines.push(...field(p2.subarray(1, 2), 'early data status 1: accepted', '    '))
  lines.push(...field(p2.subarray(2, 3), 'reject reason 0: none', '    '))
  lines.push(...field(p2.subarray(3, 4), 'flags 0', '    '))
  lines.push(...field(p2.subarray(4, 12), `server time ${num(Number(p2.readBigUInt64BE(4)))} µs`, '    '))
  lines.push(...field(p2.subarray(12, 16), `rekey interval ${num(p2.readUInt32BE(12))} bytes (server → client)`, '    '))
  lines.push(...field(p2.subarray(16, 18), 'extensions length 0', '    '))
  lines.push(...field(p2.subarray(18), `first reply bytes (${p2.length - 18}): ${text(p2.subarray(18))}`, '    '))
  lines.push(...field(hash, 'handshake hash h (both sides), after Split()'))
  lines.push('')

  const cToS = new RecordOpener(init.transport.send, p1.readUInt32BE(10))
  const sToC = new RecordOpener(init.transport.receive, p2.readUInt32BE(12))
  const records = (bytes, opener, title) => {
    lines.push(title)
    for (let off = 0; off < bytes.length; ) {
      const len = bytes.readUInt16BE(off)
      const rec = bytes.subarray(off, off + 2 + len)
      const plain = Buffer.concat(opener.write(rec))
      lines.push(...field(rec.subarray(0, 2), `record: length ${len} (authenticated as associated data)`))
      lines.push(...field(rec.subarray(2), plain.length ? `ciphertext + tag, nonce ${opener.counters.records - 1}: ${text(plain)}` : `ciphertext + tag, nonce ${opener.counters.records - 1}: empty: the end record`))
      off += 2 + len
    }
    lines.push('')
  }
  records(f3, cToS, `# flight 3, client → server: ${num(f3.length)} bytes (the client writes ${text(Buffer.from(FOLLOW_UP))} and ends)`)
  records(f4, sToC, `# flight 4, server → client: ${num(f4.length)} bytes (the server ends too)`)
  lines.pop()
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(await workedExample())
