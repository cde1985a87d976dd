// The 1-RTT property, deterministically: a lock-step link delivers each
// side's output as one flight and counts flights. A request/response over a
// new stream must complete in exactly two flights (one round trip), on a
// fresh session (HELLO + OPEN in the first flight) and on an established one.
import { describe, it, expect } from 'vitest'
import { Session, FrameType, FrameFlag, decodeHello, decodeFrame } from 'synmux'
import { LockstepLink } from './helpers.mjs'

function framesOf(buf, withHello) {
  let off = 0
  let hello = null
  if (withHello) {
    const h = decodeHello(buf)
    hello = h.hello
    off = h.size
  }
  const frames = []
  while (off < buf.length) {
    const r = decodeFrame(buf, off)
    frames.push(r.frame)
    off += r.size
  }
  return { hello, frames }
}

function setup(serverHandler, opts = {}) {
  const link = new LockstepLink()
  const client = new Session(link.a, { role: 'client', keepAliveInterval: 0, ...opts })
  const server = new Session(link.b, { role: 'server', keepAliveInterval: 0, acceptDelay: Infinity, ...opts })
  server.on('stream', serverHandler)
  return { link, client, server }
}

/** Runs flights until the opener has a response; returns the flight count at that moment. */
async function flightsUntil(link, done, max = 10) {
  for (let i = 0; i < max; i++) {
    await link.settle()
    if (done()) return link.flights
    link.deliver(i % 2 === 0 ? 'a' : 'b')
  }
  await link.settle()
  return done() ? link.flights : -1
}

describe('one round trip per request/response on a new stream', () => {
  it('fresh session: HELLO + OPEN(data) in flight 1, HELLO + OPENED(response) in flight 2', async () => {
    const { link, client, server } = setup((s) => s.once('data', (d) => s.write(`re:${d}`)))
    const st = client.open({ target: { host: 'svc.internal', port: 7 }, data: 'request' })
    let response = null
    let flightAtResponse = -1
    st.on('data', (d) => {
      response = d.toString()
      flightAtResponse = link.flights
    })
    const start = link.flights
    expect(await flightsUntil(link, () => response !== null)).toBe(start + 2)
    expect(flightAtResponse).toBe(2)
    expect(response).toBe('re:request')

    const f1 = framesOf(link.log[0].bytes, true)
    expect(link.log[0].from).toBe('a')
    expect(f1.hello.role).toBe('client')
    const open = f1.frames.find((f) => f.type === FrameType.OPEN)
    expect(open).toMatchObject({ streamId: 1, target: { kind: 'hostname', host: 'svc.internal', port: 7 } })
    expect(open.data.toString()).toBe('request')

    const f2 = framesOf(link.log[1].bytes, true)
    expect(f2.hello.role).toBe('server')
    const opened = f2.frames.find((f) => f.type === FrameType.OPENED)
    // Implicit accept: the first write rides in OPENED.
    expect(opened.data.toString()).toBe('re:request')
    expect(f2.frames.some((f) => f.type === FrameType.DATA)).toBe(false)
    expect(typeof st.openedIn).toBe('number')
    client.destroy()
    server.destroy()
  })

  it('established session: OPEN → OPENED+data, two flights; accept() then write also rides in OPENED', async () => {
    const { link, client, server } = setup((s, { target }) => {
      if (target.port === 2) {
        // Explicit accept, then a write in the same tick.
        s.accept()
        s.write('re:q2')
      } else {
        s.once('data', (d) => s.write(`re:${d}`))
      }
    })
    // Complete the handshake (flights until both sides are quiet).
    for (let i = 0; i < 6; i++) {
      await link.settle()
      link.deliver(i % 2 === 0 ? 'a' : 'b')
    }
    await link.settle()
    link.deliver('a')
    link.deliver('b')
    await link.settle()
    expect(link.pending('a').length + link.pending('b').length).toBe(0)

    for (const port of [1, 2]) {
      const st = client.open({ target: { host: '127.0.0.1', port }, data: `q${port}` })
      let response = null
      st.on('data', (d) => (response = d.toString()))
      const start = link.flights
      const at = await flightsUntil(link, () => response !== null)
      expect(at - start).toBe(2)
      expect(response).toBe(`re:q${port}`)
      const out = framesOf(link.log.at(-2).bytes, false).frames
      expect(out.map((f) => f.type)).toEqual([FrameType.OPEN])
      const back = framesOf(link.log.at(-1).bytes, false).frames.filter((f) => f.type !== FrameType.ACK)
      expect(back.map((f) => f.type)).toEqual([FrameType.OPENED])
      expect(back[0].data.toString()).toBe(`re:q${port}`)
    }
    client.destroy()
    server.destroy()
  })

  it('open + write + end in one tick is a single OPEN frame with FIN', async () => {
    const { link, client, server } = setup((s) => s.resume())
    const st = client.open({ data: 'a' })
    st.write('b')
    st.end('c')
    await link.settle()
    const { frames } = framesOf(link.deliver('a'), true)
    const mine = frames.filter((f) => f.streamId === 1)
    expect(mine.length).toBe(1)
    expect(mine[0].type).toBe(FrameType.OPEN)
    expect(mine[0].flags & FrameFlag.FIN).toBe(FrameFlag.FIN)
    expect(mine[0].data.toString()).toBe('abc')
    client.destroy()
    server.destroy()
  })

  it('the opener sends up to its credit before OPENED: 64 KiB before the HELLO, the initial window after', async () => {
    const { link, client, server } = setup(() => {})
    const big = Buffer.alloc(300 * 1024, 1)
    const st1 = client.open({ data: big })
    await link.settle()
    const f1 = framesOf(link.deliver('a'), true).frames
    const sent1 = f1.filter((f) => f.streamId === 1).reduce((n, f) => n + (f.data?.length ?? 0), 0)
    expect(sent1).toBe(65536) // pre-HELLO credit (PROTOCOL.md 6.3)
    expect(Math.max(...f1.filter((f) => f.streamId === 1).map((f) => f.data.length))).toBeLessThanOrEqual(16384) // pre-HELLO frame size
    await link.settle()
    link.deliver('b') // server HELLO: credit rises to the initial window (256 KiB)
    await link.settle()
    const f2 = framesOf(link.deliver('a'), false).frames
    const sent2 = f2.filter((f) => f.streamId === 1 && f.type === FrameType.DATA).reduce((n, f) => n + f.data.length, 0)
    expect(sent1 + sent2).toBe(262144)
    // A stream opened after the handshake sends its whole window in one flight.
    const st3 = client.open({ data: big })
    await link.settle()
    const f3 = framesOf(link.deliver('a'), false).frames
    expect(f3.filter((f) => f.streamId === 3).reduce((n, f) => n + f.data.length, 0)).toBe(262144)
    expect(st1.openedIn).toBe(null)
    expect(st3.openedIn).toBe(null)
    client.destroy()
    server.destroy()
  })
})
