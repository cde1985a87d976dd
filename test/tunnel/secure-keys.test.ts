/**
 * Keys and operation of the secure channel through the real CLI (issue
 * 14): `synmux keygen` (mode 0600, refuses to overwrite, prints the public
 * key; the tools refuse a key file others can read), a client given the
 * wrong server key and a client key the server does not authorize (the
 * server sends zero bytes and logs the source and the reason; the client
 * says so in one clear line and exits 1), and SIGHUP re-reading the
 * authorized keys (a removed key's sessions closed at once; a file that
 * does not parse keeps the old set).
 */
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodePublicKey, derivePublicKey, encodePublicKey, readPrivateKeyFile } from 'synmux'
import { close, listen } from '../helpers'
import { freePort, httpRequest, keyFile, runCli, secureKeys, stopAll, synmux, type SecureKeys } from './cli'
import { SecureRelay } from './secure-relay'

let keys: SecureKeys
let target: http.Server
let targetPort: number

beforeAll(async () => {
  keys = secureKeys('alice')
  target = http.createServer((req, res) => res.end(`hi ${req.url}`))
  targetPort = await listen(target, '127.0.0.1')
})

afterAll(async () => {
  await stopAll()
  await close(target)
})

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-keygen-'))

describe('synmux keygen', () => {
  it('writes a private key with mode 0600 and prints its public key; refuses to overwrite without --force', async () => {
    const file = path.join(tmp(), 'k.key')
    const r = await runCli(['keygen', file])
    expect(r.code).toBe(0)
    const pub = r.stdout.trim()
    expect(pub).toMatch(/^[A-Za-z0-9+/]{43}=$/)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(encodePublicKey(derivePublicKey(readPrivateKeyFile(file)))).toBe(pub)
    expect(decodePublicKey(pub).length).toBe(32)
    // The same with --out; an existing file is kept unless --force.
    const again = await runCli(['keygen', '--out', file])
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/exists already \(--force replaces it\)/)
    expect(encodePublicKey(derivePublicKey(readPrivateKeyFile(file)))).toBe(pub)
    const forced = await runCli(['keygen', '--out', file, '--force'])
    expect(forced.code).toBe(0)
    expect(forced.stdout.trim()).not.toBe(pub)
    // --psk: the pre-shared key of --insecure-plaintext and --tls, on stdout.
    const psk = await runCli(['keygen', '--psk'])
    expect(psk.stdout).toMatch(/^synmux-psk-v1:[A-Za-z0-9+/]{43}=\n$/)
  })

  it('the server and the client refuse a private key file others can read', async () => {
    const dir = tmp()
    const file = path.join(dir, 'open.key')
    fs.copyFileSync(keys.serverKeyFile, file)
    fs.chmodSync(file, 0o644)
    const s = await runCli(['server', '--listen', '127.0.0.1:1', '--key', file, '--authorized-keys', keys.authorizedFile, '--allow', '127.0.0.1:1'])
    expect(s.code).toBe(1)
    expect(s.stderr).toMatch(/accessible by others \(mode 0644\); run: chmod 600/)
    fs.copyFileSync(keys.clientKeyFile, file)
    fs.chmodSync(file, 0o640)
    const c = await runCli(['client', '--server', '127.0.0.1:1', '--key', file, '--server-key', keys.serverPublic, '--socks', '0'])
    expect(c.code).toBe(1)
    expect(c.stderr).toMatch(/accessible by others \(mode 0640\)/)
  })
})

describe('keys that do not match', () => {
  it('a wrong --server-key: the server cannot read the first flight and sends nothing; the client exits 1 with one clear line', async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`])
    await server.waitFor(/listening on/)
    const relay = new SecureRelay(port)
    await relay.listen()
    const wrong = secureKeys().serverPublic
    const t0 = Date.now()
    const r = await runCli(['client', '--server', `127.0.0.1:${relay.port}`, '--key', keys.clientKeyFile, '--server-key', wrong, '--forward', `${await freePort()}=127.0.0.1:${targetPort}`])
    expect(r.code).toBe(1)
    const errors = r.stderr.split('\n').filter((l) => / error client: /.test(l))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/the server 127\.0\.0\.1:\d+ refused the handshake \(it (stayed silent|closed the connection) without a byte\): --server-key is not that server's key, or the server does not authorize this client's key [A-Za-z0-9+/]{43}=$/)
    expect(r.stderr).not.toMatch(/session to .* up/)
    expect(relay.pairs.length).toBe(1)
    expect(relay.pairs[0]!.up).toBeGreaterThan(112)
    expect(relay.pairs[0]!.down).toBe(0)
    await server.waitFor(/handshake from 127\.0\.0\.1 failed: secure channel: the first flight failed authentication: the client was given another --server-key/)
    console.log(`wrong server key: the client exited after ${Date.now() - t0} ms (the server drains until its 10 s handshake timeout)`)
    relay.close()
    await server.stop()
  })

  it('a client key the server does not authorize: zero bytes back, the source and the key logged; the client exits 1', async () => {
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`, '--handshake-timeout', '3000'])
    await server.waitFor(/listening on/)
    const relay = new SecureRelay(port)
    await relay.listen()
    const stranger = keys.another(null)
    const r = await runCli(['client', '--server', `127.0.0.1:${relay.port}`, ...stranger.args, '--forward', `${await freePort()}=127.0.0.1:${targetPort}`])
    expect(r.code).toBe(1)
    const strangerPub = encodePublicKey(stranger.keys.publicKey)
    expect(r.stderr).toContain(`does not authorize this client's key ${strangerPub}`)
    expect(relay.pairs[0]!.down).toBe(0)
    const line = await server.waitFor(/handshake from .* failed/)
    expect(line).toContain(`handshake from 127.0.0.1 failed: secure channel: client key ${strangerPub} is not authorized`)
    relay.close()
    await server.stop()
  })
})

