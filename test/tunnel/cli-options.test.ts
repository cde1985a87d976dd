/**
 * The tunnel CLI's other faces: TLS (CA and pinned fingerprint, with the
 * pre-shared key), --config, --help, --stats, the per-source handshake
 * limit, and usage errors.
 */
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { close, FIXTURES, listen } from '../helpers'
import { CLI, freePort, keyFile, secureKeys, stopAll, synmux, type SecureKeys } from './cli'
import { until } from './pool-relay.js'

const cert = path.join(FIXTURES, 'test-cert.pem')
const tlsKey = path.join(FIXTURES, 'test-key.pem')
let key: string
let keys: SecureKeys
let target: http.Server
let targetPort: number

const get = (port: number) =>
  new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/x', agent: false }, (res) => {
      let b = ''
      res.on('data', (d) => (b += d))
      res.on('end', () => resolve(b))
    }).on('error', reject)
  })

const run = (args: string[]) => promisify(execFile)(process.execPath, [CLI, ...args], { encoding: 'utf8' }).then(
  (r) => ({ code: 0, ...r }),
  (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
)

beforeAll(async () => {
  key = keyFile()
  keys = secureKeys()
  target = http.createServer((req, res) => res.end('target says hi'))
  targetPort = await listen(target, '127.0.0.1')
})
afterAll(async () => {
  await stopAll()
  await close(target)
})

describe('TLS sessions', () => {
  async function tlsPair(clientTlsArgs: string[]) {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, '--key', key, '--allow', `127.0.0.1:${targetPort}`, '--tls-cert', cert, '--tls-key', tlsKey])
    await server.waitFor(/listening on .*\(TLS\)/)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `localhost:${port}`, '--key', key, '--tls', ...clientTlsArgs, '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    return { server, client, fwd }
  }

  it('verified by CA', async () => {
    const { client, fwd, server } = await tlsPair(['--ca', cert])
    await client.waitFor(/session to .* up/)
    expect(await get(fwd)).toBe('target says hi')
    await client.stop()
    await server.stop()
  })

  it('verified by a pinned SHA-256 fingerprint', async () => {
    const der = new crypto.X509Certificate(fs.readFileSync(cert)).raw
    const fp = crypto.createHash('sha256').update(der).digest('hex').match(/../g)!.join(':')
    const { client, fwd, server } = await tlsPair(['--fingerprint', fp])
    await client.waitFor(/session to .* up/)
    expect(await get(fwd)).toBe('target says hi')
    await client.stop()
    await server.stop()
  })

  it('SIGHUP: a new allow list with a certificate that does not load changes nothing; with one that does, both change', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-tlshup-'))
    const cfg = path.join(dir, 'server.json')
    const bad = path.join(dir, 'bad.pem')
    fs.writeFileSync(bad, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n')
    const other = http.createServer((req, res) => res.end('other says hi'))
    const otherPort = await listen(other, '127.0.0.1')
    const port = await freePort()
    const base = { listen: `127.0.0.1:${port}`, key, tlsKey }
    fs.writeFileSync(cfg, JSON.stringify({ ...base, tlsCert: cert, allow: [`127.0.0.1:${targetPort}`] }))
    const server = synmux(['server', '--config', cfg])
    await server.waitFor(/listening on .*\(TLS\)/)
    const fwd = await freePort()
    const client = synmux(['client', '--server', `localhost:${port}`, '--key', key, '--tls', '--ca', cert, '--forward', `${fwd}=127.0.0.1:${otherPort}`])
    await client.waitFor(/session to .* up/)
    const tryGet = () => get(fwd).catch(() => 'refused')
    expect(await tryGet()).toBe('refused')
    // the new allow list names the other target, but the certificate does not load: nothing may change
    fs.writeFileSync(cfg, JSON.stringify({ ...base, tlsCert: bad, allow: [`127.0.0.1:${targetPort}`, `127.0.0.1:${otherPort}`] }))
    server.child.kill('SIGHUP')
    await server.waitFor(/SIGHUP: reload failed, nothing changed: /)
    expect(await tryGet()).toBe('refused')
    expect(server.log.some((l) => /SIGHUP: reloaded/.test(l))).toBe(false)
    // the same with a certificate that loads: the allow list and the certificate change together
    fs.writeFileSync(cfg, JSON.stringify({ ...base, tlsCert: cert, allow: [`127.0.0.1:${targetPort}`, `127.0.0.1:${otherPort}`] }))
    server.child.kill('SIGHUP')
    await server.waitFor(/SIGHUP: reloaded .*allow: 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+, TLS certificate re-read/)
    expect(await tryGet()).toBe('other says hi')
    await client.stop()
    await server.stop()
    await close(other)
  })

  it('a wrong fingerprint or an unknown CA: no session', async () => {
    for (const args of [['--fingerprint', 'ab'.repeat(32)], []]) {
      const { client, server } = await tlsPair(args)
      await client.waitFor(/session to .* failed/)
      expect(client.log.some((l) => /session to .* up/.test(l))).toBe(false)
      await client.stop()
      await server.stop()
    }
  })
})

