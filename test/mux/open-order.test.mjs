// The opener's stream emits 'open' before the first 'data' (or 'message')
// of an OPENED that carries bytes, and before 'end' when it carries FIN:
// `stream.on('open')` / `stream.on('data')` see the stream established
// before its first response byte (the README's example prints "opened in"
// first).
import { afterEach, describe, expect, it } from 'vitest'
import { once, sessionPair } from './helpers.mjs'

const cleanup = []
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn()
})

async function pair(opts = {}) {
  const p = await sessionPair(opts, opts)
  cleanup.push(() => {
    p.client.destroy()
    p.server.destroy()
  })
  return p
}

/** Records the order of the stream's events. */
function record(stream, events) {
  const log = []
  for (const e of events) stream.on(e, (x) => log.push(e === 'open' ? `open:${typeof stream.openedIn}` : e === 'end' ? 'end' : `${e}:${x}`))
  return log
}

describe("MuxStream 'open' comes before the OPENED's bytes", () => {
  it('byte stream: OPENED with data and FIN gives open, data, end', async () => {
    const { client, server } = await pair()
    server.on('stream', (stream) => stream.once('data', (d) => stream.end(Buffer.from(d).reverse())))
    const stream = client.open({ data: 'hello', end: true })
    const log = record(stream, ['open', 'data', 'end'])
    await once(stream, 'end')
    expect(log).toEqual(['open:number', 'data:olleh', 'end'])
  })

  it('message stream: OPENED with a message gives open, then the message', async () => {
    const { client, server } = await pair()
    server.on('stream', (stream) => stream.once('message', (m) => stream.end(Buffer.from(`got ${m.length}`))))
    const stream = client.open({ messages: true, data: 'abc' })
    stream.end()
    const log = record(stream, ['open', 'data', 'end'])
    await once(stream, 'end')
    expect(log).toEqual(['open:number', 'data:got 3', 'end'])
  })

  it("an 'open' listener that destroys the stream gets no data and the session stays usable", async () => {
    const { client, server } = await pair()
    server.on('stream', (stream) => {
      stream.on('error', () => {})
      stream.once('data', (d) => stream.write(d))
    })
    const first = client.open({ data: 'x' })
    const got = []
    first.on('data', (d) => got.push(d))
    first.on('error', () => {})
    first.once('open', () => first.destroy())
    await once(first, 'close')
    expect(got).toEqual([])
    const second = client.open({ data: 'again' })
    const [d] = await once(second, 'data')
    expect(String(d)).toBe('again')
    expect(client.stats().streams).toBe(1)
  })
})
