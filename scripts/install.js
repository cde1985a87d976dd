#!/usr/bin/env node
// synmux's npm `install` script. Order, as node-gyp-build's own:
//   1. a binary that loads (build/Release, or a prebuild in prebuilds/ that
//      fits this platform, arch and libc): done, silently;
//   2. otherwise compile it with node-gyp (binding.gyp, native/);
//   3. if that fails too, the install still succeeds: one warning line on
//      stderr, the reason in build/install-fallback.json (fastOpenSupport()
//      reports it), and the package works through plain `net`.
// `npm install --build-from-source` (npm_config_build_from_source) always
// compiles, and a failed compile then fails the install.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const fallbackFile = path.join(root, 'build', 'install-fallback.json')
const fromSource = process.env.npm_config_build_from_source === 'true'

/** Whether the addon loads in a fresh Node (as node-gyp-build-test checks). */
function loads() {
  const r = spawnSync(process.execPath, ['-e', 'require(require.resolve("node-gyp-build", { paths: [process.argv[1]] }))(process.argv[1])', root], {
    stdio: 'ignore',
    windowsHide: true,
  })
  return r.status === 0
}

/** node-gyp: the package's own (a dev clone), else the one npm puts on PATH for scripts. */
function nodeGyp() {
  try {
    const pj = require.resolve('node-gyp/package.json', { paths: [root] })
    const bin = require(pj).bin
    return { cmd: process.execPath, args: [path.join(path.dirname(pj), typeof bin === 'string' ? bin : bin['node-gyp'])], shell: false }
  } catch {
    return process.platform === 'win32' ? { cmd: 'node-gyp.cmd', args: [], shell: true } : { cmd: 'node-gyp', args: [], shell: false }
  }
}

function compile() {
  const g = nodeGyp()
  const r = spawnSync(g.cmd, [...g.args, 'rebuild'], { cwd: root, encoding: 'utf8', shell: g.shell, windowsHide: true })
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `${r.error.message}\n` : ''}`
  return { ok: r.status === 0 && !r.error, out }
}

/** node-gyp's own error message ("Could not find any Python installation to use", "not found: make", a compiler error). */
function firstError(out) {
  const lines = out.split(/\r?\n/).map((l) => l.trim()).filter(Boolean)
  const stack = lines.map((l) => /^gyp ERR! stack Error: (.+)$/.exec(l)).find(Boolean)
  const pick = stack ? stack[1] : (lines.find((l) => /\berror\b/i.test(l) && !/^gyp ERR!/.test(l)) ?? lines.filter((l) => /^gyp ERR!/.test(l)).at(-1) ?? lines.at(-1))
  return (pick ?? 'node-gyp failed').replace(/^gyp ERR!\s*/, '').slice(0, 300)
}

function target() {
  let libc = ''
  if (process.platform === 'linux') libc = fs.existsSync('/etc/alpine-release') ? ' (musl)' : ' (glibc)'
  return `${process.platform}-${process.arch}${libc}, Node ${process.version}`
}

function main() {
  if (!fromSource && loads()) return
  const c = compile()
  if (c.ok && loads()) {
    fs.rmSync(fallbackFile, { force: true })
    return
  }
  if (fromSource) {
    process.stderr.write(c.out)
    console.error('synmux: --build-from-source: compiling the native addon failed (output above)')
    process.exit(1)
  }
  const reason = firstError(c.out)
  fs.mkdirSync(path.dirname(fallbackFile), { recursive: true })
  fs.writeFileSync(fallbackFile, `${JSON.stringify({ target: target(), reason, at: new Date().toISOString(), host: os.release() }, null, 2)}\n`)
  console.warn(`synmux: no prebuilt binary for ${target()} and compiling one failed (${reason}): TCP Fast Open is off, connections use plain net; fastOpenSupport() says why`)
}

main()