describe('failed-handshake limit per source', () => {
  it('after N failures from an address, its connections are closed unread; the limit is per source', async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`, '--max-failed-handshakes', '3'])
    await server.waitFor(/listening on/)
    // Garbage is refused by the secure channel: counted at once, and drained (no byte back) until the handshake timeout.
    const held: net.Socket[] = []
    // Never 0x01 first (message 1's type): a server then waits for the rest of that message until its handshake timeout.
    const junk = (): Buffer => {
      const b = crypto.randomBytes(64)
      b[0] = 0x80 | b[0]!
      return b
    }
    const garbage = () => {
      const s = net.connect({ host: '127.0.0.1', port })
      s.on('error', () => {})
      s.write(junk())
      held.push(s)
    }
    for (let i = 0; i < 3; i++) garbage()
    // Three failures logged (with --workers they may land on different workers, so none of them need log the block
    // itself); the workers learn each other's failures from the primary over IPC about 1 ms late.
    await until(() => server.log.filter((l) => /handshake from 127\.0\.0\.1 failed/.test(l)).length >= 3, 'three failures logged')
    await new Promise((r) => setTimeout(r, 200))
    const fourth = net.connect({ host: '127.0.0.1', port })
    fourth.on('error', () => {})
    fourth.write(junk())
    await new Promise((r) => fourth.once('close', r))
    await server.waitFor(/refusing 127.0.0.1: too many failed handshakes/)
    for (const s of held) s.destroy()
    // the right key from the same address is refused too (closed unread), until the window passes; the client retries
    const fwd = await freePort()
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${targetPort}`])
    await client.waitFor(/session to .* failed/)
    // another source address is not affected: its connection stays open,
    // waiting for a HELLO, while one from the blocked address is closed at once
    const probe = (localAddress: string) =>
      new Promise<'closed' | 'open'>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress })
        s.on('error', () => {})
        const t = setTimeout(() => (s.destroy(), resolve('open')), 500)
        s.on('close', () => (clearTimeout(t), resolve('closed')))
      })
    expect(await probe('127.0.0.1')).toBe('closed')
    expect(await probe('127.0.0.2')).toBe('open')
    await client.stop()
    await server.stop()
  })
})

