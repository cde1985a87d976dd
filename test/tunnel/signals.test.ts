/**
 * How the real `synmux server` and `synmux client` processes stop and
 * reload: SIGTERM drains (stops accepting: new connections are refused; a
 * transfer in progress completes; the process exits 0 when it is done, or
 * at `--drain-timeout`); a second Ctrl-C closes at once (exit 130); SIGHUP
 * re-reads `--config` (the allow list, the log level) and the authorized
 * keys, and never ends the process, even when the new config is broken.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { close, listen } from '../helpers'
import { freePort, secureKeys, stopAll, synmux, type Proc, type SecureKeys } from './cli'
import { echoTarget } from './rawpeer'

const CHUNK = 64 * 1024
const CHUNKS = 16
let keys: SecureKeys
/** Sends CHUNKS chunks of CHUNK bytes, one every 80 ms (about 1.3 s), then ends; or, for 'forever', never ends. */
let slow: net.Server
let slowPort: number
let echo: net.Server
let echoPort: number

const pattern = (i: number) => Buffer.alloc(CHUNK, i & 0xff)
const WHOLE = crypto.createHash('sha256').update(Buffer.concat(Array.from({ length: CHUNKS }, (_, i) => pattern(i)))).digest('hex')

beforeAll(async () => {
  keys = secureKeys()
  slow = net.createServer((s) => {
    s.on('error', () => {})
    s.once('data', (d) => {
      const forever = d.toString().startsWith('forever')
      let i = 0
      const t = setInterval(() => {
        if (s.destroyed) return clearInterval(t)
        s.write(pattern(i++))
        if (!forever && i === CHUNKS) {
          clearInterval(t)
          s.end()
        }
      }, 80)
      s.on('close', () => clearInterval(t))
    })
  })
  slowPort = await listen(slow, '127.0.0.1')
  ;({ server: echo, port: echoPort } = await echoTarget())
})

afterAll(async () => {
  await stopAll()
  await close(slow)
  await close(echo)
})

const exited = (p: Proc) => new Promise<{ code: number | null; signal: string | null; at: number }>((r) => (p.child.exitCode !== null ? r({ code: p.child.exitCode, signal: null, at: Date.now() }) : p.child.once('exit', (code, signal) => r({ code, signal, at: Date.now() }))))

/** A transfer from the slow target through a forward: resolves with what arrived and how it ended. */
function transfer(port: number, what = 'go'): { firstChunk: Promise<void>; done: Promise<{ bytes: number; sha: string; ended: 'end' | 'error'; at: number }> } {
  const s = net.connect(port, '127.0.0.1')
  const hash = crypto.createHash('sha256')
  let bytes = 0
  let first: () => void
  const firstChunk = new Promise<void>((r) => (first = r))
  const done = new Promise<{ bytes: number; sha: string; ended: 'end' | 'error'; at: number }>((resolve) => {
    let ended: 'end' | 'error' = 'error'
    s.on('data', (d: Buffer) => {
      hash.update(d)
      bytes += d.length
      if (bytes >= CHUNK) first()
    })
    s.on('end', () => (ended = 'end'))
    s.on('error', () => {})
    s.on('close', () => resolve({ bytes, sha: hash.digest('hex'), ended, at: Date.now() }))
  })
  s.write(what)
  return { firstChunk, done }
}

const refused = (port: number) =>
  new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.on('connect', () => (s.destroy(), resolve('accepted')))
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
  })

async function pair(serverArgs: string[] = [], clientArgs: string[] = []): Promise<{ server: Proc; client: Proc; port: number; fwd: number }> {
  const port = await freePort()
  const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${slowPort},127.0.0.1:${echoPort}`, ...serverArgs])
  await server.waitFor(/listening on/)
  const fwd = await freePort()
  const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${slowPort}`, ...clientArgs])
  await client.waitFor(/session to .* up/)
  return { server, client, port, fwd }
}

