/**
 * SessionPool: three resumable sessions; one connection killed under load
 * (streams continue, the monitor brings it back); a silently dead
 * connection is detected by the PONG deadline; the worst-RTT killer runs.
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { SessionPool, SessionRegistry, type MuxStream, type Session } from 'synmux'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function echoServer(): Promise<{ port: number; registry: SessionRegistry; sockets: Set<net.Socket>; server: net.Server }> {
  const registry = new SessionRegistry({ resumption: {} })
  registry.on('session', (s: Session) => {
    s.on('error', () => {})
    s.on('stream', (st: MuxStream) => st.pipe(st))
  })
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    registry.accept(sock)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return { port: (server.address() as net.AddressInfo).port, registry, sockets, server }
}

/** Echo traffic on a stream until `stop()`; resolves with [sent, received] byte counts after the end. */
function pump(st: MuxStream): { stop: () => Promise<[number, number]> } {
  let sent = 0
  let received = 0
  let running = true
  const got = new Promise<void>((resolve, reject) => {
    st.on('data', (d: Buffer) => (received += d.length))
    st.once('end', () => resolve())
    st.once('error', reject)
  })
  const loop = (async () => {
    const block = Buffer.alloc(16 * 1024, 7)
    while (running) {
      sent += block.length
      if (!st.write(Buffer.from(block))) await new Promise((r) => st.once('drain', r))
    }
    st.end()
  })()
  return {
    stop: async () => {
      running = false
      await loop
      await got
      return [sent, received]
    },
  }
}

describe('SessionPool', () => {
  it('kill one of three connections under load: streams continue, the monitor detects a silent death, the worst-killer retires one', async () => {
    const srv = await echoServer()
    const pool = new SessionPool({
      size: 3,
      connect: () => net.connect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true }),
      session: { resumption: { reconnectDelay: { min: 10, max: 100 } } },
      monitorInterval: 50,
      deadBase: 200,
      retireInterval: 600,
    })
    const events: string[] = []
    pool.on('dead', (i) => events.push(`dead ${i}`))
    pool.on('retire', (i) => events.push(`retire ${i}`))
    pool.start()
    while (pool.stats().up < 3) await sleep(10)
    const streams: MuxStream[] = []
    for (let i = 0; i < 9; i++) streams.push(await pool.open())
    // Spread over the members.
    expect(new Set(streams.map((s) => s.session)).size).toBeGreaterThanOrEqual(2)
    const pumps = streams.map(pump)
    await sleep(200)
    // RST one connection.
    const victim = pool.sessions[0]!
    ;(victim.duplex as net.Socket).resetAndDestroy()
    await sleep(300)
    expect(pool.stats().members[0]!.resumes).toBeGreaterThanOrEqual(1)
    // A silent death: stop reading on the server side of member 1 (no PONG comes back).
    const member1 = pool.sessions[1]!
    const serverSide = [...srv.registry.sessions()].find((s) => s.id!.equals(member1.id!))!
    ;(serverSide.duplex as net.Socket).pause()
    await sleep(800)
    expect(events.some((e) => e === 'dead 1')).toBe(true)
    expect(pool.stats().members[1]!.resumes).toBeGreaterThanOrEqual(1)
    await sleep(500)
    expect(events.some((e) => e.startsWith('retire'))).toBe(true)
    const counts = await Promise.all(pumps.map((p) => p.stop()))
    for (const [sent, received] of counts) {
      expect(sent).toBeGreaterThan(0)
      expect(received).toBe(sent)
    }
    const st = pool.stats()
    expect(st.size).toBe(3)
    expect(st.up).toBe(3)
    expect(st.deaths).toBeGreaterThanOrEqual(1)
    expect(st.retired).toBeGreaterThanOrEqual(1)
    await pool.close()
    await srv.registry.close()
    srv.server.close()
  }, 30_000)

  it('a session that cannot be resumed is replaced by a new one', async () => {
    const srv = await echoServer()
    const pool = new SessionPool({ size: 2, connect: () => net.connect({ port: srv.port, host: '127.0.0.1' }), session: { resumption: { reconnectDelay: { min: 10, max: 50 } } }, monitorInterval: 50, retireInterval: 0 })
    pool.start()
    const st0 = await pool.open()
    st0.on('error', () => {})
    await sleep(100)
    const old = pool.sessions[0]!
    // The server forgets the session: the resume is refused, the slot gets a new session.
    for (const s of srv.registry.sessions()) if (s.id!.equals(old.id!)) s.destroy()
    await sleep(300)
    expect(old.destroyed).toBe(true)
    expect(pool.sessions[0]).not.toBe(old)
    const st = pool.stats()
    expect(st.replaced).toBeGreaterThanOrEqual(1)
    expect(st.members[0]!.sessions).toBe(2)
    expect(st.up).toBe(2)
    await pool.close()
    await srv.registry.close()
    srv.server.close()
  })
})
