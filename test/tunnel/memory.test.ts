/**
 * What an authenticated (or not) hostile peer can make the real server
 * process hold (issue 12). Each test starts `synmux server`, attacks it with
 * a peer written here (test/tunnel/hostile.ts: it authenticates over the
 * secure channel, PROTOCOL.md 20, with an authorized client key — or, for
 * the case about the pre-AUTH hold, per PROTOCOL.md 16 against a server in
 * --insecure-plaintext mode — then misbehaves), samples the server's resident set size,
 * and asserts it stays under the bound the README states ("Memory: what one
 * peer can make the server hold"), computed from the same limits, plus a
 * fixed allowance for Node itself (heap growth before a collection, JIT
 * code, allocator slack). A well-behaved client keeps being served during
 * and after each attack.
 */
import net from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Capability, FrameType, MUX_DEFAULTS, RefuseCode, encodeFrame } from 'synmux'
import { close, listen } from '../helpers'
import { keyFile, secureKeys, stopAll, synmux, freePort, type Proc, type SecureKeys } from './cli'
import { HostilePeer, KiB, MiB, RssMonitor, fdCount, keyOf, rss, wellBehaved } from './hostile'

const D = MUX_DEFAULTS
/** Node's own growth during a flood, whatever the limits: young/old heap before a collection, code, allocator arenas. */
const ALLOWANCE = 48 * MiB
/** The largest chunk an onward socket hands over at once (libuv reads at most 64 KiB). */
const CHUNK = 64 * KiB
/** A socket's buffer in each direction (Node's stream high-water mark). */
const SOCK_HWM = new net.Socket().writableHighWaterMark
/** The secure channel's buffers per transport: its readable side's high-water mark, its writable side's, one record each way. */
const SECURE_CHANNEL = 256 * KiB + 64 * KiB + 2 * 64 * KiB
/** The HTTP gateway's limits as the README states them (defaults). */
const GW = { maxSessionRequests: 128, maxPipelined: 16, perRequest: 640 * KiB }

/**
 * The README's per-session bound ("Memory: what one peer can make the
 * server hold"), term by term, for what a case can fill: streams receiving
 * (`W0 + F + h` each) and sending (`2C + h` each), window growth and the
 * send queues' budget (`B` each), the control queue, the replay buffer,
 * gateway requests, and, striped, the lanes' terms; output and one partial
 * frame always. Before AUTH: the HELLO and the 256 KiB held.
 */
function formula(t: { receiving?: number; sending?: number; growth?: boolean; sendBudget?: boolean; replay?: boolean; gateway?: number; striped?: boolean; preAuth?: boolean }): number {
  let b = D.writeBatch + SOCK_HWM + D.maxFrameSize // O + h + F
  if (t.preAuth) return b + 1024 + 256 * KiB
  b += SECURE_CHANNEL // the secure channel of the session's transport (PROTOCOL.md 20.10)
  b += D.maxControlQueue // Q
  b += (t.receiving ?? 0) * (D.initialWindow + D.maxFrameSize + SOCK_HWM)
  b += (t.sending ?? 0) * (2 * CHUNK + SOCK_HWM)
  if (t.growth) b += D.maxSessionBuffer
  if (t.sendBudget) b += D.maxSessionBuffer
  if (t.replay) b += D.replayBuffer + 32 * KiB
  b += (t.gateway ?? 0) * GW.perRequest
  if (t.striped) b += D.replayBuffer + D.maxControlQueue + D.maxFrameSize // one lane
  return b
}

let keyPath: string
let key: Buffer
let keys: SecureKeys
let echo: net.Server
let echoPort: number

beforeAll(async () => {
  keyPath = keyFile()
  key = keyOf(keyPath)
  keys = secureKeys()
  echo = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {})
    s.pipe(s)
  })
  echoPort = await listen(echo, '127.0.0.1')
})

afterAll(async () => {
  await close(echo)
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
  await stopAll()
})

/**
 * Starts `synmux server` (the secure channel; `plaintext`: --insecure-plaintext with the pre-shared key) allowing
 * the echo target and `allow`; resolves once it serves (a well-behaved exchange done).
 */
async function startServer(allow: string[] = [], extra: string[] = [], plaintext = false): Promise<{ proc: Proc; port: number; baseline: number }> {
  const port = await freePort()
  const auth = plaintext ? ['--key', keyPath, '--insecure-plaintext'] : keys.server
  const proc = synmux(['server', '--listen', `127.0.0.1:${port}`, ...auth, '--allow', [`127.0.0.1:${echoPort}`, ...allow].join(','), '--log-level', 'info', ...extra])
  await proc.waitFor(/listening on/)
  serverIsPlaintext = plaintext
  // Warm up the paths a session takes, then take the baseline.
  await expectServes(port)
  await new Promise((r) => setTimeout(r, 300))
  return { proc, port, baseline: rss(proc.child.pid!) }
}

