/**
 * The tunnel server process survives its clients (issue 12): every way a
 * session can end while its streams are waiting for a connect slot or
 * connecting onward — a protocol violation, GOAWAY, a flood of OPENs, a
 * reset from the application, a dropped connection, a client killed with
 * kill -9 whose detached session expires — must leave the real
 * `synmux server` process up and serving another client.
 *
 * The streams are kept in the connect phase by a target whose connects
 * hang (a full accept queue), so each case hits the window in which a
 * stream has no relay yet.
 */
import fs from 'node:fs'
import net from 'node:net'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { FrameType, GoawayCode, type MuxStream, RefuseCode, secure, Session } from 'synmux'
import { close } from '../helpers'
import { freePort, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from './cli'
import { until } from './pool-relay.js'
import { echoTarget, rawPeer, stuckTarget, type StuckTarget } from './rawpeer'

let keys: SecureKeys
let stuck: StuckTarget
let echo: net.Server
let echoPort: number
let server: Proc
let serverPort: number

/** Sockets of this network namespace in SYN_SENT towards 127.0.0.1:`port` (connects in progress). */
function connectsTo(port: number): number {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  let n = 0
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f[2] === hex && f[3] === '02') n++
  }
  return n
}

/** The secure channel over `sock`, with the test's client key. */
const secured = (sock: net.Socket) => secure(sock, { role: 'client', staticKey: keys.clientKeys.privateKey, serverKey: keys.serverKeys.publicKey })

/** A fresh authenticated library client gets an echo through the server. */
async function serves(): Promise<void> {
  const sock = net.connect(serverPort, '127.0.0.1')
  const session = new Session(secured(sock), { role: 'client' })
  session.on('error', () => {})
  try {
    const st = session.open({ target: { host: '127.0.0.1', port: echoPort }, data: 'still here', end: true })
    const got = await new Promise<string>((resolve, reject) => {
      const c: Buffer[] = []
      st.on('data', (d: Buffer) => c.push(d))
      st.once('end', () => resolve(Buffer.concat(c).toString()))
      st.once('error', reject)
    })
    expect(got).toBe('still here')
  } finally {
    session.destroy()
  }
}

/** The server process is up, has printed no stack, and serves a new client. */
async function expectAlive(): Promise<void> {
  const log = () => `server log:\n${server.log.join('\n')}`
  expect(server.child.exitCode, log()).toBe(null)
  await serves().catch((err: Error) => {
    throw new Error(`${err.message}; exit code ${server.child.exitCode}, ${log()}`)
  })
  expect(server.child.exitCode, log()).toBe(null)
  expect(server.log.join('\n')).not.toMatch(/Unhandled|ERR_UNHANDLED_ERROR|^\s+at /m)
}

beforeAll(async () => {
  keys = secureKeys()
  stuck = await stuckTarget()
  ;({ server: echo, port: echoPort } = await echoTarget())
})

