// The Noise implementation (src/secure: CipherState, SymmetricState,
// HandshakeState) against the published cacophony test vectors: every
// message of every vector of the channel's protocol name, and of every
// other Curve25519 protocol in the file (all patterns, ciphers, hashes).
import { describe, it, expect } from 'vitest'
import fs from 'node:fs'
import path from 'node:path'
import { HandshakeState, SECURE_PROTOCOL } from 'synmux'

const file = path.join(import.meta.dirname, 'vectors/noise-25519.json')
const { vectors } = JSON.parse(fs.readFileSync(file, 'utf8'))
const hex = (s) => (s === undefined ? undefined : Buffer.from(s, 'hex'))

function side(v, prefix, initiator) {
  const opts = { protocolName: v.protocol_name, initiator, prologue: hex(v[`${prefix}_prologue`]) }
  if (v[`${prefix}_static`]) opts.staticKey = hex(v[`${prefix}_static`])
  if (v[`${prefix}_ephemeral`]) opts.ephemeralKey = hex(v[`${prefix}_ephemeral`])
  if (v[`${prefix}_remote_static`]) opts.remoteStaticKey = hex(v[`${prefix}_remote_static`])
  if (v[`${prefix}_psks`]) opts.psks = v[`${prefix}_psks`].map(hex)
  return new HandshakeState(opts)
}

// expect() per message is slow over 472 vectors; compare, and fail through expect on a mismatch.
const same = (actual, wanted, what) => {
  if (actual !== wanted) expect(actual, what).toBe(wanted)
}

/** Runs one vector; returns the number of messages checked. */
function run(v) {
  const init = side(v, 'init', true)
  const resp = side(v, 'resp', false)
  const oneWay = /^Noise_[NKX]((psk\d)(\+psk\d)*)?_/.test(v.protocol_name)
  let checked = 0
  v.messages.forEach((m, i) => {
    const payload = hex(m.payload)
    const expected = hex(m.ciphertext)
    if (!init.finished) {
      const [sender, receiver] = init.isMyTurn ? [init, resp] : [resp, init]
      const ct = sender.writeMessage(payload)
      same(ct.toString('hex'), m.ciphertext, `${v.protocol_name} message ${i}`)
      same(receiver.readMessage(ct).toString('hex'), m.payload, `${v.protocol_name} message ${i} read`)
      if (init.finished) {
        expect(resp.finished).toBe(true)
        expect(init.transport.handshakeHash.toString('hex'), `${v.protocol_name} handshake hash`).toBe(v.handshake_hash)
        expect(resp.transport.handshakeHash.toString('hex')).toBe(v.handshake_hash)
      }
    } else {
      const fromInit = oneWay || i % 2 === 0
      const send = fromInit ? init.transport.send : resp.transport.send
      const recv = fromInit ? resp.transport.receive : init.transport.receive
      const ct = send.encryptWithAd(Buffer.alloc(0), payload)
      same(ct.toString('hex'), m.ciphertext, `${v.protocol_name} transport message ${i}`)
      same(recv.decryptWithAd(Buffer.alloc(0), expected).toString('hex'), m.payload, `${v.protocol_name} transport message ${i} read`)
    }
    checked++
  })
  return checked
}

describe('Noise test vectors (cacophony, Curve25519)', () => {
  it(`every message of every vector of ${SECURE_PROTOCOL}`, () => {
    const mine = vectors.filter((v) => v.protocol_name === SECURE_PROTOCOL)
    expect(mine.length).toBeGreaterThan(0)
    let messages = 0
    for (const v of mine) messages += run(v)
    // IK: 2 handshake messages, then transport messages both ways.
    expect(messages).toBe(mine.reduce((n, v) => n + v.messages.length, 0))
    expect(messages).toBeGreaterThanOrEqual(6)
  })

  it('the other cipher/hash combinations and PSK placements of IK', () => {
    const ik = vectors.filter((v) => /^Noise_IK(psk[12])?_25519_/.test(v.protocol_name) && v.protocol_name !== SECURE_PROTOCOL)
    expect(ik.length).toBe(23) // IK, IKpsk1, IKpsk2 × {ChaChaPoly, AESGCM} × {SHA256, SHA512, BLAKE2s, BLAKE2b}, less the chosen one
    for (const v of ik) run(v)
  })

  it('every vector in the file (all 38 one-way, fundamental and deferred patterns, PSK modifiers)', () => {
    let n = 0
    for (const v of vectors) {
      run(v)
      n++
    }
    expect(n).toBe(vectors.length)
    expect(n).toBe(472)
  })

  it('a wrong byte anywhere in a handshake message fails it, and the state stays failed', () => {
    const v = vectors.find((x) => x.protocol_name === SECURE_PROTOCOL)
    const msg1 = hex(v.messages[0].ciphertext)
    for (const pos of [0, 31, 32, 79, 80, msg1.length - 1]) {
      const resp = side(v, 'resp', false)
      const bad = Buffer.from(msg1)
      bad[pos] ^= 1
      expect(() => resp.readMessage(bad)).toThrow(expect.objectContaining({ name: 'SecureError' }))
      // A failed HandshakeState refuses further use (spec 5: it is deleted).
      expect(() => resp.readMessage(msg1)).toThrow(expect.objectContaining({ code: 'SYNMUX_SECURE_BAD_HANDSHAKE' }))
    }
  })
})
