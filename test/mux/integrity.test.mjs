// Integrity: 1,000 concurrent streams opened from both sides over one real
// loopback TCP connection, each carrying independent random data with random
// chunking in both directions; every byte stream is checked by sha256.
import { describe, it, expect } from 'vitest'
import crypto from 'node:crypto'
import { sessionPair, prng, randomBytes, writeChunked, sha256 } from './helpers.mjs'

const SEED = Number(process.env.SYNMUX_SEED ?? 0x5eed)

/** Deterministic content for (stream key, direction): both ends can compute it. */
function content(key, dir) {
  const rand = prng(crypto.createHash('sha256').update(`${SEED}:${key}:${dir}`).digest().readUInt32BE(0))
  const r = rand()
  // Mostly small, some empty, some large.
  const size = r < 0.05 ? 0 : r < 0.85 ? Math.floor(rand() * 16_384) : r < 0.98 ? Math.floor(rand() * 200_000) : 600_000 + Math.floor(rand() * 600_000)
  return { data: randomBytes(rand, size), rand }
}

function digestOf(stream) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256')
    let n = 0
    stream.on('data', (d) => {
      h.update(d)
      n += d.length
    })
    stream.once('end', () => resolve({ hash: h.digest('hex'), n }))
    stream.once('error', reject)
  })
}

function maybePause(stream, rand, pauses) {
  if (pauses && rand() < 0.3) {
    stream.pause()
    setTimeout(() => stream.resume(), Math.floor(rand() * 30))
  }
}

/** Acceptor side: sends its own content (before, after, or while reading the opener's), checks what it got. */
function serve(stream, key, pauses) {
  const rand = prng(key + 1)
  const mine = content(key, 'accept')
  const expected = content(key, 'open').data
  const got = digestOf(stream)
  maybePause(stream, rand, pauses)
  const send = () => writeChunked(stream, mine.data, mine.rand)
  const mode = key % 3
  if (mode === 0) send()
  else if (mode === 1) got.then(send, () => {})
  else setTimeout(send, Math.floor(rand() * 10))
  return got.then((r) => ({ key, dir: 'opener→acceptor', ok: r.hash === sha256(expected), n: r.n, want: expected.length }))
}

/** Opener side: a random prefix rides in OPEN, the rest follows in random chunks. */
function open(session, key, pauses) {
  const rand = prng(key + 7)
  const mine = content(key, 'open')
  const expected = content(key, 'accept').data
  const p = Math.min(mine.data.length, Math.floor(rand() * 4000))
  const st = session.open({ target: { host: `k${key}.test`, port: 1 }, data: mine.data.subarray(0, p) })
  const got = digestOf(st)
  maybePause(st, rand, pauses)
  writeChunked(st, mine.data.subarray(p), mine.rand)
  return got.then((r) => ({ key, dir: 'acceptor→opener', ok: r.hash === sha256(expected), n: r.n, want: expected.length }))
}

async function run({ streams, fromServer, clientOpts = {}, serverOpts = {}, pauses = false }) {
  const { client, server } = await sessionPair({ maxStreams: 2000, ...clientOpts }, { maxStreams: 2000, ...serverOpts })
  const served = []
  const onStream = (stream, { target }) => served.push(serve(stream, Number(target.host.slice(1, -5)), pauses))
  server.on('stream', onStream)
  client.on('stream', onStream)
  const opened = []
  for (let key = 0; key < streams; key++) opened.push(open(key < streams - fromServer ? client : server, key, pauses))
  const a = await Promise.all(opened)
  const b = await Promise.all(served)
  const results = [...a, ...b]
  const bad = results.filter((r) => !r.ok)
  const total = results.reduce((n, r) => n + r.n, 0)
  // All streams are closed on both sides once both FINs crossed.
  await client.ping()
  const counts = [client.streamCount, server.streamCount]
  const stats = [client.stats(), server.stats()]
  await client.close()
  return { results, bad, total, counts, stats }
}

describe('integrity under concurrency', () => {
  it('1,000 concurrent streams (700 client-opened, 300 server-opened), random sizes and chunking, both directions', async () => {
    const r = await run({ streams: 1000, fromServer: 300 })
    expect(r.results.length).toBe(2000)
    expect(r.bad).toEqual([])
    if (process.env.DEBUG_TOTAL) console.log("total", r.total, r.stats)
    expect(r.total).toBeGreaterThan(20_000_000)
    expect(r.counts).toEqual([0, 0])
    expect(r.stats[0].bufferedBytes).toBe(0)
    expect(r.stats[1].bufferedBytes).toBe(0)
  })

  it('the same with minimum windows and frames, and readers that pause at random', async () => {
    const small = { initialWindow: 65536, maxWindow: 65536, maxFrameSize: 16384, streamHighWaterMark: 4096 }
    const r = await run({ streams: 1000, fromServer: 500, clientOpts: small, serverOpts: small, pauses: true })
    expect(r.results.length).toBe(2000)
    expect(r.bad).toEqual([])
    expect(r.counts).toEqual([0, 0])
  })
})
