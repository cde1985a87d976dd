/**
 * SessionPool (issue 7), event-driven (every wait has a deadline, no sleep
 * windows): three resumable sessions under load; one connection RST (its
 * session resumes, streams continue); one connection silently dead (the
 * monitor declares it dead after `deadBase + worst RTT` and it resumes); a
 * slow path that is not declared dead; the worst-RTT connection is the one
 * the worst-killer retires; a session that cannot be resumed is replaced.
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { SessionPool, SessionRegistry, type MuxStream, type PoolDeathInfo, type Session } from 'synmux'
import { Relay, nextEvent, pump, until } from './pool-relay.js'

async function echoServer(): Promise<{ port: number; registry: SessionRegistry; close: () => Promise<void> }> {
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
  return {
    port: (server.address() as net.AddressInfo).port,
    registry,
    close: async () => {
      await registry.close()
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

/** Opens `n` streams on the pool with echo pumps; resolves once each has seen an echo. */
async function load(pool: SessionPool, n: number): Promise<{ streams: MuxStream[]; pumps: Array<ReturnType<typeof pump>>; errors: Error[] }> {
  const errors: Error[] = []
  const streams: MuxStream[] = []
  for (let i = 0; i < n; i++) {
    const st = await pool.open()
    st.on('error', (e: Error) => errors.push(e))
    streams.push(st)
  }
  const pumps = streams.map(pump)
  await until(() => pumps.every((p) => p.received() > 0), 'every stream to echo')
  return { streams, pumps, errors }
}

/** Resolves once every pump has received at least `more` bytes beyond what it had. */
async function progress(pumps: Array<ReturnType<typeof pump>>, more: number, what: string): Promise<void> {
  const base = pumps.map((p) => p.received())
  await until(() => pumps.every((p, i) => p.received() >= base[i]! + more), what)
}

async function finish(pumps: Array<ReturnType<typeof pump>>, errors: Error[]): Promise<void> {
  const results = await Promise.all(pumps.map((p) => p.stop()))
  expect(errors).toEqual([])
  for (const r of results) {
    expect(r.sent).toBeGreaterThan(0)
    expect(r.received).toBe(r.sent)
    expect(r.receivedSha).toBe(r.sentSha)
  }
}

