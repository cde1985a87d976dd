// Property tests (fast-check): random, truncated and mutated bytes fed into
// the handshake and record parsers in random chunks. No input may throw out
// of the channel, make a server answer a message 1 it did not
// authenticate, or make either side hold more than its stated bound.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { Duplex } from 'node:stream'
import crypto from 'node:crypto'
import {
  secure,
  SecureError,
  HandshakeState,
  CipherState,
  RecordOpener,
  RecordSealer,
  decodeInitPayload,
  decodeReplyPayload,
  encodeInitPayload,
  ReplayGuard,
  SECURE_PROTOCOL,
  SECURE_PROLOGUE,
} from 'synmux'
import { serverKeys, clientKeys } from './helpers.mjs'

const CODES = new Set([
  'SYNMUX_SECURE_DECRYPT_FAILED',
  'SYNMUX_SECURE_TRUNCATED',
  'SYNMUX_SECURE_BAD_RECORD',
  'SYNMUX_SECURE_BAD_HANDSHAKE',
  'SYNMUX_SECURE_REFUSED',
  'SYNMUX_SECURE_UNAUTHORIZED',
  'SYNMUX_SECURE_HANDSHAKE_TIMEOUT',
])
const tick = () => new Promise((r) => setImmediate(r))

/** A transport whose written bytes are counted; `feed` delivers input. */
function transport() {
  const written = []
  const d = new Duplex({
    read() {},
    write(chunk, _e, cb) {
      written.push(Buffer.from(chunk))
      cb()
    },
  })
  d.written = written
  return d
}

/** A valid message 1 (framed) from the test client, with early data. */
function validMessage1(early = Buffer.from('early data'), timestamp = Date.now() * 1000) {
  const hs = new HandshakeState({
    protocolName: SECURE_PROTOCOL,
    initiator: true,
    prologue: SECURE_PROLOGUE,
    staticKey: clientKeys.privateKey,
    remoteStaticKey: serverKeys.publicKey,
    psks: [Buffer.alloc(32)],
  })
  const msg = hs.writeMessage(encodeInitPayload({ timestamp, rekeyInterval: 1 << 20, extensions: Buffer.alloc(0), earlyData: early }))
  const head = Buffer.from([1, 0, 0])
  head.writeUInt16BE(msg.length, 1)
  return Buffer.concat([head, msg])
}

const chunked = (bytes, cuts) => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out = []
  let prev = 0
  for (const p of [...points, bytes.length]) {
    if (p > prev) out.push(bytes.subarray(prev, p))
    prev = p
  }
  return out
}

/** Feeds chunks into a fresh server channel; returns what happened. */
async function feedServer(chunks, options = {}) {
  const t = transport()
  const ch = secure(t, {
    role: 'server',
    staticKey: serverKeys.privateKey,
    authorize: (k) => (k.equals(clientKeys.publicKey) ? 'alice' : null),
    replayGuard: new ReplayGuard({ notBefore: 0 }),
    handshakeTimeout: 0,
    onAuthFailure: 'close',
    ...options,
  })
  const result = { refused: null, error: null, data: [], secured: false, maxBuffered: 0, written: t.written }
  ch.on('refused', (r) => (result.refused = r))
  ch.on('error', (e) => (result.error = e))
  ch.on('data', (d) => result.data.push(d))
  ch.on('secure', () => (result.secured = true))
  for (const c of chunks) {
    if (ch.destroyed) break
    t.push(c)
    await tick()
    result.maxBuffered = Math.max(result.maxBuffered, ch.handshakeBuffered ?? 0)
  }
  await tick()
  await tick()
  ch.destroy()
  return result
}

