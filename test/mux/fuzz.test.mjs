// Property tests: random and mutated byte streams fed into a session in
// random chunks. The session must always end in a clean protocol error (a
// MuxError with a known code, never a thrown exception) or deliver exactly
// the data of the frames it accepted, with bounded buffers.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { Duplex } from 'node:stream'
import { Session, MuxError, FrameType, encodeFrame, encodeHello, decodeFrame } from 'synmux'

const CLEAN_CODES = new Set([
  'SYNMUX_PROTOCOL_ERROR',
  'SYNMUX_FLOW_CONTROL_ERROR',
  'SYNMUX_FRAME_SIZE_ERROR',
  'SYNMUX_BAD_MAGIC',
  'SYNMUX_UNSUPPORTED_VERSION',
  'SYNMUX_HANDSHAKE_FAILED',
  'SYNMUX_RESOURCE_EXHAUSTED',
  'SYNMUX_REMOTE_GOAWAY',
])
const LIMITS = { maxStreams: 64, initialWindow: 65536, maxWindow: 65536, maxFrameSize: 16384, maxSessionBuffer: 1 << 20, acceptDelay: Infinity, keepAliveInterval: 0, handshakeTimeout: 0 }
const clientHello = encodeHello({ kind: 1, role: 'client', capabilities: 0, sessionId: Buffer.alloc(32), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 64 })
const serverHello = encodeHello({ kind: 1, role: 'server', capabilities: 0, sessionId: Buffer.alloc(32, 1), initialWindow: 65536, maxFrameSize: 16384, maxStreams: 64 })

const tick = () => new Promise((r) => setImmediate(r))

/** Feeds `bytes` in the given chunks into a fresh session; returns what the application saw. */
async function feed(bytes, cuts, role = 'server') {
  const d = new Duplex({ read() {}, write(_c, _e, cb) { cb() } })
  const session = new Session(d, { role, ...LIMITS })
  const seen = new Map()
  let maxBuffered = 0
  session.on('stream', (s) => {
    const rec = { chunks: [], ended: false, error: null }
    seen.set(s.id, rec)
    s.on('data', (c) => rec.chunks.push(c))
    s.on('end', () => (rec.ended = true))
    s.on('error', (e) => (rec.error = e))
  })
  await tick() // let the session's reader start (then pushes are processed synchronously)
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  let prev = 0
  for (const p of [...points, bytes.length]) {
    if (session.destroyed) break
    d.push(bytes.subarray(prev, p)) // a thrown exception would fail the property
    prev = p
    maxBuffered = Math.max(maxBuffered, session.stats().bufferedBytes)
    await tick()
  }
  for (let i = 0; i < 4; i++) await tick()
  const result = { destroyed: session.destroyed, error: session.error, seen, maxBuffered, stats: session.stats() }
  session.destroy()
  return result
}

function checkClean(r) {
  if (r.destroyed && r.error !== undefined) {
    expect(r.error).toBeInstanceOf(MuxError)
    expect(CLEAN_CODES.has(r.error.code), r.error.code).toBe(true)
  }
  // Bounded: never more than the limits allow.
  expect(r.maxBuffered).toBeLessThanOrEqual(LIMITS.maxStreams * LIMITS.initialWindow)
  expect(r.stats.controlQueueBytes).toBeLessThanOrEqual(1 << 20)
}

