/**
 * The published package, made and used the way a release and a user do:
 * the real `npm pack` (its `prepack` checks a prebuild for every target,
 * `prepare` builds dist/) in a copy of the repository, the tarball's file
 * list, then `npm install <tarball>` with install scripts into an empty
 * project: the prebuild for this platform loads (nothing is compiled), from
 * require() and import. A second tarball without this platform's prebuild,
 * installed with a PATH that holds no compiler and no Python, must install
 * with one warning line and fall back to plain `net`, and fastOpenSupport()
 * must say why.
 *
 * Needs prebuilds/ for every target (`npm run prebuild:all`, as .ci/run
 * does before `npm test`): under CI their absence fails this file; on a
 * developer machine it is skipped with that reason.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, skipReason } from '../helpers'

const req = createRequire(__filename)
const { ALL, OUT } = req(path.join(ROOT, '.ci', 'prebuild-all.js')) as { ALL: string[]; OUT: Record<string, string> }
const missing = ALL.filter((t) => !fs.existsSync(path.join(ROOT, 'prebuilds', OUT[t]!)))
const ci = !!process.env.CI && process.env.CI !== 'false'
if (ci && missing.length > 0) throw new Error(`prebuilds missing for ${missing.join(', ')}: run \`npm run prebuild:all\` before \`npm test\` (.ci/run does)`)
const skip = skipReason(missing.length > 0 ? `prebuilds missing for ${missing.join(', ')} (run \`npm run prebuild:all\`)` : false)
const tuple = `${process.platform}-${process.arch}`

/** npm's own CLI, run by this Node (no `npm.cmd` shim on Windows, no shell). */
function npmCli(): string {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ]
  const found = candidates.find((c) => c && /npm-cli\.js$/.test(c) && fs.existsSync(c))
  if (!found) throw new Error(`npm-cli.js not found next to ${process.execPath}`)
  return found
}
const npm = (args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) =>
  execFileSync(process.execPath, [npmCli(), ...args], { cwd, encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] })
const run = (file: string, cwd: string) => execFileSync(process.execPath, [file], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

let work: string
let tarball: string
let files: string[]
let app: string

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

/** The repository as `npm pack` sees it, with node_modules linked (prepare needs TypeScript). */
function stageRepo(dir: string): void {
  for (const f of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'binding.gyp', 'tsconfig.json']) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f))
  for (const d of ['src', 'native', 'docs', 'scripts', '.ci', 'prebuilds', 'contrib']) fs.cpSync(path.join(ROOT, d), path.join(dir, d), { recursive: true })
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), process.platform === 'win32' ? 'junction' : 'dir')
}

function newApp(name: string): string {
  const dir = path.join(work, name)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  return dir
}