describe('fuzzing the handshake and record parsers', () => {
  it('server: arbitrary bytes in arbitrary chunks are refused without a byte in reply and with bounded buffering', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 8 }), async (bytes, cuts) => {
        const r = await feedServer(chunked(Buffer.from(bytes), cuts))
        expect(r.written.length).toBe(0)
        expect(r.secured).toBe(false)
        expect(r.data.length).toBe(0)
        if (r.error) expect(CODES.has(r.error.code)).toBe(true)
        // Never more than a whole message 1 of the largest size allowed.
        expect(r.maxBuffered).toBeLessThanOrEqual(3 + 65535)
      }),
      { numRuns: 300 },
    )
  })

  it('server: a valid message 1 in any chunking is accepted; any mutation of it is refused with no reply', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 6 }), fc.nat(), fc.integer({ min: 1, max: 255 }), async (cuts, pos, xor) => {
        const good = validMessage1()
        const ok = await feedServer(chunked(good, cuts))
        expect(ok.secured).toBe(true)
        expect(Buffer.concat(ok.data).toString()).toBe('early data')
        const bad = Buffer.from(good)
        bad[pos % bad.length] ^= xor
        const r = await feedServer(chunked(bad, cuts))
        expect(r.secured).toBe(false)
        expect(r.written.length).toBe(0)
        expect(r.data.length).toBe(0)
      }),
      { numRuns: 150 },
    )
  })

  it('server: a message 1 claiming 65,535 bytes followed by 1 MiB is refused and drained without buffering it', async () => {
    const head = Buffer.from([1, 0xff, 0xff])
    const body = crypto.randomBytes(1 << 20)
    const r = await feedServer([head, ...chunked(body, Array.from({ length: 20 }, (_, i) => i * 53_000))], { onAuthFailure: 'drain', handshakeTimeout: 60_000, maxEarlyData: 65_000 })
    expect(r.refused?.reason).toBe('decrypt-failed')
    expect(r.maxBuffered).toBeLessThanOrEqual(3 + 65535 + 53_000)
    expect(r.written.length).toBe(0)
  })

  it('client: arbitrary bytes in place of message 2 end in a SecureError, never an exception', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), async (bytes, cuts, end) => {
        const t = transport()
        const ch = secure(t, { role: 'client', staticKey: clientKeys.privateKey, serverKey: serverKeys.publicKey, handshakeTimeout: 0 })
        let error = null
        let secured = false
        ch.on('error', (e) => (error = e))
        ch.on('secure', () => (secured = true))
        ch.write('hi')
        await tick()
        for (const c of chunked(Buffer.from(bytes), cuts)) {
          t.push(c)
          await tick()
        }
        if (end) t.push(null)
        await tick()
        await tick()
        expect(secured).toBe(false)
        if (error) {
          expect(error).toBeInstanceOf(SecureError)
          expect(CODES.has(error.code)).toBe(true)
        }
        expect(ch.handshakeBuffered).toBeLessThanOrEqual(2 + 65535 + 2000)
        ch.destroy()
      }),
      { numRuns: 300 },
    )
  })

  it('records: garbage, and valid records with garbage spliced in, only ever fail with a SecureError code', () => {
    const key = crypto.randomBytes(32)
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.array(fc.nat(), { maxLength: 5 }), (parts, junk, at, cuts) => {
        const sealer = new RecordSealer(new CipherState('ChaChaPoly', key), 4096, 128)
        const wire = Buffer.concat(parts.flatMap((p) => sealer.seal(p)))
        const spliceAt = at % (wire.length + 1)
        const input = Buffer.concat([wire.subarray(0, spliceAt), Buffer.from(junk), wire.subarray(spliceAt)])
        const opener = new RecordOpener(new CipherState('ChaChaPoly', key), 4096)
        const out = []
        try {
          for (const c of chunked(input, cuts)) out.push(...opener.write(c))
          opener.finish()
        } catch (err) {
          expect(err).toBeInstanceOf(SecureError)
          expect(CODES.has(err.code)).toBe(true)
        }
        // Whatever came out is a prefix of what was sealed.
        const sent = Buffer.concat(parts)
        const got = Buffer.concat(out)
        expect(sent.subarray(0, got.length).equals(got)).toBe(true)
        expect(opener.buffered).toBeLessThanOrEqual(2 + 65535)
      }),
      { numRuns: 500 },
    )
  })

  it('payload decoders and HandshakeState.readMessage: random input decodes or throws a SecureError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const b = Buffer.from(bytes)
        for (const fn of [
          () => decodeInitPayload(b),
          () => decodeReplyPayload(b),
          () => new HandshakeState({ protocolName: SECURE_PROTOCOL, initiator: false, prologue: SECURE_PROLOGUE, staticKey: serverKeys.privateKey, psks: [Buffer.alloc(32)] }).readMessage(b),
        ]) {
          try {
            fn()
          } catch (err) {
            expect(err).toBeInstanceOf(SecureError)
          }
        }
      }),
      { numRuns: 500 },
    )
  })
})