/** A target that sends to every connection as fast as it may (closed after the test). */
async function senderTarget(): Promise<{ port: number; connections: () => number }> {
  const blob = Buffer.alloc(CHUNK, 0x61)
  let n = 0
  const sender = net.createServer((s) => {
    n++
    s.on('error', () => {})
    const pump = () => {
      while (!s.destroyed && s.write(blob));
    }
    s.on('drain', pump)
    pump()
  })
  const port = await listen(sender, '127.0.0.1')
  cleanups.push(() => (sender.close(), new Promise((r) => setTimeout(r, 10))))
  return { port, connections: () => n }
}

/** Whether the server under test runs --insecure-plaintext. */
let serverIsPlaintext = false

/** A well-behaved client gets its bytes echoed through the server. */
async function expectServes(port: number): Promise<void> {
  const msg = Buffer.from(`hello ${Math.random()}`)
  expect((await wellBehaved(port, serverIsPlaintext ? key : keys, { host: '127.0.0.1', port: echoPort }, msg)).equals(msg)).toBe(true)
}

function report(name: string, baseline: number, max: number, bound: number): void {
  console.log(`[memory] ${name}: RSS baseline ${(baseline / MiB).toFixed(1)} MiB, max ${(max / MiB).toFixed(1)} MiB (+${((max - baseline) / MiB).toFixed(1)}), bound +${((bound - baseline) / MiB).toFixed(1)} MiB`)
}

/** Runs `attack` until it returns or `ms` pass, failing fast once the server's RSS passes `bound`. */
async function underBound(pid: number, bound: number, ms: number, attack: (stop: () => boolean) => Promise<void>): Promise<number> {
  const mon = new RssMonitor(pid, 25)
  const end = Date.now() + ms
  const stop = () => Date.now() > end || mon.max > bound
  try {
    await attack(stop)
  } finally {
    mon.stop()
  }
  return mon.max
}

