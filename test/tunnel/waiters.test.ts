/**
 * Many `open()` calls waiting for a session (the server is not up yet, or
 * the client closes first): each waiter was one 'up' and one 'close'
 * listener on the public emitter, so 11 of them printed Node's
 * MaxListenersExceededWarning (seen with `synmux client --http-proxy` and
 * ab -c 50 while the server was down). Now they wait in a list: no
 * warning, every waiter goes on when a session comes up, and every one
 * fails with SYNMUX_NO_SESSION when the client closes. Real sockets on
 * loopback; the server starts late on a port picked in advance.
 */
import net from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AuthorizedKeys, generateKeyPair, SessionPool, SessionRegistry, TunnelClient, TunnelServer, type MuxStream, type Session } from 'synmux'
import { freePort } from './cli'

const WAITERS = 40
let warnings: Error[] = []
const onWarning = (w: Error): void => {
  warnings.push(w)
}
beforeEach(() => {
  warnings = []
  process.on('warning', onWarning)
})
afterEach(() => {
  process.off('warning', onWarning)
})

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function echo(): Promise<{ port: number; close: () => Promise<void> }> {
  const s = net.createServer((c) => {
    c.on('error', () => {})
    c.pipe(c)
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return { port: (s.address() as net.AddressInfo).port, close: () => new Promise((r) => s.close(() => r())) }
}

/** A started TunnelClient whose server is not up yet (its first attempts are refused): opens made now wait for a session. */
async function waitingClient(): Promise<{ client: TunnelClient; port: number; sk: ReturnType<typeof generateKeyPair>; ck: ReturnType<typeof generateKeyPair> }> {
  const sk = generateKeyPair()
  const ck = generateKeyPair()
  const port = await freePort()
  const client = new TunnelClient({ server: { host: '127.0.0.1', port }, secure: { staticKey: ck.privateKey, serverKey: sk.publicKey }, reconnect: { min: 50, max: 100 }, sessionWait: 20_000 })
  client.on('error', () => {})
  client.start()
  await sleep(150)
  return { client, port, sk, ck }
}

describe('open() calls waiting for a session', () => {
  it('TunnelClient: 40 waiters, no listener warning; all go on once the server comes up', async () => {
    const target = await echo()
    const { client, port, sk, ck } = await waitingClient()
    const opens = Array.from({ length: WAITERS }, (_, i) => client.open({ host: '127.0.0.1', port: target.port }, Buffer.from(`hello ${i}\n`)))
    await sleep(100)
    const server = new TunnelServer({ secure: { staticKey: sk.privateKey, authorizedKeys: new AuthorizedKeys([[ck.publicKey, 'me']]) }, allow: [`127.0.0.1:${target.port}`] })
    await server.listen(port, '127.0.0.1')
    const streams = await Promise.all(opens)
    const echoes = await Promise.all(
      streams.map(
        (st: MuxStream, i) =>
          new Promise<string>((resolve, reject) => {
            let got = ''
            st.on('data', (d: Buffer) => {
              got += d
              if (got.endsWith('\n')) resolve(got)
            })
            st.on('error', reject)
          }),
      ),
    )
    expect(echoes).toEqual(Array.from({ length: WAITERS }, (_, i) => `hello ${i}\n`))
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
    expect(client.listenerCount('up') + client.listenerCount('close')).toBe(0)
    for (const st of streams) st.destroy()
    await client.destroy()
    await server.close()
    await target.close()
  })

  it('TunnelClient: 40 waiters fail with SYNMUX_NO_SESSION when the client closes, without a warning', async () => {
    const { client } = await waitingClient()
    const opens = Array.from({ length: WAITERS }, () => client.open({ host: '127.0.0.1', port: 9 }).then(() => 'opened', (e: { code?: string }) => e.code))
    await sleep(50)
    await client.close()
    expect(await Promise.all(opens)).toEqual(Array(WAITERS).fill('SYNMUX_NO_SESSION'))
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
  })

  it('SessionPool: 40 waiters, no listener warning; all open once a session comes up', async () => {
    const port = await freePort()
    const pool = new SessionPool({ size: 2, connect: () => net.connect({ port, host: '127.0.0.1' }) })
    pool.on('error', () => {})
    pool.start()
    await sleep(150)
    const opens = Array.from({ length: WAITERS }, () => pool.open({}, 20_000))
    await sleep(100)
    const registry = new SessionRegistry({ resumption: {} })
    registry.on('session', (s: Session) => {
      s.on('error', () => {})
      s.on('stream', (st: MuxStream) => st.pipe(st))
    })
    const server = net.createServer((sock) => registry.accept(sock))
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r))
    const streams = await Promise.all(opens)
    expect(streams).toHaveLength(WAITERS)
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
    expect(pool.listenerCount('up')).toBe(0)
    for (const st of streams) st.destroy()
    await pool.close()
    await registry.close()
    await new Promise((r) => server.close(r))
  })
})