describe('modes that do not match', () => {
  it('a secure client of an --insecure-plaintext server, a clear-text client of a secure server: no session, and each server says which', async () => {
    const psk = keyFile()
    const [plainPort, securePort] = [await freePort(), await freePort()]
    const plain = synmux(['server', '--listen', `127.0.0.1:${plainPort}`, '--key', psk, '--insecure-plaintext', '--allow', `127.0.0.1:${targetPort}`])
    const sec = synmux(['server', '--listen', `127.0.0.1:${securePort}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`])
    await plain.waitFor(/listening on .* INSECURE clear text/)
    await sec.waitFor(/listening on .* secure channel/)
    const a = synmux(['client', '--server', `127.0.0.1:${plainPort}`, ...keys.client, '--forward', `${await freePort()}=127.0.0.1:${targetPort}`])
    const b = synmux(['client', '--server', `127.0.0.1:${securePort}`, '--key', psk, '--insecure-plaintext', '--forward', `${await freePort()}=127.0.0.1:${targetPort}`])
    await plain.waitFor(/handshake from 127\.0\.0\.1 failed: a secure-channel client: this server runs --insecure-plaintext/)
    await sec.waitFor(/handshake from 127\.0\.0\.1 failed: secure channel: a clear-text synmux HELLO: the client runs --insecure-plaintext, and this server requires the secure channel/)
    expect([...a.log, ...b.log].some((l) => /session to .* up/.test(l))).toBe(false)
    for (const p of [a, b, plain, sec]) await p.stop()
  })
})

describe('SIGHUP re-reads --authorized-keys', () => {
  it('a removed key: its sessions are closed at once and its client exits 1; others go on; a file that does not parse keeps the old set', async () => {
    const k = secureKeys('alice')
    const bob = k.another('bob')
    const port = await freePort()
    const server = synmux(['server', '--listen', `127.0.0.1:${port}`, ...k.server, '--allow', `127.0.0.1:${targetPort}`, '--stats', '--stats-interval', '1'])
    await server.waitFor(/listening on .* 2 authorized keys/)
    const [fa, fb] = [await freePort(), await freePort()]
    const alice = synmux(['client', '--server', `127.0.0.1:${port}`, ...k.client, '--forward', `${fa}=127.0.0.1:${targetPort}`])
    const bobc = synmux(['client', '--server', `127.0.0.1:${port}`, ...bob.args, '--forward', `${fb}=127.0.0.1:${targetPort}`])
    await alice.waitFor(/session to .* up/)
    await bobc.waitFor(/session to .* up/)
    expect((await httpRequest(fb, '/bob')).body.toString()).toBe('hi /bob')
    // Per-client names in the server's log and stats line.
    await server.waitFor(/session from 127\.0\.0\.1 \(bob\) established/)
    await server.waitFor(/clients \[alice: 1 sess .* \| bob: 1 sess/, 5000)
    // A file that does not parse: the old set stays.
    const good = fs.readFileSync(k.authorizedFile, 'utf8')
    fs.writeFileSync(k.authorizedFile, good + 'not-a-key someone\n')
    server.child.kill('SIGHUP')
    await server.waitFor(/SIGHUP: authorized keys, line \d+: 'not-a-key' is not a public key .*; keeping the authorized keys loaded before/)
    expect((await httpRequest(fb, '/bob-still')).body.toString()).toBe('hi /bob-still')
    // Bob's key removed.
    const t0 = Date.now()
    fs.writeFileSync(k.authorizedFile, good.split('\n').filter((l) => !l.endsWith(' bob')).join('\n'))
    server.child.kill('SIGHUP')
    await server.waitFor(/SIGHUP: 1 authorized key loaded from .*; closed the sessions of bob/)
    const exit = await new Promise<number | null>((r) => (bobc.child.exitCode !== null ? r(bobc.child.exitCode) : bobc.child.once('exit', (c) => r(c))))
    expect(exit).toBe(1)
    expect(Date.now() - t0).toBeLessThan(5000) // at once, not at a timeout
    expect(bobc.log.join('\n')).toMatch(/error client: the server 127\.0\.0\.1:\d+ no longer authorizes this client's key/)
    // Alice goes on.
    expect((await httpRequest(fa, '/alice')).body.toString()).toBe('hi /alice')
    expect(server.child.exitCode).toBe(null)
  })
})
