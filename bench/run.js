#!/usr/bin/env node
// `npm run bench`: runs every bench/*.mjs in turn (each prints JSON and
// writes bench/results/<name>.json), then prints a one-line summary each.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const only = process.argv.slice(2)
const benches = fs
  .readdirSync(__dirname)
  .filter((f) => f.endsWith('.mjs'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
let failed = 0
for (const file of benches) {
  process.stderr.write(`\n== ${file}\n`)
  const r = spawnSync(process.execPath, [path.join(__dirname, file)], { stdio: ['ignore', 'inherit', 'inherit'] })
  if (r.status !== 0) {
    failed++
    process.stderr.write(`${file} failed (exit ${r.status})\n`)
  }
}
process.exitCode = failed ? 1 : 0
