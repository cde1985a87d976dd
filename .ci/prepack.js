#!/usr/bin/env node
// npm `prepack` (runs before `npm pack` and `npm publish`): the tarball must
// hold a prebuilt binary for every target (.ci/prebuild-all.js ALL). A
// missing one is built here with the same script CI uses, then every
// binary's format is checked (ELF x86-64 / AArch64, PE32+ x86-64, Mach-O
// x86_64 / arm64), so a file in the wrong folder cannot ship.
// SYNMUX_PREPACK_VERIFY_ONLY=1 (the release job): build nothing, fail on a
// missing target, so what is published is exactly the tested artifact.
'use strict'
const { execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { ALL, OUT } = require('./prebuild-all.js')

const root = path.join(__dirname, '..')
const verifyOnly = process.env.SYNMUX_PREPACK_VERIFY_ONLY === '1'
const file = (t) => path.join(root, 'prebuilds', OUT[t])

/** What the binary's header says it is. */
function format(f) {
  const b = Buffer.alloc(0x200)
  const fd = fs.openSync(f, 'r')
  try {
    fs.readSync(fd, b, 0, b.length, 0)
  } finally {
    fs.closeSync(fd)
  }
  if (b.readUInt32BE(0) === 0x7f454c46) return { 0x3e: 'elf-x64', 0xb7: 'elf-arm64' }[b.readUInt16LE(18)] ?? 'elf-?'
  if (b.readUInt32LE(0) === 0xfeedfacf) return { 0x01000007: 'macho-x64', 0x0100000c: 'macho-arm64' }[b.readUInt32LE(4)] ?? 'macho-?'
  if (b.toString('latin1', 0, 2) === 'MZ') {
    const pe = b.readUInt32LE(0x3c)
    if (pe + 6 <= b.length && b.toString('latin1', pe, pe + 4) === 'PE\0\0') return b.readUInt16LE(pe + 4) === 0x8664 ? 'pe-x64' : 'pe-?'
  }
  return 'unknown'
}
const WANT = {
  'linux-x64': 'elf-x64',
  'linux-x64-musl': 'elf-x64',
  'linux-arm64': 'elf-arm64',
  'win32-x64': 'pe-x64',
  'darwin-x64': 'macho-x64',
  'darwin-arm64': 'macho-arm64',
}

const missing = ALL.filter((t) => !fs.existsSync(file(t)))
if (missing.length > 0) {
  if (verifyOnly) {
    console.error(`prepack: missing prebuilds for ${missing.join(', ')} (SYNMUX_PREPACK_VERIFY_ONLY=1: nothing is built here)`)
    process.exit(1)
  }
  console.error(`prepack: building the missing prebuilds: ${missing.join(', ')}`)
  execFileSync(process.execPath, [path.join(__dirname, 'prebuild-all.js'), ...missing], { stdio: 'inherit', cwd: root })
}
for (const t of ALL) {
  const f = file(t)
  const got = format(f)
  if (got !== WANT[t]) {
    console.error(`prepack: ${path.relative(root, f)} is ${got}, want ${WANT[t]}`)
    process.exit(1)
  }
  const sum = crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex').slice(0, 16)
  console.error(`prepack: ${path.relative(root, f)} ${got} ${fs.statSync(f).size} B sha256 ${sum}`)
}
