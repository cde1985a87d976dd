import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import {
  encodeFrame,
  decodeFrame,
  FrameDecoder,
  encodeHello,
  decodeHello,
  FrameType,
  FrameFlag,
  ProtocolError,
  MuxError,
  frameTypeName,
  isSessionFrameType,
  MUX_FRAME_HEADER_SIZE,
} from 'synmux'

const id32 = Buffer.alloc(32, 7)
const baseHello = {
  kind: 1,
  role: 'client',
  capabilities: 0,
  sessionId: Buffer.alloc(32),
  initialWindow: 262144,
  maxFrameSize: 65536,
  maxStreams: 1024,
}

function hdr(length, type, flags, id) {
  const b = Buffer.alloc(9)
  b.writeUIntBE(length, 0, 3)
  b[3] = type
  b[4] = flags
  b.writeUInt32BE(id, 5)
  return b
}
function raw(type, flags, id, payload) {
  return Buffer.concat([hdr(payload.length, type, flags, id), payload])
}
function expectProtocolError(fn, code = 'SYNMUX_PROTOCOL_ERROR') {
  let err
  try {
    fn()
  } catch (e) {
    err = e
  }
  expect(err, 'expected a ProtocolError').toBeInstanceOf(ProtocolError)
  expect(err).toBeInstanceOf(MuxError)
  expect(err.code).toBe(code)
  expect(typeof err.wireCode).toBe('number')
  return err
}
const roundTrip = (f) => {
  const enc = encodeFrame(f)
  const r = decodeFrame(enc)
  expect(r.size).toBe(enc.length)
  return r.frame
}