/** A valid client byte stream: HELLO, then frames that respect every rule. */
const scriptArb = fc
  .array(
    fc.record({
      op: fc.constantFrom('open', 'open', 'data', 'data', 'data', 'fin', 'rst', 'window', 'ping', 'ack'),
      data: fc.uint8Array({ maxLength: 700 }),
      pick: fc.nat(),
      host: fc.constantFrom(null, 'example.com', '10.0.0.1', '::1'),
    }),
    { maxLength: 40 },
  )
  .map((ops) => {
    const frames = []
    const streams = [] // { id, done, sent, data: Buffer[] }
    let nextId = 1
    for (const o of ops) {
      const live = streams.filter((s) => !s.done)
      const s = live.length ? live[o.pick % live.length] : null
      const data = Buffer.from(o.data)
      switch (o.op) {
        case 'open': {
          const st = { id: nextId, done: false, sent: data.length, data: [data], fin: false, rst: false }
          nextId += 2
          streams.push(st)
          frames.push(encodeFrame({ type: FrameType.OPEN, streamId: st.id, target: o.host ? { host: o.host, port: 80 } : null, data }))
          break
        }
        case 'data':
          if (s && s.sent + data.length <= 65536) {
            s.sent += data.length
            s.data.push(data)
            frames.push(encodeFrame({ type: FrameType.DATA, streamId: s.id, data }))
          }
          break
        case 'fin':
          if (s) {
            s.done = s.fin = true
            frames.push(encodeFrame({ type: FrameType.DATA, streamId: s.id, flags: 1 }))
          }
          break
        case 'rst':
          if (s) {
            s.done = s.rst = true
            frames.push(encodeFrame({ type: FrameType.RST, streamId: s.id, code: 0 }))
          }
          break
        case 'window':
          if (s) frames.push(encodeFrame({ type: FrameType.WINDOW, streamId: s.id, increment: 1 + (o.pick % 1000) }))
          break
        case 'ping':
          frames.push(encodeFrame({ type: FrameType.PING, opaque: Buffer.alloc(8, o.pick & 0xff) }))
          break
        case 'ack':
          frames.push(encodeFrame({ type: FrameType.ACK, received: 0 }))
          break
      }
    }
    return { bytes: Buffer.concat([clientHello, ...frames]), streams }
  })

/** What the frames in `bytes` (after the HELLO) carry per stream, decoded by the plain codec up to the first undecodable frame. */
function reference(bytes) {
  const per = new Map()
  let off = clientHello.length
  while (off < bytes.length) {
    let r
    try {
      r = decodeFrame(bytes, off, LIMITS.maxFrameSize)
    } catch {
      break
    }
    if (!r) break
    const f = r.frame
    if (f.type === FrameType.OPEN && !per.has(f.streamId)) per.set(f.streamId, { data: [f.data], closed: false })
    else if (f.type === FrameType.DATA && per.has(f.streamId) && !per.get(f.streamId).closed) per.get(f.streamId).data.push(f.data)
    else if (f.type === FrameType.RST && per.has(f.streamId)) per.get(f.streamId).closed = true
    if (f.type === FrameType.DATA && (f.flags & 1) && per.has(f.streamId)) per.get(f.streamId).closed = true
    off += r.size
  }
  return per
}

const mutationArb = fc.oneof(
  fc.constant({ kind: 'none' }),
  fc.record({ kind: fc.constant('flip'), at: fc.nat(), bits: fc.integer({ min: 1, max: 255 }), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('delete'), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('insert'), at: fc.nat(), junk: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant('truncate'), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate'), at: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }),
)

function mutate(bytes, m) {
  const n = bytes.length
  const at = (x) => x % (n + 1)
  switch (m.kind) {
    case 'none':
      return bytes
    case 'flip': {
      const b = Buffer.from(bytes)
      for (let i = 0; i < m.count; i++) b[(m.at + i * 7919) % n] ^= m.bits
      return b
    }
    case 'delete':
      return Buffer.concat([bytes.subarray(0, at(m.at)), bytes.subarray(Math.min(n, at(m.at) + m.len))])
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at(m.at)), Buffer.from(m.junk), bytes.subarray(at(m.at))])
    case 'truncate':
      return bytes.subarray(0, at(m.at))
    case 'duplicate': {
      const p = at(m.at)
      return Buffer.concat([bytes.subarray(0, p), bytes.subarray(p, p + m.len), bytes.subarray(p)])
    }
  }
}