beforeAll(() => {
  if (skip) return
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-pack-'))
  const repo = path.join(work, 'repo')
  fs.mkdirSync(repo)
  stageRepo(repo)
  // The real npm pack: prepack (.ci/prepack.js, verify only: every target
  // must already be there) and prepare (dist/), as `npm publish` runs them.
  const out = JSON.parse(npm(['pack', '--json', '--pack-destination', work], repo, { ...process.env, SYNMUX_PREPACK_VERIFY_ONLY: '1' }))
  tarball = path.join(work, out[0].filename)
  files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean)
  app = newApp('app')
  npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app)
}, 300_000)

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe.skipIf(skip)('the packed package', () => {
  it('ships a prebuild for every target, dist/, the sources for a fallback compile, the docs, and nothing else', () => {
    for (const t of ALL) expect(files, t).toContain(`package/prebuilds/${OUT[t]}`)
    expect(files.filter((f) => f.startsWith('package/prebuilds/')).sort()).toEqual(ALL.map((t) => `package/prebuilds/${OUT[t]}`).sort())
    for (const f of ['dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/esm/index.mjs', 'dist/esm/index.d.mts', 'binding.gyp', 'scripts/install.js', 'LICENSE', 'CHANGELOG.md', 'README.md', 'docs/PLATFORMS.md', 'docs/PROTOCOL.md', 'docs/ARCHITECTURE.md']) {
      expect(files).toContain(`package/${f}`)
    }
    expect(files).toContain('package/contrib/systemd/synmux-server.service')
    expect(files).toContain('package/contrib/systemd/synmux-client@.service')
    expect(files.some((f) => f.startsWith('package/native/') && f.endsWith('.cc'))).toBe(true)
    for (const bad of ['build/', 'test/', 'src/', '.ci/', '.tools/', 'bench/', 'node_modules/']) expect(files.some((f) => f.startsWith(`package/${bad}`)), bad).toBe(false)
  })

  it('README links only to files the package ships', () => {
    const readme = fs.readFileSync(path.join(app, 'node_modules', 'synmux', 'README.md'), 'utf8')
    const links = [...readme.matchAll(/\]\((?!https?:|#)([^)#]+)/g)].map((m) => m[1]!)
    for (const l of links) expect(files, l).toContain(`package/${l}`)
  })

  it('source maps carry their sources (sourcesContent), since src/ is not shipped', () => {
    const dir = path.join(app, 'node_modules', 'synmux', 'dist', 'cjs')
    const maps = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js.map'))
    expect(maps.length).toBeGreaterThan(10)
    for (const m of maps) {
      const map = JSON.parse(fs.readFileSync(path.join(dir, m), 'utf8'))
      expect(map.sourcesContent?.length, m).toBe(map.sources.length)
      expect(map.sourcesContent.every((s: unknown) => typeof s === 'string' && s.length > 0), m).toBe(true)
    }
  })

  it('the install script found the prebuild and compiled nothing', () => {
    const installed = path.join(app, 'node_modules', 'synmux')
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false)
  })

  for (const flavour of ['cjs', 'esm'] as const) {
    it(`${flavour === 'cjs' ? 'require()' : 'import'}: the prebuild loads and connectWithData works`, () => {
      const file = path.join(app, flavour === 'cjs' ? 'check.cjs' : 'check.mjs')
      fs.writeFileSync(file, flavour === 'cjs' ? `(async () => {${CHECK(flavour)}})()` : CHECK(flavour))
      const r = JSON.parse(run(file, app).trim())
      expect(r.loaded).toMatch(new RegExp(`^prebuilds[/\\\\]${tuple}[/\\\\]synmux(\\.glibc|\\.musl)?\\.node$`))
      expect(r.support.addon).toBe(true)
      expect(r.exports).toEqual(expect.arrayContaining(['connectWithData', 'createConnection', 'createServer', 'enableFastOpen', 'fastOpenInfo', 'fastOpenSupport', 'Session']))
      for (const x of r.results) expect(x.echo).toBe(`hello ${flavour}`)
      // Windows cannot say whether a SYN carried data: accepted stays null there.
      if (r.support.client && r.support.server) {
        expect(r.results[1].fastOpen).toEqual({ attempted: true, accepted: process.platform === 'win32' ? null : true })
      }
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
      execFileSync(process.execPath, [tsc, '-p', app, '--types', 'node'], { cwd: app, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (err) {
      throw new Error(`tsc failed:\n${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`)
    }
  })

  it('a prebuild removed after install: the package still works through plain net and says why', () => {
    const other = newApp('app-removed')
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], other)
    fs.rmSync(path.join(other, 'node_modules', 'synmux', 'prebuilds'), { recursive: true, force: true })
    const file = path.join(other, 'check-fallback.cjs')
    fs.writeFileSync(file, `(async () => {${CHECK('cjs')}})()`)
    const r = JSON.parse(run(file, other).trim())
    expect(r.loaded).toMatch(/^none/)
    expect(r.support).toMatchObject({ addon: false, client: false, reason: 'addon-unavailable' })
    expect(r.support.detail).not.toMatch(/\n/)
    for (const x of r.results) {
      expect(x.echo).toBe('hello cjs')
      expect(x.fastOpen).toEqual({ attempted: false, accepted: false, reason: 'addon-unavailable' })
    }
  })

  it.skipIf(skipReason(process.platform === 'win32' ? 'node-gyp finds Visual Studio through the registry, not PATH: no PATH hides the compiler there' : false))(
    'no fitting prebuild and no compiler: npm install succeeds with one warning line, fastOpenSupport() says why',
    () => {
      // The same tarball without this platform's prebuilds.
      const unpacked = path.join(work, 'unpacked')
      fs.mkdirSync(unpacked)
      execFileSync('tar', ['-xzf', tarball, '-C', unpacked])
      fs.rmSync(path.join(unpacked, 'package', 'prebuilds', tuple), { recursive: true, force: true })
      const bare = path.join(work, 'synmux-noprebuild.tgz')
      execFileSync('tar', ['-czf', bare, '-C', unpacked, 'package'])
      // A PATH with Node and a shell (npm runs scripts with sh) and nothing
      // else: no python3, make, cc or c++.
      const bin = path.join(work, 'bin-node-only')
      fs.mkdirSync(bin)
      fs.symlinkSync(process.execPath, path.join(bin, 'node'))
      fs.symlinkSync('/bin/sh', path.join(bin, 'sh'))
      const env: NodeJS.ProcessEnv = { HOME: process.env.HOME, PATH: bin, npm_config_cache: process.env.npm_config_cache }
      for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k]
      const probe = spawnSync('/bin/sh', ['-c', 'for c in python3 python make cc c++ gcc g++ clang; do command -v $c; done; true'], { env, encoding: 'utf8' })
      expect(probe.stdout.trim(), 'the PATH must hold no compiler').toBe('')
      const other = newApp('app-nocompiler')
      const r = spawnSync(process.execPath, [npmCli(), 'install', '--foreground-scripts', '--no-audit', '--no-fund', '--prefer-offline', bare], {
        cwd: other,
        env,
        encoding: 'utf8',
        timeout: 240_000,
      })
      const output = `${r.stdout}${r.stderr}`
      expect(r.status, output).toBe(0)
      const warnings = output.split('\n').filter((l) => l.startsWith('synmux:'))
      expect(warnings, output).toHaveLength(1)
      expect(warnings[0]).toMatch(new RegExp(`^synmux: no prebuilt binary for ${tuple}.* and compiling one failed \\(.+\\): TCP Fast Open is off, connections use plain net; fastOpenSupport\\(\\) says why$`))
      expect(output).not.toMatch(/npm (ERR|error)/)
      const file = path.join(other, 'check.cjs')
      fs.writeFileSync(file, `(async () => {${CHECK('cjs')}})()`)
      const c = JSON.parse(run(file, other).trim())
      expect(c.loaded).toMatch(/^none/)
      expect(c.support).toMatchObject({ addon: false, client: false, server: false, reason: 'addon-unavailable' })
      expect(c.support.detail).toMatch(new RegExp(`^no prebuilt binary fits ${tuple}.* and compiling the addon at install failed \\(.+\\); connections use plain net`))
      expect(c.support.detail).not.toMatch(/\n/)
      for (const x of c.results) {
        expect(x.echo).toBe('hello cjs')
        expect(x.fastOpen).toEqual({ attempted: false, accepted: false, reason: 'addon-unavailable' })
      }
    },
    300_000,
  )
})