describe('SIGTERM drains', () => {
  it('server: new connections refused, the transfer in progress completes, then the process exits 0', async () => {
    const { server, client, port, fwd } = await pair(['--drain-timeout', '20'])
    const t = transfer(fwd)
    await t.firstChunk
    const exit = exited(server)
    server.child.kill('SIGTERM')
    await server.waitFor(/SIGTERM: draining: not accepting new connections; waiting up to 20 s for 1 open connection$/)
    expect(await refused(port)).toBe('ECONNREFUSED')
    const got = await t.done
    expect(got).toMatchObject({ bytes: CHUNK * CHUNKS, sha: WHOLE, ended: 'end' })
    const e = await exit
    expect(e.code).toBe(0)
    expect(e.at - got.at).toBeLessThan(3000)
    expect(server.log.some((l) => /drained: every connection finished/.test(l))).toBe(true)
    await client.stop()
  })

  it('client: its listeners refuse new connections, the transfer in progress completes, then it exits 0', async () => {
    const { server, client, fwd } = await pair()
    const t = transfer(fwd)
    await t.firstChunk
    const exit = exited(client)
    client.child.kill('SIGTERM')
    await client.waitFor(/SIGTERM: draining/)
    expect(await refused(fwd)).toBe('ECONNREFUSED')
    expect(await t.done).toMatchObject({ bytes: CHUNK * CHUNKS, sha: WHOLE, ended: 'end' })
    expect((await exit).code).toBe(0)
    await server.stop()
  })

  it('at --drain-timeout what is still open is closed and the process exits 0', async () => {
    const { server, client, fwd } = await pair(['--drain-timeout', '1'])
    const t = transfer(fwd, 'forever')
    await t.firstChunk
    const exit = exited(server)
    const at = Date.now()
    server.child.kill('SIGTERM')
    const e = await exit
    expect(e.code).toBe(0)
    expect(e.at - at).toBeGreaterThanOrEqual(900)
    expect(e.at - at).toBeLessThan(4000)
    expect(server.log.some((l) => /drain timeout \(1 s\): closing 1 connection still open/.test(l))).toBe(true)
    const got = await t.done
    expect(got.bytes).toBeLessThan(CHUNK * 200)
    await client.stop()
  })
})

describe('SIGINT', () => {
  it('the first drains, the second closes at once (exit 130), cutting the transfer', async () => {
    const { server, client, fwd } = await pair()
    const t = transfer(fwd)
    await t.firstChunk
    const exit = exited(server)
    server.child.kill('SIGINT')
    await server.waitFor(/SIGINT: draining: .*\(Ctrl-C again to close at once\)/)
    server.child.kill('SIGINT')
    const e = await exit
    expect(e.code).toBe(130)
    const got = await t.done
    expect(got.bytes).toBeLessThan(CHUNK * CHUNKS)
    expect(got.at - e.at).toBeLessThan(2000)
    await client.stop()
  })
})

describe('SIGHUP reloads', () => {
  it('server: the allow list and the log level from --config change; a broken config changes nothing; the process stays up', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-hup-'))
    const cfg = path.join(dir, 'server.json')
    const port = await freePort()
    const base = { listen: `127.0.0.1:${port}`, key: keys.serverKeyFile, authorizedKeys: keys.authorizedFile }
    fs.writeFileSync(cfg, JSON.stringify({ ...base, allow: [`127.0.0.1:${slowPort}`] }))
    const server = synmux(['server', '--config', cfg])
    await server.waitFor(/listening on/)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/session to .* up/)
    const echoOnce = () =>
      new Promise<string>((resolve) => {
        const s = net.connect(fwd, '127.0.0.1')
        let got = ''
        s.on('error', () => {})
        s.on('data', (d) => {
          got += d
          s.end()
        })
        s.on('close', () => resolve(got))
        s.write('hup?')
      })
    expect(await echoOnce()).toBe('') // not allowed yet
    fs.writeFileSync(cfg, JSON.stringify({ ...base, allow: [`127.0.0.1:${slowPort}`, `127.0.0.1:${echoPort}`], logLevel: 'debug' }))
    server.child.kill('SIGHUP')
    // The reload re-reads --authorized-keys too (secure-keys.test.ts covers its changes): the key still there, the session stays.
    await server.waitFor(/SIGHUP: reloaded .*: log level debug, allow: 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+, 1 authorized key$/)
    expect(await echoOnce()).toBe('hup?')
    await server.waitFor(/debug server: closed 127\.0\.0\.1:\d+ session=\w+ stream=\d+ up=4 down=4 ms=\d+ reason=end/)
    fs.writeFileSync(cfg, '{ "allow": [')
    server.child.kill('SIGHUP')
    await server.waitFor(/SIGHUP: reload failed, nothing changed: --config .*server\.json: /)
    fs.writeFileSync(cfg, JSON.stringify({ ...base, allow: ['bad entry'] }))
    server.child.kill('SIGHUP')
    await server.waitFor(/SIGHUP: reload failed, nothing changed: .*bad entry/)
    expect(await echoOnce()).toBe('hup?')
    expect(server.child.exitCode).toBe(null)
    // The client reloads too (its log level), and stays up.
    client.child.kill('SIGHUP')
    await client.waitFor(/SIGHUP: reloaded: log level info/)
    expect(await echoOnce()).toBe('hup?')
    expect(client.child.exitCode).toBe(null)
    await client.stop()
    await server.stop()
  })
})
