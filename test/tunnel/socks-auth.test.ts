/**
 * SOCKS5 as clients expect it, through the real `synmux client` process:
 * username/password authentication (RFC 1929, `--socks-auth`) with curl
 * (`--socks5-hostname` and `-U`) and ncat (`--proxy-type socks5
 * --proxy-auth`); a client offering only "no authentication" gets `05 FF`;
 * wrong credentials `01 01`; password guessing closes that source's
 * connections unread while other sources go on; a client that stalls in the
 * middle of its credentials is closed by the negotiation deadline (10 s).
 * And `--socks-wait`: the reply waits for the far side and carries its real
 * code (0x02 not allowed, 0x04 host unreachable, 0x05 connection refused).
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { close, listen } from '../helpers'
import { curl, freePort, needCommand, secureKeys, stopAll, synmux, type Proc } from './cli'
import { echoTarget } from './rawpeer'

const need = needCommand

const USER = 'alice'
const PASS = 'open sesame: with a colon'

let echo: net.Server
let echoPort: number
let web: http.Server
let webPort: number
let closedPort: number
let client: Proc
let socksPort: number
let waitClient: Proc
let waitPort: number
/** A client that sent half of its credentials at the start, then nothing: resolves with when it was closed. */
let stalled: Promise<number>

beforeAll(async () => {
  const keys = secureKeys()
  ;({ server: echo, port: echoPort } = await echoTarget())
  web = http.createServer((_req, res) => res.end('through SOCKS5 with a password'))
  webPort = await listen(web, '127.0.0.1')
  closedPort = await freePort()
  const serverPort = await freePort()
  // An allowed name that does not resolve (.invalid, RFC 6761): its connect fails as unreachable.
  const server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${echoPort},127.0.0.1:${webPort},127.0.0.1:${closedPort},nowhere.invalid:80`])
  await server.waitFor(/listening on/)
  socksPort = await freePort()
  waitPort = await freePort()
  // The credentials from --config (out of the process list), as the README suggests.
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-socks-')), 'client.json')
  fs.writeFileSync(cfg, JSON.stringify({ server: `127.0.0.1:${serverPort}`, key: keys.clientKeyFile, serverKey: keys.serverPublic, socks: `127.0.0.1:${socksPort}`, socksAuth: `${USER}:${PASS}` }))
  client = synmux(['client', '--config', cfg])
  waitClient = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--socks', `127.0.0.1:${waitPort}`, '--socks-wait', '--socks-auth', `${USER}:${PASS}`])
  await Promise.all([client.waitFor(/SOCKS5 \(username\/password\) on/), waitClient.waitFor(/SOCKS5 \(username\/password\) \(replies wait for the far side\) on/)])
  await Promise.all([client.waitFor(/session to .* up/), waitClient.waitFor(/session to .* up/)])
  const started = Date.now()
  const s = net.connect(socksPort, '127.0.0.1')
  s.on('error', () => {})
  // greeting (user/pass), then VER ULEN UNAME PLEN=10 and no password
  s.write(Buffer.concat([Buffer.from([5, 1, 2, 1, USER.length]), Buffer.from(USER), Buffer.from([10])]))
  s.resume() // (read the method reply, so that the close is seen)
  stalled = new Promise((r) => s.once('close', () => r(Date.now() - started)))
}, 30_000)

afterAll(async () => {
  await stopAll()
  await close(echo)
  await close(web)
})

/** Writes `bytes` to the SOCKS port; resolves with everything read until the close (or `ms`, or `until` bytes read). */
function exchange(port: number, bytes: Buffer, opts: { ms?: number; localAddress?: string; until?: number } = {}): Promise<{ got: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
    let got = Buffer.alloc(0)
    s.on('error', () => {})
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (opts.until !== undefined && got.length >= opts.until) s.destroy()
    })
    const t = setTimeout(() => (s.destroy(), resolve({ got, closed: false })), opts.ms ?? 3000)
    s.on('close', () => (clearTimeout(t), resolve({ got, closed: true })))
    s.write(bytes)
  })
}

const credentials = (u: string, p: string) => Buffer.concat([Buffer.from([1, Buffer.byteLength(u)]), Buffer.from(u), Buffer.from([Buffer.byteLength(p)]), Buffer.from(p)])
const connectTo = (port: number) => Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 255])
const USER_PASS_GREETING = Buffer.from([5, 1, 2])
const reply = (code: number) => Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0])
const curlVia = (port: number, args: string[]) =>
  curl(['-sS', '--max-time', '10', '--socks5-hostname', `127.0.0.1:${port}`, ...args]).then(
    (r) => ({ ok: true, out: r.stdout, err: r.stderr }),
    (e: { stdout: string; stderr: string }) => ({ ok: false, out: e.stdout, err: e.stderr }),
  )

describe('--socks-auth (RFC 1929)', () => {
  it('curl --socks5-hostname -U user:pass: through; no credentials or wrong ones: refused', { skip: !!need('curl') }, async () => {
    const url = `http://127.0.0.1:${webPort}/`
    expect(await curlVia(socksPort, ['-U', `${USER}:${PASS}`, url])).toMatchObject({ ok: true, out: 'through SOCKS5 with a password' })
    const none = await curlVia(socksPort, [url])
    expect(none.ok).toBe(false)
    expect(none.err).toMatch(/No authentication method was acceptable/)
    const wrong = await curlVia(socksPort, ['-U', `${USER}:guess`, url])
    expect(wrong.ok).toBe(false)
    expect(wrong.err).toMatch(/User was rejected by the SOCKS5 server/)
  })

  it('ncat --proxy-type socks5 --proxy-auth: bytes both ways', { skip: !!need('ncat') }, async () => {
    const child = execFile('ncat', ['--proxy', `127.0.0.1:${socksPort}`, '--proxy-type', 'socks5', '--proxy-auth', `${USER}:${PASS}`, '127.0.0.1', String(echoPort)], { encoding: 'utf8', timeout: 15_000 })
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    child.stdin!.end('hello over ncat\n')
    const code = await new Promise((r) => child.on('exit', r))
    expect(code).toBe(0)
    expect(out).toBe('hello over ncat\n')
  })

  it('raw: only "no authentication" offered: 05 FF and the close; wrong password: 05 02, 01 01 and the close', async () => {
    expect(await exchange(socksPort, Buffer.from([5, 1, 0]))).toEqual({ got: Buffer.from([5, 0xff]), closed: true })
    const wrong = await exchange(socksPort, Buffer.concat([USER_PASS_GREETING, credentials(USER, 'nope'), connectTo(echoPort)]), { localAddress: '127.0.0.3' })
    expect(wrong).toEqual({ got: Buffer.from([5, 2, 1, 1]), closed: true })
  })

  it('raw, pipelined: greeting, credentials, request and data in one write: 05 02, 01 00, success, echo', async () => {
    const r = await exchange(socksPort, Buffer.concat([USER_PASS_GREETING, credentials(USER, PASS), connectTo(echoPort), Buffer.from('ping')]), { until: 18 })
    expect(r.got).toEqual(Buffer.concat([Buffer.from([5, 2, 1, 0]), reply(0), Buffer.from('ping')]))
  })

  it('guessing: after 10 wrong passwords from an address, its connections are closed unread (the right password too); another address is served', async () => {
    const guesser = '127.0.0.4'
    for (let i = 0; i < 10; i++) {
      const r = await exchange(socksPort, Buffer.concat([USER_PASS_GREETING, credentials(USER, `guess-${i}`)]), { localAddress: guesser })
      expect(r.got).toEqual(Buffer.from([5, 2, 1, 1]))
    }
    const refused = await exchange(socksPort, Buffer.concat([USER_PASS_GREETING, credentials(USER, PASS)]), { localAddress: guesser })
    expect(refused).toEqual({ got: Buffer.alloc(0), closed: true })
    const other = await exchange(socksPort, Buffer.concat([USER_PASS_GREETING, credentials(USER, PASS), connectTo(echoPort), Buffer.from('x')]), { localAddress: '127.0.0.5', until: 15 })
    expect(other.got).toEqual(Buffer.concat([Buffer.from([5, 2, 1, 0]), reply(0), Buffer.from('x')]))
    await client.waitFor(/SOCKS5: refusing 127\.0\.0\.4: too many failed authentications/)
  })

  it('a client that stalls in the middle of its credentials is closed at the 10 s negotiation deadline', { timeout: 20_000 }, async () => {
    const ms = await stalled
    expect(ms).toBeGreaterThan(9_000)
    expect(ms).toBeLessThan(15_000)
    await client.waitFor(/SOCKS5: 127\.0\.0\.1: no request within 10000 ms \(not authenticated\); closed/)
  })
})