describe('frame codec round trips', () => {
  it('OPEN with every target kind and data', () => {
    const targets = [
      [null, null],
      [{ host: 'example.com', port: 80 }, { kind: 'hostname', host: 'example.com', port: 80 }],
      [{ host: 'a'.repeat(255), port: 65535 }, { kind: 'hostname', host: 'a'.repeat(255), port: 65535 }],
      [{ host: '127.0.0.1', port: 0 }, { kind: 'ipv4', host: '127.0.0.1', port: 0 }],
      [{ host: '::1', port: 443 }, { kind: 'ipv6', host: '::1', port: 443 }],
      [{ host: '[2001:DB8:0:0:0:0:0:1]', port: 8080 }, { kind: 'ipv6', host: '2001:db8::1', port: 8080 }],
      [{ host: '::ffff:10.1.2.3', port: 1 }, { kind: 'ipv6', host: '::ffff:10.1.2.3', port: 1 }],
      [{ host: '1:2:3:4:5:6:7:8', port: 2 }, { kind: 'ipv6', host: '1:2:3:4:5:6:7:8', port: 2 }],
      [{ host: '1:0:0:2:0:0:0:3', port: 2 }, { kind: 'ipv6', host: '1:0:0:2::3', port: 2 }],
      [{ host: '127.0.0.1', port: 9, kind: 'hostname' }, { kind: 'hostname', host: '127.0.0.1', port: 9 }],
    ]
    for (const [input, expected] of targets) {
      for (const data of [Buffer.alloc(0), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) {
        const f = roundTrip({ type: FrameType.OPEN, flags: FrameFlag.FIN, streamId: 0xffffffff, target: input, data })
        expect(f.type).toBe(FrameType.OPEN)
        expect(f.flags).toBe(FrameFlag.FIN)
        expect(f.streamId).toBe(0xffffffff)
        expect(f.target).toEqual(expected)
        expect(Buffer.compare(f.data, data)).toBe(0)
      }
    }
  })

  it('every other frame type', () => {
    expect(roundTrip({ type: FrameType.OPENED, streamId: 2, data: Buffer.from('ok') })).toMatchObject({ type: 2, streamId: 2, flags: 0 })
    expect(roundTrip({ type: FrameType.REFUSED, streamId: 3, code: 0xffff, reason: 'nope' })).toEqual({ type: 3, flags: 0, streamId: 3, code: 0xffff, reason: 'nope' })
    expect(roundTrip({ type: FrameType.REFUSED, streamId: 3, code: 1 }).reason).toBe('')
    const d = roundTrip({ type: FrameType.DATA, streamId: 5, flags: FrameFlag.FIN, data: Buffer.alloc(0) })
    expect(d).toMatchObject({ type: 4, flags: 1, streamId: 5 })
    expect(d.data.length).toBe(0)
    expect(roundTrip({ type: FrameType.WINDOW, streamId: 5, increment: 2 ** 31 - 1 }).increment).toBe(2 ** 31 - 1)
    expect(roundTrip({ type: FrameType.WINDOW, streamId: 5, increment: 1 }).increment).toBe(1)
    expect(roundTrip({ type: FrameType.RST, streamId: 8, code: 3 })).toEqual({ type: 6, flags: 0, streamId: 8, code: 3 })
    expect(roundTrip({ type: FrameType.GOAWAY, lastStreamId: 0xfffffffe, code: 1, reason: 'bye' })).toEqual({ type: 7, flags: 0, streamId: 0, lastStreamId: 0xfffffffe, code: 1, reason: 'bye' })
    const opaque = Buffer.from('01234567')
    expect(roundTrip({ type: FrameType.PING, opaque }).opaque.equals(opaque)).toBe(true)
    expect(roundTrip({ type: FrameType.PONG, opaque }).opaque.equals(opaque)).toBe(true)
    expect(roundTrip({ type: FrameType.ACK, received: Number.MAX_SAFE_INTEGER }).received).toBe(Number.MAX_SAFE_INTEGER)
    expect(roundTrip({ type: FrameType.ACK, received: 0 }).received).toBe(0)
    expect(roundTrip({ type: FrameType.SEQ, offset: 2 ** 40 + 5 }).offset).toBe(2 ** 40 + 5)
    expect(roundTrip({ type: FrameType.AUTH, proof: id32 }).proof.equals(id32)).toBe(true)
  })

  it('reasons are truncated to 255 bytes at a character boundary', () => {
    const f = roundTrip({ type: FrameType.GOAWAY, lastStreamId: 0, code: 0, reason: 'é'.repeat(200) })
    expect(Buffer.byteLength(f.reason)).toBe(254)
    expect(f.reason).toBe('é'.repeat(127))
  })

  it('the header layout is length u24, type, flags, stream id u32', () => {
    const b = encodeFrame({ type: FrameType.DATA, flags: 1, streamId: 0x01020304, data: Buffer.from('xyz') })
    expect(b.toString('hex')).toBe('00000304010102030478797a')
    expect(MUX_FRAME_HEADER_SIZE).toBe(9)
  })

  it('names types and classifies session vs link frames', () => {
    expect(frameTypeName(FrameType.WINDOW)).toBe('WINDOW')
    expect(frameTypeName(0x99)).toBe('0x99')
    for (const t of [1, 2, 3, 4, 5, 6, 7]) expect(isSessionFrameType(t)).toBe(true)
    for (const t of [0x80, 0x81, 0x82, 0x83, 0x84]) expect(isSessionFrameType(t)).toBe(false)
  })

  it('property: any valid frame survives encode → decode', () => {
    const u32 = fc.integer({ min: 1, max: 0xffffffff })
    const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))
    const frameArb = fc.oneof(
      fc.record({ type: fc.constant(FrameType.DATA), flags: fc.constantFrom(0, 1), streamId: u32, data: bytes }),
      fc.record({ type: fc.constant(FrameType.OPENED), flags: fc.constantFrom(0, 1), streamId: u32, data: bytes }),
      fc.record({
        type: fc.constant(FrameType.OPEN),
        flags: fc.constantFrom(0, 1),
        streamId: u32,
        target: fc.oneof(
          fc.constant(null),
          fc.record({ host: fc.ipV4(), port: fc.integer({ min: 0, max: 65535 }) }),
          fc.record({ host: fc.ipV6(), port: fc.integer({ min: 0, max: 65535 }) }),
          fc.record({ host: fc.domain().filter((d) => d.length <= 255), port: fc.integer({ min: 0, max: 65535 }) }),
        ),
        data: bytes,
      }),
      fc.record({ type: fc.constant(FrameType.WINDOW), streamId: u32, increment: fc.integer({ min: 1, max: 2 ** 31 - 1 }) }),
      fc.record({ type: fc.constant(FrameType.RST), streamId: u32, code: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ type: fc.constant(FrameType.REFUSED), streamId: u32, code: fc.integer({ min: 0, max: 0xffff }), reason: fc.string({ maxLength: 60 }) }),
      fc.record({ type: fc.constant(FrameType.GOAWAY), lastStreamId: fc.integer({ min: 0, max: 0xffffffff }), code: fc.integer({ min: 0, max: 0xffff }), reason: fc.string({ maxLength: 60 }) }),
      fc.record({ type: fc.constant(FrameType.ACK), received: fc.maxSafeNat() }),
    )
    fc.assert(
      fc.property(frameArb, (f) => {
        const enc = encodeFrame(f)
        const { frame, size } = decodeFrame(enc)
        expect(size).toBe(enc.length)
        expect(encodeFrame(frame).equals(enc)).toBe(true)
      }),
      { numRuns: 300 },
    )
  })
})

