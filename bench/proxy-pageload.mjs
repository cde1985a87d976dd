#!/usr/bin/env node
// bench/proxy-pageload: page-load time (a page + N sub-resources) across a
// slow link (two namespaces, bench/lib's delaying TUN forwarder, RTT 50 ms
// by default), fetched by a small Node client that behaves like a browser
// (6 parallel keep-alive connections per origin or proxy), for:
//   direct          the client talks to the origin across the link
//   synmux          synmux client --http-proxy next to the client, synmux
//                   server (its HTTP gateway) next to the origin, one session
//   tinyproxy       Debian's tinyproxy next to the origin (when installed)
//   plain keep-alive proxy (node)   a minimal Node forward proxy next to the
//                   origin, keep-alive on both sides, no session
// 'cold' loads use new client connections (a first visit); 'warm' loads
// reuse the connections the cold load left open.
// Usage: node bench/proxy-pageload.mjs [--rtt 50] [--resources 30] [--rounds 10] [--no-chromium]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { canCreateNamespaces, createDelayedLink } from './lib/netns.mjs'
import { summarize } from './lib/stats.mjs'
import { benchDir as here, cliPath as cli, numArg as arg, waitReady, writeResult } from './lib/proc.mjs'
import { tunnelKeys } from './lib/keys.mjs'

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(`Usage: node bench/proxy-pageload.mjs [options]   (root: network namespaces)
Page-load time, a page + N sub-resources over a delayed link, direct vs
synmux client --http-proxy vs a plain keep-alive Node proxy vs tinyproxy
(if installed); a browser-like Node client and headless Chromium (if
/usr/bin/chromium exists). JSON on stdout and in bench/results/proxy-pageload.json.
  --rtt MS          round-trip time of the link (default 50)
  --resources N     sub-resources on the page (default 30)
  --rounds N        page loads per path and mode (default 10)
  --no-chromium     skip the Chromium measurement`)
  process.exit(0)
}
const rttMs = arg('rtt', 50)
const resources = arg('resources', 30)
const rounds = arg('rounds', 10)

const cap = canCreateNamespaces()
if (!cap.ok) {
  console.log(JSON.stringify({ bench: 'proxy-pageload', skipped: cap.reason }))
  process.exit(0)
}
const TINYPROXY = ['/usr/bin/tinyproxy', '/usr/sbin/tinyproxy'].find((f) => fs.existsSync(f))
const CHROMIUM = fs.existsSync('/usr/bin/chromium') && !process.argv.includes('--no-chromium')
const tinyproxyVersion = TINYPROXY ? execFileSync(TINYPROXY, ['-v'], { encoding: 'utf8' }).trim() : null

async function ready(child, re = /ready (\d+)|HTTP proxy on|listening on|session to .* up/) {
  return Number((await waitReady(child, re))[1] ?? 0)
}

