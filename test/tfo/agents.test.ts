/**
 * FastOpenAgent / FastOpenHttpsAgent with Node's own http.get / https.get
 * against real HTTP and HTTPS origins with TFO: the first connection to a
 * server fetches the cookie, the next carries the request (or the TLS
 * ClientHello) in its SYN — seen by the client (`socket.fastOpen`) and by
 * the server (`fastOpenInfo`); keep-alive reuses one connection; opting
 * out gives plain connections.
 */
import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { FastOpenAgent, FastOpenHttpsAgent, FastOpenSocket, type FastOpenReport } from 'synmux'
import { isLinux, serverTfoOn, skipReason } from '../helpers'
import { origin, type Origin, type Seen } from './origin'

const skip = skipReason(!isLinux ? 'TFO agents are verified on Linux' : !serverTfoOn() ? 'net.ipv4.tcp_fastopen has no server bit (run .ci/run or sysctl -w net.ipv4.tcp_fastopen=3)' : false)

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn()
})
async function start(kind: 'http' | 'https'): Promise<Origin> {
  const o = await origin(kind)
  cleanup.push(() => o.close())
  return o
}

interface Got {
  seen: Seen
  fastOpen: FastOpenReport
  socket: net.Socket
}

/** One GET through `agent`; resolves with the body (what the origin saw) and the client's TFO report. */
function get(o: Origin, path: string, agent: http.Agent, extra: https.RequestOptions = {}): Promise<Got> {
  const mod = o.kind === 'https' ? https : http
  return new Promise((resolve, reject) => {
    mod
      .get(`${o.url}${path}`, { agent, ...extra }, (res) => {
        const socket = res.socket as net.Socket & { fastOpen: FastOpenReport }
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => resolve({ seen: JSON.parse(body), fastOpen: socket.fastOpen, socket }))
      })
      .on('error', reject)
  })
}

const NO_COOKIE = { attempted: true, accepted: false, reason: 'no-cookie' }
const IN_SYN = { attempted: true, accepted: true }

describe.skipIf(skip)('FastOpenAgent (http.get)', () => {
  it('the second connection carries the request in its SYN, seen on both ends', async () => {
    const o = await start('http')
    const agent = new FastOpenAgent({ keepAlive: false })
    cleanup.push(() => agent.destroy())
    const first = await get(o, '/one', agent)
    expect(first.socket).toBeInstanceOf(FastOpenSocket)
    expect(first.fastOpen).toEqual(NO_COOKIE)
    expect(first.seen).toMatchObject({ conn: 1, synData: false, url: '/one' })
    const second = await get(o, '/two', agent)
    expect(second.fastOpen).toEqual(IN_SYN)
    expect(second.seen).toMatchObject({ conn: 2, synData: true, url: '/two' })
  })

  it('keep-alive: several requests on one connection', async () => {
    const o = await start('http')
    const agent = new FastOpenAgent({ keepAlive: true, maxSockets: 1 })
    cleanup.push(() => agent.destroy())
    const got = []
    for (let i = 0; i < 5; i++) got.push(await get(o, `/r${i}`, agent))
    expect(got.map((g) => g.seen.conn)).toEqual([1, 1, 1, 1, 1])
    expect(new Set(got.map((g) => g.socket)).size).toBe(1)
    expect(o.connections).toBe(1)
    // and concurrent requests beyond maxSockets queue for that connection
    const more = await Promise.all([1, 2, 3].map((i) => get(o, `/c${i}`, agent)))
    expect(more.map((g) => g.seen.conn)).toEqual([1, 1, 1])
  })

  it('fastOpen: false gives plain connections that still work', async () => {
    const o = await start('http')
    const agent = new FastOpenAgent({ fastOpen: false })
    cleanup.push(() => agent.destroy())
    for (const p of ['/a', '/b']) {
      const g = await get(o, p, agent)
      expect(g.fastOpen).toEqual({ attempted: false, accepted: false, reason: 'opted-out' })
      expect(g.seen).toMatchObject({ synData: false, url: p })
    }
  })

  it('a socketPath is refused through the request, with the reason', async () => {
    const agent = new FastOpenAgent()
    const err = await new Promise<Error & { code?: string }>((resolve) => {
      http.get({ socketPath: '/tmp/synmux-none.sock', path: '/', agent }, () => resolve(new Error('answered'))).on('error', resolve)
    })
    expect(err).toBeInstanceOf(TypeError)
    expect(err.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(err.message).toMatch(/Unix domain sockets/)
  })
})

describe.skipIf(skip)('FastOpenHttpsAgent (https.get)', () => {
  it('the second connection carries the ClientHello in its SYN; SNI and certificate checks as usual', async () => {
    const o = await start('https')
    const agent = new FastOpenHttpsAgent({ keepAlive: false, ca: o.cert })
    cleanup.push(() => agent.destroy())
    const first = await get(o, '/one', agent, { servername: 'localhost' })
    expect(first.fastOpen).toEqual(NO_COOKIE)
    expect(first.seen).toMatchObject({ conn: 1, synData: false, servername: 'localhost' })
    const second = await get(o, '/two', agent, { servername: 'localhost' })
    expect(second.fastOpen).toEqual(IN_SYN)
    expect(second.seen).toMatchObject({ conn: 2, synData: true, url: '/two', servername: 'localhost' })
    expect((second.socket as import('node:tls').TLSSocket).authorized).toBe(true)
  })

  it('an untrusted certificate still fails (the TLS checks are Node’s)', async () => {
    const o = await start('https')
    const agent = new FastOpenHttpsAgent()
    cleanup.push(() => agent.destroy())
    const err = await get(o, '/', agent).catch((e) => e)
    expect(err.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT')
  })

  it('keep-alive: several requests on one TLS connection', async () => {
    const o = await start('https')
    const agent = new FastOpenHttpsAgent({ keepAlive: true, maxSockets: 1, ca: o.cert })
    cleanup.push(() => agent.destroy())
    const got = []
    for (let i = 0; i < 5; i++) got.push(await get(o, `/r${i}`, agent))
    expect(got.map((g) => g.seen.conn)).toEqual([1, 1, 1, 1, 1])
    expect(o.connections).toBe(1)
  })

  it('fastOpen: false gives plain connections that still work', async () => {
    const o = await start('https')
    const agent = new FastOpenHttpsAgent({ fastOpen: false, ca: o.cert })
    cleanup.push(() => agent.destroy())
    for (const p of ['/a', '/b']) {
      const g = await get(o, p, agent)
      expect(g.fastOpen).toEqual({ attempted: false, accepted: false, reason: 'opted-out' })
      expect(g.seen).toMatchObject({ synData: false, url: p })
    }
  })
})