describe('frame codec rejects malformed input', () => {
  const P = (type, flags, id, len) => raw(type, flags, id, Buffer.alloc(len))
  it('unknown types and reserved flags', () => {
    for (const t of [0x00, 0x08, 0x7f, 0x85, 0xff]) expectProtocolError(() => decodeFrame(P(t, 0, 1, 0)))
    expectProtocolError(() => decodeFrame(raw(FrameType.DATA, 0x02, 1, Buffer.alloc(0)))) // EOM without MESSAGES
    expectProtocolError(() => decodeFrame(raw(FrameType.OPEN, 0x02, 1, Buffer.from([0])))) // MESSAGES flag
    expectProtocolError(() => decodeFrame(raw(FrameType.DATA, 0x80, 1, Buffer.alloc(0))))
    expectProtocolError(() => decodeFrame(P(FrameType.WINDOW, 1, 1, 4)))
    expectProtocolError(() => decodeFrame(P(FrameType.PING, 1, 0, 8)))
  })
  it('stream id rules', () => {
    for (const t of [1, 2, 3, 4, 5, 6]) expectProtocolError(() => decodeFrame(P(t, 0, 0, t === 5 ? 4 : t === 6 || t === 3 ? 2 : 1)))
    for (const [t, n] of [[7, 6], [0x80, 8], [0x81, 8], [0x82, 8], [0x83, 32], [0x84, 8]]) expectProtocolError(() => decodeFrame(P(t, 0, 1, n)))
  })
  it('fixed and bounded payload lengths', () => {
    const bad = [
      [FrameType.OPEN, 1, 0],
      [FrameType.REFUSED, 1, 1],
      [FrameType.REFUSED, 1, 258],
      [FrameType.WINDOW, 1, 3],
      [FrameType.WINDOW, 1, 5],
      [FrameType.RST, 1, 1],
      [FrameType.RST, 1, 3],
      [FrameType.GOAWAY, 0, 5],
      [FrameType.GOAWAY, 0, 262],
      [FrameType.PING, 0, 7],
      [FrameType.PONG, 0, 9],
      [FrameType.ACK, 0, 4],
      [FrameType.SEQ, 0, 16],
      [FrameType.AUTH, 0, 31],
    ]
    for (const [t, id, n] of bad) expectProtocolError(() => decodeFrame(P(t, 0, id, n)))
  })
  it('WINDOW increments of 0 or above 2^31-1 are flow-control errors', () => {
    const w = (inc) => {
      const p = Buffer.alloc(4)
      p.writeUInt32BE(inc)
      return raw(FrameType.WINDOW, 0, 1, p)
    }
    expectProtocolError(() => decodeFrame(w(0)), 'SYNMUX_FLOW_CONTROL_ERROR')
    expectProtocolError(() => decodeFrame(w(2 ** 31)), 'SYNMUX_FLOW_CONTROL_ERROR')
    expect(decodeFrame(w(2 ** 31 - 1)).frame.increment).toBe(2 ** 31 - 1)
  })
  it('frames above the max frame size are rejected from the header alone', () => {
    const h = hdr(16385, FrameType.DATA, 0, 1)
    expectProtocolError(() => decodeFrame(h, 0, 16384), 'SYNMUX_FRAME_SIZE_ERROR')
    expect(decodeFrame(hdr(16384, FrameType.DATA, 0, 1), 0, 16384)).toBe(null) // needs payload
  })
  it('u64 values of 2^53 and above', () => {
    const p = Buffer.alloc(8)
    p.writeUInt32BE(0x200000, 0)
    expectProtocolError(() => decodeFrame(raw(FrameType.ACK, 0, 0, p)))
    expectProtocolError(() => decodeFrame(raw(FrameType.SEQ, 0, 0, p)))
  })
  it('malformed OPEN targets', () => {
    const cases = [
      [4], // unknown target type
      [0xff],
      [1], // host name: no length
      [1, 0, 0, 80], // zero-length name
      [1, 5, 0x61, 0x62], // truncated name
      [1, 1, 0x61, 0], // missing a port byte
      [2, 127, 0, 0], // truncated IPv4
      [2, 127, 0, 0, 1, 0], // IPv4 missing a port byte
      [3, ...new Array(17).fill(0)], // truncated IPv6
    ]
    for (const c of cases) expectProtocolError(() => decodeFrame(raw(FrameType.OPEN, 0, 1, Buffer.from(c))))
    // Non-printable host names decode (the session refuses them with BAD_TARGET).
    const f = decodeFrame(raw(FrameType.OPEN, 0, 1, Buffer.from([1, 2, 0x0a, 0x20, 0, 80]))).frame
    expect(f.target).toEqual({ kind: 'hostname', host: '\n ', port: 80 })
  })
  it('returns null for truncated frames', () => {
    const enc = encodeFrame({ type: FrameType.DATA, streamId: 1, data: Buffer.from('hello') })
    for (let i = 0; i < enc.length; i++) expect(decodeFrame(enc.subarray(0, i))).toBe(null)
  })
})