// A server of its own for each case, so that each case shows whether it alone kills the process.
beforeEach(async () => {
  serverPort = await freePort()
  server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${stuck.port},127.0.0.1:${echoPort}`, '--detach-timeout', '1000'])
  await server.waitFor(/listening on/)
  await serves()
})

afterEach(async () => {
  await server.stop()
})

afterAll(async () => {
  await stopAll()
  stuck?.close()
  if (echo) await close(echo)
})

const open = (streamId: number, port: number, data?: Buffer) => ({ type: FrameType.OPEN, streamId, target: { host: '127.0.0.1', port }, ...(data ? { data } : {}) })

describe('the server process survives sessions that end while streams connect', () => {
  it('a duplicate OPEN id in the same write as an OPEN whose connect is in progress', async () => {
    const peer = await rawPeer(serverPort, keys)
    peer.send(open(1, stuck.port), open(1, stuck.port))
    await peer.closed
    await expectAlive()
  })

  it('GOAWAY(PROTOCOL_ERROR) while a connect is in progress', async () => {
    const peer = await rawPeer(serverPort, keys)
    peer.send(open(1, stuck.port), { type: FrameType.GOAWAY, lastStreamId: 0, code: GoawayCode.PROTOCOL_ERROR, reason: 'bye' })
    await peer.closed
    await expectAlive()
  })

  it('a credit violation: OPEN + 320 KiB of DATA against a 256 KiB window', async () => {
    const peer = await rawPeer(serverPort, keys)
    // 10 frames of 32 KiB: within the frame size the server announces (65,510 on the secure channel), past the window.
    const chunk = Buffer.alloc(32_768, 1)
    peer.send(open(1, stuck.port), ...Array.from({ length: 10 }, () => ({ type: FrameType.DATA, streamId: 1, data: chunk })))
    await peer.closed
    const goaway = peer.frames.find((f) => f.type === FrameType.GOAWAY)
    expect(goaway && 'code' in goaway && goaway.code).toBe(GoawayCode.FLOW_CONTROL_ERROR)
    await expectAlive()
  })

  it('stream ids going down, and of the wrong parity', async () => {
    for (const [a, b] of [
      [5, 3],
      [1, 2],
    ]) {
      const peer = await rawPeer(serverPort, keys)
      peer.send(open(a!, stuck.port), open(b!, stuck.port))
      await peer.closed
      await expectAlive()
    }
  })

  it('1,300 OPENs past maxPendingOpens, then the connection drops', async () => {
    const peer = await rawPeer(serverPort, keys)
    const frames = []
    for (let i = 0; i < 1300; i++) frames.push(open(2 * i + 1, stuck.port))
    peer.send(...frames)
    // 256 wait (connecting or for a connect slot); the rest are refused.
    const refused = await peer.waitFrames((f) => f.type === FrameType.REFUSED && 'code' in f && f.code === RefuseCode.TOO_MANY_PENDING, 1300 - 256)
    expect(refused.length).toBe(1300 - 256)
    peer.tcp.resetAndDestroy()
    await expectAlive()
  })
})

describe('the server process survives everyday clients', () => {
  it('synmux client --forward: a connection reset by its application while it waits for a connect slot', async () => {
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${stuck.port}`])
    try {
      await client.waitFor(/session .* up/)
      const base = connectsTo(stuck.port)
      const locals: net.Socket[] = []
      for (let i = 0; i < 65; i++) {
        const s = net.connect(fwd, '127.0.0.1')
        s.on('error', () => {})
        s.write(`hello ${i}`)
        locals.push(s)
      }
      // 64 connects in progress on the server (the default --max-connects); the 65th waits for a slot.
      await until(() => connectsTo(stuck.port) - base >= 64, '64 onward connects in progress')
      await new Promise((r) => setTimeout(r, 100))
      expect(connectsTo(stuck.port) - base).toBe(64)
      locals[64]!.resetAndDestroy()
      await new Promise((r) => setTimeout(r, 200))
      for (const s of locals) s.resetAndDestroy()
      await until(() => connectsTo(stuck.port) - base === 0, 'the onward connects to be cancelled')
      await expectAlive()
    } finally {
      await client.stop()
    }
  })

  it('a library client without resumption: its TCP connection drops under 80 streams', async () => {
    const sock = net.connect(serverPort, '127.0.0.1')
    sock.on('error', () => {})
    const session = new Session(secured(sock), { role: 'client' })
    session.on('error', () => {})
    const base = connectsTo(stuck.port)
    const opened = (port: number, i: number): MuxStream => {
      const st = session.open({ target: { host: '127.0.0.1', port }, data: `stream ${i}` })
      st.on('error', () => {})
      return st
    }
    // 40 live streams, then 40 whose connects hang.
    const live = Array.from({ length: 40 }, (_, i) => opened(echoPort, i))
    await Promise.all(live.map((st) => new Promise((r) => st.once('data', r))))
    for (let i = 40; i < 80; i++) opened(stuck.port, i)
    // Dozens of streams in their connect phase (how many of the 40 does not matter).
    await until(() => connectsTo(stuck.port) - base >= 20, 'onward connects in progress')
    sock.resetAndDestroy()
    await new Promise((r) => session.once('close', r))
    await until(() => connectsTo(stuck.port) - base === 0, 'the onward connects to be cancelled')
    await expectAlive()
  })

  it('synmux client --forward killed with kill -9 under 80 connections: the detached session expires', async () => {
    const [a, b] = [await freePort(), await freePort()]
    const client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--forward', `${a}=127.0.0.1:${echoPort}`, '--forward', `${b}=127.0.0.1:${stuck.port}`])
    await client.waitFor(/session .* up/)
    const base = connectsTo(stuck.port)
    const locals: net.Socket[] = []
    const connect = (port: number, i: number): net.Socket => {
      const s = net.connect(port, '127.0.0.1')
      s.on('error', () => {})
      s.write(`connection ${i}`)
      locals.push(s)
      return s
    }
    // 40 live connections, then 40 whose onward connects hang.
    const live = Array.from({ length: 40 }, (_, i) => connect(a, i))
    await Promise.all(live.map((s) => new Promise((r) => s.once('data', r))))
    for (let i = 40; i < 80; i++) connect(b, i)
    await until(() => connectsTo(stuck.port) - base >= 20, 'onward connects in progress')
    const expired = server.waitFor(/closed: SYNMUX_SESSION_LOST|Unhandled/, 10_000)
    client.child.kill('SIGKILL')
    await expired
    for (const s of locals) s.destroy()
    await expectAlive()
  })
})
