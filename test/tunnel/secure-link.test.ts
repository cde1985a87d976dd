/**
 * The secure tunnel across a real link between two network namespaces
 * (bench/lib: a TUN forwarder that can add delay):
 *
 * - a tcpdump capture of the link while requests go through a port
 *   forward, SOCKS5 and the HTTP proxy of `synmux client` (default secure
 *   mode) holds no byte of those requests; the same capture of an
 *   `--insecure-plaintext` pair does (so the capture would have seen it);
 * - over a 200 ms RTT: the first request of a cold session (TFO cookie
 *   warm) and a new connection on an established session each complete in
 *   one round trip; an echo stream whose connection is killed stalls for
 *   about one round trip while the session resumes.
 */
import { execFileSync, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { canUseNetns, skipReason } from '../helpers'
import { CLI, keyFile, secureKeys } from './cli'

const hasTcpdump = (() => {
  try {
    execFileSync('tcpdump', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
const noNetns = canUseNetns() ? false : 'needs root and `ip netns` (network namespaces)'
const noCapture = noNetns || (hasTcpdump ? false : 'tcpdump is not installed (.ci/run installs it)')

type Link = {
  client: { address: string }
  server: { address: string }
  exec(ns: string, cmd: string, args: string[], opts?: object): ChildProcess
  spawnNode(ns: string, script: string, args: string[], opts?: object): ChildProcess
  run(ns: string, cmd: string, args: string[], opts?: object): Promise<{ code: number; stdout: string; stderr: string }>
  close(): Promise<void>
}

const links: Link[] = []
afterAll(async () => {
  for (const l of links) await l.close()
})

async function newLink(rttMs: number): Promise<Link> {
  const { createDelayedLink } = await import('../../bench/lib/netns.mjs')
  const link = (await createDelayedLink({ rttMs, name: 'smxsec' })) as Link
  links.push(link)
  return link
}

/** Resolves with the first line of `child`'s output matching `re`. */
function waitLine(child: ChildProcess, re: RegExp, ms = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${buf}`)), ms)
    const on = (d: Buffer) => {
      buf += d
      const m = buf.split('\n').find((l) => re.test(l))
      if (m !== undefined) {
        clearTimeout(t)
        resolve(m)
      }
    }
    child.stdout?.on('data', on)
    child.stderr?.on('data', on)
  })
}

const pipes = { stdio: ['ignore', 'pipe', 'pipe'] }
const FIXTURES = path.join(__dirname, 'fixtures')

/** An HTTP target in the server namespace that answers with the request line and headers it got. */
const TARGET = `require('http').createServer((q, r) => r.end('seen ' + q.url + ' ' + (q.headers['x-secret'] || ''))).listen(8080, '127.0.0.1', () => console.log('ready'))`
/** A raw echo target in the server namespace. */
const ECHO = `require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s) }).listen(7007, '127.0.0.1', () => console.log('ready'))`

describe.skipIf(skipReason(noCapture))('a capture of the link (tcpdump)', () => {
  it('holds no byte of requests through the forward, SOCKS5 and the HTTP proxy; in --insecure-plaintext it does', { timeout: 90_000 }, async () => {
    const link = await newLink(0)
    const S = link.server.address
    const target = link.exec('server', process.execPath, ['-e', TARGET], pipes)
    await waitLine(target, /ready/)
    const keys = secureKeys('capture')
    const psk = keyFile()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-pcap-'))
    const capture = async (mode: 'secure' | 'plaintext', port: number): Promise<{ pcap: Buffer; marker: string; result: Record<string, string> }> => {
      const pcapFile = path.join(dir, `${mode}.pcap`)
      const dump = link.exec('server', 'tcpdump', ['-i', 'dlink0', '--immediate-mode', '-U', '-s', '0', '-w', pcapFile, 'tcp', 'port', String(port)], pipes)
      await waitLine(dump, /listening on/)
      // The capture is live once it has seen a packet: a connect to the port nothing listens on yet (SYN, RST).
      for (let i = 0; i < 50 && !(fs.existsSync(pcapFile) && fs.statSync(pcapFile).size > 24); i++) {
        await link.run('client', process.execPath, ['-e', `require('net').connect(${port}, '${S}').on('error', () => {})`])
        await new Promise((res) => setTimeout(res, 100))
      }
      const auth = mode === 'secure' ? { server: keys.server, client: keys.client } : { server: ['--key', psk, '--insecure-plaintext'], client: ['--key', psk, '--insecure-plaintext'] }
      const server = link.spawnNode('server', CLI, ['server', '--listen', `${S}:${port}`, ...auth.server, '--allow', '127.0.0.1:8080'], pipes)
      await waitLine(server, /listening on/)
      const client = link.spawnNode('client', CLI, ['client', '--server', `${S}:${port}`, ...auth.client, '--forward', '7101=127.0.0.1:8080', '--socks', '7102', '--http-proxy', '7103'], pipes)
      await waitLine(client, /session to .* up/)
      const marker = `SeCrEt-${crypto.randomBytes(8).toString('hex')}`
      const r = await link.run('client', process.execPath, [path.join(FIXTURES, 'secret-requests.mjs'), '7101', '7102', '7103', '127.0.0.1', '8080', marker], { timeoutMs: 30_000 })
      expect(r.code, r.stderr).toBe(0)
      const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>
      client.kill('SIGTERM')
      server.kill('SIGTERM')
      await new Promise((res) => setTimeout(res, 300))
      dump.kill('SIGINT')
      await new Promise((res) => dump.once('exit', res))
      return { pcap: fs.readFileSync(pcapFile), marker, result }
    }
    const sec = await capture('secure', 9000)
    for (const k of ['forward', 'socks', 'proxy']) expect(sec.result[k], k).toContain(`seen /${k}-${sec.marker} ${sec.marker}`)
    expect(sec.pcap.indexOf(sec.marker)).toBe(-1)
    expect(sec.pcap.indexOf('X-Secret')).toBe(-1)
    expect(sec.pcap.indexOf('SYNMUX')).toBe(-1) // not even the session HELLO
    // The control: the same exchange in clear text, captured the same way, shows the marker.
    const plain = await capture('plaintext', 9001)
    for (const k of ['forward', 'socks', 'proxy']) expect(plain.result[k], k).toContain(`seen /${k}-${plain.marker}`)
    expect(plain.pcap.indexOf(plain.marker)).toBeGreaterThan(0)
    expect(plain.pcap.indexOf('SYNMUX')).toBeGreaterThan(0)
    // And the secure capture is of the same exchange (as many bytes or more: the records' lengths and tags).
    expect(sec.pcap.length).toBeGreaterThan(plain.pcap.length * 0.9)
    console.log(`capture: secure ${sec.pcap.length} bytes of pcap without the marker; plaintext ${plain.pcap.length} bytes, marker at offset ${plain.pcap.indexOf(plain.marker)}`)
  })
})

describe.skipIf(skipReason(noNetns))('round trips over a 200 ms link', () => {
  it('a cold session carries its first request in the first flight (one round trip with a warm TFO cookie); a new connection takes one; a resume stalls about one', { timeout: 90_000 }, async () => {
    const RTT = 200
    const link = await newLink(RTT)
    const S = link.server.address
    const echo = link.exec('server', process.execPath, ['-e', ECHO], pipes)
    await waitLine(echo, /ready/)
    const keys = secureKeys('rtt')
    const server = link.spawnNode('server', CLI, ['server', '--listen', `${S}:9000`, ...keys.server, '--allow', '127.0.0.1:7007'], pipes)
    await waitLine(server, /listening on/)
    const r = await link.run('client', process.execPath, [path.join(FIXTURES, 'secure-rtt.mjs'), S, '9000', '127.0.0.1', '7007', keys.clientKeyFile, keys.serverPublic], { timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!)
    console.log(`RTT ${RTT} ms: cold session's first request ${out.coldMs.toFixed(1)} ms (0-RTT ${out.coldEarlyData}, TFO ${out.coldTfo}), new connection ${out.newStreamMs.toFixed(1)} ms, resume stalls ${out.resume.map((x: { stallMs: number }) => x.stallMs.toFixed(1)).join(', ')} ms`)
    expect(out.coldEarlyData).toBe('accepted')
    expect(out.coldTfo).toBe(true)
    // One round trip plus processing, where a second round trip would add RTT.
    expect(out.coldMs).toBeGreaterThan(RTT * 0.95)
    expect(out.coldMs).toBeLessThan(RTT * 1.5)
    expect(out.newStreamMs).toBeLessThan(RTT * 1.5)
    // The echo's gap: the old connection's last answer to the first answer on the new one (plus up to 5 ms of the echo's pace).
    for (const x of out.resume) expect(x.stallMs).toBeLessThan(RTT * 1.5)
    expect(out.resumeEarlyData).toBe('accepted')
    server.kill('SIGTERM')
  })
})