async function waitPort(link, ns, host, port) {
  for (let i = 0; i < 100; i++) {
    const r = await link.run(ns, process.execPath, ['-e', `require('net').connect(${port},'${host}').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`])
    if (r.code === 0) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing listens on ${host}:${port}`)
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-bench-proxy-'))
// The tunnel's default: the secure channel.
const keys = tunnelKeys(tmp)
const pipes = { stdio: ['ignore', 'pipe', 'pipe'] }
const link = await createDelayedLink({ rttMs, name: 'smxpxy' })
let result
try {
  const S = link.server.address
  const origin = link.spawnNode('server', path.join(here, 'proxy', 'origin.mjs'), [S, '8080', String(resources)], pipes)
  await ready(origin)
  const server = link.spawnNode('server', cli, ['server', '--listen', `${S}:9000`, ...keys.serverArgs, '--allow', `${S}:8080`], pipes)
  await ready(server, /listening on/)
  const client = link.spawnNode('client', cli, ['client', '--server', `${S}:9000`, ...keys.clientArgs, '--http-proxy', '127.0.0.1:3128'], pipes)
  await ready(client, /session to .* up/)
  await waitPort(link, 'client', '127.0.0.1', 3128)
  const plain = link.spawnNode('server', path.join(here, 'proxy', 'plain-proxy.mjs'), [S, '8889'], pipes)
  await ready(plain)
  const paths = {
    direct: null,
    synmux: { host: '127.0.0.1', port: 3128 },
    'plain keep-alive proxy (node)': { host: S, port: 8889 },
  }
  if (TINYPROXY) {
    const conf = path.join(tmp, 'tinyproxy.conf')
    fs.writeFileSync(conf, [`User nobody`, `Group nogroup`, `Port 8888`, `Listen ${S}`, `Timeout 600`, `MaxClients 200`, `Allow 198.18.0.0/15`, `LogLevel Critical`, `DisableViaHeader Yes`, ''].join('\n'))
    link.exec('server', TINYPROXY, ['-d', '-c', conf], pipes)
    await waitPort(link, 'server', S, 8888)
    paths.tinyproxy = { host: S, port: 8888 }
  }
  const url = `http://${S}:8080/`
  const r = await link.run('client', process.execPath, [path.join(here, 'proxy', 'browser.mjs'), JSON.stringify(paths), url, String(rounds)], { timeoutMs: 600_000 })
  if (r.code !== 0) throw new Error(`browser failed: ${r.stderr}`)
  const out = JSON.parse(r.stdout.trim().split('\n').pop())
  const sum = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, summarize(v)]))
  const cold = sum(out.cold)
  const warm = sum(out.warm)
  let browser = null
  if (CHROMIUM) {
    const c = await link.run('client', process.execPath, [path.join(here, 'proxy', 'chromium.mjs'), JSON.stringify(paths), url, String(rounds)], { timeoutMs: 900_000 })
    if (c.code !== 0) throw new Error(`chromium failed: ${c.stderr}`)
    browser = JSON.parse(c.stdout.trim().split('\n').pop())
  }
  const inRtts = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, +(v.median / rttMs).toFixed(2)]))
  result = {
    bench: 'proxy-pageload',
    date: new Date().toISOString(),
    node: process.version,
    link: 'netns + TUN forwarder (bench/lib)',
    rttMs,
    rounds,
    page: { subResources: out.subResources, bytes: out.pageBytes },
    client: 'Node, like a browser: the page, then every sub-resource it names over up to 6 keep-alive connections per origin (per proxy when proxied)',
    coldMs: cold,
    warmMs: warm,
    coldInRtts: inRtts(cold),
    warmInRtts: inRtts(warm),
    deadConnectionRetries: out.retries,
    ...(browser
      ? {
          chromium: {
            version: browser.chromium,
            note: 'headless Debian Chromium in the client namespace (playwright-core), loadEventEnd of the navigation; cold: a new browser context per load, warm: the page again in it',
            coldMs: sum(browser.cold),
            warmMs: sum(browser.warm),
            coldInRtts: inRtts(sum(browser.cold)),
            warmInRtts: inRtts(sum(browser.warm)),
          },
        }
      : { chromium: 'not measured: /usr/bin/chromium is not installed (or --no-chromium)' }),
    speedupColdVsDirect: +(cold.direct.median / cold.synmux.median).toFixed(2),
    notes: [
      'direct: origin in the server namespace, the client across the link; synmux: proxy client on 127.0.0.1 in the client namespace, server + origin in the server namespace, one session set up before measuring',
      'deadConnectionRetries: requests the client (like a browser) had to send again because a reused keep-alive connection turned out closed',
      'cold: a new set of client connections per page load (a first visit); warm: the next load on the same connections',
      tinyproxyVersion ? `tinyproxy: Debian's ${tinyproxyVersion} next to the origin (it closes every client connection after one response without sending Connection: close, the 1999 keep-alive bug: clients find out by a failed reuse, resend, and pay a new handshake per request)` : 'tinyproxy not measured: not installed (apt-get install tinyproxy)',
      'plain keep-alive proxy (node): bench/proxy/plain-proxy.mjs next to the origin, keep-alive both sides: what a proxy without the session can do at best',
    ],
  }
} finally {
  await link.close()
  fs.rmSync(tmp, { recursive: true, force: true })
}
writeResult('proxy-pageload', result)
