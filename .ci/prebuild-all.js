#!/usr/bin/env node
// npm run prebuild:all — builds the addon for all four targets on this
// Linux machine, named as node-gyp-build looks for them
// (prebuilds/<platform>-<arch>/synmux.node, what `prebuildify --napi`
// writes for linux-x64):
//   linux-x64     prebuildify (node-gyp, the machine's g++)
//   win32-x64     mingw-w64 g++, linked against an import library made from
//                 node-api-headers' def/node_api.def (host NODE.EXE) with
//                 x86_64-w64-mingw32-dlltool; libgcc/libstdc++/winpthread
//                 static, so no mingw DLL is needed at run time
//   darwin-x64    zig c++ -target x86_64-macos, -undefined dynamic_lookup
//   darwin-arm64  zig c++ -target aarch64-macos, idem
// Tools come from .ci/setup-cross.sh (run first when missing).
// Usage: node .ci/prebuild-all.js [linux-x64 win32-x64 darwin-x64 darwin-arm64]
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const tools = process.env.SYNMUX_TOOLS || path.join(os.homedir(), '.cache', 'synmux-cross')
const npmTools = path.join(tools, 'npm', 'node_modules')
const NAME = require(path.join(root, 'package.json')).name // "synmux"
const ALL = ['linux-x64', 'win32-x64', 'darwin-x64', 'darwin-arm64']

const COMMON = ['addon.cc', 'errors.cc', 'sockaddr.cc', 'args.cc']
const SOURCES = {
  'win32-x64': [...COMMON, 'errors_win.cc', 'tfo_win.cc'],
  darwin: [...COMMON, 'tfo_darwin.cc', 'socket_unix.cc', 'wait_unix.cc'],
}
const DEFINES = ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', `NODE_GYP_MODULE_NAME=${NAME}`, 'BUILDING_NODE_EXTENSION']

function run(cmd, args, opts = {}) {
  const t0 = Date.now()
  execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: root, ...opts })
  return Date.now() - t0
}

function ensureTools() {
  const ok =
    fs.existsSync(path.join(npmTools, 'node-api-headers', 'def', 'node_api.def')) &&
    fs.existsSync(path.join(npmTools, '@ryoppippi', 'zig-linux-x64', 'zig'))
  if (!ok) run('bash', [path.join(__dirname, 'setup-cross.sh')])
}

function napiInclude() {
  return path.join(npmTools, 'node-api-headers', 'include')
}

function addonApiInclude() {
  return require('node-addon-api').include_dir.replace(/^"|"$/g, '')
}

/** The libuv headers (uv.h + uv/darwin.h) of the Node that runs this script. */
function uvInclude() {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
    '/usr/include/node',
  ]
  const dir = candidates.find((d) => fs.existsSync(path.join(d, 'uv.h')) && fs.existsSync(path.join(d, 'uv', 'darwin.h')))
  if (!dir) throw new Error(`uv.h with uv/darwin.h not found in ${candidates.join(', ')}`)
  // Copy just uv.h + uv/ so Node's own node_api.h there cannot shadow node-api-headers'.
  const out = path.join(root, 'build', 'cross', 'uv-include')
  fs.rmSync(out, { recursive: true, force: true })
  fs.mkdirSync(path.join(out, 'uv'), { recursive: true })
  fs.copyFileSync(path.join(dir, 'uv.h'), path.join(out, 'uv.h'))
  for (const f of fs.readdirSync(path.join(dir, 'uv'))) fs.copyFileSync(path.join(dir, 'uv', f), path.join(out, 'uv', f))
  return out
}

function outFile(target) {
  const dir = path.join(root, 'prebuilds', target)
  fs.mkdirSync(dir, { recursive: true })
  return path.join(dir, `${NAME}.node`)
}