describe('fuzz: the session never crashes, never lies, never grows without bound', () => {
  it('random bytes (raw, and after a valid HELLO) end in a clean error or are consumed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 3000 }),
        fc.constantFrom('raw', 'after-hello', 'to-client'),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (junk, where, cuts) => {
          const body = Buffer.from(junk)
          const bytes = where === 'raw' ? body : Buffer.concat([where === 'to-client' ? serverHello : clientHello, body])
          const r = await feed(bytes, cuts, where === 'to-client' ? 'client' : 'server')
          checkClean(r)
          if (where === 'raw' && bytes.length > 0 && bytes[0] !== 0x53) expect(r.error?.code).toBe('SYNMUX_BAD_MAGIC')
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('valid scripts deliver exactly their data; mutated ones end cleanly or deliver what their frames say', async () => {
    let mutatedSurvived = 0
    let errored = 0
    await fc.assert(
      fc.asyncProperty(scriptArb, mutationArb, fc.array(fc.nat(), { maxLength: 12 }), async (script, m, cuts) => {
        const bytes = mutate(script.bytes, m)
        const r = await feed(bytes, cuts)
        checkClean(r)
        if (m.kind === 'none' || bytes.equals(script.bytes)) {
          // Unmutated: no error, every stream got exactly its bytes.
          expect(r.error).toBe(undefined)
          expect(r.destroyed).toBe(false)
          for (const s of script.streams) {
            const seen = r.seen.get(s.id)
            expect(seen, `stream ${s.id}`).toBeDefined()
            const got = Buffer.concat(seen.chunks)
            if (s.rst) {
              expect(Buffer.concat(s.data).subarray(0, got.length).equals(got)).toBe(true)
              expect(seen.error?.code).toBe('SYNMUX_STREAM_RESET')
            } else {
              expect(got.equals(Buffer.concat(s.data))).toBe(true)
              expect(seen.ended).toBe(s.fin)
            }
          }
          return
        }
        if (r.error) errored++
        else mutatedSurvived++
        // Mutated: whatever reached the application is what the frames carried
        // (a prefix of it if the stream or the session failed part-way).
        const ref = reference(bytes)
        for (const [id, seen] of r.seen) {
          const want = Buffer.concat(ref.get(id)?.data ?? [])
          const got = Buffer.concat(seen.chunks)
          expect(want.subarray(0, got.length).equals(got), `stream ${id}`).toBe(true)
          if (!r.error && !seen.error && seen.ended) expect(got.equals(want)).toBe(true)
        }
      }),
      { numRuns: 1500 },
    )
    // Both outcomes occur, so both branches of the property were exercised.
    expect(errored).toBeGreaterThan(0)
    expect(mutatedSurvived).toBeGreaterThan(0)
  })

  it('a long stream of valid frames to a reader that never reads stays within the windows', async () => {
    const d = new Duplex({ read() {}, write(_c, _e, cb) { cb() } })
    const session = new Session(d, { role: 'server', ...LIMITS })
    session.on('stream', (s) => {
      s.pause()
      s.on('error', () => {})
    })
    await tick()
    d.push(clientHello)
    let id = 1
    let maxBuffered = 0
    // 64 streams each sent exactly their window, then 200 more OPENs.
    for (let i = 0; i < 64; i++, id += 2) {
      d.push(encodeFrame({ type: FrameType.OPEN, streamId: id, data: Buffer.alloc(16000) }))
      for (let k = 0; k < 3; k++) d.push(encodeFrame({ type: FrameType.DATA, streamId: id, data: Buffer.alloc(16000) }))
      d.push(encodeFrame({ type: FrameType.DATA, streamId: id, data: Buffer.alloc(65536 - 64000) }))
      maxBuffered = Math.max(maxBuffered, session.stats().bufferedBytes)
    }
    for (let i = 0; i < 200; i++, id += 2) d.push(encodeFrame({ type: FrameType.OPEN, streamId: id, data: Buffer.alloc(1000) })) // refused: max streams
    await tick()
    expect(session.destroyed).toBe(false)
    // maxSessionBuffer (1 MiB) is reached after 16 full windows: later OPENs are refused (BUSY)
    // and their data ignored, so the buffers stop growing right there.
    expect(maxBuffered).toBe(LIMITS.maxSessionBuffer)
    expect(session.stats().bufferedBytes).toBe(LIMITS.maxSessionBuffer)
    expect(session.streamCount).toBe(16)
    // One more byte on any stream is a flow-control error.
    d.push(encodeFrame({ type: FrameType.DATA, streamId: 1, data: Buffer.alloc(1) }))
    await tick()
    expect(session.error?.code).toBe('SYNMUX_FLOW_CONTROL_ERROR')
  })
})
