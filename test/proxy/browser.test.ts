/**
 * A real browser through the proxy: Debian's Chromium, headless, driven by
 * playwright-core, pointed at `synmux client --http-proxy` (the real CLI
 * processes), loads a local page with 100 sub-resources (scripts,
 * stylesheets, images). Every one loads, byte-identical to what the origin
 * sent, and the server saw exactly one session.
 * Which platforms must run it: Linux under CI — .ci/run on Debian (it
 * installs Debian's Chromium with apt-get) and the workflow's Linux jobs
 * (ubuntu-24.04 / ubuntu-24.04-arm: Google Chrome, named by SYNMUX_CHROMIUM).
 * There a missing browser fails the test. macOS and Windows runners have no
 * Debian Chromium: there, and on a developer machine without one, the test
 * is skipped with the reason printed.
 */
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listen, skipReason } from '../helpers'
import { freePort, secureKeys, stopAll, synmux, type Proc } from '../tunnel/cli'
import { pattern, sha256 } from './helpers'

const CHROMIUM = process.env.SYNMUX_CHROMIUM || '/usr/bin/chromium'
const missing = !fs.existsSync(CHROMIUM) ? `${CHROMIUM} is not installed (.ci/run: apt-get install -y --no-install-recommends chromium)` : false
/** Linux under CI must run the browser test: never skipped there. */
const mustRun = !!process.env.CI && process.env.CI !== 'false' && process.platform === 'linux'
const skip = mustRun ? false : process.platform !== 'linux' ? `no Debian Chromium on ${process.platform}: the browser test runs on Linux` : missing

/** A valid PNG of w x h pixels of pattern colours (so every image differs). */
function png(w: number, h: number, seed: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  const crc = (b: Buffer) => {
    let c = 0xffffffff
    for (const x of b) c = crcTable[(c ^ x) & 255]! ^ (c >>> 8)
    return (c ^ 0xffffffff) >>> 0
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type), data])
    const c = Buffer.alloc(4)
    c.writeUInt32BE(crc(td))
    return Buffer.concat([len, td, c])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 2 // RGB
  const px = pattern(w * h * 3, seed)
  const raw = Buffer.alloc((w * 3 + 1) * h)
  for (let y = 0; y < h; y++) px.copy(raw, y * (w * 3 + 1) + 1, y * w * 3, (y + 1) * w * 3)
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))])
}