function buildLinux() {
  const bin = path.join(root, 'node_modules', '.bin', 'prebuildify')
  // Without a nodedir, node-gyp downloads headers for -t 20.0.0; the local
  // Node's own headers serve a Node-API build just as well (npm sets this
  // from .npmrc when run as `npm run`).
  const env = { ...process.env }
  const local = path.join(path.dirname(process.execPath), '..')
  if (!env.npm_config_nodedir && fs.existsSync(path.join(local, 'include', 'node', 'node_api.h'))) {
    env.npm_config_nodedir = path.resolve(local)
  }
  return run(bin, ['--napi', '--strip', '--quiet', '-t', '20.0.0'], { env })
}

function buildWindows() {
  const work = path.join(root, 'build', 'cross', 'win32-x64')
  fs.mkdirSync(work, { recursive: true })
  const lib = path.join(work, 'libnode.a')
  let ms = run('x86_64-w64-mingw32-dlltool', [
    '-d', path.join(npmTools, 'node-api-headers', 'def', 'node_api.def'),
    '-l', lib,
    '-m', 'i386:x86-64',
  ])
  // The posix thread model: node-addon-api needs std::mutex (absent from the win32 model).
  const gxx = fs.existsSync('/usr/bin/x86_64-w64-mingw32-g++-posix') ? 'x86_64-w64-mingw32-g++-posix' : 'x86_64-w64-mingw32-g++'
  ms += run(gxx, [
    '-std=c++17', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-cast-function-type',
    '-fexceptions',
    ...DEFINES.map((d) => `-D${d}`),
    '-D_WIN32_WINNT=0x0A00', '-DWIN32_LEAN_AND_MEAN', '-DNOMINMAX',
    `-I${napiInclude()}`, `-I${addonApiInclude()}`,
    ...SOURCES['win32-x64'].map((f) => path.join(root, 'native', f)),
    '-shared', '-s', '-static', '-static-libgcc', '-static-libstdc++',
    '-o', outFile('win32-x64'),
    lib, '-lws2_32', '-lmswsock',
  ])
  return ms
}

function buildDarwin(arch) {
  const zig = path.join(npmTools, '@ryoppippi', 'zig-linux-x64', 'zig')
  // macOS 11 is the oldest SDK zig 0.11 bundles headers for (its C++
  // headers fail for 10.15); on 10.15 the addon builds from source with
  // binding.gyp's MACOSX_DEPLOYMENT_TARGET 10.15.
  const triple = arch === 'arm64' ? 'aarch64-macos.11.0' : 'x86_64-macos.11.0'
  const cache = path.join(tools, 'zig-cache')
  return run(zig, [
    'c++', '-target', triple,
    '-std=c++17', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter',
    '-fPIC', '-fvisibility=hidden', '-fexceptions',
    ...DEFINES.map((d) => `-D${d}`),
    `-I${napiInclude()}`, `-I${addonApiInclude()}`, `-I${uvInclude()}`,
    ...SOURCES.darwin.map((f) => path.join(root, 'native', f)),
    '-shared', '-s', '-Wl,-undefined,dynamic_lookup', '-Wl,-install_name,@rpath/synmux.node',
    '-o', outFile(`darwin-${arch}`),
  ], { env: { ...process.env, ZIG_GLOBAL_CACHE_DIR: cache, ZIG_LOCAL_CACHE_DIR: cache } })
}

const targets = process.argv.length > 2 ? process.argv.slice(2) : ALL
for (const t of targets) if (!ALL.includes(t)) throw new Error(`unknown target ${t} (one of ${ALL.join(', ')})`)
if (targets.some((t) => t !== 'linux-x64')) ensureTools()
for (const t of targets) {
  let ms
  if (t === 'linux-x64') ms = buildLinux()
  else if (t === 'win32-x64') ms = buildWindows()
  else ms = buildDarwin(t.split('-')[1])
  const file = outFile(t)
  console.log(`prebuild-all: ${path.relative(root, file)} (${fs.statSync(file).size} bytes, ${(ms / 1000).toFixed(1)} s)`)
}