describe('memory a hostile peer can make the server hold (real CLI)', () => {
  it('a peer that never reads, 512 streams from sending targets, window 2^31-1: send queues stay within maxSessionBuffer', async () => {
    const { port: senderPort, connections } = await senderTarget()
    const { proc, port, baseline } = await startServer([`127.0.0.1:${senderPort}`], ['--max-connects', '1024'])
    const pid = proc.child.pid!
    const peer = await HostilePeer.connect({ port, secure: keys, initialWindow: 2 ** 31 - 1 })
    cleanups.push(() => peer.destroy())
    peer.stopReading()
    const STREAMS = 512
    // The peer sends nothing: no receive buffers fill. Send side: B + streams × (one write past it + the onward socket's read buffer).
    const bound = baseline + ALLOWANCE + formula({ sending: STREAMS, sendBudget: true })
    const max = await underBound(pid, bound, 10_000, async (stop) => {
      // In waves the server's connect and pending limits let through.
      for (let opened = 0; opened < STREAMS && !stop(); ) {
        const n = Math.min(128, STREAMS - opened)
        const frames: Buffer[] = []
        for (let i = 0; i < n; i++) frames.push(encodeOpen(peer.nextId(), '127.0.0.1', senderPort))
        await peer.write(Buffer.concat(frames))
        opened += n
        await sleep(250)
      }
      // Midway: someone else is still served.
      await expectServes(port)
      while (!stop()) await sleep(100)
    })
    report('never reads', baseline, max, bound)
    expect(connections()).toBeGreaterThan(STREAMS / 2)
    expect(proc.child.exitCode).toBe(null)
    expect(max).toBeLessThanOrEqual(bound)
    await expectServes(port)
  })

  it('replay amplification: a RESUME peer that never ACKs, one small reply per flush: what the replay buffer pins stays within replayBuffer', async () => {
    const { proc, port, baseline } = await startServer()
    const pid = proc.child.pid!
    // RESUME: the server keeps every session frame it sends until ACKed; this peer never ACKs.
    const peer = await HostilePeer.connect({ port, secure: keys, capabilities: Capability.RESUME, initialWindow: 2 ** 31 - 1 })
    cleanups.push(() => peer.destroy())
    // The replay buffer (R + two 16 KiB slabs) and 8 streams each way carrying 100-byte messages (no window grows: a
    // window doubles only when a whole one is read within two RTTs, and these carry 100 bytes per RTT).
    const bound = baseline + ALLOWANCE + formula({ receiving: 8, sending: 8, replay: true })
    // Each write of 100 bytes comes back from the echo target as one 109-byte DATA frame, in a flush of its own.
    const msg = Buffer.alloc(100, 0x62)
    let replies = 0
    let full = false
    const max = await underBound(pid, bound, 45_000, async (stop) => { // until the replay buffer is full (a guard of 45 s under heavy load)
      const lockstep = async (id: number) => {
        await peer.write(encodeOpen(id, '127.0.0.1', echoPort))
        for (let sent = msg.length; !stop() && !full; sent += msg.length) {
          await peer.write(encodeFrame({ type: FrameType.DATA, streamId: id, data: msg }))
          for (;;) {
            try {
              await peer.received(id, sent, 1000)
              break
            } catch {
              // No answer: the replay buffer is full (no more session frames until an ACK), or the machine is slow.
              if (full || replies * (msg.length + 9) > D.replayBuffer * 0.99) return void (full = true)
              if (stop()) return
            }
          }
          replies++
        }
      }
      await Promise.all(Array.from({ length: 8 }, () => lockstep(peer.nextId())))
      await expectServes(port) // while the attacker's session is stuck with a full replay buffer
    })
    report(`replay (${replies} replies of ${msg.length + 9} bytes, replay buffer full: ${full})`, baseline, max, bound)
    expect(proc.child.exitCode).toBe(null)
    expect(max).toBeLessThanOrEqual(bound)
    // Enough replies to fill the replay buffer: then the server stopped sending.
    expect(full).toBe(true)
    await expectServes(port)
  }, 60_000)

  it('HTTP gateway, pipelining flood to an origin that never answers: requests in progress stay within the per-stream and per-session limits', async () => {
    // An origin that accepts connections and reads, and never answers.
    const silent = net.createServer((s) => {
      s.on('error', () => {})
      s.resume()
    })
    const silentPort = await listen(silent, '127.0.0.1')
    cleanups.push(() => (silent.close(), new Promise((r) => setTimeout(r, 10))))
    const { proc, port, baseline } = await startServer([`127.0.0.1:${silentPort}`], ['--stats', '--stats-interval', '1'])
    const pid = proc.child.pid!
    const peer = await HostilePeer.connect({ port, secure: keys })
    cleanups.push(() => peer.destroy())
    const STREAMS = 16
    // The gateway streams' receive buffers (their windows; no growth: they are not read) and G requests in progress.
    const bound = baseline + ALLOWANCE + formula({ receiving: STREAMS, gateway: GW.maxSessionRequests + 4 * GW.maxPipelined })
    const request = Buffer.from(`GET http://127.0.0.1:${silentPort}/ HTTP/1.1\r\nHost: 127.0.0.1:${silentPort}\r\n\r\n`)
    // 8 pipelined requests per frame (a stream on which far more than the gateway reads arrive at once is reset instead).
    const block = Buffer.concat(Array.from({ length: 8 }, () => request))
    let sentBytes = 0
    let stalled = 0
    let busy: number | null = null
    const max = await underBound(pid, bound, 10_000, async (stop) => {
      const flood = async (id: number) => {
        await peer.write(encodeFrame({ type: FrameType.OPEN, streamId: id, target: { host: 'gateway.synmux.invalid', port: 80 }, data: block }))
        let used = block.length
        while (!stop() && !peer.ended.has(id)) {
          try {
            await peer.creditAbove(id, used + block.length, 1000)
          } catch {
            stalled++ // flow control holds us back: the gateway stopped reading this stream
            return
          }
          await peer.write(encodeFrame({ type: FrameType.DATA, streamId: id, data: block }))
          used += block.length
          sentBytes += block.length
        }
      }
      await Promise.all(Array.from({ length: STREAMS }, () => flood(peer.nextId())))
      await expectServes(port)
      // The session is at its limit: a new gateway stream of it is refused BUSY (its HTTP proxy answers 503).
      const id = peer.nextId()
      const refused = peer.next((f) => f.type === FrameType.REFUSED && f.streamId === id)
      await peer.write(encodeFrame({ type: FrameType.OPEN, streamId: id, target: { host: 'gateway.synmux.invalid', port: 80 }, data: request }))
      busy = await refused.then((f) => (f as { code: number }).code, () => null)
      await sleep(1100) // one more --stats line
    })
    // The gateway's own count (--stats): at most the session limit, plus what arrived at once on one stream past it.
    const active = Math.max(...proc.log.map((l) => /http \d+ req \((\d+) active/.exec(l)).filter((m) => m !== null).map((m) => Number(m![1])))
    report(`gateway pipelining (${Math.round(sentBytes / request.length)} requests sent, at most ${active} in progress, ${stalled}/${STREAMS} streams held back)`, baseline, max, bound)
    expect(proc.child.exitCode).toBe(null)
    expect(max).toBeLessThanOrEqual(bound)
    expect(active).toBeGreaterThanOrEqual(GW.maxSessionRequests)
    expect(active).toBeLessThanOrEqual(GW.maxSessionRequests + 4 * GW.maxPipelined)
    expect(stalled).toBe(STREAMS)
    expect(busy).toBe(RefuseCode.BUSY)
    await expectServes(port)
  })

  it('striped session, PING flood without reading: PONGs owed by the lane layer stay within the control-queue cap; the lane is freed', async () => {
    const { proc, port, baseline } = await startServer()
    const pid = proc.child.pid!
    const fds = fdCount(pid)
    // STRIPE (with RESUME): the lane layer answers PINGs on their lane (PROTOCOL.md 14.4).
    const peer = await HostilePeer.connect({ port, secure: keys, capabilities: Capability.RESUME | Capability.STRIPE })
    cleanups.push(() => peer.destroy())
    await peer.next((f) => f.type === FrameType.PING) // the server's first PING: authenticated, striped
    peer.stopReading()
    // No stream: the control queue, and the lanes' terms (PONGs owed, reorder buffer, a partial frame) of its one lane.
    const bound = baseline + ALLOWANCE + formula({ striped: true })
    const pings = Buffer.concat(Array.from({ length: 4096 }, (_, i) => encodeFrame({ type: FrameType.PING, opaque: Buffer.from([0, 0, 0, 0, 0, 0, i >> 8, i & 255]) })))
    let sent = 0
    const closedLine = proc.waitFor(/closed: SYNMUX_RESOURCE_EXHAUSTED/, 20_000)
    const max = await underBound(pid, bound, 10_000, async (stop) => {
      let cut = false
      void closedLine.then(() => (cut = true), () => {})
      while (!stop() && !cut && !peer.closed) {
        await Promise.race([peer.write(pings), sleep(1000)])
        sent += 4096
      }
      await expectServes(port)
    })
    report(`striped PING flood (${sent} PINGs)`, baseline, max, bound)
    expect(proc.child.exitCode).toBe(null)
    expect(max).toBeLessThanOrEqual(bound)
    // The server cut the session off and let go of the lane (its socket, and what was queued on it).
    await closedLine
    await waitUntil(() => fdCount(pid) <= fds, 10_000)
    await expectServes(port)
  })

  it('striped session: a lane whose peer half-closes without reading what is queued on it is destroyed (its memory freed) within 5 s', async () => {
    const { port: senderPort } = await senderTarget()
    const { proc, port } = await startServer([`127.0.0.1:${senderPort}`])
    const pid = proc.child.pid!
    const peer = await HostilePeer.connect({ port, secure: keys, capabilities: Capability.RESUME | Capability.STRIPE, initialWindow: 2 ** 31 - 1 })
    cleanups.push(() => peer.destroy())
    await peer.next((f) => f.type === FrameType.PING)
    peer.stopReading()
    // A stream from a target that sends fills the lane (the kernel's buffers, then the server's own).
    await peer.write(encodeOpen(peer.nextId(), '127.0.0.1', senderPort))
    await sleep(1500)
    const fds = fdCount(pid)
    peer.socket.end() // FIN, and still never read
    // The lane ends with bytes queued for a peer that does not read them: destroyed after its linger, not kept.
    await waitUntil(() => fdCount(pid) < fds, 9000)
    expect(proc.child.exitCode).toBe(null)
    await expectServes(port)
  })

  it('striped session, unauthenticated PING flood (--insecure-plaintext: PROTOCOL.md 16): nothing is answered before AUTH; the connection is cut at the pre-AUTH hold limit', async () => {
    const { proc, port, baseline } = await startServer([], [], true)
    const pid = proc.child.pid!
    const peer = await HostilePeer.connect({ port, key, capabilities: Capability.RESUME | Capability.STRIPE, authenticate: false })
    cleanups.push(() => peer.destroy())
    // Before AUTH: the HELLO and at most 256 KiB of frames held (PROTOCOL.md 16.4).
    const bound = baseline + ALLOWANCE + formula({ preAuth: true })
    const pings = Buffer.concat(Array.from({ length: 1024 }, (_, i) => encodeFrame({ type: FrameType.PING, opaque: Buffer.from([0, 0, 0, 0, 0, 0, i >> 8, i & 255]) })))
    const max = await underBound(pid, bound, 10_000, async (stop) => {
      while (!stop() && !peer.closed) {
        await Promise.race([peer.write(pings), sleep(1000)])
        await sleep(1)
      }
    })
    report('unauthenticated striped PING flood', baseline, max, bound)
    expect(peer.counts.get(FrameType.PONG) ?? 0).toBe(0)
    expect(peer.closed).toBe(true)
    expect(proc.child.exitCode).toBe(null)
    expect(max).toBeLessThanOrEqual(bound)
    await expectServes(port)
  })
})

async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`)
    await sleep(50)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** An OPEN frame for stream `id` to host:port, with optional data. */
function encodeOpen(id: number, host: string, port: number, data?: Buffer): Buffer {
  return encodeFrame({ type: FrameType.OPEN, streamId: id, target: { host, port }, ...(data ? { data } : {}) })
}