describe('SessionPool', () => {
  it('kill one of three connections under load (RST): its session resumes, streams continue; a silently dead one is declared dead by the monitor and resumes', async () => {
    const srv = await echoServer()
    // Slot 1 goes through a relay so its connection can go silent.
    const relay = await new Relay(srv.port).listen()
    const deadBase = 500
    const pool = new SessionPool({
      size: 3,
      connect: (i) => (i === 1 ? relay.connect() : net.connect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true })),
      session: { resumption: { reconnectDelay: { min: 10, max: 100 } } },
      monitorInterval: 50,
      deadBase,
      retireInterval: 0,
    })
    const deaths: Array<[number, PoolDeathInfo]> = []
    pool.on('dead', (i: number, info: PoolDeathInfo) => deaths.push([i, info]))
    pool.start()
    await until(() => pool.stats().up === 3, 'three sessions up')
    const { streams, pumps, errors } = await load(pool, 9)
    // New streams are spread over the members (least queued).
    expect(new Set(streams.map((s) => s.session)).size).toBeGreaterThanOrEqual(2)

    // RST slot 0's connection: its session resumes by itself.
    const resumed0 = nextEvent(pool, 'resumed', (i: number) => i === 0)
    ;(pool.sessions[0]!.duplex as net.Socket).resetAndDestroy()
    await resumed0
    await progress(pumps, 64 * 1024, 'every stream to progress after the RST')
    expect(pool.stats().members[0]!.resumes).toBe(1)

    // Slot 1's connection goes silent: only the monitor's PONG deadline can tell.
    await until(() => pool.stats().members[1]!.pongs >= 2, 'two PONGs on slot 1')
    const dead = nextEvent<[number, PoolDeathInfo]>(pool, 'dead')
    const resumed1 = nextEvent(pool, 'resumed', (i: number) => i === 1)
    expect(relay.silence()).toBe(1)
    const [index, info] = await dead
    expect(index).toBe(1)
    expect(info.worstRtt).toBeGreaterThan(0)
    expect(info.deadline).toBeCloseTo(deadBase + info.worstRtt, 6)
    expect(info.waited).toBeGreaterThan(info.deadline)
    await resumed1
    await progress(pumps, 64 * 1024, 'every stream to progress after the silent death')

    await finish(pumps, errors)
    const st = pool.stats()
    expect(st.size).toBe(3)
    expect(st.up).toBe(3)
    expect(st.deaths).toBe(1)
    expect(deaths.map(([i]) => i)).toEqual([1])
    expect(st.members[1]!.deaths).toBe(1)
    expect(st.members[1]!.resumes).toBe(1)
    expect(st.replaced).toBe(0)
    expect(st.members.every((m) => m.sessions === 1)).toBe(true)
    expect(relay.connections).toBe(2)
    await pool.close()
    await relay.close()
    await srv.close()
  }, 30_000)

  it('dead-connection rule: a path slower than deadBase is never declared dead while it answers; silenced, it is dead after deadBase + its worst RTT', async () => {
    const srv = await echoServer()
    const deadBase = 200
    const oneWay = 150 // RTT ≥ 300 ms: above deadBase, so only the RTT term keeps it alive
    const relay = await new Relay(srv.port, oneWay).listen()
    const pool = new SessionPool({ size: 1, connect: () => relay.connect(), monitorInterval: 20, deadBase, retireInterval: 0 })
    const deaths: PoolDeathInfo[] = []
    pool.on('dead', (_i: number, info: PoolDeathInfo) => deaths.push(info))
    pool.start()
    await until(() => pool.stats().up === 1, 'the session up')
    const { pumps, errors } = await load(pool, 1)
    // Several PINGs (the first one too), each answered after ≥ 300 ms: none is a death.
    await until(() => pool.stats().members[0]!.pongs >= 3, 'three PONGs over the slow path')
    expect(deaths).toEqual([])
    expect(pool.stats().members[0]!.worstRtt).toBeGreaterThanOrEqual(2 * oneWay)
    const dead = nextEvent<[number, PoolDeathInfo]>(pool, 'dead')
    const resumed = nextEvent(pool, 'resumed')
    relay.silence()
    const [, info] = await dead
    expect(info.worstRtt).toBeGreaterThanOrEqual(2 * oneWay)
    expect(info.deadline).toBeCloseTo(deadBase + info.worstRtt, 6)
    expect(info.waited).toBeGreaterThan(info.deadline)
    await resumed
    await progress(pumps, 64 * 1024, 'the stream to progress after the resume')
    await finish(pumps, errors)
    expect(deaths.length).toBe(1)
    expect(pool.stats().members[0]!.resumes).toBe(1)
    await pool.close()
    await relay.close()
    await srv.close()
  }, 30_000)

  it('dead-connection rule, defaults: no PONG for 1 s + the worst RTT (of the last 5 minutes)', async () => {
    const srv = await echoServer()
    const relay = await new Relay(srv.port).listen()
    const pool = new SessionPool({ size: 1, connect: () => relay.connect() })
    pool.start()
    await until(() => pool.stats().up === 1, 'the session up')
    await until(() => pool.stats().members[0]!.pongs >= 1, 'a PONG')
    const dead = nextEvent<[number, PoolDeathInfo]>(pool, 'dead')
    relay.silence()
    const [, info] = await dead
    expect(info.worstRtt).toBeGreaterThan(0)
    expect(info.deadline).toBeCloseTo(1000 + info.worstRtt, 6)
    expect(info.waited).toBeGreaterThan(1000)
    await nextEvent(pool, 'resumed')
    await pool.close()
    await relay.close()
    await srv.close()
  }, 20_000)

  it('the worst RTT is that of the last rttWindow ms: a slow spell is forgotten after it', async () => {
    const srv = await echoServer()
    const relay = await new Relay(srv.port, 100).listen()
    const rttWindow = 600
    const pool = new SessionPool({ size: 1, connect: () => relay.connect(), monitorInterval: 20, rttWindow, retireInterval: 0 })
    pool.start()
    await until(() => pool.stats().members[0]!.pongs >= 2, 'two PONGs over the slow path')
    expect(pool.stats().members[0]!.worstRtt).toBeGreaterThanOrEqual(200)
    const relayed = relay as unknown as { oneWayMs: number }
    relayed.oneWayMs = 0 // the path gets fast
    const t0 = Date.now()
    await until(() => pool.stats().members[0]!.worstRtt < 100, 'the slow samples to leave the window')
    // The last slow sample was taken at most one slow RTT (+ a monitor period) before t0.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(rttWindow - 250)
    expect(pool.stats().deaths).toBe(0)
    await pool.close()
    await relay.close()
    await srv.close()
  })

  it('a PONG that arrived while the event loop was blocked is not a death', async () => {
    // The server runs in another process, so it answers while we are blocked.
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/pool-server.mjs', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      const [line] = await nextEvent<[Buffer]>(child.stdout!, 'data')
      const { port } = JSON.parse(line.toString()) as { port: number }
      const deadBase = 100
      const pool = new SessionPool({ size: 1, connect: () => net.connect({ port, host: '127.0.0.1' }), monitorInterval: 10, deadBase, retireInterval: 0 })
      const deaths: PoolDeathInfo[] = []
      pool.on('dead', (_i: number, info: PoolDeathInfo) => deaths.push(info))
      pool.start()
      await until(() => pool.stats().members[0]!.pongs >= 2, 'two PONGs')
      // Block the event loop for 10 deadlines right after the monitor's next
      // PING went out: when the monitor runs again, the deadline has passed
      // but the PONG is waiting in the socket.
      const s = pool.sessions[0]!
      const ping = s.ping.bind(s)
      let blocked = false
      s.ping = () => {
        const p = ping()
        if (!blocked) {
          blocked = true
          // After the PING is written (next ticks), before the PONG is read (next poll phase).
          setImmediate(() => {
            const end = performance.now() + 10 * deadBase
            while (performance.now() < end);
          })
        }
        return p
      }
      const pongs = pool.stats().members[0]!.pongs
      await until(() => blocked && pool.stats().members[0]!.pongs >= pongs + 3, 'three more PONGs after the block')
      expect(deaths).toEqual([])
      expect(pool.stats().members[0]!.resumes).toBe(0)
      await pool.close()
    } finally {
      child.stdin!.end()
      child.kill()
    }
  })

  it('the worst-killer retires the connection with the worst recent RTT (a slower path), which resumes; streams continue', async () => {
    const srv = await echoServer()
    const oneWay = 200
    const relay = await new Relay(srv.port, oneWay).listen()
    const slow = 2
    const pool = new SessionPool({
      size: 3,
      connect: (i) => (i === slow ? relay.connect() : net.connect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true })),
      session: { resumption: { reconnectDelay: { min: 10, max: 100 } } },
      monitorInterval: 50,
      retireInterval: 1000,
    })
    const retired: Array<[number, number]> = []
    pool.on('retire', (i: number, rtt: number) => retired.push([i, rtt]))
    pool.start()
    await until(() => pool.stats().up === 3, 'three sessions up')
    const { pumps, errors } = await load(pool, 6)
    const resumed = nextEvent(pool, 'resumed', (i: number) => i === slow)
    const [index, worstRtt] = await nextEvent<[number, number]>(pool, 'retire')
    expect(index).toBe(slow)
    expect(worstRtt).toBeGreaterThanOrEqual(2 * oneWay)
    await resumed
    await progress(pumps, 64 * 1024, 'every stream to progress after the retirement')
    await finish(pumps, errors)
    const st = pool.stats()
    expect(st.retired).toBeGreaterThanOrEqual(1)
    expect(retired.every(([i]) => i === slow)).toBe(true)
    expect(st.deaths).toBe(0)
    expect(st.members[slow]!.resumes).toBeGreaterThanOrEqual(1)
    expect(st.up).toBe(3)
    await pool.close()
    await relay.close()
    await srv.close()
  }, 30_000)

  it('a session that cannot be resumed is replaced by a new one', async () => {
    const srv = await echoServer()
    const pool = new SessionPool({ size: 2, connect: () => net.connect({ port: srv.port, host: '127.0.0.1' }), session: { resumption: { reconnectDelay: { min: 10, max: 50 } } }, monitorInterval: 50, retireInterval: 0 })
    pool.start()
    await until(() => pool.stats().up === 2, 'two sessions up')
    const old = pool.sessions[0]!
    const st0 = old.open()
    const st0Err = nextEvent<[Error]>(st0, 'error')
    const down = nextEvent<[number, Error]>(pool, 'down')
    const up = nextEvent<[Session, number]>(pool, 'up', (_s: Session, i: number) => i === 0)
    // The server forgets the session: the resume is refused (unknown id), the slot gets a new session.
    for (const s of srv.registry.sessions()) if (s.id!.equals(old.id!)) s.destroy()
    const [downIndex, downErr] = await down
    expect(downIndex).toBe(0)
    expect((downErr as Error & { code?: string }).code).toBe('SYNMUX_SESSION_LOST')
    expect(((await st0Err)[0] as Error & { code?: string }).code).toBe('SYNMUX_SESSION_LOST')
    const [fresh] = await up
    expect(old.destroyed).toBe(true)
    expect(pool.sessions[0]).toBe(fresh)
    expect(fresh).not.toBe(old)
    const st = pool.stats()
    expect(st.replaced).toBe(1)
    expect(st.members[0]!.sessions).toBe(2)
    expect(st.up).toBe(2)
    await pool.close()
    await srv.close()
  }, 20_000)

  it('validates its options', () => {
    expect(() => new SessionPool({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new SessionPool({ connect: () => new net.Socket(), size: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new SessionPool({ connect: () => new net.Socket(), size: 65 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})