describe('command line', () => {
  it('--help on every command', async () => {
    for (const cmd of ['server', 'client', 'keygen', 'demo', 'support']) {
      const r = await run([cmd, '--help'])
      expect(r.code, cmd).toBe(0)
      expect(r.stdout, cmd).toMatch(new RegExp(`Usage: synmux ${cmd}`))
    }
    const top = await run(['--help'])
    expect(top.stdout).toMatch(/server .*\n.*client/s)
  })

  it('usage errors exit 2 with the reason and the help', async () => {
    const cases: [string[], RegExp][] = [
      [['server', ...keys.server], /--listen \[host:\]port is required/],
      [['server', '--listen', 'x:y', ...keys.server], /expected \[host:\]port/],
      [['server', '--listen', '1', ...keys.server, '--bogus'], /unknown option --bogus/],
      [['server', '--listen', '1', '--key', keys.serverKeyFile], /--authorized-keys FILE is required/],
      [['server', '--listen', '1', ...keys.server, '--insecure-plaintext'], /--authorized-keys is for the secure channel/],
      [['server', '--listen', '1', '--key', key, '--authorized-keys', keys.authorizedFile], /is a pre-shared key .* synmux keygen FILE/],
      [['server', '--listen', '1', '--key', keys.serverKeyFile, '--insecure-plaintext'], /is a private key .* synmux keygen --psk/],
      [['client', '--server', '127.0.0.1:1', ...keys.client], /nothing to do/],
      [['client', '--server', '127.0.0.1:1', ...keys.client, '--forward', 'nonsense'], /--forward: expected/],
      [['client', '--server', '127.0.0.1:1', ...keys.client, '--socks', '1', '--log-level', 'loud'], /--log-level must be/],
      [['client', '--server', '127.0.0.1:1', '--key', keys.clientKeyFile, '--socks', '1'], /--server-key BASE64 is required/],
      [['client', '--server', '127.0.0.1:1', '--key', keys.clientKeyFile, '--server-key', 'AAAA', '--socks', '1'], /--server-key: .*44 characters|--server-key: .*32 bytes/],
      [['client', '--server', '127.0.0.1:1', ...keys.client, '--insecure-plaintext', '--socks', '1'], /--server-key is for the secure channel/],
      [['keygen'], /name the private key file/],
      [['nope'], /unknown command 'nope'/],
    ]
    for (const [args, re] of cases) {
      const r = await run(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(re)
    }
    const badKey = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-')), 'k')
    fs.writeFileSync(badKey, 'not a key', { mode: 0o600 })
    // each names the keygen command that makes the key its mode needs
    for (const [args, re] of [
      [['--key', badKey, '--authorized-keys', keys.authorizedFile], /make one with: synmux keygen FILE\)/],
      [['--key', badKey, '--insecure-plaintext'], /make one with: synmux keygen --psk > key\)/],
    ] as const) {
      const r = await run(['server', '--listen', '1', ...args])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(re)
    }
  })

  it('--config mirrors the flags (and flags win)', async () => {
    const port = await freePort()
    const fwd = await freePort()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-cfg-'))
    const serverCfg = path.join(dir, 'server.json')
    const clientCfg = path.join(dir, 'client.json')
    fs.writeFileSync(serverCfg, JSON.stringify({ listen: `127.0.0.1:${port}`, key: keys.serverKeyFile, authorizedKeys: keys.authorizedFile, allow: [`127.0.0.1:${targetPort}`], logLevel: 'debug' }))
    fs.writeFileSync(clientCfg, JSON.stringify({ server: `127.0.0.1:${port}`, key: keys.clientKeyFile, serverKey: keys.serverPublic, forward: [`${fwd}=127.0.0.1:${targetPort}`], logLevel: 'warn' }))
    const server = synmux(['server', '--config', serverCfg])
    await server.waitFor(/listening on/)
    const client = synmux(['client', '--config', clientCfg, '--log-level', 'info'])
    await client.waitFor(/session to .* up/) // info lines shown: the flag beat logLevel 'warn'
    expect(await get(fwd)).toBe('target says hi')
    await server.waitFor(/debug server: connected/)
    fs.writeFileSync(clientCfg, JSON.stringify({ server: 1, bogus: true }))
    const r = await run(['client', '--config', clientCfg])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/unknown key 'bogus'/)
    await client.stop()
    await server.stop()
  })

  it('--stats prints a live status line', async () => {
    const port = await freePort()
    const fwd = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`, '--stats', '--stats-interval', '1'])
    await server.waitFor(/listening on/)
    const client = synmux(['client', '--server', `127.0.0.1:${port}`, ...keys.client, '--forward', `${fwd}=127.0.0.1:${targetPort}`, '--stats', '--stats-interval', '1'])
    await client.waitFor(/session to .* up/)
    await get(fwd)
    await client.waitFor(/session up\s+streams \d+\s+up \d+.* rtt [\d.]+ ms\s+reconnects 0/, 5000)
    await server.waitFor(/sessions 1\s+streams \d+.*clients \[test-client: 1 sess/, 5000)
    await client.stop()
    await server.stop()
  })
})