describe('encodeFrame validates its arguments', () => {
  const code = (fn) => {
    try {
      fn()
    } catch (e) {
      return [e.constructor.name, e.code]
    }
    return null
  }
  it('throws TypeError/RangeError with stable codes', () => {
    expect(code(() => encodeFrame(null))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(code(() => encodeFrame({ type: 0x42 }))).toEqual(['TypeError', 'ERR_INVALID_ARG_VALUE'])
    expect(code(() => encodeFrame({ type: FrameType.DATA, streamId: -1 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(code(() => encodeFrame({ type: FrameType.DATA, streamId: 2 ** 32 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(code(() => encodeFrame({ type: FrameType.DATA, streamId: 1, data: 'str' }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
    expect(code(() => encodeFrame({ type: FrameType.RST, streamId: 1, code: 70000 }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(code(() => encodeFrame({ type: FrameType.PING, opaque: Buffer.alloc(7) }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(code(() => encodeFrame({ type: FrameType.OPEN, streamId: 1, target: { host: 'x', port: 70000 } }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(code(() => encodeFrame({ type: FrameType.OPEN, streamId: 1, target: { host: 'a b', port: 1 } }))).toEqual(['TypeError', 'ERR_INVALID_ARG_VALUE'])
    expect(code(() => encodeFrame({ type: FrameType.OPEN, streamId: 1, target: { host: 'a'.repeat(256), port: 1 } }))).toEqual(['RangeError', 'ERR_OUT_OF_RANGE'])
    expect(code(() => encodeFrame({ type: FrameType.OPEN, streamId: 1, target: { host: '', port: 1 } }))).toEqual(['TypeError', 'ERR_INVALID_ARG_VALUE'])
    expect(code(() => encodeFrame({ type: FrameType.OPEN, streamId: 1, target: { host: 'éx', port: 1 } }))).toEqual(['TypeError', 'ERR_INVALID_ARG_VALUE'])
    expect(code(() => encodeFrame({ type: FrameType.OPEN, streamId: 1, target: { host: '::1', port: 1, kind: 'ipv4' } }))).toEqual(['TypeError', 'ERR_INVALID_ARG_VALUE'])
    expect(code(() => encodeFrame({ type: FrameType.OPEN, streamId: 1, target: 'example.com:80' }))).toEqual(['TypeError', 'ERR_INVALID_ARG_TYPE'])
  })
})

describe('HELLO codec', () => {
  it('round trips, with extensions (unknown ones kept)', () => {
    const h = { ...baseHello, role: 'server', kind: 1, capabilities: 0xffffffff, sessionId: id32, extensions: [[0x03, Buffer.alloc(8, 1)], [0xee, Buffer.from('future')]] }
    const enc = encodeHello(h)
    expect(enc.subarray(0, 6).toString('latin1')).toBe('SYNMUX')
    expect(enc[6]).toBe(1)
    expect(enc.length).toBe(10 + 49 + 11 + 9)
    const { hello, size } = decodeHello(Buffer.concat([enc, Buffer.from('trailing frames')]))
    expect(size).toBe(enc.length)
    expect(hello).toMatchObject({ version: 1, kind: 1, role: 'server', capabilities: 0xffffffff, initialWindow: 262144, maxFrameSize: 65536, maxStreams: 1024 })
    expect(hello.sessionId.equals(id32)).toBe(true)
    expect([...hello.extensions.keys()]).toEqual([0x03, 0xee])
    expect(hello.extensions.get(0xee).toString()).toBe('future')
  })
  it('needs the whole HELLO (null on every prefix)', () => {
    const enc = encodeHello(baseHello)
    for (let i = 0; i < enc.length; i++) expect(decodeHello(enc.subarray(0, i))).toBe(null)
  })
  it('rejects a wrong magic at its first wrong byte', () => {
    const enc = encodeHello(baseHello)
    for (let i = 0; i < 6; i++) {
      const bad = Buffer.from(enc.subarray(0, i + 1))
      bad[i] ^= 0x20
      expectProtocolError(() => decodeHello(bad), 'SYNMUX_BAD_MAGIC')
    }
    expectProtocolError(() => decodeHello(Buffer.from('GET / HTTP/1.1\r\n')), 'SYNMUX_BAD_MAGIC')
  })
  it('rejects other versions with the version number', () => {
    const enc = encodeHello({ ...baseHello, version: 2 })
    const err = expectProtocolError(() => decodeHello(enc.subarray(0, 7)), 'SYNMUX_UNSUPPORTED_VERSION')
    expect(err.version).toBe(2)
  })
  it('rejects every out-of-range field', () => {
    const enc = encodeHello(baseHello)
    const mut = (fn) => {
      const b = Buffer.from(enc)
      fn(b)
      return b
    }
    const cases = [
      mut((b) => b.writeUInt16BE(48, 8)),
      mut((b) => b.writeUInt16BE(1025, 8)),
      mut((b) => (b[7] = 0)),
      mut((b) => (b[7] = 4)),
      mut((b) => (b[10] = 0)),
      mut((b) => (b[10] = 3)),
      mut((b) => b.writeUInt32BE(65535, 47)),
      mut((b) => b.writeUInt32BE(2 ** 31, 47)),
      mut((b) => b.writeUInt32BE(16383, 51)),
      mut((b) => b.writeUInt32BE(2 ** 24, 51)),
    ]
    for (const c of cases) expectProtocolError(() => decodeHello(c), 'SYNMUX_HANDSHAKE_FAILED')
  })
  it('rejects malformed extensions', () => {
    const withExt = (extBytes) => {
      const enc = encodeHello(baseHello)
      const b = Buffer.concat([enc, extBytes])
      b.writeUInt16BE(49 + extBytes.length, 8)
      return b
    }
    expectProtocolError(() => decodeHello(withExt(Buffer.from([1, 0]))), 'SYNMUX_HANDSHAKE_FAILED') // truncated TLV header
    expectProtocolError(() => decodeHello(withExt(Buffer.from([1, 0, 5, 1]))), 'SYNMUX_HANDSHAKE_FAILED') // overrun
    expectProtocolError(() => decodeHello(withExt(Buffer.from([1, 0, 0, 1, 0, 0]))), 'SYNMUX_HANDSHAKE_FAILED') // duplicate
  })
  it('validates encodeHello arguments', () => {
    expect(() => encodeHello({ ...baseHello, role: 'peer' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => encodeHello({ ...baseHello, sessionId: Buffer.alloc(31) })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => encodeHello({ ...baseHello, initialWindow: 1000 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => encodeHello({ ...baseHello, extensions: [[1, Buffer.alloc(1000)]] })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})

describe('FrameDecoder', () => {
  const frames = [
    { type: FrameType.OPEN, streamId: 1, target: { host: 'example.com', port: 443 }, data: Buffer.from('hello') },
    { type: FrameType.DATA, streamId: 1, data: Buffer.alloc(40000, 1) },
    { type: FrameType.WINDOW, streamId: 2, increment: 1000 },
    { type: FrameType.DATA, streamId: 1, flags: 1, data: Buffer.alloc(0) },
    { type: FrameType.PING, opaque: Buffer.alloc(8, 9) },
    { type: FrameType.GOAWAY, lastStreamId: 2, code: 0, reason: 'done' },
    { type: FrameType.DATA, streamId: 3, data: Buffer.from('tail') },
  ]
  const stream = Buffer.concat(frames.map((f) => encodeFrame(f)))
  const reference = []
  for (let off = 0; off < stream.length; ) {
    const r = decodeFrame(stream, off)
    reference.push(r)
    off += r.size
  }
  const norm = (f) => {
    const g = { ...f }
    if (g.chunks) {
      g.data = Buffer.concat(g.chunks)
      delete g.chunks
    }
    return encodeFrame(g).toString('hex')
  }

  it('property: any chunking yields the same frames (copying and zero-copy modes)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 40 }), fc.boolean(), (cuts, zeroCopy) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b)
        const dec = new FrameDecoder({ zeroCopy })
        const got = []
        let prev = 0
        for (const p of [...points, stream.length]) {
          dec.push(stream.subarray(prev, p), (f, size) => got.push([f, size]))
          prev = p
        }
        expect(got.length).toBe(reference.length)
        got.forEach(([f, size], i) => {
          expect(size).toBe(reference[i].size)
          expect(norm(f)).toBe(norm(reference[i].frame))
        })
        expect(dec.bufferedBytes).toBe(0)
      }),
      { numRuns: 200 },
    )
  })

  it('checks the frame size from the header before buffering the payload (9th byte), then stays dead', () => {
    const dec = new FrameDecoder({ maxFrameSize: 16384 })
    const h = hdr(1 << 20, FrameType.DATA, 0, 1)
    dec.push(h.subarray(0, 8), () => {})
    expect(dec.bufferedBytes).toBe(8)
    expectProtocolError(() => dec.push(h.subarray(8), () => {}), 'SYNMUX_FRAME_SIZE_ERROR')
    expectProtocolError(() => dec.push(encodeFrame({ type: FrameType.PING, opaque: Buffer.alloc(8) }), () => {}), 'SYNMUX_FRAME_SIZE_ERROR')
  })

  it('stop() ignores the rest', () => {
    const dec = new FrameDecoder()
    const got = []
    dec.push(stream, (f) => {
      got.push(f)
      if (got.length === 2) dec.stop()
    })
    expect(got.length).toBe(2)
  })
})