/** The page and its 100 sub-resources: 40 scripts, 30 stylesheets, 30 images, of varied sizes. */
function site(): Map<string, { type: string; body: Buffer }> {
  const files = new Map<string, { type: string; body: Buffer }>()
  const tags: string[] = []
  for (let i = 0; i < 40; i++) {
    const pad = pattern(500 + ((i * 7919) % 150_000), i).toString('base64')
    files.set(`/s/${i}.js`, { type: 'text/javascript', body: Buffer.from(`window.__loaded.push(${i}) /* ${pad} */\n`) })
    tags.push(`<script src="/s/${i}.js"></script>`)
  }
  for (let i = 0; i < 30; i++) {
    const pad = pattern(300 + ((i * 104_729) % 80_000), 100 + i).toString('hex')
    files.set(`/c/${i}.css`, { type: 'text/css', body: Buffer.from(`.c${i} { margin: ${i}px } /* ${pad} */\n`) })
    tags.push(`<link rel="stylesheet" href="/c/${i}.css">`)
  }
  for (let i = 0; i < 30; i++) {
    const side = 8 + ((i * 37) % 200)
    files.set(`/i/${i}.png`, { type: 'image/png', body: png(side, side, 200 + i) })
    tags.push(`<img src="/i/${i}.png" id="img${i}">`)
  }
  const html = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script>window.__loaded = []</script>${tags.filter((t) => !t.startsWith('<img')).join('')}</head><body>${tags.filter((t) => t.startsWith('<img')).join('')}</body></html>`
  files.set('/', { type: 'text/html', body: Buffer.from(html) })
  return files
}

let origin: http.Server
let originPort: number
const served = new Map<string, number>()
const viaSeen = new Set<string>()
let server: Proc
let client: Proc
let proxyPort: number
const files = site()

beforeAll(async () => {
  if (skip) return
  if (missing) throw new Error(`CI=${process.env.CI}: ${missing}`)
  origin = http.createServer((req, res) => {
    viaSeen.add(String(req.headers.via))
    const f = files.get(req.url ?? '')
    served.set(req.url ?? '', (served.get(req.url ?? '') ?? 0) + 1)
    if (!f) {
      res.writeHead(404, { 'content-length': 0 })
      return res.end()
    }
    res.writeHead(200, { 'content-type': f.type, 'content-length': f.body.length, 'cache-control': 'no-store' })
    res.end(f.body)
  })
  originPort = await listen(origin, '127.0.0.1')
  const keys = secureKeys()
  const serverPort = await freePort()
  server = synmux(['server', '--listen', `127.0.0.1:${serverPort}`, ...keys.server, '--allow', `127.0.0.1:${originPort}`])
  await server.waitFor(/listening on/)
  proxyPort = await freePort()
  client = synmux(['client', '--server', `127.0.0.1:${serverPort}`, ...keys.client, '--http-proxy', `127.0.0.1:${proxyPort}`])
  await client.waitFor(/HTTP proxy on/)
  await client.waitFor(/session to .* up/)
}, 30_000)

afterAll(async () => {
  await stopAll()
  if (origin) await new Promise((r) => origin.close(r))
})

describe('Chromium through synmux client --http-proxy', () => {
  it.skipIf(skipReason(skip))('loads a page with 100 sub-resources: all load, byte-identical, over one session', async () => {
    const { chromium } = await import('playwright-core')
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-chromium-'))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        `--proxy-server=http://127.0.0.1:${proxyPort}`,
        '--proxy-bypass-list=<-loopback>', // Chromium never proxies loopback unless told so
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    })
    try {
      const page = await context.newPage()
      const bodies = new Map<string, Promise<Buffer>>()
      page.on('response', (r) => bodies.set(new URL(r.url()).pathname, r.body()))
      const failed: string[] = []
      page.on('requestfailed', (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`))
      const res = await page.goto(`http://127.0.0.1:${originPort}/`, { waitUntil: 'load', timeout: 30_000 })
      expect(res?.status()).toBe(200)
      expect(failed).toEqual([])
      // every script ran, every stylesheet applied, every image decoded
      const state = await page.evaluate(() => ({
        scripts: (window as unknown as { __loaded: number[] }).__loaded.slice().sort((a, b) => a - b),
        sheets: document.styleSheets.length,
        images: Array.from(document.images).filter((i) => i.complete && i.naturalWidth > 0).length,
      }))
      expect(state.scripts).toEqual(Array.from({ length: 40 }, (_, i) => i))
      expect(state.sheets).toBe(30)
      expect(state.images).toBe(30)
      // byte-identical: what the browser received is what the origin sent
      let compared = 0
      for (const [p, f] of files) {
        const got = await bodies.get(p)
        expect(got, p).toBeDefined()
        expect(sha256(got!), p).toBe(sha256(f.body))
        compared++
      }
      expect(compared).toBe(101)
      // it all went through the proxy (the gateway added Via), once each
      expect([...viaSeen]).toEqual(['1.1 synmux'])
      for (const p of files.keys()) expect(served.get(p), p).toBe(1)
      // and over exactly one session
      expect(server.log.filter((l) => /session from .* established/.test(l))).toHaveLength(1)
      expect(client.log.filter((l) => /session to .* up/.test(l))).toHaveLength(1)
    } finally {
      await context.close()
      fs.rmSync(profile, { recursive: true, force: true })
    }
  }, 90_000)
})

