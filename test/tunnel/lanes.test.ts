/**
 * `synmux client --lanes N` end to end through the real CLI processes: the
 * client's session runs over N connections to the server (counted by a
 * loopback relay in between), and a forwarded connection's bytes arrive
 * intact both ways.
 */
import crypto from 'node:crypto'
import net from 'node:net'
import { afterAll, expect, it } from 'vitest'
import { close, listen, readAll, sha256 } from '../helpers'
import { freePort, secureKeys, stopAll, synmux } from './cli'

const servers: net.Server[] = []
afterAll(async () => {
  await stopAll()
  for (const s of servers) await close(s)
})

it('synmux client --lanes 3: one session over 3 connections; 6 MiB each way intact', async () => {
  const keys = secureKeys()
  // Target: reads to EOF, answers with the sha256 of what it got, then the same bytes.
  const target = net.createServer({ allowHalfOpen: true }, (s) => {
    const c: Buffer[] = []
    s.on('data', (d) => c.push(d))
    s.on('end', () => {
      const all = Buffer.concat(c)
      s.end(Buffer.concat([Buffer.from(sha256(all)), all]))
    })
  })
  servers.push(target)
  const targetPort = await listen(target, '127.0.0.1')
  const serverPort = await freePort()
  const server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${targetPort}`])
  await server.waitFor(/listening on/)
  // A relay in front of the server that counts the client's connections.
  let connections = 0
  const relay = net.createServer({ allowHalfOpen: true }, (a) => {
    connections++
    const b = net.connect({ port: serverPort, host: '127.0.0.1', allowHalfOpen: true })
    a.pipe(b).on('error', () => {})
    b.pipe(a).on('error', () => {})
    a.on('error', () => b.destroy())
    b.on('error', () => a.destroy())
  })
  servers.push(relay)
  const relayPort = await listen(relay, '127.0.0.1')
  const fwd = await freePort()
  const client = synmux(['client', '--server', `127.0.0.1:${relayPort}`, ...keys.client, '--lanes', '3', '--forward', `${fwd}=127.0.0.1:${targetPort}`])
  await client.waitFor(/session to .* up/)
  // Lane 0 plus two JOINed lanes.
  for (const end = Date.now() + 10_000; connections < 3 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10))
  expect(connections).toBe(3)
  const data = crypto.randomBytes(6 << 20)
  const s = net.connect({ host: '127.0.0.1', port: fwd, allowHalfOpen: true })
  s.end(data)
  const back = await readAll(s)
  expect(back.subarray(0, 64).toString()).toBe(sha256(data))
  expect(sha256(back.subarray(64))).toBe(sha256(data))
  expect(connections).toBe(3)
}, 60_000)

it('--lanes is validated', async () => {
  const bad = synmux(['client', '--server', '127.0.0.1:1', ...secureKeys().client, '--lanes', '0', '--forward', '1=127.0.0.1:2'])
  const code = await new Promise((r) => bad.child.once('exit', r))
  expect(code).toBe(2)
})
