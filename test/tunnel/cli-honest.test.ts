/**
 * The CLI does not pretend to run (issue 12): a port in use ends the
 * process with one clear line and exit code 1; a pre-shared key the server
 * does not accept (--insecure-plaintext) is said at error level and ends
 * the client after a few attempts (the server names the failure too; the
 * secure channel's key failures: secure-keys.test.ts); a local connection
 * that found no session is logged when it is closed; and `--stats` into a
 * file writes timestamped lines only when something changed.
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { close, listen } from '../helpers'
import { CLI, freePort, keyFile, secureKeys, stopAll, synmux, type SecureKeys } from './cli'
import { echoTarget } from './rawpeer'

let keyPath: string
let keys: SecureKeys
let echo: net.Server
let echoPort: number
let busy: net.Server
let busyPort: number

beforeAll(async () => {
  keyPath = keyFile()
  keys = secureKeys()
  ;({ server: echo, port: echoPort } = await echoTarget())
  busy = net.createServer()
  busyPort = await listen(busy, '127.0.0.1')
})

afterAll(async () => {
  await stopAll()
  await close(echo)
  await close(busy)
})

/** Runs `synmux <args>` and resolves when it exits, or after `ms` with `code: 'still running'` (then it is killed). */
function run(args: string[], ms = 8000): Promise<{ code: number | string; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    let stdout = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.stdout.on('data', (d) => (stdout += d))
    const t = setTimeout(() => {
      child.kill('SIGKILL')
      resolve({ code: 'still running', stderr, stdout })
    }, ms)
    child.on('exit', (code) => {
      clearTimeout(t)
      resolve({ code: code ?? 'signal', stderr, stdout })
    })
  })
}

describe('a port in use', () => {
  it('synmux server: one line, exit 1', async () => {
    const r = await run(['server', '--listen', `127.0.0.1:${busyPort}`, ...keys.server, '--allow', `127.0.0.1:${echoPort}`])
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split('\n')).toEqual([`synmux server: cannot listen on 127.0.0.1:${busyPort}: address already in use (EADDRINUSE)`])
  })

  it('synmux client --forward, --socks, --http-proxy: one line, exit 1', async () => {
    const server = `127.0.0.1:${await freePort()}`
    const cases: [string[], string][] = [
      [['--forward', `${busyPort}=127.0.0.1:${echoPort}`], `forwarding to 127.0.0.1:${echoPort}`],
      [['--socks', String(busyPort)], 'SOCKS5'],
      [['--http-proxy', String(busyPort)], 'HTTP proxy'],
    ]
    const results = await Promise.all(cases.map(([flags]) => run(['client', '--server', server, ...keys.client, ...flags])))
    results.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr.trim().split('\n')).toEqual([`synmux client: cannot listen on 127.0.0.1:${busyPort} (${cases[i]![1]}): address already in use (EADDRINUSE)`])
    })
    // The same after a listener that did start: it is closed again, and the process ends.
    const r = await run(['client', '--server', server, ...keys.client, '--forward', `${await freePort()}=127.0.0.1:${echoPort}`, '--socks', String(busyPort)])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^synmux client: cannot listen on .* \(SOCKS5\): address already in use/m)
    expect(r.stderr).not.toMatch(/^\s+at /m)
  })
})

describe('a pre-shared key the server does not accept (--insecure-plaintext)', () => {
  it('the client says so at error level and exits 1 after --max-auth-failures attempts; the server names the failure', async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, '--key', keyPath, '--insecure-plaintext', '--allow', `127.0.0.1:${echoPort}`])
    await server.waitFor(/listening on/)
    const r = await run(['client', '--server', `127.0.0.1:${port}`, '--key', keyFile(), '--insecure-plaintext', '--forward', `${await freePort()}=127.0.0.1:${echoPort}`, '--max-auth-failures', '2'])
    expect(r.code, r.stderr).toBe(1)
    const errors = r.stderr.split('\n').filter((l) => / error client: /.test(l))
    expect(errors[0]).toMatch(/ error client: authentication failed: the server does not accept this key \(server 127\.0\.0\.1:\d+, attempt 1 of 2\)$/)
    expect(errors[1]).toMatch(/attempt 2 of 2\)$/)
    expect(errors[2]).toMatch(/giving up after 2 failed authentications/)
    await server.waitFor(/handshake from 127\.0\.0\.1 failed: authentication failed: the client closed the connection instead of proving the key/)
    await server.stop()
  })

  it('the default is 3 attempts', async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, '--key', keyPath, '--insecure-plaintext', '--allow', `127.0.0.1:${echoPort}`])
    await server.waitFor(/listening on/)
    const r = await run(['client', '--server', `127.0.0.1:${port}`, '--key', keyFile(), '--insecure-plaintext', '--socks', String(await freePort())], 15_000)
    expect(r.code, r.stderr).toBe(1)
    expect(r.stderr).toMatch(/attempt 3 of 3\)\n.*giving up after 3 failed authentications/)
    await server.stop()
  })
})

describe('no session', () => {
  it('a local connection held while the server is unreachable is closed after 10 s, with a line that says why', { timeout: 20_000 }, async () => {
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${await freePort()}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`])
    await client.waitFor(/forwarding to/)
    const local = net.connect(fwd, '127.0.0.1')
    local.on('error', () => {})
    local.write('anyone?')
    await new Promise((r) => local.once('connect', r))
    const from = `127.0.0.1:${local.localPort}`
    const started = Date.now()
    await new Promise((r) => local.once('close', r))
    expect(Date.now() - started).toBeGreaterThan(9000)
    const line = await client.waitFor(/closing the connection from/)
    expect(line).toContain(` warn client: closing the connection from ${from} to 127.0.0.1:${echoPort}: no session to the server 127.0.0.1:`)
    expect(line).toMatch(/within 10000 ms \(last attempt: SYNMUX_CONNECTION_LOST .*ECONNREFUSED\)$/)
    await client.stop()
  })
})

describe('--stats into a file or a pipe', () => {
  it('timestamped lines, only when something changed', { timeout: 20_000 }, async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${echoPort}`])
    await server.waitFor(/listening on/)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${echoPort}`, '--stats', '--stats-interval', '1'])
    await client.waitFor(/ stats session up/)
    const stats = () => client.log.filter((l) => / stats /.test(l))
    // Idle for 3.5 s: the line does not change, so it is not repeated (it was every second).
    await new Promise((r) => setTimeout(r, 3500))
    expect(stats().length).toBe(1)
    expect(stats()[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stats session up\s+streams 0/)
    // A connection changes it: one more line.
    const s = net.connect(fwd, '127.0.0.1')
    s.write('x')
    await new Promise((r) => s.once('data', r))
    await client.waitFor(/ stats session up\s+streams 1/, 5000)
    s.destroy()
    await client.stop()
    await server.stop()
  })
})
