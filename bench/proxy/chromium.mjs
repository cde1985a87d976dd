// bench/proxy chromium: page-load time in headless Debian Chromium (driven
// by playwright-core), one browser per path (a proxy or none), loads
// interleaved. cold: a new browser context per load (its own network
// context: new connections); warm: the same page again in that context.
// The time is the navigation's loadEventEnd (Navigation Timing).
// Usage: node chromium.mjs PATHS_JSON URL ROUNDS. Prints one JSON line.
import { chromium } from 'playwright-core'
const [pathsJson, url, roundsArg] = process.argv.slice(2)
const paths = JSON.parse(pathsJson)
const rounds = Number(roundsArg)
const common = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu', '--disable-quic', '--disable-dev-shm-usage']
const browsers = {}
for (const [k, via] of Object.entries(paths)) {
  // launch() gives each browser a fresh, empty profile of its own
  browsers[k] = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [...common, ...(via ? [`--proxy-server=http://${via.host}:${via.port}`, '--proxy-bypass-list=<-loopback>'] : [])],
  })
}
const loadTime = (page) => page.evaluate(() => {
  const n = performance.getEntriesByType('navigation')[0]
  return n.loadEventEnd - n.startTime
})
async function once(k) {
  const ctx = await browsers[k].newContext()
  try {
    const page = await ctx.newPage()
    let failed = 0
    page.on('requestfailed', () => failed++)
    await page.goto(url, { waitUntil: 'load', timeout: 60_000 })
    const cold = await loadTime(page)
    await page.goto(`${url}?again`, { waitUntil: 'load', timeout: 60_000 })
    const warm = await loadTime(page)
    if (failed) throw new Error(`${k}: ${failed} requests failed`)
    return { cold, warm }
  } finally {
    await ctx.close()
  }
}
const cold = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
const warm = Object.fromEntries(Object.keys(paths).map((k) => [k, []]))
try {
  for (const k of Object.keys(paths)) await once(k) // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const k of Object.keys(paths)) {
      const t = await once(k)
      cold[k].push(t.cold)
      warm[k].push(t.warm)
    }
  }
} finally {
  for (const b of Object.values(browsers)) await b.close()
}
console.log(JSON.stringify({ chromium: (await import('node:child_process')).execFileSync('/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim(), cold, warm }))
