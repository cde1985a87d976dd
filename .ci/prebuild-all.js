#!/usr/bin/env node
// npm run prebuild:all — builds the addon for every published target on
// this Linux machine, named as node-gyp-build looks for them. These exact
// files are what CI loads on each OS and what `npm pack` ships:
//   linux-x64       prebuilds/linux-x64/synmux.glibc.node    zig c++ -target x86_64-linux-gnu.2.17
//   linux-x64-musl  prebuilds/linux-x64/synmux.musl.node     zig c++ -target x86_64-linux-musl
//   linux-arm64     prebuilds/linux-arm64/synmux.glibc.node  zig c++ -target aarch64-linux-gnu.2.17
//   win32-x64       prebuilds/win32-x64/synmux.node          mingw-w64 g++, linked against an import
//                   library made from node-api-headers' def/node_api.def (host NODE.EXE) with
//                   x86_64-w64-mingw32-dlltool; libgcc/libstdc++/winpthread static
//   darwin-x64      prebuilds/darwin-x64/synmux.node         zig c++ -target x86_64-macos, -undefined dynamic_lookup
//   darwin-arm64    prebuilds/darwin-arm64/synmux.node       zig c++ -target aarch64-macos, idem
// Linux binaries link zig's libc++ statically and export only the two
// Node-API entry points (a version script), and need nothing newer than
// glibc 2.17 (.ci/verify-prebuilds.js glibc checks it with objdump -T).
// Tools come from .ci/setup-cross.sh (run first when missing), into .tools/.
// Usage: node .ci/prebuild-all.js [target ...]   (default: all)
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const tools = process.env.SYNMUX_TOOLS || path.join(root, '.tools')
const npmTools = path.join(tools, 'npm', 'node_modules')
const NAME = require(path.join(root, 'package.json')).name // "synmux"
const ALL = ['linux-x64', 'linux-x64-musl', 'linux-arm64', 'win32-x64', 'darwin-x64', 'darwin-arm64']

const COMMON = ['addon.cc', 'errors.cc', 'sockaddr.cc', 'args.cc']
const SOURCES = {
  'win32-x64': [...COMMON, 'errors_win.cc', 'tfo_win.cc'],
  darwin: [...COMMON, 'tfo_darwin.cc', 'socket_unix.cc', 'wait_unix.cc'],
  linux: [...COMMON, 'tfo_linux.cc', 'socket_unix.cc', 'wait_unix.cc'],
}
/** Where each target's binary goes (node-gyp-build picks by directory and libc tag). */
const OUT = {
  'linux-x64': 'linux-x64/synmux.glibc.node',
  'linux-x64-musl': 'linux-x64/synmux.musl.node',
  'linux-arm64': 'linux-arm64/synmux.glibc.node',
  'win32-x64': 'win32-x64/synmux.node',
  'darwin-x64': 'darwin-x64/synmux.node',
  'darwin-arm64': 'darwin-arm64/synmux.node',
}
/** The glibc these builds need at most (README "Install from npm"). */
const GLIBC_FLOOR = '2.17'
const ZIG_TRIPLE = {
  'linux-x64': `x86_64-linux-gnu.${GLIBC_FLOOR}`,
  'linux-x64-musl': 'x86_64-linux-musl',
  'linux-arm64': `aarch64-linux-gnu.${GLIBC_FLOOR}`,
  'darwin-x64': 'x86_64-macos.11.0',
  'darwin-arm64': 'aarch64-macos.11.0',
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
  const out = path.join(tools, 'work', 'uv-include')
  fs.rmSync(out, { recursive: true, force: true })
  fs.mkdirSync(path.join(out, 'uv'), { recursive: true })
  fs.copyFileSync(path.join(dir, 'uv.h'), path.join(out, 'uv.h'))
  for (const f of fs.readdirSync(path.join(dir, 'uv'))) fs.copyFileSync(path.join(dir, 'uv', f), path.join(out, 'uv', f))
  return out
}

function outFile(target) {
  const file = path.join(root, 'prebuilds', OUT[target])
  fs.mkdirSync(path.dirname(file), { recursive: true })
  return file
}

/** zig c++ for `target` over `sources`, a shared object at the target's output path. */
function zig(target, sources, linkFlags) {
  const bin = path.join(npmTools, '@ryoppippi', 'zig-linux-x64', 'zig')
  const cache = path.join(tools, 'zig-cache')
  const args = [
    'c++', '-target', ZIG_TRIPLE[target],
    '-std=c++17', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter',
    '-fPIC', '-fvisibility=hidden', '-fexceptions',
    ...DEFINES.map((d) => `-D${d}`),
    `-I${napiInclude()}`, `-I${addonApiInclude()}`, `-I${uvInclude()}`,
    ...sources.map((f) => path.join(root, 'native', f)),
    '-shared', '-s', ...linkFlags,
    '-o', outFile(target),
  ]
  return run(bin, args, { env: { ...process.env, ZIG_GLOBAL_CACHE_DIR: cache, ZIG_LOCAL_CACHE_DIR: cache } })
}

function buildLinux(target) {
  const work = path.join(tools, 'work', target)
  fs.mkdirSync(work, { recursive: true })
  // Only the Node-API entry points leave the binary: the statically linked
  // libc++/libunwind stay private, so they never bind to Node's own.
  const exports = path.join(work, 'exports.map')
  fs.writeFileSync(exports, '{ global: napi_register_module_v1; node_api_module_get_api_version_v1; local: *; };\n')
  return zig(target, SOURCES.linux, [`-Wl,--version-script=${exports}`])
}

function buildWindows() {
  const work = path.join(tools, 'work', 'win32-x64')
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

function buildDarwin(target) {
  // macOS 11 is the oldest SDK zig 0.11 bundles headers for (its C++
  // headers fail for 10.15); on 10.15 the addon builds from source with
  // binding.gyp's MACOSX_DEPLOYMENT_TARGET 10.15.
  return zig(target, SOURCES.darwin, ['-Wl,-undefined,dynamic_lookup', '-Wl,-install_name,@rpath/synmux.node'])
}

module.exports = { ALL, OUT, GLIBC_FLOOR }

if (require.main === module) {
  const targets = process.argv.length > 2 ? process.argv.slice(2) : ALL
  for (const t of targets) if (!ALL.includes(t)) throw new Error(`unknown target ${t} (one of ${ALL.join(', ')})`)
  ensureTools()
  for (const t of targets) {
    const ms = t === 'win32-x64' ? buildWindows() : t.startsWith('darwin-') ? buildDarwin(t) : buildLinux(t)
    const file = outFile(t)
    console.log(`prebuild-all: ${path.relative(root, file)} (${fs.statSync(file).size} bytes, ${(ms / 1000).toFixed(1)} s)`)
  }
}
