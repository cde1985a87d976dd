/**
 * The published package, used the way a user gets it: `npm pack`, install
 * the tarball into an empty project with --ignore-scripts (no compiler, no
 * build/), then require() and import it. The prebuilt binary must load and
 * connectWithData must work; without a prebuild the pure-JS fallback must.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT } from '../helpers'

const prebuildDir = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`)
const run = (cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })

let work: string
let app: string
let tarball: string

/** A script run inside the consumer project: a TFO server and two connects; prints JSON. */
const CHECK = (flavour: 'cjs' | 'esm') => `
${flavour === 'cjs' ? "const synmux = require('synmux')" : "import * as synmux from 'synmux'"}
const gyp = ${flavour === 'cjs' ? "require('node-gyp-build')" : "(await import('node:module')).createRequire(import.meta.url)('node-gyp-build')"}
const path = ${flavour === 'cjs' ? "require('node:path')" : "(await import('node:path')).default"}
const pkg = path.dirname(${flavour === 'cjs' ? "require.resolve('synmux/package.json')" : "(await import('node:module')).createRequire(import.meta.url).resolve('synmux/package.json')"})
let loaded = null
try { loaded = path.relative(pkg, gyp.path(pkg)) } catch (e) { loaded = 'none: ' + e.message.split('\\n')[0] }
const { connectWithData, createServer, fastOpenSupport } = synmux
const server = createServer((s) => { const c = []; s.on('data', (d) => c.push(d)); s.on('end', () => s.end(Buffer.concat(c))) })
await new Promise((r) => server.listen(0, '127.0.0.1', r))
const results = []
for (let i = 0; i < 2; i++) {
  const socket = await connectWithData({ host: '127.0.0.1', port: server.address().port }, 'hello ${flavour}')
  socket.end()
  const chunks = []
  for await (const c of socket) chunks.push(c)
  results.push({ echo: Buffer.concat(chunks).toString(), fastOpen: socket.fastOpen })
}
server.close()
console.log(JSON.stringify({ loaded, support: fastOpenSupport(), results, exports: Object.keys(synmux).sort() }))
`

beforeAll(() => {
  if (!fs.existsSync(prebuildDir) || fs.readdirSync(prebuildDir).length === 0) {
    // `npm run prebuild` (as .ci/run does); build it here if a developer has not.
    run('npm', ['run', 'prebuild', '--silent'], ROOT)
  }
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-pack-'))
  // dist/ is built by `pretest`; pack it as is.
  const out = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT))
  tarball = path.join(work, out[0].filename)
  app = path.join(work, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball], app)
}, 240_000)

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe('the packed package', () => {
  it('ships dist/, prebuilds/ and the sources for a fallback compile, and no build/', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n')
    expect(files).toContain('package/dist/cjs/index.js')
    expect(files).toContain('package/dist/cjs/index.d.ts')
    expect(files).toContain('package/dist/esm/index.mjs')
    expect(files).toContain('package/dist/esm/index.d.mts')
    expect(files).toContain('package/binding.gyp')
    expect(files).toContain('package/contrib/systemd/synmux-server.service')
    expect(files).toContain('package/contrib/systemd/synmux-client@.service')
    expect(files.some((f) => f.startsWith(`package/prebuilds/${process.platform}-${process.arch}/`) && f.endsWith('.node'))).toBe(true)
    expect(files.some((f) => f.startsWith('package/native/') && f.endsWith('.cc'))).toBe(true)
    expect(files.some((f) => f.startsWith('package/build/'))).toBe(false)
    expect(files.some((f) => f.startsWith('package/test/') || f.startsWith('package/src/'))).toBe(false)
    expect(fs.existsSync(path.join(app, 'node_modules', 'synmux', 'build'))).toBe(false)
  })

  for (const flavour of ['cjs', 'esm'] as const) {
    it(`${flavour === 'cjs' ? 'require()' : 'import'}: the prebuild loads and connectWithData works`, () => {
      const file = path.join(app, flavour === 'cjs' ? 'check.cjs' : 'check.mjs')
      fs.writeFileSync(file, flavour === 'cjs' ? `(async () => {${CHECK(flavour)}})()` : CHECK(flavour))
      const r = JSON.parse(run(process.execPath, [file], app).trim())
      expect(r.loaded).toMatch(new RegExp(`^prebuilds[/\\\\]${process.platform}-${process.arch}[/\\\\].+\\.node$`))
      expect(r.support.addon).toBe(true)
      expect(r.exports).toEqual(expect.arrayContaining(['connectWithData', 'createConnection', 'createServer', 'enableFastOpen', 'fastOpenInfo', 'fastOpenSupport', 'Session']))
      for (const x of r.results) expect(x.echo).toBe(`hello ${flavour}`)
      if (r.support.client && r.support.server) expect(r.results[1].fastOpen).toEqual({ attempted: true, accepted: true })
    })
  }

  it('types resolve for TypeScript users, from CommonJS and ESM', () => {
    fs.writeFileSync(
      path.join(app, 'use.mts'),
      `import { connectWithData, type FastOpenReport, type FastOpenSupport } from 'synmux'\n` +
        `const s = await connectWithData({ host: '127.0.0.1', port: 80 }, 'x')\nconst r: FastOpenReport = s.fastOpen\nconst n: boolean | null = r.accepted\nexport { n }\nexport type T = FastOpenSupport\n`,
    )
    fs.writeFileSync(
      path.join(app, 'use.cts'),
      `import synmux = require('synmux')\nconst p: Promise<synmux.FastOpenSocket> = synmux.connectWithData({ port: 1 })\nexport = p\n`,
    )
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'es2022', strict: true, noEmit: true, types: [], skipLibCheck: false, typeRoots: [path.join(ROOT, 'node_modules', '@types')] }, files: ['use.mts', 'use.cts'] }),
    )
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
    // @types/node comes from the repo's dev dependencies (a user has their own)
    try {
      run(process.execPath, [tsc, '-p', app, '--types', 'node'], app)
    } catch (err) {
      throw new Error(`tsc failed:\n${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`)
    }
  })

  it('without a prebuild or build/, the package still works through plain net and says why', () => {
    const installed = path.join(app, 'node_modules', 'synmux')
    fs.rmSync(path.join(installed, 'prebuilds'), { recursive: true, force: true })
    const file = path.join(app, 'check-fallback.cjs')
    fs.writeFileSync(file, `(async () => {${CHECK('cjs')}})()`)
    const r = JSON.parse(run(process.execPath, [file], app).trim())
    expect(r.loaded).toMatch(/^none/)
    expect(r.support).toMatchObject({ addon: false, client: false, reason: 'addon-unavailable' })
    for (const x of r.results) {
      expect(x.echo).toBe('hello cjs')
      expect(x.fastOpen).toEqual({ attempted: false, accepted: false, reason: 'addon-unavailable' })
    }
  })
})