describe('--socks-wait: the reply carries the far side\'s answer', () => {
  const viaWait = (port: number) => exchange(waitPort, Buffer.concat([USER_PASS_GREETING, credentials(USER, PASS), connectTo(port)]), { ms: 5000 })

  it('raw: success only once the target is connected; then bytes flow', async () => {
    const r = await exchange(waitPort, Buffer.concat([USER_PASS_GREETING, credentials(USER, PASS), connectTo(echoPort), Buffer.from('early')]), { until: 19 })
    expect(r.got).toEqual(Buffer.concat([Buffer.from([5, 2, 1, 0]), reply(0), Buffer.from('early')]))
  })

  it('raw: connection refused 0x05, not allowed 0x02, each followed by the close', async () => {
    expect(await viaWait(closedPort)).toEqual({ got: Buffer.concat([Buffer.from([5, 2, 1, 0]), reply(5)]), closed: true })
    const notAllowed = await freePort()
    expect(await viaWait(notAllowed)).toEqual({ got: Buffer.concat([Buffer.from([5, 2, 1, 0]), reply(2)]), closed: true })
  })

  it('curl: 200 through; refused, not allowed and unreachable (a name that does not resolve) reported with their codes', { skip: !!need('curl') }, async () => {
    const auth = ['-U', `${USER}:${PASS}`]
    expect(await curlVia(waitPort, [...auth, `http://127.0.0.1:${webPort}/`])).toMatchObject({ ok: true, out: 'through SOCKS5 with a password' })
    const cases: [string, number][] = [
      [`http://127.0.0.1:${closedPort}/`, 5],
      [`http://127.0.0.1:${await freePort()}/`, 2],
      ['http://nowhere.invalid/', 4],
    ]
    for (const [url, code] of cases) {
      const r = await curlVia(waitPort, [...auth, url])
      expect(r.ok, url).toBe(false)
      expect(r.err, url).toMatch(new RegExp(`Can't complete SOCKS5 connection to .*\\(${code}\\)`))
    }
  })

  it('ncat --proxy-auth through --socks-wait: bytes both ways', { skip: !!need('ncat') }, async () => {
    const child = execFile('ncat', ['--proxy', `127.0.0.1:${waitPort}`, '--proxy-type', 'socks5', '--proxy-auth', `${USER}:${PASS}`, '127.0.0.1', String(echoPort)], { encoding: 'utf8', timeout: 15_000 })
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    child.stdin!.end('waited\n')
    expect(await new Promise((r) => child.on('exit', r))).toBe(0)
    expect(out).toBe('waited\n')
  })
})
